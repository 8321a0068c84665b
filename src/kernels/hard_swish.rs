//! int8 HARD_SWISH, bit-exact with TFLite's `reference_ops::HardSwish` (quantized), which
//! LiteRT's `BUILTIN_REF` resolver runs.
//!
//! `hard_swish(x) = x · relu6(x + 3) / 6`, computed entirely in 16-bit fixed point: the input
//! is moved to a "high-resolution" scale (`input_scale / 128`), a "relu-ish" factor
//! `(clamp(x, −3, 3) + 3) / 6 ∈ [0, 1]` is formed in Q0.15, and the product is rescaled to the
//! output. The 16-bit rounding steps (one of them deliberately truncating) are part of the
//! result, so each is reproduced exactly.

use crate::quant::quantize_multiplier;
use crate::Error;

/// Precomputed parameters of an int8 HARD_SWISH (TFLite's `HardSwishParams`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HardSwishParams {
    /// Zero point of the input.
    pub input_zero_point: i16,
    /// Zero point of the output.
    pub output_zero_point: i16,
    /// Q0.15 significand of `(input_scale / 128) / (3 / 32768)`, the factor that puts the
    /// input on the scale where 3.0 is 32768.
    pub reluish_multiplier_fixedpoint_int16: i16,
    /// Power-of-two exponent of the relu-ish multiplier (either sign).
    pub reluish_multiplier_exponent: i32,
    /// Q0.15 significand of `(input_scale / 128) / output_scale`.
    pub output_multiplier_fixedpoint_int16: i16,
    /// Power-of-two exponent of the output multiplier (always ≤ 0).
    pub output_multiplier_exponent: i32,
}

/// TFLite's `DownScaleInt32ToInt16Multiplier`: a Q31 significand (≥ 0) rounded to Q15,
/// saturating at `i16::MAX` where rounding would reach 2^15.
fn downscale_multiplier(multiplier: i32) -> i16 {
    const ROUNDING: i32 = 1 << 15;
    if multiplier >= i32::MAX - ROUNDING {
        return i16::MAX;
    }
    // 0 ≤ multiplier < 2^31 − 2^15, so the sum does not overflow and the shift fits i16.
    ((multiplier.max(0) + ROUNDING) >> 16) as i16
}

impl HardSwishParams {
    /// The parameters TFLite's `HardSwishPrepare` computes. The real multipliers are formed in
    /// `f32`, as TFLite does: `hires = (1/128) · input_scale`,
    /// `output = hires / output_scale`, `reluish = hires / (3/32768)`; each is then
    /// `QuantizeMultiplier`ed and rounded to 16 bits.
    ///
    /// Fails with [`Error::BadQuantization`] if a scale is not finite and positive, a zero
    /// point is outside the int8 range, or the output multiplier is 1 or more (TFLite refuses
    /// that too: `output_multiplier_exponent <= 0`).
    pub fn new(
        input_scale: f32,
        input_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
    ) -> Result<Self, Error> {
        let valid = |s: f32| s.is_finite() && s > 0.0;
        let zero_point = |z: i32| {
            i8::try_from(z)
                .map(i16::from)
                .map_err(|_| Error::BadQuantization)
        };
        if !valid(input_scale) || !valid(output_scale) {
            return Err(Error::BadQuantization);
        }
        let hires_input_scale = (1.0f32 / 128.0) * input_scale;
        let reluish_scale = 3.0f32 / 32768.0;
        let output_multiplier = hires_input_scale / output_scale;
        let reluish_multiplier = hires_input_scale / reluish_scale;
        let (output_m, output_exponent) = quantize_multiplier(f64::from(output_multiplier));
        let (reluish_m, reluish_exponent) = quantize_multiplier(f64::from(reluish_multiplier));
        if output_exponent > 0 {
            return Err(Error::BadQuantization);
        }
        Ok(Self {
            input_zero_point: zero_point(input_zero_point)?,
            output_zero_point: zero_point(output_zero_point)?,
            reluish_multiplier_fixedpoint_int16: downscale_multiplier(reluish_m),
            reluish_multiplier_exponent: reluish_exponent,
            output_multiplier_fixedpoint_int16: downscale_multiplier(output_m),
            output_multiplier_exponent: output_exponent,
        })
    }

    /// The output for one input.
    pub fn apply(&self, q: i8) -> i8 {
        // |q − zp| ≤ 255, and 255 · 128 = 32,640 fits i16.
        let input_value = i16::from(q).wrapping_sub(self.input_zero_point);
        let hires = input_value.wrapping_mul(1 << 7);
        let preshift_output = srdhm_i16(hires, self.output_multiplier_fixedpoint_int16);

        // The input on the scale where ±3.0 is ±32768, saturated: left shifts are split so
        // that any saturation happens in the last one-bit shift, after the multiply.
        let exponent = self.reluish_multiplier_exponent;
        let mut reluish = hires;
        if exponent > 0 {
            reluish = saturating_left_shift_i16(reluish, exponent - 1);
        }
        reluish = srdhm_i16(reluish, self.reluish_multiplier_fixedpoint_int16);
        if exponent > 0 {
            reluish = saturating_left_shift_i16(reluish, 1);
        } else if exponent < 0 {
            reluish = rounding_divide_by_pot_i16(reluish, exponent.saturating_neg());
        }
        // [−1, 1] → [0, 1] in Q0.15: (r + 2^15) / 2 is in 0..=32767.
        let reluish = ((i32::from(reluish) + (1 << 15)) >> 1) as i16;

        // Truncating (not rounding) here cancels the bias of the rounding multiplies above.
        let preshift_output_value = sdhm_i16(reluish, preshift_output);
        let output = rounding_divide_by_pot_i16(
            preshift_output_value,
            self.output_multiplier_exponent.saturating_neg(),
        )
        .wrapping_add(self.output_zero_point);
        output.clamp(i16::from(i8::MIN), i16::from(i8::MAX)) as i8
    }
}

/// gemmlowp's 16-bit `SaturatingRoundingDoublingHighMul`: `a · b / 2^15`, rounded half
/// toward +∞ (nudge, then truncate), with `−1 · −1` saturating to `i16::MAX`.
fn srdhm_i16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    let ab = i32::from(a) * i32::from(b);
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    // |ab + nudge| < 2^30 and the quotient fits i16 once MIN·MIN is excluded.
    ((ab + nudge) / (1 << 15)) as i16
}

/// TFLite's 16-bit `SaturatingDoublingHighMul`: `a · b / 2^15` truncated toward zero, with
/// `−1 · −1` saturating to `i16::MAX`.
fn sdhm_i16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    ((i32::from(a) * i32::from(b)) / (1 << 15)) as i16
}

/// TFLite's `SaturatingLeftShift` on `i16`: `value · 2^amount`, saturated to the i16 range.
fn saturating_left_shift_i16(value: i16, amount: i32) -> i16 {
    let factor = u32::try_from(amount)
        .ok()
        .and_then(|a| 1i64.checked_shl(a.min(62)))
        .unwrap_or(1);
    let result = i64::from(value).saturating_mul(factor);
    result.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16
}

/// gemmlowp's `RoundingDivideByPOT` instantiated for `i16`, for `0 ≤ exponent ≤ 31`:
/// round to nearest, ties away from zero, with gemmlowp's exact mask arithmetic — including
/// its behaviour for exponents of 16 and more, where the `i16` mask wraps to −1.
fn rounding_divide_by_pot_i16(x: i16, exponent: i32) -> i16 {
    let exponent = exponent.clamp(0, 31);
    // `(1ll << exponent) − 1` converted to int16 (wrapping), as the C++ template does.
    let mask = ((1i64 << exponent) - 1) as i16;
    let remainder = x & mask;
    let threshold = (mask >> 1).wrapping_add(i16::from(x < 0));
    // The C++ shifts the int-promoted value, so shifts of 16..=31 are defined there.
    let shifted = (i32::from(x) >> exponent) as i16;
    shifted.wrapping_add(i16::from(remainder > threshold))
}

/// int8 HARD_SWISH over a tensor of any shape: `output[i] = hard_swish(input[i])`.
///
/// Errors: [`Error::ShapeMismatch`] if the lengths differ.
pub fn hard_swish(input: &[i8], params: &HardSwishParams, output: &mut [i8]) -> Result<(), Error> {
    if input.len() != output.len() {
        return Err(Error::ShapeMismatch);
    }
    for (out, &q) in output.iter_mut().zip(input) {
        *out = params.apply(q);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bit_helpers() {
        // 0.5 · 0.5 = 0.25 in Q0.15.
        assert_eq!(srdhm_i16(1 << 14, 1 << 14), 1 << 13);
        // 3 · 16384 / 32768 = 1.5 → 2 (rounded), 1 (truncated); −1.5 → −2 / −1.
        assert_eq!(srdhm_i16(3, 1 << 14), 2);
        assert_eq!(sdhm_i16(3, 1 << 14), 1);
        assert_eq!(srdhm_i16(-3, 1 << 14), -1);
        assert_eq!(sdhm_i16(-3, 1 << 14), -1);
        assert_eq!(srdhm_i16(i16::MIN, i16::MIN), i16::MAX);
        assert_eq!(sdhm_i16(i16::MIN, i16::MIN), i16::MAX);
        assert_eq!(saturating_left_shift_i16(20_000, 1), i16::MAX);
        assert_eq!(saturating_left_shift_i16(-20_000, 1), i16::MIN);
        assert_eq!(saturating_left_shift_i16(-3, 4), -48);
        assert_eq!(saturating_left_shift_i16(1, 1000), i16::MAX);
        // Ties away from zero.
        assert_eq!(rounding_divide_by_pot_i16(6, 2), 2);
        assert_eq!(rounding_divide_by_pot_i16(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot_i16(5, 2), 1);
        assert_eq!(rounding_divide_by_pot_i16(-5, 2), -1);
        assert_eq!(rounding_divide_by_pot_i16(32_767, 15), 1);
        assert_eq!(rounding_divide_by_pot_i16(-32_768, 15), -1);
        // The wrapped mask of exponent 16: every x ≥ 0 gives 1, every x < 0 gives −1.
        assert_eq!(rounding_divide_by_pot_i16(0, 16), 1);
        assert_eq!(rounding_divide_by_pot_i16(-1, 16), -1);
    }

    #[test]
    fn downscale() {
        assert_eq!(downscale_multiplier(1 << 30), 1 << 14);
        assert_eq!(downscale_multiplier((1 << 30) + (1 << 15)), (1 << 14) + 1);
        assert_eq!(downscale_multiplier((1 << 30) + (1 << 15) - 1), 1 << 14);
        assert_eq!(downscale_multiplier(i32::MAX), i16::MAX);
        assert_eq!(downscale_multiplier(i32::MAX - (1 << 15)), i16::MAX);
    }
}
