//! Whole-model host benchmarks of the seed CNN (`models/seed_cnn.fxn`) on the real MNIST test
//! digits: one inference (quantize the digit, run every op, take the top class), reported in
//! images per second, and one fine-tuning step as the device takes it.
//!
//! `cargo bench --bench inference`; `tools/scripts/host_speed.sh` runs the inference bench
//! next to LiteRT's Python interpreter and prints both in one table.

mod common;

use common::Digits;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fixnet::train::{TrainConfig, Trainer};
use fixnet::{Interpreter, Model};
use std::hint::black_box;

/// Digits checked before timing: a wrong build must not be benchmarked (the seed CNN
/// classifies 97.9 % of the 2,000 test digits right; its first 200 give 98 %+).
const CHECKED: usize = 200;

fn inference(c: &mut Criterion) {
    let blob = common::seed_model();
    let model = Model::from_bytes(blob.bytes()).expect("models/seed_cnn.fxn loads");
    let digits = Digits::test();
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(&model, &mut arena).expect("arena of arena_size()");

    let mut classify = |image: &[u8]| {
        interp.set_input_grey(image).expect("784-pixel input");
        interp.invoke().expect("inference");
        interp.top1().0
    };
    let right = (0..CHECKED)
        .filter(|&i| classify(digits.image(i)) == digits.label(i))
        .count();
    assert!(right * 100 >= CHECKED * 97, "{right}/{CHECKED} right");

    let mut group = c.benchmark_group("seed_cnn");
    // One element = one image, so criterion reports images per second.
    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function("inference", |b| {
        b.iter(|| {
            let image = digits.image(next);
            next = (next + 1) % digits.len();
            black_box(classify(black_box(image)))
        })
    });

    // The device's fine-tuning step with the default layers (last Dense trained, biases from
    // the one before): full forward pass, backward pass over the head, and a weight update
    // every `batch_size` steps, which cycling over the digits spreads evenly.
    let config = TrainConfig::new(6).bias_from(5);
    let mut train_arena = vec![0u8; Trainer::arena_use(&model, &config).expect("plan").total()];
    let mut trainer = Trainer::with_config(&model, config, &mut train_arena).expect("trainer");
    let mut next = 0;
    group.bench_function("train_step", |b| {
        b.iter(|| {
            let (image, label) = (digits.image(next), digits.label(next));
            next = (next + 1) % digits.len();
            black_box(trainer.step(black_box(image), label).expect("step"))
        })
    });
    group.finish();
}

criterion_group!(benches, inference);
criterion_main!(benches);
