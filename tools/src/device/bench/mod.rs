//! `fixnet bench --qemu`: builds the benchmark firmware (`boards/qemu-mps2-an386/bench`)
//! with a model and only that model's ops, for the Cortex-M4 (DSP kernels) and for
//! Armv6-M (portable kernels), runs it in QEMU, checks every output against the host
//! interpreter, and reports instructions (median of 100 inferences, per layer, per MAC), ELF
//! section sizes, model, arena (planned and its lower bound) and peak stack bytes.
//!
//! Any model runs: one that reads a 28×28 grey digit runs the first 100 MNIST test digits,
//! any other 100 random int8 inputs the host can make again ([`inputs`]). The results of
//! every model measured are kept in a JSON file beside the Markdown page, which shows them
//! all in one table ([`page`]).

pub mod inputs;
pub mod page;

use super::qemu::{board_dir, cargo_in, check_qemu};
use crate::arena_bound::arena_lower_bound;
use crate::fxn::ModelBytes;
use crate::inspect::inspect;
use anyhow::{anyhow, bail, ensure, Context, Result};
use fixnet::format::OpKind;
use fixnet::Model;
use inputs::{compare_with_host, input_kind, InputKind};
use object::{Object, ObjectSection};
use serde_json::{json, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The targets the benchmark builds for: the Cortex-M4F with its DSP kernels, and Armv6-M
/// (Cortex-M0+) with the portable ones, run on the same emulated Cortex-M4.
pub const BENCH_TARGETS: [&str; 2] = ["thumbv7em-none-eabihf", "thumbv6m-none-eabi"];

/// The third target, asked for by name: Armv6-M code on QEMU's BBC micro:bit machine, a
/// real Cortex-M0 (nRF51822, 16 KiB RAM), timed by its TIMER0 (the firmware's `microbit`
/// feature, with the micro:bit's memory map).
pub const MICROBIT: &str = "microbit";

/// Every value of `fixnet bench --target`.
pub const TARGET_CHOICES: [&str; 3] = [BENCH_TARGETS[0], BENCH_TARGETS[1], MICROBIT];

/// The benchmark firmware's package in the board's workspace.
const BENCH_PACKAGE: &str = "fixnet-qemu-bench";
/// The same firmware's package in the micro:bit's workspace (its memory map).
const MICROBIT_BENCH_PACKAGE: &str = "fixnet-microbit-bench";

/// Inferences the firmware runs (`RUNS` in its source).
pub const RUNS: usize = 100;

/// The benchmark firmware's embedded test data: 100 digits of 784 pixels and their labels
/// (embedded whatever the model, so that runtime flash is counted the same way for all).
pub const DIGIT_BYTES: u64 = 100 * 784 + 100;

/// The model `fixnet bench` measures when given none.
pub fn default_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/seed_cnn.fxn")
}

/// The `.fxn` file to benchmark for `path`: itself, or for a `.tflite` model its conversion
/// (as `fixnet convert` makes it), written to the board's `target/models/` under the same
/// name.
pub fn model_file(path: &Path) -> Result<PathBuf> {
    if path.extension().and_then(|e| e.to_str()) != Some("tflite") {
        return Ok(path.to_path_buf());
    }
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let graph = crate::tflite::import(&data).with_context(|| path.display().to_string())?;
    let bytes = crate::lower::lower(&graph).with_context(|| path.display().to_string())?;
    let dir = board_dir().join("target/models");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let fxn = dir.join(format!("{}.fxn", model_name(path)));
    // Unchanged bytes keep the file's time, so that cargo does not rebuild the firmware.
    if std::fs::read(&fxn).ok().as_deref() != Some(&bytes[..]) {
        std::fs::write(&fxn, bytes).with_context(|| format!("cannot write {}", fxn.display()))?;
    }
    Ok(fxn)
}

/// The name a model goes by in the results: its file name without the extension.
pub fn model_name(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into(),
    )
}

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

/// What the firmware reported for one inference.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// The digit's label (none for a random input).
    pub label: Option<u8>,
    /// The class the firmware predicted (the largest output).
    pub predicted: usize,
    /// CRC-32 of the firmware's output vector (its int8 values as bytes).
    pub output_crc: u32,
}

/// Everything the benchmark measures.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// The model's name ([`model_name`]).
    pub model: String,
    /// The Rust target the firmware was built for.
    pub target: String,
    /// The `fixnet` op features the firmware was built with (the model's ops).
    pub features: Vec<String>,
    /// What the model was fed.
    pub inputs: InputKind,
    /// Each inference's prediction and output checksum (not kept in the results file).
    pub outputs: Vec<Run>,
    /// Inferences whose output vector equals the host interpreter's, byte for byte
    /// (checked: the benchmark fails otherwise).
    pub host_equal: u32,
    /// Median instructions of one inference (quantizing a digit included).
    pub instructions_median: u64,
    /// Multiply-accumulates of one inference.
    pub macs: u64,
    /// Per-layer medians, in execution order.
    pub layers: Vec<LayerBench>,
    /// Correct predictions of the digits (none for random inputs).
    pub correct: Option<u32>,
    /// Inferences run.
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
    /// The most activation bytes alive at one step ([`crate::arena_bound`]).
    pub arena_lower_bound: u64,
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

    /// Fraction of the digits recognised (none for random inputs).
    pub fn accuracy(&self) -> Option<f64> {
        self.correct
            .map(|c| f64::from(c) / f64::from(self.runs.max(1)))
    }

    /// Planned arena over its lower bound (1 when the plan is as small as can be).
    pub fn arena_ratio(&self) -> f64 {
        self.arena_bytes as f64 / self.arena_lower_bound.max(1) as f64
    }

    /// The figures as one JSON object (the `--json` output and an entry of the results
    /// file); `layers` only when `with_layers`.
    pub fn to_json(&self, with_layers: bool) -> Value {
        let mut v = json!({
            "model": self.model,
            "target": self.target,
            "features": self.features,
            "inputs": self.inputs.name(),
            "runs": self.runs,
            "correct": self.correct,
            "accuracy": self.accuracy(),
            "host_equal": self.host_equal,
            "instructions_median": self.instructions_median,
            "instructions_per_mac": self.instructions_per_mac(),
            "macs": self.macs,
            "vector_table_bytes": self.vector_table_bytes,
            "text_bytes": self.text_bytes,
            "rodata_bytes": self.rodata_bytes,
            "data_bytes": self.data_bytes,
            "bss_bytes": self.bss_bytes,
            "model_bytes": self.model_bytes,
            "arena_bytes": self.arena_bytes,
            "arena_lower_bound": self.arena_lower_bound,
            "stack_peak_bytes": self.stack_peak_bytes,
            "runtime_flash_bytes": self.runtime_flash_bytes(),
        });
        if with_layers {
            v["layers"] = self
                .layers
                .iter()
                .map(|l| json!({"op": l.op, "instructions": l.instructions, "macs": l.macs}))
                .collect();
        }
        v
    }

    /// Reads back an object written by [`BenchResult::to_json`] (derived figures are
    /// recomputed, per-inference outputs are not kept).
    pub fn from_json(v: &Value) -> Result<Self> {
        let text = |key: &str| -> Result<String> {
            Ok(v[key]
                .as_str()
                .with_context(|| format!("no text `{key}` in {v}"))?
                .to_string())
        };
        let number = |key: &str| -> Result<u64> {
            v[key]
                .as_u64()
                .with_context(|| format!("no number `{key}` in {v}"))
        };
        let layers = match v.get("layers").and_then(Value::as_array) {
            Some(layers) => layers
                .iter()
                .map(|l| -> Result<LayerBench> {
                    Ok(LayerBench {
                        op: l["op"].as_str().context("a layer without op")?.to_string(),
                        instructions: l["instructions"].as_u64().context("layer instructions")?,
                        macs: l["macs"].as_u64().context("layer MACs")?,
                    })
                })
                .collect::<Result<_>>()?,
            None => Vec::new(),
        };
        Ok(BenchResult {
            model: text("model")?,
            target: text("target")?,
            features: v["features"]
                .as_array()
                .map(|f| {
                    f.iter()
                        .filter_map(|s| s.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
            inputs: InputKind::from_name(&text("inputs")?)?,
            outputs: Vec::new(),
            host_equal: number("host_equal")? as u32,
            instructions_median: number("instructions_median")?,
            macs: number("macs")?,
            layers,
            correct: v["correct"].as_u64().map(|c| c as u32),
            runs: number("runs")? as u32,
            vector_table_bytes: number("vector_table_bytes")?,
            text_bytes: number("text_bytes")?,
            rodata_bytes: number("rodata_bytes")?,
            data_bytes: number("data_bytes")?,
            bss_bytes: number("bss_bytes")?,
            model_bytes: number("model_bytes")?,
            arena_bytes: number("arena_bytes")?,
            arena_lower_bound: number("arena_lower_bound")?,
            stack_peak_bytes: number("stack_peak_bytes")?,
        })
    }
}

/// Builds the benchmark firmware for `target` with the model at `model_path` and only its
/// ops, runs it in QEMU, checks its outputs against the host interpreter and gathers the
/// figures.
pub fn run_bench(model_path: &Path, target: &str) -> Result<BenchResult> {
    check_qemu()?;
    let bytes = ModelBytes::read(model_path)?;
    let parsed = bytes.model()?;
    let features = op_features(&parsed)?;
    let kind = input_kind(&parsed)?;
    let report = inspect(bytes.as_bytes())?;
    let (elf, qemu_args) = if target == MICROBIT {
        let mut with_board = features.clone();
        with_board.push(MICROBIT);
        let elf = build_bench(
            &super::qemu::MICROBIT.dir(),
            MICROBIT_BENCH_PACKAGE,
            BENCH_TARGETS[1],
            model_path,
            &with_board,
        )?;
        (elf, super::qemu::MICROBIT_BENCH_ARGS)
    } else {
        let elf = build_bench(&board_dir(), BENCH_PACKAGE, target, model_path, &features)?;
        (elf, super::qemu::QEMU_ARGS)
    };
    let output = run_to_exit(&elf, qemu_args, Duration::from_secs(1200))?;
    let mut result = parse_output(&output)?;
    ensure!(
        result.inputs == kind,
        "the firmware ran {} inputs, the host expected {}",
        result.inputs.name(),
        kind.name()
    );
    ensure!(
        result.layers.len() == report.layers.len(),
        "the firmware reported {} layers, the model has {}",
        result.layers.len(),
        report.layers.len()
    );
    for (l, info) in result.layers.iter_mut().zip(&report.layers) {
        l.macs = info.macs as u64;
    }
    result.model = model_name(model_path);
    result.macs = report.macs() as u64;
    result.target = target.to_string();
    result.features = features.iter().map(|f| f.to_string()).collect();
    result.host_equal = compare_with_host(&parsed, kind, &result.outputs)?;
    result.arena_lower_bound = arena_lower_bound(&parsed)? as u64;
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

/// `cargo build --release -p PACKAGE --target TARGET --no-default-features --features
/// fixnet/op-…` in the board workspace at `dir`, with `model` embedded. Returns the ELF.
fn build_bench(
    dir: &Path,
    package: &str,
    target: &str,
    model: &Path,
    features: &[&str],
) -> Result<PathBuf> {
    // The board feature is the firmware's own; op features are fixnet's.
    let features: Vec<String> = features
        .iter()
        .map(|&f| match f {
            MICROBIT => f.to_string(),
            _ => format!("fixnet/{f}"),
        })
        .collect();
    let features_arg = format!("--features={}", features.join(","));
    let status = cargo_in(
        dir,
        &[
            "build",
            "--release",
            "-p",
            package,
            "--target",
            target,
            "--no-default-features",
            &features_arg,
        ],
        Some(model),
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

/// Runs a firmware that exits through semihosting on the machine `qemu_args` describe;
/// returns what it printed.
fn run_to_exit(elf: &Path, qemu_args: &[&str], limit: Duration) -> Result<String> {
    let mut child = Command::new("qemu-system-arm")
        .args(qemu_args)
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

/// Parses the benchmark firmware's report (see `boards/qemu-mps2-an386/bench/src/main.rs`).
pub fn parse_output(text: &str) -> Result<BenchResult> {
    let mut layers = Vec::new();
    let mut outputs = Vec::new();
    let mut summary = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["digit", _, "label", label, "predicted", predicted, "output_crc", crc, "instructions", _] => {
                outputs.push(Run {
                    label: Some(label.parse()?),
                    predicted: predicted.parse()?,
                    output_crc: crc.parse()?,
                })
            }
            ["random", _, "predicted", predicted, "output_crc", crc, "instructions", _] => outputs
                .push(Run {
                    label: None,
                    predicted: predicted.parse()?,
                    output_crc: crc.parse()?,
                }),
            ["layer", _, op, "instructions", n] => layers.push(LayerBench {
                op: (*op).to_string(),
                instructions: n.parse()?,
                macs: 0,
            }),
            ["summary", fields @ ..] => summary = Some(fields.to_vec()),
            _ => {}
        }
    }
    let fields = summary.ok_or_else(|| anyhow!("the benchmark printed no summary:\n{text}"))?;
    ensure!(fields.len() % 2 == 0, "bad summary {fields:?}");
    let field = |key: &str| {
        fields
            .chunks_exact(2)
            .find(|kv| kv[0] == key)
            .map(|kv| kv[1])
    };
    let number = |key: &str| -> Result<u64> {
        let value = field(key).with_context(|| format!("no {key} in the summary"))?;
        value
            .parse()
            .with_context(|| format!("bad {key} {value:?} in the summary"))
    };
    Ok(BenchResult {
        model: String::new(),
        target: String::new(),
        features: Vec::new(),
        inputs: InputKind::from_name(field("inputs").context("no inputs in the summary")?)?,
        outputs,
        host_equal: 0,
        instructions_median: number("median_instructions")?,
        macs: 0,
        layers,
        correct: field("correct")
            .map(|_| number("correct"))
            .transpose()?
            .map(|c| c as u32),
        runs: number("runs")? as u32,
        vector_table_bytes: 0,
        text_bytes: 0,
        rodata_bytes: 0,
        data_bytes: 0,
        bss_bytes: 0,
        model_bytes: number("model_bytes")?,
        arena_bytes: number("arena_bytes")?,
        arena_lower_bound: 0,
        stack_peak_bytes: number("stack_peak_bytes")?,
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

#[cfg(test)]
mod tests {
    use super::*;

    const DIGITS_REPORT: &str = "digit 0 label 7 predicted 7 output_crc 4023233417 instructions 100\n\
        layer 0 Conv2D instructions 60\n\
        layer 1 Softmax instructions 30\n\
        summary inputs digits runs 100 correct 98 median_instructions 23398200 model_bytes 230764 arena_bytes 27040 stack_peak_bytes 2700\n";

    #[test]
    fn parses_the_firmware_report_on_digits() {
        let r = parse_output(DIGITS_REPORT).unwrap();
        assert_eq!(r.instructions_median, 23_398_200);
        assert_eq!(r.inputs, InputKind::Digits);
        assert_eq!(r.layers.len(), 2);
        assert_eq!(r.layers[1].op, "Softmax");
        assert_eq!((r.correct, r.runs), (Some(98), 100));
        assert_eq!(r.stack_peak_bytes, 2700);
        assert_eq!(
            r.outputs,
            [Run {
                label: Some(7),
                predicted: 7,
                output_crc: 4_023_233_417
            }]
        );
        assert!(parse_output("garbage").is_err());
        assert!(parse_output("summary inputs digits runs").is_err());
    }

    #[test]
    fn parses_the_firmware_report_on_random_inputs() {
        let r = parse_output(
            "random 0 predicted 3 output_crc 17 instructions 100\n\
             summary inputs random runs 100 median_instructions 5 model_bytes 6 arena_bytes 7 stack_peak_bytes 8\n",
        )
        .unwrap();
        assert_eq!(r.inputs, InputKind::Random);
        assert_eq!((r.correct, r.accuracy()), (None, None));
        assert_eq!(
            r.outputs,
            [Run {
                label: None,
                predicted: 3,
                output_crc: 17
            }]
        );
        assert_eq!(
            (r.instructions_median, r.model_bytes, r.arena_bytes),
            (5, 6, 7)
        );
    }

    #[test]
    fn the_results_file_entry_reads_back() {
        let mut r = parse_output(DIGITS_REPORT).unwrap();
        r.model = "seed_cnn".into();
        r.target = BENCH_TARGETS[1].into();
        r.arena_lower_bound = 27_000;
        r.text_bytes = 1234;
        let back = BenchResult::from_json(&r.to_json(true)).unwrap();
        assert_eq!(
            back,
            BenchResult {
                outputs: Vec::new(),
                ..r.clone()
            }
        );
        let without_layers = BenchResult::from_json(&r.to_json(false)).unwrap();
        assert!(without_layers.layers.is_empty());
    }

    #[test]
    fn runtime_flash_counts_every_flash_section_but_the_model_and_digits() {
        let mut r = parse_output(DIGITS_REPORT).unwrap();
        r.model_bytes = 1000;
        r.vector_table_bytes = 1024;
        r.text_bytes = 20_000;
        r.rodata_bytes = 1000 + DIGIT_BYTES + 300;
        r.data_bytes = 8;
        assert_eq!(r.runtime_flash_bytes(), 1024 + 20_000 + 300 + 8);
    }

    #[test]
    fn names_a_model_after_its_file() {
        assert_eq!(
            model_name(Path::new("target/kws_ref_model.fxn")),
            "kws_ref_model"
        );
        assert_eq!(model_name(&default_model()), "seed_cnn");
    }
}
