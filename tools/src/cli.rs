//! The `fixnet` command line: argument parsing and the subcommands.

use crate::eval::Evaluation;
use crate::fxn::ModelBytes;
use crate::{idx, inputs, inspect, lower, npy, preprocess, runner, tflite};
use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// fixnet host tool: convert, inspect, evaluate and run int8 models for microcontrollers.
#[derive(Debug, Parser)]
#[command(name = "fixnet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Threads for eval, run, calibration and fine-tuning's evaluation passes (each its own
    /// interpreter; results identical to one thread) [default: every core].
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    threads: Option<u32>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Convert a model to fixnet's format (.fxn): a full-integer int8 .tflite as it is, or
    /// a float Keras .keras/.h5 quantized with --calibrate data.
    Convert {
        /// Input model: .tflite (int8), .keras or .h5 (float, needs --calibrate).
        input: PathBuf,
        /// Output fixnet model.
        #[arg(short, long, value_name = "OUT.fxn")]
        output: PathBuf,
        /// Data to calibrate a float Keras model's quantization with: IDX images (fed as
        /// pixel / 255; the input gets scale 1/255, zero point -128) or a float32 .npy of the
        /// model's own inputs, shape (N, …input dims) or (N, elements) (the input's
        /// quantization then covers their range). Told apart by content.
        #[arg(long, value_name = "IMAGES|X.npy")]
        calibrate: Option<PathBuf>,
        /// How many of the calibration samples to use (the first ones).
        #[arg(long, value_name = "N", default_value_t = 500)]
        calibration_count: usize,
        /// Keep each Conv2D and the MaxPool2D after it as two ops (.tflite input): the
        /// convolution's output is then stored, which fine-tuning convolutions needs
        /// (`finetune --train biases|conv:K`), at the cost of its arena bytes.
        #[arg(long)]
        no_fuse: bool,
    },
    /// Show a model's layers, shapes, parameters, MACs, flash and arena bytes and CRC.
    Inspect {
        /// fixnet model.
        model: PathBuf,
        /// Also print the train arena needed to fine-tune from op K on.
        #[arg(long, value_name = "K")]
        train_from: Option<usize>,
    },
    /// Accuracy and confusion matrix on labelled inputs: IDX images or a .npy array.
    Eval {
        /// fixnet model.
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        source: InputArgs,
        /// Labels: IDX (.idx1-ubyte, optionally gzipped) or .npy of any integer type, shape
        /// (N,). Told apart by content.
        #[arg(long, value_name = "LABELS")]
        labels: PathBuf,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        /// Evaluate only the first N inputs.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Run the model on every input and write its outputs as an .npy array (N, outputs):
    /// int8, or float32 with --dequantize.
    Run {
        /// fixnet model.
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        source: InputArgs,
        /// Output .npy file.
        #[arg(long, value_name = "OUT.npy")]
        out: PathBuf,
        /// Write float32 outputs, (q - zero point) · scale with the output's quantization,
        /// instead of the raw int8 values.
        #[arg(long)]
        dequantize: bool,
        /// Run only the first N inputs.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Fine-tune a model on a user's labelled digits (host simulation of on-device training).
    Finetune(crate::finetune::FinetuneArgs),
    /// Classify pictures (PNG or JPEG, any size): digits (any polarity) for a 1-channel
    /// 28x28 model; colour pictures, resized to the input's HxW, for a 3-channel model.
    Predict {
        /// fixnet model.
        #[arg(long)]
        model: PathBuf,
        /// Pictures: single digits, or colour pictures for a 3-channel model.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Evaluate the shipped model (models/seed_cnn.fxn) on the 2,000 MNIST test digits.
    Demo,
    /// Talk to a board running fixnet's firmware: info, classify, eval, train, save, revert.
    Device(crate::device::commands::DeviceArgs),
    /// No board? Build the QEMU Cortex-M4 firmware, run it, and recognise test digits on it.
    Qemu(crate::device::commands::QemuArgs),
    /// Benchmark models on the QEMU Cortex-M4 and add them to docs/benchmarks.md.
    Bench(crate::device::commands::BenchArgs),
}

/// Where `run` and `eval` take their inputs from: exactly one of the two.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct InputArgs {
    /// IDX images (.idx3-ubyte, optionally gzipped), fed as pixel / 255.
    #[arg(long, value_name = "IMAGES")]
    images: Option<PathBuf>,
    /// Model inputs as .npy of shape (N, …input dims) or (N, elements): int8 (used as they
    /// are) or float32 (quantized with the input's scale and zero point, as TFLite does).
    #[arg(long, value_name = "X.npy")]
    inputs: Option<PathBuf>,
}

/// A command's inputs, loaded.
enum Batch {
    Images(idx::Images),
    Samples(inputs::Samples),
}

impl Batch {
    fn len(&self) -> usize {
        match self {
            Batch::Images(i) => i.len(),
            Batch::Samples(s) => s.len(),
        }
    }

    fn truncate(&mut self, n: usize) {
        match self {
            Batch::Images(i) => i.truncate(n),
            Batch::Samples(s) => s.truncate(n),
        }
    }

    /// What one input is called in reports.
    fn noun(&self) -> &'static str {
        match self {
            Batch::Images(_) => "images",
            Batch::Samples(_) => "inputs",
        }
    }
}

/// Parses `args` and runs the command. Help and version requests print and succeed; usage
/// errors come back as a one-line error.
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<ExitCode> {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help / --version
            let _ = e.print();
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            bail!(
                "no command given: use convert, inspect, eval, run, predict or demo (see --help)"
            );
        }
        Err(e) => {
            // clap's first paragraph, on one line: "the following required arguments were
            // not provided:" is followed by the arguments on lines of their own.
            let text = e.to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect();
            let first = first.join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            let first = if first.is_empty() {
                "invalid arguments"
            } else {
                first
            };
            bail!("{first} (see --help)");
        }
    };
    crate::parallel::set_default_threads(cli.threads.map(|n| n as usize));
    // FIXNET_HOST_SIMD=off runs the portable kernels (same results), for comparing speeds.
    #[cfg(target_arch = "x86_64")]
    if std::env::var_os("FIXNET_HOST_SIMD").is_some_and(|v| v == "off") {
        fixnet::kernels::host::set_enabled(false);
    }
    match cli.command {
        Command::Convert {
            input,
            output,
            calibrate,
            calibration_count,
            no_fuse,
        } => {
            ensure!(
                !no_fuse || extension(&input) == "tflite",
                "--no-fuse applies to .tflite models"
            );
            convert(
                &input,
                &output,
                calibrate.as_deref(),
                calibration_count,
                no_fuse,
            )
        }
        Command::Inspect { model, train_from } => {
            let code = inspect_cmd(&model)?;
            if let Some(k) = train_from {
                print!("{}", crate::finetune::train_arena_report(&model, k)?);
            }
            Ok(code)
        }
        Command::Finetune(args) => crate::finetune::run(args),
        Command::Eval {
            model,
            source,
            labels,
            json,
            limit,
        } => eval(&model, &source, &labels, json, limit),
        Command::Run {
            model,
            source,
            out,
            dequantize,
            limit,
        } => run_cmd(&model, &source, &out, dequantize, limit),
        Command::Predict { model, images } => predict(&model, &images),
        Command::Demo => demo(),
        Command::Device(args) => crate::device::commands::device(args),
        Command::Qemu(args) => crate::device::commands::qemu(args),
        Command::Bench(args) => crate::device::commands::bench(args),
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

fn convert(
    input: &Path,
    output: &Path,
    calibrate: Option<&Path>,
    calibration_count: usize,
    no_fuse: bool,
) -> Result<ExitCode> {
    let bytes = match extension(input).as_str() {
        "keras" | "h5" => {
            let data = calibrate.with_context(|| {
                format!(
                    "{}: a float Keras model needs --calibrate IMAGES|X.npy (IDX digits or float32 model inputs, e.g. from the training set)",
                    input.display()
                )
            })?;
            let model = crate::keras::load(input).with_context(|| input.display().to_string())?;
            let options = crate::keras::CalibrationOptions {
                max_images: calibration_count,
                ..Default::default()
            };
            let converted = if inputs::is_npy(data)? {
                let values = inputs::read_float_samples(data, &model.input_dims)?;
                let samples = crate::keras::FloatSamples {
                    per_sample: model.input_dims.iter().product(),
                    values,
                };
                crate::keras::convert(&model, &samples, &options)
            } else {
                crate::keras::convert(&model, &idx::read_images(data)?, &options)
            };
            converted.with_context(|| input.display().to_string())?
        }
        "tflite" => {
            ensure!(
                calibrate.is_none(),
                "--calibrate applies to float Keras models; a .tflite model is already quantized"
            );
            let data =
                std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
            let graph = tflite::import(&data).with_context(|| input.display().to_string())?;
            let options = lower::LowerOptions { fuse: !no_fuse };
            lower::lower_with(&graph, &options).with_context(|| input.display().to_string())?
        }
        other => bail!(
            "{}: unknown model type '.{other}' (expected .tflite, .keras or .h5)",
            input.display()
        ),
    };
    // Reparse what was written: the converter never hands out a model the core rejects.
    let stored = ModelBytes::new(&bytes);
    let model = stored
        .model()
        .context("internal error: the converted model is invalid")?;
    let summary = format!(
        "{} ops, {} bytes of flash, {} bytes of arena",
        model.op_count(),
        inspect::thousands(model.len()),
        inspect::thousands(model.arena_size())
    );
    write_atomically(output, &bytes)?;
    println!("{} -> {}: {summary}", input.display(), output.display());
    Ok(ExitCode::SUCCESS)
}

/// Writes via a temporary file and a rename, so a failed run never leaves half a model.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn inspect_cmd(path: &Path) -> Result<ExitCode> {
    let stored = ModelBytes::read(path)?;
    ensure!(
        !stored.as_bytes().is_empty(),
        "{}: the file is empty",
        path.display()
    );
    let report = inspect::inspect(stored.as_bytes()).with_context(|| path.display().to_string())?;
    println!("{}: fixnet model", path.display());
    print!("{}", inspect::render(&report));
    ensure!(
        report.crc_ok(),
        "{}: CRC mismatch (stored {:#010x}, computed {:#010x}): the file is corrupt",
        path.display(),
        report.crc_stored,
        report.crc_computed
    );
    Ok(ExitCode::SUCCESS)
}

fn load_model(path: &Path) -> Result<ModelBytes> {
    let stored = ModelBytes::read(path)?;
    stored.model().with_context(|| path.display().to_string())?;
    Ok(stored)
}

fn load_images(path: &Path, limit: Option<usize>) -> Result<idx::Images> {
    let mut images = idx::read_images(path)?;
    if let Some(n) = limit {
        images.truncate(n);
    }
    Ok(images)
}

/// Loads the inputs named by `source` for `model`, and the path they came from.
fn load_batch<'p>(
    model: &ModelBytes,
    source: &'p InputArgs,
    limit: Option<usize>,
) -> Result<(Batch, &'p Path)> {
    let (mut batch, path) = match (&source.images, &source.inputs) {
        (Some(images), _) => {
            ensure!(
                !inputs::is_npy(images)?,
                "{}: this is a .npy array, not IDX images: give it with --inputs",
                images.display()
            );
            (Batch::Images(idx::read_images(images)?), images)
        }
        (None, Some(path)) => {
            let model = model.model()?;
            let input = model.input().map_err(|e| anyhow!("model input: {e}"))?;
            (Batch::Samples(inputs::read_inputs(path, &input)?), path)
        }
        (None, None) => bail!("give --images or --inputs"),
    };
    if let Some(n) = limit {
        batch.truncate(n);
    }
    Ok((batch, path.as_path()))
}

/// A progress bar on stderr, only for people watching a terminal.
fn progress(len: usize, quiet: bool) -> ProgressBar {
    if quiet || len < 500 || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

fn run_model(model: &ModelBytes, batch: &Batch, quiet: bool) -> Result<(usize, Vec<i8>, f64)> {
    let model = model.model()?;
    let bar = progress(batch.len(), quiet);
    let start = Instant::now();
    let done = |n: usize| bar.set_position(n as u64);
    let (classes, outputs) = match batch {
        Batch::Images(images) => runner::run_images(&model, images, done)?,
        Batch::Samples(samples) => runner::run_samples(&model, samples, done)?,
    };
    let seconds = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    Ok((classes, outputs, seconds))
}

fn eval(
    model_path: &Path,
    source: &InputArgs,
    labels_path: &Path,
    json: bool,
    limit: Option<usize>,
) -> Result<ExitCode> {
    let model = load_model(model_path)?;
    let (batch, inputs_path) = load_batch(&model, source, limit)?;
    let mut labels = inputs::read_labels(labels_path)?;
    if let Some(n) = limit {
        labels.truncate(n);
    }
    ensure!(
        labels.len() == batch.len(),
        "{} {} but {} labels in {}",
        batch.len(),
        batch.noun(),
        labels.len(),
        labels_path.display()
    );
    let classes = model
        .model()?
        .output()
        .map_err(|e| anyhow!("model output: {e}"))?
        .dims
        .num_elements();
    if let Some((i, bad)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
        bail!(
            "{}: label {i} is {bad}, outside the model's {classes} classes",
            labels_path.display()
        );
    }
    let (classes, outputs, seconds) = run_model(&model, &batch, json)?;
    let mut e = Evaluation::score(&outputs, classes, &labels, seconds);
    e.threads = crate::parallel::default_threads().min(batch.len().max(1));
    if json {
        println!("{}", e.to_json(&model_path.display().to_string()));
    } else {
        println!(
            "{}: {} {} from {}",
            model_path.display(),
            inspect::thousands(e.images),
            batch.noun(),
            inputs_path.display()
        );
        print!("{}", e.render());
    }
    Ok(ExitCode::SUCCESS)
}

fn run_cmd(
    model_path: &Path,
    source: &InputArgs,
    out: &Path,
    dequantize: bool,
    limit: Option<usize>,
) -> Result<ExitCode> {
    let model = load_model(model_path)?;
    let (batch, _) = load_batch(&model, source, limit)?;
    let (classes, outputs, seconds) = run_model(&model, &batch, false)?;
    let shape = [batch.len(), classes];
    let (bytes, dtype) = if dequantize {
        let t = model
            .model()?
            .output()
            .map_err(|e| anyhow!("model output: {e}"))?;
        let real: Vec<f32> = outputs
            .iter()
            .map(|&q| fixnet::quant::dequantize_i8(q, t.scale, t.zero_point))
            .collect();
        (npy::encode_f32(&shape, &real)?, "float32")
    } else {
        (npy::encode_i8(&shape, &outputs)?, "int8")
    };
    write_atomically(out, &bytes)?;
    let threads = crate::parallel::default_threads().min(batch.len().max(1));
    println!(
        "{}: {dtype} outputs of shape ({}, {classes}) in {seconds:.3} s ({:.0} {}/s, {threads} thread{})",
        out.display(),
        batch.len(),
        batch.len() as f64 / seconds.max(1e-9),
        batch.noun(),
        if threads == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

fn predict(model_path: &Path, pictures: &[PathBuf]) -> Result<ExitCode> {
    let stored = load_model(model_path)?;
    let model = stored.model()?;
    let out_t = model.output().map_err(|e| anyhow!("{e}"))?;
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = fixnet::Interpreter::new(&model, &mut arena).map_err(|e| anyhow!("{e}"))?;
    let in_t = model.input().map_err(|e| anyhow!("{e}"))?;
    // A [1, H, W, 3] input takes colour pictures; anything else the digit path.
    let colour = match *in_t.dims.as_slice() {
        [1, h, w, 3] => Some((u32::from(w), u32::from(h))),
        _ => None,
    };
    for path in pictures {
        let pixels = match colour {
            Some((w, h)) => preprocess::rgb_pixels(&preprocess::load_rgb(path)?, w, h),
            None => preprocess::mnist_pixels(&preprocess::load(path)?)
                .with_context(|| path.display().to_string())?,
        };
        // pixel / 255 quantized with the input's scale and zero point, per byte: grey
        // or interleaved RGB alike.
        interp.set_input_grey(&pixels).map_err(|e| {
            anyhow!(
                "{}: the model takes neither 28x28 grey nor HxWx3 colour input ({:?}): {e}",
                path.display(),
                in_t.dims.as_slice()
            )
        })?;
        interp
            .invoke()
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        let scores: Vec<(usize, f32)> = interp
            .output()
            .iter()
            .enumerate()
            .map(|(i, &q)| {
                (
                    i,
                    fixnet::quant::dequantize_i8(q, out_t.scale, out_t.zero_point),
                )
            })
            .collect();
        let mut ranked = scores.clone();
        // Stable sort keeps the first of equal scores first, as top1 does.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (class, _) = interp.top1();
        let top: Vec<String> = ranked
            .iter()
            .take(3)
            .map(|(c, p)| format!("{c} {p:.3}"))
            .collect();
        println!("{}: {class}  (top 3: {})", path.display(), top.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// Finds a repository file from the current directory or, for `cargo run`, the workspace.
fn repo_file(relative: &str) -> PathBuf {
    let here = PathBuf::from(relative);
    if here.exists() {
        return here;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative)
}

fn demo() -> Result<ExitCode> {
    let model = repo_file("models/seed_cnn.fxn");
    let images = repo_file("data/mnist/test-images-idx3-ubyte.gz");
    let labels = repo_file("data/mnist/test-labels-idx1-ubyte.gz");
    show_first_digits(&model, &images, &labels, 12)?;
    let source = InputArgs {
        images: Some(images),
        inputs: None,
    };
    eval(&model, &source, &labels, false, None)
}

/// The first `count` test digits as terminal pictures, each captioned with what the model
/// sees and the true label, so the user sees what is being recognised.
fn show_first_digits(model: &Path, images: &Path, labels: &Path, count: usize) -> Result<()> {
    let model = load_model(model)?;
    let images = load_images(images, Some(count))?;
    let labels = idx::read_labels(labels)?;
    let (classes, outputs) = runner::run_images(&model.model()?, &images, |_| {})?;
    let items: Vec<(Vec<String>, String)> = (0..images.len())
        .map(|i| {
            let row = &outputs[i * classes..(i + 1) * classes];
            let (digit, _) = fixnet::interpreter::top1(row);
            let caption = match labels.get(i) {
                Some(&l) if usize::from(l) == digit => format!("  -> {digit}  right"),
                Some(&l) => format!("  -> {digit}  wrong, is {l}"),
                None => format!("  -> {digit}"),
            };
            (
                crate::picture::digit_lines(images.image(i), images.cols),
                caption,
            )
        })
        .collect();
    print!("{}", crate::picture::gallery(&items, 4));
    println!();
    Ok(())
}
