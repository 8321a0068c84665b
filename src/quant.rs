//! TFLite's fixed-point quantization arithmetic, reproduced bit for bit.
//!
//! Everything here follows TFLite's default build (`TFLITE_SINGLE_ROUNDING` off): a real
//! multiplier is stored as a Q31 significand and a power-of-two shift, and applied with a
//! saturating rounding doubling high multiply followed by a rounding right shift. The two
//! roundings are part of the specification — collapsing them into one changes results.
//!
//! Where TFLite relies on undefined behaviour (signed overflow in a left shift or an `int32`
//! accumulator) these functions wrap, which is what the C++ compiles to on every target TFLite
//! runs on; none of them can panic.

use crate::float::Activation;

// Crate-visible for kernels with their own requantization loop: `rounded_high_mul` picks the
// build without a 64-bit multiply on Armv6-M.
pub(crate) mod high_mul;

/// gemmlowp's `SaturatingRoundingDoublingHighMul` (ARM `VQRDMULH`): `a · b / 2^31`, rounded.
///
/// The rounding is the one gemmlowp's scalar code does, which is *not* symmetric: a nudge of
/// `2^30` (or `1 − 2^30` for a negative product) is added and the quotient is truncated toward
/// zero, so exact halves go toward +∞ (`0.5 → 1`, `−0.5 → 0`). The only overflowing case,
/// `i32::MIN · i32::MIN`, saturates to `i32::MAX`.
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    // gemmlowp's `(ab + nudge) / 2^31`, truncated toward zero, is `⌊(ab + 2^30) / 2^31⌋` for
    // either sign of `ab` (for `ab < 0`, `⌈(ab + 1 − 2^30) / 2^31⌉` is that floor), which
    // needs no sign test and, without a 64-bit multiply, no 64-bit product at all.
    high_mul::rounded_high_mul(a, b)
}

/// gemmlowp's `RoundingDivideByPOT`: `x / 2^exponent`, rounded to nearest with ties away from
/// zero (`−1.5 → −2`, `1.5 → 2`, `−1.25 → −1`).
///
/// gemmlowp requires `0 ≤ exponent ≤ 31`. Outside that range this still returns the correctly
/// rounded quotient (a negative exponent is treated as 0) instead of TFLite's undefined
/// behaviour.
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent <= 0 {
        return x;
    }
    if exponent > 31 {
        // |x| ≤ 2^31 ≤ 2^(exponent−1): only i32::MIN / 2^32 = −0.5 does not round to 0.
        return if exponent == 32 && x == i32::MIN {
            -1
        } else {
            0
        };
    }
    // 1 ≤ exponent ≤ 31; a 32-bit mask (a 64-bit shift is a multi-instruction sequence on
    // 32-bit targets).
    let mask = (u32::MAX >> (32 - exponent)) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// `x · 2^shift` for `shift ≥ 0` in 32-bit arithmetic, wrapping on overflow as TFLite's
/// `x * (1 << shift)` does in practice.
#[inline]
fn wrapping_shift_left(x: i32, shift: i32) -> i32 {
    let factor = u32::try_from(shift)
        .ok()
        .and_then(|s| 1i32.checked_shl(s))
        .unwrap_or(0);
    x.wrapping_mul(factor)
}

/// TFLite's `MultiplyByQuantizedMultiplier` (double-rounding variant):
/// `x · multiplier · 2^shift / 2^31`.
///
/// A positive `shift` is applied as a left shift *before* the high multiply, a negative one as
/// a [`rounding_divide_by_pot`] *after* it. Results are only meaningful for the shifts
/// [`quantize_multiplier`] produces (`−31..=30` or so); larger left shifts overflow (wrapping).
#[inline]
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.max(0);
    let right = shift.checked_neg().unwrap_or(i32::MAX).max(0);
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(wrapping_shift_left(x, left), multiplier),
        right,
    )
}

/// TFLite's `MultiplyByQuantizedMultiplierGreaterThanOne`: `x · 2^left_shift` (wrapping), then
/// [`saturating_rounding_doubling_high_mul`] by `multiplier`. Used by the int8 softmax.
#[inline]
pub fn multiply_by_quantized_multiplier_greater_than_one(
    x: i32,
    multiplier: i32,
    left_shift: i32,
) -> i32 {
    saturating_rounding_doubling_high_mul(wrapping_shift_left(x, left_shift), multiplier)
}

/// TFLite's `QuantizeMultiplier`: splits a real multiplier into a Q31 significand in
/// `[2^30, 2^31)` (or its negative) and a power-of-two exponent, `real ≈ m · 2^shift / 2^31`.
///
/// Exactly as TFLite: `frexp`, then `round(q · 2^31)` with ties away from zero; a significand
/// that rounds up to `2^31` is halved and the shift incremented; a shift below −31 flushes to
/// `(0, 0)`, as does `0.0`. Non-finite inputs (on which TFLite has undefined behaviour) give
/// `(0, 0)`.
pub fn quantize_multiplier(real: f64) -> (i32, i32) {
    if real == 0.0 || !real.is_finite() {
        return (0, 0);
    }
    let (q, mut shift) = libm::frexp(real);
    // |q| ∈ [0.5, 1), so |q · 2^31| ≤ 2^31 and the conversion is exact.
    let mut q_fixed = libm::round(q * 2_147_483_648.0) as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        return (0, 0);
    }
    (q_fixed as i32, shift)
}

/// TFLite's `QuantizeMultiplierSmallerThanOneExp`: [`quantize_multiplier`] restricted to
/// `0 < real < 1`, so that the shift is `≤ 0`. `None` outside that range (where TFLite aborts).
pub fn quantize_multiplier_smaller_than_one_exp(real: f64) -> Option<(i32, i32)> {
    if !(real > 0.0 && real < 1.0) {
        return None;
    }
    let (m, shift) = quantize_multiplier(real);
    (shift <= 0).then_some((m, shift))
}

/// TFLite's `PreprocessSoftmaxScaling`: the multiplier that turns an input difference
/// `x − max` into a fixed-point number with `input_integer_bits` integer bits, already scaled
/// by `beta`.
///
/// `min(beta · input_scale · 2^(31 − input_integer_bits), 2^31 − 1)` in `f64`, then
/// [`quantize_multiplier`]. Returns `(multiplier, left_shift)`. TFLite additionally aborts when
/// the real multiplier is not above 1 (`QuantizeMultiplierGreaterThanOne`); callers check that
/// (see [`SoftmaxParams::new`](crate::kernels::SoftmaxParams::new)).
pub fn preprocess_softmax_scaling(
    beta: f64,
    input_scale: f64,
    input_integer_bits: i32,
) -> (i32, i32) {
    quantize_multiplier(softmax_real_multiplier(
        beta,
        input_scale,
        input_integer_bits,
    ))
}

/// The real multiplier [`preprocess_softmax_scaling`] quantizes:
/// `min(beta · input_scale · 2^(31 − input_integer_bits), 2^31 − 1)`.
pub fn softmax_real_multiplier(beta: f64, input_scale: f64, input_integer_bits: i32) -> f64 {
    let max_real_multiplier = 2_147_483_647.0;
    let real = beta * input_scale * libm::ldexp(1.0, 31 - input_integer_bits);
    // std::min(real, max) returns `real` when it is NaN; keep that rather than f64::min's
    // NaN-dropping behaviour.
    if real > max_real_multiplier {
        max_real_multiplier
    } else {
        real
    }
}

/// TFLite's `CalculateInputRadius` (float build): the largest input difference whose
/// rescaled value still fits, `floor((2^ib − 1) · 2^(tsb − ib) / 2^input_left_shift)`.
///
/// The int8 softmax uses `input_integer_bits = 5`, `total_signed_bits = 31` and
/// `diff_min = −radius`.
pub fn calculate_input_radius(
    input_integer_bits: i32,
    input_left_shift: i32,
    total_signed_bits: i32,
) -> i32 {
    let max_input_rescaled = (libm::ldexp(1.0, input_integer_bits) - 1.0)
        * libm::ldexp(1.0, total_signed_bits - input_integer_bits)
        / libm::ldexp(1.0, input_left_shift);
    // `as` saturates, so absurd arguments cannot wrap.
    libm::floor(max_input_rescaled) as i32
}

/// Quantizes a real value as TFLite does: `zero_point + round(x / scale)` (`f32` division,
/// ties away from zero), clamped to the int8 range. NaN maps to `zero_point`.
pub fn quantize_f32(x: f32, scale: f32, zero_point: i32) -> i8 {
    let q = libm::roundf(x / scale) as i32;
    clamp_i8(q.saturating_add(zero_point))
}

/// The real value of an int8 number: `(q − zero_point) · scale`, in `f32`.
pub fn dequantize_i8(q: i8, scale: f32, zero_point: i32) -> f32 {
    (i32::from(q) - zero_point) as f32 * scale
}

/// The effective multiplier of a convolution, depthwise convolution or *per-channel* fully
/// connected output channel, exactly as TFLite's Prepare computes it:
/// `QuantizeMultiplier((double)input_scale * (double)filter_scale / (double)output_scale)`.
///
/// Per-tensor convolutions and depthwise convolutions use the same expression (TFLite
/// broadcasts the single filter scale to every channel); per-tensor fully connected layers do
/// not — see [`fully_connected_per_tensor_multiplier`].
pub fn conv_multiplier(input_scale: f32, filter_scale: f32, output_scale: f32) -> (i32, i32) {
    quantize_multiplier(f64::from(input_scale) * f64::from(filter_scale) / f64::from(output_scale))
}

/// The effective multiplier of a *per-tensor* fully connected layer for the Q31 kernel
/// ([`fully_connected`](crate::kernels::fully_connected())), exactly as TFLite's Prepare
/// (`GetQuantizedConvolutionMultipler`, also in TFLite Micro) computes it: the product of the
/// input and filter scales is taken in `f32`, then divided in `f64`:
/// `QuantizeMultiplier((double)(input_scale * filter_scale) / (double)output_scale)`.
///
/// Current LiteRT's reference kernel ignores this multiplier and rescales in `f64` instead;
/// see [`fully_connected_effective_scale`].
pub fn fully_connected_per_tensor_multiplier(
    input_scale: f32,
    filter_scale: f32,
    output_scale: f32,
) -> (i32, i32) {
    quantize_multiplier(f64::from(input_scale * filter_scale) / f64::from(output_scale))
}

/// The effective scale of a fully connected output channel as current LiteRT's reference
/// kernel computes it at every invocation, for per-channel and per-tensor filters alike:
/// `(double)input_scale * (double)filter_scale / (double)output_scale`. Used by
/// [`fully_connected_float_requant`](crate::kernels::fully_connected_float_requant).
pub fn fully_connected_effective_scale(
    input_scale: f32,
    filter_scale: f32,
    output_scale: f32,
) -> f64 {
    f64::from(input_scale) * f64::from(filter_scale) / f64::from(output_scale)
}

/// The int8 clamp range of a fused activation, TFLite's `CalculateActivationRangeQuantized`:
/// the bounds `0` and `6` are quantized as `zero_point + (int)round(f / scale)` in `f32` and
/// intersected with `[−128, 127]`. Returns `(act_min, act_max)`.
///
/// The range can come out empty (`act_min > act_max`) for absurd scales; the kernels reject
/// that with [`Error::InvalidParameter`](crate::Error::InvalidParameter).
pub fn activation_range_i8(activation: Activation, scale: f32, zero_point: i32) -> (i8, i8) {
    let quantize = |f: f32| zero_point.saturating_add(libm::roundf(f / scale) as i32);
    let (lo, hi) = match activation {
        Activation::None => (i32::from(i8::MIN), i32::from(i8::MAX)),
        Activation::Relu => (quantize(0.0).max(i32::from(i8::MIN)), i32::from(i8::MAX)),
        Activation::Relu6 => (
            quantize(0.0).max(i32::from(i8::MIN)),
            quantize(6.0).min(i32::from(i8::MAX)),
        ),
    };
    (clamp_i8(lo), clamp_i8(hi))
}

/// Clamps an `i32` into the int8 range.
#[inline]
pub(crate) fn clamp_i8(x: i32) -> i8 {
    x.clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_divide_matches_round_half_away_for_all_small_values() {
        for exponent in 1..=6 {
            let d = f64::from(1 << exponent);
            for x in -300..=300 {
                let want = libm::round(f64::from(x) / d) as i32;
                assert_eq!(
                    rounding_divide_by_pot(x, exponent),
                    want,
                    "{x} >> {exponent}"
                );
            }
        }
    }

    #[test]
    fn rounding_divide_extremes() {
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 32), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 40), 0);
        assert_eq!(rounding_divide_by_pot(7, -3), 7);
    }

    #[test]
    fn no_panic_on_absurd_shifts() {
        for shift in [-1000, -64, -33, -32, 31, 32, 33, 1000, i32::MIN, i32::MAX] {
            let _ = multiply_by_quantized_multiplier(i32::MIN, i32::MIN, shift);
            let _ = multiply_by_quantized_multiplier_greater_than_one(-7, i32::MAX, shift);
            let _ = calculate_input_radius(shift, shift, shift);
        }
    }
}
