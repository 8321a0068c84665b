//! The `.tflite` importer and the lowering to the fixnet format: neither panics, and
//! whatever they produce is a model the core accepts.
#![no_main]

use fixnet_fuzz::Aligned;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(graph) = fixnet_tools::tflite::import(data) else {
        return;
    };
    let Ok(bytes) = fixnet_tools::lower::lower(&graph) else {
        return;
    };
    let blob = Aligned::new(&bytes);
    match fixnet::Model::from_bytes(blob.bytes()) {
        Ok(_) => {}
        // Known finding F1 (docs/reliability.md, regression test in
        // tools/tests/cli_robustness_findings.rs): denormal or otherwise unusable scales pass
        // lower() and are only refused by the core. Skipped so the run can go on; set
        // FUZZ_STRICT=1 to stop on it again.
        Err(fixnet::Error::BadQuantization) if std::env::var_os("FUZZ_STRICT").is_none() => {}
        Err(e) => panic!("lower() produced a model the core rejects: {e}"),
    }
});
