//! `fixnet bench --qemu`: builds the board's benchmark firmware with a model, runs it in
//! QEMU, and reports instructions (median of 100 inferences, per layer, per MAC), ELF
//! section sizes, model, arena and peak stack bytes.

use super::qemu::{build_firmware, check_qemu, QEMU_ARGS};
use crate::fxn::ModelBytes;
use crate::inspect::{inspect, thousands};
use anyhow::{anyhow, bail, ensure, Context, Result};
use object::{Object, ObjectSection};
use serde_json::json;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One layer's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerBench {
    /// Op name (`Conv2D`, …).
    pub op: String,
    /// Median guest instructions.
    pub instructions: u64,
    /// Multiply-accumulates.
    pub macs: u64,
}

/// Everything the benchmark measures.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// Median instructions of one inference (input quantization included).
    pub instructions_median: u64,
    /// Multiply-accumulates of one inference.
    pub macs: u64,
    /// Per-layer medians, in execution order.
    pub layers: Vec<LayerBench>,
    /// Correct predictions of the 100 digits.
    pub correct: u32,
    /// Digits run.
    pub runs: u32,
    /// Bytes of `.vector_table` (the reset vector and the exception and interrupt table).
    pub vector_table_bytes: u64,
    /// Bytes of `.text` (code).
    pub text_bytes: u64,
    /// Bytes of `.rodata` (constants, including the embedded model).
    pub rodata_bytes: u64,
    /// Bytes of `.data`.
    pub data_bytes: u64,
    /// Bytes of `.bss` (including the arena).
    pub bss_bytes: u64,
    /// Bytes of the model blob.
    pub model_bytes: u64,
    /// Arena bytes of the model's plan.
    pub arena_bytes: u64,
    /// Peak stack measured by painting.
    pub stack_peak_bytes: u64,
}

impl BenchResult {
    /// Instructions per multiply-accumulate.
    pub fn instructions_per_mac(&self) -> f64 {
        self.instructions_median as f64 / self.macs.max(1) as f64
    }

    /// Flash the runtime needs besides the model: `.vector_table + .text + .rodata + .data`
    /// (everything the firmware puts in flash) minus the model blob and the benchmark's
    /// digits and labels.
    pub fn runtime_flash_bytes(&self) -> u64 {
        (self.vector_table_bytes + self.text_bytes + self.rodata_bytes + self.data_bytes)
            .saturating_sub(self.model_bytes + DIGIT_BYTES)
    }

    /// Fraction of the digits recognised.
    pub fn accuracy(&self) -> f64 {
        f64::from(self.correct) / f64::from(self.runs.max(1))
    }

    /// The `--json` object.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "instructions_median": self.instructions_median,
            "instructions_per_mac": self.instructions_per_mac(),
            "vector_table_bytes": self.vector_table_bytes,
            "text_bytes": self.text_bytes,
            "rodata_bytes": self.rodata_bytes,
            "data_bytes": self.data_bytes,
            "bss_bytes": self.bss_bytes,
            "model_bytes": self.model_bytes,
            "arena_bytes": self.arena_bytes,
            "stack_peak_bytes": self.stack_peak_bytes,
            "runtime_flash_bytes": self.runtime_flash_bytes(),
            "accuracy": self.accuracy(),
            "macs": self.macs,
            "layers": self.layers.iter().map(|l| json!({
                "op": l.op,
                "instructions": l.instructions,
                "macs": l.macs,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Builds the benchmark firmware with `model` (default: the shipped seed CNN), runs it in
/// QEMU and gathers the figures.
pub fn run_bench(model: Option<&Path>) -> Result<BenchResult> {
    check_qemu()?;
    let default_model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/seed_cnn.fxn");
    let model_path = model.unwrap_or(&default_model);
    let bytes = ModelBytes::read(model_path)?;
    bytes.model()?;
    let report = inspect(bytes.as_bytes())?;
    // The default model is built without FIXNET_MODEL, so this build shares its artefacts
    // with the serving firmware's.
    let elf = build_firmware("bench", model)?;
    let output = run_to_exit(&elf, Duration::from_secs(300))?;
    let mut result = parse_output(&output)?;
    ensure!(
        result.layers.len() == report.layers.len(),
        "the firmware reported {} layers, the model has {}",
        result.layers.len(),
        report.layers.len()
    );
    for (l, info) in result.layers.iter_mut().zip(&report.layers) {
        l.macs = info.macs as u64;
    }
    result.macs = report.macs() as u64;
    let sections = section_sizes(&elf)?;
    [
        result.vector_table_bytes,
        result.text_bytes,
        result.rodata_bytes,
        result.data_bytes,
        result.bss_bytes,
    ] = sections;
    Ok(result)
}

/// Runs a firmware that exits through semihosting; returns what it printed.
fn run_to_exit(elf: &Path, limit: Duration) -> Result<String> {
    let mut child = Command::new("qemu-system-arm")
        .args(QEMU_ARGS)
        .arg("-kernel")
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start qemu-system-arm")?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the benchmark did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader
        .join()
        .map_err(|_| anyhow!("reading QEMU's output"))?;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    ensure!(
        status.success(),
        "the benchmark firmware failed ({status}): {}{}",
        out.lines().last().unwrap_or(""),
        err.trim()
    );
    Ok(out)
}

/// Parses the benchmark firmware's report (see `boards/qemu-mps2-an386/src/bin/bench.rs`).
pub fn parse_output(text: &str) -> Result<BenchResult> {
    let mut layers = Vec::new();
    let mut summary = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["layer", _, op, "instructions", n] => layers.push(LayerBench {
                op: (*op).to_string(),
                instructions: n.parse()?,
                macs: 0,
            }),
            ["accuracy", frac, "median_instructions", median, "model_bytes", model, "arena_bytes", arena, "stack_peak_bytes", stack] =>
            {
                let (correct, runs) = frac
                    .split_once('/')
                    .ok_or_else(|| anyhow!("bad accuracy {frac}"))?;
                summary = Some((
                    correct.parse()?,
                    runs.parse()?,
                    median.parse()?,
                    model.parse()?,
                    arena.parse()?,
                    stack.parse()?,
                ));
            }
            _ => {}
        }
    }
    let (correct, runs, median, model, arena, stack) =
        summary.ok_or_else(|| anyhow!("the benchmark printed no summary:\n{text}"))?;
    Ok(BenchResult {
        instructions_median: median,
        macs: 0,
        layers,
        correct,
        runs,
        vector_table_bytes: 0,
        text_bytes: 0,
        rodata_bytes: 0,
        data_bytes: 0,
        bss_bytes: 0,
        model_bytes: model,
        arena_bytes: arena,
        stack_peak_bytes: stack,
    })
}

/// Sizes of `.vector_table`, `.text`, `.rodata`, `.data` and `.bss` in an ELF (0 for a
/// missing section).
pub fn section_sizes(elf: &Path) -> Result<[u64; 5]> {
    let data = std::fs::read(elf).with_context(|| format!("cannot read {}", elf.display()))?;
    let file = object::File::parse(&*data).context("not an ELF file")?;
    let size = |name: &str| file.section_by_name(name).map_or(0, |s| s.size());
    Ok([
        size(".vector_table"),
        size(".text"),
        size(".rodata"),
        size(".data"),
        size(".bss"),
    ])
}

/// The benchmark firmware's embedded test data: 100 digits of 784 pixels and their labels.
const DIGIT_BYTES: u64 = 100 * 784 + 100;

fn millions(n: u64) -> String {
    format!("{:.2} M", n as f64 / 1e6)
}

/// Instructions per inference of TFLite Micro with CMSIS-NN kernels (`shared/anchors.md`).
const CMSIS_NN_INSTRUCTIONS: u64 = 6_501_560;
/// Instructions per inference of TFLite Micro with its reference kernels.
const TFLM_REFERENCE_INSTRUCTIONS: u64 = 30_399_500;

/// How `ours` compares with `theirs` (instructions; fewer is faster): "N.N× faster than" or
/// "N.N× slower than", the ratio always at least 1.
fn speed_against(ours: u64, theirs: u64) -> String {
    let (ours, theirs) = (ours.max(1) as f64, theirs.max(1) as f64);
    if ours <= theirs {
        format!("{:.1}× faster than", theirs / ours)
    } else {
        format!("{:.1}× slower than", ours / theirs)
    }
}

/// The `docs/benchmarks.md` page for `r` (measured with `model`).
pub fn markdown(r: &BenchResult, model: &str) -> String {
    let mut layers = String::new();
    for (i, l) in r.layers.iter().enumerate() {
        let per_mac = if l.macs > 0 {
            format!("{:.2}", l.instructions as f64 / l.macs as f64)
        } else {
            "—".into()
        };
        layers.push_str(&format!(
            "| {i} | {} | {} | {} | {per_mac} |\n",
            l.op,
            thousands(l.instructions as usize),
            thousands(l.macs as usize),
        ));
    }
    format!(
        r#"# Benchmarks

Measured by `cargo run --release -p fixnet-tools -- bench --qemu` (this page is its output;
`--json` prints the same figures as JSON, `--model M.fxn` measures another model): the
benchmark firmware `boards/qemu-mps2-an386/src/bin/bench.rs`, built with `{model}`, runs the
first 100 MNIST test digits in QEMU 7.2's `mps2-an386` (`-cpu cortex-m4 -icount shift=0`).
Instructions are SysTick ticks × 40, the same harness as the reference numbers in
`shared/anchors.md`: guest instructions, not cycles. Per-layer figures are the median over the
100 digits of each op alone; the total also counts quantizing the input.

## {model} on the Cortex-M4 (QEMU)

| figure | value |
|---|---:|
| instructions / inference (median of {runs}) | **{median}** ({median_m}) |
| MACs / inference | {macs} |
| instructions / MAC | **{per_mac:.2}** |
| accuracy on those digits | {correct}/{runs} |
| model bytes (flash) | {model_bytes} |
| arena bytes (RAM for activations) | {arena} |
| peak stack (painted and scanned) | {stack} B |
| `.vector_table` | {vectors} B |
| `.text` (code) | {text} B |
| `.rodata` (constants: the model and the 100 digits included) | {rodata} B |
| `.data` | {data} B |
| `.bss` (statics, arena included) | {bss} B |

Runtime flash (code + constants, without the model and the benchmark's digits): **{runtime} B**,
computed as `.vector_table + .text + .rodata + .data` (every section the firmware puts in
flash) − the model's {model_bytes} bytes − the {digits} bytes of digits and labels. The
benchmark firmware links no `core::fmt` (it prints with its own integer formatter, and its
panic handler prints no message), so this is the interpreter, its kernels, the model
validation, the start-up code and the soft-float routines. TFLM's comparable figure is
69,788 B (reference kernels) or 80,788 B (CMSIS-NN).

### Per layer

| # | op | instructions | MACs | per MAC |
|---:|---|---:|---:|---:|
{layers}
## Against the references (same emulator, same digits; `shared/anchors.md`)

| runtime | instructions / inference | per MAC | arena | peak stack |
|---|---:|---:|---:|---:|
| **fixnet** (this build) | **{median}** | **{per_mac:.2}** | {arena} B | {stack} B |
| TFLite Micro, reference kernels | 30,399,500 | 11.55 | 30,484 B | 800 B |
| TFLite Micro, CMSIS-NN kernels | 6,501,560 | 2.47 | 30,596 B | 1,380 B |
| MicroFlow 0.1.3 (average-pool variant) | 36,790,000 | 14.0 | — | 54.3 KB |

On this build fixnet is {vs_reference} TFLM's reference kernels and {vs_cmsis}
TFLM with CMSIS-NN's hand-written kernels, bit-exact with TFLite's reference kernels
throughout. The floor for this model is about 1.3 M instructions (two 16-bit MACs per
`SMLAD`).
"#,
        runs = r.runs,
        median = thousands(r.instructions_median as usize),
        median_m = millions(r.instructions_median),
        macs = thousands(r.macs as usize),
        per_mac = r.instructions_per_mac(),
        correct = r.correct,
        model_bytes = thousands(r.model_bytes as usize),
        arena = thousands(r.arena_bytes as usize),
        stack = thousands(r.stack_peak_bytes as usize),
        vectors = thousands(r.vector_table_bytes as usize),
        text = thousands(r.text_bytes as usize),
        rodata = thousands(r.rodata_bytes as usize),
        data = thousands(r.data_bytes as usize),
        bss = thousands(r.bss_bytes as usize),
        digits = thousands(DIGIT_BYTES as usize),
        runtime = thousands(r.runtime_flash_bytes() as usize),
        vs_reference = speed_against(r.instructions_median, TFLM_REFERENCE_INSTRUCTIONS),
        vs_cmsis = speed_against(r.instructions_median, CMSIS_NN_INSTRUCTIONS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_firmware_report() {
        let text = "digit 0 label 7 predicted 7 instructions 100\n\
                    layer 0 Conv2D instructions 60\n\
                    layer 1 Softmax instructions 30\n\
                    accuracy 98/100 median_instructions 23398200 model_bytes 230764 arena_bytes 27040 stack_peak_bytes 2700\n";
        let r = parse_output(text).unwrap();
        assert_eq!(r.instructions_median, 23_398_200);
        assert_eq!(r.layers.len(), 2);
        assert_eq!(r.layers[1].op, "Softmax");
        assert_eq!((r.correct, r.runs), (98, 100));
        assert_eq!(r.stack_peak_bytes, 2700);
        assert!(parse_output("garbage").is_err());
    }

    #[test]
    fn compares_speed_in_the_right_direction() {
        assert_eq!(speed_against(3_684_520, 6_501_560), "1.8× faster than");
        assert_eq!(speed_against(13_003_120, 6_501_560), "2.0× slower than");
        assert_eq!(speed_against(100, 100), "1.0× faster than");
    }

    #[test]
    fn runtime_flash_counts_every_flash_section_but_the_model_and_digits() {
        let mut r = parse_output(
            "accuracy 98/100 median_instructions 1 model_bytes 1000 arena_bytes 1 stack_peak_bytes 1\n",
        )
        .unwrap();
        r.vector_table_bytes = 1024;
        r.text_bytes = 20_000;
        r.rodata_bytes = 1000 + DIGIT_BYTES + 300;
        r.data_bytes = 8;
        assert_eq!(r.runtime_flash_bytes(), 1024 + 20_000 + 300 + 8);
    }
}
