//! The three float Keras 2 MLPerf Tiny models (functional graphs with BatchNormalization,
//! Add and legacy TF 2.3-era configs), imported from `.h5`, calibrated on the fixtures' 100
//! calibration inputs and quantized by fixnet, must come within twice LiteRT's own int8
//! conversion's error against the float Keras outputs (tests/fixtures/mlperf/errors.json,
//! made by tools/scripts/make_mlperf_fixtures.py) on the 200 evaluation inputs.

use fixnet::Interpreter;
use fixnet_tools::keras::{self, CalibrationOptions, FloatSamples, RangeMethod};
use fixnet_tools::{fxn::ModelBytes, lower, npy};
use std::path::{Path, PathBuf};

fn mlperf(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/mlperf")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(mlperf(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn floats(name: &str) -> (Vec<usize>, Vec<f32>) {
    let a = npy::decode(&read(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    match a.values {
        npy::Values::Float32(v) => (a.shape, v),
        _ => panic!("{name}: not float32"),
    }
}

/// `(q − zero_point) · scale` in float32, as the fixture script dequantizes.
fn dequantized(name: &str, scale: f32, zero_point: i32) -> (Vec<usize>, Vec<f32>) {
    let (shape, q) = npy::decode_i8(&read(name)).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let zp = zero_point as f32;
    (
        shape,
        q.iter().map(|&q| (f32::from(q) - zp) * scale).collect(),
    )
}

/// The shipped int8 model's input quantization, which the fixtures' float inputs were
/// dequantized with.
fn shipped_input(errors: &serde_json::Value, stem: &str) -> (f32, i32) {
    let calib = errors["models"][stem]["calib"].as_str().unwrap();
    // "… shipped input scale S, zero point Z"
    let scale = calib
        .split("scale ")
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap();
    let zp = calib
        .split("zero point ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(')');
    (scale.parse().unwrap(), zp.parse().unwrap())
}

fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        num += (f64::from(g) - f64::from(w)).powi(2);
        den += f64::from(w).powi(2);
    }
    (num / den).sqrt()
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

fn check(stem: &str) {
    let errors: serde_json::Value = serde_json::from_slice(&read("errors.json")).unwrap();
    let litert = errors["models"][stem]["litert_int8"]["rel_l2"]
        .as_f64()
        .unwrap();
    let (in_scale, in_zp) = shipped_input(&errors, stem);

    let model = keras::load(mlperf(&format!("{stem}.h5")))
        .unwrap_or_else(|e| panic!("{stem}: import: {e}"));
    // VWW's float inputs are too big to commit; they are exact functions of int8 files.
    let (calib_shape, calib) = if mlperf(&format!("{stem}_calib.npy")).exists() {
        floats(&format!("{stem}_calib.npy"))
    } else {
        dequantized(&format!("{stem}_calib_int8.npy"), in_scale, in_zp)
    };
    let (eval_shape, eval) = if mlperf(&format!("{stem}_eval.npy")).exists() {
        floats(&format!("{stem}_eval.npy"))
    } else {
        dequantized(&format!("{stem}_int8_inputs.npy"), in_scale, in_zp)
    };
    assert_eq!(calib_shape[0], 100, "{stem}: calibration inputs");
    assert_eq!(eval_shape[0], 200, "{stem}: evaluation inputs");
    let (float_shape, want) = floats(&format!("{stem}_float.npy"));

    let options = CalibrationOptions {
        max_images: 100,
        method: RangeMethod::MinMax,
    };
    let samples = FloatSamples {
        per_sample: calib.len() / calib_shape[0],
        values: calib,
    };
    let ranges = keras::calibrate(&model, &samples, &options)
        .unwrap_or_else(|e| panic!("{stem}: calibrate: {e}"));
    let graph = keras::quantize(&model, &ranges).unwrap_or_else(|e| panic!("{stem}: {e}"));
    let input = graph.tensors[graph.input].clone();
    let output = graph.tensors[graph.output].clone();
    let lowered = lower::lower(&graph).unwrap_or_else(|e| panic!("{stem}: lower: {e:#}"));
    let bytes = ModelBytes::new(&lowered);
    let fxn = bytes
        .model()
        .unwrap_or_else(|e| panic!("{stem}: load: {e:#}"));
    let mut arena = vec![0u8; fxn.arena_size()];
    let mut interp = Interpreter::new(&fxn, &mut arena).unwrap_or_else(|e| panic!("{stem}: {e}"));

    let input_len = interp.input_mut().len();
    let outputs = interp.output().len();
    assert_eq!(eval.len(), 200 * input_len, "{stem}: input size");
    assert_eq!(float_shape, vec![200, outputs], "{stem}: output size");
    let mut got = Vec::with_capacity(want.len());
    for x in eval.chunks_exact(input_len) {
        // The fixture script's quantize: round(x / scale) + zero point, in double.
        for (q, &v) in interp.input_mut().iter_mut().zip(x) {
            let r = (f64::from(v) / f64::from(input.scale)).round_ties_even()
                + f64::from(input.zero_point);
            *q = r.clamp(-128.0, 127.0) as i8;
        }
        interp.invoke().unwrap_or_else(|e| panic!("{stem}: {e}"));
        let zp = output.zero_point as f32;
        got.extend(
            interp
                .output()
                .iter()
                .map(|&q| (f32::from(q) - zp) * output.scale),
        );
    }
    let ours = rel_l2(&got, &want);
    let agree = got
        .chunks_exact(outputs)
        .zip(want.chunks_exact(outputs))
        .filter(|(g, w)| argmax(g) == argmax(w))
        .count();
    // The autoencoder's 640 outputs are a reconstruction, not class scores.
    let top1 = if stem == "ad01" {
        String::new()
    } else {
        format!("; top-1 agreement with float Keras {agree}/200")
    };
    println!(
        "{stem}: {} ops, input scale {} zero point {}; relative L2 error vs float Keras: \
         fixnet {ours:.5}, LiteRT int8 {litert:.5} (ratio {:.2}){top1}",
        graph.layers.len(),
        input.scale,
        input.zero_point,
        ours / litert
    );
    assert!(
        ours <= 2.0 * litert,
        "{stem}: fixnet's relative L2 error {ours} is above twice LiteRT's {litert}"
    );
}

#[test]
fn ad01_autoencoder_is_within_twice_litert() {
    check("ad01");
}

#[test]
fn resnet8_is_within_twice_litert() {
    check("pretrainedResnet");
}

#[test]
fn vww_mobilenet_is_within_twice_litert() {
    check("vww_96");
}
