//! The `fixnet` binary on models that are not digit classifiers: `run`, `eval` and
//! `convert --calibrate` with `.npy` inputs, `predict` on colour pictures, and the errors of
//! each, against the same inputs run through `fixnet::Interpreter` in this process.
//!
//! The models are MLPerf Tiny's keyword spotter (DS-CNN, input [1, 49, 10, 1] MFCC, 12
//! classes) and anomaly-detection autoencoder (10 FC layers, [1, 640] in and out); their
//! inputs are random, made here (bit-exactness needs no data set).

mod support;

use fixnet_tools::fxn::ModelBytes;
use fixnet_tools::{idx, npy};
use image::{ImageFormat, Rgb, RgbImage};
use npyz::WriterBuilder;
use std::path::{Path, PathBuf};
use support::{assert_one_line_error, fixnet, root, scratch};

const KWS: &str = "tests/fixtures/mlperf/kws_ref_model.tflite";
const AD01: &str = "tests/fixtures/mlperf/ad01_int8.tflite";

/// xorshift64*: reproducible inputs without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn i8(&mut self) -> i8 {
        (self.next() >> 56) as u8 as i8
    }

    /// Uniform in `[lo, hi)`.
    fn f32(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes a C-order array of any numpy type npyz knows.
fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    let mut out = Vec::new();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut out)
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
    std::fs::write(path, out).unwrap();
}

fn convert(model: &str, dir: &Path) -> PathBuf {
    let name = Path::new(model).file_stem().unwrap().to_str().unwrap();
    let out = dir.join(format!("{name}.fxn"));
    let run = fixnet(&["convert", model, "-o", s(&out)]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    out
}

/// The model's input and output quantization: `(scale, zero point)` of each.
fn quantization(fxn: &Path) -> ((f32, i32), (f32, i32)) {
    let stored = ModelBytes::read(fxn).unwrap();
    let model = stored.model().unwrap();
    let (i, o) = (model.input().unwrap(), model.output().unwrap());
    ((i.scale, i.zero_point), (o.scale, o.zero_point))
}

/// The int8 outputs of `samples` (each the input's element count long) run through
/// `fixnet::Interpreter` in this process.
fn interpret(fxn: &Path, samples: &[i8]) -> Vec<i8> {
    let stored = ModelBytes::read(fxn).unwrap();
    let model = stored.model().unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = fixnet::Interpreter::new(&model, &mut arena).unwrap();
    let per = interp.input().len();
    let mut out = Vec::new();
    for sample in samples.chunks_exact(per) {
        interp.input_mut().copy_from_slice(sample);
        interp.invoke().unwrap();
        out.extend_from_slice(interp.output());
    }
    out
}

/// `fixnet run --model fxn --inputs x --out y [extra…]`, the decoded output array.
fn run(fxn: &Path, x: &Path, y: &Path, extra: &[&str]) -> npy::Array {
    let mut args = vec!["run", "--model", s(fxn), "--inputs", s(x), "--out", s(y)];
    args.extend_from_slice(extra);
    let r = fixnet(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    npy::decode(&std::fs::read(y).unwrap()).unwrap()
}

fn int8(array: npy::Array) -> (Vec<usize>, Vec<i8>) {
    match array.values {
        npy::Values::Int8(v) => (array.shape, v),
        other => panic!("expected int8, got {other:?}"),
    }
}

#[test]
fn run_int8_inputs_matches_the_interpreter() {
    let dir = scratch("npy-run");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    // KWS in both accepted shapes, the autoencoder flat.
    for (model, n, dims, outputs) in [
        (KWS, 10usize, vec![49u64, 10, 1], 12usize),
        (AD01, 16, vec![640], 640),
    ] {
        let fxn = convert(model, &dir);
        let per: u64 = dims.iter().product();
        let x: Vec<i8> = (0..n as u64 * per).map(|_| rng.i8()).collect();
        let mut shape = vec![n as u64];
        shape.extend_from_slice(&dims);
        let xp = dir.join("x.npy");
        write_npy(&xp, &shape, &x);
        let (shape, got) = int8(run(&fxn, &xp, &dir.join("y.npy"), &[]));
        assert_eq!(shape, vec![n, outputs]);
        let want = interpret(&fxn, &x);
        assert!(
            got == want,
            "{model}: fixnet run differs from the interpreter"
        );
        // Outputs that depend on the input: not every row is the same.
        assert!(got.chunks(outputs).any(|r| r != &got[..outputs]), "{model}");

        let flat = dir.join("x_flat.npy");
        write_npy(&flat, &[n as u64, per], &x);
        let (_, got_flat) = int8(run(&fxn, &flat, &dir.join("y2.npy"), &[]));
        assert_eq!(
            got_flat, got,
            "{model}: (N, elements) differs from (N, …dims)"
        );

        // --limit keeps the first rows.
        let (shape, limited) = int8(run(&fxn, &xp, &dir.join("y3.npy"), &["--limit", "3"]));
        assert_eq!(shape, vec![3, outputs]);
        assert_eq!(limited, got[..3 * outputs]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn float_inputs_are_quantized_with_the_input_scale_and_zero_point() {
    let dir = scratch("npy-float");
    let fxn = convert(KWS, &dir);
    let ((scale, zp), _) = quantization(&fxn);
    let per = 490;
    let n = 6;
    let mut rng = Rng(42);
    // Each float lies within 0.4 steps of a random int8 value, so it quantizes to that value;
    // the last sample is far outside the range and must clamp.
    let mut q: Vec<i8> = (0..(n - 1) * per).map(|_| rng.i8()).collect();
    let mut x: Vec<f32> = q
        .iter()
        .map(|&v| {
            let offset = f64::from(rng.f32(-0.4, 0.4));
            ((f64::from(i32::from(v) - zp) + offset) * f64::from(scale)) as f32
        })
        .collect();
    for i in 0..per {
        let big = if i % 2 == 0 { 1e6f32 } else { -1e6 };
        x.push(big);
        q.push(if big > 0.0 { 127 } else { -128 });
    }
    let xq = dir.join("xq.npy");
    let xf = dir.join("xf.npy");
    write_npy(&xq, &[n as u64, 49, 10, 1], &q);
    write_npy(&xf, &[n as u64, 49, 10, 1], &x);
    let from_int8 = run(&fxn, &xq, &dir.join("yq.npy"), &[]);
    let from_float = run(&fxn, &xf, &dir.join("yf.npy"), &[]);
    assert_eq!(from_float, from_int8);
    assert_eq!(int8(from_float).1, interpret(&fxn, &q));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn dequantize_writes_real_outputs() {
    let dir = scratch("npy-deq");
    let mut rng = Rng(7);
    for (model, per) in [(KWS, 490u64), (AD01, 640)] {
        let fxn = convert(model, &dir);
        let (_, (scale, zp)) = quantization(&fxn);
        let x: Vec<i8> = (0..4 * per).map(|_| rng.i8()).collect();
        let xp = dir.join("x.npy");
        write_npy(&xp, &[4, per], &x);
        let (shape, q) = int8(run(&fxn, &xp, &dir.join("q.npy"), &[]));
        let real = run(&fxn, &xp, &dir.join("r.npy"), &["--dequantize"]);
        assert_eq!(real.shape, shape);
        let npy::Values::Float32(real) = real.values else {
            panic!("{model}: --dequantize must write float32");
        };
        let want: Vec<f32> = q
            .iter()
            .map(|&v| (i32::from(v) - zp) as f32 * scale)
            .collect();
        assert_eq!(real, want, "{model}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Index of the first largest value.
fn argmax(row: &[i8]) -> usize {
    let best = row.iter().max().unwrap();
    row.iter().position(|v| v == best).unwrap()
}

fn eval_json(args: &[&str]) -> serde_json::Value {
    let r = fixnet(args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(r.stdout.trim()).unwrap()
}

#[test]
fn eval_scores_npy_inputs_against_npy_labels() {
    let dir = scratch("npy-eval");
    let fxn = convert(KWS, &dir);
    let n = 24;
    let mut rng = Rng(2024);
    let x: Vec<i8> = (0..n * 490).map(|_| rng.i8()).collect();
    let xp = dir.join("x.npy");
    write_npy(&xp, &[n as u64, 49, 10, 1], &x);
    let out = interpret(&fxn, &x);
    let predicted: Vec<usize> = out.chunks(12).map(argmax).collect();

    // The model's own predictions as labels, in several integer types: 100 %.
    let labels = dir.join("y.npy");
    let as_i64: Vec<i64> = predicted.iter().map(|&p| p as i64).collect();
    for dtype in ["int64", "uint8", "int32"] {
        match dtype {
            "int64" => write_npy(&labels, &[n as u64], &as_i64),
            "uint8" => {
                let v: Vec<u8> = predicted.iter().map(|&p| p as u8).collect();
                write_npy(&labels, &[n as u64], &v)
            }
            _ => {
                let v: Vec<i32> = predicted.iter().map(|&p| p as i32).collect();
                write_npy(&labels, &[n as u64], &v)
            }
        }
        let v = eval_json(&[
            "eval",
            "--model",
            s(&fxn),
            "--inputs",
            s(&xp),
            "--labels",
            s(&labels),
            "--json",
        ]);
        assert_eq!(v["images"], n, "{dtype}");
        assert_eq!(v["correct"], n);
        assert_eq!(v["accuracy"], 1.0);
        let confusion: Vec<Vec<usize>> = serde_json::from_value(v["confusion"].clone()).unwrap();
        assert_eq!(confusion.len(), 12);
        for (c, row) in confusion.iter().enumerate() {
            let want = predicted.iter().filter(|&&p| p == c).count();
            assert_eq!(row[c], want, "class {c}");
        }
    }

    // One label changed: one miss, in the right cell.
    let mut wrong = as_i64.clone();
    wrong[5] = (wrong[5] + 1) % 12;
    write_npy(&labels, &[n as u64], &wrong);
    let v = eval_json(&[
        "eval",
        "--model",
        s(&fxn),
        "--inputs",
        s(&xp),
        "--labels",
        s(&labels),
        "--json",
    ]);
    assert_eq!(v["correct"], n - 1);
    assert_eq!(v["confusion"][wrong[5] as usize][predicted[5]], 1);

    // The text report and --limit.
    let r = fixnet(&[
        "eval",
        "--model",
        s(&fxn),
        "--inputs",
        s(&xp),
        "--labels",
        s(&labels),
        "--limit",
        "5",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("5 inputs from"), "{}", r.stdout);
    assert!(r.stdout.contains("(5/5 correct)"), "{}", r.stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

/// IDX images with `.npy` labels: the same score as with the IDX labels.
#[test]
fn eval_takes_npy_labels_with_idx_images() {
    let dir = scratch("npy-idx");
    let fxn = convert("tests/fixtures/models/mlp_int8.tflite", &dir);
    let images = "data/mnist/test-images-idx3-ubyte.gz";
    let idx_labels = "data/mnist/test-labels-idx1-ubyte.gz";
    let labels = idx::read_labels(&root().join(idx_labels)).unwrap();
    let as_u16: Vec<u16> = labels.iter().map(|&l| u16::from(l)).collect();
    let npy_labels = dir.join("labels.npy");
    write_npy(&npy_labels, &[labels.len() as u64], &as_u16);
    let args = |l: &str| {
        eval_json(&[
            "eval",
            "--model",
            s(&fxn),
            "--images",
            images,
            "--labels",
            l,
            "--json",
        ])
    };
    let (a, b) = (args(idx_labels), args(s(&npy_labels)));
    assert_eq!(a["correct"], b["correct"]);
    assert_eq!(a["confusion"], b["confusion"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `convert --calibrate X.npy`: float32 pixel / 255 gives exactly the model IDX calibration
/// gives, and other data sets the input's quantization to its own range.
#[test]
fn convert_calibrates_on_float_npy() {
    let dir = scratch("npy-calib");
    let keras = "tests/fixtures/models/strided_cnn.keras";
    let images_path = "data/mnist/test-images-idx3-ubyte.gz";
    let from_idx = dir.join("idx.fxn");
    let r = fixnet(&[
        "convert",
        keras,
        "--calibrate",
        images_path,
        "--calibration-count",
        "200",
        "-o",
        s(&from_idx),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let mut images = idx::read_images(&root().join(images_path)).unwrap();
    images.truncate(200);
    let x: Vec<f32> = images
        .pixels
        .iter()
        .map(|&p| f32::from(p) / 255.0)
        .collect();
    let xp = dir.join("pixels.npy");
    write_npy(&xp, &[200, 28, 28, 1], &x);
    let from_npy = dir.join("npy.fxn");
    let r = fixnet(&["convert", keras, "--calibrate", s(&xp), "-o", s(&from_npy)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::read(&from_idx).unwrap() == std::fs::read(&from_npy).unwrap(),
        "the same calibration data as IDX and as float32 .npy gave different models"
    );

    // Data in [-2, 3] (both ends present), flat (N, 784): scale 5/255 and zero point
    // round(-128 + 2 / (5/255)) = -128 + 102 = -26.
    let mut rng = Rng(99);
    let mut x: Vec<f32> = (0..64 * 784).map(|_| rng.f32(-2.0, 3.0)).collect();
    x[10] = -2.0;
    x[20] = 3.0;
    let xp = dir.join("wide.npy");
    write_npy(&xp, &[64, 784], &x);
    let wide = dir.join("wide.fxn");
    let r = fixnet(&["convert", keras, "--calibrate", s(&xp), "-o", s(&wide)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let ((scale, zp), _) = quantization(&wide);
    assert!((scale - 5.0 / 255.0).abs() < 1e-7, "{scale}");
    assert_eq!(zp, -26);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A 3-channel model: [1, 4, 4, 3] → reshape [1, 48] → fully connected whose class `c` sums
/// channel `c` of every pixel, so the dominant colour wins.
fn colour_model() -> Vec<u8> {
    use support::{tflite, F, O, T};
    let weights: Vec<i8> = (0..3 * 48)
        .map(|k| i8::from((k % 48) % 3 == k / 48))
        .collect();
    let tensors = vec![
        T::act("rgb", &[1, 4, 4, 3], 1.0 / 255.0, -128),
        T::int32("shape", &[1, 48]),
        T::act("flat", &[1, 48], 1.0 / 255.0, -128),
        T::weights("w", &[3, 48], &weights, &[0.01], 0),
        T::int32("b", &[0, 0, 0]),
        T::act("colour", &[1, 3], 0.001, -128),
    ];
    let ops = vec![
        O {
            code: 22,
            inputs: vec![0, 1],
            outputs: vec![2],
            options: None,
        },
        O {
            code: 9,
            inputs: vec![2, 3, 4],
            outputs: vec![5],
            options: Some((8, vec![F::I8(0, 0)])),
        },
    ];
    tflite(&tensors, &ops, 0, 5)
}

#[test]
fn predict_resizes_colour_pictures_for_a_three_channel_model() {
    let dir = scratch("npy-colour");
    let tfl = dir.join("colour.tflite");
    std::fs::write(&tfl, colour_model()).unwrap();
    let fxn = convert(s(&tfl), &dir);
    // Odd sizes, none 4x4, and a JPEG: the dominant channel decides the class.
    let pictures = [
        ("red", 37, 23, [250, 10, 20], ImageFormat::Png, 0),
        ("green", 5, 90, [30, 200, 40], ImageFormat::Png, 1),
        ("blue", 64, 64, [10, 20, 230], ImageFormat::Jpeg, 2),
        ("olive", 3, 3, [120, 140, 0], ImageFormat::Png, 1),
    ];
    let mut args = vec!["predict".to_string(), "--model".into(), s(&fxn).into()];
    for (name, w, h, rgb, format, _) in &pictures {
        let ext = if *format == ImageFormat::Png {
            "png"
        } else {
            "jpg"
        };
        let path = dir.join(format!("{name}.{ext}"));
        RgbImage::from_pixel(*w, *h, Rgb(*rgb))
            .save_with_format(&path, *format)
            .unwrap();
        args.push(s(&path).into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = fixnet(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), pictures.len(), "{}", r.stdout);
    for (line, (name, .., class)) in lines.iter().zip(&pictures) {
        assert!(line.contains(&format!("{name}.")), "{line}");
        assert!(
            line.contains(&format!(": {class}  (top 3: {class} ")),
            "{line}"
        );
    }
    // A solid colour is one input value per channel: red 250 → q = 250 - 128, scored
    // 16 pixels · 0.01 · 250/255 = 0.157, shown as the dequantized output.
    assert!(lines[0].contains("top 3: 0 0.157"), "{}", lines[0]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// MLPerf Tiny's CIFAR-10 ResNet-8 ([1, 32, 32, 3]): `predict` on a solid-colour picture
/// (any size resizes to the same colour) prints exactly what `run --dequantize` computes for
/// that colour given as float32 `pixel / 255` inputs.
#[test]
fn predict_on_a_real_colour_model_agrees_with_run() {
    let dir = scratch("npy-resnet");
    let fxn = convert("tests/fixtures/mlperf/pretrainedResnet_quant.tflite", &dir);
    let colours = [
        [200u8, 30, 40],
        [20, 180, 60],
        [90, 90, 220],
        [255, 255, 255],
    ];
    let mut x = Vec::new();
    let mut args = vec!["predict".to_string(), "--model".into(), s(&fxn).into()];
    for (i, rgb) in colours.iter().enumerate() {
        let path = dir.join(format!("colour{i}.png"));
        RgbImage::from_pixel(50 + 7 * i as u32, 40, Rgb(*rgb))
            .save(&path)
            .unwrap();
        args.push(s(&path).into());
        for _ in 0..32 * 32 {
            x.extend(rgb.iter().map(|&c| f32::from(c) / 255.0));
        }
    }
    let xp = dir.join("x.npy");
    write_npy(&xp, &[colours.len() as u64, 32, 32, 3], &x);
    let scores = run(&fxn, &xp, &dir.join("y.npy"), &["--dequantize"]);
    assert_eq!(scores.shape, vec![colours.len(), 10]);
    let npy::Values::Float32(scores) = scores.values else {
        panic!("float32 expected");
    };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = fixnet(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), colours.len(), "{}", r.stdout);
    for (line, row) in lines.iter().zip(scores.chunks(10)) {
        // Ranked as predict ranks: by score, the first of equal scores first.
        let mut ranked: Vec<usize> = (0..10).collect();
        ranked.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let top: Vec<String> = ranked[..3]
            .iter()
            .map(|&c| format!("{c} {:.3}", row[c]))
            .collect();
        let best = row.iter().copied().fold(f32::MIN, f32::max);
        let class = row.iter().position(|&v| v == best).unwrap();
        let want = format!(": {class}  (top 3: {})", top.join(", "));
        assert!(line.ends_with(&want), "{line} vs {want}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn npy_errors_are_one_line() {
    let dir = scratch("npy-errors");
    let d = |name: &str| dir.join(name);
    let fxn = convert(KWS, &dir);
    let fxn = s(&fxn);
    let run_on = |x: &Path| {
        fixnet(&[
            "run",
            "--model",
            fxn,
            "--inputs",
            s(x),
            "--out",
            s(&d("y.npy")),
        ])
    };

    write_npy(&d("f64.npy"), &[2, 490], &vec![0.5f64; 980]);
    assert_one_line_error(&run_on(&d("f64.npy")), "float64");
    write_npy(&d("i16.npy"), &[2, 490], &vec![1i16; 980]);
    assert_one_line_error(&run_on(&d("i16.npy")), "other than int8");
    write_npy(&d("short.npy"), &[2, 48, 10, 1], &vec![0i8; 960]);
    assert_one_line_error(&run_on(&d("short.npy")), "wrong element count");
    write_npy(&d("swapped.npy"), &[2, 10, 49, 1], &vec![0i8; 980]);
    assert_one_line_error(&run_on(&d("swapped.npy")), "(2, 49, 10, 1) or (2, 490)");
    let mut nan = vec![0.0f32; 980];
    nan[700] = f32::NAN;
    write_npy(&d("nan.npy"), &[2, 490], &nan);
    assert_one_line_error(&run_on(&d("nan.npy")), "value 700 is NaN");
    std::fs::write(d("text.npy"), "0 1 2 3\n").unwrap();
    assert_one_line_error(&run_on(&d("text.npy")), "not a .npy file");
    assert_one_line_error(&run_on(&d("missing.npy")), "cannot read");
    assert_one_line_error(
        &run_on(&root().join("data/mnist/test-images-idx3-ubyte.gz")),
        "not a .npy file",
    );
    let good = npy::encode_i8(&[2, 490], &[3; 980]).unwrap();
    std::fs::write(d("cut.npy"), &good[..good.len() - 10]).unwrap();
    let r = run_on(&d("cut.npy"));
    assert_one_line_error(&r, "cut.npy");
    // The fuzz-hardening header check still answers first.
    let header = b"{'descr': '|i1', 'fortran_order': False, 'shape': ((2, 490),), }\n";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0; 980]);
    std::fs::write(d("nested.npy"), &bytes).unwrap();
    assert_one_line_error(&run_on(&d("nested.npy")), "nested brackets");

    // An .npy given as IDX images, both sources or none.
    write_npy(&d("x.npy"), &[3, 490], &vec![1i8; 1470]);
    assert_one_line_error(
        &fixnet(&[
            "run",
            "--model",
            fxn,
            "--images",
            s(&d("x.npy")),
            "--out",
            s(&d("y.npy")),
        ]),
        "--inputs",
    );
    assert_one_line_error(
        &fixnet(&[
            "run",
            "--model",
            fxn,
            "--images",
            "data/mnist/test-images-idx3-ubyte.gz",
            "--inputs",
            s(&d("x.npy")),
            "--out",
            s(&d("y.npy")),
        ]),
        "cannot be used with",
    );
    assert_one_line_error(
        &fixnet(&["run", "--model", fxn, "--out", s(&d("y.npy"))]),
        "required",
    );
    assert_one_line_error(
        &fixnet(&[
            "run",
            "--model",
            fxn,
            "--inputs",
            s(&d("x.npy")),
            "--out",
            "/nonexistent/dir/y.npy",
        ]),
        "cannot write",
    );

    // Labels.
    let eval = |labels: &Path| {
        fixnet(&[
            "eval",
            "--model",
            fxn,
            "--inputs",
            s(&d("x.npy")),
            "--labels",
            s(labels),
        ])
    };
    write_npy(&d("two.npy"), &[2], &[1i64, 2]);
    assert_one_line_error(&eval(&d("two.npy")), "3 inputs but 2 labels");
    write_npy(&d("neg.npy"), &[3], &[1i32, 0, -1]);
    assert_one_line_error(&eval(&d("neg.npy")), "label 2 is -1");
    write_npy(&d("big.npy"), &[3], &[1u8, 12, 0]);
    assert_one_line_error(
        &eval(&d("big.npy")),
        "label 1 is 12, outside the model's 12 classes",
    );
    write_npy(&d("float.npy"), &[3], &[1.0f32, 0.0, 2.0]);
    assert_one_line_error(&eval(&d("float.npy")), "integers");
    write_npy(&d("col.npy"), &[3, 1], &[1i64, 0, 2]);
    assert_one_line_error(&eval(&d("col.npy")), "shape (N,)");

    // Calibration data: float32 of the Keras model's input.
    let keras = "tests/fixtures/models/mlp.keras";
    let calibrate =
        |x: &Path| fixnet(&["convert", keras, "--calibrate", s(x), "-o", s(&d("c.fxn"))]);
    write_npy(&d("c_i8.npy"), &[2, 784], &vec![1i8; 1568]);
    assert_one_line_error(&calibrate(&d("c_i8.npy")), "must be float32");
    write_npy(&d("c_short.npy"), &[2, 780], &vec![0.5f32; 1560]);
    assert_one_line_error(&calibrate(&d("c_short.npy")), "wrong element count");
    write_npy(&d("c_none.npy"), &[0, 784], &Vec::<f32>::new());
    assert_one_line_error(&calibrate(&d("c_none.npy")), "no calibration");
    assert!(
        !d("c.fxn").exists(),
        "a failed convert must not leave an output"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
