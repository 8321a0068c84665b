//! Property tests of ADD, MEAN, PAD, CONCATENATION, QUANTIZE and DEQUANTIZE against
//! independent straightforward models (`i64`/`i128`/`f64` arithmetic, naive index loops,
//! rounding rules restated in closed form), and against the real-valued result.

use fixnet::float::Activation;
use fixnet::kernels::{self, AddParams, MeanParams, RequantizeParams};
use fixnet::quant::{quantize_f32, quantize_multiplier};
use fixnet::Shape;
use proptest::collection::vec;
use proptest::prelude::*;

// ------------------------------------------------------------------ reference arithmetic

/// SRDHM restated: `floor(a·b / 2^31 + 1/2)`, saturating the one overflow.
fn model_srdhm(a: i64, b: i64) -> i64 {
    let p = i128::from(a) * i128::from(b);
    let r = (p + (1 << 30)).div_euclid(1 << 31);
    r.min(i128::from(i32::MAX)) as i64
}

/// Rounding division by 2^e restated: `sign(x) · floor(|x| / 2^e + 1/2)`.
fn model_rdbpot(x: i64, e: i32) -> i64 {
    if e <= 0 {
        return x;
    }
    let d = 1i128 << e;
    let q = (2 * i128::from(x).abs() + d) / (2 * d);
    (q * i128::from(x.signum())) as i64
}

/// `x · real` the TFLite way: the Q31 multiplier of `real`, left shift before, rounding
/// right shift after.
fn model_rescale(x: i64, real: f64) -> i64 {
    let (m, shift) = quantize_multiplier(real);
    model_rdbpot(model_srdhm(x << shift.max(0), i64::from(m)), -shift)
}

fn activation() -> impl Strategy<Value = Activation> {
    prop_oneof![
        Just(Activation::None),
        Just(Activation::Relu),
        Just(Activation::Relu6)
    ]
}

/// A scale between 2^−10 and 2^2.
fn scale() -> impl Strategy<Value = f32> {
    (1.0f32..2.0, -10i32..=1).prop_map(|(m, e)| m * 2f32.powi(e))
}

fn quant() -> impl Strategy<Value = (f32, i32)> {
    (scale(), -128i32..=127)
}

// ------------------------------------------------------------------ add

/// Two shapes that broadcast: each axis of each operand is the output's extent or 1.
fn add_shapes() -> impl Strategy<Value = ([usize; 4], [usize; 4], [usize; 4])> {
    (vec(1usize..=4, 4), vec(0u8..4, 4)).prop_map(|(out, mode)| {
        let mut a = [0; 4];
        let mut b = [0; 4];
        let mut o = [0; 4];
        for i in 0..4 {
            // Batch stays small: 1 or 2.
            let ext = if i == 0 { 1 + out[i] % 2 } else { out[i] };
            o[i] = ext;
            a[i] = if mode[i] == 1 { 1 } else { ext };
            b[i] = if mode[i] == 2 { 1 } else { ext };
        }
        (a, b, o)
    })
}

fn fill(dims: [usize; 4]) -> impl Strategy<Value = Vec<i8>> {
    vec(any::<i8>(), dims.iter().product::<usize>())
}

fn model_add(x: i8, y: i8, q: [(f32, i32); 3], act: (i8, i8)) -> i8 {
    let [(s1, z1), (s2, z2), (so, zo)] = q;
    let twice = 2.0 * f64::from(s1.max(s2));
    let a = model_rescale((i64::from(x) - i64::from(z1)) << 20, f64::from(s1) / twice);
    let b = model_rescale((i64::from(y) - i64::from(z2)) << 20, f64::from(s2) / twice);
    let out = model_rescale(a + b, twice / (f64::from(so) * 1048576.0)) + i64::from(zo);
    out.clamp(i64::from(act.0), i64::from(act.1)) as i8
}

/// Flat index of `(n, h, w, c)` in a tensor of `dims`, axes of extent 1 pinned to 0.
fn bindex(dims: [usize; 4], at: [usize; 4]) -> usize {
    let mut i = 0;
    for k in 0..4 {
        i = i * dims[k] + if dims[k] == 1 { 0 } else { at[k] };
    }
    i
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn add_matches_model(
        (a_dims, b_dims, o_dims, a, b) in add_shapes()
            .prop_flat_map(|(a, b, o)| (Just(a), Just(b), Just(o), fill(a), fill(b))),
        qa in quant(), qb in quant(), qo in quant(), act in activation(),
    ) {
        let Ok(p) = AddParams::new(qa, qb, qo, act) else {
            // Only where TFLite aborts too: the output multiplier reaches 1.
            prop_assert!(2.0 * f64::from(qa.0.max(qb.0)) / (f64::from(qo.0) * 1048576.0) >= 0.5);
            return Ok(());
        };
        let mut got = vec![0i8; o_dims.iter().product()];
        kernels::broadcast_add(&a, &a_dims, &b, &b_dims, &p, &mut got, &o_dims).unwrap();
        let mut k = 0;
        for n in 0..o_dims[0] {
            for h in 0..o_dims[1] {
                for w in 0..o_dims[2] {
                    for c in 0..o_dims[3] {
                        let x = a[bindex(a_dims, [n, h, w, c])];
                        let y = b[bindex(b_dims, [n, h, w, c])];
                        let want = model_add(x, y, [qa, qb, qo], (p.act_min, p.act_max));
                        prop_assert_eq!(got[k], want, "at {:?}", [n, h, w, c]);
                        // And within one output step of the real sum, where not clamped.
                        let real = f64::from(qa.0) * (f64::from(x) - f64::from(qa.1))
                            + f64::from(qb.0) * (f64::from(y) - f64::from(qb.1));
                        let ideal = real / f64::from(qo.0) + f64::from(qo.1);
                        if ideal > f64::from(p.act_min) && ideal < f64::from(p.act_max) {
                            let err = (f64::from(got[k]) - ideal).abs();
                            prop_assert!(err <= 1.0, "{} vs {}", got[k], ideal);
                        }
                        k += 1;
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------ mean

/// LiteRT's int8 mean restated: the multiplier of `s_in / s_out`, re-adapted by `1/n` with
/// `k = min(floor(log2 n), 32, 31 + e)` bits of extra precision, applied to the centred sum.
fn model_mean(values: &[i8], q_in: (f32, i32), q_out: (f32, i32)) -> i8 {
    let n = values.len() as i64;
    let (m, e) = quantize_multiplier(f64::from(q_in.0) / f64::from(q_out.0));
    let mut log2 = 0;
    while (2i64 << log2) <= n {
        log2 += 1;
    }
    let k = log2.min(32).min(31 + e);
    let m2 = (i128::from(m) * (1i128 << k) / i128::from(n)) as i64;
    let sum: i64 = values
        .iter()
        .map(|&v| i64::from(v) - i64::from(q_in.1))
        .sum();
    let v = model_rdbpot(model_srdhm(sum << (e - k).max(0), m2), k - e) + i64::from(q_out.1);
    v.clamp(-128, 127) as i8
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn mean_matches_model(
        (h, w, c, input) in (1usize..=9, 1usize..=9, 1usize..=5)
            .prop_flat_map(|(h, w, c)| (Just(h), Just(w), Just(c), vec(any::<i8>(), h * w * c))),
        q_in in quant(), q_out in quant(),
    ) {
        let p = MeanParams::new(q_in, q_out, h * w).unwrap();
        let mut got = vec![0i8; c];
        kernels::mean_hw(&input, Shape::new(h, w, c), &p, &mut got).unwrap();
        for (ch, &out) in got.iter().enumerate() {
            let values: Vec<i8> = input.iter().skip(ch).step_by(c).copied().collect();
            prop_assert_eq!(out, model_mean(&values, q_in, q_out), "channel {}", ch);
            let mean = values.iter().map(|&v| f64::from(v) - f64::from(q_in.1)).sum::<f64>()
                / values.len() as f64;
            let ideal = mean * f64::from(q_in.0) / f64::from(q_out.0) + f64::from(q_out.1);
            if ideal > -128.0 && ideal < 127.0 {
                prop_assert!((f64::from(out) - ideal).abs() <= 1.0, "{} vs {}", out, ideal);
            }
        }
    }
}

// ------------------------------------------------------------------ pad

fn dims4(max: usize) -> impl Strategy<Value = [usize; 4]> {
    (1usize..=2, 1..=max, 1..=max, 1..=max).prop_map(|(n, h, w, c)| [n, h, w, c])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn pad_matches_model(
        (dims, input) in dims4(4).prop_flat_map(|d| (Just(d), fill(d))),
        pads in vec((0usize..3, 0usize..3), 4),
        value in any::<i8>(),
    ) {
        let mut paddings = [[0usize; 2]; 4];
        for (p, &(a, b)) in paddings.iter_mut().zip(&pads) {
            *p = [a, b];
        }
        let out_dims = kernels::padded_dims(&dims, &paddings).unwrap();
        let mut got = vec![0i8; out_dims.iter().product()];
        kernels::pad(&input, &dims, &paddings, value, &mut got, &out_dims).unwrap();
        // Naive: every output coordinate either maps back into the input or is padding.
        let mut k = 0;
        for n in 0..out_dims[0] {
            for h in 0..out_dims[1] {
                for w in 0..out_dims[2] {
                    for c in 0..out_dims[3] {
                        let at = [n, h, w, c];
                        let inside: Option<Vec<usize>> = (0..4)
                            .map(|a| at[a].checked_sub(paddings[a][0]).filter(|&i| i < dims[a]))
                            .collect();
                        let want = match inside {
                            Some(i) => {
                                input[((i[0] * dims[1] + i[1]) * dims[2] + i[2]) * dims[3] + i[3]]
                            }
                            None => value,
                        };
                        prop_assert_eq!(got[k], want, "at {:?}", at);
                        k += 1;
                    }
                }
            }
        }
    }

    #[test]
    fn concatenation_matches_model(
        base in dims4(3),
        axis in 0usize..4,
        extents in vec(1usize..=3, 1..=4),
        seed in any::<u64>(),
    ) {
        let dims: Vec<[usize; 4]> = extents
            .iter()
            .map(|&e| {
                let mut d = base;
                d[axis] = e;
                d
            })
            .collect();
        let mut s = seed;
        let data: Vec<Vec<i8>> = dims
            .iter()
            .map(|d| {
                (0..d.iter().product::<usize>())
                    .map(|_| {
                        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        (s >> 56) as i8
                    })
                    .collect()
            })
            .collect();
        let mut out_dims = base;
        out_dims[axis] = extents.iter().sum();
        let refs: Vec<&[i8]> = data.iter().map(Vec::as_slice).collect();
        let mut got = vec![0i8; out_dims.iter().product()];
        kernels::concatenation(&refs, &dims, axis, &mut got, &out_dims).unwrap();
        // Naive: the output coordinate along `axis` picks the input and its own coordinate.
        let mut k = 0;
        for n in 0..out_dims[0] {
            for h in 0..out_dims[1] {
                for w in 0..out_dims[2] {
                    for c in 0..out_dims[3] {
                        let mut at = [n, h, w, c];
                        let mut input = 0;
                        while at[axis] >= dims[input][axis] {
                            at[axis] -= dims[input][axis];
                            input += 1;
                        }
                        let d = dims[input];
                        let flat = ((at[0] * d[1] + at[1]) * d[2] + at[2]) * d[3] + at[3];
                        let want = data[input][flat];
                        prop_assert_eq!(got[k], want);
                        k += 1;
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------ quantize / dequantize

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn requantize_matches_model(
        values in vec(any::<i8>(), 1..40), q_in in quant(), q_out in quant(),
    ) {
        let p = RequantizeParams::new(q_in, q_out).unwrap();
        let mut got = vec![0i8; values.len()];
        kernels::requantize(&values, &p, &mut got).unwrap();
        for (&q, &out) in values.iter().zip(&got) {
            let centred = i64::from(q) - i64::from(q_in.1);
            let want = (model_rescale(centred, f64::from(q_in.0) / f64::from(q_out.0))
                + i64::from(q_out.1))
            .clamp(-128, 127) as i8;
            prop_assert_eq!(out, want);
            let ratio = f64::from(q_in.0) / f64::from(q_out.0);
            let ideal = centred as f64 * ratio + f64::from(q_out.1);
            if ideal > -128.0 && ideal < 127.0 {
                prop_assert!((f64::from(out) - ideal).abs() <= 1.0);
            }
        }
    }

    #[test]
    fn quantize_and_dequantize_round_trip(
        values in vec(any::<i8>(), 1..40), q in quant(), x in -300f32..300.0,
    ) {
        // Every int8 value survives dequantize → quantize.
        let mut real = vec![0f32; values.len()];
        kernels::dequantize(&values, q.0, q.1, &mut real).unwrap();
        let mut back = vec![0i8; values.len()];
        kernels::quantize(&real, q.0, q.1, &mut back).unwrap();
        prop_assert_eq!(&back, &values);
        for (&v, &r) in values.iter().zip(&real) {
            prop_assert_eq!(r, (i32::from(v) - q.1) as f32 * q.0);
        }
        // A real value lands within half a step (plus float error) unless clamped.
        let mut one = [0i8; 1];
        kernels::quantize(&[x], q.0, q.1, &mut one).unwrap();
        prop_assert_eq!(one[0], quantize_f32(x, q.0, q.1));
        let ideal = f64::from(x) / f64::from(q.0) + f64::from(q.1);
        if ideal > -128.0 && ideal < 127.0 {
            prop_assert!((f64::from(one[0]) - ideal).abs() <= 0.5 + 1e-5);
        }
    }
}
