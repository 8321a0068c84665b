//! The exactness harness of the host AVX2 kernels (`fixnet::kernels::host`, feature
//! `host-simd`): each one against the reference kernel, byte for byte, over random shapes,
//! paddings, strides, pools, quantization parameters and data (1,000 cases per kernel), plus
//! the errors of malformed calls, which the AVX2 kernels leave to the portable ones.
//!
//! Run with `cargo test -p fixnet --release --features host-simd --test kernels_host_simd`; on
//! a CPU without AVX2 the kernels decline every call and the test says so and passes.
#![cfg(all(feature = "host-simd", target_arch = "x86_64"))]

use fixnet::kernels::fast::{FcRequant, PoolWindow};
use fixnet::kernels::{self, host, FloatRequantize, Requantize};
use fixnet::quant::quantize_multiplier;
use fixnet::{Padding, Shape, Window};
use proptest::collection::vec;
use proptest::prelude::*;

fn act_range() -> impl Strategy<Value = (i8, i8)> {
    prop_oneof![
        Just((-128i8, 127i8)),
        (any::<i8>(), any::<i8>()).prop_map(|(a, b)| (a.min(b), a.max(b))),
    ]
}

/// A real multiplier between 2^-14 and 4: mostly negative shifts, some positive ones.
fn scale() -> impl Strategy<Value = f64> {
    (1.0f64..2.0, -14i32..=1).prop_map(|(m, e)| m * 2f64.powi(e))
}

/// True when the kernels under test run here; otherwise each test checks only that they
/// decline.
fn simd() -> bool {
    if !host::avx2() {
        eprintln!("no AVX2 on this CPU: the host kernels decline every call");
    }
    host::avx2()
}

#[derive(Debug, Clone)]
struct ConvCase {
    input_shape: Shape,
    window: Window,
    conv_shape: Shape,
    pool: Option<(Window, Shape, (i8, i8))>,
    input: Vec<i8>,
    filter: Vec<i8>,
    bias: Vec<i32>,
    scales: Vec<f64>,
    input_zp: i32,
    output_zp: i32,
    act: (i8, i8),
}

/// Shapes up to 9×9 pixels, 40 input and 40 output channels: inner products of one to many
/// 16-value steps with a partial last one, channel counts around multiples of four.
fn conv_case(depthwise: bool) -> impl Strategy<Value = ConvCase> {
    (
        (1usize..=9, 1usize..=9, 1usize..=40),
        (
            1usize..=4,
            1usize..=4,
            1usize..=3,
            1usize..=3,
            any::<bool>(),
        ),
        1usize..=40,
        (
            any::<bool>(),
            1usize..=3,
            1usize..=3,
            1usize..=3,
            any::<bool>(),
        ),
    )
        .prop_filter_map(
            "window fits",
            move |((h, w, c), (kh, kw, sh, sw, same), oc, (pooled, pk, pk2, ps, psame))| {
                let input_shape = Shape::new(h, w, c);
                let padding = if same { Padding::Same } else { Padding::Valid };
                let (window, oh, ow) = Window::new(padding, input_shape, kh, kw, sh, sw).ok()?;
                if oh == 0 || ow == 0 {
                    return None;
                }
                let oc = if depthwise { c } else { oc };
                let conv_shape = Shape::new(oh, ow, oc);
                let pool = if pooled && !depthwise {
                    let pp = if psame { Padding::Same } else { Padding::Valid };
                    let (pw, poh, pow) = Window::new(pp, conv_shape, pk, pk2, ps, ps).ok()?;
                    if poh == 0 || pow == 0 {
                        return None;
                    }
                    Some((pw, Shape::new(poh, pow, oc), (0i8, 0i8)))
                } else {
                    None
                };
                Some((input_shape, window, conv_shape, pool))
            },
        )
        .prop_flat_map(move |(input_shape, window, conv_shape, pool)| {
            let oc = conv_shape.channels;
            let filter_len = if depthwise {
                window.kernel_h * window.kernel_w * oc
            } else {
                oc * window.kernel_h * window.kernel_w * input_shape.channels
            };
            (
                vec(any::<i8>(), input_shape.len()),
                vec(any::<i8>(), filter_len),
                prop_oneof![Just(vec![]), vec(-50_000i32..50_000, oc)],
                vec(scale(), oc),
                -128i32..=127,
                -128i32..=127,
                act_range(),
                act_range(),
            )
                .prop_map(
                    move |(input, filter, bias, scales, input_zp, output_zp, act, pact)| ConvCase {
                        input_shape,
                        window,
                        conv_shape,
                        pool: pool.map(|(w, s, _)| (w, s, pact)),
                        input,
                        filter,
                        bias,
                        scales,
                        input_zp,
                        output_zp,
                        act,
                    },
                )
        })
}

fn multipliers(scales: &[f64]) -> (Vec<i32>, Vec<i32>) {
    scales.iter().map(|&x| quantize_multiplier(x)).unzip()
}

fn run_conv_case(t: &ConvCase) -> Result<(), TestCaseError> {
    let (m, s) = multipliers(&t.scales);
    let q = Requantize {
        input_offset: -t.input_zp,
        output_offset: t.output_zp,
        multipliers: &m,
        shifts: &s,
        act_min: t.act.0,
        act_max: t.act.1,
    };
    // Reference: the convolution, then the pool.
    let mut conv = vec![0i8; t.conv_shape.len()];
    kernels::conv2d(
        &t.input,
        t.input_shape,
        &t.filter,
        &t.bias,
        &t.window,
        &q,
        &mut conv,
        t.conv_shape,
    )
    .unwrap();
    let (want, out_shape, pool) = match &t.pool {
        Some((pw, ps, pact)) => {
            let mut pooled = vec![0i8; ps.len()];
            kernels::max_pool(&conv, t.conv_shape, pw, pact.0, pact.1, &mut pooled, *ps).unwrap();
            let pool = PoolWindow {
                window: *pw,
                conv_shape: t.conv_shape,
                act_min: pact.0,
                act_max: pact.1,
            };
            (pooled, *ps, Some(pool))
        }
        None => (conv, t.conv_shape, None),
    };
    let mut got = vec![0x55u8 as i8; out_shape.len()];
    let done = host::conv2d_pool(
        &t.input,
        t.input_shape,
        &t.filter,
        &t.bias,
        &t.window,
        &q,
        pool.as_ref(),
        &mut got,
        out_shape,
    );
    if !simd() {
        prop_assert!(done.is_none());
        return Ok(());
    }
    prop_assert_eq!(done, Some(Ok(())));
    prop_assert_eq!(&got, &want);
    if pool.is_none() {
        let mut got = vec![0x55u8 as i8; out_shape.len()];
        let done = host::conv2d(
            &t.input,
            t.input_shape,
            &t.filter,
            &t.bias,
            &t.window,
            &q,
            &mut got,
            out_shape,
        );
        prop_assert_eq!(done, Some(Ok(())));
        prop_assert_eq!(&got, &want);
    }
    Ok(())
}

fn run_depthwise_case(t: &ConvCase) -> Result<(), TestCaseError> {
    let (m, s) = multipliers(&t.scales);
    let q = Requantize {
        input_offset: -t.input_zp,
        output_offset: t.output_zp,
        multipliers: &m,
        shifts: &s,
        act_min: t.act.0,
        act_max: t.act.1,
    };
    let mut want = vec![0i8; t.conv_shape.len()];
    kernels::depthwise_conv2d(
        &t.input,
        t.input_shape,
        &t.filter,
        &t.bias,
        &t.window,
        1,
        &q,
        &mut want,
        t.conv_shape,
    )
    .unwrap();
    let mut got = vec![0x55u8 as i8; t.conv_shape.len()];
    let done = host::depthwise_conv2d(
        &t.input,
        t.input_shape,
        &t.filter,
        &t.bias,
        &t.window,
        1,
        &q,
        &mut got,
        t.conv_shape,
    );
    if !simd() {
        prop_assert!(done.is_none());
        return Ok(());
    }
    prop_assert_eq!(done, Some(Ok(())));
    prop_assert_eq!(&got, &want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn conv_and_fused_pool_equal_reference(t in conv_case(false)) {
        run_conv_case(&t)?;
    }

    #[test]
    fn depthwise_equals_reference(t in conv_case(true)) {
        run_depthwise_case(&t)?;
    }

    #[test]
    fn fully_connected_equals_reference(
        (n_in, n_out) in (1usize..=300, 1usize..=19),
        seed in any::<u64>(),
        input_zp in -128i32..=127,
        output_zp in -128i32..=127,
        act in act_range(),
        with_bias in any::<bool>(),
        sc in scale(),
    ) {
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
        let input: Vec<i8> = (0..n_in).map(|_| next() as i8).collect();
        let filter: Vec<i8> = (0..n_in * n_out).map(|_| next() as i8).collect();
        let bias: Vec<i32> = if with_bias {
            (0..n_out).map(|_| (next() % 200_001) as i32 - 100_000).collect()
        } else {
            vec![]
        };
        let scales: Vec<f64> = (0..n_out).map(|o| sc * (1.0 + o as f64 / 7.0)).collect();
        let (m, sh) = multipliers(&scales);
        let q = Requantize {
            input_offset: -input_zp,
            output_offset: output_zp,
            multipliers: &m,
            shifts: &sh,
            act_min: act.0,
            act_max: act.1,
        };
        let mut want = vec![0i8; n_out];
        kernels::fully_connected(&input, &filter, &bias, &q, &mut want).unwrap();
        let mut got = vec![0x55u8 as i8; n_out];
        let done = host::fully_connected(&input, &filter, &bias, FcRequant::Fixed(&q), &mut got);
        if !simd() {
            prop_assert!(done.is_none());
            return Ok(());
        }
        prop_assert_eq!(done, Some(Ok(())));
        prop_assert_eq!(&got, &want);

        let fq = FloatRequantize {
            input_offset: -input_zp,
            output_offset: output_zp,
            scales: &scales,
            act_min: act.0,
            act_max: act.1,
        };
        kernels::fully_connected_float_requant(&input, &filter, &bias, &fq, &mut want).unwrap();
        let mut got = vec![0x55u8 as i8; n_out];
        let done = host::fully_connected(&input, &filter, &bias, FcRequant::Float(&fq), &mut got);
        prop_assert_eq!(done, Some(Ok(())));
        prop_assert_eq!(&got, &want);
    }
}

/// Accumulators that wrap: a wide filter of −128 weights over inputs at −128 + 128 offset
/// sums past 2^31, which the reference wraps and so must the lane sums.
#[test]
fn wrapping_accumulators_match() {
    if !simd() {
        return;
    }
    let n_in = host::MAX_INPUTS;
    let input = vec![127i8; n_in];
    let filter = vec![-128i8; 4 * n_in];
    let bias = vec![i32::MAX, i32::MIN, 7, -7];
    let (m, s) = multipliers(&[0.5, 0.25, 1.5, 3.0]);
    let q = Requantize {
        input_offset: 128,
        output_offset: 3,
        multipliers: &m,
        shifts: &s,
        act_min: -128,
        act_max: 127,
    };
    let mut want = [0i8; 4];
    kernels::fully_connected(&input, &filter, &bias, &q, &mut want).unwrap();
    let mut got = [0i8; 4];
    let done = host::fully_connected(&input, &filter, &bias, FcRequant::Fixed(&q), &mut got);
    assert_eq!(done, Some(Ok(())));
    assert_eq!(got, want);
}

/// The kernels decline what they cannot take or what is malformed, so that the portable
/// kernel runs and reports the error: a length mismatch, a depth multiplier above 1, a filter
/// beyond the patch buffers.
#[test]
fn declines_malformed_and_oversized_calls() {
    let shape = Shape::new(4, 4, 2);
    let (window, oh, ow) = Window::new(Padding::Valid, shape, 3, 3, 1, 1).unwrap();
    let out_shape = Shape::new(oh, ow, 3);
    let (m, s) = (vec![1 << 30; 3], vec![0; 3]);
    let q = Requantize {
        input_offset: 0,
        output_offset: 0,
        multipliers: &m,
        shifts: &s,
        act_min: -128,
        act_max: 127,
    };
    let input = vec![1i8; shape.len()];
    let mut out = vec![0i8; out_shape.len()];
    let short_filter = vec![1i8; 3 * 18 - 1];
    let declined = host::conv2d(
        &input,
        shape,
        &short_filter,
        &[],
        &window,
        &q,
        &mut out,
        out_shape,
    );
    assert!(declined.is_none());
    let short_output = &mut out[1..];
    let filter = vec![1i8; 3 * 18];
    let declined = host::conv2d(
        &input,
        shape,
        &filter,
        &[],
        &window,
        &q,
        short_output,
        out_shape,
    );
    assert!(declined.is_none());
    let dw_shape = Shape::new(oh, ow, 4);
    let mut dw_out = vec![0i8; dw_shape.len()];
    let (m4, s4) = (vec![1 << 30; 4], vec![0; 4]);
    let q4 = Requantize {
        multipliers: &m4,
        shifts: &s4,
        ..q
    };
    let declined = host::depthwise_conv2d(
        &input,
        shape,
        &[1i8; 36],
        &[],
        &window,
        2,
        &q4,
        &mut dw_out,
        dw_shape,
    );
    assert!(declined.is_none());
    let (m1, s1) = (vec![1 << 30], vec![0]);
    let q1 = Requantize {
        multipliers: &m1,
        shifts: &s1,
        ..q
    };
    let wide = Shape::new(1, 1, host::MAX_TAPS + 1);
    let (unit, _, _) = Window::new(Padding::Valid, wide, 1, 1, 1, 1).unwrap();
    let declined = host::conv2d(
        &vec![0i8; wide.len()],
        wide,
        &vec![0i8; host::MAX_TAPS + 1],
        &[],
        &unit,
        &q1,
        &mut [0i8; 1],
        Shape::new(1, 1, 1),
    );
    assert!(declined.is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// The eight-lane requantization over the whole range the reference defines: any Q31
    /// multiplier (i32::MIN included, whose square saturates), shifts from −31 to 31, and
    /// accumulators anywhere in i32 (a 1×1 depthwise filter plus extreme biases).
    #[test]
    fn requantization_extremes_match(
        c in 8usize..=24,
        seed in any::<u64>(),
        input_zp in -128i32..=127,
        output_zp in -128i32..=127,
        act in act_range(),
    ) {
        let mut s = seed | 1;
        let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s };
        let pick = |r: u64, v: [i32; 4], other: i32| match r % 8 { 0..=3 => v[(r % 4) as usize], _ => other };
        let shape = Shape::new(2, 3, c);
        let (window, oh, ow) = Window::new(Padding::Valid, shape, 1, 1, 1, 1).unwrap();
        let out_shape = Shape::new(oh, ow, c);
        let input: Vec<i8> = (0..shape.len()).map(|_| next() as i8).collect();
        let filter: Vec<i8> = (0..c).map(|_| next() as i8).collect();
        let bias: Vec<i32> = (0..c)
            .map(|_| { let (r, v) = (next(), next() as i32); pick(r, [i32::MIN, i32::MAX, 0, -1], v) })
            .collect();
        let m: Vec<i32> = (0..c)
            .map(|_| { let (r, v) = (next(), next() as i32); pick(r, [i32::MIN, i32::MAX, 1 << 30, -(1 << 30)], v) })
            .collect();
        let sh: Vec<i32> = (0..c).map(|_| (next() % 63) as i32 - 31).collect();
        let q = Requantize {
            input_offset: -input_zp,
            output_offset: output_zp,
            multipliers: &m,
            shifts: &sh,
            act_min: act.0,
            act_max: act.1,
        };
        let mut want = vec![0i8; out_shape.len()];
        kernels::depthwise_conv2d(&input, shape, &filter, &bias, &window, 1, &q, &mut want, out_shape)
            .unwrap();
        let mut got = vec![0x55u8 as i8; out_shape.len()];
        let done =
            host::depthwise_conv2d(&input, shape, &filter, &bias, &window, 1, &q, &mut got, out_shape);
        if !simd() {
            prop_assert!(done.is_none());
            return Ok(());
        }
        prop_assert_eq!(done, Some(Ok(())));
        prop_assert_eq!(&got, &want);
    }
}
