//! The four MLPerf Tiny int8 models, converted by fixnet, must reproduce LiteRT's
//! reference-kernel (BUILTIN_REF) outputs byte for byte on 200 full-range random int8 inputs
//! each (tests/fixtures/mlperf/, made by tools/scripts/make_mlperf_fixtures.py), and so must
//! their softmax inputs and the inputs of their last fully connected layer; so must
//! LiteRT's own int8 conversions of the three float Keras models, which today's converter
//! lays out differently from the 2020-era shipped files.

use fixnet::Interpreter;
use fixnet_tools::ir::{Graph, Layer, TensorId};
use fixnet_tools::{fxn::ModelBytes, lower, npy, tflite};
use std::path::{Path, PathBuf};

fn mlperf(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/mlperf")
        .join(name)
}

fn read_npy(name: &str) -> (Vec<usize>, Vec<i8>) {
    let bytes = std::fs::read(mlperf(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    npy::decode_i8(&bytes).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

/// Converts `STEM.tflite` and compares it with LiteRT on every row of `INPUTS_inputs.npy`:
/// its outputs with `STEM_ref.npy`, then the graph cut before its final SOFTMAX with
/// `STEM_logits_ref.npy` and cut before its last FULLY_CONNECTED with
/// `STEM_features_ref.npy` (where those exist): on random inputs the softmax saturates, and
/// the intermediate tensors show a difference the outputs could hide.
fn check(stem: &str, inputs: &str) {
    let tflite = std::fs::read(mlperf(&format!("{stem}.tflite"))).unwrap();
    let graph = tflite::import(&tflite).unwrap_or_else(|e| panic!("{stem}: import: {e:#}"));
    let (in_shape, inputs) = read_npy(&format!("{inputs}_inputs.npy"));
    compare(stem, &graph, &in_shape, &inputs, &format!("{stem}_ref.npy"));

    let last = graph.layers.len() - 1;
    if let Some(Layer::Softmax { input, output, .. }) = graph.layers.get(last) {
        assert_eq!(*output, graph.output, "{stem}: SOFTMAX is not the output");
        let logits = cut(&graph, last, *input);
        let reference = format!("{stem}_logits_ref.npy");
        compare(
            &format!("{stem} logits"),
            &logits,
            &in_shape,
            &inputs,
            &reference,
        );
    }
    let reference = format!("{stem}_features_ref.npy");
    if mlperf(&reference).exists() {
        let fc = graph
            .layers
            .iter()
            .rposition(|l| matches!(l, Layer::FullyConnected(_)))
            .unwrap_or_else(|| panic!("{stem}: no FULLY_CONNECTED"));
        let features = cut(&graph, fc, graph.layers[fc].input());
        compare(
            &format!("{stem} features"),
            &features,
            &in_shape,
            &inputs,
            &reference,
        );
    }
}

/// The graph of the layers before `layer`, with `output` as its output.
fn cut(graph: &Graph, layer: usize, output: TensorId) -> Graph {
    let mut cut = graph.clone();
    cut.layers.truncate(layer);
    cut.output = output;
    cut
}

/// Lowers `graph`, runs each input alone and asserts its outputs equal `reference` byte for
/// byte.
fn compare(label: &str, graph: &Graph, in_shape: &[usize], inputs: &[i8], reference: &str) {
    let lowered = lower::lower(graph).unwrap_or_else(|e| panic!("{label}: lower: {e:#}"));
    let bytes = ModelBytes::new(&lowered);
    let model = bytes
        .model()
        .unwrap_or_else(|e| panic!("{label}: load: {e:#}"));
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp =
        Interpreter::new(&model, &mut arena).unwrap_or_else(|e| panic!("{label}: {e}"));

    let (ref_shape, want) = read_npy(reference);
    let count = in_shape[0];
    let input_len = interp.input_mut().len();
    let outputs = interp.output().len();
    assert_eq!(
        in_shape[1..].iter().product::<usize>(),
        input_len,
        "{label}: input shape {in_shape:?} vs the model's {input_len} values"
    );
    assert_eq!(
        ref_shape,
        vec![count, outputs],
        "{label}: {reference} shape"
    );

    let mut got = Vec::with_capacity(want.len());
    for row in inputs.chunks_exact(input_len) {
        interp.input_mut().copy_from_slice(row);
        interp
            .invoke()
            .unwrap_or_else(|e| panic!("{label}: input {}: {e}", got.len() / outputs));
        got.extend_from_slice(interp.output());
    }
    let mismatches: Vec<usize> = (0..want.len()).filter(|&i| got[i] != want[i]).collect();
    let rows: std::collections::BTreeSet<usize> = mismatches.iter().map(|i| i / outputs).collect();
    println!(
        "{label}: compared {} bytes ({count} inputs x {outputs}) with LiteRT BUILTIN_REF: {} mismatching bytes in {} inputs",
        want.len(),
        mismatches.len(),
        rows.len()
    );
    if let Some(&first) = mismatches.first() {
        let row = first / outputs * outputs;
        let shown = row..(row + outputs).min(row + 16);
        panic!(
            "{label}: {} of {} bytes differ; first at input {} (got {:?}, want {:?})",
            mismatches.len(),
            want.len(),
            first / outputs,
            &got[shown.clone()],
            &want[shown],
        );
    }
}

#[test]
fn kws_ds_cnn_matches_litert_byte_for_byte() {
    check("kws_ref_model", "kws_ref_model");
}

#[test]
fn ad01_autoencoder_matches_litert_byte_for_byte() {
    check("ad01_int8", "ad01_int8");
}

#[test]
fn resnet8_matches_litert_byte_for_byte() {
    check("pretrainedResnet_quant", "pretrainedResnet_quant");
}

#[test]
fn vww_mobilenet_matches_litert_byte_for_byte() {
    check("vww_96_int8", "vww_96_int8");
}

#[test]
fn ad01_litert_conversion_matches_litert_byte_for_byte() {
    check("ad01_litert_int8", "ad01_int8");
}

#[test]
fn resnet8_litert_conversion_matches_litert_byte_for_byte() {
    check("pretrainedResnet_litert_int8", "pretrainedResnet_quant");
}

#[test]
fn vww_litert_conversion_matches_litert_byte_for_byte() {
    check("vww_96_litert_int8", "vww_96_int8");
}
