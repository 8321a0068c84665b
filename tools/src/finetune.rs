//! `fixnet finetune`: the on-device fine-tuning, simulated on the host with the very same
//! fixed-point core code (`fixnet::train::Trainer`), or with `--float` the float32 SGD
//! reference on the same layers and samples.

use crate::fxn::ModelBytes;
use crate::idx;
use anyhow::{anyhow, bail, ensure, Context, Result};
use fixnet::format::Op;
use fixnet::train::float::FloatTrainer;
use fixnet::train::{TrainConfig, TrainMode, Trainer, DEFAULT_EPOCHS};
use fixnet::Model;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Classifies one feature vector (the frozen prefix's output) with the current weights.
type Predictor<'a> = dyn FnMut(&[i8]) -> Result<usize> + 'a;

/// Arguments of `fixnet finetune`.
#[derive(Debug, clap::Args)]
pub struct FinetuneArgs {
    /// fixnet model to start from.
    #[arg(long)]
    pub model: PathBuf,
    /// The user's IDX images (optionally gzipped).
    #[arg(long)]
    pub images: PathBuf,
    /// The user's IDX labels.
    #[arg(long)]
    pub labels: PathBuf,
    /// What to train on top of the last fully connected layer: `last` (that layer, and the
    /// biases of the fully connected layer before it), `biases` (also the biases of every
    /// layer the backward pass reaches) or `conv:K` (also the biases from the last
    /// convolution on and the weights of K of its output channels).
    #[arg(long, value_name = "MODE", default_value = "last", value_parser = parse_mode)]
    pub train: TrainMode,
    /// First op whose weights are trained (overrides the layers of --train).
    #[arg(long, value_name = "K")]
    pub train_from: Option<usize>,
    /// First op whose biases are trained (overrides the layers of --train).
    #[arg(long, value_name = "B")]
    pub bias_from: Option<usize>,
    /// Training samples per class (the first ones of each class); the rest is evaluated.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub per_class: usize,
    /// Passes over the training samples.
    #[arg(long, value_name = "E", default_value_t = usize::from(DEFAULT_EPOCHS))]
    pub epochs: usize,
    /// Learning rate [default: the on-device default, `TrainConfig::new`].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Momentum, 0 = plain SGD [default: the on-device default].
    #[arg(long)]
    pub momentum: Option<f32>,
    /// Pull towards the model's own weights per update, 0 = none [default: the on-device
    /// default].
    #[arg(long)]
    pub anchor: Option<f32>,
    /// Mini-batch size [default: the on-device default].
    #[arg(long)]
    pub batch: Option<u16>,
    /// Original test images to check nothing was forgotten.
    #[arg(long, default_value = "data/mnist/test-images-idx3-ubyte.gz")]
    pub test_images: PathBuf,
    /// Original test labels.
    #[arg(long, default_value = "data/mnist/test-labels-idx1-ubyte.gz")]
    pub test_labels: PathBuf,
    /// Draw loss and accuracy per epoch to this SVG file.
    #[arg(long, value_name = "CURVES.svg")]
    pub plot: Option<PathBuf>,
    /// Train with the float32 SGD reference instead of the fixed-point trainer.
    #[arg(long)]
    pub float: bool,
    /// Write the fine-tuned model (weights baked in) here.
    #[arg(short, long, value_name = "OUT.fxn")]
    pub output: Option<PathBuf>,
}

fn parse_mode(text: &str) -> Result<TrainMode, String> {
    TrainMode::parse(text).ok_or_else(|| format!("`{text}`: expected last, biases or conv:K"))
}

/// The default trainable suffix: the last fully connected layer (weights and biases) and
/// the biases of the fully connected layer before it.
pub fn default_layers(model: &Model<'_>) -> Result<(usize, Option<usize>)> {
    let fcs: Vec<usize> = (0..model.op_count())
        .filter(|&i| matches!(model.op(i), Ok(Op::FullyConnected(_))))
        .collect();
    let last = *fcs
        .last()
        .ok_or_else(|| anyhow!("the model has no fully connected layer: give --train-from"))?;
    Ok((last, fcs.iter().rev().nth(1).copied()))
}

/// `inspect --train-from K`: the train arena for K, by part.
pub fn train_arena_report(path: &Path, train_from: usize) -> Result<String> {
    let stored = ModelBytes::read(path)?;
    let model = stored.model()?;
    let mut out = String::new();
    let mut line = |what: &str, config: TrainConfig| -> Result<()> {
        let u = Trainer::arena_use(&model, &config).map_err(|e| anyhow!("{e}"))?;
        out.push_str(&format!(
            "train arena from op {train_from} ({what}): {} bytes = {} inference + {} extra \
             (weights {}, biases {}, activations {}, gradients {}, alignment {})\n",
            crate::inspect::thousands(u.total()),
            crate::inspect::thousands(u.inference),
            crate::inspect::thousands(u.extra()),
            crate::inspect::thousands(u.weights),
            crate::inspect::thousands(u.biases),
            u.activations,
            u.gradients,
            u.slack,
        ));
        Ok(())
    };
    line("weights and biases", TrainConfig::new(train_from))?;
    if let Ok((last, Some(prev))) = default_layers(&model) {
        if last == train_from {
            line(
                &format!("+ biases from op {prev}"),
                TrainConfig::new(train_from).bias_from(prev),
            )?;
        }
    }
    Ok(out)
}

struct Epoch {
    loss: f64,
    user: Option<f64>,
    test: Option<f64>,
}

fn pct(a: f64) -> String {
    format!("{:.2} %", a * 100.0)
}

/// Runs `fixnet finetune`.
pub fn run(args: FinetuneArgs) -> Result<ExitCode> {
    let stored = ModelBytes::read(&args.model)?;
    let model = stored
        .model()
        .with_context(|| args.model.display().to_string())?;
    let images = idx::read_images(&args.images)?;
    let labels = idx::read_labels(&args.labels)?;
    ensure!(
        images.len() == labels.len(),
        "{} images but {} labels",
        images.len(),
        labels.len()
    );
    let mut config = TrainConfig::for_mode(&model, args.train).map_err(|e| {
        anyhow!(
            "--train {}: {e} (a convolution fused with its max pool has no backward pass: \
             convert the .tflite with --no-fuse)",
            args.train
        )
    })?;
    if let Some(k) = args.train_from {
        config.train_from = k;
        config.bias_from = args.bias_from;
        config.sparse = None;
    } else if let Some(b) = args.bias_from {
        config.bias_from = Some(b);
    }
    if let Some(lr) = args.lr {
        config = config.learning_rate(lr);
    }
    if let Some(mu) = args.momentum {
        config = config.momentum(mu);
    }
    if let Some(a) = args.anchor {
        config = config.anchor(a);
    }
    if let Some(n) = args.batch {
        config = config.batch_size(n);
    }
    let (k, b) = (config.train_from, config.bias_from);
    ensure!(
        !(args.float && config.sparse.is_some()),
        "--float has no sparse convolution update: use --train last or biases"
    );

    let mut per_class = std::collections::HashMap::<u8, usize>::new();
    let (mut train, mut held_out) = (Vec::new(), Vec::new());
    for (i, &l) in labels.iter().enumerate() {
        let n = per_class.entry(l).or_default();
        if *n < args.per_class {
            *n += 1;
            train.push(i);
        } else {
            held_out.push(i);
        }
    }
    ensure!(!train.is_empty(), "no training samples (--per-class 0?)");
    let test = if args.test_images.exists() && args.test_labels.exists() {
        Some((
            idx::read_images(&args.test_images)?,
            idx::read_labels(&args.test_labels)?,
        ))
    } else {
        eprintln!(
            "note: {} not found, skipping the original test split",
            args.test_images.display()
        );
        None
    };

    let use_ = Trainer::arena_use(&model, &config).map_err(|e| anyhow!("{e}"))?;
    println!(
        "training ops {}..{} ({}, --train {}), weights from op {k}{}{}: {} samples ({} per class), {} epochs, lr {}, momentum {}, anchor {}, batch {}",
        b.unwrap_or(k).min(k),
        model.op_count() - 1,
        if args.float { "float32 SGD reference" } else { "fixed point" },
        args.train,
        b.map(|b| format!(", biases from op {b}")).unwrap_or_default(),
        config
            .sparse
            .map(|s| format!(", weights of {} channels of op {}", s.channels, s.op))
            .unwrap_or_default(),
        train.len(),
        args.per_class,
        args.epochs,
        config.learning_rate_q16 as f32 / 65536.0,
        f32::from(config.momentum_q15) / 32768.0,
        config.anchor_q16 as f32 / 65536.0,
        config.batch_size
    );
    println!(
        "train arena: {} bytes ({} inference + {} extra)",
        use_.total(),
        use_.inference,
        use_.extra()
    );
    if held_out.is_empty() {
        println!(
            "every given sample is used for training: nothing of the user's data is left to evaluate"
        );
    } else {
        println!("evaluating on the {} samples left over", held_out.len());
    }

    let mut arena = vec![0u8; use_.total()];
    let mut trainer =
        Trainer::with_config(&model, config, &mut arena).map_err(|e| anyhow!("{e}"))?;
    let n = trainer.feature_len().map_err(|e| anyhow!("{e}"))?;
    // The frozen prefix's outputs, the bulk of the evaluation work: over every core, each
    // thread with its own trainer (the prefix is never trained, so all compute the same bytes).
    let feats = |im: &idx::Images| -> Result<Vec<Vec<i8>>> {
        let parts = crate::parallel::map_chunks(
            im.len(),
            crate::parallel::default_threads(),
            |chunk, _| {
                let mut arena = vec![0u8; use_.total()];
                let mut t =
                    Trainer::with_config(&model, config, &mut arena).map_err(|e| anyhow!("{e}"))?;
                chunk
                    .map(|i| {
                        let mut f = vec![0i8; n];
                        t.features(im.image(i), &mut f)
                            .map_err(|e| anyhow!("{e}"))?;
                        Ok(f)
                    })
                    .collect::<Result<Vec<_>>>()
            },
            |_| {},
        )?;
        Ok(parts.concat())
    };
    let user_f = feats(&images)?;
    let test_f = match &test {
        Some((ti, _)) => Some(feats(ti)?),
        None => None,
    };
    let test_labels: Vec<u8> = test.as_ref().map(|t| t.1.clone()).unwrap_or_default();
    let all_test: Vec<usize> = (0..test_labels.len()).collect();

    let accuracy = |predict: &mut dyn FnMut(&[i8]) -> Result<usize>,
                    f: &[Vec<i8>],
                    labels: &[u8],
                    idx: &[usize]|
     -> Result<Option<f64>> {
        if idx.is_empty() {
            return Ok(None);
        }
        let mut ok = 0;
        for &i in idx {
            ok += usize::from(predict(&f[i])? == usize::from(labels[i]));
        }
        Ok(Some(ok as f64 / idx.len() as f64))
    };
    let predict_fixed =
        |t: &mut Trainer, f: &[i8]| t.predict_features(f).map_err(|e| anyhow!("{e}"));
    let before_user = accuracy(
        &mut |f| predict_fixed(&mut trainer, f),
        &user_f,
        &labels,
        &held_out,
    )?;
    let before_test = match &test_f {
        Some(tf) => accuracy(
            &mut |f| predict_fixed(&mut trainer, f),
            tf,
            &test_labels,
            &all_test,
        )?,
        None => None,
    };

    let mut float = if args.float {
        let size = FloatTrainer::required_arena(&model, &config).map_err(|e| anyhow!("{e}"))?;
        Some(vec![0u8; size])
    } else {
        None
    };
    let mut ft = match float.as_mut() {
        Some(a) => Some(FloatTrainer::new(&model, config, a).map_err(|e| anyhow!("{e}"))?),
        None => None,
    };

    let mut history = Vec::new();
    let mut rng = 0x2545_F491u32;
    if ft.is_none() {
        trainer
            .guard_features(
                train
                    .iter()
                    .map(|&i| (&user_f[i][..], usize::from(labels[i]))),
            )
            .map_err(|e| anyhow!("{e}"))?;
    }
    for epoch in 0..args.epochs {
        let mut order = train.clone();
        for j in (1..order.len()).rev() {
            rng = rng.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            order.swap(j, (rng >> 8) as usize % (j + 1));
        }
        let mut total = 0.0;
        for &i in &order {
            let l = usize::from(labels[i]);
            total += match ft.as_mut() {
                Some(ft) => f64::from(
                    ft.step_features(&user_f[i], l)
                        .map_err(|e| anyhow!("{e}"))?,
                ),
                None => f64::from(
                    trainer
                        .step_features(&user_f[i], l)
                        .map_err(|e| anyhow!("{e}"))?
                        .to_f32(),
                ),
            };
        }
        let mut note = String::new();
        match ft.as_mut() {
            Some(ft) => ft.flush(),
            None => {
                let outcome = trainer
                    .guard_features(
                        train
                            .iter()
                            .map(|&i| (&user_f[i][..], usize::from(labels[i]))),
                    )
                    .map_err(|e| anyhow!("{e}"))?;
                if let fixnet::train::GuardOutcome::RolledBack { .. } = outcome {
                    note = " (loss got worse: rolled back)".into();
                }
            }
        }
        let mut predict: Box<Predictor> = match ft.as_mut() {
            Some(ft) => Box::new(move |f| ft.predict_features(f).map_err(|e| anyhow!("{e}"))),
            None => Box::new(|f| predict_fixed(&mut trainer, f)),
        };
        let user = accuracy(&mut predict, &user_f, &labels, &held_out)?;
        let test_acc = match &test_f {
            Some(tf) => accuracy(&mut predict, tf, &test_labels, &all_test)?,
            None => None,
        };
        drop(predict);
        let e = Epoch {
            loss: total / order.len() as f64,
            user,
            test: test_acc,
        };
        println!(
            "epoch {:>3}: loss {:.4}{}{}{}",
            epoch + 1,
            e.loss,
            e.user
                .map(|a| format!("  user {}", pct(a)))
                .unwrap_or_default(),
            e.test
                .map(|a| format!("  test {}", pct(a)))
                .unwrap_or_default(),
            note
        );
        history.push(e);
    }
    let (after_user, after_test) = match history.last() {
        Some(e) => (e.user, e.test),
        None => (before_user, before_test),
    };
    if let (Some(b), Some(a)) = (before_user, after_user) {
        println!("user's held-out data: {} -> {}", pct(b), pct(a));
    }
    if let (Some(b), Some(a)) = (before_test, after_test) {
        println!("original test split:  {} -> {}", pct(b), pct(a));
    }
    if let Some(path) = &args.plot {
        plot(path, &history)?;
        println!("curves: {}", path.display());
    }
    if let Some(out) = &args.output {
        if args.float {
            bail!("--float trains a float32 reference that has no int8 model to write; drop -o");
        }
        let mut bytes = vec![0u8; trainer.model_len().map_err(|e| anyhow!("{e}"))?];
        let len = trainer
            .write_model(&mut bytes)
            .map_err(|e| anyhow!("{e}"))?;
        std::fs::write(out, &bytes[..len]).with_context(|| out.display().to_string())?;
        println!("wrote {} ({} bytes)", out.display(), len);
    }
    Ok(ExitCode::SUCCESS)
}

fn plot(path: &Path, history: &[Epoch]) -> Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(450);
    let epochs = history.len().max(1) as f64;
    let max_loss = history.iter().map(|e| e.loss).fold(0.0, f64::max).max(1e-3) * 1.1;
    let mut chart = ChartBuilder::on(&left)
        .caption("training loss", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(1.0..epochs.max(2.0), 0.0..max_loss)?;
    chart.configure_mesh().x_desc("epoch").draw()?;
    chart.draw_series(LineSeries::new(
        history
            .iter()
            .enumerate()
            .map(|(i, e)| (i as f64 + 1.0, e.loss)),
        &RED,
    ))?;
    let mut chart = ChartBuilder::on(&right)
        .caption("accuracy (%)", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(45)
        .build_cartesian_2d(1.0..epochs.max(2.0), 50.0..100.0)?;
    chart.configure_mesh().x_desc("epoch").draw()?;
    let series = |f: fn(&Epoch) -> Option<f64>| -> Vec<(f64, f64)> {
        history
            .iter()
            .enumerate()
            .filter_map(|(i, e)| f(e).map(|a| (i as f64 + 1.0, a * 100.0)))
            .collect()
    };
    chart
        .draw_series(LineSeries::new(series(|e| e.user), &BLUE))?
        .label("user (held out)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLUE));
    chart
        .draw_series(LineSeries::new(series(|e| e.test), &GREEN))?
        .label("original test")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], GREEN));
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
