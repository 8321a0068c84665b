//! QUANTIZE (float32 → int8, and int8 → int8 requantization) and DEQUANTIZE (int8 →
//! float32), as LiteRT's reference kernels compute them.
//!
//! QUANTIZE divides in `f32` — `q = zp + round(x / scale)`, half away from zero — which
//! matters: inputs near a half step round differently when divided in `f64`, and the
//! fixtures of `tools/scripts/make_op_fixtures_a.py` include such inputs (LiteRT 2.21 agrees
//! with `f32` on all of them; an `f64` division gets about one in sixteen wrong).
//! DEQUANTIZE multiplies in `f64` and narrows (`(float)(scale · (q − zp))`), which equals
//! the `f32` product: the exact product of a 9-bit integer and a 24-bit significand fits a
//! `double`.

use crate::quant::{multiply_by_quantized_multiplier, quantize_f32, quantize_multiplier};
use crate::Error;

/// Scale and zero point of one int8 tensor, checked.
fn check_quant(scale: f32, zero_point: i32) -> Result<(), Error> {
    let zp_ok = (i32::from(i8::MIN)..=i32::from(i8::MAX)).contains(&zero_point);
    if scale > 0.0 && scale.is_finite() && zp_ok {
        Ok(())
    } else {
        Err(Error::BadQuantization)
    }
}

/// float32 → int8 (TFLite's `reference_ops::AffineQuantize`):
/// `clamp(zero_point + round(x / scale), −128, 127)` with an `f32` division, rounding half
/// away from zero ([`quantize_f32`]); NaN maps to the zero point.
///
/// Errors: [`Error::ShapeMismatch`] when the lengths differ, [`Error::BadQuantization`] for a
/// scale that is not positive and finite or a zero point outside int8.
pub fn quantize(
    input: &[f32],
    scale: f32,
    zero_point: i32,
    output: &mut [i8],
) -> Result<(), Error> {
    check_quant(scale, zero_point)?;
    if input.len() != output.len() {
        return Err(Error::ShapeMismatch);
    }
    for (o, &x) in output.iter_mut().zip(input) {
        *o = quantize_f32(x, scale, zero_point);
    }
    Ok(())
}

/// int8 → float32 (TFLite's `reference_ops::Dequantize`):
/// `(float)((double)scale · (q − zero_point))`.
///
/// Errors: as [`quantize`].
pub fn dequantize(
    input: &[i8],
    scale: f32,
    zero_point: i32,
    output: &mut [f32],
) -> Result<(), Error> {
    check_quant(scale, zero_point)?;
    if input.len() != output.len() {
        return Err(Error::ShapeMismatch);
    }
    let scale = f64::from(scale);
    for (o, &q) in output.iter_mut().zip(input) {
        *o = (scale * f64::from(i32::from(q) - zero_point)) as f32;
    }
    Ok(())
}

/// Precomputed parameters of an int8 → int8 QUANTIZE (a requantization).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RequantizeParams {
    /// Q31 multiplier of `input_scale / output_scale`.
    pub multiplier: i32,
    /// Its power-of-two exponent (positive shifts left).
    pub shift: i32,
    /// The input's zero point.
    pub input_zero_point: i32,
    /// The output's zero point.
    pub output_zero_point: i32,
}

impl RequantizeParams {
    /// TFLite's QUANTIZE Prepare for int8 → int8:
    /// `QuantizeMultiplier((double)input_scale / (double)output_scale)`.
    ///
    /// Errors: [`Error::BadQuantization`] for a scale that is not positive and finite or a
    /// zero point outside int8.
    pub fn new(input: (f32, i32), output: (f32, i32)) -> Result<Self, Error> {
        check_quant(input.0, input.1)?;
        check_quant(output.0, output.1)?;
        let (multiplier, shift) = quantize_multiplier(f64::from(input.0) / f64::from(output.0));
        Ok(Self {
            multiplier,
            shift,
            input_zero_point: input.1,
            output_zero_point: output.1,
        })
    }

    /// One value: `clamp(MultiplyByQuantizedMultiplier(q − zp_in) + zp_out, −128, 127)`.
    #[inline]
    pub fn apply(&self, q: i8) -> i8 {
        let centred = i32::from(q).wrapping_sub(self.input_zero_point);
        let out = multiply_by_quantized_multiplier(centred, self.multiplier, self.shift)
            .wrapping_add(self.output_zero_point);
        out.clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8
    }
}

/// int8 → int8 QUANTIZE (TFLite's `reference_ops::Requantize`): every value rescaled by
/// [`RequantizeParams::apply`].
///
/// Errors: [`Error::ShapeMismatch`] when the lengths differ.
pub fn requantize(input: &[i8], params: &RequantizeParams, output: &mut [i8]) -> Result<(), Error> {
    if input.len() != output.len() {
        return Err(Error::ShapeMismatch);
    }
    for (o, &q) in output.iter_mut().zip(input) {
        *o = params.apply(q);
    }
    Ok(())
}
