//! ADD, MEAN, PAD, CONCATENATION, QUANTIZE and DEQUANTIZE on hand-worked examples: every
//! expected value is derived in the comments from TFLite's formulas.

use fixnet::float::Activation;
use fixnet::kernels::{self, AddParams, MeanParams, RequantizeParams};
use fixnet::{Error, Shape};

// ---------------------------------------------------------------- add

/// All scales 1, zero points 0: `twice_max = 2`, each input multiplier is 0.5 = (2^30, 0) and
/// the output multiplier `2 / 2^20 = 2^−19` = (2^30, −18), so `x·2^20 → x·2^19`, the sum
/// `(x+y)·2^19 → (x+y)·2^18 → x+y` exactly: plain integer addition, clamped.
fn unit_add() -> AddParams {
    AddParams::new((1.0, 0), (1.0, 0), (1.0, 0), Activation::None).unwrap()
}

#[test]
fn add_params_follow_tflite_prepare() {
    let p = unit_add();
    assert_eq!((p.input1_multiplier, p.input1_shift), (1 << 30, 0));
    assert_eq!((p.input2_multiplier, p.input2_shift), (1 << 30, 0));
    assert_eq!((p.output_multiplier, p.output_shift), (1 << 30, -18));
    assert_eq!(p.left_shift, 20);

    // s1 = 0.5, s2 = 0.25, s_out = 1: twice_max = 1, so 0.5 = (2^30, 0), 0.25 = (2^30, −1),
    // and the output multiplier 1 / 2^20 = (2^30, −19). Offsets are −zp1, −zp2, +zp_out.
    let p = AddParams::new((0.5, 3), (0.25, -7), (1.0, 9), Activation::None).unwrap();
    assert_eq!((p.input1_multiplier, p.input1_shift), (1 << 30, 0));
    assert_eq!((p.input2_multiplier, p.input2_shift), (1 << 30, -1));
    assert_eq!((p.output_multiplier, p.output_shift), (1 << 30, -19));
    assert_eq!(
        (p.input1_offset, p.input2_offset, p.output_offset),
        (-3, 7, 9)
    );
    assert_eq!((p.act_min, p.act_max), (-128, 127));

    // ReLU6 at scale 0.05, zp −100: [−100 + round(0/0.05), −100 + round(6/0.05)] = [−100, 20].
    let p = AddParams::new((0.5, 0), (0.5, 0), (0.05, -100), Activation::Relu6).unwrap();
    assert_eq!((p.act_min, p.act_max), (-100, 20));
}

#[test]
fn add_rounds_half_away_from_zero() {
    // s1 = s2 = 0.5, s_out = 1 (multipliers (2^30, 0) twice and (2^30, −19)):
    //   3, 4  → 3·2^19 + 4·2^19 = 7·2^19 → SRDHM 7·2^18 → /2^19 = 3.5 → 4   (1.5 + 2 = 3.5)
    //  −3, −4 → −7·2^18 → −3.5 → −4
    //   3, −4 → −2^18 → −0.5 → −1
    //   1, 0  → 2^18 → 0.5 → 1
    let p = AddParams::new((0.5, 0), (0.5, 0), (1.0, 0), Activation::None).unwrap();
    let mut out = [0i8; 4];
    kernels::add(&[3, -3, 3, 1], &[4, -4, -4, 0], &p, &mut out).unwrap();
    assert_eq!(out, [4, -4, -1, 1]);
}

#[test]
fn add_zero_points_and_activation_clamp() {
    // s1 = s2 = 0.5, zp1 = 10, zp2 = −20, s_out = 1, zp_out = 5:
    //   13, −16 → (3 + 4)·0.5 = 3.5 → 4 → +5 = 9
    //   10, −20 → 0 → 5
    //    0, −40 → (−10 − 20)·0.5 = −15 → −10, clamped by ReLU at zp_out = 5 → 5
    //  127, 127 → (117 + 147)·0.5 = 132 → 137 → 127
    let p = AddParams::new((0.5, 10), (0.5, -20), (1.0, 5), Activation::Relu).unwrap();
    assert_eq!((p.act_min, p.act_max), (5, 127));
    let mut out = [0i8; 4];
    kernels::add(&[13, 10, 0, 127], &[-16, -20, -40, 127], &p, &mut out).unwrap();
    assert_eq!(out, [9, 5, 5, 127]);
}

#[test]
fn add_broadcasts_nhwc() {
    let p = unit_add();
    // a is 1×2×2×2 holding 0..8 in NHWC order.
    let a: Vec<i8> = (0..8).collect();
    let mut out = [0i8; 8];
    // Per-channel vector [10, 20]: every pixel gets +10 on channel 0, +20 on channel 1.
    kernels::broadcast_add(
        &a,
        &[1, 2, 2, 2],
        &[10, 20],
        &[1, 1, 1, 2],
        &p,
        &mut out,
        &[1, 2, 2, 2],
    )
    .unwrap();
    assert_eq!(out, [10, 21, 12, 23, 14, 25, 16, 27]);
    // Per-row [50, −50] (1×2×1×1): row 0 +50, row 1 −50.
    kernels::broadcast_add(
        &a,
        &[1, 2, 2, 2],
        &[50, -50],
        &[1, 2, 1, 1],
        &p,
        &mut out,
        &[1, 2, 2, 2],
    )
    .unwrap();
    assert_eq!(out, [50, 51, 52, 53, -46, -45, -44, -43]);
    // Scalar −1 as the first operand.
    kernels::broadcast_add(
        &[-1],
        &[1, 1, 1, 1],
        &a,
        &[1, 2, 2, 2],
        &p,
        &mut out,
        &[1, 2, 2, 2],
    )
    .unwrap();
    assert_eq!(out, [-1, 0, 1, 2, 3, 4, 5, 6]);
    // Both broadcast: a column 1×2×1×1 [0, 100] plus a row 1×1×3×1 [1, 2, 3] → 1×2×3×1.
    let mut out = [0i8; 6];
    kernels::broadcast_add(
        &[0, 100],
        &[1, 2, 1, 1],
        &[1, 2, 3],
        &[1, 1, 3, 1],
        &p,
        &mut out,
        &[1, 2, 3, 1],
    )
    .unwrap();
    assert_eq!(out, [1, 2, 3, 101, 102, 103]);
}

#[test]
fn add_rejects_bad_shapes_and_quantization() {
    let p = unit_add();
    let mut out = [0i8; 4];
    assert_eq!(
        kernels::add(&[1, 2, 3], &[1, 2, 3, 4], &p, &mut out),
        Err(Error::ShapeMismatch)
    );
    // Channels 3 against 2 do not broadcast.
    let r = kernels::broadcast_add(
        &[0; 4],
        &[1, 1, 2, 2],
        &[0; 3],
        &[1, 1, 1, 3],
        &p,
        &mut out,
        &[1, 1, 2, 2],
    );
    assert_eq!(r, Err(Error::ShapeMismatch));
    // Output shape other than the broadcast shape.
    let mut big = [0i8; 8];
    let r = kernels::broadcast_add(
        &[0; 4],
        &[1, 1, 2, 2],
        &[0; 2],
        &[1, 1, 1, 2],
        &p,
        &mut big,
        &[1, 2, 2, 2],
    );
    assert_eq!(r, Err(Error::ShapeMismatch));
    // A length that disagrees with its shape.
    let r = kernels::broadcast_add(
        &[0; 3],
        &[1, 1, 2, 2],
        &[0; 2],
        &[1, 1, 1, 2],
        &p,
        &mut out,
        &[1, 1, 2, 2],
    );
    assert_eq!(r, Err(Error::ShapeMismatch));

    let bad = |a, b, o| AddParams::new(a, b, o, Activation::None);
    assert_eq!(
        bad((0.0, 0), (1.0, 0), (1.0, 0)),
        Err(Error::BadQuantization)
    );
    assert_eq!(
        bad((1.0, 0), (f32::NAN, 0), (1.0, 0)),
        Err(Error::BadQuantization)
    );
    assert_eq!(
        bad((1.0, 200), (1.0, 0), (1.0, 0)),
        Err(Error::BadQuantization)
    );
    // Output multiplier 2 / (2^20 · 1e−9) ≥ 1: TFLite's QuantizeMultiplierSmallerThanOneExp
    // aborts.
    assert_eq!(
        bad((1.0, 0), (1.0, 0), (1e-9, 0)),
        Err(Error::InvalidParameter)
    );
    // An empty clamp range is refused by the kernel too.
    let mut q = unit_add();
    q.act_min = 5;
    q.act_max = 4;
    assert_eq!(
        kernels::add(&[0], &[0], &q, &mut out[..1]),
        Err(Error::InvalidParameter)
    );
}

// ---------------------------------------------------------------- mean

#[test]
fn mean_params_fold_the_count_into_the_multiplier() {
    // s_in = s_out: QuantizeMultiplier(1.0) = (2^30, 1). n = 4: k = floor(log2 4) = 2,
    // m' = 2^30 · 4 / 4 = 2^30, e' = 1 − 2 = −1 (i.e. ×1/4 with a Q31 0.5).
    let p = MeanParams::new((0.1, 3), (0.1, -2), 4).unwrap();
    assert_eq!((p.multiplier, p.shift, p.count), (1 << 30, -1, 4));
    // n = 3: k = 1, m' = floor(2^31 / 3) = 715827882, e' = 0.
    let p = MeanParams::new((0.1, 3), (0.1, -2), 3).unwrap();
    assert_eq!((p.multiplier, p.shift), (715_827_882, 0));
    // s_in / s_out = 2 = (2^30, 2); n = 4: m' = 2^30, e' = 0.
    let p = MeanParams::new((0.5, 0), (0.25, 0), 4).unwrap();
    assert_eq!((p.multiplier, p.shift), (1 << 30, 0));
    // n = 1: k = 0, the multiplier is unchanged.
    let p = MeanParams::new((0.5, 0), (0.25, 0), 1).unwrap();
    assert_eq!((p.multiplier, p.shift), (1 << 30, 2));
}

#[test]
fn mean_rounds_twice_like_tflite() {
    // Equal scales, zero points 0, 2×2 pixels, one channel each: out = MBQM(sum, 2^30, −1),
    // i.e. SRDHM(sum, 2^30) = sum/2 rounded (ties toward +∞), then a rounding halving (ties
    // away from zero).
    //   sum  6 → 3 → 1.5 → 2     (mean 1.5)
    //   sum  5 → 2.5 → 3 → 1.5 → 2   (mean 1.25: the double rounding gives 2, not 1)
    //   sum −5 → −2.5 → −2 → −1 (mean −1.25)
    //   sum −6 → −3 → −1.5 → −2 (mean −1.5)
    let p = MeanParams::new((1.0, 0), (1.0, 0), 4).unwrap();
    for (pixels, want) in [
        ([1, 2, 1, 2], 2),
        ([1, 2, 1, 1], 2),
        ([-1, -2, -1, -1], -1),
        ([-1, -2, -1, -2], -2),
    ] {
        let mut out = [0i8; 1];
        kernels::mean_hw(&pixels, Shape::new(2, 2, 1), &p, &mut out).unwrap();
        assert_eq!(out[0], want, "{pixels:?}");
    }
}

#[test]
fn mean_channels_zero_points_and_scales() {
    // 2×2×2 input, channel 0 = [10, 12, 14, 16], channel 1 = [−128; 4]; zp_in = 10,
    // s_in / s_out = 2 (m' = 2^30, e' = 0: out = SRDHM(x, 2^30) = x/2 rounded), zp_out = −5.
    //   c0: sum 52 − 10·4 = 12 → 6 → 1     (mean 3 in input steps = 6 output steps)
    //   c1: sum −512 − 40 = −552 → −276 → −281 → clamped to −128
    let p = MeanParams::new((0.5, 10), (0.25, -5), 4).unwrap();
    let input = [10, -128, 12, -128, 14, -128, 16, -128];
    let mut out = [0i8; 2];
    kernels::mean_hw(&input, Shape::new(2, 2, 2), &p, &mut out).unwrap();
    assert_eq!(out, [1, -128]);
}

#[test]
fn mean_rejects_bad_arguments() {
    let p = MeanParams::new((1.0, 0), (1.0, 0), 4).unwrap();
    let mut out = [0i8; 2];
    // Count 4 against a 1×2 input.
    assert_eq!(
        kernels::mean_hw(&[0; 4], Shape::new(1, 2, 2), &p, &mut out),
        Err(Error::InvalidParameter)
    );
    // Output not one value per channel; input not its shape.
    assert_eq!(
        kernels::mean_hw(&[0; 4], Shape::new(2, 2, 1), &p, &mut out),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        kernels::mean_hw(&[0; 7], Shape::new(2, 2, 2), &p, &mut out),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        MeanParams::new((1.0, 0), (1.0, 0), 0),
        Err(Error::InvalidParameter)
    );
    assert_eq!(
        MeanParams::new((1.0, 0), (-1.0, 0), 4),
        Err(Error::BadQuantization)
    );
    assert_eq!(
        MeanParams::new((1.0, -129), (1.0, 0), 4),
        Err(Error::BadQuantization)
    );
}

// ---------------------------------------------------------------- pad

#[test]
fn pad_fills_the_border_with_the_pad_value() {
    // 1×2×2×1 [[1, 2], [3, 4]] padded by one row above, one column left and right, with the
    // output zero point −7: a 1×3×4×1 output
    //   −7 −7 −7 −7
    //   −7  1  2 −7
    //   −7  3  4 −7
    let paddings = [[0, 0], [1, 0], [1, 1], [0, 0]];
    assert_eq!(
        kernels::padded_dims(&[1, 2, 2, 1], &paddings),
        Some([1, 3, 4, 1])
    );
    let mut out = [0i8; 12];
    kernels::pad(
        &[1, 2, 3, 4],
        &[1, 2, 2, 1],
        &paddings,
        -7,
        &mut out,
        &[1, 3, 4, 1],
    )
    .unwrap();
    assert_eq!(out, [-7, -7, -7, -7, -7, 1, 2, -7, -7, 3, 4, -7]);
}

#[test]
fn pad_channels_and_batch() {
    // 1×1×1×2 [5, 6] padded by one channel before and after and one batch after:
    // batch 0 = [0, 5, 6, 0], batch 1 = all padding.
    let paddings = [[0, 1], [0, 0], [0, 0], [1, 1]];
    let mut out = [9i8; 8];
    kernels::pad(
        &[5, 6],
        &[1, 1, 1, 2],
        &paddings,
        0,
        &mut out,
        &[2, 1, 1, 4],
    )
    .unwrap();
    assert_eq!(out, [0, 5, 6, 0, 0, 0, 0, 0]);
    // Wrong output shape, wrong input length.
    assert_eq!(
        kernels::pad(
            &[5, 6],
            &[1, 1, 1, 2],
            &paddings,
            0,
            &mut out,
            &[1, 2, 1, 4]
        ),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        kernels::pad(&[5], &[1, 1, 1, 2], &paddings, 0, &mut out, &[2, 1, 1, 4]),
        Err(Error::ShapeMismatch)
    );
}

// ---------------------------------------------------------------- concatenation

#[test]
fn concatenation_along_each_axis() {
    // a = 1×2×1×2 [[a0 a1], [a2 a3]] (rows of one pixel), b = 1×2×1×1 [[b0], [b1]].
    // Along channels (axis 3): each pixel's channels of a, then of b: a0 a1 b0 a2 a3 b1.
    let (a, b) = ([1i8, 2, 3, 4], [-1i8, -2]);
    let mut out = [0i8; 6];
    kernels::concatenation(
        &[&a, &b],
        &[[1, 2, 1, 2], [1, 2, 1, 1]],
        3,
        &mut out,
        &[1, 2, 1, 3],
    )
    .unwrap();
    assert_eq!(out, [1, 2, -1, 3, 4, -2]);
    // Along height (axis 1) with c = 1×1×1×2 [c0 c1]: all of a, then c.
    let c = [7i8, 8];
    kernels::concatenation(
        &[&a, &c],
        &[[1, 2, 1, 2], [1, 1, 1, 2]],
        1,
        &mut out,
        &[1, 3, 1, 2],
    )
    .unwrap();
    assert_eq!(out, [1, 2, 3, 4, 7, 8]);
    // Along width (axis 2) of a 1×2×1×2 and a 1×2×2×2: per row, a's pixel then d's two.
    let d = [10i8, 11, 12, 13, 14, 15, 16, 17];
    let mut out = [0i8; 12];
    kernels::concatenation(
        &[&a, &d],
        &[[1, 2, 1, 2], [1, 2, 2, 2]],
        2,
        &mut out,
        &[1, 2, 3, 2],
    )
    .unwrap();
    assert_eq!(out, [1, 2, 10, 11, 12, 13, 3, 4, 14, 15, 16, 17]);
}

#[test]
fn concatenation_rejects_mismatches_and_rescaling() {
    let mut out = [0i8; 6];
    // Heights 2 and 1 differ off the concatenation axis.
    let r = kernels::concatenation(
        &[&[0i8; 4][..], &[0; 2]],
        &[[1, 2, 1, 2], [1, 1, 1, 2]],
        3,
        &mut out,
        &[1, 2, 1, 3],
    );
    assert_eq!(r, Err(Error::ShapeMismatch));
    // Extents along the axis (2 + 1) against an output of 4 channels.
    let mut out8 = [0i8; 8];
    let r = kernels::concatenation(
        &[&[0i8; 4][..], &[0; 2]],
        &[[1, 2, 1, 2], [1, 2, 1, 1]],
        3,
        &mut out8,
        &[1, 2, 1, 4],
    );
    assert_eq!(r, Err(Error::ShapeMismatch));
    let r = kernels::concatenation::<i8>(&[], &[], 3, &mut out, &[1, 2, 1, 3]);
    assert_eq!(r, Err(Error::InvalidParameter));
    let r = kernels::concatenation(
        &[&[0i8; 6][..]],
        &[[1, 2, 1, 3]],
        4,
        &mut out,
        &[1, 2, 1, 3],
    );
    assert_eq!(r, Err(Error::InvalidParameter));
    // LiteRT's int8 Prepare: every input quantized exactly like the output.
    assert_eq!(
        kernels::check_concatenation_quantization(&[(0.5, 3), (0.5, 3)], (0.5, 3)),
        Ok(())
    );
    assert_eq!(
        kernels::check_concatenation_quantization(&[(0.5, 3), (0.5, 4)], (0.5, 3)),
        Err(Error::BadQuantization)
    );
    assert_eq!(
        kernels::check_concatenation_quantization(&[(0.25, 3)], (0.5, 3)),
        Err(Error::BadQuantization)
    );
}

// ---------------------------------------------------------------- quantize / dequantize

#[test]
fn quantize_rounds_half_away_and_clamps() {
    // scale 0.5, zp −10: x / 0.5 = 2x, exactly representable here.
    //   0.25 → 0.5 → 1 → −9;  −0.25 → −0.5 → −1 → −11;  0.74 → 1.48 → 1 → −9
    //   100 → 200 → 190 → 127;  −100 → −200 → −210 → −128;  NaN → 0 → −10
    let mut out = [0i8; 6];
    kernels::quantize(
        &[0.25, -0.25, 0.74, 100.0, -100.0, f32::NAN],
        0.5,
        -10,
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [-9, -11, -9, 127, -128, -10]);
    assert_eq!(
        kernels::quantize(&[0.0], 0.0, 0, &mut out[..1]),
        Err(Error::BadQuantization)
    );
    assert_eq!(
        kernels::quantize(&[0.0], 1.0, 0, &mut out),
        Err(Error::ShapeMismatch)
    );
}

#[test]
fn quantize_divides_in_f32() {
    // A value half a step from a rounding boundary, 0.25 at scale 0.1 (zero point 0):
    //   f32: 0.25 / 0.100000001490116 = 2.4999999627… rounds to the f32 2.5 → 3
    //   f64: 2.4999999627470975 → 2
    // LiteRT's QUANTIZE gives the f32 answer (the near-half fixtures of ops_litert_a).
    let mut out = [0i8; 1];
    kernels::quantize(&[0.25], 0.1, 0, &mut out).unwrap();
    assert_eq!(out, [3]);
}

#[test]
fn dequantize_is_scale_times_offset_value() {
    // scale 0.25, zp 4: (q − 4) / 4.
    let mut out = [0f32; 4];
    kernels::dequantize(&[4, 5, 0, -128], 0.25, 4, &mut out).unwrap();
    assert_eq!(out, [0.0, 0.25, -1.0, -33.0]);
}

#[test]
fn requantize_rescales_between_zero_points() {
    // s_in / s_out = 0.5 = (2^30, 0): out = SRDHM(q − zp_in, 2^30) + zp_out = (q − zp_in)/2
    // rounded with ties toward +∞, plus zp_out.
    //   zp_in 1, zp_out −3:  q 5 → 4 → 2 → −1;  q 4 → 3 → 1.5 → 2 → −1;
    //   q −2 → −3 → −1.5 → −1 → −4
    //   q −128 → −129 → −64.5 → −64 → −67;  q 127 → 126 → 63 → 60
    let p = RequantizeParams::new((0.5, 1), (1.0, -3)).unwrap();
    assert_eq!((p.multiplier, p.shift), (1 << 30, 0));
    let mut out = [0i8; 5];
    kernels::requantize(&[5, 4, -2, -128, 127], &p, &mut out).unwrap();
    assert_eq!(out, [-1, -1, -4, -67, 60]);
    // s_in / s_out = 4 = (2^30, 3): a gain of 4 saturates: (127 − 0)·4 → 127.
    let p = RequantizeParams::new((1.0, 0), (0.25, 0)).unwrap();
    kernels::requantize(&[1, -1, 40, -40, 127], &p, &mut out).unwrap();
    assert_eq!(out, [4, -4, 127, -128, 127]);
}
