//! The `fixnet` binary end to end: convert → inspect → eval / run / predict on the fixture
//! models, and every error path answering with one `error: …` line and a non-zero exit.

mod support;

use fixnet_tools::{idx, npy};
use image::{GrayImage, ImageFormat, Luma};
use std::path::Path;
use support::{assert_one_line_error, fixnet, root, scratch};

const TEST_IMAGES: &str = "data/mnist/test-images-idx3-ubyte.gz";
const TEST_LABELS: &str = "data/mnist/test-labels-idx1-ubyte.gz";

fn convert(model: &str, dir: &Path) -> String {
    let out = dir.join(format!("{model}.fxn"));
    let out = out.to_str().unwrap().to_string();
    let input = format!("tests/fixtures/models/{model}_int8.tflite");
    let run = fixnet(&["convert", &input, "-o", &out]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("bytes of flash"), "{}", run.stdout);
    out
}

/// Accuracy LiteRT's reference kernels reach, from the fixtures' record.
fn litert_accuracy(model: &str) -> f64 {
    let text = std::fs::read_to_string(root().join("tests/fixtures/fixtures.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["models"][model]["accuracy"]["tflite_int8_builtin_ref"]
        .as_f64()
        .unwrap()
}

#[test]
fn convert_inspect_eval_each_fixture() {
    let dir = scratch("eval");
    for model in ["mlp", "seed_cnn", "strided_cnn"] {
        let fxn = convert(model, &dir);
        let run = fixnet(&["inspect", &fxn]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        for needle in [
            "params",
            "MACs",
            "flash:",
            "arena:",
            "CRC-32: ok",
            "FullyConnected",
        ] {
            assert!(
                run.stdout.contains(needle),
                "{model}: {needle} in {}",
                run.stdout
            );
        }
        let run = fixnet(&[
            "eval",
            "--model",
            &fxn,
            "--images",
            TEST_IMAGES,
            "--labels",
            TEST_LABELS,
            "--json",
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
        assert_eq!(v["images"], 2000);
        let confusion: Vec<Vec<u64>> = serde_json::from_value(v["confusion"].clone()).unwrap();
        assert_eq!(confusion.len(), 10);
        assert_eq!(confusion.iter().flatten().sum::<u64>(), 2000);
        // Bit-exact outputs give exactly LiteRT's accuracy.
        let accuracy = v["accuracy"].as_f64().unwrap();
        assert!(
            (accuracy - litert_accuracy(model)).abs() < 1e-9,
            "{model}: {accuracy} vs LiteRT {}",
            litert_accuracy(model)
        );
        println!("{model}: accuracy {accuracy}");
    }
}

/// The Keras path of `convert`: a float .keras and .h5 quantized with calibration images stay
/// within 0.3 points of the float model's recorded accuracy.
#[test]
fn convert_float_keras_with_calibration() {
    let dir = scratch("keras");
    let text = std::fs::read_to_string(root().join("tests/fixtures/fixtures.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let float = json["models"]["strided_cnn"]["accuracy"]["keras_float"]
        .as_f64()
        .unwrap();
    for ext in ["keras", "h5"] {
        let out = dir.join(format!("strided_cnn_{ext}.fxn"));
        let out = out.to_str().unwrap();
        let input = format!("tests/fixtures/models/strided_cnn.{ext}");
        let run = fixnet(&[
            "convert",
            &input,
            "--calibrate",
            "data/mnist/train-images-idx3-ubyte.gz",
            "-o",
            out,
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let run = fixnet(&[
            "eval",
            "--model",
            out,
            "--images",
            TEST_IMAGES,
            "--labels",
            TEST_LABELS,
            "--json",
        ]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let v: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
        let accuracy = v["accuracy"].as_f64().unwrap();
        println!("strided_cnn.{ext}: float {float}, fixnet int8 {accuracy}");
        assert!(
            accuracy >= float - 0.003,
            "{ext}: {accuracy} is more than 0.3 points below float {float}"
        );
    }
}

#[test]
fn eval_text_report_and_limit() {
    let dir = scratch("text");
    let fxn = convert("mlp", &dir);
    let run = fixnet(&[
        "eval",
        "--model",
        &fxn,
        "--images",
        TEST_IMAGES,
        "--labels",
        TEST_LABELS,
        "--limit",
        "50",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("/50 correct"), "{}", run.stdout);
    assert!(run.stdout.contains("confusion matrix"), "{}", run.stdout);
    assert!(run.stdout.contains("images/s"), "{}", run.stdout);
    // Not a terminal: no progress bar on stderr.
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn run_writes_litert_identical_npy() {
    let dir = scratch("run");
    let fxn = convert("mlp", &dir);
    let out = dir.join("out.npy");
    let run = fixnet(&[
        "run",
        "--model",
        &fxn,
        "--images",
        TEST_IMAGES,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (shape, got) = npy::decode_i8(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(shape, vec![2000, 10]);
    let want = std::fs::read(root().join("tests/fixtures/litert/mlp_int8_ref.npy")).unwrap();
    let (_, want) = npy::decode_i8(&want).unwrap();
    assert!(got == want, "fixnet run differs from LiteRT");
}

/// Renders MNIST pixels (white on black) as a picture: optionally inverted, scaled by
/// nearest neighbour to `w` x `h` and framed by a margin of background.
fn picture(pixels: &[u8], invert: bool, w: u32, h: u32) -> GrayImage {
    let margin = w / 6;
    GrayImage::from_fn(w + 2 * margin, h + 2 * margin, |x, y| {
        let inside = x >= margin && y >= margin && x < w + margin && y < h + margin;
        let v = if inside {
            let sx = ((x - margin) * 28 / w) as usize;
            let sy = ((y - margin) * 28 / h) as usize;
            pixels[sy * 28 + sx]
        } else {
            0
        };
        Luma([if invert { 255 - v } else { v }])
    })
}

#[test]
fn predict_reads_pictures_of_any_size_and_polarity() {
    let dir = scratch("predict");
    let fxn = convert("seed_cnn", &dir);
    let images = idx::read_images(&root().join(TEST_IMAGES)).unwrap();
    let labels = idx::read_labels(&root().join(TEST_LABELS)).unwrap();
    let mut args = vec!["predict".to_string(), "--model".into(), fxn];
    let mut expected = Vec::new();
    for (i, &label) in labels.iter().enumerate().take(8) {
        let px = images.image(i);
        let variants = [
            ("plain", picture(px, false, 28, 28), ImageFormat::Png),
            (
                "inverted-large",
                picture(px, true, 150, 120),
                ImageFormat::Png,
            ),
            ("jpeg", picture(px, true, 64, 64), ImageFormat::Jpeg),
        ];
        for (name, img, format) in variants {
            let ext = if format == ImageFormat::Png {
                "png"
            } else {
                "jpg"
            };
            let path = dir.join(format!("digit{i}-{name}.{ext}"));
            img.save_with_format(&path, format).unwrap();
            args.push(path.to_str().unwrap().to_string());
            expected.push((path, label));
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = fixnet(&args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), expected.len(), "{}", run.stdout);
    for (line, (path, label)) in lines.iter().zip(&expected) {
        let prefix = format!("{}: {label} ", path.display());
        assert!(line.starts_with(&prefix), "expected {label}: {line}");
        assert!(line.contains("top 3:"), "{line}");
    }
}

#[test]
fn error_paths_are_one_line() {
    let dir = scratch("errors");
    let d = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let fxn = convert("mlp", &dir);

    assert_one_line_error(
        &fixnet(&["convert", "missing.tflite", "-o", &d("x.fxn")]),
        "cannot read",
    );
    assert_one_line_error(&fixnet(&["inspect", "missing.fxn"]), "cannot read");
    assert_one_line_error(
        &fixnet(&[
            "eval",
            "--model",
            &fxn,
            "--images",
            "missing",
            "--labels",
            TEST_LABELS,
        ]),
        "cannot read",
    );

    // Wrong formats.
    std::fs::write(d("text.tflite"), "this is not a model").unwrap();
    assert_one_line_error(
        &fixnet(&["convert", &d("text.tflite"), "-o", &d("x.fxn")]),
        "not a TFLite",
    );
    assert_one_line_error(
        &fixnet(&[
            "convert",
            "tests/fixtures/models/mlp_float.tflite",
            "-o",
            &d("x.fxn"),
        ]),
        "FLOAT32",
    );
    assert_one_line_error(
        &fixnet(&["inspect", "tests/fixtures/models/mlp_int8.tflite"]),
        "magic",
    );
    assert_one_line_error(
        &fixnet(&["convert", "data/mnist/README.md", "-o", &d("x.fxn")]),
        "unknown model type",
    );
    assert_one_line_error(
        &fixnet(&[
            "convert",
            "tests/fixtures/models/mlp.keras",
            "-o",
            &d("x.fxn"),
        ]),
        "needs --calibrate",
    );
    assert_one_line_error(
        &fixnet(&[
            "eval",
            "--model",
            &fxn,
            "--images",
            TEST_LABELS,
            "--labels",
            TEST_LABELS,
        ]),
        "label file",
    );
    assert_one_line_error(
        &fixnet(&[
            "eval",
            "--model",
            &fxn,
            "--images",
            TEST_IMAGES,
            "--labels",
            "data/mnist/train-labels-idx1-ubyte.gz",
        ]),
        "labels",
    );

    // An op fixnet does not have.
    std::fs::write(d("exp.tflite"), support::exp_model()).unwrap();
    assert_one_line_error(
        &fixnet(&["convert", &d("exp.tflite"), "-o", &d("x.fxn")]),
        "op 0 (EXP)",
    );

    // Truncated and empty files.
    let tflite = std::fs::read(root().join("tests/fixtures/models/mlp_int8.tflite")).unwrap();
    std::fs::write(d("half.tflite"), &tflite[..tflite.len() / 2]).unwrap();
    assert_one_line_error(
        &fixnet(&["convert", &d("half.tflite"), "-o", &d("x.fxn")]),
        "malformed",
    );
    std::fs::write(d("empty.tflite"), b"").unwrap();
    assert_one_line_error(
        &fixnet(&["convert", &d("empty.tflite"), "-o", &d("x.fxn")]),
        "empty",
    );
    let model = std::fs::read(&fxn).unwrap();
    std::fs::write(d("half.fxn"), &model[..model.len() / 2]).unwrap();
    assert_one_line_error(&fixnet(&["inspect", &d("half.fxn")]), "truncated");
    assert_one_line_error(
        &fixnet(&[
            "eval",
            "--model",
            &d("half.fxn"),
            "--images",
            TEST_IMAGES,
            "--labels",
            TEST_LABELS,
        ]),
        "truncated",
    );
    std::fs::write(d("empty.fxn"), b"").unwrap();
    assert_one_line_error(&fixnet(&["inspect", &d("empty.fxn")]), "empty");
    assert_one_line_error(
        &fixnet(&[
            "run",
            "--model",
            &d("empty.fxn"),
            "--images",
            TEST_IMAGES,
            "--out",
            &d("o.npy"),
        ]),
        "empty",
    );
    assert!(
        !dir.join("x.fxn").exists(),
        "a failed convert must not leave an output"
    );

    // A flipped weight byte: inspect still shows the model, then reports the bad CRC.
    let mut corrupt = model.clone();
    // The middle of the file is inside the first layer's weights.
    let at = corrupt.len() / 2;
    corrupt[at] ^= 0x40;
    std::fs::write(d("corrupt.fxn"), &corrupt).unwrap();
    let run = fixnet(&["inspect", &d("corrupt.fxn")]);
    assert!(run.stdout.contains("CRC-32: MISMATCH"), "{}", run.stdout);
    assert_one_line_error(&run, "CRC mismatch");
    assert_one_line_error(
        &fixnet(&["predict", "--model", &d("corrupt.fxn"), "x.png"]),
        "CRC",
    );

    // Pictures that are not pictures, or hold no digit.
    std::fs::write(d("bad.png"), b"not a png").unwrap();
    assert_one_line_error(
        &fixnet(&["predict", "--model", &fxn, &d("bad.png")]),
        "cannot read image",
    );
    GrayImage::from_pixel(40, 40, Luma([128]))
        .save(d("blank.png"))
        .unwrap();
    assert_one_line_error(
        &fixnet(&["predict", "--model", &fxn, &d("blank.png")]),
        "no digit",
    );

    // Usage errors.
    assert_one_line_error(&fixnet(&["frobnicate"]), "unrecognized subcommand");
    assert_one_line_error(&fixnet(&["eval", "--model", &fxn]), "required");
    assert_one_line_error(&fixnet(&[]), "no command given");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_for_every_command() {
    for cmd in ["convert", "inspect", "eval", "run", "predict", "demo"] {
        let run = fixnet(&[cmd, "--help"]);
        assert_eq!(run.code, 0, "{cmd}: {}", run.stderr);
        assert!(run.stdout.contains("Usage"), "{cmd}: {}", run.stdout);
    }
    let run = fixnet(&["--help"]);
    assert!(run.stdout.contains("convert") && run.stdout.contains("predict"));
}
