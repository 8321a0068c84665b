//! Gradient checks: each float backward kernel against central finite differences of its
//! float forward twin, and each fixed-point backward kernel against the float one (on small
//! random layers, with proptest where it is cheap); plus trainer-level checks: the training
//! forward pass is the interpreter's, the arena plan is exact, training lowers the loss.
// Finite differences perturb element i through a closure that borrows the whole buffer
// mutably, so an index is the natural loop variable here.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{lcg_i8, Aligned, SmallModelData};
use fixnet::float::{self as fl, Activation};
use fixnet::train::backward as bw;
use fixnet::train::fixed::{Scale, GRAD_BITS, MASTER_BITS};
use fixnet::train::float as tf;
use fixnet::train::{TrainConfig, Trainer};
use fixnet::{Interpreter, Model, Padding, Shape, Window};
use proptest::prelude::*;

const Q: f64 = (1u64 << GRAD_BITS) as f64;

fn floats(seed: u32, n: usize, scale: f32) -> Vec<f32> {
    lcg_i8(seed, n)
        .iter()
        .map(|&v| f32::from(v) / 128.0 * scale)
        .collect()
}

/// A scalar loss `Σ r·y` over a layer's outputs, so `dL/dy = r`.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

fn finite_diff(x: &mut [f32], i: usize, f: &mut dyn FnMut(&[f32]) -> f64) -> f64 {
    let h = 1e-2f32;
    let keep = x[i];
    x[i] = keep + h;
    let up = f(x);
    x[i] = keep - h;
    let down = f(x);
    x[i] = keep;
    (up - down) / (2.0 * f64::from(h))
}

#[test]
fn float_fully_connected_gradients_match_finite_differences() {
    let (n_in, n_out) = (7, 5);
    let mut x = floats(1, n_in, 1.0);
    let mut w = floats(2, n_in * n_out, 0.5);
    let b = floats(3, n_out, 0.1);
    let r = floats(4, n_out, 1.0);
    let mut y = vec![0f32; n_out];
    let mut gx = vec![0f32; n_in];
    tf::fully_connected_input_grad(&r, &w, &mut gx).unwrap();
    let mut gw = vec![0f32; n_in * n_out];
    tf::fully_connected_weight_grad(&x, &r, 1.0, &mut gw).unwrap();
    let wc = w.clone();
    for i in 0..n_in {
        let d = finite_diff(&mut x, i, &mut |x| {
            fl::fully_connected(x, &wc, &b, Activation::None, &mut y).unwrap();
            dot(&y, &r)
        });
        assert!(
            (d - f64::from(gx[i])).abs() < 1e-3,
            "dx[{i}] {d} vs {}",
            gx[i]
        );
    }
    let xc = x.clone();
    for k in 0..w.len() {
        let d = finite_diff(&mut w, k, &mut |w| {
            fl::fully_connected(&xc, w, &b, Activation::None, &mut y).unwrap();
            dot(&y, &r)
        });
        assert!((d - f64::from(gw[k])).abs() < 1e-3, "dw[{k}]");
    }
}

fn window(in_shape: Shape, k: usize, s: usize, padding: Padding) -> (Window, Shape, usize) {
    let (w, oh, ow) = Window::new(padding, in_shape, k, k, s, s).unwrap();
    (w, Shape::new(oh, ow, 0), oh * ow)
}

#[test]
fn float_conv_and_pool_gradients_match_finite_differences() {
    for padding in [Padding::Valid, Padding::Same] {
        let ins = Shape::new(5, 6, 2);
        let (win, o, _) = window(ins, 3, 2, padding);
        let outs = Shape::new(o.height, o.width, 3);
        let mut x = floats(5, ins.len(), 1.0);
        let mut f = floats(6, 3 * 9 * 2, 0.5);
        let b = floats(7, 3, 0.1);
        let r = floats(8, outs.len(), 1.0);
        let mut y = vec![0f32; outs.len()];
        let mut gx = vec![0f32; ins.len()];
        tf::conv2d_input_grad(&r, outs, &f, &win, &mut gx, ins).unwrap();
        let mut gw = vec![0f32; f.len()];
        tf::conv2d_weight_grad(&x, ins, &r, outs, &win, 1.0, &mut gw).unwrap();
        let fc = f.clone();
        for i in 0..x.len() {
            let d = finite_diff(&mut x, i, &mut |x| {
                fl::conv2d(x, ins, &fc, &b, &win, Activation::None, &mut y, outs).unwrap();
                dot(&y, &r)
            });
            assert!((d - f64::from(gx[i])).abs() < 1e-3, "conv dx[{i}]");
        }
        let xc = x.clone();
        for k in 0..f.len() {
            let d = finite_diff(&mut f, k, &mut |f| {
                fl::conv2d(&xc, ins, f, &b, &win, Activation::None, &mut y, outs).unwrap();
                dot(&y, &r)
            });
            assert!((d - f64::from(gw[k])).abs() < 1e-3, "conv dw[{k}]");
        }

        // Pools: distinct inputs so the max pool's argmax is stable under the perturbation.
        let (pw, po, _) = window(ins, 2, 2, padding);
        let pouts = Shape::new(po.height, po.width, 2);
        let mut x: Vec<f32> = (0..ins.len())
            .map(|i| ((i * 37) % 60) as f32 * 0.1)
            .collect();
        let r = floats(9, pouts.len(), 1.0);
        let mut y = vec![0f32; pouts.len()];
        let mut gmax = vec![0f32; ins.len()];
        let mut gavg = vec![0f32; ins.len()];
        tf::max_pool_backward(&x, ins, &pw, &r, pouts, &mut gmax).unwrap();
        tf::avg_pool_backward(ins, &pw, &r, pouts, &mut gavg).unwrap();
        for i in 0..x.len() {
            let d = finite_diff(&mut x, i, &mut |x| {
                fl::max_pool(x, ins, &pw, Activation::None, &mut y, pouts).unwrap();
                dot(&y, &r)
            });
            assert!((d - f64::from(gmax[i])).abs() < 1e-3, "max dx[{i}]");
            let d = finite_diff(&mut x, i, &mut |x| {
                fl::avg_pool(x, ins, &pw, Activation::None, &mut y, pouts).unwrap();
                dot(&y, &r)
            });
            assert!((d - f64::from(gavg[i])).abs() < 1e-3, "avg dx[{i}]");
        }
    }
}

#[test]
fn float_softmax_cross_entropy_matches_finite_differences() {
    let mut z = floats(11, 10, 4.0);
    let mut g = vec![0f32; 10];
    tf::softmax_cross_entropy(&z, 3, &mut g).unwrap();
    let mut scratch = vec![0f32; 10];
    for i in 0..10 {
        let d = finite_diff(&mut z, i, &mut |z| {
            f64::from(tf::softmax_cross_entropy(z, 3, &mut scratch).unwrap())
        });
        assert!((d - f64::from(g[i])).abs() < 1e-3, "dz[{i}]");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Fixed-point softmax-CE against float on the dequantized logits.
    #[test]
    fn fixed_softmax_ce_matches_float(logits in prop::collection::vec(any::<i8>(), 2..12), label in 0usize..12, scale in 0.02f32..0.3) {
        let label = label % logits.len();
        let params = fixnet::kernels::SoftmaxParams::new(1.0, scale).unwrap();
        let mut g = vec![0i32; logits.len()];
        let loss = bw::softmax_cross_entropy(&logits, &params, label, &mut g).unwrap();
        let z: Vec<f32> = logits.iter().map(|&q| f32::from(q) * scale).collect();
        let mut gf = vec![0f32; z.len()];
        let lf = tf::softmax_cross_entropy(&z, label, &mut gf).unwrap();
        // The int8 softmax's exp has ~2^-20 precision and its input multiplier rounding.
        prop_assert!((loss as f64 / 65536.0 - f64::from(lf)).abs() < 2e-3 + 1e-4 * f64::from(lf));
        for (a, b) in g.iter().zip(&gf) {
            prop_assert!((f64::from(*a) / Q - f64::from(*b)).abs() < 1e-3);
        }
    }

    /// Fixed-point fully connected backward against the float twin on dequantized values.
    #[test]
    fn fixed_fully_connected_matches_float(seed in any::<u32>(), n_in in 1usize..20, n_out in 1usize..8, zp in -20i32..20) {
        let x = lcg_i8(seed, n_in);
        let w = lcg_i8(seed ^ 0xABCD, n_in * n_out);
        let (s_x, s_w) = (0.05f64, 0.01f64);
        let gq: Vec<i32> = lcg_i8(seed ^ 7, n_out).iter().map(|&v| i32::from(v) << (GRAD_BITS - 8)).collect();
        let gf: Vec<f32> = gq.iter().map(|&g| (f64::from(g) / Q) as f32).collect();
        let xf: Vec<f32> = x.iter().map(|&v| ((i32::from(v) - zp) as f64 * s_x) as f32).collect();
        let wf: Vec<f32> = w.iter().map(|&v| (f64::from(v) * s_w) as f32).collect();

        let mut gx = vec![0i32; n_in];
        bw::fully_connected_input_grad(&gq, &w, |_| Scale::from_f64(s_w), &mut gx).unwrap();
        let mut gxf = vec![0f32; n_in];
        tf::fully_connected_input_grad(&gf, &wf, &mut gxf).unwrap();
        for (a, b) in gx.iter().zip(&gxf) {
            prop_assert!((f64::from(*a) / Q - f64::from(*b)).abs() < 1e-4);
        }
        // Weight step with lr = 1: in master units, dL/dW / s_w · 2^16.
        let lr = 1.0;
        let rate = Scale::from_f64(lr * s_x * f64::from(1u32 << MASTER_BITS) / (s_w * Q));
        let mut acc = vec![0i32; n_in * n_out];
        bw::fully_connected_weight_grad(&x, zp, &gq, |_| rate, &mut acc).unwrap();
        let mut accf = vec![0f32; n_in * n_out];
        tf::fully_connected_weight_grad(&xf, &gf, 1.0, &mut accf).unwrap();
        for (a, b) in acc.iter().zip(&accf) {
            let want = f64::from(*b) / s_w * f64::from(1u32 << MASTER_BITS);
            prop_assert!((f64::from(*a) - want).abs() <= 1.0 + want.abs() * 1e-6, "{} vs {}", a, want);
        }
    }

    /// Fixed-point conv2d and pool backward against the float twins.
    #[test]
    fn fixed_conv_and_pools_match_float(seed in any::<u32>(), h in 3usize..7, w_ in 3usize..7, cin in 1usize..3, cout in 1usize..4, same in any::<bool>(), stride in 1usize..3) {
        let padding = if same { Padding::Same } else { Padding::Valid };
        let ins = Shape::new(h, w_, cin);
        let (win, oh, ow) = Window::new(padding, ins, 3, 3, stride, stride).unwrap();
        let outs = Shape::new(oh, ow, cout);
        let x = lcg_i8(seed, ins.len());
        let f = lcg_i8(seed ^ 3, cout * 9 * cin);
        let (s_x, s_w, zp) = (0.05f64, 0.01f64, -5i32);
        let gq: Vec<i32> = lcg_i8(seed ^ 9, outs.len()).iter().map(|&v| i32::from(v) << (GRAD_BITS - 8)).collect();
        let gf: Vec<f32> = gq.iter().map(|&g| (f64::from(g) / Q) as f32).collect();
        let xf: Vec<f32> = x.iter().map(|&v| ((i32::from(v) - zp) as f64 * s_x) as f32).collect();
        let ff: Vec<f32> = f.iter().map(|&v| (f64::from(v) * s_w) as f32).collect();
        let mut gx = vec![0i32; ins.len()];
        bw::conv2d_input_grad(&gq, outs, &f, &win, |_| Scale::from_f64(s_w), &mut gx, ins).unwrap();
        let mut gxf = vec![0f32; ins.len()];
        tf::conv2d_input_grad(&gf, outs, &ff, &win, &mut gxf, ins).unwrap();
        for (a, b) in gx.iter().zip(&gxf) {
            prop_assert!((f64::from(*a) / Q - f64::from(*b)).abs() < 1e-4);
        }
        let rate = Scale::from_f64(s_x * f64::from(1u32 << MASTER_BITS) / (s_w * Q));
        let mut acc = vec![0i32; f.len()];
        bw::conv2d_weight_grad(&x, ins, zp, &gq, outs, &win, |_| rate, &mut acc).unwrap();
        let mut accf = vec![0f32; f.len()];
        tf::conv2d_weight_grad(&xf, ins, &gf, outs, &win, 1.0, &mut accf).unwrap();
        for (a, b) in acc.iter().zip(&accf) {
            let want = f64::from(*b) / s_w * f64::from(1u32 << MASTER_BITS);
            // One rounding per output position.
            prop_assert!((f64::from(*a) - want).abs() <= outs.len() as f64 + want.abs() * 1e-5);
        }
        // Pools (2×2): the fixed max pool routes to the int8 argmax, like the float one on
        // the same values.
        let (pw, ph, pww) = Window::new(padding, ins, 2, 2, 2, 2).unwrap();
        let pouts = Shape::new(ph, pww, cin);
        let pg: Vec<i32> = lcg_i8(seed ^ 11, pouts.len()).iter().map(|&v| i32::from(v) << 12).collect();
        let pgf: Vec<f32> = pg.iter().map(|&g| g as f32).collect();
        let xf2: Vec<f32> = x.iter().map(|&v| f32::from(v)).collect();
        let mut a = vec![0i32; ins.len()];
        let mut b = vec![0f32; ins.len()];
        bw::max_pool_backward(&x, ins, &pw, &pg, pouts, &mut a).unwrap();
        tf::max_pool_backward(&xf2, ins, &pw, &pgf, pouts, &mut b).unwrap();
        for (p, q) in a.iter().zip(&b) {
            prop_assert_eq!(f64::from(*p), f64::from(*q));
        }
        bw::avg_pool_backward(ins, &pw, &pg, pouts, &mut a).unwrap();
        tf::avg_pool_backward(ins, &pw, &pgf, pouts, &mut b).unwrap();
        for (p, q) in a.iter().zip(&b) {
            prop_assert!((f64::from(*p) - f64::from(*q)).abs() <= 1.0);
        }
    }
}

#[test]
fn relu_mask_follows_the_zero_point() {
    let out = [-128i8, -127, 0, 127];
    let mut g = [1i32; 4];
    // ReLU with zero point −128: act_min −128 is real 0.
    bw::activation_mask(&out, -128, -128, 127, &mut g).unwrap();
    assert_eq!(g, [0, 1, 1, 1]);
    // No activation (act_min below the zero point): straight through.
    let mut g = [1i32; 4];
    bw::activation_mask(&out, 3, -128, 127, &mut g).unwrap();
    assert_eq!(g, [1; 4]);
    // ReLU6-style upper clamp.
    let mut g = [1i32; 4];
    bw::activation_mask(&out, -128, -128, 0, &mut g).unwrap();
    assert_eq!(g, [0, 1, 0, 0]);
}

#[test]
fn trainer_forward_is_the_interpreters_and_training_lowers_the_loss() {
    let data = SmallModelData::new();
    let blob = Aligned::new(&data.encode());
    let model = Model::from_bytes(blob.bytes()).unwrap();
    for (k, bias_from) in [(3, None), (3, Some(0)), (0, None)] {
        // Plain SGD at a constant rate: the rollback check below needs the wrong labels to
        // pull the weights freely (no anchor back to the model, no decay).
        let mut config = TrainConfig::new(k)
            .learning_rate(0.2)
            .batch_size(4)
            .anchor(0.0)
            .step_decay(0, 1.0);
        config.bias_from = bias_from;
        let use_ = Trainer::arena_use(&model, &config).unwrap();
        // Exactly enough arena works, one byte less is a typed error.
        let mut small = vec![0u8; use_.total() - 1];
        assert!(matches!(
            Trainer::with_config(&model, config, &mut small),
            Err(fixnet::train::TrainError::ArenaTooSmall { .. })
        ));
        let mut arena = vec![0u8; use_.total()];
        let mut trainer = Trainer::with_config(&model, config, &mut arena).unwrap();
        let images: Vec<Vec<u8>> = (0..8)
            .map(|s| lcg_i8(100 + s, 64).iter().map(|&v| v as u8).collect())
            .collect();
        let labels = [0usize, 1, 2, 3, 4, 5, 6, 7];
        let samples = || images.iter().map(|i| &i[..]).zip(labels);
        let before = trainer.mean_loss(samples()).unwrap();
        for _ in 0..30 {
            for (im, l) in samples() {
                trainer.step(im, l).unwrap();
            }
        }
        trainer.flush();
        let after = trainer.mean_loss(samples()).unwrap();
        assert!(
            after < before,
            "k={k}: loss {} → {}",
            before.to_f32(),
            after.to_f32()
        );
        // The trained weights give the interpreter the trainer's outputs, bit for bit.
        let overlay = trainer.overlay().unwrap();
        let mut ia = vec![0u8; model.arena_size()];
        let mut interp = Interpreter::with_overlay(&model, &mut ia, overlay).unwrap();
        let mut outs = Vec::new();
        for im in &images {
            interp.set_input_grey(im).unwrap();
            interp.invoke().unwrap();
            outs.push(interp.output().to_vec());
        }
        for (im, o) in images.iter().zip(&outs) {
            trainer.forward(im).unwrap();
            assert_eq!(trainer.output().unwrap(), &o[..]);
        }
        // A baked model gives the same outputs too.
        let mut out = vec![0u8; trainer.model_len().unwrap()];
        trainer.write_model(&mut out).unwrap();
        let baked_blob = Aligned::new(&out);
        let baked = Model::from_bytes(baked_blob.bytes()).unwrap();
        let mut ba = vec![0u8; baked.arena_size()];
        let mut bi = Interpreter::new(&baked, &mut ba).unwrap();
        for (im, o) in images.iter().zip(&outs) {
            bi.set_input_grey(im).unwrap();
            bi.invoke().unwrap();
            assert_eq!(bi.output(), &o[..]);
        }
        // The rollback guard restores the last good weights when the loss gets worse.
        trainer.guard(samples()).unwrap();
        let good: Vec<Vec<i8>> = outs.clone();
        for (im, l) in samples() {
            // Train towards wrong labels: the held-back loss (true labels) must get worse.
            trainer.step(im, (l + 1) % 10).unwrap();
        }
        for _ in 0..20 {
            for (im, l) in samples() {
                trainer.step(im, (l + 1) % 10).unwrap();
            }
        }
        let outcome = trainer.guard(samples()).unwrap();
        assert!(
            matches!(outcome, fixnet::train::GuardOutcome::RolledBack { .. }),
            "{outcome:?}"
        );
        for (im, o) in images.iter().zip(&good) {
            trainer.forward(im).unwrap();
            assert_eq!(trainer.output().unwrap(), &o[..]);
        }
    }
}

#[test]
fn unchanged_model_writes_back_identically() {
    let data = SmallModelData::new();
    let bytes = data.encode();
    let blob = Aligned::new(&bytes);
    let model = Model::from_bytes(blob.bytes()).unwrap();
    let b = fixnet::ModelBuilder::from_model(&model).unwrap();
    let mut out = vec![0u8; b.encoded_len().unwrap()];
    b.write(&mut out).unwrap();
    assert_eq!(out, bytes);
}
