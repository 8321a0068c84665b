//! int8 → int8 softmax, bit-exact with TFLite's `reference_ops::Softmax` (the gemmlowp-based
//! quantized path that LiteRT's `BUILTIN_REF` resolver and TFLite Micro's reference kernel run).
//!
//! The output is always quantized with scale 1/256 and zero point −128 (TFLite requires it).

use super::fixedpoint::{exp_on_negative_values, get_reciprocal, rescale};
use crate::quant::{
    calculate_input_radius, clamp_i8, multiply_by_quantized_multiplier_greater_than_one,
    preprocess_softmax_scaling, rounding_divide_by_pot, saturating_rounding_doubling_high_mul,
    softmax_real_multiplier,
};
use crate::Error;

/// Integer bits of the scaled input differences (Q5.26): differences down to −32 after
/// scaling by beta are representable, and exp(−16) is already negligible in the sum.
const SCALED_DIFF_INTEGER_BITS: i32 = 5;
/// Integer bits of the sum of exponentials (Q12.19): up to 4095 classes sum without overflow.
const ACCUMULATION_INTEGER_BITS: i32 = 12;
/// Longest row the Q12.19 sum of exponentials holds: every term is at most 1.0 and the sum
/// stays below 2^12 = 4,096. TFLite adds longer rows without saturation and wraps
/// (finding F3 in docs/reliability.md); fixnet refuses them instead.
pub const MAX_SOFTMAX_DEPTH: usize = (1 << ACCUMULATION_INTEGER_BITS) - 1;
/// Output zero point TFLite requires for int8 softmax.
const OUTPUT_ZERO_POINT: i32 = -128;
/// log2 of the output scale's inverse (scale = 1/256).
const OUTPUT_BITS: i32 = 8;

/// Precomputed parameters of an int8 softmax (TFLite's `SoftmaxParams` for the quantized
/// reference kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SoftmaxParams {
    /// Q31 multiplier of `beta · input_scale · 2^26`.
    pub input_multiplier: i32,
    /// Left shift applied before `input_multiplier` (always ≥ 1).
    pub input_left_shift: i32,
    /// Input differences `x − max` below this (a negative number) contribute exactly 0.
    pub diff_min: i32,
}

impl SoftmaxParams {
    /// The parameters TFLite's `SoftmaxPrepare` computes for an int8 input of scale
    /// `input_scale` and the op's `beta`:
    /// `PreprocessSoftmaxScaling((double)beta, (double)input_scale, 5)` and
    /// `diff_min = −CalculateInputRadius(5, input_left_shift, 31)`.
    ///
    /// Fails with [`Error::InvalidParameter`] where TFLite aborts: when
    /// `beta · input_scale · 2^26` is not above 1 (including non-finite or non-positive
    /// values).
    pub fn new(beta: f32, input_scale: f32) -> Result<Self, Error> {
        let beta = f64::from(beta);
        let input_scale = f64::from(input_scale);
        let real = softmax_real_multiplier(beta, input_scale, SCALED_DIFF_INTEGER_BITS);
        if !(real > 1.0 && real.is_finite()) {
            return Err(Error::InvalidParameter);
        }
        let (input_multiplier, input_left_shift) =
            preprocess_softmax_scaling(beta, input_scale, SCALED_DIFF_INTEGER_BITS);
        let diff_min = -calculate_input_radius(SCALED_DIFF_INTEGER_BITS, input_left_shift, 31);
        Ok(Self {
            input_multiplier,
            input_left_shift,
            diff_min,
        })
    }

    /// `exp(beta · input_scale · diff)` with 0 integer bits, for a difference `diff ≥ diff_min`.
    #[inline]
    fn exp_of_diff(&self, diff: i32) -> i32 {
        let scaled = multiply_by_quantized_multiplier_greater_than_one(
            diff,
            self.input_multiplier,
            self.input_left_shift,
        );
        exp_on_negative_values::<SCALED_DIFF_INTEGER_BITS>(scaled)
    }
}

/// int8 softmax over the last axis: `input` holds rows of `depth` values, `output` (same
/// length) receives `softmax(beta · input_scale · row)` quantized with scale 1/256 and zero
/// point −128.
///
/// Errors: [`Error::InvalidParameter`] if `depth` is 0 or above [`MAX_SOFTMAX_DEPTH`],
/// [`Error::ShapeMismatch`] if the lengths differ or are not a multiple of `depth`.
pub fn softmax(
    input: &[i8],
    depth: usize,
    params: &SoftmaxParams,
    output: &mut [i8],
) -> Result<(), Error> {
    if depth == 0 || depth > MAX_SOFTMAX_DEPTH {
        return Err(Error::InvalidParameter);
    }
    if input.len() != output.len() || input.len() % depth != 0 {
        return Err(Error::ShapeMismatch);
    }
    for (row_in, row_out) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        softmax_row(row_in, params, row_out);
    }
    Ok(())
}

fn softmax_row(input: &[i8], params: &SoftmaxParams, output: &mut [i8]) {
    let max_in_row = i32::from(input.iter().copied().max().unwrap_or(i8::MIN));

    let mut sum_of_exps: i32 = 0;
    for &x in input {
        let diff = i32::from(x) - max_in_row;
        if diff >= params.diff_min {
            let exp = params.exp_of_diff(diff);
            // Cannot wrap: at most MAX_SOFTMAX_DEPTH terms of at most 2^19.
            sum_of_exps = sum_of_exps.wrapping_add(rescale(exp, 0, ACCUMULATION_INTEGER_BITS));
        }
    }

    let (shifted_scale, num_bits_over_unit) =
        get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS);
    // The exponent exceeds 31 once the sum of exponentials reaches 512 (512 or more values at
    // the row maximum): TFLite aborts there (TFLITE_CHECK), this rounds correctly instead.
    let exponent = num_bits_over_unit + 31 - OUTPUT_BITS;

    for (&x, out) in input.iter().zip(output.iter_mut()) {
        let diff = i32::from(x) - max_in_row;
        *out = if diff >= params.diff_min {
            // exp is recomputed rather than stored: the output is only 8 bits wide.
            let exp = params.exp_of_diff(diff);
            let unsat = rounding_divide_by_pot(
                saturating_rounding_doubling_high_mul(shifted_scale, exp),
                exponent,
            );
            clamp_i8(unsat.wrapping_add(OUTPUT_ZERO_POINT))
        } else {
            i8::MIN
        };
    }
}
