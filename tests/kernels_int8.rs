//! int8 kernels against hand-worked examples and against the float kernels.
//!
//! Bit-exactness with LiteRT itself is checked end-to-end on real models elsewhere; here every
//! expected value is derived by hand in the comments, and the float comparison bounds the
//! quantization error by one output step.

use fixnet::float::{self, Activation};
use fixnet::kernels::{self, Requantize, SoftmaxParams};
use fixnet::quant::{
    activation_range_i8, conv_multiplier, dequantize_i8, fully_connected_per_tensor_multiplier,
    quantize_f32,
};
use fixnet::{Error, Padding, Shape, Window};

/// `(2^30, 1)` is the Q31 encoding of 1.0; `(2^30, 0)` of 0.5.
const ONE: (i32, i32) = (1 << 30, 1);
const HALF: (i32, i32) = (1 << 30, 0);

fn requant<'a>(
    input_zp: i32,
    output_zp: i32,
    multipliers: &'a [i32],
    shifts: &'a [i32],
    act: (i8, i8),
) -> Requantize<'a> {
    Requantize {
        input_offset: -input_zp,
        output_offset: output_zp,
        multipliers,
        shifts,
        act_min: act.0,
        act_max: act.1,
    }
}

const FULL: (i8, i8) = (-128, 127);

// ---------------------------------------------------------------- fully connected

#[test]
fn fully_connected_worked_example() {
    // acc0 = 1·1 + 2·0 + 3·(−1) + 10 = 8 → ·0.5 = 4.
    // acc1 = 2·(1 + 2 + 3) − 5 = 7 → 3.5 → 4 (ties up in SRDHM).
    let m = [HALF.0; 2];
    let s = [HALF.1; 2];
    let q = requant(0, 0, &m, &s, FULL);
    let mut out = [0i8; 2];
    kernels::fully_connected(&[1, 2, 3], &[1, 0, -1, 2, 2, 2], &[10, -5], &q, &mut out).unwrap();
    assert_eq!(out, [4, 4]);

    // Without bias: acc0 = −2 → −1; acc1 = 12 → 6.
    kernels::fully_connected(&[1, 2, 3], &[1, 0, -1, 2, 2, 2], &[], &q, &mut out).unwrap();
    assert_eq!(out, [-1, 6]);
}

#[test]
fn fully_connected_zero_points_and_saturation() {
    // Input zero point −128: the real inputs are q + 128, so [−128, −127, 127] → [0, 1, 255].
    // Output zero point 127, multiplier 1.0.
    // acc0 = 0·1 + 1·1 + 255·1 = 256 → 256 + 127 saturates to 127.
    // acc1 = −256 (weights −1) → −256 + 127 = −129 saturates to −128.
    // acc2 = 255·(−1) + 1·2 = −253 → −253 + 127 = −126.
    let m = [ONE.0; 3];
    let s = [ONE.1; 3];
    let q = requant(-128, 127, &m, &s, FULL);
    let w = [1, 1, 1, -1, -1, -1, 0, 2, -1];
    let mut out = [0i8; 3];
    kernels::fully_connected(&[-128, -127, 127], &w, &[], &q, &mut out).unwrap();
    assert_eq!(out, [127, -128, -126]);

    // Input zero point 127: real inputs are q − 127, so [127, 126, −128] → [0, −1, −255].
    // acc0 = −256 → clamp −128 after adding output zero point 0; acc1 = 256 → 127;
    // acc2 = 0·0 + (−1)·2 + (−255)·(−1) = 253 → 127.
    let q = requant(127, 0, &m, &s, FULL);
    kernels::fully_connected(&[127, 126, -128], &w, &[], &q, &mut out).unwrap();
    assert_eq!(out, [-128, 127, 127]);
}

#[test]
fn fully_connected_relu_and_relu6_clamps() {
    // Output scale 0.05, zero point −20: ReLU clamps at −20, ReLU6 at [−20, 100].
    let relu = activation_range_i8(Activation::Relu, 0.05, -20);
    let relu6 = activation_range_i8(Activation::Relu6, 0.05, -20);
    assert_eq!((relu, relu6), ((-20, 127), (-20, 100)));
    let m = [ONE.0; 3];
    let s = [ONE.1; 3];
    // acc = [−50, 30, 200] + zero point −20 = [−70, 10, 180].
    let w = [-50, 30, 100];
    let input = [1i8];
    let bias = [0, 0, 100];
    let mut out = [0i8; 3];
    kernels::fully_connected(&input, &w, &bias, &requant(0, -20, &m, &s, relu), &mut out).unwrap();
    assert_eq!(out, [-20, 10, 127]);
    kernels::fully_connected(&input, &w, &bias, &requant(0, -20, &m, &s, relu6), &mut out).unwrap();
    assert_eq!(out, [-20, 10, 100]);
}

#[test]
fn fully_connected_per_channel_multipliers() {
    // Same accumulator 40 in every channel, different scales:
    // 40·0.5 = 20; 40·1.0 = 40; 40·0.75·2^−3 = 3.75 → 4; 40·0.5·2^2 = 80.
    let m = [1 << 30, 1 << 30, 3 << 29, 1 << 30];
    let s = [0, 1, -3, 2];
    let q = requant(0, 0, &m, &s, FULL);
    let mut out = [0i8; 4];
    kernels::fully_connected(&[20, 20], &[1, 1, 1, 1, 1, 1, 1, 1], &[], &q, &mut out).unwrap();
    assert_eq!(out, [20, 40, 4, 80]);
}

#[test]
fn fully_connected_float_requant_rounds_once() {
    // LiteRT's reference kernel computes round(acc · scale) in f64, ties away from zero.
    //   acc 5, scale 0.25: 1.25 → 1. The Q31 path rounds twice: SRDHM(5, 0.5) = 2.5 → 3,
    //   then 3 / 2 = 1.5 → 2.
    //   acc −5, scale 0.5: −2.5 → −3. The Q31 path's SRDHM rounds the tie up: −2.
    //   acc 7, scale 1/3: 2.33 → 2, plus output zero point 10 → 12.
    let scales = [0.25, 0.5, 1.0 / 3.0];
    let fq = kernels::FloatRequantize {
        input_offset: 0,
        output_offset: 0,
        scales: &scales,
        act_min: -128,
        act_max: 127,
    };
    let mut out = [0i8; 3];
    let filter = [1, 0, 0, -1, 0, 0, 0, 0, 1];
    kernels::fully_connected_float_requant(&[5, 5, 7], &filter, &[], &fq, &mut out).unwrap();
    assert_eq!(out, [1, -3, 2]);
    let fq10 = kernels::FloatRequantize {
        output_offset: 10,
        ..fq
    };
    kernels::fully_connected_float_requant(&[5, 5, 7], &filter, &[], &fq10, &mut out).unwrap();
    assert_eq!(out, [11, 7, 12]);

    // The same layer through the Q31 multipliers of 0.25 and 0.5.
    let m = [1 << 30, 1 << 30, 0];
    let s = [-1, 0, 0];
    let q = requant(0, 0, &m, &s, FULL);
    kernels::fully_connected(&[5, 5, 7], &filter, &[], &q, &mut out).unwrap();
    assert_eq!(&out[..2], &[2, -2]);

    // Zero points, bias and clamping behave as in the Q31 kernel:
    // input zp −128 → real [128, 0, 255]; acc0 = 128 + 1000 = 1128 · 0.25 = 282 → 127.
    let fq = kernels::FloatRequantize {
        input_offset: 128,
        output_offset: -5,
        scales: &scales,
        act_min: -20,
        act_max: 127,
    };
    kernels::fully_connected_float_requant(&[0, -128, 127], &filter, &[1000, 0, 3], &fq, &mut out)
        .unwrap();
    // acc1 = −128·0.5 = −64 − 5 → −69 → clamp −20; acc2 = (255 + 3)/3 = 86 − 5 = 81.
    assert_eq!(out, [127, -20, 81]);

    let bad = kernels::FloatRequantize {
        scales: &scales[..2],
        ..fq
    };
    assert_eq!(
        kernels::fully_connected_float_requant(&[0; 3], &filter, &[], &bad, &mut out),
        Err(Error::ShapeMismatch)
    );
}

#[test]
fn fully_connected_litert_reference_regression() {
    // An output channel of a Dense layer converted by TensorFlow 2.21, whose LiteRT
    // BUILTIN_REF output was 122: scales in 0.022851918, filter 0.004509904,
    // out 0.011845565 (zero point −128), accumulator 28792 (here all bias).
    // Exactly: 28792 · 0.0087003… = 250.49899 → 250 → 122. The Q31 path first rounds
    // 28792 · m / 2^31 = 16031.94 to 16032, then 16032 / 64 = 250.5 → 251 → 123.
    let (in_s, f_s, out_s) = (0.022_851_918_f32, 0.004_509_904_f32, 0.011_845_565_f32);
    let scale = [fixnet::quant::fully_connected_effective_scale(
        in_s, f_s, out_s,
    )];
    let fq = kernels::FloatRequantize {
        input_offset: 0,
        output_offset: -128,
        scales: &scale,
        act_min: -128,
        act_max: 127,
    };
    let mut out = [0i8; 1];
    kernels::fully_connected_float_requant(&[0], &[0], &[28792], &fq, &mut out).unwrap();
    assert_eq!(out, [122]);

    let (m, s) = conv_multiplier(in_s, f_s, out_s);
    assert_eq!((m, s), (1_195_759_921, -6));
    let (m, s) = ([m], [s]);
    let q = requant(0, -128, &m, &s, FULL);
    kernels::fully_connected(&[0], &[0], &[28792], &q, &mut out).unwrap();
    assert_eq!(out, [123]);
}

#[test]
fn fully_connected_rejects_bad_lengths() {
    let m = [ONE.0; 2];
    let s = [ONE.1; 2];
    let q = requant(0, 0, &m, &s, FULL);
    let mut out = [0i8; 2];
    let e = Err(Error::ShapeMismatch);
    assert_eq!(
        kernels::fully_connected(&[1, 2], &[0; 5], &[], &q, &mut out),
        e
    );
    assert_eq!(
        kernels::fully_connected(&[1, 2], &[0; 4], &[1], &q, &mut out),
        e
    );
    let q1 = requant(0, 0, &m[..1], &s[..1], FULL);
    assert_eq!(
        kernels::fully_connected(&[1, 2], &[0; 4], &[], &q1, &mut out),
        e
    );
    let bad_act = requant(0, 0, &m, &s, (5, 4));
    assert_eq!(
        kernels::fully_connected(&[1, 2], &[0; 4], &[], &bad_act, &mut out),
        Err(Error::InvalidParameter)
    );
}

// ---------------------------------------------------------------- conv2d

fn window(padding: Padding, input: Shape, k: usize, stride: usize) -> (Window, Shape) {
    let (w, oh, ow) = Window::new(padding, input, k, k, stride, stride).unwrap();
    (w, Shape::new(oh, ow, 0))
}

#[test]
fn conv2d_valid_two_channels() {
    // 3×3 single-channel input 1..9, 2×2 filters:
    //   c0 = [[1, 0], [0, −1]]: x[i][j] − x[i+1][j+1] = −4 everywhere;
    //   c1 = [[1, 1], [1, 1]]: window sums 12, 16, 24, 28, halved by the multiplier 0.5.
    // Output zero point 10 and bias [0, 2]: c0 → −4 + 10 = 6; c1 → (12+2)/2 + 10 = 17,
    // (16+2)/2 + 10 = 19, (24+2)/2 + 10 = 23, (28+2)/2 + 10 = 25.
    let input: Vec<i8> = (1..=9).collect();
    let filter = [1, 0, 0, -1, 1, 1, 1, 1];
    let m = [ONE.0, HALF.0];
    let s = [ONE.1, HALF.1];
    let (w, mut out_shape) = window(Padding::Valid, Shape::new(3, 3, 1), 2, 1);
    out_shape.channels = 2;
    let mut out = [0i8; 8];
    let q = requant(0, 10, &m, &s, FULL);
    kernels::conv2d(
        &input,
        Shape::new(3, 3, 1),
        &filter,
        &[0, 2],
        &w,
        &q,
        &mut out,
        out_shape,
    )
    .unwrap();
    assert_eq!(out, [6, 17, 6, 19, 6, 23, 6, 25]);
}

#[test]
fn conv2d_same_padding_even_input_stride_2() {
    // 4×4 input 1..16, 3×3 all-ones filter, SAME, stride 2: output 2×2, total padding
    // (2−1)·2 + 3 − 4 = 1, all of it after (bottom/right). Windows:
    //   (0,0): rows 0–2 × cols 0–2 = 1+2+3+5+6+7+9+10+11 = 54
    //   (0,1): rows 0–2 × cols 2–3 = 3+4+7+8+11+12 = 45
    //   (1,0): rows 2–3 × cols 0–2 = 9+10+11+13+14+15 = 72
    //   (1,1): rows 2–3 × cols 2–3 = 11+12+15+16 = 54
    let input: Vec<i8> = (1..=16).collect();
    let (w, mut out_shape) = window(Padding::Same, Shape::new(4, 4, 1), 3, 2);
    assert_eq!((w.pad_top, w.pad_left, out_shape.height), (0, 0, 2));
    out_shape.channels = 1;
    let q = requant(0, 0, &[ONE.0], &[ONE.1], FULL);
    let mut out = [0i8; 4];
    kernels::conv2d(
        &input,
        Shape::new(4, 4, 1),
        &[1; 9],
        &[],
        &w,
        &q,
        &mut out,
        out_shape,
    )
    .unwrap();
    assert_eq!(out, [54, 45, 72, 54]);
}

#[test]
fn conv2d_same_padding_odd_input_padding_contributes_nothing() {
    // 5×5 input of q = 5 with zero point 4 (real value 1), 3×3 all-ones filter, SAME,
    // stride 2: output 3×3, total padding 2·2 + 3 − 5 = 2, one row/column before. Each output
    // counts its taps inside the input: rows per output row are {0,1}, {1,2,3}, {3,4} → 2, 3,
    // 2 taps, likewise for columns. Padding is skipped, not filled with the zero point, so:
    //   [[4, 6, 4], [6, 9, 6], [4, 6, 4]].
    let (w, mut out_shape) = window(Padding::Same, Shape::new(5, 5, 1), 3, 2);
    assert_eq!((w.pad_top, out_shape.height), (1, 3));
    out_shape.channels = 1;
    let q = requant(4, 0, &[ONE.0], &[ONE.1], FULL);
    let mut out = [0i8; 9];
    kernels::conv2d(
        &[5; 25],
        Shape::new(5, 5, 1),
        &[1; 9],
        &[],
        &w,
        &q,
        &mut out,
        out_shape,
    )
    .unwrap();
    assert_eq!(out, [4, 6, 4, 6, 9, 6, 4, 6, 4]);
}

#[test]
fn conv2d_multi_channel_input() {
    // One pixel, three input channels [1, −2, 3] with zero point −1 (real [2, −1, 4]),
    // 1×1 filters: c0 = [1, 1, 1] → 5; c1 = [−3, 0, 2] → 2; multiplier 1.0, output zp −1.
    let (w, _) = window(Padding::Valid, Shape::new(1, 1, 3), 1, 1);
    let m = [ONE.0; 2];
    let s = [ONE.1; 2];
    let q = requant(-1, -1, &m, &s, FULL);
    let mut out = [0i8; 2];
    kernels::conv2d(
        &[1, -2, 3],
        Shape::new(1, 1, 3),
        &[1, 1, 1, -3, 0, 2],
        &[],
        &w,
        &q,
        &mut out,
        Shape::new(1, 1, 2),
    )
    .unwrap();
    assert_eq!(out, [4, 1]);
}

#[test]
fn conv2d_rejects_bad_arguments() {
    let (w, _) = window(Padding::Valid, Shape::new(3, 3, 1), 2, 1);
    let q = requant(0, 0, &[ONE.0], &[ONE.1], FULL);
    let mut out = [0i8; 4];
    let run = |input: &[i8], filter: &[i8], bias: &[i32], w: &Window, out: &mut [i8]| {
        kernels::conv2d(
            input,
            Shape::new(3, 3, 1),
            filter,
            bias,
            w,
            &q,
            out,
            Shape::new(2, 2, 1),
        )
    };
    assert_eq!(
        run(&[0; 8], &[0; 4], &[], &w, &mut out),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        run(&[0; 9], &[0; 5], &[], &w, &mut out),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        run(&[0; 9], &[0; 4], &[0, 0], &w, &mut out),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        run(&[0; 9], &[0; 4], &[], &w, &mut out[..3]),
        Err(Error::ShapeMismatch)
    );
    let zero_stride = Window { stride_h: 0, ..w };
    assert_eq!(
        run(&[0; 9], &[0; 4], &[], &zero_stride, &mut out),
        Err(Error::InvalidParameter)
    );
    assert_eq!(run(&[0; 9], &[0; 4], &[7], &w, &mut out), Ok(()));
}

// ---------------------------------------------------------------- depthwise

#[test]
fn depthwise_depth_multiplier_2() {
    // 2×2 input with channels [ch0, ch1] = [1,10], [2,20], [3,30], [4,40]; 2×2 kernel, VALID,
    // depth multiplier 2 → one output pixel with 4 channels, channel c = ic·2 + m:
    //   c0 (ic0): weights [1, 1, 1, 1]   → 1+2+3+4 = 10
    //   c1 (ic0): weights [1, −1, 0, 0]  → 1−2 = −1
    //   c2 (ic1): weights [0, 0, 0, 1]   → 40
    //   c3 (ic1): weights [1, 0, 0, −1]  → 10−40 = −30
    // Bias [0, 1, 2, 3] → [10, 0, 42, −27].
    // The filter is tap-major: tap t holds the 4 output channels' weights.
    let input = [1, 10, 2, 20, 3, 30, 4, 40];
    let filter = [1, 1, 0, 1, 1, -1, 0, 0, 1, 0, 0, 0, 1, 0, 1, -1];
    let (w, _) = window(Padding::Valid, Shape::new(2, 2, 2), 2, 1);
    let m = [ONE.0; 4];
    let s = [ONE.1; 4];
    let q = requant(0, 0, &m, &s, FULL);
    let mut out = [0i8; 4];
    kernels::depthwise_conv2d(
        &input,
        Shape::new(2, 2, 2),
        &filter,
        &[0, 1, 2, 3],
        &w,
        2,
        &q,
        &mut out,
        Shape::new(1, 1, 4),
    )
    .unwrap();
    assert_eq!(out, [10, 0, 42, -27]);
}

#[test]
fn depthwise_same_padding_with_zero_point() {
    // 3×3 single-channel input, all q = 0 with zero point −3 (real 3); 3×3 all-ones kernel,
    // SAME stride 1 (pad 1): tap counts [[4,6,4],[6,9,6],[4,6,4]] × 3, halved:
    //   12·0.5 = 6, 18·0.5 = 9, 27·0.5 = 13.5 → 14.
    let (w, _) = window(Padding::Same, Shape::new(3, 3, 1), 3, 1);
    let q = requant(-3, 0, &[HALF.0], &[HALF.1], FULL);
    let mut out = [0i8; 9];
    kernels::depthwise_conv2d(
        &[0; 9],
        Shape::new(3, 3, 1),
        &[1; 9],
        &[],
        &w,
        1,
        &q,
        &mut out,
        Shape::new(3, 3, 1),
    )
    .unwrap();
    assert_eq!(out, [6, 9, 6, 9, 14, 9, 6, 9, 6]);
}

#[test]
fn depthwise_rejects_bad_arguments() {
    let (w, _) = window(Padding::Valid, Shape::new(2, 2, 2), 2, 1);
    let m = [ONE.0; 4];
    let s = [ONE.1; 4];
    let q = requant(0, 0, &m, &s, FULL);
    let mut out = [0i8; 4];
    let run = |filter: &[i8], dm: usize, out_shape: Shape, out: &mut [i8]| {
        kernels::depthwise_conv2d(
            &[0; 8],
            Shape::new(2, 2, 2),
            filter,
            &[],
            &w,
            dm,
            &q,
            out,
            out_shape,
        )
    };
    assert_eq!(run(&[0; 16], 2, Shape::new(1, 1, 4), &mut out), Ok(()));
    assert_eq!(
        run(&[0; 16], 0, Shape::new(1, 1, 4), &mut out),
        Err(Error::InvalidParameter)
    );
    // Output channels must be input channels × multiplier.
    assert_eq!(
        run(&[0; 12], 2, Shape::new(1, 1, 3), &mut out[..3]),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        run(&[0; 15], 2, Shape::new(1, 1, 4), &mut out),
        Err(Error::ShapeMismatch)
    );
}

// ---------------------------------------------------------------- pooling

#[test]
fn avg_pool_window_overhanging_padding() {
    // 3×3 input 1..9, 3×3 SAME stride 1 (pad 1): each output averages only the taps inside
    // the input.
    //   (0,0): 1,2,4,5 = 12/4 = 3       (0,1): 1..6 = 21/6 = 3.5 → 4   (0,2): 2,3,5,6 = 16/4 = 4
    //   (1,0): 27/6 = 4.5 → 5           (1,1): 45/9 = 5                (1,2): 33/6 = 5.5 → 6
    //   (2,0): 24/4 = 6                 (2,1): 39/6 = 6.5 → 7          (2,2): 28/4 = 7
    let input: Vec<i8> = (1..=9).collect();
    let (w, _) = window(Padding::Same, Shape::new(3, 3, 1), 3, 1);
    let shape = Shape::new(3, 3, 1);
    let mut out = [0i8; 9];
    kernels::avg_pool(&input, shape, &w, -128, 127, &mut out, shape).unwrap();
    assert_eq!(out, [3, 4, 4, 5, 5, 6, 6, 7, 7]);

    // Negated input: ties go away from zero too, (−21 − 3)/6 = −4 etc.
    let neg: Vec<i8> = input.iter().map(|x| -x).collect();
    kernels::avg_pool(&neg, shape, &w, -128, 127, &mut out, shape).unwrap();
    assert_eq!(out, [-3, -4, -4, -5, -5, -6, -6, -7, -7]);

    // Activation clamp [−5, 4].
    kernels::avg_pool(&neg, shape, &w, -5, 4, &mut out, shape).unwrap();
    assert_eq!(out, [-3, -4, -4, -5, -5, -5, -5, -5, -5]);
}

#[test]
fn avg_pool_extremes_and_channels() {
    // Two channels: ch0 all 127, ch1 all −128; 2×2 VALID stride 2 on 4×4 → 2×2 output.
    // Sums 4·127 = 508 → (508 + 2)/4 = 127; −512 → (−512 − 2)/4 = −128 (truncating).
    let mut input = Vec::new();
    for _ in 0..16 {
        input.extend_from_slice(&[127i8, -128]);
    }
    let (w, _) = window(Padding::Valid, Shape::new(4, 4, 2), 2, 2);
    let mut out = [0i8; 8];
    kernels::avg_pool(
        &input,
        Shape::new(4, 4, 2),
        &w,
        -128,
        127,
        &mut out,
        Shape::new(2, 2, 2),
    )
    .unwrap();
    assert_eq!(out, [127, -128, 127, -128, 127, -128, 127, -128]);
}

#[test]
fn avg_pool_window_entirely_in_padding_is_an_error() {
    // A hand-made window whose first row lies wholly above the input.
    let w = Window {
        kernel_h: 2,
        kernel_w: 2,
        stride_h: 1,
        stride_w: 1,
        pad_top: 2,
        pad_left: 0,
    };
    let mut out = [9i8; 4];
    let r = kernels::avg_pool(
        &[1; 4],
        Shape::new(2, 2, 1),
        &w,
        -128,
        127,
        &mut out,
        Shape::new(2, 2, 1),
    );
    assert_eq!(r, Err(Error::InvalidParameter));
    assert_eq!(out, [9; 4], "nothing is written before the error");
}

#[test]
fn max_pool_worked_examples() {
    // 4×4 input, 2×2 VALID stride 2.
    let input = [
        1, 5, -3, 2, //
        4, 0, 7, -8, //
        -1, -2, -3, -4, //
        -5, -6, 9, 127,
    ];
    let (w, _) = window(Padding::Valid, Shape::new(4, 4, 1), 2, 2);
    let mut out = [0i8; 4];
    let s4 = Shape::new(4, 4, 1);
    let s2 = Shape::new(2, 2, 1);
    kernels::max_pool(&input, s4, &w, -128, 127, &mut out, s2).unwrap();
    assert_eq!(out, [5, 7, -1, 127]);
    // ReLU-style clamp at zero point 0, upper clamp 6.
    kernels::max_pool(&input, s4, &w, 0, 6, &mut out, s2).unwrap();
    assert_eq!(out, [5, 6, 0, 6]);

    // SAME padding never wins: all −100 stays −100 at the borders.
    let (w, _) = window(Padding::Same, Shape::new(3, 3, 1), 3, 1);
    let mut out = [0i8; 9];
    let s3 = Shape::new(3, 3, 1);
    kernels::max_pool(&[-100; 9], s3, &w, -128, 127, &mut out, s3).unwrap();
    assert_eq!(out, [-100; 9]);
}

#[test]
fn max_pool_window_in_padding_gives_clamped_minimum() {
    let w = Window {
        kernel_h: 1,
        kernel_w: 1,
        stride_h: 1,
        stride_w: 1,
        pad_top: 5,
        pad_left: 0,
    };
    let mut out = [0i8; 2];
    kernels::max_pool(
        &[3, 4],
        Shape::new(1, 2, 1),
        &w,
        -20,
        127,
        &mut out,
        Shape::new(1, 2, 1),
    )
    .unwrap();
    assert_eq!(out, [-20, -20]);
}

#[test]
fn pools_reject_bad_arguments() {
    let (w, _) = window(Padding::Valid, Shape::new(2, 2, 1), 2, 2);
    let mut out = [0i8; 2];
    let s_in = Shape::new(2, 2, 1);
    for pool in [kernels::max_pool, kernels::avg_pool] {
        assert_eq!(
            pool(
                &[0; 3],
                s_in,
                &w,
                -128,
                127,
                &mut out[..1],
                Shape::new(1, 1, 1)
            ),
            Err(Error::ShapeMismatch)
        );
        assert_eq!(
            pool(&[0; 4], s_in, &w, -128, 127, &mut out, Shape::new(1, 1, 2)),
            Err(Error::ShapeMismatch)
        );
        assert_eq!(
            pool(&[0; 4], s_in, &w, 1, 0, &mut out[..1], Shape::new(1, 1, 1)),
            Err(Error::InvalidParameter)
        );
        let zero = Window { kernel_w: 0, ..w };
        assert_eq!(
            pool(
                &[0; 4],
                s_in,
                &zero,
                -128,
                127,
                &mut out[..1],
                Shape::new(1, 1, 1)
            ),
            Err(Error::InvalidParameter)
        );
    }
}

// ---------------------------------------------------------------- softmax

#[test]
fn softmax_worked_examples() {
    // beta 1, input scale 0.5: real multiplier 0.5·2^26 = 2^25 → (2^30, 26); radius
    // 31·2^26/2^26 = 31, so differences below −31 (real −15.5) give exactly −128.
    let p = SoftmaxParams::new(1.0, 0.5).unwrap();
    assert_eq!(
        (p.input_multiplier, p.input_left_shift, p.diff_min),
        (1 << 30, 26, -31)
    );
    let mut out = [0i8; 4];

    // One element: probability 1 → 256 in 1/256 units, − 128 = 128, clamped to 127.
    kernels::softmax(&[5], 1, &p, &mut out[..1]).unwrap();
    assert_eq!(out[0], 127);
    // Two equal: sum 2.0, reciprocal 1 · 2^−1, each 0.5 → 128 − 128 = 0.
    kernels::softmax(&[3, 3], 2, &p, &mut out[..2]).unwrap();
    assert_eq!(&out[..2], &[0, 0]);
    // Four equal: 0.25 → 64 − 128 = −64.
    kernels::softmax(&[-7; 4], 4, &p, &mut out).unwrap();
    assert_eq!(out, [-64; 4]);
    // Three equal: 1/3 → 85.33 → 85 − 128 = −43.
    kernels::softmax(&[0; 3], 3, &p, &mut out[..3]).unwrap();
    assert_eq!(&out[..3], &[-43; 3]);
    // A difference of −200 is below diff_min: exactly 0 probability (−128), the max gets 1.
    kernels::softmax(&[100, -100], 2, &p, &mut out[..2]).unwrap();
    assert_eq!(&out[..2], &[127, -128]);
    // Rows are independent: two rows of depth 2.
    kernels::softmax(&[3, 3, 100, -100], 2, &p, &mut out).unwrap();
    assert_eq!(out, [0, 0, 127, -128]);
    // 511 equal values: 256/511 = 0.501 → 1 → −127. (At 512 TFLite aborts: its final shift
    // would exceed 31; here 256/512 = 0.5 comes out as 0 → −128, one step below.)
    let mut wide = vec![0i8; 512];
    kernels::softmax(&[9; 511], 511, &p, &mut wide[..511]).unwrap();
    assert!(wide[..511].iter().all(|&y| y == -127));
    kernels::softmax(&[9; 512], 512, &p, &mut wide).unwrap();
    assert!(wide.iter().all(|&y| y == -128));
    // Difference −1 (real −0.5): e^0 / (1 + e^−0.5) = 0.6225 → 159.4 → 159 − 128 = 31;
    // e^−0.5 / (1 + e^−0.5) = 0.3775 → 96.6 → 97 − 128 = −31.
    kernels::softmax(&[10, 9], 2, &p, &mut out[..2]).unwrap();
    assert_eq!(&out[..2], &[31, -31]);
}

#[test]
fn softmax_rejects_bad_arguments() {
    let p = SoftmaxParams::new(1.0, 0.1).unwrap();
    let mut out = [0i8; 4];
    assert_eq!(
        kernels::softmax(&[0; 4], 0, &p, &mut out),
        Err(Error::InvalidParameter)
    );
    assert_eq!(
        kernels::softmax(&[0; 4], 3, &p, &mut out),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        kernels::softmax(&[0; 3], 3, &p, &mut out),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(kernels::softmax(&[], 3, &p, &mut []), Ok(()));
}

#[test]
fn softmax_within_one_step_of_float() {
    let mut rng = Rng(0x5eed);
    for &(beta, scale) in &[
        (1.0f32, 0.1f32),
        (1.0, 1.0 / 16.0),
        (0.5, 0.25),
        (2.0, 0.03),
        (1.0, 0.0039),
    ] {
        let p = SoftmaxParams::new(beta, scale).unwrap();
        for depth in [1usize, 2, 3, 10, 17, 64] {
            let input: Vec<i8> = (0..depth * 3).map(|_| rng.i8()).collect();
            let mut got = vec![0i8; input.len()];
            kernels::softmax(&input, depth, &p, &mut got).unwrap();
            let real: Vec<f32> = input.iter().map(|&q| dequantize_i8(q, scale, 0)).collect();
            let mut want = vec![0f32; real.len()];
            float::softmax(&real, depth, beta, &mut want).unwrap();
            for (g, w) in got.iter().zip(&want) {
                let wq = quantize_f32(*w, 1.0 / 256.0, -128);
                assert!(
                    (i32::from(*g) - i32::from(wq)).abs() <= 1,
                    "beta {beta} scale {scale}: {g} vs {wq} ({w})"
                );
            }
        }
    }
}

// ---------------------------------------------------------------- float comparisons

/// A deterministic xorshift generator, so the float comparisons cover many values.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn i8(&mut self) -> i8 {
        self.next() as i8
    }
    fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * ((self.next() >> 40) as f32 / (1u64 << 24) as f32)
    }
}

/// A quantized layer and its float twin: the float weights are the dequantized int8 ones, so
/// the only difference between the two paths is the rounding of the arithmetic.
struct Layer {
    input_scale: f32,
    input_zp: i32,
    filter_scales: Vec<f32>,
    filter: Vec<i8>,
    bias: Vec<i32>,
}

impl Layer {
    fn new(rng: &mut Rng, channels: usize, per_channel: usize, input_zp: i32) -> Self {
        let input_scale = rng.range(0.01, 0.1);
        let filter_scales: Vec<f32> = (0..channels).map(|_| rng.range(0.002, 0.02)).collect();
        let filter = (0..channels * per_channel).map(|_| rng.i8()).collect();
        let bias = (0..channels)
            .map(|c| (rng.range(-1.0, 1.0) / (input_scale * filter_scales[c])) as i32)
            .collect();
        Layer {
            input_scale,
            input_zp,
            filter_scales,
            filter,
            bias,
        }
    }

    /// Filter scale of the weight at flat index `i`, for a channel layout `channel_of(i)`.
    fn float_filter(&self, channel_of: impl Fn(usize) -> usize) -> Vec<f32> {
        self.filter
            .iter()
            .enumerate()
            .map(|(i, &w)| dequantize_i8(w, self.filter_scales[channel_of(i)], 0))
            .collect()
    }

    fn float_bias(&self) -> Vec<f32> {
        self.bias
            .iter()
            .zip(&self.filter_scales)
            .map(|(&b, &s)| b as f32 * self.input_scale * s)
            .collect()
    }

    fn float_input(&self, input: &[i8]) -> Vec<f32> {
        input
            .iter()
            .map(|&q| dequantize_i8(q, self.input_scale, self.input_zp))
            .collect()
    }

    fn multipliers(&self, output_scale: f32) -> (Vec<i32>, Vec<i32>) {
        self.filter_scales
            .iter()
            .map(|&s| conv_multiplier(self.input_scale, s, output_scale))
            .unzip()
    }
}

/// Picks an output quantization covering `values` (plus zero) with int8.
fn output_quant(values: &[f32]) -> (f32, i32) {
    let lo = values.iter().copied().fold(0.0f32, f32::min);
    let hi = values.iter().copied().fold(0.0f32, f32::max);
    let scale = ((hi - lo) / 255.0).max(1e-6);
    let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i32;
    (scale, zp)
}

fn assert_within_one_step(got: &[i8], want_real: &[f32], scale: f32, zp: i32, act: Activation) {
    for (i, (&g, &w)) in got.iter().zip(want_real).enumerate() {
        let wq = quantize_f32(act.apply(w), scale, zp);
        assert!(
            (i32::from(g) - i32::from(wq)).abs() <= 1,
            "element {i}: int8 {g}, float {w} → {wq}"
        );
    }
}

#[test]
fn conv2d_matches_float_within_one_step() {
    let mut rng = Rng(42);
    let cases = [
        (Shape::new(5, 5, 3), 3, 1, Padding::Same, 4),
        (Shape::new(6, 6, 2), 3, 2, Padding::Same, 3),
        (Shape::new(7, 5, 1), 2, 2, Padding::Valid, 5),
        (Shape::new(4, 4, 4), 1, 1, Padding::Valid, 2),
        (Shape::new(9, 9, 2), 5, 2, Padding::Same, 2),
    ];
    for (k, &(in_shape, kernel, stride, padding, out_c)) in cases.iter().enumerate() {
        for act in [Activation::None, Activation::Relu, Activation::Relu6] {
            let input_zp = [-128, 0, 5, 127][k % 4];
            let layer = Layer::new(
                &mut rng,
                out_c,
                kernel * kernel * in_shape.channels,
                input_zp,
            );
            let input: Vec<i8> = (0..in_shape.len()).map(|_| rng.i8()).collect();
            let (w, oh, ow) =
                Window::new(padding, in_shape, kernel, kernel, stride, stride).unwrap();
            let out_shape = Shape::new(oh, ow, out_c);

            let per_channel = kernel * kernel * in_shape.channels;
            let mut real = vec![0f32; out_shape.len()];
            float::conv2d(
                &layer.float_input(&input),
                in_shape,
                &layer.float_filter(|i| i / per_channel),
                &layer.float_bias(),
                &w,
                Activation::None,
                &mut real,
                out_shape,
            )
            .unwrap();
            let (out_scale, out_zp) = output_quant(&real);
            let (m, s) = layer.multipliers(out_scale);
            let q = requant(
                input_zp,
                out_zp,
                &m,
                &s,
                activation_range_i8(act, out_scale, out_zp),
            );
            let mut got = vec![0i8; out_shape.len()];
            kernels::conv2d(
                &input,
                in_shape,
                &layer.filter,
                &layer.bias,
                &w,
                &q,
                &mut got,
                out_shape,
            )
            .unwrap();
            assert_within_one_step(&got, &real, out_scale, out_zp, act);
        }
    }
}

#[test]
fn depthwise_matches_float_within_one_step() {
    let mut rng = Rng(7);
    let cases = [
        (Shape::new(5, 5, 3), 3, 1, Padding::Same, 1),
        (Shape::new(6, 6, 2), 3, 2, Padding::Same, 2),
        (Shape::new(7, 4, 4), 2, 1, Padding::Valid, 3),
    ];
    for &(in_shape, kernel, stride, padding, dm) in &cases {
        for act in [Activation::None, Activation::Relu6] {
            let out_c = in_shape.channels * dm;
            let layer = Layer::new(&mut rng, out_c, kernel * kernel, -3);
            let input: Vec<i8> = (0..in_shape.len()).map(|_| rng.i8()).collect();
            let (w, oh, ow) =
                Window::new(padding, in_shape, kernel, kernel, stride, stride).unwrap();
            let out_shape = Shape::new(oh, ow, out_c);
            let mut real = vec![0f32; out_shape.len()];
            float::depthwise_conv2d(
                &layer.float_input(&input),
                in_shape,
                &layer.float_filter(|i| i % out_c),
                &layer.float_bias(),
                &w,
                dm,
                Activation::None,
                &mut real,
                out_shape,
            )
            .unwrap();
            let (out_scale, out_zp) = output_quant(&real);
            let (m, s) = layer.multipliers(out_scale);
            let q = requant(
                -3,
                out_zp,
                &m,
                &s,
                activation_range_i8(act, out_scale, out_zp),
            );
            let mut got = vec![0i8; out_shape.len()];
            kernels::depthwise_conv2d(
                &input,
                in_shape,
                &layer.filter,
                &layer.bias,
                &w,
                dm,
                &q,
                &mut got,
                out_shape,
            )
            .unwrap();
            assert_within_one_step(&got, &real, out_scale, out_zp, act);
        }
    }
}

#[test]
fn fully_connected_matches_float_within_one_step() {
    let mut rng = Rng(99);
    for &(n_in, n_out, zp) in &[
        (16usize, 10usize, -128),
        (7, 3, 0),
        (100, 33, 20),
        (1, 1, 127),
    ] {
        for per_tensor in [false, true] {
            let mut layer = Layer::new(&mut rng, n_out, n_in, zp);
            if per_tensor {
                let s0 = layer.filter_scales[0];
                layer.filter_scales.iter_mut().for_each(|s| *s = s0);
            }
            let input: Vec<i8> = (0..n_in).map(|_| rng.i8()).collect();
            let mut real = vec![0f32; n_out];
            float::fully_connected(
                &layer.float_input(&input),
                &layer.float_filter(|i| i / n_in),
                &layer.float_bias(),
                Activation::None,
                &mut real,
            )
            .unwrap();
            let (out_scale, out_zp) = output_quant(&real);
            let (m, s) = if per_tensor {
                let (m, s) = fully_connected_per_tensor_multiplier(
                    layer.input_scale,
                    layer.filter_scales[0],
                    out_scale,
                );
                (vec![m; n_out], vec![s; n_out])
            } else {
                layer.multipliers(out_scale)
            };
            let q = requant(zp, out_zp, &m, &s, FULL);
            let mut got = vec![0i8; n_out];
            kernels::fully_connected(&input, &layer.filter, &layer.bias, &q, &mut got).unwrap();
            assert_within_one_step(&got, &real, out_scale, out_zp, Activation::None);
        }
    }
}

#[test]
fn pools_match_float() {
    let mut rng = Rng(3);
    let (scale, zp) = (0.05f32, -7);
    for &(in_shape, kernel, stride, padding) in &[
        (Shape::new(5, 5, 3), 3, 1, Padding::Same),
        (Shape::new(6, 6, 2), 3, 2, Padding::Same),
        (Shape::new(7, 7, 1), 2, 2, Padding::Valid),
        (Shape::new(4, 6, 2), 3, 3, Padding::Same),
    ] {
        let input: Vec<i8> = (0..in_shape.len()).map(|_| rng.i8()).collect();
        let real: Vec<f32> = input.iter().map(|&q| dequantize_i8(q, scale, zp)).collect();
        let (w, oh, ow) = Window::new(padding, in_shape, kernel, kernel, stride, stride).unwrap();
        let out_shape = Shape::new(oh, ow, in_shape.channels);
        for act in [Activation::None, Activation::Relu, Activation::Relu6] {
            let (lo, hi) = activation_range_i8(act, scale, zp);
            let mut want = vec![0f32; out_shape.len()];
            let mut got = vec![0i8; out_shape.len()];

            float::max_pool(&real, in_shape, &w, Activation::None, &mut want, out_shape).unwrap();
            kernels::max_pool(&input, in_shape, &w, lo, hi, &mut got, out_shape).unwrap();
            // Max pool involves no arithmetic: exact.
            for (g, r) in got.iter().zip(&want) {
                assert_eq!(*g, quantize_f32(act.apply(*r), scale, zp));
            }

            float::avg_pool(&real, in_shape, &w, Activation::None, &mut want, out_shape).unwrap();
            kernels::avg_pool(&input, in_shape, &w, lo, hi, &mut got, out_shape).unwrap();
            assert_within_one_step(&got, &want, scale, zp, act);
        }
    }
}
