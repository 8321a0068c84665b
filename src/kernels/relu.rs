//! Stand-alone int8 RELU, RELU6, RELU_N1_TO_1 and LEAKY_RELU layers, bit-exact with the
//! kernels LiteRT's `BUILTIN_REF` resolver runs (`ReluX` and `reference_ops::QuantizeLeakyRelu`).
//!
//! Unlike a fused activation, a separate activation layer has its own output quantization
//! (calibrated on the clipped range), so the int8 kernels requantize: each input is
//! offset by its zero point, rescaled by `input_scale / output_scale` with a Q31 multiplier,
//! offset by the output zero point and clamped.

use crate::quant::{multiply_by_quantized_multiplier, quantize_multiplier};
use crate::Error;

/// The int8 range of a clamp to `[min, max]` in an output with `scale` and `zero_point`, as
/// TFLite computes it (`QuantizedReluX`, `CalculateActivationRangeQuantized`): each bound is
/// `zero_point + (int)roundf(bound / scale)` (`f32`, ties away from zero), intersected with
/// `[−128, 127]`; `max = +∞` means no upper bound. Returns `(act_min, act_max)`.
pub fn clamp_range_i8(min: f32, max: f32, scale: f32, zero_point: i32) -> (i8, i8) {
    let quantize = |f: f32| zero_point.saturating_add(libm::roundf(f / scale) as i32);
    let lo = quantize(min).max(i32::from(i8::MIN));
    let hi = if max == f32::INFINITY {
        i32::from(i8::MAX)
    } else {
        quantize(max).min(i32::from(i8::MAX))
    };
    let to_i8 = |v: i32| v.clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8;
    (to_i8(lo), to_i8(hi))
}

/// Checks that a scale is finite and positive and a zero point fits int8.
fn check_quant(scale: f32, zero_point: i32) -> Result<(), Error> {
    if scale.is_finite() && scale > 0.0 && i8::try_from(zero_point).is_ok() {
        Ok(())
    } else {
        Err(Error::BadQuantization)
    }
}

/// Precomputed parameters of an int8 RELU / RELU6 / RELU_N1_TO_1 layer (TFLite's
/// `ReluParams`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReluParams {
    /// The input zero point (subtracted; TFLite's `ReluParams::input_offset` holds it with
    /// this sign, unlike the other kernels' offsets).
    pub input_zero_point: i32,
    /// The output zero point (added after rescaling).
    pub output_zero_point: i32,
    /// Q31 significand of `input_scale / output_scale`.
    pub output_multiplier: i32,
    /// Power-of-two exponent of the multiplier; positive shifts left.
    pub output_shift: i32,
    /// Lower clamp, in the output's quantized domain.
    pub act_min: i8,
    /// Upper clamp, in the output's quantized domain.
    pub act_max: i8,
}

impl ReluParams {
    /// The parameters of a clamp to `[min, max]` (`0, +∞` for RELU, `0, 6` for RELU6,
    /// `−1, 1` for RELU_N1_TO_1), as TFLite's `ReluPrepare` and `QuantizedReluX` compute them:
    /// the multiplier from `input_scale / output_scale` divided in `f32`, the clamp from
    /// [`clamp_range_i8`].
    ///
    /// Fails with [`Error::BadQuantization`] if a scale is not finite and positive or a zero
    /// point is outside the int8 range, [`Error::InvalidParameter`] if `min > max` or either
    /// is NaN.
    pub fn new(
        input_scale: f32,
        input_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
        min: f32,
        max: f32,
    ) -> Result<Self, Error> {
        check_quant(input_scale, input_zero_point)?;
        check_quant(output_scale, output_zero_point)?;
        if min.is_nan() || max.is_nan() || min > max {
            return Err(Error::InvalidParameter);
        }
        let (output_multiplier, output_shift) =
            quantize_multiplier(f64::from(input_scale / output_scale));
        let (act_min, act_max) = clamp_range_i8(min, max, output_scale, output_zero_point);
        Ok(Self {
            input_zero_point,
            output_zero_point,
            output_multiplier,
            output_shift,
            act_min,
            act_max,
        })
    }

    /// The output for one input.
    #[inline]
    pub fn apply(&self, q: i8) -> i8 {
        let scaled = multiply_by_quantized_multiplier(
            i32::from(q).wrapping_sub(self.input_zero_point),
            self.output_multiplier,
            self.output_shift,
        );
        // max then min, in TFLite's order (it matters only for an empty range).
        super::clamp(
            scaled.wrapping_add(self.output_zero_point),
            i32::from(self.act_min),
            i32::from(self.act_max),
        ) as i8
    }
}

/// int8 RELU / RELU6 / RELU_N1_TO_1 layer over a tensor of any shape.
///
/// Errors: [`Error::ShapeMismatch`] if the lengths differ.
pub fn relu_x(input: &[i8], params: &ReluParams, output: &mut [i8]) -> Result<(), Error> {
    if input.len() != output.len() {
        return Err(Error::ShapeMismatch);
    }
    for (out, &q) in output.iter_mut().zip(input) {
        *out = params.apply(q);
    }
    Ok(())
}

/// Precomputed parameters of an int8 LEAKY_RELU (TFLite's `LeakyReluParams`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LeakyReluParams {
    /// The input zero point (subtracted).
    pub input_zero_point: i32,
    /// The output zero point (added after rescaling).
    pub output_zero_point: i32,
    /// Q31 significand of `input_scale · alpha / output_scale` (negative for a negative
    /// alpha), applied to inputs below the zero point.
    pub output_multiplier_alpha: i32,
    /// Power-of-two exponent of the alpha multiplier.
    pub output_shift_alpha: i32,
    /// Q31 significand of `input_scale / output_scale`, applied to the other inputs.
    pub output_multiplier_identity: i32,
    /// Power-of-two exponent of the identity multiplier.
    pub output_shift_identity: i32,
}

impl LeakyReluParams {
    /// The parameters TFLite's `LeakyReluPrepare` computes: both real multipliers are
    /// evaluated in `f32` (`input_scale · alpha / output_scale` and
    /// `input_scale / output_scale`), then `QuantizeMultiplier`ed.
    ///
    /// Fails with [`Error::BadQuantization`] if a scale is not finite and positive or a zero
    /// point is outside the int8 range, [`Error::InvalidParameter`] if alpha is not finite.
    pub fn new(
        input_scale: f32,
        input_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
        alpha: f32,
    ) -> Result<Self, Error> {
        check_quant(input_scale, input_zero_point)?;
        check_quant(output_scale, output_zero_point)?;
        if !alpha.is_finite() {
            return Err(Error::InvalidParameter);
        }
        let (output_multiplier_alpha, output_shift_alpha) =
            quantize_multiplier(f64::from(input_scale * alpha / output_scale));
        let (output_multiplier_identity, output_shift_identity) =
            quantize_multiplier(f64::from(input_scale / output_scale));
        Ok(Self {
            input_zero_point,
            output_zero_point,
            output_multiplier_alpha,
            output_shift_alpha,
            output_multiplier_identity,
            output_shift_identity,
        })
    }

    /// The output for one input.
    ///
    /// A negative alpha's (negative) multiplier is applied as it is, as LiteRT in
    /// TensorFlow 2.21 does (checked on rounding ties in `tests/ops_litert_b.rs`). Later
    /// LiteRT sources apply its magnitude and negate the product instead, which rounds the
    /// other way at a tie (`−3 · −0.5`: 2 here, 1 there).
    #[inline]
    pub fn apply(&self, q: i8) -> i8 {
        let input_value = i32::from(q).wrapping_sub(self.input_zero_point);
        let (multiplier, shift) = if input_value >= 0 {
            (self.output_multiplier_identity, self.output_shift_identity)
        } else {
            (self.output_multiplier_alpha, self.output_shift_alpha)
        };
        multiply_by_quantized_multiplier(input_value, multiplier, shift)
            .wrapping_add(self.output_zero_point)
            .clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8
    }
}

/// int8 LEAKY_RELU over a tensor of any shape.
///
/// Errors: [`Error::ShapeMismatch`] if the lengths differ.
pub fn leaky_relu(input: &[i8], params: &LeakyReluParams, output: &mut [i8]) -> Result<(), Error> {
    if input.len() != output.len() {
        return Err(Error::ShapeMismatch);
    }
    for (out, &q) in output.iter_mut().zip(input) {
        *out = params.apply(q);
    }
    Ok(())
}
