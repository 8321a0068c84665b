//! `fixnet bench --qemu --json`: builds the benchmark firmware, runs it in QEMU and reports
//! the figures docs/benchmarks.md is made of. Skipped without `qemu-system-arm` (not in CI).

use fixnet_tools::device::qemu::check_qemu;

#[test]
fn bench_reports_every_figure_as_json_and_markdown() {
    if let Err(e) = check_qemu() {
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
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "instructions_median",
        "instructions_per_mac",
        "text_bytes",
        "rodata_bytes",
        "data_bytes",
        "bss_bytes",
        "model_bytes",
        "arena_bytes",
        "stack_peak_bytes",
        "accuracy",
        "layers",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
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
    assert!(v["text_bytes"].as_u64().unwrap() > 1000);
    assert!(v["rodata_bytes"].as_u64().unwrap() > v["model_bytes"].as_u64().unwrap());
    assert!(v["bss_bytes"].as_u64().unwrap() >= v["arena_bytes"].as_u64().unwrap());
    let md = std::fs::read_to_string(&out_md).unwrap();
    assert!(md.contains("| instructions / MAC |") && md.contains("Conv2D"));
    let _ = std::fs::remove_file(&out_md);
}
