//! The exactness harness of the optimized kernels (`fixnet::kernels::fast`): each one against
//! its reference twin, byte for byte, over random shapes, paddings, strides, quantization
//! parameters (zero points, multipliers with negative and positive shifts, clamps) and data.
//!
//! On the host this runs the portable inner products; the Armv7E-M assembly is checked end to
//! end in QEMU (`tools/tests/qemu_bench.rs` compares the firmware's output checksum with the
//! host interpreter's).

use fixnet::kernels::fast::{self, FcRequant, PoolWindow};
use fixnet::kernels::{self, FloatRequantize, Requantize};
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

/// A real multiplier between 2^-14 and 4: mostly negative shifts, some positive ones (which
/// the fused kernel must requantize per pixel).
fn scale() -> impl Strategy<Value = f64> {
    (1.0f64..2.0, -14i32..=1).prop_map(|(m, e)| m * 2f64.powi(e))
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

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (
        (1usize..=9, 1usize..=9, 1usize..=9),
        (
            1usize..=4,
            1usize..=4,
            1usize..=2,
            1usize..=2,
            any::<bool>(),
        ),
        1usize..=9,
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
            |((h, w, c), (kh, kw, sh, sw, same), oc, (pooled, pk, pstride, pk2, psame))| {
                let input_shape = Shape::new(h, w, c);
                let padding = if same { Padding::Same } else { Padding::Valid };
                let (window, oh, ow) = Window::new(padding, input_shape, kh, kw, sh, sw).ok()?;
                if oh == 0 || ow == 0 {
                    return None;
                }
                let conv_shape = Shape::new(oh, ow, oc);
                let pool = if pooled {
                    let pp = if psame { Padding::Same } else { Padding::Valid };
                    let (pw, poh, pow) =
                        Window::new(pp, conv_shape, pk, pk2, pstride, pstride).ok()?;
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
        .prop_flat_map(|(input_shape, window, conv_shape, pool)| {
            let taps = window.kernel_h * window.kernel_w * input_shape.channels;
            let oc = conv_shape.channels;
            (
                vec(any::<i8>(), input_shape.len()),
                vec(any::<i8>(), oc * taps),
                prop_oneof![Just(vec![]), vec(-5000i32..5000, oc)],
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

fn run_conv_case(t: &ConvCase) -> Result<(), TestCaseError> {
    let (m, s): (Vec<i32>, Vec<i32>) = t.scales.iter().map(|&x| quantize_multiplier(x)).unzip();
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
    fast::conv2d_pool(
        &t.input,
        t.input_shape,
        &t.filter,
        &t.bias,
        &t.window,
        &q,
        pool.as_ref(),
        &mut got,
        out_shape,
    )
    .unwrap();
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn fused_conv_pool_equals_conv_then_pool(t in conv_case()) {
        run_conv_case(&t)?;
    }

    #[test]
    fn fast_fully_connected_equals_reference(
        (n_in, n_out) in (1usize..=40, 1usize..=11),
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
            (0..n_out).map(|_| (next() % 20001) as i32 - 10000).collect()
        } else {
            vec![]
        };
        let scales: Vec<f64> = (0..n_out).map(|o| sc * (1.0 + o as f64 / 7.0)).collect();
        let (m, sh): (Vec<i32>, Vec<i32>) = scales.iter().map(|&x| quantize_multiplier(x)).unzip();
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
        let mut got = vec![0i8; n_out];
        fast::fully_connected(&input, &filter, &bias, FcRequant::Fixed(&q), &mut got).unwrap();
        prop_assert_eq!(&got, &want);

        let fq = FloatRequantize {
            input_offset: -input_zp,
            output_offset: output_zp,
            scales: &scales,
            act_min: act.0,
            act_max: act.1,
        };
        kernels::fully_connected_float_requant(&input, &filter, &bias, &fq, &mut want).unwrap();
        fast::fully_connected(&input, &filter, &bias, FcRequant::Float(&fq), &mut got).unwrap();
        prop_assert_eq!(&got, &want);
    }
}

/// The seed CNN's shapes (28×28×1 → 3×3×32 → pool 2, 13×13×32 → 3×3×64 → pool 2), where the
/// pool drops the last row and column of an odd-sized convolution output.
#[test]
fn seed_cnn_shapes() {
    let mut s = 0x1234_5678_u32;
    let mut next = || {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (s >> 24) as i8
    };
    for (h, c, oc) in [(28usize, 1usize, 32usize), (13, 32, 64)] {
        let input_shape = Shape::new(h, h, c);
        let (window, oh, ow) = Window::new(Padding::Valid, input_shape, 3, 3, 1, 1).unwrap();
        let conv_shape = Shape::new(oh, ow, oc);
        let (pw, poh, pow) = Window::new(Padding::Valid, conv_shape, 2, 2, 2, 2).unwrap();
        let t = ConvCase {
            input_shape,
            window,
            conv_shape,
            pool: Some((pw, Shape::new(poh, pow, oc), (-128, 127))),
            input: (0..input_shape.len()).map(|_| next()).collect(),
            filter: (0..oc * 9 * c).map(|_| next()).collect(),
            bias: (0..oc).map(|i| i as i32 * 97 - 3000).collect(),
            scales: (0..oc).map(|i| 0.0007 + i as f64 * 1e-5).collect(),
            input_zp: -128,
            output_zp: -128,
            act: (-128, 127),
        };
        run_conv_case(&t).unwrap();
    }
}
