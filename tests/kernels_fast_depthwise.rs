//! The exactness harness of the optimized depthwise convolution and average pool
//! (`fixnet::kernels::fast::{depthwise_conv2d, avg_pool}`): each against its reference
//! twin, byte for byte (and error for error), over random shapes (odd channel counts,
//! non-square kernels 1–5, strides 1–3, SAME and VALID, depth multipliers 1–2, layers
//! tall enough to be swept transposed or split into strips), zero points, per-channel
//! multipliers with negative and positive shifts, biases and clamps.
//!
//! On the host this runs the portable sweep; the Armv7E-M assembly (`dw3x3`) is checked end
//! to end in QEMU (`fixnet bench --qemu` compares every output's checksum with the host's).

use fixnet::kernels::fast;
use fixnet::kernels::{self, Requantize};
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

/// A real multiplier between 2^-16 and 8: mostly negative shifts, some zero and positive.
fn scale() -> impl Strategy<Value = f64> {
    (1.0f64..2.0, -16i32..=2).prop_map(|(m, e)| m * 2f64.powi(e))
}

#[derive(Debug, Clone)]
struct Case {
    input_shape: Shape,
    window: Window,
    multiplier: usize,
    output_shape: Shape,
    input: Vec<i8>,
    filter: Vec<i8>,
    bias: Vec<i32>,
    scales: Vec<f64>,
    input_zp: i32,
    output_zp: i32,
    act: (i8, i8),
}

/// `dims`: the largest height and width; `channels`: the largest input channel count.
fn case(dims: usize, channels: usize) -> impl Strategy<Value = Case> {
    (
        (1usize..=dims, 1usize..=dims, 1usize..=channels),
        (
            1usize..=5,
            1usize..=5,
            1usize..=3,
            1usize..=3,
            any::<bool>(),
        ),
        1usize..=2,
    )
        .prop_filter_map(
            "window fits",
            |((h, w, c), (kh, kw, sh, sw, same), multiplier)| {
                let input_shape = Shape::new(h, w, c);
                let padding = if same { Padding::Same } else { Padding::Valid };
                let (window, oh, ow) = Window::new(padding, input_shape, kh, kw, sh, sw).ok()?;
                (oh > 0 && ow > 0).then_some((
                    input_shape,
                    window,
                    multiplier,
                    Shape::new(oh, ow, c * multiplier),
                ))
            },
        )
        .prop_flat_map(|(input_shape, window, multiplier, output_shape)| {
            let oc = output_shape.channels;
            let taps = window.kernel_h * window.kernel_w;
            (
                vec(any::<i8>(), input_shape.len()),
                vec(any::<i8>(), taps * oc),
                prop_oneof![
                    Just(vec![]),
                    vec(-20_000i32..20_000, oc),
                    // Now and then biases too large for the fast requantization.
                    vec(any::<i32>(), oc),
                ],
                vec(scale(), oc),
                -128i32..=127,
                -128i32..=127,
                act_range(),
            )
                .prop_map(
                    move |(input, filter, bias, scales, input_zp, output_zp, act)| Case {
                        input_shape,
                        window,
                        multiplier,
                        output_shape,
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

fn check(t: &Case) -> Result<(), TestCaseError> {
    let (m, s): (Vec<i32>, Vec<i32>) = t.scales.iter().map(|&x| quantize_multiplier(x)).unzip();
    let q = Requantize {
        input_offset: -t.input_zp,
        output_offset: t.output_zp,
        multipliers: &m,
        shifts: &s,
        act_min: t.act.0,
        act_max: t.act.1,
    };
    let mut want = vec![0x55u8 as i8; t.output_shape.len()];
    let want_r = kernels::depthwise_conv2d(
        &t.input,
        t.input_shape,
        &t.filter,
        &t.bias,
        &t.window,
        t.multiplier,
        &q,
        &mut want,
        t.output_shape,
    );
    let mut got = vec![0x2au8 as i8; t.output_shape.len()];
    let got_r = fast::depthwise_conv2d(
        &t.input,
        t.input_shape,
        &t.filter,
        &t.bias,
        &t.window,
        t.multiplier,
        &q,
        &mut got,
        t.output_shape,
    );
    prop_assert_eq!(got_r, want_r);
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// Small layers: every kernel shape, stride and padding, transposed when taller than
    /// wide, one strip.
    #[test]
    fn depthwise_equals_reference(t in case(12, 9)) {
        check(&t)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Larger layers, swept in several strips.
    #[test]
    fn depthwise_in_strips_equals_reference(t in case(60, 3)) {
        check(&t)?;
    }

    #[test]
    fn avg_pool_equals_reference(
        (h, w, c) in (1usize..=12, 1usize..=12, 1usize..=20),
        (kh, kw, sh, sw, same) in (1usize..=6, 1usize..=6, 1usize..=3, 1usize..=3, any::<bool>()),
        seed in any::<u64>(),
        act in act_range(),
    ) {
        let input_shape = Shape::new(h, w, c);
        let padding = if same { Padding::Same } else { Padding::Valid };
        let Ok((window, oh, ow)) = Window::new(padding, input_shape, kh, kw, sh, sw) else {
            return Ok(());
        };
        let mut s = seed | 1;
        let input: Vec<i8> = (0..input_shape.len())
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as i8
            })
            .collect();
        let out_shape = Shape::new(oh, ow, c);
        let mut want = vec![0x55u8 as i8; out_shape.len()];
        let mut got = vec![0x2au8 as i8; out_shape.len()];
        let want_r = kernels::avg_pool(&input, input_shape, &window, act.0, act.1, &mut want, out_shape);
        let got_r = fast::avg_pool(&input, input_shape, &window, act.0, act.1, &mut got, out_shape);
        prop_assert_eq!(got_r, want_r);
        if want_r.is_ok() {
            prop_assert_eq!(got, want);
        }
    }
}

/// Deterministic random bytes.
fn bytes(n: usize, seed: u32) -> Vec<i8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s as i8
        })
        .collect()
}

/// The MLPerf Tiny layer shapes (keyword spotting's 25×5×64, visual wake words' strided and
/// wide ones) with the quantization their models use, and a global 25×5 average pool.
#[test]
fn mlperf_shapes_equal_reference() {
    let layers = [
        (25, 5, 64, 1, Padding::Same),
        (48, 48, 8, 1, Padding::Same),
        (48, 48, 16, 2, Padding::Same),
        (24, 24, 32, 1, Padding::Same),
        (12, 12, 64, 2, Padding::Same),
        (6, 6, 128, 1, Padding::Same),
        (3, 3, 256, 1, Padding::Same),
        (49, 10, 3, 2, Padding::Valid),
    ];
    for (i, &(h, w, c, stride, padding)) in layers.iter().enumerate() {
        let input_shape = Shape::new(h, w, c);
        let (window, oh, ow) = Window::new(padding, input_shape, 3, 3, stride, stride).unwrap();
        let out_shape = Shape::new(oh, ow, c);
        let seed = 7 + i as u32;
        let input = bytes(input_shape.len(), seed);
        let filter = bytes(9 * c, seed * 3);
        let bias: Vec<i32> = bytes(c, seed * 5)
            .iter()
            .map(|&b| i32::from(b) * 97)
            .collect();
        let (m, s): (Vec<i32>, Vec<i32>) = (0..c)
            .map(|k| quantize_multiplier(0.003 + 0.0007 * k as f64))
            .unzip();
        let q = Requantize {
            input_offset: 128,
            output_offset: -128,
            multipliers: &m,
            shifts: &s,
            act_min: -128,
            act_max: 127,
        };
        let mut want = vec![0i8; out_shape.len()];
        let mut got = vec![1i8; out_shape.len()];
        kernels::depthwise_conv2d(
            &input,
            input_shape,
            &filter,
            &bias,
            &window,
            1,
            &q,
            &mut want,
            out_shape,
        )
        .unwrap();
        fast::depthwise_conv2d(
            &input,
            input_shape,
            &filter,
            &bias,
            &window,
            1,
            &q,
            &mut got,
            out_shape,
        )
        .unwrap();
        assert_eq!(got, want, "layer {i}");
        // Not a constant output: the comparison means something.
        assert!(want.iter().any(|&v| v != want[0]), "layer {i}");
    }
    let input_shape = Shape::new(25, 5, 64);
    let (window, _, _) = Window::new(Padding::Valid, input_shape, 25, 5, 1, 1).unwrap();
    let input = bytes(input_shape.len(), 99);
    let out_shape = Shape::new(1, 1, 64);
    let (mut want, mut got) = (vec![0i8; 64], vec![1i8; 64]);
    kernels::avg_pool(
        &input,
        input_shape,
        &window,
        -128,
        127,
        &mut want,
        out_shape,
    )
    .unwrap();
    fast::avg_pool(&input, input_shape, &window, -128, 127, &mut got, out_shape).unwrap();
    assert_eq!(got, want);
}

/// Hand-worked: a 3×3 SAME layer on a 2×2 input, one channel, offset 1 (zero point −1),
/// all weights 1, multiplier 1/2 (`quantize_multiplier(0.5)` = (2^30, 0)).
/// Every output window covers the whole input: `Σ (x + 1) = (1+1)+(2+1)+(3+1)+(4+1) = 14`,
/// plus bias 2 = 16, times 1/2 = 8, plus the output zero point 3 = 11 everywhere.
#[test]
fn hand_worked_same_padding() {
    let input_shape = Shape::new(2, 2, 1);
    let (window, oh, ow) = Window::new(Padding::Same, input_shape, 3, 3, 1, 1).unwrap();
    assert_eq!((oh, ow), (2, 2));
    let (m, s) = quantize_multiplier(0.5);
    let q = Requantize {
        input_offset: 1,
        output_offset: 3,
        multipliers: &[m],
        shifts: &[s],
        act_min: -128,
        act_max: 127,
    };
    let mut out = [0i8; 4];
    fast::depthwise_conv2d(
        &[1, 2, 3, 4],
        input_shape,
        &[1; 9],
        &[2],
        &window,
        1,
        &q,
        &mut out,
        Shape::new(2, 2, 1),
    )
    .unwrap();
    assert_eq!(out, [11; 4]);
}
