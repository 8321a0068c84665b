//! int8 MEAN over height and width (Keras `GlobalAveragePooling2D`), bit-exact with the path
//! LiteRT's `BUILTIN_REF` resolver takes for int8 `MEAN` over axes `[1, 2]`.
//!
//! That path is `reference_ops::QuantizedMeanOrSum` for every case — `keep_dims` true or
//! false, equal or different input and output quantization (checked against LiteRT 2.21 by
//! `tools/scripts/make_op_fixtures_a.py`; the older `reference_integer_ops::Mean` with its
//! separate rounding division, and the plain truncating `reference_ops::Mean` for equal
//! quantization, are no longer used). It sums the raw int8 values in `i32`, removes the input
//! zero point once (`sum − zp_in · n`), and applies one Q31 multiplier that folds `1/n` into
//! `input_scale / output_scale`:
//!
//! * `(m, e) = QuantizeMultiplier((double)s_in / (double)s_out)` (TFLite's Prepare);
//! * `k = min(floor(log2 n), 32, 31 + e)`, `m' = (m · 2^k) / n` (truncating `i64` division),
//!   `e' = e − k` (TFLite's Eval);
//! * `out = clamp(MultiplyByQuantizedMultiplier(sum − zp_in · n, m', e') + zp_out,
//!   −128, 127)`.

use crate::quant::{multiply_by_quantized_multiplier, quantize_multiplier};
use crate::{Error, Shape};

/// Most elements one mean may average: past `2^23` the `i32` sum of int8 values (TFLite's
/// accumulator) could overflow.
pub const MAX_MEAN_COUNT: usize = 1 << 23;

/// Precomputed parameters of an int8 MEAN over `count` elements per output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MeanParams {
    /// Number of elements averaged into each output (height · width).
    pub count: u32,
    /// Q31 multiplier of `input_scale / (output_scale · count)`, as TFLite derives it.
    pub multiplier: i32,
    /// Its power-of-two exponent (TFLite's convention: positive shifts left).
    pub shift: i32,
    /// The input's zero point.
    pub input_zero_point: i32,
    /// The output's zero point.
    pub output_zero_point: i32,
}

impl MeanParams {
    /// The parameters for averaging `count` int8 values of quantization `input` (scale, zero
    /// point) into one of quantization `output`, exactly as LiteRT's Prepare and Eval derive
    /// them (see the module documentation).
    ///
    /// Errors: [`Error::BadQuantization`] for a scale that is not positive and finite or a zero
    /// point outside the int8 range; [`Error::InvalidParameter`] for `count` 0 or above
    /// `2^23` (past that the `i32` sum of TFLite could overflow).
    pub fn new(input: (f32, i32), output: (f32, i32), count: usize) -> Result<Self, Error> {
        for (scale, zp) in [input, output] {
            let zp_ok = (i32::from(i8::MIN)..=i32::from(i8::MAX)).contains(&zp);
            if !(scale > 0.0 && scale.is_finite() && zp_ok) {
                return Err(Error::BadQuantization);
            }
        }
        let n = u32::try_from(count)
            .ok()
            .filter(|&n| (1..=1 << 23).contains(&n))
            .ok_or(Error::InvalidParameter)?;
        let (m, e) = quantize_multiplier(f64::from(input.0) / f64::from(output.0));
        // floor(log2 n), at most 23 here; `31 + e ≥ 0` because QuantizeMultiplier flushes
        // exponents below −31 to (0, 0).
        let k = (31 - n.leading_zeros() as i32).min(32).min(31 + e).max(0);
        let multiplier = ((i64::from(m) << k) / i64::from(n)) as i32;
        Ok(Self {
            count: n,
            multiplier,
            shift: e - k,
            input_zero_point: input.1,
            output_zero_point: output.1,
        })
    }

    /// The mean of `count` values whose sum is `sum`, requantized and clamped to int8.
    #[inline]
    pub fn apply(&self, sum: i32) -> i8 {
        // TFLite subtracts in `int64` (the count is `int64_t`) and narrows to `int32`.
        let centred =
            (i64::from(sum) - i64::from(self.input_zero_point) * i64::from(self.count)) as i32;
        let out = multiply_by_quantized_multiplier(centred, self.multiplier, self.shift)
            .wrapping_add(self.output_zero_point);
        out.clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8
    }
}

/// int8 mean over height and width of a batch-1 NHWC tensor: `output[c]` averages the
/// `height · width` values of channel `c`. `keep_dims` does not change the values or their
/// order (`[1,1,1,C]` and `[1,C]` hold the same bytes), so it is the caller's shape business.
///
/// Errors: [`Error::ShapeMismatch`] when `input` does not hold `input_shape` or `output` does
/// not hold one value per channel; [`Error::InvalidParameter`] when `params.count` is not
/// `height · width`.
pub fn mean_hw(
    input: &[i8],
    input_shape: Shape,
    params: &MeanParams,
    output: &mut [i8],
) -> Result<(), Error> {
    input_shape.check_len(input.len())?;
    let channels = input_shape.channels;
    if output.len() != channels {
        return Err(Error::ShapeMismatch);
    }
    let count = input_shape.height.checked_mul(input_shape.width);
    if count != usize::try_from(params.count).ok() {
        return Err(Error::InvalidParameter);
    }
    if channels == 0 {
        return Ok(());
    }
    // Channels in blocks of four summed in one pass over the pixels (four loads per pixel
    // from one row, instead of a strided pass per channel); the sums are the same integers.
    let mut blocks = output.chunks_exact_mut(4);
    let mut c0 = 0;
    for outs in &mut blocks {
        let mut sums = [0i32; 4];
        for pixel in input.chunks_exact(channels) {
            let px: [i8; 4] = pixel
                .get(c0..)
                .and_then(|p| p.first_chunk::<4>())
                .copied()
                .ok_or(Error::ShapeMismatch)?;
            for (s, x) in sums.iter_mut().zip(px) {
                *s = s.wrapping_add(i32::from(x));
            }
        }
        for (o, &s) in outs.iter_mut().zip(&sums) {
            *o = params.apply(s);
        }
        c0 += 4;
    }
    for (c, out) in blocks.into_remainder().iter_mut().enumerate() {
        let sum = input
            .iter()
            .skip(c0 + c)
            .step_by(channels)
            .fold(0i32, |acc, &x| acc.wrapping_add(i32::from(x)));
        *out = params.apply(sum);
    }
    Ok(())
}
