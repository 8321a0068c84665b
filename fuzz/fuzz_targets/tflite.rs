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
    if let Err(e) = fixnet::Model::from_bytes(blob.bytes()) {
        panic!("lower() produced a model the core rejects: {e}");
    }
});
