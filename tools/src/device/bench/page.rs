//! The benchmark's page (`docs/benchmarks.md`) and its results file (`docs/benchmarks.json`,
//! beside the page): every model measured, one table for all, TFLite Micro's figures on the
//! same models beside them, and per-layer tables for the runs made with `--layers`.
//!
//! The results file is the page's source: each run of `fixnet bench` replaces the entries of
//! the models and targets it measured and keeps the others, then writes the page again from
//! all of them. What follows the benchmark's part of the page (the host figures) is kept.

use super::{BenchResult, InputKind, BENCH_TARGETS, DIGIT_BYTES};
use crate::inspect::thousands;
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The results file of the page at `page`: the same name, `.json`.
pub fn results_path(page: &Path) -> PathBuf {
    page.with_extension("json")
}

/// The results in the file at `path` (none when there is no file).
pub fn load_results(path: &Path) -> Result<Vec<BenchResult>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let all: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    all.as_array()
        .with_context(|| format!("{} is not a JSON array", path.display()))?
        .iter()
        .map(BenchResult::from_json)
        .collect()
}

/// The results file's text for `results` (layers kept where they were measured).
pub fn results_json(results: &[BenchResult]) -> Result<String> {
    let all: Vec<Value> = results
        .iter()
        .map(|r| r.to_json(!r.layers.is_empty()))
        .collect();
    Ok(serde_json::to_string_pretty(&all)? + "\n")
}

/// `old` with every entry of the same model and target as one of `new` replaced by it, the
/// rest of `new` added; ordered by model (in the order they were first measured), then by
/// target as in [`BENCH_TARGETS`].
pub fn merge(old: Vec<BenchResult>, new: &[BenchResult]) -> Vec<BenchResult> {
    let same = |a: &BenchResult, b: &BenchResult| a.model == b.model && a.target == b.target;
    let mut all: Vec<BenchResult> = old
        .into_iter()
        .filter(|o| !new.iter().any(|n| same(o, n)))
        .collect();
    let mut models: Vec<String> = Vec::new();
    for r in all.iter().chain(new) {
        if !models.contains(&r.model) {
            models.push(r.model.clone());
        }
    }
    all.extend(new.iter().cloned());
    let target_rank = |t: &str| {
        BENCH_TARGETS
            .iter()
            .position(|&b| b == t)
            .unwrap_or(BENCH_TARGETS.len())
    };
    all.sort_by_key(|r| {
        (
            models.iter().position(|m| *m == r.model),
            target_rank(&r.target),
        )
    });
    all
}

/// TensorFlow Lite Micro's figures for a model, from `shared/anchors.md` (same QEMU
/// harness: `mps2-an386`, `-icount shift=0`, SysTick × 40).
struct Anchor {
    /// The name of the model's file ([`super::model_name`]).
    model: &'static str,
    /// What the model is.
    title: &'static str,
    /// Its MACs per inference, as anchors.md counts them; a model of that name with other
    /// MACs is another model and gets no anchor.
    macs: u64,
    /// Instructions per inference with TFLM's reference kernels.
    reference: u64,
    /// Instructions per inference with CMSIS-NN's kernels.
    cmsis_nn: u64,
    /// Arena bytes TFLM used (CMSIS-NN build).
    arena: u64,
    /// TFLM's runtime flash (code and constants, without the model; CMSIS-NN build).
    flash: &'static str,
    /// The inputs TFLM was measured on.
    inputs: &'static str,
}

const ANCHORS: [Anchor; 5] = [
    Anchor {
        model: "seed_cnn",
        title: "seed CNN, MNIST digits",
        macs: 2_631_040,
        reference: 30_399_500,
        cmsis_nn: 6_501_560,
        arena: 30_596,
        flash: "80,788 B",
        inputs: "the same 100 test digits",
    },
    Anchor {
        model: "kws_ref_model",
        title: "MLPerf Tiny keyword spotting DS-CNN",
        macs: 2_656_768,
        reference: 43_041_380,
        cmsis_nn: 7_698_240,
        arena: 22_820,
        flash: "105.4 KB",
        inputs: "20 random int8 inputs",
    },
    Anchor {
        model: "vww_96_int8",
        title: "MLPerf Tiny visual wake words MobileNetV1",
        macs: 7_489_664,
        reference: 100_252_820,
        cmsis_nn: 24_102_800,
        arena: 100_708,
        flash: "105.4 KB",
        inputs: "20 random int8 inputs",
    },
    Anchor {
        model: "pretrainedResnet_quant",
        title: "MLPerf Tiny CIFAR-10 ResNet-8",
        macs: 12_501_632,
        reference: 107_402_640,
        cmsis_nn: 29_864_180,
        arena: 54_996,
        flash: "100.0 KB",
        inputs: "20 random int8 inputs",
    },
    Anchor {
        model: "ad01_int8",
        title: "MLPerf Tiny anomaly detection autoencoder",
        macs: 264_192,
        reference: 1_952_580,
        cmsis_nn: 583_260,
        arena: 2_580,
        flash: "47.2 KB",
        inputs: "20 random int8 inputs",
    },
];

/// The anchor of the model `r` measured, if anchors.md has it.
fn anchor_of(r: &BenchResult) -> Option<&'static Anchor> {
    ANCHORS
        .iter()
        .find(|a| a.model == r.model && a.macs == r.macs)
}

/// How `ours` compares with `theirs` (instructions; fewer is faster): "N.N× faster" or
/// "N.N× slower", the ratio always at least 1.
pub fn speed_against(ours: u64, theirs: u64) -> String {
    let (ours, theirs) = (ours.max(1) as f64, theirs.max(1) as f64);
    if ours <= theirs {
        format!("{:.1}× faster", theirs / ours)
    } else {
        format!("{:.1}× slower", ours / theirs)
    }
}

/// A target's short name in the tables.
fn build_name(target: &str) -> String {
    match target {
        "thumbv7em-none-eabihf" => "Cortex-M4 (DSP)".into(),
        "thumbv6m-none-eabi" => "Armv6-M (M0+)".into(),
        other => format!("`{other}`"),
    }
}

/// The marker lines around the benchmark's part of the page.
const BEGIN: &str = "<!-- fixnet bench: begin (written from benchmarks.json by `fixnet bench`) -->";
const END: &str = "<!-- fixnet bench: end -->";
/// The end marker of a target's section in pages written before the results file existed.
const OLD_END: &str = "<!-- fixnet bench: end of ";

/// The start of the page: how it is made.
const INTRO: &str = "# Benchmarks

Measured by `fixnet bench --qemu` (`cargo run --release -p fixnet-tools -- bench --qemu
[--model M.fxn|M.tflite]... [--layers]`; this page is its output). Each model is built into
the benchmark firmware `boards/qemu-mps2-an386/bench` with only the model's ops (fixnet's
`op-…` features, as TFLite Micro's MicroMutableOpResolver lists the ops of its model), for
the Cortex-M4 with the DSP kernels (`thumbv7em-none-eabihf`) and for Armv6-M with the
portable ones (`thumbv6m-none-eabi`), and run 100 times in QEMU 7.2's `mps2-an386` (`-cpu
cortex-m4 -icount shift=0`). Instructions are SysTick ticks × 40, the same harness as the
reference numbers in `shared/anchors.md`: guest instructions, not cycles; the median of the
100 inferences. A model that reads one 28×28 grey picture runs the first 100 MNIST test
digits (its total includes quantizing the pixels); any other runs 100 full-range random int8
inputs from a fixed-seed xorshift32 generator, made again on the host. Every output vector
(its CRC-32) and prediction is checked against the host interpreter's, so each row below is
also a bit-exactness test of its kernels. The figures are kept in `docs/benchmarks.json`:
a run replaces the rows of the models it measures and keeps the others; `--layers` adds a
model's per-layer table, `--json` prints the figures.

The Armv6-M build (Cortex-M0+: no DSP instructions, no 64-bit multiply, no divide) runs on
the same emulated Cortex-M4: Armv6-M is a subset of Armv7E-M, so QEMU executes and counts
exactly the instructions an M0+ would. QEMU has no Cortex-M0 machine with room for these
models, and a Cortex-M3 machine would run the same instructions.

The models: `seed_cnn` is `models/seed_cnn.fxn`, the others the MLPerf Tiny models of
`tests/fixtures/mlperf/`, which `--model NAME.tflite` converts first (as `fixnet convert`
does). This page was made by

```sh
m=tests/fixtures/mlperf
cargo run --release -p fixnet-tools -- bench --qemu --layers --model models/seed_cnn.fxn \\
    --model $m/kws_ref_model.tflite --model $m/ad01_int8.tflite \\
    --model $m/pretrainedResnet_quant.tflite --model $m/vww_96_int8.tflite
```
";

/// Writes the page: the introduction, the benchmark's tables for `results`, then whatever
/// followed the benchmark's part in `existing` (the page as it was).
pub fn page(existing: Option<&str>, results: &[BenchResult]) -> String {
    let existing = existing.unwrap_or("");
    let mut out = String::from(INTRO);
    out.push('\n');
    out.push_str(BEGIN);
    out.push('\n');
    out.push_str(&summary_table(results));
    out.push_str(&anchors_table());
    out.push_str(&sizes_table(results));
    let with_layers: Vec<&BenchResult> = results.iter().filter(|r| !r.layers.is_empty()).collect();
    if !with_layers.is_empty() {
        out.push_str(
            "## Per layer

The models measured with `--layers`: each op alone, the median over the 100 inferences (the
total also counts quantizing a digit input and a few instructions per op of timing).

",
        );
    }
    for r in with_layers {
        out.push_str(&layers_table(r));
    }
    out.push_str(END);
    out.push('\n');
    let tail = tail(existing);
    if !tail.trim().is_empty() {
        out.push('\n');
        out.push_str(tail);
    }
    out
}

/// What follows the benchmark's part of `existing`: after its end marker, after the last
/// target section of an older page, or from a `## Host` section of a page without markers.
fn tail(existing: &str) -> &str {
    let after_line = |at: usize| {
        existing[at..]
            .find('\n')
            .map_or(existing.len(), |n| at + n + 1)
    };
    let from = if let Some(at) = existing.find(END) {
        after_line(at)
    } else if let Some(at) = existing.rfind(OLD_END) {
        after_line(at)
    } else if let Some(at) = existing.find("\n## Host") {
        at + 1
    } else {
        existing.len()
    };
    existing[from..].trim_start_matches('\n')
}

fn summary_table(results: &[BenchResult]) -> String {
    let mut out = String::from(
        "## Every model

| model | inputs | MACs | build | instructions / inference | per MAC | TFLM + CMSIS-NN | fixnet vs CMSIS-NN | arena | arena lower bound | arena / bound | peak stack | runtime flash | outputs = host |
|---|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|
",
    );
    for r in results {
        let inputs = match (r.inputs, r.correct) {
            (InputKind::Digits, Some(c)) => format!("{} digits ({c} right)", r.runs),
            (InputKind::Digits, None) => format!("{} digits", r.runs),
            (InputKind::Random, _) => format!("{} random", r.runs),
        };
        // CMSIS-NN's figures are for the Cortex-M4: beside the DSP build only.
        let anchor = anchor_of(r).filter(|_| r.target == BENCH_TARGETS[0]);
        let (cmsis, versus) = match anchor {
            Some(a) => (
                thousands(a.cmsis_nn as usize),
                speed_against(r.instructions_median, a.cmsis_nn),
            ),
            None => ("—".into(), "—".into()),
        };
        out.push_str(&format!(
            "| {model} | {inputs} | {macs} | {build} | **{median}** | {per_mac:.2} | {cmsis} | {versus} | {arena} B | {bound} B | {ratio:.2} | {stack} B | {flash} B | {equal}/{runs} |\n",
            model = r.model,
            macs = thousands(r.macs as usize),
            build = build_name(&r.target),
            median = thousands(r.instructions_median as usize),
            per_mac = r.instructions_per_mac(),
            arena = thousands(r.arena_bytes as usize),
            bound = thousands(r.arena_lower_bound as usize),
            ratio = r.arena_ratio(),
            stack = thousands(r.stack_peak_bytes as usize),
            flash = thousands(r.runtime_flash_bytes() as usize),
            equal = r.host_equal,
            runs = r.runs,
        ));
    }
    out.push_str(
        "
The arena is the model's static plan (`Model::arena_size`, the one buffer inference needs);
its lower bound is the most activation bytes alive at one step (a tensor from the op that
writes it to the last op that reads it, the model input from step 0, a reshape's output on
its input's bytes, a convolution fused with its max pool writing the pool's output directly):
no plan can be smaller, and arena / bound says how close the plan is. The peak stack is
measured by painting the stack before the run and scanning it after. Runtime flash is the
code and constants without the model (next section). TFLite Micro's CMSIS-NN figures are from
`shared/anchors.md` (next section); the MLPerf Tiny ones were measured on 20 other random
inputs (anchors.md: spread under 0.1 % across inputs; the seed CNN took 6,502,600 there on
random inputs and 6,501,560 on the 100 digits).

",
    );
    out
}

fn anchors_table() -> String {
    let mut out = String::from(
        "## TensorFlow Lite Micro on the same models

Copied from `shared/anchors.md`: tflite-micro 90b983c2, arm-none-eabi-gcc 12.2, TFLM's default
flags (core -Os, kernels -O2), measured in the same QEMU harness (instructions = SysTick ticks
× 40, median).

| model | MACs | TFLM reference kernels | TFLM + CMSIS-NN | per MAC | TFLM arena | TFLM runtime flash | inputs |
|---|---:|---:|---:|---:|---:|---:|---|
",
    );
    for a in &ANCHORS {
        out.push_str(&format!(
            "| `{}` ({}) | {} | {} | {} | {:.2} | {} B | {} | {} |\n",
            a.model,
            a.title,
            thousands(a.macs as usize),
            thousands(a.reference as usize),
            thousands(a.cmsis_nn as usize),
            a.cmsis_nn as f64 / a.macs as f64,
            thousands(a.arena as usize),
            a.flash,
            a.inputs,
        ));
    }
    out.push_str(
        "
For the seed CNN anchors.md also has TFLM's reference-kernel build (30,484 B arena, 800 B
peak stack, 69,788 B runtime flash; the CMSIS-NN build's stack is 1,380 B) and MicroFlow
0.1.3 (Rust), which cannot run the model (no MAX_POOL_2D): on its average-pool variant 36.79 M
instructions (14.0 per MAC), 20.8 KB code, 54.3 KB peak stack. On the autoencoder TFLM's
outputs differ from LiteRT's reference kernels (it requantizes FULLY_CONNECTED with a Q31
multiplier); fixnet follows LiteRT.

",
    );
    out
}

fn sizes_table(results: &[BenchResult]) -> String {
    let mut out = String::from(
        "## Flash and RAM of each build

| model | build | `.vector_table` | `.text` | `.rodata` | `.data` | `.bss` | model | runtime flash | op features |
|---|---|---:|---:|---:|---:|---:|---:|---:|---|
",
    );
    for r in results {
        let features = r
            .features
            .iter()
            .map(|f| format!("`{f}`"))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | **{}** | {features} |\n",
            r.model,
            build_name(&r.target),
            thousands(r.vector_table_bytes as usize),
            thousands(r.text_bytes as usize),
            thousands(r.rodata_bytes as usize),
            thousands(r.data_bytes as usize),
            thousands(r.bss_bytes as usize),
            thousands(r.model_bytes as usize),
            thousands(r.runtime_flash_bytes() as usize),
        ));
    }
    out.push_str(&format!(
        "
Bytes. Runtime flash is `.vector_table + .text + .rodata + .data` (every section the
firmware puts in flash) − the model − the {digits} bytes of test digits and labels the
firmware embeds whatever the model. `.bss` holds the arena and the benchmark's tables of
instruction counts. The firmware links no `core::fmt` (it prints with its own integer
formatter, and its panic handler prints no message), so runtime flash is the model loader and
validation, the interpreter, the model's kernels, the start-up code, the arithmetic routines
the compiler calls and the benchmark's own few hundred bytes of reporting and input making.

",
        digits = thousands(DIGIT_BYTES as usize)
    ));
    out
}

fn layers_table(r: &BenchResult) -> String {
    let mut out = format!(
        "### {} per layer, {}

| # | op | instructions | MACs | per MAC |
|---:|---|---:|---:|---:|
",
        r.model,
        build_name(&r.target)
    );
    for (i, l) in r.layers.iter().enumerate() {
        let per_mac = if l.macs > 0 {
            format!("{:.2}", l.instructions as f64 / l.macs as f64)
        } else {
            "—".into()
        };
        out.push_str(&format!(
            "| {i} | {} | {} | {} | {per_mac} |\n",
            l.op,
            thousands(l.instructions as usize),
            thousands(l.macs as usize),
        ));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::super::{parse_output, LayerBench};
    use super::*;

    fn result(model: &str, target: &str, macs: u64, median: u64) -> BenchResult {
        let mut r = parse_output(&format!(
            "summary inputs random runs 100 median_instructions {median} model_bytes 1000 arena_bytes 40 stack_peak_bytes 1\n"
        ))
        .unwrap();
        r.model = model.into();
        r.target = target.into();
        r.macs = macs;
        r.arena_lower_bound = 32;
        r.host_equal = 100;
        r
    }

    #[test]
    fn a_run_replaces_its_own_rows_and_keeps_the_others() {
        let kws_m4 = result("kws_ref_model", BENCH_TARGETS[0], 2_656_768, 3_000_000);
        let kws_m0 = result("kws_ref_model", BENCH_TARGETS[1], 2_656_768, 9_000_000);
        let seed_m0 = result("seed_cnn", BENCH_TARGETS[1], 2_631_040, 18_000_000);
        let all = merge(Vec::new(), &[kws_m0.clone(), kws_m4.clone()]);
        assert_eq!(all, [kws_m4.clone(), kws_m0.clone()]);
        let all = merge(all, std::slice::from_ref(&seed_m0));
        let kws_again = result("kws_ref_model", BENCH_TARGETS[1], 2_656_768, 8_000_000);
        let all = merge(all, std::slice::from_ref(&kws_again));
        assert_eq!(all, [kws_m4, kws_again, seed_m0]);
        let text = results_json(&all).unwrap();
        let dir = std::env::temp_dir().join(format!("fixnet-page-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("b.json");
        std::fs::write(&path, text).unwrap();
        assert_eq!(load_results(&path).unwrap(), all);
        assert!(load_results(&dir.join("none.json")).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_table_of_every_model_with_tflm_beside_the_m4_rows() {
        let kws = result("kws_ref_model", BENCH_TARGETS[0], 2_656_768, 3_849_120);
        let kws_m0 = result("kws_ref_model", BENCH_TARGETS[1], 2_656_768, 9_000_000);
        // A model named like an anchor but with other MACs is another model.
        let other = result("ad01_int8", BENCH_TARGETS[0], 1000, 5000);
        let md = page(None, &[kws, kws_m0, other]);
        let rows: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with("| kws_ref_model |"))
            .collect();
        // The summary table and the sizes table each have one row per build.
        assert_eq!(rows.len(), 4);
        assert!(
            rows[0].contains("| 7,698,240 | 2.0× faster |"),
            "{}",
            rows[0]
        );
        assert!(rows[1].contains("| — | — |"), "{}", rows[1]);
        assert!(rows[0].contains("| 40 B | 32 B | 1.25 |"), "{}", rows[0]);
        let ad01 = md.lines().find(|l| l.starts_with("| ad01_int8 |")).unwrap();
        assert!(ad01.contains("| — | — |"), "{ad01}");
        // The anchors table names its source and lists every anchor.
        assert!(md.contains("`shared/anchors.md`") && md.contains("| 583,260 |"));
        assert!(!md.contains("### "));
    }

    #[test]
    fn layers_are_shown_for_the_runs_that_measured_them() {
        let mut r = result("seed_cnn", BENCH_TARGETS[0], 2_631_040, 3_650_000);
        r.layers = vec![LayerBench {
            op: "Conv2D".into(),
            instructions: 900_000,
            macs: 194_688,
        }];
        let md = page(None, &[r]);
        assert!(md.contains("### seed_cnn per layer, Cortex-M4 (DSP)"));
        assert!(
            md.contains("| 0 | Conv2D | 900,000 | 194,688 | 4.62 |"),
            "{md}"
        );
    }

    #[test]
    fn the_page_keeps_what_follows_the_benchmark() {
        let r = result("seed_cnn", BENCH_TARGETS[0], 2_631_040, 3_650_000);
        let host = "## Host\n\nhost figures\n";
        let first = page(None, std::slice::from_ref(&r));
        let with_host = format!("{first}\n{host}");
        let again = page(Some(&with_host), std::slice::from_ref(&r));
        assert_eq!(again, with_host);
        // A page of per-target sections (before the results file) keeps its host section.
        let old = "# Benchmarks\n\n<!-- fixnet bench: thumbv6m-none-eabi -->\n## old\n\
                   <!-- fixnet bench: end of thumbv6m-none-eabi -->\n\n## Host\n\nhost figures\n";
        let new = page(Some(old), std::slice::from_ref(&r));
        assert!(!new.contains("## old") && new.ends_with(host), "{new}");
        // And a page without markers keeps only its host section.
        let bare = "# Benchmarks\n\n## seed\n\nold\n\n## Host\n\nhost figures\n";
        let new = page(Some(bare), &[r]);
        assert!(!new.contains("\nold\n") && new.ends_with(host), "{new}");
    }

    #[test]
    fn compares_speed_in_the_right_direction() {
        assert_eq!(speed_against(3_684_520, 6_501_560), "1.8× faster");
        assert_eq!(speed_against(13_003_120, 6_501_560), "2.0× slower");
        assert_eq!(speed_against(100, 100), "1.0× faster");
    }
}
