//! Small int8 models built around the ops beyond the seed CNN's — residual ADDs (one of a
//! constant), a MobileNetV3-style block (HARD_SWISH, PAD, MEAN, squeeze-and-excite MUL,
//! LOGISTIC), CONCATENATION, stand-alone RELU / RELU6 / TANH / LEAKY_RELU, and a model with
//! float edges (QUANTIZE in, DEQUANTIZE out) — converted by fixnet must reproduce LiteRT's
//! reference-kernel outputs byte for byte (tests/fixtures/ops_zoo/, made by
//! tools/scripts/make_op_zoo.py).

use fixnet::Interpreter;
use fixnet_tools::{fxn::ModelBytes, lower, npy, tflite};
use std::path::{Path, PathBuf};

fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(dir)
        .join(name)
}

fn zoo(name: &str) -> PathBuf {
    fixture("ops_zoo", name)
}

fn read_i8(path: &Path) -> (Vec<usize>, Vec<i8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    npy::decode_i8(&bytes).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

/// Converts `STEM.tflite` of tests/fixtures/ops_zoo, runs every row of `inputs` alone and
/// compares with `reference`.
fn check(stem: &str, inputs: &str, reference: &str) {
    check_in("ops_zoo", stem, inputs, reference);
}

/// [`check`] for the models of another fixture directory.
fn check_in(dir: &str, stem: &str, inputs: &str, reference: &str) {
    let tflite = std::fs::read(fixture(dir, &format!("{stem}.tflite"))).unwrap();
    let graph = tflite::import(&tflite).unwrap_or_else(|e| panic!("{stem}: import: {e:#}"));
    let lowered = lower::lower(&graph).unwrap_or_else(|e| panic!("{stem}: lower: {e:#}"));
    let bytes = ModelBytes::new(&lowered);
    let model = bytes
        .model()
        .unwrap_or_else(|e| panic!("{stem}: load: {e:#}"));
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(&model, &mut arena).unwrap();
    let (in_shape, x) = read_i8(&fixture(dir, inputs));
    let (_, want) = read_i8(&fixture(dir, reference));
    let input_len = interp.input_mut().len();
    let outputs = interp.output().len();
    assert_eq!(in_shape[1..].iter().product::<usize>(), input_len, "{stem}");
    assert_eq!(want.len(), in_shape[0] * outputs, "{stem}: reference size");
    let mut got = Vec::with_capacity(want.len());
    for row in x.chunks_exact(input_len) {
        interp.input_mut().copy_from_slice(row);
        interp.invoke().unwrap_or_else(|e| panic!("{stem}: {e}"));
        got.extend_from_slice(interp.output());
    }
    let mismatches = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    println!(
        "{stem}: {} ops, compared {} bytes ({} inputs x {outputs}) with LiteRT BUILTIN_REF: {mismatches} mismatching",
        model.op_count(),
        want.len(),
        in_shape[0]
    );
    assert_eq!(
        mismatches, 0,
        "{stem}: {mismatches} bytes differ from LiteRT"
    );
}

#[test]
fn residual_adds_including_a_constant_operand() {
    check("residual", "residual_inputs.npy", "residual_ref.npy");
}

#[test]
fn mobilenet_v3_block_hard_swish_pad_mean_mul_logistic() {
    check("mbv3", "mbv3_inputs.npy", "mbv3_ref.npy");
}

#[test]
fn concatenation_pad_and_a_requantizing_relu() {
    check("concat", "concat_inputs.npy", "concat_ref.npy");
}

#[test]
fn standalone_activations_relu_tanh_logistic_leaky_relu() {
    check(
        "activations",
        "activations_inputs.npy",
        "activations_ref.npy",
    );
}

#[test]
fn float_edges_are_the_hosts_quantize_and_dequantize() {
    // The int8 graph between QUANTIZE and DEQUANTIZE, fed TFLite's quantized inputs, gives
    // the int8 values LiteRT dequantizes at the end.
    check(
        "float_edge",
        "float_edge_inputs_q.npy",
        "float_edge_ref_q.npy",
    );
}

/// The small models of tests/fixtures/bench_zoo (tools/scripts/make_bench_zoo.py), which the
/// speed table of docs/benchmarks.md measures besides the seed CNN and MLPerf Tiny: a
/// streaming keyword model (1-D depthwise + pointwise), a 3x3 SAME CNN with a stride-2 conv
/// and an average pool, a small CNN with a depthwise 3x3 layer, an MLP 784-128-10.
#[test]
fn bench_zoo_models_match_litert() {
    for stem in ["kws_stream", "same_cnn", "dw_cnn", "mlp"] {
        check_in(
            "bench_zoo",
            stem,
            &format!("{stem}_inputs.npy"),
            &format!("{stem}_ref.npy"),
        );
    }
}

#[test]
fn every_corrupted_op_or_tensor_record_is_refused_or_runs_safely() {
    // Every byte of the tensor and op tables of the converted MobileNetV3 block (Lookup,
    // Mean, Pad, Mul, Add with constants) changed, with a fresh CRC: the model is refused
    // with a typed error or, if still consistent, runs without panicking.
    let tflite = std::fs::read(zoo("mbv3.tflite")).unwrap();
    let lowered = lower::lower(&tflite::import(&tflite).unwrap()).unwrap();
    let tensors = usize::from(u16::from_le_bytes([lowered[16], lowered[17]]));
    let ops = usize::from(u16::from_le_bytes([lowered[18], lowered[19]]));
    let tables = 48..48 + 40 * tensors + 48 * ops;
    let (mut refused, mut ran) = (0, 0);
    for at in tables {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bad = lowered.clone();
            bad[at] ^= flip;
            let body = bad.len() - 4;
            let crc = fixnet::format::crc32::crc32(&bad[..body]);
            bad[body..].copy_from_slice(&crc.to_le_bytes());
            let bytes = ModelBytes::new(&bad);
            match bytes.model() {
                Err(_) => refused += 1,
                Ok(model) => {
                    ran += 1;
                    let mut arena = vec![0u8; model.arena_size().min(1 << 22)];
                    if let Ok(mut interp) = Interpreter::new(&model, &mut arena) {
                        interp.input_mut().fill(3);
                        let _ = interp.invoke();
                    }
                }
            }
        }
    }
    println!("mbv3 tables: {refused} corruptions refused, {ran} ran");
    assert!(refused > ran, "{refused} refused, {ran} ran");
}
