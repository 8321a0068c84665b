//! The `device`, `qemu` and `bench` subcommands of `fixnet`.

use super::qemu::{build_firmware, default_state_dir, Machine, QemuBoard, MPS2_AN386};
use super::Device;
use crate::fxn::ModelBytes;
use crate::idx;
use crate::inspect::thousands;
use crate::picture::{digit_lines, gallery};
use anyhow::{anyhow, bail, ensure, Context, Result};
use clap::{Args, Subcommand};
use fixnet::{Interpreter, Model};
use fixnet_app::{CounterUnit, Info, Weights};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `fixnet device`.
#[derive(Debug, Args)]
pub struct DeviceArgs {
    /// Serial port (`/dev/ttyACM0`, `COM3`) or `tcp:HOST:PORT` (QEMU's serial port).
    #[arg(long)]
    pub port: String,
    /// What to do.
    #[command(subcommand)]
    pub action: DeviceAction,
}

/// What `fixnet device` does.
#[derive(Debug, Subcommand)]
pub enum DeviceAction {
    /// Board, firmware, model, arena and flash sizes.
    Info,
    /// Recognise digits in pictures (PNG or JPEG, any size, either polarity) on the board.
    Classify {
        /// Pictures of single digits.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Accuracy on labelled IDX images, classified on the board.
    Eval {
        /// IDX images (.idx3-ubyte, optionally gzipped).
        #[arg(long)]
        images: PathBuf,
        /// IDX labels (.idx1-ubyte, optionally gzipped).
        #[arg(long)]
        labels: PathBuf,
        /// Only the first N images.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Fine-tune the board's model on labelled IDX images: one train-sample request per
    /// image and epoch, in file order (the board updates its weights once per mini-batch).
    Train {
        /// IDX images (.idx3-ubyte, optionally gzipped).
        #[arg(long)]
        images: PathBuf,
        /// IDX labels (.idx1-ubyte, optionally gzipped).
        #[arg(long)]
        labels: PathBuf,
        /// Only the first N images.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        /// Only the first N images of each class (after --limit).
        #[arg(long, value_name = "N")]
        per_class: Option<usize>,
        /// Passes over the images.
        #[arg(long, default_value_t = 1)]
        epochs: usize,
        /// Save the weights to the board's flash afterwards.
        #[arg(long)]
        save: bool,
    },
    /// Persist the fine-tuned weights to the board's flash.
    Save,
    /// Go back to the weights the firmware was built with.
    Revert,
    /// The board's counters since start-up.
    Stats,
}

/// `fixnet qemu`.
#[derive(Debug, Args)]
pub struct QemuArgs {
    /// The emulated board: `mps2-an386` (Cortex-M4F, the seed CNN) or `microbit` (BBC
    /// micro:bit, nRF51822 Cortex-M0 with 16 KiB RAM, models/microbit_cnn.fxn).
    #[arg(long, default_value = "mps2-an386")]
    pub board: String,
    /// Firmware to run (default: build the board's crate under `boards/` first).
    #[arg(long)]
    pub elf: Option<PathBuf>,
    /// Test digits to classify.
    #[arg(long, default_value_t = 100)]
    pub count: usize,
    /// Digits to show as pictures.
    #[arg(long, default_value_t = 12)]
    pub show: usize,
    /// Directory for the emulated flash file (kept between runs).
    #[arg(long)]
    pub state: Option<PathBuf>,
}

/// `fixnet bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Run the benchmark in QEMU (the only target so far).
    #[arg(long, required = true)]
    pub qemu: bool,
    /// Print the figures as JSON (an array: one object per model and target).
    #[arg(long)]
    pub json: bool,
    /// Model to benchmark, `.fxn` or `.tflite` (converted first); repeatable (default:
    /// models/seed_cnn.fxn).
    #[arg(long, value_name = "M.fxn")]
    pub model: Vec<PathBuf>,
    /// Target to build the firmware for (repeatable; default: thumbv7em-none-eabihf, the
    /// DSP kernels, and thumbv6m-none-eabi, the portable ones, both on the emulated
    /// Cortex-M4; `microbit`: the portable ones on QEMU's micro:bit, a Cortex-M0).
    #[arg(long, value_name = "TARGET", value_parser = clap::builder::PossibleValuesParser::new(crate::device::bench::TARGET_CHOICES))]
    pub target: Vec<String>,
    /// Print the per-layer figures and keep them in the report.
    #[arg(long)]
    pub layers: bool,
    /// Measure nothing: write the report again from its `.json` figures (after a change of
    /// the page's layout or of TFLite Micro's reference figures).
    #[arg(long, conflicts_with_all = ["model", "target", "layers", "json"])]
    pub rewrite: bool,
    /// The Markdown report to update (default: docs/benchmarks.md); its figures are kept
    /// beside it in a `.json` file of the same name, with those of every model measured
    /// before.
    #[arg(long, value_name = "FILE.md")]
    pub out: Option<PathBuf>,
}

fn repo_path(rel: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    root.canonicalize().unwrap_or(root).join(rel)
}

fn unit(info: &Info) -> &'static str {
    match info.counter {
        CounterUnit::Instructions => "instructions",
        CounterUnit::Cycles => "cycles",
    }
}

fn print_info(info: &Info) {
    println!(
        "board {} — firmware {} (protocol {})",
        info.board, info.firmware_version, info.protocol_version
    );
    println!(
        "model {} bytes, CRC {:08x}, {} inputs, {} classes",
        thousands(info.model_bytes as usize),
        info.model_crc,
        info.input_len,
        info.classes
    );
    println!("arena {} bytes", thousands(info.arena_bytes as usize));
    if info.flash_bytes > 0 {
        println!(
            "flash for weights {} bytes ({} byte sectors)",
            thousands(info.flash_bytes as usize),
            thousands(info.flash_erase_bytes as usize)
        );
    } else {
        println!("no flash for weights");
    }
    println!("counts {}", unit(info));
    match &info.training {
        Some(t) => println!(
            "fine-tuning ({}): weights of op {}, biases from op {}; mini-batch {}, learning rate {:.4}, \
             anchor {:.4}; train arena {} bytes, saved set {} bytes",
            t.mode,
            t.train_from,
            t.bias_from,
            t.batch_size,
            f64::from(t.learning_rate_q16) / 65536.0,
            f64::from(t.anchor_q16) / 65536.0,
            thousands(t.train_arena_bytes as usize),
            thousands(t.payload_bytes as usize)
        ),
        None => println!("fine-tuning not supported"),
    }
    if info.training.is_some() {
        println!("weights: {}", describe_weights(&info.weights));
    }
}

/// Where the board's weights come from, in words.
pub fn describe_weights(w: &Weights) -> String {
    let base = match w.generation {
        0 => "factory".to_string(),
        g => format!("saved generation {g}"),
    };
    match (w.steps, w.pending) {
        (0, _) => base,
        (s, 0) => format!("{base} + {s} unsaved training steps"),
        (s, p) => format!(
            "{base} + {s} unsaved training steps ({p} of them in an unfinished mini-batch, \
             applied when it fills up or on save)"
        ),
    }
}

/// The images of `images` to train on: the first `per_class` of each class, in file order
/// (all of them without a limit).
pub fn per_class_indices(labels: &[u8], per_class: Option<usize>) -> Vec<usize> {
    let mut seen = std::collections::HashMap::<u8, usize>::new();
    labels
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            let n = seen.entry(**l).or_default();
            *n += 1;
            per_class.is_none_or(|k| *n <= k)
        })
        .map(|(i, _)| i)
        .collect()
}

/// Median of `values` (upper middle), 0 when empty.
fn median(values: &mut [u32]) -> u32 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// Runs `fixnet device`.
pub fn device(args: DeviceArgs) -> Result<ExitCode> {
    let mut dev = Device::open(&args.port)?;
    match args.action {
        DeviceAction::Info => print_info(&dev.info()?),
        DeviceAction::Classify { images } => {
            let info = dev.info()?;
            for path in &images {
                let img = crate::preprocess::load(path)?;
                let pixels = crate::preprocess::mnist_pixels(&img)
                    .with_context(|| path.display().to_string())?;
                let c = dev.classify(&pixels)?;
                println!(
                    "{}: {} (score {}, {} {})",
                    path.display(),
                    c.class,
                    c.scores.get(usize::from(c.class)).copied().unwrap_or(0),
                    thousands(c.count as usize),
                    unit(&info)
                );
            }
        }
        DeviceAction::Eval {
            images,
            labels,
            limit,
        } => {
            let (images, labels) = load_labelled(&images, &labels, limit)?;
            let info = dev.info()?;
            let mut correct = 0;
            let mut counts = Vec::with_capacity(labels.len());
            for (i, &label) in labels.iter().enumerate() {
                let c = dev.classify(images.image(i))?;
                correct += usize::from(c.class == label);
                counts.push(c.count);
            }
            println!(
                "accuracy {:.4} ({correct}/{}) on the board; median {} {} per inference",
                correct as f64 / labels.len().max(1) as f64,
                labels.len(),
                thousands(median(&mut counts) as usize),
                unit(&info)
            );
        }
        DeviceAction::Train {
            images,
            labels,
            limit,
            per_class,
            epochs,
            save,
        } => {
            let (images, labels) = load_labelled(&images, &labels, limit)?;
            let chosen = per_class_indices(&labels, per_class);
            ensure!(!chosen.is_empty(), "no images to train on");
            let info = dev.info()?;
            ensure!(
                info.training.is_some(),
                "the board answered: {}",
                super::describe(fixnet_app::ErrorCode::Unsupported)
            );
            let mut weights = info.weights;
            let mut counts = Vec::new();
            for epoch in 0..epochs {
                let mut total = 0.0f64;
                for &i in &chosen {
                    let (loss, count, w) = dev.train_counted(images.image(i), labels[i])?;
                    total += f64::from(loss);
                    counts.push(count);
                    weights = w;
                }
                println!(
                    "epoch {}: mean loss {:.4} over {} images",
                    epoch + 1,
                    total / chosen.len() as f64,
                    chosen.len()
                );
            }
            counts.sort_unstable();
            if let Some(median) = counts.get(counts.len() / 2) {
                println!(
                    "{median} {} per training step (median of {})",
                    unit(&info),
                    counts.len()
                );
            }
            println!("weights: {}", describe_weights(&weights));
            if save {
                println!("saved: generation {}", dev.save()?);
            }
        }
        DeviceAction::Save => println!("saved: generation {}", dev.save()?),
        DeviceAction::Revert => {
            dev.revert()?;
            println!("reverted to the weights the firmware was built with");
        }
        DeviceAction::Stats => {
            let s = dev.stats()?;
            println!(
                "requests {}, inferences {}, training steps {}, saves {}, errors {}",
                s.requests, s.inferences, s.training_steps, s.saves, s.errors
            );
            println!("weights: {}", describe_weights(&s.weights));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load_labelled(
    images: &Path,
    labels: &Path,
    limit: Option<usize>,
) -> Result<(idx::Images, Vec<u8>)> {
    let mut images = idx::read_images(images)?;
    let mut labels = idx::read_labels(labels)?;
    ensure!(
        images.len() == labels.len(),
        "{} images but {} labels",
        images.len(),
        labels.len()
    );
    if let Some(n) = limit {
        images.truncate(n);
        labels.truncate(n);
    }
    Ok((images, labels))
}

/// Runs `fixnet qemu`: the no-board demo.
pub fn qemu(args: QemuArgs) -> Result<ExitCode> {
    let machine = Machine::named(&args.board)?;
    let elf = match args.elf {
        Some(elf) => elf,
        None => {
            eprintln!("building the firmware ({})…", machine.crate_dir);
            if machine == MPS2_AN386 {
                build_firmware(machine.bin, None)?
            } else {
                machine.build(None)?
            }
        }
    };
    let state = args.state.unwrap_or_else(default_state_dir);
    let mut board = QemuBoard::start_on(&machine, &elf, &state)?;
    let mut dev = board.connect()?;
    let info = dev.info()?;
    print_info(&info);
    println!();

    let (images, labels) = load_labelled(
        &repo_path("data/mnist/test-images-idx3-ubyte.gz"),
        &repo_path("data/mnist/test-labels-idx1-ubyte.gz"),
        Some(args.count),
    )?;
    // Host simulation of the same model, when the firmware runs the shipped one with its
    // factory weights (fine-tuned weights saved in the state directory are loaded at boot).
    let own = std::fs::read(machine.default_model())
        .with_context(|| format!("cannot read {}", machine.model))?;
    let own = ModelBytes::new(&own);
    // The host tool embeds the M4 board's model; other boards' models are read from the
    // repository as their firmware embeds them.
    let model = if machine == MPS2_AN386 {
        Model::from_bytes(fixnet_app::MODEL).map_err(|e| anyhow!("{e}"))?
    } else {
        own.model()?
    };
    let factory = info.weights == Weights::default();
    let simulate = model.crc() == info.model_crc && factory;
    if !factory {
        println!(
            "the board runs fine-tuned weights ({}), not compared with the host simulation \
             (delete {} for the factory weights)\n",
            describe_weights(&info.weights),
            state.join("fixnet-flash.bin").display()
        );
    }
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(&model, &mut arena).map_err(|e| anyhow!("{e}"))?;

    let mut correct = 0;
    let mut agree = 0;
    let mut counts = Vec::new();
    let mut shown = Vec::new();
    for (i, &label) in labels.iter().enumerate() {
        let c = dev.classify(images.image(i))?;
        correct += usize::from(c.class == label);
        counts.push(c.count);
        if simulate {
            interp
                .set_input_grey(images.image(i))
                .and_then(|()| interp.invoke())
                .map_err(|e| anyhow!("{e}"))?;
            agree += usize::from(interp.output() == c.scores.as_slice());
        }
        if i < args.show {
            let mark = if c.class == label { "✓" } else { "✗" };
            shown.push((
                digit_lines(images.image(i), images.cols),
                format!("{} → {} {mark}", label, c.class),
            ));
        }
    }
    print!("{}", gallery(&shown, 4));
    let n = labels.len();
    println!(
        "accuracy {:.1}% ({correct}/{n} test digits), median {} {} per inference ({})",
        100.0 * correct as f64 / n.max(1) as f64,
        thousands(median(&mut counts) as usize),
        unit(&info),
        machine.core
    );
    if simulate {
        println!("outputs identical to the host simulation: {agree}/{n}");
        ensure!(agree == n, "the board disagrees with the host simulation");
    }
    drop(dev);
    board.kill();
    Ok(ExitCode::SUCCESS)
}

/// Runs `fixnet bench`.
pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    use crate::device::bench::{self, page};
    if !args.qemu {
        bail!("only `--qemu` benchmarks exist so far");
    }
    if !args.json && !args.rewrite {
        eprintln!("building and running the benchmark firmware in QEMU…");
    }
    let targets: Vec<&str> = if args.target.is_empty() {
        bench::BENCH_TARGETS.to_vec()
    } else {
        args.target.iter().map(String::as_str).collect()
    };
    let models = if args.model.is_empty() {
        vec![bench::default_model()]
    } else {
        args.model.clone()
    };
    let mut results = Vec::new();
    for model in models.iter().filter(|_| !args.rewrite) {
        let fxn = bench::model_file(model)?;
        for target in &targets {
            let mut r = bench::run_bench(&fxn, target)?;
            if !args.layers {
                r.layers.clear();
            }
            if !args.json {
                print_bench(&r);
            }
            results.push(r);
        }
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| repo_path("docs/benchmarks.md"));
    let results_file = page::results_path(&out);
    let all = page::merge(page::load_results(&results_file)?, &results);
    std::fs::write(&results_file, page::results_json(&all)?)
        .with_context(|| format!("cannot write {}", results_file.display()))?;
    let existing = std::fs::read_to_string(&out).ok();
    std::fs::write(&out, page::page(existing.as_deref(), &all))
        .with_context(|| format!("cannot write {}", out.display()))?;
    if args.json {
        let all: Vec<_> = results.iter().map(|r| r.to_json(args.layers)).collect();
        println!("{}", serde_json::to_string_pretty(&all)?);
    } else {
        println!("wrote {} and {}", out.display(), results_file.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// One model's figures on one target, on stdout.
fn print_bench(r: &crate::device::bench::BenchResult) {
    let inputs = match r.correct {
        Some(c) => format!("{} digits, {c} right", r.runs),
        None => format!("{} {} inputs", r.runs, r.inputs.name()),
    };
    println!(
        "{} on {}: {} instructions per inference (median of {inputs}), {:.2} per \
         MAC; arena {} B (lower bound {} B, ratio {:.2}), stack {} B; runtime flash {} B \
         (.text {} B); outputs equal to the host's {}/{}",
        r.model,
        r.target,
        thousands(r.instructions_median as usize),
        r.instructions_per_mac(),
        thousands(r.arena_bytes as usize),
        thousands(r.arena_lower_bound as usize),
        r.arena_ratio(),
        r.stack_peak_bytes,
        r.runtime_flash_bytes(),
        r.text_bytes,
        r.host_equal,
        r.runs
    );
    for l in &r.layers {
        println!(
            "  {:<16} {:>12} instructions {:>12} MACs",
            l.op,
            thousands(l.instructions as usize),
            thousands(l.macs as usize)
        );
    }
}
