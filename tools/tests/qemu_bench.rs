//! `fixnet bench --qemu --json --layers`: builds the benchmark firmware for the Cortex-M4
//! (DSP kernels) and for Armv6-M (portable kernels) with two models, the seed CNN (run on
//! test digits) and the MLPerf Tiny autoencoder (a `.tflite`, converted first, run on random
//! int8 inputs), runs them in QEMU, checks every output against the host interpreter and
//! reports the figures docs/benchmarks.md is made of, all models in one table. Skipped
//! without `qemu-system-arm` or the two thumb targets outside CI (where it fails instead).

use fixnet_tools::device::bench::BENCH_TARGETS;
use fixnet_tools::device::qemu::check_qemu_and_targets;
use serde_json::Value;

/// The checks every model and target passes.
fn check_common(v: &Value) {
    for key in [
        "instructions_median",
        "instructions_per_mac",
        "vector_table_bytes",
        "text_bytes",
        "rodata_bytes",
        "data_bytes",
        "bss_bytes",
        "model_bytes",
        "arena_bytes",
        "arena_lower_bound",
        "stack_peak_bytes",
        "runtime_flash_bytes",
        "accuracy",
        "layers",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    // Every one of the 100 outputs equals the host interpreter's (the command fails
    // otherwise): the DSP assembly and the Armv6-M code paths are bit-exact end to end.
    assert_eq!(v["host_equal"], 100, "{v}");
    assert_eq!(v["runs"], 100, "{v}");
    let median = v["instructions_median"].as_u64().unwrap();
    let sum: u64 = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["instructions"].as_u64().unwrap())
        .sum();
    assert!(
        sum <= median && sum * 100 >= median * 95,
        "{sum} vs {median}"
    );
    // No plan is smaller than the bytes alive at once.
    let (arena, bound) = (
        v["arena_bytes"].as_u64().unwrap(),
        v["arena_lower_bound"].as_u64().unwrap(),
    );
    assert!(bound > 0 && bound <= arena, "{bound} vs {arena}");
    let stack = v["stack_peak_bytes"].as_u64().unwrap();
    assert!(stack > 256 && stack < 64 * 1024, "{stack}");
    // No 240-entry default interrupt table: the firmware enables no interrupt.
    assert!(v["vector_table_bytes"].as_u64().unwrap() <= 128, "{v}");
    assert!(v["text_bytes"].as_u64().unwrap() > 1000);
    assert!(v["rodata_bytes"].as_u64().unwrap() > v["model_bytes"].as_u64().unwrap());
    assert!(v["bss_bytes"].as_u64().unwrap() >= arena);
}

#[test]
fn bench_measures_any_model_on_both_targets_and_matches_the_host() {
    if let Err(e) = check_qemu_and_targets(&BENCH_TARGETS) {
        assert!(std::env::var_os("CI").is_none(), "{e}");
        eprintln!("skipping: {e}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("fixnet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out_md = dir.join("bench.md");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixnet"))
        .args(["bench", "--qemu", "--json", "--layers", "--model"])
        .arg(root.join("models/seed_cnn.fxn"))
        .arg("--model")
        .arg(root.join("tests/fixtures/mlperf/ad01_int8.tflite"))
        .arg("--out")
        .arg(&out_md)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Value = serde_json::from_slice(&out.stdout).unwrap();
    let all = all.as_array().unwrap();
    let runs: Vec<(&str, &str)> = all
        .iter()
        .map(|v| (v["model"].as_str().unwrap(), v["target"].as_str().unwrap()))
        .collect();
    assert_eq!(
        runs,
        [
            ("seed_cnn", BENCH_TARGETS[0]),
            ("seed_cnn", BENCH_TARGETS[1]),
            ("ad01_int8", BENCH_TARGETS[0]),
            ("ad01_int8", BENCH_TARGETS[1]),
        ]
    );
    for v in all {
        check_common(v);
    }
    for seed in &all[..2] {
        assert_eq!(seed["inputs"], "digits");
        // Built with the seed CNN's ops only: convolutions fused with their max pools.
        assert_eq!(
            seed["features"],
            serde_json::json!(["op-conv2d-pool", "op-fully-connected", "op-softmax"])
        );
        // Conv, pool, conv, pool, reshape, dense, dense, softmax; 2,631,040 MACs.
        assert_eq!(seed["layers"].as_array().unwrap().len(), 8);
        assert_eq!(seed["macs"], 2_631_040);
        assert!(seed["accuracy"].as_f64().unwrap() >= 0.95);
        // Worked out in tools/src/arena_bound.rs: pool1 and pool2 alive together.
        assert_eq!(seed["arena_lower_bound"], 13 * 13 * 32 + 5 * 5 * 64);
    }
    for ad01 in &all[2..] {
        // Its input is 640 values, not a digit: random int8 inputs, no accuracy.
        assert_eq!(ad01["inputs"], "random");
        assert!(ad01["accuracy"].is_null() && ad01["correct"].is_null());
        assert_eq!(ad01["features"], serde_json::json!(["op-fully-connected"]));
        // Ten dense layers, 640-128-128-128-128-8-128-128-128-128-640.
        assert_eq!(ad01["layers"].as_array().unwrap().len(), 10);
        assert_eq!(ad01["macs"], 2 * 640 * 128 + 6 * 128 * 128 + 2 * 128 * 8);
        // A chain: the most bytes alive at once are the input and the first layer's output.
        assert_eq!(ad01["arena_lower_bound"], 640 + 128);
    }
    // The DSP kernels beat the portable ones on the same emulated core.
    for pair in all.chunks(2) {
        assert!(pair[0]["instructions_median"].as_u64() < pair[1]["instructions_median"].as_u64());
    }
    // One table of every model, its figures kept beside the page for the next run.
    let md = std::fs::read_to_string(&out_md).unwrap();
    let rows = |model: &str| {
        md.lines()
            .filter(|l| l.starts_with(&format!("| {model} | 100 ")))
            .count()
    };
    assert_eq!((rows("seed_cnn"), rows("ad01_int8")), (2, 2), "{md}");
    assert!(md.contains("| 6,501,560 |") && md.contains("| 583,260 |"));
    assert!(md.contains("### ad01_int8 per layer, Armv6-M (M0+)"));
    let kept: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bench.json")).unwrap()).unwrap();
    assert_eq!(kept.as_array().unwrap().len(), 4);
    let _ = std::fs::remove_dir_all(&dir);
}
