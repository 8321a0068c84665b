//! Exactness of the fast fully connected, ADD and MEAN paths and of the fast f64 rescale, each
//! against its reference over random cases: the optimized FC against TFLite's two reference
//! FC kernels (wide layers included), `rescale_fast` against the exact `rescale` (which the
//! core's unit tests check against the libm double product), ADD's 32-bit operand rescaling
//! against TFLite's `AddFunc` arithmetic (`AddParams::add`), and MEAN against a plain sum per
//! channel.
//!
//! On the host the FC runs its portable inner product; the Armv7E-M assembly is checked end to
//! end in QEMU (`tools/tests/qemu_bench.rs`).

use fixnet::float::Activation;
use fixnet::kernels::f64_rescale::{rescale, rescale_fast};
use fixnet::kernels::fast::{self, FcRequant};
use fixnet::kernels::{self, AddParams, FloatRequantize, MeanParams, Requantize};
use fixnet::quant::quantize_multiplier;
use fixnet::Shape;
use proptest::prelude::*;

/// xorshift64 stream from a proptest seed (the data of a case, cheaper than shrinking vectors).
fn stream(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

fn act_range() -> impl Strategy<Value = (i8, i8)> {
    prop_oneof![
        Just((-128i8, 127i8)),
        (any::<i8>(), any::<i8>()).prop_map(|(a, b)| (a.min(b), a.max(b))),
    ]
}

/// An effective FC scale: mostly what real layers have (2^-16 .. 2^-4 with a full
/// significand), some with a significand of a few bits nudged by an ulp (products on or next to
/// exact halves), and some far outside (the exact routine's fallback).
fn fc_scale() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => (1.0f64..2.0, -16i32..=-4).prop_map(|(m, e)| m * 2f64.powi(e)),
        2 => (0u64..16, -14i32..=-2, -1i64..=1).prop_map(|(few, e, nudge)| {
            let s = (1.0 + few as f64 / 16.0) * 2f64.powi(e);
            f64::from_bits(s.to_bits().wrapping_add_signed(nudge))
        }),
        1 => prop_oneof![
            Just(0.0),
            Just(f64::from_bits(1)),
            (-60i32..40).prop_map(|e| 1.25 * 2f64.powi(e)),
        ],
    ]
}

#[derive(Debug, Clone)]
struct FcCase {
    n_in: usize,
    n_out: usize,
    seed: u64,
    input_zp: i32,
    output_zp: i32,
    act: (i8, i8),
    with_bias: bool,
    scales: Vec<f64>,
}

fn fc_case() -> impl Strategy<Value = FcCase> {
    (
        prop_oneof![
            4 => 1usize..=48,
            2 => 48usize..=300,
            1 => prop_oneof![Just(640usize), Just(1600), 1500usize..=1700],
        ],
        1usize..=21,
    )
        .prop_flat_map(|(n_in, n_out)| {
            (
                Just(n_in),
                Just(n_out),
                any::<u64>(),
                -128i32..=127,
                -128i32..=127,
                act_range(),
                any::<bool>(),
                proptest::collection::vec(fc_scale(), n_out),
            )
        })
        .prop_map(
            |(n_in, n_out, seed, input_zp, output_zp, act, with_bias, scales)| FcCase {
                n_in,
                n_out,
                seed,
                input_zp,
                output_zp,
                act,
                with_bias,
                scales,
            },
        )
}

fn run_fc_case(t: &FcCase) -> Result<(), TestCaseError> {
    let mut next = stream(t.seed);
    let input: Vec<i8> = (0..t.n_in).map(|_| next() as i8).collect();
    let filter: Vec<i8> = (0..t.n_in * t.n_out).map(|_| next() as i8).collect();
    let bias: Vec<i32> = if t.with_bias {
        (0..t.n_out)
            .map(|_| (next() % 200_001) as i32 - 100_000)
            .collect()
    } else {
        vec![]
    };
    let (m, sh): (Vec<i32>, Vec<i32>) = t.scales.iter().map(|&x| quantize_multiplier(x)).unzip();
    let q = Requantize {
        input_offset: -t.input_zp,
        output_offset: t.output_zp,
        multipliers: &m,
        shifts: &sh,
        act_min: t.act.0,
        act_max: t.act.1,
    };
    let mut want = vec![0i8; t.n_out];
    kernels::fully_connected(&input, &filter, &bias, &q, &mut want).unwrap();
    let mut got = vec![0x55i8; t.n_out];
    fast::fully_connected(&input, &filter, &bias, FcRequant::Fixed(&q), &mut got).unwrap();
    prop_assert_eq!(&got, &want, "Q31 requantization");

    let fq = FloatRequantize {
        input_offset: -t.input_zp,
        output_offset: t.output_zp,
        scales: &t.scales,
        act_min: t.act.0,
        act_max: t.act.1,
    };
    kernels::fully_connected_float_requant(&input, &filter, &bias, &fq, &mut want).unwrap();
    got.fill(0x55);
    fast::fully_connected(&input, &filter, &bias, FcRequant::Float(&fq), &mut got).unwrap();
    prop_assert_eq!(&got, &want, "f64 requantization");
    Ok(())
}

/// A scale of any bit pattern half the time, else a layer-like one with a few-bit or full
/// significand, possibly nudged by a few ulps.
fn any_scale(next: &mut impl FnMut() -> u64) -> f64 {
    let bits = next();
    let sign = bits & 1 << 63;
    let exponent = (1023 - 50 + next() % 80) << 52;
    let b = match bits % 4 {
        0 => next(),
        1 => sign | exponent | (next() & ((1 << 52) - 1)),
        _ => {
            let width = next() % 14;
            let few = (next() & ((1 << width) - 1)) << (52 - width);
            (sign | exponent | few).wrapping_add_signed((next() % 9) as i64 - 4)
        }
    };
    f64::from_bits(b)
}

#[derive(Debug, Clone)]
struct AddCase {
    params: AddParams,
    dims: ([usize; 4], [usize; 4], [usize; 4]),
    seed: u64,
}

fn real_scale() -> impl Strategy<Value = f32> {
    (1.0f32..2.0, -12i32..=2).prop_map(|(m, e)| m * 2f32.powi(e))
}

/// ADD parameters from TFLite's Prepare on random quantizations, or raw random multipliers and
/// shifts (the fast path's whole accepted range and beyond it).
fn add_params() -> impl Strategy<Value = AddParams> {
    let activation = prop_oneof![
        Just(Activation::None),
        Just(Activation::Relu),
        Just(Activation::Relu6)
    ];
    let prepared = (
        (real_scale(), -128i32..=127),
        (real_scale(), -128i32..=127),
        (real_scale(), -128i32..=127),
        activation,
    )
        .prop_filter_map("TFLite accepts", |(a, b, o, act)| {
            AddParams::new(a, b, o, act).ok()
        });
    let raw = (
        (-128i32..=128, -128i32..=128, -128i32..=127),
        prop_oneof![4 => Just(20i32), 1 => 0i32..=31],
        (any::<i32>(), -33i32..=1, any::<i32>(), -33i32..=1),
        (any::<i32>(), -40i32..=0),
        act_range(),
    )
        .prop_map(
            |((o1, o2, oo), left_shift, (m1, s1, m2, s2), (mo, so), (lo, hi))| AddParams {
                input1_offset: o1,
                input2_offset: o2,
                output_offset: oo,
                left_shift,
                input1_multiplier: m1,
                input1_shift: s1,
                input2_multiplier: m2,
                input2_shift: s2,
                output_multiplier: mo,
                output_shift: so,
                act_min: lo,
                act_max: hi,
            },
        );
    prop_oneof![3 => prepared, 1 => raw]
}

fn add_case() -> impl Strategy<Value = AddCase> {
    let dims = (1usize..=2, 1usize..=6, 1usize..=6, 1usize..=9);
    (
        add_params(),
        dims,
        any::<[bool; 8]>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(params, (n, h, w, c), ones, seed, same)| {
            let out = [n, h, w, c];
            let pick = |mask: &[bool]| {
                let mut d = out;
                if !same {
                    for (x, &one) in d.iter_mut().zip(mask) {
                        if one {
                            *x = 1;
                        }
                    }
                }
                d
            };
            let (a, b) = (pick(&ones[..4]), pick(&ones[4..]));
            let out = fixnet::kernels::broadcast::broadcast_shape(&a, &b).unwrap();
            AddCase {
                params,
                dims: (a, b, out),
                seed,
            }
        })
}

fn count(d: &[usize; 4]) -> usize {
    d.iter().product()
}

fn run_add_case(t: &AddCase) -> Result<(), TestCaseError> {
    let mut next = stream(t.seed);
    let (ad, bd, od) = t.dims;
    let a: Vec<i8> = (0..count(&ad)).map(|_| next() as i8).collect();
    let b: Vec<i8> = (0..count(&bd)).map(|_| next() as i8).collect();
    // The reference: TFLite's loop order, one AddFunc per element.
    let mut want = Vec::with_capacity(count(&od));
    for i0 in 0..od[0] {
        for i1 in 0..od[1] {
            for i2 in 0..od[2] {
                for i3 in 0..od[3] {
                    // Row-major index into an operand, 0 along its broadcast axes.
                    let at = |d: &[usize; 4]| {
                        let idx = [i0, i1, i2, i3];
                        d.iter()
                            .zip(idx)
                            .fold(0, |flat, (&e, i)| flat * e + if e == 1 { 0 } else { i })
                    };
                    want.push(t.params.add(a[at(&ad)], b[at(&bd)]));
                }
            }
        }
    }
    let mut got = vec![0x55i8; count(&od)];
    kernels::broadcast_add(&a, &ad, &b, &bd, &t.params, &mut got, &od).unwrap();
    prop_assert_eq!(&got, &want);
    if ad == bd {
        got.fill(0x55);
        kernels::add(&a, &b, &t.params, &mut got).unwrap();
        prop_assert_eq!(&got, &want);
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct MeanCase {
    shape: Shape,
    input_q: (f32, i32),
    output_q: (f32, i32),
    seed: u64,
}

fn mean_case() -> impl Strategy<Value = MeanCase> {
    (
        (1usize..=12, 1usize..=12, 1usize..=40),
        (real_scale(), -128i32..=127),
        (real_scale(), -128i32..=127),
        any::<u64>(),
    )
        .prop_map(|((h, w, c), input_q, output_q, seed)| MeanCase {
            shape: Shape::new(h, w, c),
            input_q,
            output_q,
            seed,
        })
}

fn run_mean_case(t: &MeanCase) -> Result<(), TestCaseError> {
    let mut next = stream(t.seed);
    let input: Vec<i8> = (0..t.shape.len()).map(|_| next() as i8).collect();
    let n = t.shape.height * t.shape.width;
    let params = MeanParams::new(t.input_q, t.output_q, n).unwrap();
    let c = t.shape.channels;
    let want: Vec<i8> = (0..c)
        .map(|ch| {
            let sum: i32 = (0..n).map(|p| i32::from(input[p * c + ch])).sum();
            params.apply(sum)
        })
        .collect();
    let mut got = vec![0x55i8; c];
    kernels::mean_hw(&input, t.shape, &params, &mut got).unwrap();
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1200))]

    #[test]
    fn fast_fully_connected_equals_both_references(t in fc_case()) {
        run_fc_case(&t)?;
    }

    #[test]
    fn rescale_fast_equals_rescale(seed in any::<u64>()) {
        // 2,000 pairs a case: 2.4 million in all, on top of the core's unit tests.
        let mut next = stream(seed);
        for _ in 0..2_000 {
            let s = any_scale(&mut next);
            let a = match next() % 8 {
                0 => [0, 1, -1, i32::MAX, i32::MIN][(next() % 5) as usize],
                _ => next() as i32 >> (next() % 32),
            };
            prop_assert_eq!(rescale_fast(a, s), rescale(a, s), "acc {} scale {:#x}", a, s.to_bits());
        }
    }

    #[test]
    fn add_equals_tflite_add_func(t in add_case()) {
        run_add_case(&t)?;
    }

    #[test]
    fn mean_equals_a_sum_per_channel(t in mean_case()) {
        run_mean_case(&t)?;
    }
}

/// The MLPerf anomaly-detection autoencoder's layer widths (640-128-…-8-…-640) with the f64
/// requantization LiteRT's reference kernel uses, on several random inputs each.
#[test]
fn autoencoder_shapes() {
    let widths = [640usize, 128, 128, 128, 128, 8, 128, 128, 128, 128, 640];
    let mut next = stream(0xad01);
    for pair in widths.windows(2) {
        let (n_in, n_out) = (pair[0], pair[1]);
        for _ in 0..4 {
            let scales = (0..n_out)
                .map(|_| (1.0 + (next() % 1000) as f64 / 1000.0) * 2f64.powi(-10))
                .collect();
            let t = FcCase {
                n_in,
                n_out,
                seed: next(),
                input_zp: (next() % 256) as i32 - 128,
                output_zp: (next() % 256) as i32 - 128,
                act: (-128, 127),
                with_bias: true,
                scales,
            };
            run_fc_case(&t).unwrap();
        }
    }
}
