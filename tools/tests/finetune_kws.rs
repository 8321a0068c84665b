//! Fine-tuning modes on the MLPerf Tiny keyword-spotting DS-CNN: the extra RAM of each
//! `--train` mode, and what each learns of a shift built from the fixture's inputs.
//!
//! The fixture ships 200 int8 inputs and no labels; the inputs are random int8 MFCC
//! features, not speech. So the "user" here is a gain-and-noise shift of those inputs, and its
//! labels are the int8 model's own predictions on the clean inputs: what is measured is how
//! much of the clean behaviour fine-tuning brings back on shifted inputs, not accuracy on
//! words.
//!
//! `cargo test --release -p fixnet-tools --test finetune_kws -- --nocapture` prints the table.

use fixnet::train::{TrainConfig, TrainMode, Trainer, DEFAULT_EPOCHS};
use fixnet::Interpreter;
use fixnet_tools::{fxn::ModelBytes, lower, npy, tflite};
use std::path::Path;

fn mlperf(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/mlperf")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn top1(scores: &[i8]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] {
            best = i;
        }
    }
    best
}

/// The shift: every feature's distance to the input zero point scaled by 0.6 (a quieter
/// microphone), plus uniform noise of ±24 steps from a fixed LCG.
fn shifted(x: &[i8], zero_point: i32, row: usize) -> Vec<i8> {
    let mut s = (row as u32).wrapping_mul(2_654_435_761).wrapping_add(11);
    x.iter()
        .map(|&v| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = ((s >> 16) % 49) as i32 - 24;
            let scaled = zero_point + ((i32::from(v) - zero_point) * 3 + 2) / 5;
            (scaled + noise).clamp(-128, 127) as i8
        })
        .collect()
}

#[test]
fn kws_modes_ram_and_shift() {
    let graph = tflite::import(&mlperf("kws_ref_model.tflite")).unwrap();
    let bytes = ModelBytes::new(&lower::lower(&graph).unwrap());
    let model = bytes.model().unwrap();
    let (shape, inputs) = npy::decode_i8(&mlperf("kws_ref_model_inputs.npy")).unwrap();
    let n = shape[0];
    let len = inputs.len() / n;
    let zero_point = model.input().unwrap().zero_point;

    // Labels: the int8 model's predictions on the clean inputs.
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(&model, &mut arena).unwrap();
    let labels: Vec<usize> = inputs
        .chunks_exact(len)
        .map(|row| {
            interp.input_mut().copy_from_slice(row);
            interp.invoke().unwrap();
            top1(interp.output())
        })
        .collect();
    let user: Vec<Vec<i8>> = inputs
        .chunks_exact(len)
        .enumerate()
        .map(|(i, row)| shifted(row, zero_point, i))
        .collect();
    let (train, held_out) = (
        (0..n / 2).collect::<Vec<_>>(),
        (n / 2..n).collect::<Vec<_>>(),
    );
    let mut classes: Vec<usize> = labels.clone();
    classes.sort_unstable();
    classes.dedup();
    eprintln!(
        "kws: {n} fixture inputs (random int8 features), labels = the model's clean predictions \
         (classes {classes:?}); {} train, {} held out; {DEFAULT_EPOCHS} epochs",
        train.len(),
        held_out.len()
    );
    eprintln!("| --train | trains | extra RAM (B) | weights | biases | activations | gradients | train loss before → after | held-out agreement before → after |");
    for mode in [
        TrainMode::Last,
        TrainMode::Biases,
        TrainMode::Conv(8),
        TrainMode::Conv(16),
    ] {
        let config = TrainConfig::for_mode(&model, mode).unwrap();
        let u = Trainer::arena_use(&model, &config).unwrap();
        // The sparse mode keeps the whole 25×5×64 output of the last pointwise convolution
        // and its i32 gradient: just over the 64 KiB budget here (see the table).
        if !matches!(mode, TrainMode::Conv(_)) {
            assert!(u.extra() <= 64 * 1024, "{mode}: {u:?}");
        }
        let mut tarena = vec![0u8; u.total()];
        let mut trainer = Trainer::with_config(&model, config, &mut tarena).unwrap();
        let agree = |t: &mut Trainer| {
            held_out
                .iter()
                .filter(|&&i| {
                    t.input_mut().unwrap().copy_from_slice(&user[i]);
                    t.forward_quantized().unwrap();
                    top1(t.output().unwrap()) == labels[i]
                })
                .count() as f64
                / held_out.len() as f64
        };
        let train_loss = |t: &mut Trainer| {
            train
                .iter()
                .map(|&i| {
                    t.input_mut().unwrap().copy_from_slice(&user[i]);
                    t.forward_quantized().unwrap();
                    f64::from(t.last_loss(labels[i]).unwrap().to_f32())
                })
                .sum::<f64>()
                / train.len() as f64
        };
        let before = agree(&mut trainer);
        let loss_before = train_loss(&mut trainer);
        let mut s = 0x2545_F491u32;
        for _ in 0..DEFAULT_EPOCHS {
            let mut order = train.clone();
            for k in (1..order.len()).rev() {
                s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                order.swap(k, (s >> 8) as usize % (k + 1));
            }
            for i in order {
                trainer.input_mut().unwrap().copy_from_slice(&user[i]);
                trainer.step_quantized(labels[i]).unwrap();
            }
        }
        trainer.flush();
        let after = agree(&mut trainer);
        let loss_after = train_loss(&mut trainer);
        eprintln!(
            "| {mode} | ops {}..{}{} | {} | {} | {} | {} | {} | {:.3} → {:.3} | {:.1} % → {:.1} % |",
            config.bias_from.unwrap_or(config.train_from),
            model.op_count() - 1,
            config
                .sparse
                .map(|s| format!(", {} channels of op {}", s.channels, s.op))
                .unwrap_or_default(),
            u.extra(),
            u.weights,
            u.biases,
            u.activations,
            u.gradients,
            loss_before,
            loss_after,
            before * 100.0,
            after * 100.0
        );
        // Random features carry little a few samples can generalise from: what must hold is
        // that the mode learns its samples.
        assert!(
            loss_after < loss_before,
            "{mode}: the training loss did not fall"
        );
    }
}
