//! ADD, MEAN, PAD, CONCATENATION, QUANTIZE and DEQUANTIZE on hand-worked examples: every
//! expected value is derived in the comments from TFLite's formulas.

use fixnet::float::Activation;
use fixnet::kernels::{self, AddParams, MeanParams};
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
