//! `fixnet bench --qemu --json`: builds the benchmark firmware for the Cortex-M4 (DSP
//! kernels) and for Armv6-M (portable kernels), runs both in QEMU, checks every output against
//! the host interpreter and reports the figures docs/benchmarks.md is made of. Skipped
//! without `qemu-system-arm` or the two thumb targets outside CI (where it fails instead).

use fixnet_tools::device::bench::BENCH_TARGETS;
use fixnet_tools::device::qemu::check_qemu_and_targets;

#[test]
fn bench_reports_every_figure_for_both_targets_and_matches_the_host() {
    if let Err(e) = check_qemu_and_targets(&BENCH_TARGETS) {
        assert!(std::env::var_os("CI").is_none(), "{e}");
        eprintln!("skipping: {e}");
        return;
    }
    let out_md = std::env::temp_dir().join(format!("fixnet-bench-{}.md", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixnet"))
        .args(["bench", "--qemu", "--json", "--out"])
        .arg(&out_md)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let all = all.as_array().unwrap();
    let targets: Vec<&str> = all.iter().map(|v| v["target"].as_str().unwrap()).collect();
    assert_eq!(targets, ["thumbv7em-none-eabihf", "thumbv6m-none-eabi"]);
    for v in all {
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
        // Built with the seed CNN's ops only: convolutions fused with their max pools.
        assert_eq!(
            v["features"],
            serde_json::json!(["op-conv2d-pool", "op-fully-connected", "op-softmax"])
        );
        let median = v["instructions_median"].as_u64().unwrap();
        let layers = v["layers"].as_array().unwrap();
        // The seed CNN: conv, pool, conv, pool, reshape, dense, dense, softmax; 2,631,040 MACs.
        assert_eq!(layers.len(), 8);
        assert_eq!(v["macs"], 2_631_040);
        let sum: u64 = layers
            .iter()
            .map(|l| l["instructions"].as_u64().unwrap())
            .sum();
        assert!(
            sum <= median && sum * 100 >= median * 95,
            "{sum} vs {median}"
        );
        assert!(v["accuracy"].as_f64().unwrap() >= 0.95);
        let stack = v["stack_peak_bytes"].as_u64().unwrap();
        assert!(stack > 256 && stack < 64 * 1024, "{stack}");
        // No 240-entry default interrupt table: the firmware enables no interrupt.
        assert!(v["vector_table_bytes"].as_u64().unwrap() <= 128, "{v}");
        assert!(v["text_bytes"].as_u64().unwrap() > 1000);
        assert!(v["rodata_bytes"].as_u64().unwrap() > v["model_bytes"].as_u64().unwrap());
        assert!(v["bss_bytes"].as_u64().unwrap() >= v["arena_bytes"].as_u64().unwrap());
    }
    // The DSP kernels beat the portable ones on the same emulated core.
    assert!(all[0]["instructions_median"].as_u64() < all[1]["instructions_median"].as_u64());
    let md = std::fs::read_to_string(&out_md).unwrap();
    assert!(md.contains("| instructions / MAC |") && md.contains("Conv2D"));
    assert!(md.contains("thumbv7em-none-eabihf") && md.contains("thumbv6m-none-eabi"));
    assert!(md.contains("| outputs equal to the host interpreter's | 100/100 |"));
    let _ = std::fs::remove_file(&out_md);
}
