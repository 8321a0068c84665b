//! The user-shift scenario: a "new user" writes digits in a style of their own (thicker
//! strokes, slanted, slightly rotated); the shipped seed CNN loses accuracy on it; fixed-point
//! fine-tuning of the last Dense layer (+ the Dense biases) on 10 samples per class must
//! recover ≥ 90 % of the accuracy that float32 SGD on the same layers and samples recovers,
//! without losing more than 0.5 points on the original MNIST test split.
//!
//! `cargo test --release -p fixnet --test user_shift -- --nocapture` prints the accuracies.

mod common;

use common::{mnist_test, sample, Aligned};
use fixnet::train::float::FloatTrainer;
use fixnet::train::{TrainConfig, Trainer};
use fixnet::{Interpreter, Model};

/// The new user's style, deterministic: strokes thickened (grey dilation over a plus-shaped
/// neighbourhood), a forward slant (shear 0.35), a 12° counter-clockwise tilt, and a small
/// per-digit wobble of the tilt derived from the index (±3°) so the set is not one single
/// affine copy of MNIST.
fn user_style(img: &[u8; 784], index: usize) -> [u8; 784] {
    let mut thick = [0u8; 784];
    for y in 0..28i32 {
        for x in 0..28i32 {
            let mut m = 0u8;
            for (dx, dy) in [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)] {
                let (xx, yy) = (x + dx, y + dy);
                if (0..28).contains(&xx) && (0..28).contains(&yy) {
                    m = m.max(img[(yy * 28 + xx) as usize]);
                }
            }
            thick[(y * 28 + x) as usize] = m;
        }
    }
    let wobble = ((index * 7919) % 7) as f32 - 3.0;
    let angle = (12.0 + wobble).to_radians();
    let (s, c) = angle.sin_cos();
    let shear = 0.35f32;
    let mut out = [0u8; 784];
    for y in 0..28 {
        for x in 0..28 {
            // Inverse map: output pixel → source pixel (rotate back, then un-shear).
            let (u, v) = (x as f32 - 13.5, y as f32 - 13.5);
            let (ru, rv) = (c * u - s * v, s * u + c * v);
            let su = ru + shear * rv;
            let val = sample(&thick, su + 13.5, rv + 13.5);
            out[y * 28 + x] = val.round().clamp(0.0, 255.0) as u8;
        }
    }
    out
}

fn seed_model() -> Option<Vec<u8>> {
    let path = std::env::var("FIXNET_SEED_MODEL")
        .unwrap_or_else(|_| format!("{}/models/seed_cnn.fxn", env!("CARGO_MANIFEST_DIR")));
    std::fs::read(&path).ok()
}

#[test]
fn fine_tuning_recovers_the_new_users_accuracy() {
    let Some(bytes) = seed_model() else {
        eprintln!("models/seed_cnn.fxn is missing (convert tests/fixtures/models/seed_cnn_int8.tflite); skipping");
        return;
    };
    let blob = Aligned::new(&bytes);
    let model = Model::from_bytes(blob.bytes()).unwrap();
    let (images, labels) = mnist_test();
    let user: Vec<[u8; 784]> = images
        .iter()
        .enumerate()
        .map(|(i, im)| user_style(im, i))
        .collect();

    // 10 samples per class for training (the first ones in file order), the rest to evaluate.
    let mut per_class = [0usize; 10];
    let (mut train, mut held_out) = (Vec::new(), Vec::new());
    for (i, &l) in labels.iter().enumerate() {
        if per_class[usize::from(l)] < 10 {
            per_class[usize::from(l)] += 1;
            train.push(i);
        } else {
            held_out.push(i);
        }
    }

    let last_dense = 6;
    let env = |k: &str, d: f32| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let mut config = TrainConfig::new(last_dense);
    if env("BIAS5", 1.0) > 0.0 {
        config = config.bias_from(5);
    }
    // The float32 reference has no anchor: compare like with like.
    let config = config
        .learning_rate(env("LR", 0.003))
        .momentum(env("MOM", 0.0))
        .anchor(0.0);
    let use_ = Trainer::arena_use(&model, &config).unwrap();
    eprintln!(
        "train arena: {} bytes = {} inference + {} extra",
        use_.total(),
        use_.inference,
        use_.extra()
    );
    assert!(use_.extra() < 16 * 1024, "{use_:?}");
    let mut arena = vec![0u8; use_.total()];
    let mut trainer = Trainer::with_config(&model, config, &mut arena).unwrap();

    // The frozen prefix is computed once per image.
    let n_feat = trainer.feature_len().unwrap();
    let feats = |trainer: &mut Trainer, set: &[[u8; 784]]| -> Vec<Vec<i8>> {
        set.iter()
            .map(|im| {
                let mut f = vec![0i8; n_feat];
                trainer.features(im, &mut f).unwrap();
                f
            })
            .collect()
    };
    let user_f = feats(&mut trainer, &user);
    let mnist_f = feats(&mut trainer, &images);
    let accuracy = |predict: &mut dyn FnMut(&[i8]) -> usize, f: &[Vec<i8>], idx: &[usize]| -> f64 {
        let ok = idx
            .iter()
            .filter(|&&i| predict(&f[i]) == usize::from(labels[i]))
            .count();
        ok as f64 / idx.len() as f64
    };
    let all: Vec<usize> = (0..images.len()).collect();

    let base_user = accuracy(
        &mut |f| trainer.predict_features(f).unwrap(),
        &user_f,
        &held_out,
    );
    let base_mnist = accuracy(
        &mut |f| trainer.predict_features(f).unwrap(),
        &mnist_f,
        &all,
    );
    // The features path is the interpreter's inference: spot-check it.
    let mut iarena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(&model, &mut iarena).unwrap();
    for &i in held_out.iter().take(50) {
        interp.set_input_grey(&user[i]).unwrap();
        interp.invoke().unwrap();
        assert_eq!(
            interp.top1().0,
            trainer.predict_features(&user_f[i]).unwrap()
        );
    }

    let epochs = env("EPOCHS", 5.0) as usize;
    let order = |epoch: usize| -> Vec<usize> {
        // A fixed shuffle per epoch (LCG), the same for both trainers.
        let mut v = train.clone();
        let mut s = 12345u32.wrapping_add(epoch as u32 * 7);
        for k in (1..v.len()).rev() {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            v.swap(k, (s >> 8) as usize % (k + 1));
        }
        v
    };
    trainer
        .guard_features(
            train
                .iter()
                .map(|&i| (&user_f[i][..], usize::from(labels[i]))),
        )
        .unwrap();
    for epoch in 0..epochs {
        for i in order(epoch) {
            trainer
                .step_features(&user_f[i], usize::from(labels[i]))
                .unwrap();
        }
        trainer
            .guard_features(
                train
                    .iter()
                    .map(|&i| (&user_f[i][..], usize::from(labels[i]))),
            )
            .unwrap();
    }
    let fixed_user = accuracy(
        &mut |f| trainer.predict_features(f).unwrap(),
        &user_f,
        &held_out,
    );
    let fixed_mnist = accuracy(
        &mut |f| trainer.predict_features(f).unwrap(),
        &mnist_f,
        &all,
    );

    let mut farena = vec![0u8; FloatTrainer::required_arena(&model, &config).unwrap()];
    let mut ft = FloatTrainer::new(&model, config, &mut farena).unwrap();
    let float_base = accuracy(&mut |f| ft.predict_features(f).unwrap(), &user_f, &held_out);
    for epoch in 0..epochs {
        for i in order(epoch) {
            ft.step_features(&user_f[i], usize::from(labels[i]))
                .unwrap();
        }
        ft.flush();
    }
    let float_user = accuracy(&mut |f| ft.predict_features(f).unwrap(), &user_f, &held_out);
    let float_mnist = accuracy(&mut |f| ft.predict_features(f).unwrap(), &mnist_f, &all);

    let pct = |a: f64| a * 100.0;
    eprintln!("user set (held out, {} digits): base {:.2} %  fixed-point {:.2} %  float32 {:.2} % (float base {:.2} %)",
        held_out.len(), pct(base_user), pct(fixed_user), pct(float_user), pct(float_base));
    eprintln!(
        "MNIST test (2,000): base {:.2} %  fixed-point {:.2} %  float32 {:.2} %",
        pct(base_mnist),
        pct(fixed_mnist),
        pct(float_mnist)
    );
    let fixed_gain = fixed_user - base_user;
    let float_gain = float_user - base_user;
    eprintln!(
        "gain: fixed {:.2} points, float {:.2} points, ratio {:.3}",
        pct(fixed_gain),
        pct(float_gain),
        fixed_gain / float_gain
    );

    assert!(
        base_mnist - base_user >= 0.05,
        "the user shift must cost ≥ 5 points"
    );
    assert!(float_gain > 0.0);
    assert!(
        fixed_gain >= 0.9 * float_gain,
        "fixed point recovers < 90 % of float's gain"
    );
    assert!(
        base_mnist - fixed_mnist <= 0.005,
        "MNIST accuracy dropped > 0.5 points"
    );
}
