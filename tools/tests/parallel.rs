//! The tool's parallel passes give exactly what one thread gives: `run`/`eval`'s outputs on
//! IDX digits and on .npy samples, and the calibration ranges of a float model, for several
//! thread counts (including more threads than inputs and counts that do not divide them).
//!
//! One test function, because the thread count is process-wide (`--threads`).

use fixnet_tools::keras::{self, CalibrationOptions, RangeMethod};
use fixnet_tools::{fxn::ModelBytes, idx, inputs, lower, parallel, runner, tflite};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn convert(tflite_path: &str) -> ModelBytes {
    let graph = tflite::import(&std::fs::read(root().join(tflite_path)).unwrap()).unwrap();
    ModelBytes::new(&lower::lower(&graph).unwrap())
}

#[test]
fn every_thread_count_gives_the_single_thread_results() {
    let mut images =
        idx::read_images(&root().join("data/mnist/test-images-idx3-ubyte.gz")).unwrap();
    images.truncate(301);
    let seed = ModelBytes::read(&root().join("models/seed_cnn.fxn")).unwrap();
    let seed = seed.model().unwrap();
    let kws = convert("tests/fixtures/mlperf/kws_ref_model.tflite");
    let kws = kws.model().unwrap();
    let samples = inputs::read_inputs(
        &root().join("tests/fixtures/mlperf/kws_ref_model_inputs.npy"),
        &kws.input().unwrap(),
    )
    .unwrap();
    let float = keras::load(root().join("tests/fixtures/models/seed_cnn.keras")).unwrap();
    let options = |method| CalibrationOptions {
        max_images: 37,
        method,
    };

    parallel::set_default_threads(Some(1));
    let digits_one = runner::run_images(&seed, &images, |_| {}).unwrap();
    let samples_one = runner::run_samples(&kws, &samples, |_| {}).unwrap();
    let minmax_one = keras::calibrate(&float, &images, &options(RangeMethod::MinMax)).unwrap();
    let pct_one =
        keras::calibrate(&float, &images, &options(RangeMethod::Percentile(99.0))).unwrap();
    assert_eq!(digits_one.1.len(), 301 * 10);
    assert_eq!(samples_one.1.len(), samples.len() * samples_one.0);

    for threads in [2, 3, 7, 400] {
        parallel::set_default_threads(Some(threads));
        assert_eq!(parallel::default_threads(), threads);
        let digits = runner::run_images(&seed, &images, |_| {}).unwrap();
        assert_eq!(digits, digits_one, "digits on {threads} threads");
        let s = runner::run_samples(&kws, &samples, |_| {}).unwrap();
        assert_eq!(s, samples_one, "kws samples on {threads} threads");
        let r = keras::calibrate(&float, &images, &options(RangeMethod::MinMax)).unwrap();
        assert_eq!(r, minmax_one, "min/max calibration on {threads} threads");
        let r = keras::calibrate(&float, &images, &options(RangeMethod::Percentile(99.0))).unwrap();
        assert_eq!(r, pct_one, "percentile calibration on {threads} threads");
    }
    parallel::set_default_threads(None);
    assert!(parallel::default_threads() >= 1);
}
