//! Overflow and saturation: every int8 kernel against a wide-integer (i128) reference on
//! extreme inputs — all −128, all 127, the largest channel/tap counts whose accumulator fits
//! TFLite's int32, multipliers up to 2³¹−1 and shifts at both ends (−31, 30).
//!
//! The reference computes exactly in i128 and applies TFLite's int32 semantics only where
//! TFLite itself computes in int32 (the accumulator, `x · 2^shift`, `+ output zero point`):
//! there, signed overflow is undefined behaviour in C++ and wraps on every target TFLite runs
//! on, which is what fixnet does. Each test counts how many cases hit such a wrap, and
//! `realistic_layers_never_wrap` shows that no layer within TFLite's assumptions does.

use fixnet::kernels::{self, FloatRequantize, Requantize, SoftmaxParams};
use fixnet::{Shape, Window};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::cell::Cell;

thread_local! {
    /// int32 wraps the reference met on this test's thread.
    static WRAPS: Cell<usize> = const { Cell::new(0) };
}

fn wraps() -> usize {
    WRAPS.with(Cell::get)
}

// ------------------------------------------------------------------ reference arithmetic

/// TFLite's int32 wrap of a value it computes in int32 (counted).
fn wrap32(x: i128) -> i128 {
    let w = i128::from(x as i32);
    if w != x {
        WRAPS.with(|c| c.set(c.get() + 1));
    }
    w
}

/// `round(a·b / 2^31)`, ties toward +∞ (gemmlowp's nudge-and-truncate, restated), with the
/// single overflow (−2³¹ · −2³¹) saturating.
fn srdhm(a: i128, b: i128) -> i128 {
    ((a * b + (1 << 30)).div_euclid(1 << 31)).min(i128::from(i32::MAX))
}

/// `x / 2^e` rounded to nearest, ties away from zero.
fn rdbpot(x: i128, e: i32) -> i128 {
    if e <= 0 {
        return x;
    }
    let d = 1i128 << e;
    x.signum() * ((2 * x.abs() + d) / (2 * d))
}

/// TFLite's requantization of an exact accumulator.
fn requant(acc: i128, m: i32, shift: i32, zp: i32, act: (i8, i8)) -> i8 {
    let acc = wrap32(acc);
    let x = wrap32(acc << shift.max(0));
    let v = wrap32(rdbpot(srdhm(x, i128::from(m)), -shift) + i128::from(zp));
    v.clamp(i128::from(act.0), i128::from(act.1)) as i8
}

// ------------------------------------------------------------------ strategies

fn extreme_i8() -> impl Strategy<Value = i8> {
    prop_oneof![Just(-128i8), Just(127), Just(-127), Just(0), any::<i8>()]
}

/// A tensor of extreme values: all one value, alternating extremes, or mixed.
fn extreme_vec(n: usize) -> impl Strategy<Value = Vec<i8>> {
    prop_oneof![
        extreme_i8().prop_map(move |v| vec![v; n]),
        Just(
            (0..n)
                .map(|i| if i % 2 == 0 { -128 } else { 127 })
                .collect()
        ),
        proptest::collection::vec(extreme_i8(), n),
    ]
}

fn multiplier() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(i32::MAX),
        Just(1 << 30),
        Just(0),
        Just(1),
        Just(i32::MIN),
        (1i32 << 30)..=i32::MAX,
    ]
}

fn shift() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(-31),
        Just(-30),
        Just(0),
        Just(1),
        Just(30),
        -31i32..=30
    ]
}

fn input_offset() -> impl Strategy<Value = i32> {
    prop_oneof![Just(128), Just(-127), Just(0), -127i32..=128]
}

fn bias() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(0),
        Just(i32::MAX),
        Just(i32::MIN),
        Just(1 << 24),
        Just(-(1 << 24)),
        any::<i32>()
    ]
}

fn act() -> impl Strategy<Value = (i8, i8)> {
    prop_oneof![
        Just((-128i8, 127i8)),
        (any::<i8>(), any::<i8>()).prop_map(|(a, b)| (a.min(b), a.max(b))),
    ]
}

#[derive(Debug, Clone)]
struct Q {
    m: Vec<i32>,
    s: Vec<i32>,
    in_off: i32,
    out_zp: i32,
    act: (i8, i8),
}

fn q(channels: usize) -> impl Strategy<Value = Q> {
    (
        proptest::collection::vec(multiplier(), channels),
        proptest::collection::vec(shift(), channels),
        input_offset(),
        -128i32..=127,
        act(),
    )
        .prop_map(|(m, s, in_off, out_zp, act)| Q {
            m,
            s,
            in_off,
            out_zp,
            act,
        })
}

impl Q {
    fn requantize(&self) -> Requantize<'_> {
        Requantize {
            input_offset: self.in_off,
            output_offset: self.out_zp,
            multipliers: &self.m,
            shifts: &self.s,
            act_min: self.act.0,
            act_max: self.act.1,
        }
    }
}

// ------------------------------------------------------------------ references

/// Taps of output `o` along one axis: `(filter index, input index)` inside the input.
fn taps(o: usize, stride: usize, pad: usize, k: usize, n: usize) -> Vec<(usize, usize)> {
    (0..k)
        .filter_map(|f| {
            let i = (o * stride + f) as isize - pad as isize;
            (i >= 0 && (i as usize) < n).then_some((f, i as usize))
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn ref_conv(
    input: &[i8],
    s: Shape,
    filter: &[i8],
    bias: &[i32],
    w: &Window,
    q: &Q,
    out: Shape,
    depthwise: Option<usize>,
) -> Vec<i8> {
    let mut y = Vec::new();
    for oy in 0..out.height {
        for ox in 0..out.width {
            for c in 0..out.channels {
                let mut acc: i128 = 0;
                for (fy, iy) in taps(oy, w.stride_h, w.pad_top, w.kernel_h, s.height) {
                    for (fx, ix) in taps(ox, w.stride_w, w.pad_left, w.kernel_w, s.width) {
                        match depthwise {
                            Some(mult) => {
                                let x = input[(iy * s.width + ix) * s.channels + c / mult];
                                let f = filter[(fy * w.kernel_w + fx) * out.channels + c];
                                acc += i128::from(f) * (i128::from(x) + i128::from(q.in_off));
                            }
                            None => {
                                for ic in 0..s.channels {
                                    let x = input[(iy * s.width + ix) * s.channels + ic];
                                    let f = filter[((c * w.kernel_h + fy) * w.kernel_w + fx)
                                        * s.channels
                                        + ic];
                                    acc += i128::from(f) * (i128::from(x) + i128::from(q.in_off));
                                }
                            }
                        }
                    }
                }
                if let Some(&b) = bias.get(c) {
                    acc = wrap32(acc) + i128::from(b);
                }
                y.push(requant(acc, q.m[c], q.s[c], q.out_zp, q.act));
            }
        }
    }
    y
}

fn window(kh: usize, kw: usize, sh: usize, sw: usize, pt: usize, pl: usize) -> Window {
    Window {
        kernel_h: kh,
        kernel_w: kw,
        stride_h: sh,
        stride_w: sw,
        pad_top: pt,
        pad_left: pl,
    }
}

fn out_size(n: usize, k: usize, s: usize, pad: usize) -> usize {
    (n + 2 * pad).saturating_sub(k) / s + 1
}

// ------------------------------------------------------------------ properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn conv2d_matches_wide_reference(
        (h, w, ic, oc, k, st, pad) in (1usize..=5, 1usize..=5, 1usize..=4, 1usize..=4, 1usize..=3, 1usize..=2, 0usize..=1),
        seed in any::<u64>(),
    ) {
        let s = Shape::new(h, w, ic);
        let win = window(k, k, st, st, pad, pad);
        let out = Shape::new(out_size(h, k, st, pad), out_size(w, k, st, pad), oc);
        let mut runner = runner(seed);
        let input = extreme_vec(s.len()).new_tree(&mut runner).unwrap().current();
        let filter = extreme_vec(oc * k * k * ic).new_tree(&mut runner).unwrap().current();
        let b: Vec<i32> = (0..oc).map(|_| bias().new_tree(&mut runner).unwrap().current()).collect();
        let qq = q(oc).new_tree(&mut runner).unwrap().current();
        let mut y = vec![0i8; out.len()];
        kernels::conv2d(&input, s, &filter, &b, &win, &qq.requantize(), &mut y, out).unwrap();
        prop_assert_eq!(y, ref_conv(&input, s, &filter, &b, &win, &qq, out, None));
    }

    #[test]
    fn depthwise_conv2d_matches_wide_reference(
        (h, w, ic, mult, k, st, pad) in (1usize..=5, 1usize..=5, 1usize..=3, 1usize..=3, 1usize..=3, 1usize..=2, 0usize..=1),
        seed in any::<u64>(),
    ) {
        let s = Shape::new(h, w, ic);
        let oc = ic * mult;
        let win = window(k, k, st, st, pad, pad);
        let out = Shape::new(out_size(h, k, st, pad), out_size(w, k, st, pad), oc);
        let mut runner = runner(seed);
        let input = extreme_vec(s.len()).new_tree(&mut runner).unwrap().current();
        let filter = extreme_vec(k * k * oc).new_tree(&mut runner).unwrap().current();
        let b: Vec<i32> = (0..oc).map(|_| bias().new_tree(&mut runner).unwrap().current()).collect();
        let qq = q(oc).new_tree(&mut runner).unwrap().current();
        let mut y = vec![0i8; out.len()];
        kernels::depthwise_conv2d(&input, s, &filter, &b, &win, mult, &qq.requantize(), &mut y, out).unwrap();
        prop_assert_eq!(y, ref_conv(&input, s, &filter, &b, &win, &qq, out, Some(mult)));
    }

    #[test]
    fn fully_connected_matches_wide_reference(
        (n_in, n_out) in (1usize..=300, 1usize..=6),
        seed in any::<u64>(),
    ) {
        let mut runner = runner(seed);
        let input = extreme_vec(n_in).new_tree(&mut runner).unwrap().current();
        let filter = extreme_vec(n_in * n_out).new_tree(&mut runner).unwrap().current();
        let b: Vec<i32> = (0..n_out).map(|_| bias().new_tree(&mut runner).unwrap().current()).collect();
        let qq = q(n_out).new_tree(&mut runner).unwrap().current();
        let mut y = vec![0i8; n_out];
        kernels::fully_connected(&input, &filter, &b, &qq.requantize(), &mut y).unwrap();
        prop_assert_eq!(y, ref_fc(&input, &filter, &b, &qq));
    }

    #[test]
    fn fully_connected_float_requant_matches_wide_reference(
        (n_in, n_out) in (1usize..=300, 1usize..=6),
        scale_exp in -40i32..=0,
        seed in any::<u64>(),
    ) {
        let mut runner = runner(seed);
        let input = extreme_vec(n_in).new_tree(&mut runner).unwrap().current();
        let filter = extreme_vec(n_in * n_out).new_tree(&mut runner).unwrap().current();
        let b: Vec<i32> = (0..n_out).map(|_| bias().new_tree(&mut runner).unwrap().current()).collect();
        let qq = q(n_out).new_tree(&mut runner).unwrap().current();
        // Effective scales in (0, 1]: x_scale · w_scale / y_scale of real layers.
        let scales: Vec<f64> = (0..n_out).map(|o| 2f64.powi(scale_exp) * (1.0 - o as f64 * 0.01)).collect();
        let fq = FloatRequantize {
            input_offset: qq.in_off,
            output_offset: qq.out_zp,
            scales: &scales,
            act_min: qq.act.0,
            act_max: qq.act.1,
        };
        let mut y = vec![0i8; n_out];
        kernels::fully_connected_float_requant(&input, &filter, &b, &fq, &mut y).unwrap();
        let want: Vec<i8> = (0..n_out).map(|o| {
            let acc = wrap32(fc_acc(&input, &filter[o * n_in..][..n_in], qq.in_off) + i128::from(b[o]));
            // f64 product and round half away from zero, exactly as specified.
            let r = (acc as f64 * scales[o]).round();
            let v = wrap32(r as i128 + i128::from(qq.out_zp));
            v.clamp(i128::from(qq.act.0), i128::from(qq.act.1)) as i8
        }).collect();
        prop_assert_eq!(y, want);
    }

    #[test]
    fn pools_match_wide_reference(
        (h, w, c, kh, kw, st, pad) in (1usize..=6, 1usize..=6, 1usize..=3, 1usize..=6, 1usize..=6, 1usize..=3, 0usize..=2),
        act in act(),
        seed in any::<u64>(),
    ) {
        let s = Shape::new(h, w, c);
        let pad = pad.min(kh - 1).min(kw - 1);
        let win = window(kh, kw, st, st, pad, pad);
        let (oh, ow) = (out_size(h, kh, st, pad), out_size(w, kw, st, pad));
        prop_assume!(oh > 0 && ow > 0);
        let out = Shape::new(oh, ow, c);
        let mut runner = runner(seed);
        let input = extreme_vec(s.len()).new_tree(&mut runner).unwrap().current();
        let (want_max, want_avg) = ref_pools(&input, s, &win, out, act);
        let mut y = vec![0i8; out.len()];
        kernels::max_pool(&input, s, &win, act.0, act.1, &mut y, out).unwrap();
        prop_assert_eq!(&y, &want_max);
        match kernels::avg_pool(&input, s, &win, act.0, act.1, &mut y, out) {
            Ok(()) => prop_assert_eq!(Some(y), want_avg),
            // Some window lies wholly in the padding: TFLite fails the op too.
            Err(_) => prop_assert_eq!(want_avg, None),
        }
    }

    #[test]
    fn softmax_is_close_to_exact_on_extremes(
        depth in prop_oneof![Just(1usize), Just(2), Just(10), Just(255), Just(511), 1usize..=64],
        beta_scale in prop_oneof![Just(1.0f32 / 256.0), Just(0.1f32), Just(1.0f32), Just(4.0f32)],
        seed in any::<u64>(),
    ) {
        let mut runner = runner(seed);
        let input = extreme_vec(depth).new_tree(&mut runner).unwrap().current();
        let params = SoftmaxParams::new(1.0, beta_scale).unwrap();
        let mut y = vec![0i8; depth];
        kernels::softmax(&input, depth, &params, &mut y).unwrap();
        let max = input.iter().copied().max().unwrap();
        let e: Vec<f64> = input.iter().map(|&x| (f64::from(beta_scale) * f64::from(i32::from(x) - i32::from(max))).exp()).collect();
        let sum: f64 = e.iter().sum();
        for (i, (&got, &ei)) in y.iter().zip(&e).enumerate() {
            let exact = (ei / sum * 256.0 - 128.0).clamp(-128.0, 127.0);
            prop_assert!((f64::from(got) - exact).abs() <= 1.5, "output {i}: {got} vs exact {exact}");
        }
    }
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, chunk) in b.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &(seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(i as u64))
            .to_le_bytes(),
        );
    }
    b
}

fn runner(seed: u64) -> proptest::test_runner::TestRunner {
    proptest::test_runner::TestRunner::new_with_rng(
        ProptestConfig::default(),
        proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &seed_bytes(seed),
        ),
    )
}

fn fc_acc(input: &[i8], row: &[i8], in_off: i32) -> i128 {
    input
        .iter()
        .zip(row)
        .map(|(&x, &w)| i128::from(w) * (i128::from(x) + i128::from(in_off)))
        .sum()
}

fn ref_fc(input: &[i8], filter: &[i8], bias: &[i32], q: &Q) -> Vec<i8> {
    let n_in = input.len();
    (0..q.m.len())
        .map(|o| {
            let mut acc = fc_acc(input, &filter[o * n_in..][..n_in], q.in_off);
            if let Some(&b) = bias.get(o) {
                acc = wrap32(acc) + i128::from(b);
            }
            requant(acc, q.m[o], q.s[o], q.out_zp, q.act)
        })
        .collect()
}

/// Max and average pool references; the average is `None` when a window is all padding.
fn ref_pools(
    input: &[i8],
    s: Shape,
    w: &Window,
    out: Shape,
    act: (i8, i8),
) -> (Vec<i8>, Option<Vec<i8>>) {
    let (mut mx, mut avg, mut empty) = (Vec::new(), Vec::new(), false);
    for oy in 0..out.height {
        for ox in 0..out.width {
            for c in 0..s.channels {
                let (mut m, mut sum, mut n) = (i128::from(i8::MIN), 0i128, 0i128);
                for (_, iy) in taps(oy, w.stride_h, w.pad_top, w.kernel_h, s.height) {
                    for (_, ix) in taps(ox, w.stride_w, w.pad_left, w.kernel_w, s.width) {
                        let x = i128::from(input[(iy * s.width + ix) * s.channels + c]);
                        m = m.max(x);
                        sum += x;
                        n += 1;
                    }
                }
                mx.push(m.clamp(i128::from(act.0), i128::from(act.1)) as i8);
                if n == 0 {
                    empty = true;
                    continue;
                }
                // Mean rounded half away from zero.
                let mean = sum.signum() * ((2 * sum.abs() + n) / (2 * n));
                avg.push(mean.clamp(i128::from(act.0), i128::from(act.1)) as i8);
            }
        }
    }
    (mx, (!empty).then_some(avg))
}

// ------------------------------------------------------------------ largest layers

/// The most taps whose worst-case accumulator (|w| ≤ 128, |x + offset| ≤ 255... here 127·255
/// for TFLite's symmetric weights) still fits int32: 2³¹ / (127·255) = 66,311.
const MAX_TAPS: usize = 66_311;

#[test]
fn largest_fully_connected_layers_saturate_correctly() {
    for n_in in [65_536usize, MAX_TAPS] {
        for (x, w, off) in [
            (127i8, 127i8, 128i32),
            (-128, 127, -127),
            (127, -127, 128),
            (-128, -127, 128),
            (127, 127, -127),
        ] {
            let input = vec![x; n_in];
            let filter = vec![w; n_in * 3];
            for (m, s) in [
                (i32::MAX, 0),
                (i32::MAX, -31),
                (1 << 30, -20),
                (i32::MAX, -24),
            ] {
                let qq = Q {
                    m: vec![m; 3],
                    s: vec![s; 3],
                    in_off: off,
                    out_zp: -128,
                    act: (-128, 127),
                };
                let mut y = vec![0i8; 3];
                kernels::fully_connected(&input, &filter, &[0, 1, -1], &qq.requantize(), &mut y)
                    .unwrap();
                assert_eq!(
                    y,
                    ref_fc(&input, &filter, &[0, 1, -1], &qq),
                    "{n_in} taps {x} {w} {off} {m} {s}"
                );
            }
        }
    }
    assert_eq!(wraps(), 0, "a layer within 66,311 taps wrapped");
}

#[test]
fn largest_convolutions_and_pools() {
    // Conv2D 3×3 over 7,281 input channels (65,529 taps per output), all at the extremes.
    let ic = 7_281;
    let s = Shape::new(3, 3, ic);
    let out = Shape::new(1, 1, 2);
    let win = window(3, 3, 1, 1, 0, 0);
    for (x, w, off) in [(127i8, 127i8, 128i32), (-128, -127, 128), (-128, 127, -127)] {
        let input = vec![x; s.len()];
        let filter = vec![w; 2 * 9 * ic];
        let qq = Q {
            m: vec![i32::MAX, 1 << 30],
            s: vec![-31, -23],
            in_off: off,
            out_zp: 5,
            act: (-128, 127),
        };
        let mut y = vec![0i8; 2];
        kernels::conv2d(
            &input,
            s,
            &filter,
            &[25_000_000, -25_000_000],
            &win,
            &qq.requantize(),
            &mut y,
            out,
        )
        .unwrap();
        assert_eq!(
            y,
            ref_conv(
                &input,
                s,
                &filter,
                &[25_000_000, -25_000_000],
                &win,
                &qq,
                out,
                None
            )
        );
    }
    // Depthwise over 65,535 channels (the most a u16 dimension holds), multiplier 1.
    let c = 65_535;
    let s = Shape::new(2, 2, c);
    let out = Shape::new(1, 1, c);
    let win = window(2, 2, 1, 1, 0, 0);
    let input: Vec<i8> = (0..s.len())
        .map(|i| if i % 3 == 0 { -128 } else { 127 })
        .collect();
    let filter: Vec<i8> = (0..4 * c)
        .map(|i| if i % 5 == 0 { -127 } else { 127 })
        .collect();
    let qq = Q {
        m: (0..c)
            .map(|i| if i % 2 == 0 { i32::MAX } else { 1 << 30 })
            .collect(),
        s: (0..c).map(|i| (i % 62) as i32 - 31).collect(),
        in_off: 128,
        out_zp: -128,
        act: (-128, 127),
    };
    let mut y = vec![0i8; c];
    kernels::depthwise_conv2d(
        &input,
        s,
        &filter,
        &[],
        &win,
        1,
        &qq.requantize(),
        &mut y,
        out,
    )
    .unwrap();
    assert_eq!(
        y,
        ref_conv(&input, s, &filter, &[], &win, &qq, out, Some(1))
    );

    // The largest pooling window the format allows (255×255), all −128 and all 127.
    let s = Shape::new(255, 255, 2);
    let win = window(255, 255, 1, 1, 0, 0);
    let out = Shape::new(1, 1, 2);
    for v in [-128i8, 127] {
        let input = vec![v; s.len()];
        let mut y = vec![0i8; 2];
        kernels::avg_pool(&input, s, &win, -128, 127, &mut y, out).unwrap();
        assert_eq!(y, vec![v; 2]);
        kernels::max_pool(&input, s, &win, -128, 127, &mut y, out).unwrap();
        assert_eq!(y, vec![v; 2]);
    }
}

#[test]
fn softmax_on_uniform_rows_up_to_4095_classes() {
    // All-equal rows: every output is round(256 / depth) − 128, from 1 class to the most the
    // Q12.19 sum of exponentials holds (4,095).
    for depth in [1usize, 2, 3, 10, 255, 256, 257, 511, 512, 1000, 4095] {
        for v in [-128i8, 127, 0] {
            let params = SoftmaxParams::new(1.0, 0.1).unwrap();
            let input = vec![v; depth];
            let mut y = vec![0i8; depth];
            kernels::softmax(&input, depth, &params, &mut y).unwrap();
            let exact = (256.0 / depth as f64 - 128.0).clamp(-128.0, 127.0);
            for &o in &y {
                assert!(
                    (f64::from(o) - exact).abs() <= 1.0,
                    "depth {depth}: {o} vs {exact}"
                );
            }
        }
    }
}

/// Finding F3: more than 4,095 classes could overflow the Q12.19 sum of exponentials (TFLite
/// adds without saturation and, from 8,193 equal maxima on, outputs 127 everywhere). The
/// kernel refuses such rows with a typed error instead of wrapping.
#[test]
fn softmax_refuses_rows_the_sum_cannot_hold() {
    assert_eq!(kernels::MAX_SOFTMAX_DEPTH, 4095);
    let params = SoftmaxParams::new(1.0, 0.1).unwrap();
    for depth in [4096usize, 8192, 8193, 12_000, 65_535] {
        let input = vec![127i8; depth];
        let mut y = vec![0i8; depth];
        assert_eq!(
            kernels::softmax(&input, depth, &params, &mut y),
            Err(fixnet::Error::InvalidParameter),
            "depth {depth}"
        );
    }
}

#[test]
fn realistic_layers_never_wrap() {
    // Layers as converters make them (real multipliers below 1, so shift ≤ 0; |bias| ≤ 2^24;
    // few hundred taps): none of the three int32 steps wraps, so the kernels agree with the
    // exact mathematics, not only with TFLite's int32 arithmetic.
    let mut runner = runner(7);
    for _ in 0..200 {
        let n_in = (0usize..=300)
            .new_tree(&mut runner)
            .unwrap()
            .current()
            .max(1);
        let input = extreme_vec(n_in).new_tree(&mut runner).unwrap().current();
        let filter = extreme_vec(n_in * 2)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let b = vec![1 << 24, -(1 << 24)];
        let scale = (1e-6f64..1.0).new_tree(&mut runner).unwrap().current();
        let (m, s) = fixnet::quant::quantize_multiplier(scale);
        let qq = Q {
            m: vec![m; 2],
            s: vec![s; 2],
            in_off: 128,
            out_zp: 127,
            act: (-128, 127),
        };
        let mut y = vec![0i8; 2];
        kernels::fully_connected(&input, &filter, &b, &qq.requantize(), &mut y).unwrap();
        assert_eq!(y, ref_fc(&input, &filter, &b, &qq));
    }
    assert_eq!(wraps(), 0);
}
