//! Every int8 fixture model, converted by fixnet, must reproduce LiteRT's reference-kernel
//! (BUILTIN_REF) outputs byte for byte on all 2,000 test digits.

use fixnet_tools::{fxn::ModelBytes, idx, lower, npy, runner, tflite};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture_models() -> Vec<(String, PathBuf, PathBuf)> {
    let dir = root().join("tests/fixtures/models");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/fixtures/models") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if let Some(stem) = name.strip_suffix("_int8.tflite") {
            let reference = root().join(format!("tests/fixtures/litert/{stem}_int8_ref.npy"));
            out.push((stem.to_string(), path, reference));
        }
    }
    out.sort();
    out
}

#[test]
fn fixture_models_match_litert_reference_byte_for_byte() {
    let images = idx::read_images(&root().join("data/mnist/test-images-idx3-ubyte.gz")).unwrap();
    let models = fixture_models();
    assert!(!models.is_empty(), "no *_int8.tflite fixture found");
    let mut total = 0usize;
    let mut failures = Vec::new();
    for (name, model_path, ref_path) in models {
        let graph = tflite::import(&std::fs::read(&model_path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: import: {e:#}"));
        let bytes =
            ModelBytes::new(&lower::lower(&graph).unwrap_or_else(|e| panic!("{name}: {e:#}")));
        let model = bytes.model().unwrap();
        let (outputs, got) = runner::run_images(&model, &images, |_| {}).unwrap();
        let (shape, want) = npy::decode_i8(&std::fs::read(&ref_path).unwrap()).unwrap();
        assert_eq!(
            shape,
            vec![images.len(), outputs],
            "{name}: reference shape"
        );
        let mismatches: Vec<usize> = (0..want.len()).filter(|&i| got[i] != want[i]).collect();
        let rows: std::collections::BTreeSet<usize> =
            mismatches.iter().map(|i| i / outputs).collect();
        println!(
            "{name}: compared {} bytes ({} images x {outputs}) with LiteRT BUILTIN_REF: {} mismatching bytes in {} images",
            want.len(),
            images.len(),
            mismatches.len(),
            rows.len()
        );
        if let Some(&first) = mismatches.first() {
            let row = first / outputs * outputs;
            failures.push(format!(
                "{name}: {} of {} bytes differ; first at image {} (got {:?}, want {:?})",
                mismatches.len(),
                want.len(),
                first / outputs,
                &got[row..row + outputs],
                &want[row..row + outputs],
            ));
        }
        total += want.len();
    }
    println!("total: {total} bytes compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shipped_seed_model_is_the_converted_fixture() {
    let tflite = std::fs::read(root().join("tests/fixtures/models/seed_cnn_int8.tflite")).unwrap();
    let converted = lower::lower(&tflite::import(&tflite).unwrap()).unwrap();
    let shipped = std::fs::read(root().join("models/seed_cnn.fxn")).unwrap();
    assert!(
        converted == shipped,
        "models/seed_cnn.fxn is stale: regenerate it as models/README.md says"
    );
}
