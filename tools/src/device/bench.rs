//! `fixnet bench --qemu`: builds the benchmark firmware (`boards/qemu-mps2-an386/bench`)
//! with a model and only that model's ops, for the Cortex-M4 (DSP kernels) and for
//! Armv6-M (portable kernels), runs it in QEMU, checks every output against the host
//! interpreter, and reports instructions (median of 100 inferences, per layer, per MAC), ELF
//! section sizes, model, arena and peak stack bytes.

use super::qemu::{board_cargo, board_dir, check_qemu, QEMU_ARGS};
use crate::fxn::ModelBytes;
use crate::inspect::{inspect, thousands};
use anyhow::{anyhow, bail, ensure, Context, Result};
use fixnet::format::crc32::crc32;
use fixnet::format::OpKind;
use fixnet::{Interpreter, Model};
use object::{Object, ObjectSection};
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The targets the benchmark builds for: the Cortex-M4F with its DSP kernels, and Armv6-M
/// (Cortex-M0+) with the portable ones, run on the same emulated Cortex-M4.
pub const BENCH_TARGETS: [&str; 2] = ["thumbv7em-none-eabihf", "thumbv6m-none-eabi"];

/// The benchmark firmware's package in the board's workspace.
const BENCH_PACKAGE: &str = "fixnet-qemu-bench";

/// Digits the firmware runs (the first ones of the MNIST test set).
const DIGITS: usize = 100;

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

/// What the firmware reported for one digit.
#[derive(Clone, Debug, PartialEq)]
pub struct DigitRun {
    /// The digit's label.
    pub label: u8,
    /// The class the firmware predicted.
    pub predicted: usize,
    /// CRC-32 of the firmware's output vector (its int8 values as bytes).
    pub output_crc: u32,
}

/// Everything the benchmark measures.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// The Rust target the firmware was built for.
    pub target: String,
    /// The `fixnet` op features the firmware was built with (the model's ops).
    pub features: Vec<String>,
    /// Each digit's prediction and output checksum.
    pub digits: Vec<DigitRun>,
    /// Digits whose output vector equals the host interpreter's, byte for byte (checked:
    /// the benchmark fails otherwise).
    pub host_equal: u32,
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
            "target": self.target,
            "features": self.features,
            "host_equal": self.host_equal,
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

/// Builds the benchmark firmware for `target` with `model` (default: the shipped seed CNN)
/// and only its ops, runs it in QEMU, checks its outputs against the host interpreter and
/// gathers the figures.
pub fn run_bench(model: Option<&Path>, target: &str) -> Result<BenchResult> {
    check_qemu()?;
    let default_model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/seed_cnn.fxn");
    let model_path = model.unwrap_or(&default_model);
    let bytes = ModelBytes::read(model_path)?;
    let parsed = bytes.model()?;
    let features = op_features(&parsed)?;
    let report = inspect(bytes.as_bytes())?;
    let elf = build_bench(target, model, &features)?;
    let output = run_to_exit(&elf, Duration::from_secs(600))?;
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
    result.target = target.to_string();
    result.features = features.iter().map(|f| f.to_string()).collect();
    result.host_equal = compare_with_host(&parsed, &result.digits)?;
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

/// The `fixnet` cargo features of the ops `model` runs: what the firmware is built with, as
/// TFLite Micro's MicroMutableOpResolver lists the ops of its model. A convolution fused
/// with its max pool needs only the fused kernel (`op-conv2d-pool`), and the pool no
/// feature of its own.
pub fn op_features(model: &Model<'_>) -> Result<Vec<&'static str>> {
    let mut features = Vec::new();
    for op in model.ops() {
        let op = op.map_err(|e| anyhow!("{e}"))?;
        let feature = match op.kind() {
            OpKind::Conv2d if op.fused_pool().is_some() => "op-conv2d-pool",
            OpKind::Conv2d => "op-conv2d",
            OpKind::DepthwiseConv2d => "op-depthwise-conv2d",
            OpKind::MaxPool if model.is_elided(op.input()) => continue,
            OpKind::MaxPool => "op-max-pool",
            OpKind::AvgPool => "op-avg-pool",
            OpKind::FullyConnected => "op-fully-connected",
            OpKind::Softmax => "op-softmax",
            OpKind::Add => "op-add",
            OpKind::Mul => "op-mul",
            OpKind::Lookup => "op-lookup",
            OpKind::Mean => "op-mean",
            OpKind::Pad => "op-pad",
            OpKind::Concatenation => "op-concatenation",
            OpKind::Reshape => continue,
        };
        if !features.contains(&feature) {
            features.push(feature);
        }
    }
    Ok(features)
}

/// `cargo build --release -p fixnet-qemu-bench --target TARGET --no-default-features
/// --features fixnet/op-…` in the board's workspace, with `model` embedded. Returns the ELF.
fn build_bench(target: &str, model: Option<&Path>, features: &[&str]) -> Result<PathBuf> {
    let dir = board_dir();
    let features: Vec<String> = features.iter().map(|f| format!("fixnet/{f}")).collect();
    let features_arg = format!("--features={}", features.join(","));
    let status = board_cargo(
        &[
            "build",
            "--release",
            "-p",
            BENCH_PACKAGE,
            "--target",
            target,
            "--no-default-features",
            &features_arg,
        ],
        model,
    )?
    .status()
    .context("cannot run cargo to build the benchmark firmware")?;
    ensure!(
        status.success(),
        "building the benchmark firmware for {target} failed ({status}); is the target \
         installed (rustup target add {target})?"
    );
    let elf = dir
        .join("target")
        .join(target)
        .join("release")
        .join("bench");
    ensure!(elf.exists(), "no firmware at {}", elf.display());
    Ok(elf)
}

/// Runs `model` on the host over the digits the firmware ran (quantized as it does) and
/// checks every prediction and output checksum the firmware reported. Returns how many
/// digits were compared (all of them, or an error).
fn compare_with_host(model: &Model<'_>, digits: &[DigitRun]) -> Result<u32> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let images = crate::idx::read_images(&root.join("data/mnist/test-images-idx3-ubyte.gz"))?;
    let pixels = images
        .pixels
        .get(..DIGITS * 784)
        .context("too few test images")?;
    ensure!(
        digits.len() == DIGITS,
        "the firmware reported {} digits, not {DIGITS}",
        digits.len()
    );
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(model, &mut arena).map_err(|e| anyhow!("{e}"))?;
    for (i, (image, run)) in pixels.chunks_exact(784).zip(digits).enumerate() {
        let input = interp.input_mut();
        if input.len() == 784 {
            interp.set_input_grey(image).map_err(|e| anyhow!("{e}"))?;
        } else {
            // The firmware's rule for other input sizes: the digit's bytes, cut or repeated.
            for (k, q) in input.iter_mut().enumerate() {
                *q = (i16::from(image[k % 784]) - 128) as i8;
            }
        }
        interp.invoke().map_err(|e| anyhow!("{e}"))?;
        let (predicted, _) = interp.top1();
        let crc = crc32(bytemuck::cast_slice(interp.output()));
        ensure!(
            (predicted, crc) == (run.predicted, run.output_crc),
            "digit {i}: the firmware predicted {} (output CRC {:08x}), the host interpreter {} \
             ({crc:08x})",
            run.predicted,
            run.output_crc,
            predicted
        );
    }
    Ok(digits.len() as u32)
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
    let mut digits = Vec::new();
    let mut summary = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["digit", _, "label", label, "predicted", predicted, "output_crc", crc, "instructions", _] => {
                digits.push(DigitRun {
                    label: label.parse()?,
                    predicted: predicted.parse()?,
                    output_crc: crc.parse()?,
                })
            }
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
        target: String::new(),
        features: Vec::new(),
        digits,
        host_equal: 0,
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

/// The start of the page: how it is made, for every target.
const INTRO: &str = "# Benchmarks

Measured by `cargo run --release -p fixnet-tools -- bench --qemu` (this page is its output;
`--target T` measures one target and keeps the other's section, `--json` prints the figures
as JSON, `--model M.fxn` measures another model; sections after the benchmark's own, such
as the host figures, are kept when it rewrites the page). The benchmark firmware
`boards/qemu-mps2-an386/bench` is built with the model and only the model's ops (fixnet's
`op-…` features, as TFLite Micro's MicroMutableOpResolver lists the ops of its model) and
runs the first 100 MNIST test digits in QEMU 7.2's `mps2-an386` (`-cpu cortex-m4 -icount
shift=0`). Instructions are SysTick ticks × 40, the same harness as the reference numbers in
`shared/anchors.md`: guest instructions, not cycles. Per-layer figures are the median over the
100 digits of each op alone; the total also counts quantizing the input. Every digit's
output vector (its CRC-32) and prediction are checked against the host interpreter's, so
each build below is also a bit-exactness test of its kernels.

The `thumbv6m-none-eabi` build (Cortex-M0+: no DSP instructions, no 64-bit multiply, no
divide) runs on the same emulated Cortex-M4: Armv6-M is a subset of Armv7E-M, so QEMU executes
and counts exactly the instructions an M0+ would. QEMU has no Cortex-M0 machine with room for
the 231 KB model (its micro:bit has 256 KB of flash and 16 KB of RAM), and a Cortex-M3 machine
would run the same instructions.
";

/// The marker lines around a target's section of the page.
fn markers(target: &str) -> (String, String) {
    (
        format!("<!-- fixnet bench: {target} -->"),
        format!("<!-- fixnet bench: end of {target} -->"),
    )
}

/// Writes the page: the introduction, then each target's section, the new one of `results`
/// or else the one in `existing` (the page as it was), then whatever followed the
/// benchmark's sections in `existing` (another tool's section, such as the host figures).
pub fn page(existing: Option<&str>, results: &[(&BenchResult, &str)]) -> String {
    let existing = existing.unwrap_or("");
    let mut out = String::from(INTRO);
    let mut tail_from = None;
    for target in BENCH_TARGETS {
        let (begin, end) = markers(target);
        let old = existing.find(&begin).and_then(|b| {
            let e = existing[b..].find(&end)? + b + end.len();
            Some((b, e))
        });
        if let Some((_, e)) = old {
            tail_from = Some(tail_from.map_or(e, |t: usize| t.max(e)));
        }
        let section = match results.iter().find(|(r, _)| r.target == target) {
            Some((r, model)) => format!("{begin}\n{}{end}\n", markdown(r, model)),
            None => match old {
                Some((b, e)) => format!("{}\n", &existing[b..e]),
                None => continue,
            },
        };
        out.push('\n');
        out.push_str(&section);
    }
    // A page from before the markers: keep only sections that are not the benchmark's.
    let tail = match tail_from {
        Some(t) => existing[t..].trim_start_matches('\n'),
        None => existing
            .find("\n## Host")
            .map_or("", |h| &existing[h + 1..]),
    };
    if !tail.trim().is_empty() {
        out.push('\n');
        out.push_str(tail);
    }
    out
}

/// The title of a target's section.
fn section_title(target: &str, model: &str) -> String {
    match target {
        "thumbv7em-none-eabihf" => {
            format!("{model} on the Cortex-M4 (QEMU; `thumbv7em-none-eabihf`, DSP kernels)")
        }
        "thumbv6m-none-eabi" => format!(
            "{model} for the Cortex-M0+ (`thumbv6m-none-eabi`, portable kernels; QEMU Cortex-M4)"
        ),
        other => format!("{model} on `{other}` (QEMU Cortex-M4)"),
    }
}

/// The section of the page for `r` (measured with `model`).
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
    let features = r
        .features
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let references = if r.target == BENCH_TARGETS[0] {
        format!(
            r#"
### Against the references (same emulator, same digits; `shared/anchors.md`)

| runtime | instructions / inference | per MAC | arena | peak stack | runtime flash |
|---|---:|---:|---:|---:|---:|
| **fixnet** (this build) | **{median}** | **{per_mac:.2}** | {arena} B | {stack} B | {runtime} B |
| TFLite Micro, reference kernels | 30,399,500 | 11.55 | 30,484 B | 800 B | 69,788 B |
| TFLite Micro, CMSIS-NN kernels | 6,501,560 | 2.47 | 30,596 B | 1,380 B | 80,788 B |
| MicroFlow 0.1.3 (average-pool variant) | 36,790,000 | 14.0 | — | 54.3 KB | 20.8 KB |

On this build fixnet is {vs_reference} TFLM's reference kernels and {vs_cmsis}
TFLM with CMSIS-NN's hand-written kernels, bit-exact with TFLite's reference kernels
throughout. The floor for this model is about 1.3 M instructions (two 16-bit MACs per
`SMLAD`).
"#,
            median = thousands(r.instructions_median as usize),
            per_mac = r.instructions_per_mac(),
            arena = thousands(r.arena_bytes as usize),
            stack = thousands(r.stack_peak_bytes as usize),
            runtime = thousands(r.runtime_flash_bytes() as usize),
            vs_reference = speed_against(r.instructions_median, TFLM_REFERENCE_INSTRUCTIONS),
            vs_cmsis = speed_against(r.instructions_median, CMSIS_NN_INSTRUCTIONS),
        )
    } else {
        String::new()
    };
    format!(
        r#"## {title}

| figure | value |
|---|---:|
| instructions / inference (median of {runs}) | **{median}** ({median_m}) |
| MACs / inference | {macs} |
| instructions / MAC | **{per_mac:.2}** |
| accuracy on those digits | {correct}/{runs} |
| outputs equal to the host interpreter's | {host_equal}/{runs} |
| model bytes (flash) | {model_bytes} |
| arena bytes (RAM for activations) | {arena} |
| peak stack (painted and scanned) | {stack} B |
| `.vector_table` | {vectors} B |
| `.text` (code) | {text} B |
| `.rodata` (constants: the model and the 100 digits included) | {rodata} B |
| `.data` | {data} B |
| `.bss` (statics, arena included) | {bss} B |
| **runtime flash** | **{runtime} B** |

Runtime flash (code + constants, without the model and the benchmark's digits) is
`.vector_table + .text + .rodata + .data` (every section the firmware puts in flash) − the
model's {model_bytes} bytes − the {digits} bytes of digits and labels. The firmware is built
with fixnet's {features} and links no `core::fmt` (it prints with its own integer formatter,
and its panic handler prints no message), so this is the model loader and validation, the
interpreter, the model's kernels, the start-up code, the arithmetic routines the compiler
calls and the benchmark's own few hundred bytes of reporting.

### Per layer

| # | op | instructions | MACs | per MAC |
|---:|---|---:|---:|---:|
{layers}{references}"#,
        title = section_title(&r.target, model),
        runs = r.runs,
        median = thousands(r.instructions_median as usize),
        median_m = millions(r.instructions_median),
        macs = thousands(r.macs as usize),
        per_mac = r.instructions_per_mac(),
        correct = r.correct,
        host_equal = r.host_equal,
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
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_firmware_report() {
        let text = "digit 0 label 7 predicted 7 output_crc 4023233417 instructions 100\n\
                    layer 0 Conv2D instructions 60\n\
                    layer 1 Softmax instructions 30\n\
                    accuracy 98/100 median_instructions 23398200 model_bytes 230764 arena_bytes 27040 stack_peak_bytes 2700\n";
        let r = parse_output(text).unwrap();
        assert_eq!(r.instructions_median, 23_398_200);
        assert_eq!(r.layers.len(), 2);
        assert_eq!(r.layers[1].op, "Softmax");
        assert_eq!((r.correct, r.runs), (98, 100));
        assert_eq!(r.stack_peak_bytes, 2700);
        assert_eq!(
            r.digits,
            [DigitRun {
                label: 7,
                predicted: 7,
                output_crc: 4_023_233_417
            }]
        );
        assert!(parse_output("garbage").is_err());
    }

    fn result_for(target: &str, median: &str) -> BenchResult {
        let mut r = parse_output(&format!(
            "accuracy 98/100 median_instructions {median} model_bytes 1000 arena_bytes 1 stack_peak_bytes 1\n"
        ))
        .unwrap();
        r.target = target.into();
        r
    }

    #[test]
    fn the_page_keeps_the_other_target_and_foreign_sections() {
        let m4 = result_for(BENCH_TARGETS[0], "3700000");
        let m0 = result_for(BENCH_TARGETS[1], "18000000");
        let both = page(None, &[(&m4, "seed"), (&m0, "seed")]);
        assert!(both.contains("3,700,000") && both.contains("18,000,000"));
        assert!(
            both.find("## seed on the Cortex-M4").unwrap()
                < both.find("## seed for the Cortex-M0+").unwrap()
        );
        let with_host = format!("{both}\n## Host\n\nhost figures\n");
        // Only the M4 measured again: the M0+ section and the host section stay.
        let m4_again = result_for(BENCH_TARGETS[0], "3600000");
        let again = page(Some(&with_host), &[(&m4_again, "seed")]);
        assert!(again.contains("3,600,000") && !again.contains("3,700,000"));
        assert!(again.contains("18,000,000"));
        assert!(again.ends_with("## Host\n\nhost figures\n"), "{again}");
        assert_eq!(page(Some(&again), &[(&m4_again, "seed")]), again);
        // A page from before the markers keeps its host section only.
        let old = "# Benchmarks\n\n## seed on the Cortex-M4 (QEMU)\n\nold\n\n## Host\n\nh\n";
        let new = page(Some(old), &[(&m4, "seed")]);
        assert!(
            !new.contains("old") && new.ends_with("## Host\n\nh\n"),
            "{new}"
        );
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
