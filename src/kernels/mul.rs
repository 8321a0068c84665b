//! int8 element-wise MUL with broadcasting, bit-exact with TFLite's
//! `reference_integer_ops::Mul` / `BroadcastMul6DSlow` (LiteRT's `BUILTIN_REF` kernels).
//!
//! `output = clamp(MultiplyByQuantizedMultiplier((a − zp1) · (b − zp2), m, shift) + zp_out,
//! act_min, act_max)`, with `m · 2^shift ≈ s1 · s2 / s_out`. The product of two offset int8
//! values is at most 256², so the `i32` arithmetic never overflows.
//!
//! Broadcasting follows [`super::broadcast`]: e.g. `[1, H, W, C] · [1, 1, 1, C]` in a
//! squeeze-and-excite block.

use super::broadcast::{self, Dims4};
use crate::quant::quantize_multiplier;
use crate::Error;

/// Precomputed parameters of an int8 MUL (the quantized part of TFLite's
/// `ArithmeticParams`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MulParams {
    /// Added to every first-input value: minus its zero point.
    pub input1_offset: i32,
    /// Added to every second-input value: minus its zero point.
    pub input2_offset: i32,
    /// Added after rescaling: the output zero point.
    pub output_offset: i32,
    /// Q31 significand of `s1 · s2 / s_out`.
    pub output_multiplier: i32,
    /// Power-of-two exponent of the multiplier; positive shifts left (TFLite's convention).
    pub output_shift: i32,
    /// Lower clamp of the fused activation, in the output's quantized domain.
    pub act_min: i8,
    /// Upper clamp of the fused activation, in the output's quantized domain.
    pub act_max: i8,
}

impl MulParams {
    /// The parameters TFLite's `Mul` Prepare computes: the real multiplier
    /// `input1_scale · input2_scale / output_scale` is evaluated in `f32` (TFLite multiplies
    /// the `float` scales before widening to `double`), then `QuantizeMultiplier`ed.
    /// `act_min`/`act_max` is the fused activation's range in the output domain
    /// ([`activation_range_i8`](crate::quant::activation_range_i8), or
    /// [`clamp_range_i8`](super::relu::clamp_range_i8) for any other clamp).
    ///
    /// Fails with [`Error::BadQuantization`] if a scale is not finite and positive or a zero
    /// point is outside the int8 range, and with [`Error::InvalidParameter`] if
    /// `act_min > act_max`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        input1_scale: f32,
        input1_zero_point: i32,
        input2_scale: f32,
        input2_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
        act_min: i8,
        act_max: i8,
    ) -> Result<Self, Error> {
        let valid = |s: f32| s.is_finite() && s > 0.0;
        let int8 = |z: i32| i8::try_from(z).is_ok();
        if !valid(input1_scale) || !valid(input2_scale) || !valid(output_scale) {
            return Err(Error::BadQuantization);
        }
        if !int8(input1_zero_point) || !int8(input2_zero_point) || !int8(output_zero_point) {
            return Err(Error::BadQuantization);
        }
        if act_min > act_max {
            return Err(Error::InvalidParameter);
        }
        let real = input1_scale * input2_scale / output_scale;
        let (output_multiplier, output_shift) = quantize_multiplier(f64::from(real));
        Ok(Self {
            input1_offset: -input1_zero_point,
            input2_offset: -input2_zero_point,
            output_offset: output_zero_point,
            output_multiplier,
            output_shift,
            act_min,
            act_max,
        })
    }

    /// The output for one pair of inputs.
    #[inline]
    pub fn apply(&self, a: i8, b: i8) -> i8 {
        // The offsets are zero points negated (|·| ≤ 128), so the product is ≤ 256².
        let product = (i32::from(a) + self.input1_offset) * (i32::from(b) + self.input2_offset);
        let scaled = crate::quant::multiply_by_quantized_multiplier(
            product,
            self.output_multiplier,
            self.output_shift,
        );
        let shifted = scaled.wrapping_add(self.output_offset);
        super::clamp(shifted, i32::from(self.act_min), i32::from(self.act_max)) as i8
    }
}

impl MulParams {
    /// Rejects an empty clamp range.
    fn check(&self) -> Result<(), Error> {
        if self.act_min > self.act_max {
            return Err(Error::InvalidParameter);
        }
        Ok(())
    }
}

/// int8 MUL of two tensors of the same shape (TFLite's `Mul`):
/// `output[i] = a[i] · b[i]`, requantized and clamped per `params`.
///
/// Errors: [`Error::ShapeMismatch`] when the three lengths differ, [`Error::InvalidParameter`]
/// if `act_min > act_max`.
pub fn mul(a: &[i8], b: &[i8], params: &MulParams, output: &mut [i8]) -> Result<(), Error> {
    params.check()?;
    broadcast::zip_with(a, b, output, |x, y| params.apply(x, y))
}

/// int8 MUL with 4-D broadcasting (TFLite's `BroadcastMul6DSlow` on shapes of rank ≤ 4):
/// along each axis an input has the output's extent or extent 1, e.g.
/// `[1,H,W,C] · [1,1,1,C]`. Shapes of lower rank are extended with leading ones
/// ([`extend_to_4d`](super::broadcast::extend_to_4d)) by the caller.
///
/// Errors: [`Error::ShapeMismatch`] when the shapes do not broadcast to `output_dims` or a
/// length disagrees with its shape; [`Error::InvalidParameter`] as [`mul`].
pub fn broadcast_mul(
    a: &[i8],
    a_dims: &Dims4,
    b: &[i8],
    b_dims: &Dims4,
    params: &MulParams,
    output: &mut [i8],
    output_dims: &Dims4,
) -> Result<(), Error> {
    params.check()?;
    broadcast::binary(a, a_dims, b, b_dims, output, output_dims, |x, y| {
        params.apply(x, y)
    })
}
