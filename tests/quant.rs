//! Worked examples of TFLite's fixed-point arithmetic, each computed by hand in the comments.

use fixnet::float::Activation;
use fixnet::kernels::SoftmaxParams;
use fixnet::quant::*;

const HALF: i32 = 1 << 30; // 0.5 in Q31

#[test]
fn srdhm_worked_examples() {
    // 0.5 · 0.5 = 0.25 = 2^29 in Q31, exact.
    assert_eq!(saturating_rounding_doubling_high_mul(HALF, HALF), 1 << 29);
    // 3 · 0.5 = 1.5: (3·2^30 + 2^30) / 2^31 = 2 (ties go up).
    assert_eq!(saturating_rounding_doubling_high_mul(3, HALF), 2);
    // 1 · 0.5 = 0.5: (2^30 + 2^30) / 2^31 = 1.
    assert_eq!(saturating_rounding_doubling_high_mul(1, HALF), 1);
    // −1 · 0.5 = −0.5: (−2^30 + 1 − 2^30) / 2^31 = −0.99…, truncated to 0. gemmlowp's nudge
    // makes ties go toward +∞, not away from zero.
    assert_eq!(saturating_rounding_doubling_high_mul(-1, HALF), 0);
    // −3 · 0.5 = −1.5: (−3·2^30 + 1 − 2^30) / 2^31 = (−2^32 + 1) / 2^31 → −1 (not −2).
    assert_eq!(saturating_rounding_doubling_high_mul(-3, HALF), -1);
    // −5 · 0.5 = −2.5 → −2.
    assert_eq!(saturating_rounding_doubling_high_mul(-5, HALF), -2);
    // (−1) · (−1) = 1 is not representable in Q31: the one saturating case.
    assert_eq!(
        saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
        i32::MAX
    );
    // (−1) · (1 − 2^−31) = −(2^31 − 1) exactly.
    assert_eq!(
        saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX),
        -i32::MAX
    );
    // 1000 · 0.75 = 750, exact.
    assert_eq!(saturating_rounding_doubling_high_mul(1000, 3 << 29), 750);
}

#[test]
fn rounding_divide_by_pot_rounds_ties_away_from_zero() {
    assert_eq!(rounding_divide_by_pot(5, 1), 3); // 2.5 → 3
    assert_eq!(rounding_divide_by_pot(-5, 1), -3); // −2.5 → −3
    assert_eq!(rounding_divide_by_pot(-3, 1), -2); // −1.5 → −2
    assert_eq!(rounding_divide_by_pot(-5, 2), -1); // −1.25 → −1
    assert_eq!(rounding_divide_by_pot(-6, 2), -2); // −1.5 → −2
    assert_eq!(rounding_divide_by_pot(-7, 2), -2); // −1.75 → −2
    assert_eq!(rounding_divide_by_pot(6, 2), 2); // 1.5 → 2
    assert_eq!(rounding_divide_by_pot(-1, 1), -1); // −0.5 → −1
    assert_eq!(rounding_divide_by_pot(1, 1), 1); // 0.5 → 1
    assert_eq!(rounding_divide_by_pot(-1, 2), 0); // −0.25 → 0
    assert_eq!(rounding_divide_by_pot(12345, 0), 12345);
    // −2^31 / 2^31 = −1 exactly; (2^31 − 1) / 2^31 rounds to 1.
    assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
    assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
    // 2^30 / 2^31 = 0.5 → 1; −2^30 / 2^31 = −0.5 → −1.
    assert_eq!(rounding_divide_by_pot(1 << 30, 31), 1);
    assert_eq!(rounding_divide_by_pot(-(1 << 30), 31), -1);
}

#[test]
fn multiply_by_quantized_multiplier_worked_examples() {
    // 100 · 0.5 = 50.
    assert_eq!(multiply_by_quantized_multiplier(100, HALF, 0), 50);
    // 100 · 0.5 · 2^2 = 200: the left shift happens before the high multiply.
    assert_eq!(multiply_by_quantized_multiplier(100, HALF, 2), 200);
    // 100 · 0.5 · 2^−3 = 6.25 → 6.
    assert_eq!(multiply_by_quantized_multiplier(100, HALF, -3), 6);
    // −100 · 0.5 · 2^−3 = −6.25 → −6; −12 · 0.5 / 4 = −1.5 → −2 (away from zero).
    assert_eq!(multiply_by_quantized_multiplier(-100, HALF, -3), -6);
    assert_eq!(multiply_by_quantized_multiplier(-12, HALF, -2), -2);
    // Double rounding: 5 · 0.5 · 2^−1 = 1.25 exactly, but SRDHM(5, 0.5) = 2.5 → 3 first,
    // then 3 / 2 = 1.5 → 2. TFLite's default (non-single-rounding) build gives 2, not 1.
    assert_eq!(multiply_by_quantized_multiplier(5, HALF, -1), 2);
    // 3 · 0.5 / 2 = 0.75: SRDHM 1.5 → 2, 2/2 = 1.
    assert_eq!(multiply_by_quantized_multiplier(3, HALF, -1), 1);
    // The greater-than-one variant: (−3 · 2^2) · 0.5 = −6.
    assert_eq!(
        multiply_by_quantized_multiplier_greater_than_one(-3, HALF, 2),
        -6
    );
}

#[test]
fn quantize_multiplier_known_values() {
    // 0 is special-cased to (0, 0).
    assert_eq!(quantize_multiplier(0.0), (0, 0));
    // frexp(0.5) = 0.5 · 2^0 → significand 0.5 · 2^31 = 2^30, shift 0.
    assert_eq!(quantize_multiplier(0.5), (1 << 30, 0));
    // frexp(1.0) = 0.5 · 2^1 → (2^30, 1).
    assert_eq!(quantize_multiplier(1.0), (1 << 30, 1));
    // frexp(0.75) = 0.75 · 2^0 → 0.75 · 2^31 = 1610612736.
    assert_eq!(quantize_multiplier(0.75), (1_610_612_736, 0));
    // frexp(0.1) = 0.8 · 2^−3; 0.8 · 2^31 = 1717986918.4 → 1717986918.
    assert_eq!(quantize_multiplier(0.1), (1_717_986_918, -3));
    // frexp(3.0) = 0.75 · 2^2.
    assert_eq!(quantize_multiplier(3.0), (1_610_612_736, 2));
    // A significand that rounds up to 2^31: 1 − 2^−40 = (1 − 2^−40) · 2^0, and
    // (1 − 2^−40) · 2^31 = 2^31 − 2^−9 rounds to 2^31 → halved to 2^30, shift 0 + 1.
    assert_eq!(quantize_multiplier(1.0 - 2f64.powi(-40)), (1 << 30, 1));
    // Ties in round(q · 2^31) go away from zero: q = 0.5 + 2^−32 gives 2^30 + 0.5 → 2^30 + 1.
    assert_eq!(
        quantize_multiplier(0.5 + 2f64.powi(-32)),
        ((1 << 30) + 1, 0)
    );
    // 2^−32 = 0.5 · 2^−31 is the smallest kept; 2^−33 has shift −32 < −31 → (0, 0).
    assert_eq!(quantize_multiplier(2f64.powi(-32)), (1 << 30, -31));
    assert_eq!(quantize_multiplier(2f64.powi(-33)), (0, 0));
    // Negative multipliers keep their sign in the significand (double-rounding build).
    assert_eq!(quantize_multiplier(-0.75), (-1_610_612_736, 0));
    // Non-finite values are rejected as (0, 0) instead of TFLite's undefined behaviour.
    assert_eq!(quantize_multiplier(f64::NAN), (0, 0));
    assert_eq!(quantize_multiplier(f64::INFINITY), (0, 0));
    // Round trip: m · 2^shift / 2^31 is within 2^−31 relative of the real multiplier.
    for &real in &[0.000_123_4, 0.003_921_568_6, 0.0625, 0.999_999, 1.5, 37.25] {
        let (m, shift) = quantize_multiplier(real);
        assert!((1 << 30..=i32::MAX).contains(&m));
        let back = f64::from(m) * 2f64.powi(shift - 31);
        assert!((back - real).abs() <= real * 2f64.powi(-31), "{real}");
    }
    assert_eq!(
        quantize_multiplier_smaller_than_one_exp(0.75),
        Some((1_610_612_736, 0))
    );
    assert_eq!(quantize_multiplier_smaller_than_one_exp(1.0), None);
}

#[test]
fn effective_multipliers_follow_tflite_precision() {
    // Conv / depthwise / per-channel FC: product and quotient in f64.
    let (in_s, w_s, out_s) = (0.1f32, 0.3f32, 0.7f32);
    let conv = quantize_multiplier(f64::from(in_s) * f64::from(w_s) / f64::from(out_s));
    assert_eq!(conv_multiplier(in_s, w_s, out_s), conv);
    // Per-tensor FC: the product is rounded to f32 first.
    let fc = quantize_multiplier(f64::from(in_s * w_s) / f64::from(out_s));
    assert_eq!(fully_connected_per_tensor_multiplier(in_s, w_s, out_s), fc);
    // With these scales the two roundings really do differ in the last bit.
    assert_ne!(f64::from(in_s * w_s), f64::from(in_s) * f64::from(w_s));
}

#[test]
fn softmax_scaling_worked_example() {
    // beta = 1, input scale 1/256: real = 2^−8 · 2^26 = 2^18 = 0.5 · 2^19 → (2^30, 19).
    assert_eq!(
        preprocess_softmax_scaling(1.0, 1.0 / 256.0, 5),
        (1 << 30, 19)
    );
    // Radius: (2^5 − 1) · 2^26 / 2^19 = 31 · 128 = 3968.
    assert_eq!(calculate_input_radius(5, 19, 31), 3968);
    // Left shift 23: 31 · 2^26 / 2^23 = 248.
    assert_eq!(calculate_input_radius(5, 23, 31), 248);
    // Left shift 30: 31 · 2^26 / 2^30 = 1.9375 → floor 1.
    assert_eq!(calculate_input_radius(5, 30, 31), 1);
    let p = SoftmaxParams::new(1.0, 1.0 / 256.0).unwrap();
    assert_eq!(
        p,
        SoftmaxParams {
            input_multiplier: 1 << 30,
            input_left_shift: 19,
            diff_min: -3968
        }
    );
    // A huge beta·scale is capped at 2^31 − 1 = (2^31 − 1)/2^31 · 2^31 → shift 31, radius 0.
    let p = SoftmaxParams::new(1.0e6, 1.0e3).unwrap();
    assert_eq!(
        (p.input_multiplier, p.input_left_shift, p.diff_min),
        (i32::MAX, 31, 0)
    );
    // beta · scale · 2^26 ≤ 1 makes TFLite abort; we refuse.
    assert!(SoftmaxParams::new(1.0, 1.0 / 67_108_864.0).is_err());
    assert!(SoftmaxParams::new(f32::NAN, 0.1).is_err());
    assert!(SoftmaxParams::new(-1.0, 0.1).is_err());
}

#[test]
fn quantize_and_dequantize() {
    // 0.25 / 0.5 = 0.5 → ties away from zero → 1, + zero point 3 = 4.
    assert_eq!(quantize_f32(0.25, 0.5, 3), 4);
    // −0.25 / 0.5 = −0.5 → −1, + 3 = 2.
    assert_eq!(quantize_f32(-0.25, 0.5, 3), 2);
    // Clamps.
    assert_eq!(quantize_f32(1000.0, 0.5, 0), 127);
    assert_eq!(quantize_f32(-1000.0, 0.5, -128), -128);
    assert_eq!(quantize_f32(f32::NAN, 0.5, 7), 7);
    assert_eq!(dequantize_i8(-128, 0.5, -128), 0.0);
    assert_eq!(dequantize_i8(10, 0.25, 2), 2.0);
}

#[test]
fn activation_ranges() {
    // Scale 0.05, zero point −20: 0 → −20; 6 / 0.05 = 120 → 100.
    assert_eq!(
        activation_range_i8(Activation::None, 0.05, -20),
        (-128, 127)
    );
    assert_eq!(activation_range_i8(Activation::Relu, 0.05, -20), (-20, 127));
    assert_eq!(
        activation_range_i8(Activation::Relu6, 0.05, -20),
        (-20, 100)
    );
    // Scale 6/255, zero point −128: ReLU6 covers the whole range.
    assert_eq!(
        activation_range_i8(Activation::Relu6, 6.0 / 255.0, -128),
        (-128, 127)
    );
}
