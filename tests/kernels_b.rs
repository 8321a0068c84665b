//! The activation and MUL kernels (LOGISTIC, TANH, HARD_SWISH, MUL, LEAKY_RELU, RELU/RELU6)
//! against hand-worked examples, independent straightforward models (proptests) and their
//! float twins. Bit-exactness with LiteRT itself is `tests/ops_litert_b.rs`.

use fixnet::float;
use fixnet::kernels::{self, Lut};
use fixnet::quant::{dequantize_i8, quantize_f32};
use fixnet::Error;
use proptest::prelude::*;

/// Every int8 value, in order.
fn all_i8() -> Vec<i8> {
    (i8::MIN..=i8::MAX).collect()
}

// ---------------------------------------------------------------------------- LUT ops

#[test]
fn logistic_worked_example() {
    // Input scale 1/16, zero point 0; output scale 1/256, zero point −128.
    //   q = 0    → x = 0     → σ = 0.5        → 128.0 → 0
    //   q = 16   → x = 1     → σ = 0.7310586  → 187.15 → 187 → 59
    //   q = −16  → x = −1    → σ = 0.2689414  → 68.85 → 69 → −59
    //   q = 127  → x = 7.9375 → σ = 0.999643  → 255.91 → 256 → 128 → clamped 127
    //   q = −128 → x = −8    → σ = 0.000335   → 0.086 → 0 → −128
    let lut = Lut::logistic(1.0 / 16.0, 0, 1.0 / 256.0, -128).unwrap();
    let input = [0, 16, -16, 127, -128];
    let mut out = [0i8; 5];
    kernels::lookup(&input, &lut, &mut out).unwrap();
    assert_eq!(out, [0, 59, -59, 127, -128]);
    // A non-zero input zero point shifts the curve: q = 10 is x = 0 for zero point 10.
    let lut = Lut::logistic(1.0 / 16.0, 10, 1.0 / 256.0, -128).unwrap();
    assert_eq!(lut.get(10), 0);
    assert_eq!(lut.get(26), 59);
}

#[test]
fn tanh_worked_example() {
    // Input scale 1/32, zero point 0; output scale 1/128, zero point 0.
    //   q = 32   → tanh(1) = 0.7615942   → 97.48 → 97
    //   q = −32  → −97 (odd function)
    //   q = 127  → tanh(3.96875) = 0.99928 → 127.91 → 128 → clamped 127
    //   q = −128 → tanh(−4) = −0.99933    → −127.91 → −128
    let lut = Lut::tanh(1.0 / 32.0, 0, 1.0 / 128.0, 0).unwrap();
    let input = [0, 32, -32, 127, -128];
    let mut out = [0i8; 5];
    kernels::lookup(&input, &lut, &mut out).unwrap();
    assert_eq!(out, [0, 97, -97, 127, -128]);
}

#[test]
fn lut_order_is_litert_order() {
    // Entry i is the output for input (i as u8) as i8: 0..=127 then −128..=−1.
    let lut = Lut::from_fn(1.0, 0, 1.0, 0, |x| x).unwrap();
    let e = lut.entries();
    assert_eq!((e[0], e[127], e[128], e[255]), (0, 127, -128, -1));
    assert_eq!(Lut::from_entries(*e), lut);
}

#[test]
fn lut_rejects_bad_scales_and_lengths() {
    assert_eq!(
        Lut::logistic(0.1, 0, 1.0 / 128.0, -128),
        Err(Error::BadQuantization)
    );
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert_eq!(
            Lut::tanh(bad, 0, 1.0 / 128.0, 0),
            Err(Error::BadQuantization)
        );
        assert_eq!(Lut::tanh(0.1, 0, bad, 0), Err(Error::BadQuantization));
    }
    let lut = Lut::tanh(0.1, 0, 1.0 / 128.0, 0).unwrap();
    assert_eq!(
        kernels::lookup(&[1, 2], &lut, &mut [0; 3]),
        Err(Error::ShapeMismatch)
    );
}

proptest! {
    /// Against the real function: every table entry is the correctly rounded quantized value
    /// of the f64 function, up to one step where f32 rounding lands on the other side of a
    /// half (never more), and both tables are monotone.
    #[test]
    fn lut_entries_are_the_quantized_function(
        scale_exp in -10.0f64..1.5,
        zp in -128i32..=127,
    ) {
        let s = libm::exp2(scale_exp) as f32;
        let logistic = Lut::logistic(s, zp, 1.0 / 256.0, -128).unwrap();
        let tanh = Lut::tanh(s, zp, 1.0 / 128.0, 0).unwrap();
        for q in all_i8() {
            let x = f64::from(s) * f64::from(i32::from(q) - zp);
            let want_l = (libm::round(256.0 / (1.0 + libm::exp(-x))) - 128.0).clamp(-128.0, 127.0);
            let want_t = libm::round(128.0 * libm::tanh(x)).clamp(-128.0, 127.0);
            prop_assert!((f64::from(logistic.get(q)) - want_l).abs() <= 1.0, "σ q={}", q);
            prop_assert!((f64::from(tanh.get(q)) - want_t).abs() <= 1.0, "tanh q={}", q);
            if q > i8::MIN {
                prop_assert!(logistic.get(q) >= logistic.get(q - 1));
                prop_assert!(tanh.get(q) >= tanh.get(q - 1));
            }
        }
    }
}

#[test]
fn float_logistic_and_tanh_twins() {
    // The int8 kernels are the float functions quantized: within one output step of them.
    let (si, zi) = (0.05f32, -3);
    let input = all_i8();
    let x: Vec<f32> = input.iter().map(|&q| dequantize_i8(q, si, zi)).collect();
    let mut yl = vec![0f32; 256];
    let mut yt = vec![0f32; 256];
    float::logistic(&x, &mut yl).unwrap();
    float::tanh(&x, &mut yt).unwrap();
    let ll = Lut::logistic(si, zi, 1.0 / 256.0, -128).unwrap();
    let lt = Lut::tanh(si, zi, 1.0 / 128.0, 0).unwrap();
    for (i, &q) in input.iter().enumerate() {
        let (fl, ft) = (f64::from(yl[i]), f64::from(yt[i]));
        assert!((fl - 1.0 / (1.0 + libm::exp(-f64::from(x[i])))).abs() < 1e-6);
        assert!((ft - libm::tanh(f64::from(x[i]))).abs() < 1e-6);
        let dl = i32::from(ll.get(q)) - i32::from(quantize_f32(yl[i], 1.0 / 256.0, -128));
        let dt = i32::from(lt.get(q)) - i32::from(quantize_f32(yt[i], 1.0 / 128.0, 0));
        assert!(dl.abs() <= 1 && dt.abs() <= 1, "q={q}");
    }
    assert_eq!(float::logistic(&x, &mut yl[..3]), Err(Error::ShapeMismatch));
}

// ---------------------------------------------------------------------------- HARD_SWISH

#[test]
fn hard_swish_worked_example() {
    // Input and output scale 3/64, zero points 0. hires scale = 3/8192; the relu-ish
    // multiplier (3/8192)/(3/32768) = 4 = 0.5·2^3 → (16384, 3); the output multiplier
    // (3/8192)/(3/64) = 1/128 = 0.5·2^−6 → (16384, −6).
    //   q = 32 (x = 1.5): hires 4096; output pre-shift srdhm(4096, 0.5) = 2048; relu-ish
    //     4096·4 = 16384 (x/3 = 0.5 on ±1) → (16384 + 32768)/2 = 24576 (0.75);
    //     24576·2048/32768 = 1536 → 1536/64 = 24 (1.5·0.75 = 1.125 = 24·3/64).
    //   q = −32 (x = −1.5): pre-shift −2048, relu-ish −16384 → 8192 (0.25);
    //     8192·−2048/32768 = −512 → −8 (−0.375).
    //   q = 64 (x = 3): relu-ish saturates at 32767; pre-shift 4096 → 32767·4096/32768 =
    //     4095 (truncated) → 4095/64 = 63.98 → 64 (= x).
    //   q = 100 (x = 4.6875): 6400 → 6399 → 99.98 → 100 (= x); q = −64 (x = −3) → 0.
    let p = kernels::HardSwishParams::new(3.0 / 64.0, 0, 3.0 / 64.0, 0).unwrap();
    assert_eq!(
        (
            p.reluish_multiplier_fixedpoint_int16,
            p.reluish_multiplier_exponent
        ),
        (16384, 3)
    );
    assert_eq!(
        (
            p.output_multiplier_fixedpoint_int16,
            p.output_multiplier_exponent
        ),
        (16384, -6)
    );
    let input = [0, 64, -64, 32, -32, 100];
    let mut out = [0i8; 6];
    kernels::hard_swish(&input, &p, &mut out).unwrap();
    assert_eq!(out, [0, 64, 0, 24, -8, 100]);
    // The output zero point is added last.
    let p = kernels::HardSwishParams::new(3.0 / 64.0, 0, 3.0 / 64.0, -5).unwrap();
    kernels::hard_swish(&input, &p, &mut out).unwrap();
    assert_eq!(out, [-5, 59, -5, 19, -13, 95]);
}

#[test]
fn hard_swish_rejects_bad_parameters() {
    let new = kernels::HardSwishParams::new;
    assert_eq!(new(0.0, 0, 0.1, 0), Err(Error::BadQuantization));
    assert_eq!(new(0.1, 0, f32::NAN, 0), Err(Error::BadQuantization));
    assert_eq!(new(0.1, 128, 0.1, 0), Err(Error::BadQuantization));
    assert_eq!(new(0.1, 0, 0.1, -129), Err(Error::BadQuantization));
    // Output multiplier (s/128)/out ≥ 1: TFLite refuses it.
    assert_eq!(new(1.0, 0, 1.0 / 256.0, 0), Err(Error::BadQuantization));
    let p = new(0.1, 0, 0.1, 0).unwrap();
    assert_eq!(
        kernels::hard_swish(&[0; 2], &p, &mut [0; 1]),
        Err(Error::ShapeMismatch)
    );
}

fn hard_swish_f64(x: f64) -> f64 {
    x * (x + 3.0).clamp(0.0, 6.0) / 6.0
}

proptest! {
    /// Against the real function in f64: the 16-bit pipeline stays within one output step
    /// (plus the relu-ish factor's 2^−15 resolution, negligible at int8) of the exact value.
    #[test]
    fn hard_swish_is_within_one_step_of_exact(
        in_scale_exp in -9.0f64..1.0,
        out_ratio in 0.2f64..3.0,
        in_zp in -128i32..=127,
        out_zp in -128i32..=127,
    ) {
        let si = libm::exp2(in_scale_exp) as f32;
        // Output range covers the input's positive range (as calibration makes it).
        let so = (f64::from(si) * out_ratio) as f32;
        let p = kernels::HardSwishParams::new(si, in_zp, so, out_zp).unwrap();
        for q in all_i8() {
            let x = f64::from(si) * f64::from(i32::from(q) - in_zp);
            let want = (libm::round(hard_swish_f64(x) / f64::from(so)) + f64::from(out_zp))
                .clamp(-128.0, 127.0);
            let got = f64::from(p.apply(q));
            prop_assert!((got - want).abs() <= 1.0, "q={} got {} want {}", q, got, want);
        }
    }
}

#[test]
fn float_hard_swish_twin() {
    let (si, zi, so, zo) = (0.06f32, 10, 0.04f32, -90);
    let input = all_i8();
    let x: Vec<f32> = input.iter().map(|&q| dequantize_i8(q, si, zi)).collect();
    let mut y = vec![0f32; 256];
    float::hard_swish(&x, &mut y).unwrap();
    let p = kernels::HardSwishParams::new(si, zi, so, zo).unwrap();
    for (i, &q) in input.iter().enumerate() {
        assert!((f64::from(y[i]) - hard_swish_f64(f64::from(x[i]))).abs() < 1e-5);
        let d = i32::from(p.apply(q)) - i32::from(quantize_f32(y[i], so, zo));
        assert!(d.abs() <= 1, "q={q}");
    }
    assert_eq!(
        float::hard_swish(&x, &mut y[..1]),
        Err(Error::ShapeMismatch)
    );
}

// ---------------------------------------------------------------------------- MUL

/// [`kernels::broadcast_mul`] onto the broadcast of the two shapes (an impossible one when
/// they do not broadcast, which the kernel must refuse).
fn mul4(
    a: &[i8],
    da: [usize; 4],
    b: &[i8],
    db: [usize; 4],
    p: &kernels::MulParams,
    out: &mut [i8],
) -> Result<(), Error> {
    let dout = kernels::broadcast::broadcast_shape(&da, &db).unwrap_or([0; 4]);
    kernels::broadcast_mul(a, &da, b, &db, p, out, &dout)
}

fn mul_params(s: (f32, f32, f32), zp: (i32, i32, i32), act: (i8, i8)) -> kernels::MulParams {
    kernels::MulParams::new(s.0, zp.0, s.1, zp.1, s.2, zp.2, act.0, act.1).unwrap()
}

#[test]
fn mul_worked_example() {
    // Scales 0.5 · 0.25 / 0.125 = 1.0 → Q31 (2^30, shift 1). Zero points 1, −2, 3:
    //   (5 − 1)·(2 + 2) = 16 → 16 + 3 = 19;  (−3 − 1)·(6 + 2) = −32 → −29.
    let p = mul_params((0.5, 0.25, 0.125), (1, -2, 3), (-128, 127));
    assert_eq!((p.output_multiplier, p.output_shift), (1 << 30, 1));
    let mut out = [0i8; 2];
    mul4(&[5, -3], [1, 1, 1, 2], &[2, 6], [1, 1, 1, 2], &p, &mut out).unwrap();
    assert_eq!(out, [19, -29]);
    // The same-shape entry point.
    kernels::mul(&[5, -3], &[2, 6], &p, &mut out).unwrap();
    assert_eq!(out, [19, -29]);
    assert_eq!(
        kernels::mul(&[5, -3], &[2], &p, &mut out),
        Err(Error::ShapeMismatch)
    );
    // Saturation: 127 · 127 far exceeds the range.
    mul4(
        &[127, -128],
        [1, 1, 1, 2],
        &[127, 127],
        [1, 1, 1, 2],
        &p,
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [127, -128]);
}

#[test]
fn mul_rounding_is_tflites_double_rounding() {
    // Multiplier 0.5 = (2^30, 0): 3·0.5 = 1.5 → 2, −1.5 → −1 (SRDHM ties go toward +∞).
    let p = mul_params((0.5, 0.5, 0.5), (0, 0, 0), (-128, 127));
    let mut out = [0i8; 2];
    mul4(&[3, -3], [1, 1, 1, 2], &[1, 1], [1, 1, 1, 2], &p, &mut out).unwrap();
    assert_eq!(out, [2, -1]);
    // Multiplier 0.25 = (2^30, −1): 5 → SRDHM 2.5 → 3, then 3/2 = 1.5 → 2 (ties away from
    // zero); a single rounding of 1.25 would give 1. −6 → −3 → −1.5 → −2.
    let p = mul_params((0.5, 0.5, 1.0), (0, 0, 0), (-128, 127));
    assert_eq!((p.output_multiplier, p.output_shift), (1 << 30, -1));
    mul4(&[5, -6], [1, 1, 1, 2], &[1, 1], [1, 1, 1, 2], &p, &mut out).unwrap();
    assert_eq!(out, [2, -2]);
}

#[test]
fn mul_broadcasts_and_clamps() {
    // Squeeze-and-excite: [1,1,2,2] · [1,1,1,2] (per-channel factors), multiplier 1.
    let p = mul_params((0.5, 0.5, 0.25), (0, 0, 0), (-128, 127));
    let mut out = [0i8; 4];
    mul4(
        &[1, 2, 3, 4],
        [1, 1, 2, 2],
        &[10, -10],
        [1, 1, 1, 2],
        &p,
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [10, -20, 30, -40]);
    // Either operand may be the broadcast one; both may broadcast ([1,2,1,1]·[1,1,1,2]).
    mul4(
        &[10, -10],
        [1, 1, 1, 2],
        &[1, 2, 3, 4],
        [1, 1, 2, 2],
        &p,
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [10, -20, 30, -40]);
    mul4(&[1, 2], [1, 2, 1, 1], &[3, -4], [1, 1, 1, 2], &p, &mut out).unwrap();
    assert_eq!(out, [3, -4, 6, -8]);
    // A fused RELU6 with output scale 0.25, zero point 0: the range is [0, 24].
    let p = mul_params((0.5, 0.5, 0.25), (0, 0, 0), (0, 24));
    mul4(&[1, 2], [1, 2, 1, 1], &[30, -4], [1, 1, 1, 2], &p, &mut out).unwrap();
    assert_eq!(out, [24, 0, 24, 0]);
}

#[test]
fn mul_rejects_bad_shapes_and_parameters() {
    let p = mul_params((0.5, 0.5, 0.25), (0, 0, 0), (-128, 127));
    let mut out = [0i8; 4];
    // Sizes 2 and 3 do not broadcast.
    assert_eq!(
        mul4(
            &[0; 2],
            [1, 1, 1, 2],
            &[0; 3],
            [1, 1, 1, 3],
            &p,
            &mut out[..3]
        ),
        Err(Error::ShapeMismatch)
    );
    // Slice lengths that do not match the shapes.
    assert_eq!(
        mul4(&[0; 3], [1, 1, 2, 2], &[0; 2], [1, 1, 1, 2], &p, &mut out),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        mul4(
            &[0; 4],
            [1, 1, 2, 2],
            &[0; 2],
            [1, 1, 1, 2],
            &p,
            &mut out[..3]
        ),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        mul4(
            &[0; 4],
            [1, 1, 2, 2],
            &[0; 4],
            [1, 1, 2, 2],
            &p,
            &mut out[..3]
        ),
        Err(Error::ShapeMismatch)
    );
    let new = kernels::MulParams::new;
    assert_eq!(
        new(0.0, 0, 1.0, 0, 1.0, 0, -128, 127),
        Err(Error::BadQuantization)
    );
    assert_eq!(
        new(1.0, 200, 1.0, 0, 1.0, 0, -128, 127),
        Err(Error::BadQuantization)
    );
    assert_eq!(
        new(1.0, 0, 1.0, 0, 1.0, 0, 5, 4),
        Err(Error::InvalidParameter)
    );
    // A huge broadcast shape with an empty axis does not panic: it is refused (its strides
    // overflow).
    assert_eq!(
        mul4(
            &[],
            [0, usize::MAX, usize::MAX, 1],
            &[0],
            [1, 1, 1, 1],
            &p,
            &mut []
        ),
        Err(Error::ShapeMismatch)
    );
}

/// SRDHM restated: `floor((a·b + 2^30) / 2^31)`, saturating −1·−1.
fn model_srdhm(a: i64, b: i64) -> i64 {
    ((i128::from(a) * i128::from(b) + (1 << 30)).div_euclid(1 << 31)).min(i128::from(i32::MAX))
        as i64
}

/// Rounding division by 2^e restated: `sign(x) · floor(|x| / 2^e + 1/2)`.
fn model_rdbpot(x: i64, e: i64) -> i64 {
    if e <= 0 {
        return x;
    }
    let d = 1i64 << e;
    x.signum() * ((2 * x.abs() + d) / (2 * d))
}

/// TFLite's requantization restated from (multiplier, shift).
fn model_requant(acc: i64, m: i32, shift: i32) -> i64 {
    let left = i64::from(shift.max(0));
    model_rdbpot(
        model_srdhm(acc << left, i64::from(m)),
        -i64::from(shift.min(0)),
    )
}

/// Broadcast MUL restated: for every output multi-index, each operand's index is the same
/// multi-index with its size-1 axes pinned to 0.
fn model_mul(
    a: &[i8],
    da: [usize; 4],
    b: &[i8],
    db: [usize; 4],
    p: &kernels::MulParams,
) -> Vec<i8> {
    let out: Vec<usize> = (0..4).map(|k| da[k].max(db[k])).collect();
    let flat = |d: [usize; 4], idx: [usize; 4]| {
        let mut f = 0;
        for k in 0..4 {
            f = f * d[k] + if d[k] == 1 { 0 } else { idx[k] };
        }
        f
    };
    let mut y = Vec::new();
    for n in 0..out[0] {
        for h in 0..out[1] {
            for w in 0..out[2] {
                for c in 0..out[3] {
                    let i = [n, h, w, c];
                    let va = i64::from(a[flat(da, i)]) + i64::from(p.input1_offset);
                    let vb = i64::from(b[flat(db, i)]) + i64::from(p.input2_offset);
                    let r = model_requant(va * vb, p.output_multiplier, p.output_shift)
                        + i64::from(p.output_offset);
                    y.push(r.clamp(i64::from(p.act_min), i64::from(p.act_max)) as i8);
                }
            }
        }
    }
    y
}

/// A random 4-D shape pair that broadcasts: each axis size in 1..=4, and per axis either both
/// equal or one of them 1.
fn broadcast_pair() -> impl Strategy<Value = ([usize; 4], [usize; 4])> {
    proptest::array::uniform4((1usize..=4, 0u8..3)).prop_map(|axes| {
        let mut a = [1; 4];
        let mut b = [1; 4];
        for (k, (n, mode)) in axes.into_iter().enumerate() {
            match mode {
                0 => (a[k], b[k]) = (n, n),
                1 => a[k] = n,
                _ => b[k] = n,
            }
        }
        (a, b)
    })
}

proptest! {
    #[test]
    fn mul_matches_model(
        (da, db) in broadcast_pair(),
        seed in any::<u64>(),
        s in (0.001f32..0.5, 0.001f32..0.5, 0.0005f32..0.3),
        zp in (-128i32..=127, -128i32..=127, -128i32..=127),
        act in (-128i8..=127, -128i8..=127),
    ) {
        let act = (act.0.min(act.1), act.0.max(act.1));
        let p = mul_params(s, zp, act);
        let mut state = seed | 1;
        let mut gen = |n: usize| -> Vec<i8> {
            (0..n).map(|_| { state ^= state << 13; state ^= state >> 7; state ^= state << 17; state as i8 }).collect()
        };
        let a = gen(da.iter().product());
        let b = gen(db.iter().product());
        let want = model_mul(&a, da, &b, db, &p);
        let mut got = vec![0i8; want.len()];
        mul4(&a, da, &b, db, &p, &mut got).unwrap();
        prop_assert_eq!(got, want);
    }
}

#[test]
fn float_mul_twin() {
    let (s1, z1, s2, z2, so, zo) = (0.05f32, 3, 0.02f32, -10, 0.004f32, 7);
    let (da, db) = ([1, 2, 3, 4], [1, 1, 1, 4]);
    let a: Vec<i8> = (0..24).map(|i| (i * 37 % 256 - 128) as i8).collect();
    let b: Vec<i8> = vec![-128, -5, 60, 127];
    let fa: Vec<f32> = a.iter().map(|&q| dequantize_i8(q, s1, z1)).collect();
    let fb: Vec<f32> = b.iter().map(|&q| dequantize_i8(q, s2, z2)).collect();
    let mut fy = vec![0f32; 24];
    float::broadcast_mul(&fa, &da, &fb, &db, float::Activation::Relu, &mut fy, &da).unwrap();
    let (lo, hi) = fixnet::quant::activation_range_i8(float::Activation::Relu, so, zo);
    let p = mul_params((s1, s2, so), (z1, z2, zo), (lo, hi));
    let mut y = vec![0i8; 24];
    mul4(&a, da, &b, db, &p, &mut y).unwrap();
    for i in 0..24 {
        let c = i % 4;
        assert!((fy[i] - (fa[i] * fb[c]).max(0.0)).abs() < 1e-6);
        let d = i32::from(y[i]) - i32::from(quantize_f32(fy[i], so, zo));
        assert!(d.abs() <= 1, "element {i}: {} vs {}", y[i], fy[i]);
    }
    let db3 = [1, 1, 1, 3];
    assert_eq!(
        float::broadcast_mul(
            &fa,
            &da,
            &fb[..3],
            &db3,
            float::Activation::None,
            &mut fy,
            &da
        ),
        Err(Error::ShapeMismatch)
    );
    // The same-shape twin.
    let mut y2 = vec![0f32; 4];
    float::mul(&fa[..4], &fb, float::Activation::None, &mut y2).unwrap();
    assert_eq!(
        y2,
        [fa[0] * fb[0], fa[1] * fb[1], fa[2] * fb[2], fa[3] * fb[3]]
    );
}

// ---------------------------------------------------------------------------- RELU family

#[test]
fn relu_worked_example() {
    // Input scale 0.1, zero point −10; output scale 0.05, zero point −128: multiplier
    // 0.1/0.05 = 2 = 0.5·2^2 → (2^30, 2). RELU's range: [−128 + round(0/0.05), 127] =
    // [−128, 127].
    //   q = −10 (x = 0)  → 0 → −128;     q = 0 (x = 1)   → 10·2 = 20 → −108
    //   q = −20 (x = −1) → −20 → −148 → −128;  q = 60 → 140 → 12;  q = 127 → 274 → 127
    let p = kernels::ReluParams::new(0.1, -10, 0.05, -128, 0.0, f32::INFINITY).unwrap();
    assert_eq!((p.output_multiplier, p.output_shift), (1 << 30, 2));
    assert_eq!((p.act_min, p.act_max), (-128, 127));
    let input = [-10, 0, -20, 60, 127];
    let mut out = [0i8; 5];
    kernels::relu_x(&input, &p, &mut out).unwrap();
    assert_eq!(out, [-128, -108, -128, 12, 127]);
    // RELU6: the upper bound is −128 + round(6/0.05) = −8.
    let p = kernels::ReluParams::new(0.1, -10, 0.05, -128, 0.0, 6.0).unwrap();
    assert_eq!((p.act_min, p.act_max), (-128, -8));
    kernels::relu_x(&input, &p, &mut out).unwrap();
    assert_eq!(out, [-128, -108, -128, -8, -8]);
    // RELU_N1_TO_1 with output scale 1/128: ±1 → ±128, clipped to [−128, 127]; input scale
    // 1/64 → multiplier 2: 10 → 20, −100 → −200 → −128, 70 → 140 → 127.
    let p = kernels::ReluParams::new(1.0 / 64.0, 0, 1.0 / 128.0, 0, -1.0, 1.0).unwrap();
    assert_eq!((p.act_min, p.act_max), (-128, 127));
    let mut out = [0i8; 3];
    kernels::relu_x(&[10, -100, 70], &p, &mut out).unwrap();
    assert_eq!(out, [20, -128, 127]);
}

#[test]
fn leaky_relu_worked_example() {
    // Scales 0.1 → 0.1, zero points 0, alpha 0.5: identity (2^30, 1), alpha (2^30, 0).
    //   10 → 10;  −10 → −5;  −128 → −64;  −3 → −1.5 → −1 (SRDHM ties go toward +∞).
    let p = kernels::LeakyReluParams::new(0.1, 0, 0.1, 0, 0.5).unwrap();
    assert_eq!(
        (p.output_multiplier_alpha, p.output_shift_alpha),
        (1 << 30, 0)
    );
    let mut out = [0i8; 4];
    kernels::leaky_relu(&[10, -10, -128, -3], &p, &mut out).unwrap();
    assert_eq!(out, [10, -5, -64, -1]);
    // A negative alpha (−0.5): its multiplier −2^30 is applied as it is (TFLite 2.21), so
    // −3 · −0.5 = 1.5 rounds up to 2 (applying 0.5 and negating would give −(−1) = 1).
    let p = kernels::LeakyReluParams::new(0.1, 0, 0.1, 0, -0.5).unwrap();
    assert_eq!(p.output_multiplier_alpha, -(1 << 30));
    kernels::leaky_relu(&[10, -10, -128, -3], &p, &mut out).unwrap();
    assert_eq!(out, [10, 5, 64, 2]);
    // A zero point: input zp 20 makes q = 20 the real 0; output zp −7.
    let p = kernels::LeakyReluParams::new(0.1, 20, 0.1, -7, 0.5).unwrap();
    kernels::leaky_relu(&[20, 30, 10, 0], &p, &mut out).unwrap();
    assert_eq!(out, [-7, 3, -12, -17]);
}

#[test]
fn relu_family_rejects_bad_parameters() {
    let relu = kernels::ReluParams::new;
    assert_eq!(relu(0.0, 0, 1.0, 0, 0.0, 6.0), Err(Error::BadQuantization));
    assert_eq!(
        relu(1.0, 0, 1.0, 300, 0.0, 6.0),
        Err(Error::BadQuantization)
    );
    assert_eq!(relu(1.0, 0, 1.0, 0, 6.0, 0.0), Err(Error::InvalidParameter));
    assert_eq!(
        relu(1.0, 0, 1.0, 0, f32::NAN, 0.0),
        Err(Error::InvalidParameter)
    );
    let leaky = kernels::LeakyReluParams::new;
    assert_eq!(leaky(1.0, 0, -1.0, 0, 0.2), Err(Error::BadQuantization));
    assert_eq!(
        leaky(1.0, 0, 1.0, 0, f32::NAN),
        Err(Error::InvalidParameter)
    );
    let p = relu(1.0, 0, 1.0, 0, 0.0, 6.0).unwrap();
    assert_eq!(
        kernels::relu_x(&[0; 2], &p, &mut [0; 3]),
        Err(Error::ShapeMismatch)
    );
    let p = leaky(1.0, 0, 1.0, 0, 0.2).unwrap();
    assert_eq!(
        kernels::leaky_relu(&[0; 2], &p, &mut [0; 1]),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        float::relu_x(&[0.0], 1.0, 0.0, &mut [0.0]),
        Err(Error::InvalidParameter)
    );
}

proptest! {
    /// Against the restated arithmetic (from the Q31 parameters) and against the real
    /// functions in f64 (within one output step, the Q31 multiplier's error being far below).
    #[test]
    fn relu_family_matches_model(
        si in 0.001f32..1.0,
        so in 0.001f32..1.0,
        zi in -128i32..=127,
        zo in -128i32..=127,
        alpha in -1.0f32..1.0,
        kind in 0u8..3,
    ) {
        let (lo, hi) = [(0.0, f32::INFINITY), (0.0, 6.0), (-1.0, 1.0)][usize::from(kind)];
        let relu = kernels::ReluParams::new(si, zi, so, zo, lo, hi).unwrap();
        let leaky = kernels::LeakyReluParams::new(si, zi, so, zo, alpha).unwrap();
        let (m, s) = fixnet::quant::quantize_multiplier(f64::from(si / so));
        prop_assert_eq!((relu.output_multiplier, relu.output_shift), (m, s));
        let qmin = |b: f32| i64::from(zo) + libm::roundf(b / so) as i64;
        let (amin, amax) = (
            qmin(lo).max(-128),
            if hi.is_infinite() { 127 } else { qmin(hi).min(127) },
        );
        for q in all_i8() {
            let v = i64::from(q) - i64::from(zi);
            let r = (model_requant(v, m, s) + i64::from(zo)).max(amin).min(amax);
            prop_assert_eq!(i64::from(relu.apply(q)), r, "relu q={}", q);

            let l = if v >= 0 {
                model_requant(v, m, s)
            } else {
                model_requant(v, leaky.output_multiplier_alpha, leaky.output_shift_alpha)
            };
            prop_assert_eq!(
                i64::from(leaky.apply(q)),
                (l + i64::from(zo)).clamp(-128, 127),
                "leaky q={}", q
            );
            let x = f64::from(si) * v as f64;
            let y = if x > 0.0 { x } else { x * f64::from(alpha) };
            let want = (libm::round(y / f64::from(so)) + f64::from(zo)).clamp(-128.0, 127.0);
            prop_assert!((f64::from(leaky.apply(q)) - want).abs() <= 1.0, "leaky f64 q={}", q);
        }
    }
}

#[test]
fn float_relu_family_twins() {
    let (si, zi, so, zo) = (0.08f32, 12, 0.03f32, -100);
    let input = all_i8();
    let x: Vec<f32> = input.iter().map(|&q| dequantize_i8(q, si, zi)).collect();
    let mut y = vec![0f32; 256];
    float::relu_x(&x, 0.0, 6.0, &mut y).unwrap();
    let p = kernels::ReluParams::new(si, zi, so, zo, 0.0, 6.0).unwrap();
    for (i, &q) in input.iter().enumerate() {
        assert_eq!(y[i], x[i].clamp(0.0, 6.0));
        let d = i32::from(p.apply(q)) - i32::from(quantize_f32(y[i], so, zo));
        assert!(d.abs() <= 1, "relu6 q={q}");
    }
    float::leaky_relu(&x, 0.3, &mut y).unwrap();
    let p = kernels::LeakyReluParams::new(si, zi, so, zo, 0.3).unwrap();
    for (i, &q) in input.iter().enumerate() {
        assert_eq!(y[i], if x[i] > 0.0 { x[i] } else { 0.3 * x[i] });
        let d = i32::from(p.apply(q)) - i32::from(quantize_f32(y[i], so, zo));
        assert!(d.abs() <= 1, "leaky q={q}");
    }
    assert_eq!(
        float::leaky_relu(&x, 0.3, &mut y[..2]),
        Err(Error::ShapeMismatch)
    );
}
