//! Property tests: every int8 kernel against an independent wide-integer model of TFLite's
//! formula, on random small layers; and no kernel panics, whatever its arguments.
//!
//! The models below are deliberately naive — plain nested loops over output position, output
//! channel and filter tap, `i64`/`i128` arithmetic, and the rounding rules restated in their
//! simplest closed form instead of gemmlowp's bit tricks — so that a match is evidence, not a
//! tautology.

use fixnet::float;
use fixnet::kernels::{self, Requantize, SoftmaxParams};
use fixnet::quant::{
    dequantize_i8, multiply_by_quantized_multiplier, quantize_f32, quantize_multiplier,
    rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
};
use fixnet::{Error, Padding, Shape, Window};
use proptest::collection::vec;
use proptest::prelude::*;

// ------------------------------------------------------------------ reference arithmetic

/// SRDHM restated: `round(a·b / 2^31)` with ties toward +∞, i.e. `floor(a·b / 2^31 + 1/2)`,
/// saturating the one overflow (−1 · −1).
fn model_srdhm(a: i32, b: i32) -> i64 {
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

/// TFLite's requantization of an accumulator, from the real multiplier `scale`.
fn model_requant(acc: i64, scale: f64, output_zp: i32, act: (i8, i8)) -> i8 {
    let (m, shift) = quantize_multiplier(scale);
    let x = acc << shift.max(0);
    // The kernels compute in i32 like TFLite; the generated layers never overflow it.
    assert!(i32::try_from(x).is_ok(), "test layer overflows i32");
    let v = model_rdbpot(model_srdhm(x as i32, m), -shift) + i64::from(output_zp);
    v.clamp(i64::from(act.0), i64::from(act.1)) as i8
}

// ------------------------------------------------------------------ strategies

/// A real multiplier between 2^−16 and 4, as effective conv scales are.
fn scale() -> impl Strategy<Value = f64> {
    (1.0f64..2.0, -16i32..=1).prop_map(|(m, e)| m * 2f64.powi(e))
}

fn act_range() -> impl Strategy<Value = (i8, i8)> {
    prop_oneof![
        Just((-128i8, 127i8)),
        (any::<i8>(), any::<i8>()).prop_map(|(a, b)| (a.min(b), a.max(b))),
    ]
}

/// Input shape, window and output height/width: SAME, VALID, or an arbitrary hand-made window
/// (any padding, any output size — windows may then fall partly or wholly outside the input).
fn geometry(max_c: usize) -> impl Strategy<Value = (Shape, Window, usize, usize)> {
    (
        (1usize..=7, 1usize..=7, 1usize..=max_c),
        (1usize..=4, 1usize..=4, 1usize..=3, 1usize..=3),
        (0u8..3, 0usize..=4, 0usize..=4, 1usize..=5, 1usize..=5),
    )
        .prop_map(|((h, w, c), (kh, kw, sh, sw), (mode, pt, pl, oh, ow))| {
            let input = Shape::new(h, w, c);
            let padding = match mode {
                0 => Some(Padding::Same),
                1 if kh <= h && kw <= w => Some(Padding::Valid),
                1 => Some(Padding::Same),
                _ => None,
            };
            match padding {
                Some(p) => {
                    let (win, oh, ow) = Window::new(p, input, kh, kw, sh, sw).unwrap();
                    (input, win, oh, ow)
                }
                None => {
                    let win = Window {
                        kernel_h: kh,
                        kernel_w: kw,
                        stride_h: sh,
                        stride_w: sw,
                        pad_top: pt,
                        pad_left: pl,
                    };
                    (input, win, oh, ow)
                }
            }
        })
}

#[derive(Debug, Clone)]
struct Layer {
    input_shape: Shape,
    window: Window,
    output_shape: Shape,
    depth_multiplier: usize,
    input: Vec<i8>,
    filter: Vec<i8>,
    bias: Vec<i32>,
    scales: Vec<f64>,
    input_zp: i32,
    output_zp: i32,
    act: (i8, i8),
}

impl Layer {
    fn multipliers(&self) -> (Vec<i32>, Vec<i32>) {
        self.scales.iter().map(|&s| quantize_multiplier(s)).unzip()
    }

    fn run<R>(&self, f: impl FnOnce(&Requantize, &mut [i8]) -> R) -> (R, Vec<i8>) {
        let (m, s) = self.multipliers();
        let q = Requantize {
            input_offset: -self.input_zp,
            output_offset: self.output_zp,
            multipliers: &m,
            shifts: &s,
            act_min: self.act.0,
            act_max: self.act.1,
        };
        let mut out = vec![0i8; self.output_shape.len()];
        let r = f(&q, &mut out);
        (r, out)
    }

    fn input_at(&self, iy: i64, ix: i64, c: usize) -> Option<i64> {
        let s = self.input_shape;
        if iy < 0 || ix < 0 || iy >= s.height as i64 || ix >= s.width as i64 {
            return None;
        }
        let i = (iy as usize * s.width + ix as usize) * s.channels + c;
        Some(i64::from(self.input[i]))
    }

    /// Input coordinates of tap (ky, kx) of output (oy, ox).
    fn tap(&self, oy: usize, ox: usize, ky: usize, kx: usize) -> (i64, i64) {
        let w = &self.window;
        (
            (oy * w.stride_h + ky) as i64 - w.pad_top as i64,
            (ox * w.stride_w + kx) as i64 - w.pad_left as i64,
        )
    }
}

/// A layer whose filter has `taps_per_channel(window, in_c)` weights per output channel.
fn layer(max_c: usize, depthwise: bool) -> impl Strategy<Value = Layer> {
    (geometry(max_c), 1usize..=4, 1usize..=3, any::<bool>())
        .prop_flat_map(
            move |((input_shape, window, oh, ow), conv_out_c, dm, has_bias)| {
                let (out_c, dm) = if depthwise {
                    (input_shape.channels * dm, dm)
                } else {
                    (conv_out_c, 1)
                };
                let per_channel = window.kernel_h
                    * window.kernel_w
                    * if depthwise { 1 } else { input_shape.channels };
                (
                    Just((input_shape, window, Shape::new(oh, ow, out_c), dm)),
                    vec(any::<i8>(), input_shape.len()),
                    vec(any::<i8>(), out_c * per_channel),
                    vec(-(1i32 << 20)..(1 << 20), if has_bias { out_c } else { 0 }),
                    vec(scale(), out_c),
                    (-128i32..=127, -128i32..=127, act_range()),
                )
            },
        )
        .prop_map(
            |(
                (input_shape, window, output_shape, depth_multiplier),
                input,
                filter,
                bias,
                scales,
                (input_zp, output_zp, act),
            )| Layer {
                input_shape,
                window,
                output_shape,
                depth_multiplier,
                input,
                filter,
                bias,
                scales,
                input_zp,
                output_zp,
                act,
            },
        )
}

// ------------------------------------------------------------------ models

fn model_conv2d(l: &Layer) -> Vec<i8> {
    let (w, s) = (&l.window, l.input_shape);
    let mut out = Vec::new();
    for oy in 0..l.output_shape.height {
        for ox in 0..l.output_shape.width {
            for oc in 0..l.output_shape.channels {
                let mut acc: i64 = l.bias.get(oc).map_or(0, |&b| i64::from(b));
                for ky in 0..w.kernel_h {
                    for kx in 0..w.kernel_w {
                        let (iy, ix) = l.tap(oy, ox, ky, kx);
                        for ic in 0..s.channels {
                            if let Some(x) = l.input_at(iy, ix, ic) {
                                let f = l.filter
                                    [((oc * w.kernel_h + ky) * w.kernel_w + kx) * s.channels + ic];
                                acc += i64::from(f) * (x - i64::from(l.input_zp));
                            }
                        }
                    }
                }
                out.push(model_requant(acc, l.scales[oc], l.output_zp, l.act));
            }
        }
    }
    out
}

fn model_depthwise(l: &Layer) -> Vec<i8> {
    let w = &l.window;
    let out_c = l.output_shape.channels;
    let mut out = Vec::new();
    for oy in 0..l.output_shape.height {
        for ox in 0..l.output_shape.width {
            for ic in 0..l.input_shape.channels {
                for m in 0..l.depth_multiplier {
                    let oc = ic * l.depth_multiplier + m;
                    let mut acc: i64 = l.bias.get(oc).map_or(0, |&b| i64::from(b));
                    for ky in 0..w.kernel_h {
                        for kx in 0..w.kernel_w {
                            let (iy, ix) = l.tap(oy, ox, ky, kx);
                            if let Some(x) = l.input_at(iy, ix, ic) {
                                let f = l.filter[(ky * w.kernel_w + kx) * out_c + oc];
                                acc += i64::from(f) * (x - i64::from(l.input_zp));
                            }
                        }
                    }
                    out.push(model_requant(acc, l.scales[oc], l.output_zp, l.act));
                }
            }
        }
    }
    out
}

/// `Ok(outputs)` or `Err(())` when some window has no tap inside the input.
fn model_pool(l: &Layer, average: bool) -> Result<Vec<i8>, ()> {
    let w = &l.window;
    let mut out = Vec::new();
    for oy in 0..l.output_shape.height {
        for ox in 0..l.output_shape.width {
            for c in 0..l.input_shape.channels {
                let mut taps = Vec::new();
                for ky in 0..w.kernel_h {
                    for kx in 0..w.kernel_w {
                        let (iy, ix) = l.tap(oy, ox, ky, kx);
                        taps.extend(l.input_at(iy, ix, c));
                    }
                }
                let v = if average {
                    if taps.is_empty() {
                        return Err(());
                    }
                    let n = taps.len() as i64;
                    let sum: i64 = taps.iter().sum();
                    // Mean rounded half away from zero.
                    sum.signum() * ((2 * sum.abs() + n) / (2 * n))
                } else {
                    taps.iter().copied().fold(-128, i64::max)
                };
                out.push(v.clamp(i64::from(l.act.0), i64::from(l.act.1)) as i8);
            }
        }
    }
    Ok(out)
}

// ------------------------------------------------------------------ properties

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn arithmetic_matches_models(a in any::<i32>(), b in any::<i32>(), e in 0i32..=31, shift in -31i32..=8) {
        prop_assert_eq!(i64::from(saturating_rounding_doubling_high_mul(a, b)), model_srdhm(a, b));
        prop_assert_eq!(i64::from(rounding_divide_by_pot(a, e)), model_rdbpot(i64::from(a), e));
        // Keep x · 2^shift inside i32, as TFLite assumes.
        let x = a >> 8;
        let expected = model_rdbpot(model_srdhm(x.wrapping_shl(shift.max(0) as u32), b), -shift);
        if i64::from(x) << shift.max(0) == i64::from(x.wrapping_shl(shift.max(0) as u32)) {
            prop_assert_eq!(i64::from(multiply_by_quantized_multiplier(x, b, shift)), expected);
        }
    }

    #[test]
    fn quantize_multiplier_round_trips(real in 1e-9f64..1e3) {
        let (m, shift) = quantize_multiplier(real);
        prop_assert!((1 << 30..=i32::MAX).contains(&m));
        let back = f64::from(m) * 2f64.powi(shift - 31);
        prop_assert!((back - real).abs() <= real * 2f64.powi(-31));
    }

    #[test]
    fn conv2d_matches_model(l in layer(4, false)) {
        let (r, out) = l.run(|q, out| {
            kernels::conv2d(&l.input, l.input_shape, &l.filter, &l.bias, &l.window, q, out, l.output_shape)
        });
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(out, model_conv2d(&l));
    }

    #[test]
    fn depthwise_matches_model(l in layer(4, true)) {
        let (r, out) = l.run(|q, out| {
            kernels::depthwise_conv2d(&l.input, l.input_shape, &l.filter, &l.bias, &l.window, l.depth_multiplier, q, out, l.output_shape)
        });
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(out, model_depthwise(&l));
    }

    #[test]
    fn pools_match_model(l in layer(4, true)) {
        // Pools keep the channel count: reuse the layer's geometry with out channels = in.
        let l = Layer { output_shape: Shape { channels: l.input_shape.channels, ..l.output_shape }, ..l };
        let mut out = vec![0i8; l.output_shape.len()];
        let r = kernels::max_pool(&l.input, l.input_shape, &l.window, l.act.0, l.act.1, &mut out, l.output_shape);
        prop_assert_eq!(r, Ok(()));
        prop_assert_eq!(&out, &model_pool(&l, false).unwrap());

        let before = out.clone();
        let r = kernels::avg_pool(&l.input, l.input_shape, &l.window, l.act.0, l.act.1, &mut out, l.output_shape);
        match model_pool(&l, true) {
            Ok(want) => {
                prop_assert_eq!(r, Ok(()));
                prop_assert_eq!(out, want);
            }
            Err(()) => {
                prop_assert_eq!(r, Err(Error::InvalidParameter));
                prop_assert_eq!(out, before);
            }
        }
    }

    #[test]
    fn fully_connected_matches_model(
        (input, filter, bias, scales) in (0usize..=40, 0usize..=12, any::<bool>()).prop_flat_map(|(n_in, n_out, has_bias)| (
            vec(any::<i8>(), n_in),
            vec(any::<i8>(), n_in * n_out),
            vec(-(1i32 << 20)..(1 << 20), if has_bias { n_out } else { 0 }),
            vec(scale(), n_out),
        )),
        input_zp in -128i32..=127,
        output_zp in -128i32..=127,
        act in act_range(),
    ) {
        let n_out = scales.len();
        let (m, s): (Vec<i32>, Vec<i32>) = scales.iter().map(|&x| quantize_multiplier(x)).unzip();
        let q = Requantize { input_offset: -input_zp, output_offset: output_zp, multipliers: &m, shifts: &s, act_min: act.0, act_max: act.1 };
        let mut out = vec![0i8; n_out];
        prop_assert_eq!(kernels::fully_connected(&input, &filter, &bias, &q, &mut out), Ok(()));
        let want: Vec<i8> = (0..n_out).map(|o| {
            let mut acc: i64 = bias.get(o).map_or(0, |&b| i64::from(b));
            for (i, &x) in input.iter().enumerate() {
                acc += i64::from(filter[o * input.len() + i]) * (i64::from(x) - i64::from(input_zp));
            }
            model_requant(acc, scales[o], output_zp, act)
        }).collect();
        prop_assert_eq!(out, want);

        // LiteRT's reference variant: one rounding, in f64, of acc · scale.
        let fq = kernels::FloatRequantize { input_offset: -input_zp, output_offset: output_zp, scales: &scales, act_min: act.0, act_max: act.1 };
        let mut out = vec![0i8; n_out];
        prop_assert_eq!(kernels::fully_connected_float_requant(&input, &filter, &bias, &fq, &mut out), Ok(()));
        let want: Vec<i8> = (0..n_out).map(|o| {
            let mut acc: i64 = bias.get(o).map_or(0, |&b| i64::from(b));
            for (i, &x) in input.iter().enumerate() {
                acc += i64::from(filter[o * input.len() + i]) * (i64::from(x) - i64::from(input_zp));
            }
            let v = (acc as f64 * scales[o]).round() as i64 + i64::from(output_zp);
            v.clamp(i64::from(act.0), i64::from(act.1)) as i8
        }).collect();
        prop_assert_eq!(out, want);
    }

    #[test]
    fn softmax_within_one_step_of_float_and_monotone(
        (input, depth) in (1usize..=40, 1usize..=3).prop_flat_map(|(d, rows)| (vec(any::<i8>(), d * rows), Just(d))),
        beta in 0.25f32..4.0,
        scale_exp in -8i32..=0,
        scale_mantissa in 1.0f32..2.0,
    ) {
        let scale = scale_mantissa * 2f32.powi(scale_exp);
        let p = SoftmaxParams::new(beta, scale).unwrap();
        let mut out = vec![0i8; input.len()];
        prop_assert_eq!(kernels::softmax(&input, depth, &p, &mut out), Ok(()));
        let real: Vec<f32> = input.iter().map(|&q| dequantize_i8(q, scale, 0)).collect();
        let mut want = vec![0f32; real.len()];
        float::softmax(&real, depth, beta, &mut want).unwrap();
        for (g, w) in out.iter().zip(&want) {
            let wq = quantize_f32(*w, 1.0 / 256.0, -128);
            prop_assert!((i32::from(*g) - i32::from(wq)).abs() <= 1, "{} vs {} ({})", g, wq, w);
        }
        for (row_in, row_out) in input.chunks(depth).zip(out.chunks(depth)) {
            for i in 0..depth {
                for j in 0..depth {
                    if row_in[i] >= row_in[j] {
                        prop_assert!(row_out[i] >= row_out[j]);
                    }
                }
            }
        }
    }
}

// ------------------------------------------------------------------ robustness

/// Dimensions that are small, zero, or absurdly large.
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..=5,
        1 => Just(usize::MAX),
        1 => Just(usize::MAX / 2 + 1),
        1 => (1usize << 16)..(1usize << 20),
    ]
}

fn any_shape() -> impl Strategy<Value = Shape> {
    (dim(), dim(), dim()).prop_map(|(h, w, c)| Shape::new(h, w, c))
}

fn any_window() -> impl Strategy<Value = Window> {
    (dim(), dim(), dim(), dim(), dim(), dim()).prop_map(|(kh, kw, sh, sw, pt, pl)| Window {
        kernel_h: kh,
        kernel_w: kw,
        stride_h: sh,
        stride_w: sw,
        pad_top: pt,
        pad_left: pl,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Random shapes, windows and slice lengths: kernels return errors, never panic, and a
    /// slice that does not match its shape is always rejected.
    #[test]
    fn kernels_never_panic(
        in_shape in any_shape(),
        out_shape in any_shape(),
        window in any_window(),
        dm in dim(),
        lens in (0usize..=64, 0usize..=64, 0usize..=8, 0usize..=8, 0usize..=8, 0usize..=64),
        act in (any::<i8>(), any::<i8>()),
        depth in 0usize..=9,
    ) {
        let (n_in, n_filter, n_bias, n_mult, n_shift, n_out) = lens;
        let input = vec![1i8; n_in];
        let filter = vec![-1i8; n_filter];
        let bias = vec![7i32; n_bias];
        let m = vec![1 << 30; n_mult];
        let s = vec![-1; n_shift];
        let q = Requantize { input_offset: 3, output_offset: -3, multipliers: &m, shifts: &s, act_min: act.0, act_max: act.1 };
        let mut out = vec![0i8; n_out];
        let mismatched = in_shape.checked_len() != Some(n_in) || out_shape.checked_len() != Some(n_out);

        let r = kernels::conv2d(&input, in_shape, &filter, &bias, &window, &q, &mut out, out_shape);
        prop_assert!(!mismatched || r.is_err());
        let r = kernels::depthwise_conv2d(&input, in_shape, &filter, &bias, &window, dm, &q, &mut out, out_shape);
        prop_assert!(!mismatched || r.is_err());
        let r = kernels::max_pool(&input, in_shape, &window, act.0, act.1, &mut out, out_shape);
        prop_assert!(!mismatched || r.is_err());
        let r = kernels::avg_pool(&input, in_shape, &window, act.0, act.1, &mut out, out_shape);
        prop_assert!(!mismatched || r.is_err());
        let r = kernels::fully_connected(&input, &filter, &bias, &q, &mut out);
        prop_assert!(n_filter == n_in * n_out || r.is_err());
        let scales = vec![0.5f64; n_mult];
        let fq = kernels::FloatRequantize { input_offset: 3, output_offset: -3, scales: &scales, act_min: act.0, act_max: act.1 };
        let r = kernels::fully_connected_float_requant(&input, &filter, &bias, &fq, &mut out);
        prop_assert!(n_filter == n_in * n_out || r.is_err());
        let p = SoftmaxParams { input_multiplier: 1 << 30, input_left_shift: 20, diff_min: -100 };
        let r = kernels::softmax(&input, depth, &p, &mut out);
        prop_assert!((n_in == n_out && depth > 0 && n_in % depth == 0) || r.is_err());

        let fin = vec![0.5f32; n_in];
        let ffil = vec![0.25f32; n_filter];
        let fbias = vec![1f32; n_bias];
        let mut fout = vec![0f32; n_out];
        let act = float::Activation::Relu;
        let r = float::conv2d(&fin, in_shape, &ffil, &fbias, &window, act, &mut fout, out_shape);
        prop_assert!(!mismatched || r.is_err());
        let r = float::depthwise_conv2d(&fin, in_shape, &ffil, &fbias, &window, dm, act, &mut fout, out_shape);
        prop_assert!(!mismatched || r.is_err());
        let r = float::max_pool(&fin, in_shape, &window, act, &mut fout, out_shape);
        prop_assert!(!mismatched || r.is_err());
        let r = float::avg_pool(&fin, in_shape, &window, act, &mut fout, out_shape);
        prop_assert!(!mismatched || r.is_err());
        let _ = float::fully_connected(&fin, &ffil, &fbias, act, &mut fout);
        let _ = float::softmax(&fin, depth, 1.0, &mut fout);
    }

    /// Consistent lengths with hostile geometry (huge strides and paddings, windows far
    /// outside the input) still run to completion.
    #[test]
    fn hostile_geometry_with_consistent_lengths(
        (h, w, c, oh, ow, oc) in (0usize..=4, 0usize..=4, 1usize..=3, 0usize..=4, 0usize..=4, 1usize..=3),
        window in any_window().prop_filter("small kernels", |w| w.kernel_h <= 4 && w.kernel_w <= 4),
    ) {
        let in_shape = Shape::new(h, w, c);
        let out_shape = Shape::new(oh, ow, oc);
        let input = vec![5i8; in_shape.len()];
        let filter = vec![1i8; oc * window.kernel_h * window.kernel_w * c];
        let m = vec![1 << 30; oc];
        let s = vec![0; oc];
        let q = Requantize { input_offset: 0, output_offset: 0, multipliers: &m, shifts: &s, act_min: -128, act_max: 127 };
        let mut out = vec![0i8; out_shape.len()];
        let r = kernels::conv2d(&input, in_shape, &filter, &[], &window, &q, &mut out, out_shape);
        let valid = window.kernel_h > 0 && window.kernel_w > 0 && window.stride_h > 0 && window.stride_w > 0;
        prop_assert_eq!(r.is_ok(), valid);
        let pool_shape = Shape::new(oh, ow, c);
        let mut pout = vec![0i8; pool_shape.len()];
        let r = kernels::max_pool(&input, in_shape, &window, -128, 127, &mut pout, pool_shape);
        prop_assert_eq!(r.is_ok(), valid);
        let _ = kernels::avg_pool(&input, in_shape, &window, -128, 127, &mut pout, pool_shape);
    }
}
