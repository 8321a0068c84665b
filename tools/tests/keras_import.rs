//! Keras import (`.keras` and legacy `.h5`): float inference against Keras's own test
//! accuracy, post-training int8 quantization against the float model, and errors.

use fixnet_tools::idx::{self, Images};
use fixnet_tools::keras;
use keras::{CalibrationOptions, FloatModel, KerasError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/models").join(name)
}

struct Mnist {
    test: Images,
    labels: Vec<u8>,
    train: Images,
}

fn mnist() -> &'static Mnist {
    static DATA: OnceLock<Mnist> = OnceLock::new();
    DATA.get_or_init(|| {
        let d = repo().join("data/mnist");
        Mnist {
            test: idx::read_images(&d.join("test-images-idx3-ubyte.gz")).unwrap(),
            labels: idx::read_labels(&d.join("test-labels-idx1-ubyte.gz")).unwrap(),
            train: idx::read_images(&d.join("train-images-idx3-ubyte.gz")).unwrap(),
        }
    })
}

/// Keras's float test accuracy as recorded by the fixture generator.
fn recorded_keras_accuracy(model: &str) -> f64 {
    let json = std::fs::read_to_string(repo().join("tests/fixtures/fixtures.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["models"][model]["accuracy"]["keras_float"]
        .as_f64()
        .unwrap_or_else(|| panic!("fixtures.json has no keras_float accuracy for {model}"))
}

fn float_accuracy(model: &FloatModel, data: &Mnist) -> f64 {
    let correct = (0..data.test.len())
        .filter(|&i| {
            model.classify_grey(data.test.image(i)).unwrap() == usize::from(data.labels[i])
        })
        .count();
    correct as f64 / data.labels.len() as f64
}

/// Runs a fixnet model on every test digit: its int8 outputs, one row per digit.
fn fixnet_outputs(bytes: &[u8], data: &Mnist) -> Vec<Vec<i8>> {
    // Models must sit 8-byte aligned in memory: copy into u64 words.
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
    let aligned = &bytemuck::cast_slice::<u64, u8>(&words)[..bytes.len()];
    let model = fixnet::Model::from_bytes(aligned).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = fixnet::Interpreter::new(&model, &mut arena).unwrap();
    (0..data.test.len())
        .map(|i| {
            interp.set_input_grey(data.test.image(i)).unwrap();
            interp.invoke().unwrap();
            interp.output().to_vec()
        })
        .collect()
}

fn accuracy(outputs: &[Vec<i8>], labels: &[u8]) -> f64 {
    let correct = outputs
        .iter()
        .zip(labels)
        .filter(|(out, &label)| fixnet::interpreter::top1(out).0 == usize::from(label))
        .count();
    correct as f64 / labels.len() as f64
}

/// A C-order int8 `.npy` array as rows of its last dimension.
fn read_npy_i8_rows(path: &Path) -> Vec<Vec<i8>> {
    let bytes = std::fs::read(path).unwrap();
    let (shape, data) = fixnet_tools::npy::decode_i8(&bytes).unwrap();
    let cols = *shape.last().unwrap();
    data.chunks(cols).map(<[i8]>::to_vec).collect()
}

/// Float32 sums in another order than TensorFlow's can flip a digit whose two best logits
/// are a rounding error apart; two such digits of 2,000 are 0.1 point.
const FLOAT_TOLERANCE: f64 = 0.001;
/// The bound for post-training quantization.
const QUANT_TOLERANCE: f64 = 0.003;

fn check_model(name: &str) {
    let data = mnist();
    let from_keras = keras::load(fixture(&format!("{name}.keras"))).unwrap();
    let from_h5 = keras::load(fixture(&format!("{name}.h5"))).unwrap();
    // Same ops and bit-identical weights, so every accuracy below holds for both files.
    assert_eq!(
        from_keras, from_h5,
        "{name}: .keras and .h5 give different layers or weights"
    );

    let recorded = recorded_keras_accuracy(name);
    let float = float_accuracy(&from_keras, data);
    println!("{name}: Keras float {recorded:.4}, fixnet float {float:.4}");
    assert!(
        (float - recorded).abs() <= FLOAT_TOLERANCE + 1e-9,
        "{name}: float accuracy {float} vs Keras's {recorded}"
    );

    let options = CalibrationOptions::default();
    let q_keras = keras::convert(&from_keras, &data.train, &options).unwrap();
    let q_h5 = keras::convert(&from_h5, &data.train, &options).unwrap();
    assert_eq!(
        q_keras, q_h5,
        "{name}: quantized .keras and .h5 models differ"
    );
    let quant = accuracy(&fixnet_outputs(&q_keras, data), &data.labels);
    println!("{name}: fixnet int8 {quant:.4} ({} bytes)", q_keras.len());
    assert!(
        (quant - float).abs() <= QUANT_TOLERANCE + 1e-9,
        "{name}: int8 accuracy {quant} vs float {float}"
    );

    // Calibrated on the same 200 digits as TFLite's converter was (the fixtures'
    // representative dataset), the model is TFLite's int8 model: every output on every test
    // digit equals LiteRT's reference kernels' one.
    let tflite_like = CalibrationOptions {
        max_images: 200,
        method: keras::RangeMethod::MinMax,
    };
    let q200 = keras::convert(&from_h5, &data.train, &tflite_like).unwrap();
    let ours = fixnet_outputs(&q200, data);
    let litert =
        read_npy_i8_rows(&repo().join(format!("tests/fixtures/litert/{name}_int8_ref.npy")));
    assert_eq!(ours.len(), litert.len());
    let differing = ours.iter().zip(&litert).filter(|(a, b)| a != b).count();
    assert_eq!(
        differing,
        0,
        "{name}: {differing} of {} digits differ from LiteRT's int8 outputs",
        ours.len()
    );
}

#[test]
fn seed_cnn_imports_runs_and_quantizes() {
    check_model("seed_cnn");
}

#[test]
fn mlp_imports_runs_and_quantizes() {
    check_model("mlp");
}

#[test]
fn strided_cnn_imports_runs_and_quantizes() {
    check_model("strided_cnn");
}

#[test]
fn layouts_follow_fixnet_conventions() {
    let m = keras::load(fixture("strided_cnn.keras")).unwrap();
    let kinds: Vec<&str> = m
        .layers
        .iter()
        .map(|l| match l.op {
            keras::FloatOp::Conv2d { .. } => "conv",
            keras::FloatOp::DepthwiseConv2d { .. } => "dw",
            keras::FloatOp::MaxPool(_) => "max",
            keras::FloatOp::AvgPool(_) => "avg",
            keras::FloatOp::Reshape => "reshape",
            keras::FloatOp::Dense { .. } => "dense",
            keras::FloatOp::Softmax => "softmax",
            keras::FloatOp::Add { .. } => "add",
            keras::FloatOp::Pad { .. } => "pad",
        })
        .collect();
    assert_eq!(
        kinds,
        ["conv", "dw", "avg", "conv", "max", "reshape", "dense", "softmax"]
    );
    assert_eq!(m.input, fixnet::Shape::new(28, 28, 1));
    let shapes: Vec<_> = m.layers.iter().map(|l| l.output).collect();
    assert_eq!(shapes[0], fixnet::Shape::new(14, 14, 16));
    assert_eq!(shapes[5], fixnet::Shape::new(1, 1, 288));
    // A Sequential model is a chain: each op reads the one before it, the last is the output.
    let inputs: Vec<_> = m.layers.iter().map(|l| l.inputs.clone()).collect();
    assert_eq!(inputs, (0..8).map(|i| vec![i]).collect::<Vec<_>>());
    assert_eq!(m.output, 8);
}

#[test]
fn convert_file_writes_a_loadable_model() {
    let out = temp_path("strided.fxn");
    let n = keras::convert_file(
        fixture("strided_cnn.h5"),
        repo().join("data/mnist/train-images-idx3-ubyte.gz"),
        &out,
        &CalibrationOptions {
            max_images: 200,
            ..Default::default()
        },
    )
    .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).ok();
    assert_eq!(bytes.len(), n);
    assert!(bytes.starts_with(b"FXNM"));
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("fixnet-keras-{}-{name}", std::process::id()))
}

/// Copies a `.keras` archive, passing `config.json` through `edit`.
fn edited_archive(src: &Path, edit: impl Fn(String) -> String) -> Vec<u8> {
    let bytes = std::fs::read(src).unwrap();
    let mut input = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..input.len() {
        let mut file = input.by_index(i).unwrap();
        let name = file.name().to_string();
        let mut content = Vec::new();
        file.read_to_end(&mut content).unwrap();
        if name == "config.json" {
            content = edit(String::from_utf8(content).unwrap()).into_bytes();
        }
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        out.start_file(name, options).unwrap();
        out.write_all(&content).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn unsupported_layer_is_named_with_its_index() {
    let bytes = edited_archive(&fixture("strided_cnn.keras"), |c| {
        c.replacen("\"DepthwiseConv2D\"", "\"SeparableConv2D\"", 1)
    });
    let err = keras::load_bytes(&bytes).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, KerasError::Unsupported { index: 2, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("layer 2 'depthwise_conv2d' (SeparableConv2D)"),
        "{msg}"
    );
}

#[test]
fn unsupported_activation_is_named() {
    let bytes = edited_archive(&fixture("mlp.keras"), |c| {
        c.replacen("\"relu\"", "\"tanh\"", 1)
    });
    let msg = keras::load_bytes(&bytes).unwrap_err().to_string();
    assert!(msg.contains("activation 'tanh'"), "{msg}");
    assert!(msg.contains("(Dense)"), "{msg}");
}

#[test]
fn edited_archive_round_trips_when_unchanged() {
    // Guards the two tests above: the copy itself must load.
    let bytes = edited_archive(&fixture("mlp.keras"), |c| c);
    let copy = keras::load_bytes(&bytes).unwrap();
    assert_eq!(copy, keras::load(fixture("mlp.keras")).unwrap());
}

#[test]
fn truncated_files_are_errors_not_panics() {
    for name in ["strided_cnn.keras", "strided_cnn.h5"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for keep in [8, 100, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            let result = keras::load_bytes(&bytes[..keep]);
            assert!(result.is_err(), "{name} cut to {keep} bytes loaded");
        }
    }
    let bytes = std::fs::read(fixture("strided_cnn.keras")).unwrap();
    let path = temp_path("truncated.keras");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = keras::load(&path).unwrap_err();
    std::fs::remove_file(&path).ok();
    assert!(matches!(err, KerasError::Archive(_)), "{err}");
}

#[test]
fn missing_and_foreign_files_are_errors() {
    let missing = repo().join("tests/fixtures/models/no_such_model.keras");
    let err = keras::load(&missing).unwrap_err();
    assert!(matches!(err, KerasError::Io { .. }), "{err}");
    assert!(err.to_string().contains("no_such_model.keras"), "{err}");

    let err = keras::load(repo().join("tests/fixtures/fixtures.json")).unwrap_err();
    assert!(matches!(err, KerasError::UnknownFormat(_)), "{err}");

    let err = keras::load(fixture("strided_cnn_int8.tflite")).unwrap_err();
    assert!(matches!(err, KerasError::UnknownFormat(_)), "{err}");
}

#[test]
fn calibration_images_must_fit_the_input() {
    let m = keras::load(fixture("mlp.h5")).unwrap();
    let small = Images {
        rows: 8,
        cols: 8,
        pixels: vec![0; 64 * 3],
    };
    let err = keras::calibrate(&m, &small, &CalibrationOptions::default()).unwrap_err();
    assert!(matches!(err, KerasError::Calibration(_)), "{err}");
    let none = Images {
        rows: 28,
        cols: 28,
        pixels: vec![],
    };
    assert!(keras::calibrate(&m, &none, &CalibrationOptions::default()).is_err());
}

#[test]
fn asymmetric_quantization_covers_the_range_and_zero() {
    let (scale, zp) = keras::asymmetric(0.0, 6.0);
    assert!((scale - 6.0 / 255.0).abs() < 1e-9);
    assert_eq!(zp, -128);
    // A range above zero is widened down to it.
    let (scale, zp) = keras::asymmetric(1.0, 2.0);
    assert!((scale - 2.0 / 255.0).abs() < 1e-9);
    assert_eq!(zp, -128);
    let (_, zp) = keras::asymmetric(-3.0, -1.0);
    assert_eq!(zp, 127);
    for (lo, hi) in [(-1.0f32, 1.0f32), (-0.3, 7.9), (-12.0, 0.5), (0.0, 0.0)] {
        let (scale, zp) = keras::asymmetric(lo, hi);
        let real = |q: i32| (q - zp) as f32 * scale;
        assert!((-128..=127).contains(&zp));
        assert!(
            real(-128) <= lo + scale && real(127) >= hi - scale,
            "{lo}..{hi}"
        );
    }
}
