//! int8 activations through a 256-entry lookup table: LOGISTIC and TANH as LiteRT's reference
//! resolver runs them.
//!
//! For int8, LiteRT's `BUILTIN_REF` LOGISTIC and TANH do no fixed-point arithmetic at all: at
//! prepare time `LUTPopulate` evaluates the float function on each of the 256 possible inputs
//! and quantizes the result, and at run time every element is a table look-up. So the whole
//! job of being bit-exact lies in building the table with the same `f32` operations:
//!
//! ```text
//! dequantized = input_scale · (q − input_zero_point)            (f32)
//! transformed = f(dequantized)                                  (f32, glibc's expf / tanhf)
//! rescaled    = round(transformed · (1 / output_scale))         (f32, ties away from zero)
//! entry       = clamp((int)(rescaled + output_zero_point), −128, 127)
//! ```
//!
//! with `f(x) = 1 / (1 + exp(−x))` for LOGISTIC and `tanh(x)` for TANH. The table is built
//! once (when a model is loaded or converted); [`lookup`] is the kernel.

use super::glibc_f32::{expf, tanhf};
use crate::Error;

/// The output scale TFLite requires of an int8 LOGISTIC (its zero point is −128 by convention).
pub const LOGISTIC_OUTPUT_SCALE: f32 = 1.0 / 256.0;

/// A 256-entry int8 → int8 table: the output for every possible input.
///
/// Entries are stored in LiteRT's order, indexed by the input's two's-complement byte
/// (`q as u8`): inputs 0, 1, …, 127, −128, …, −1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lut {
    entries: [i8; 256],
}

impl Lut {
    /// A table from its 256 entries, in LiteRT's order (see [`Lut`]).
    pub const fn from_entries(entries: [i8; 256]) -> Self {
        Self { entries }
    }

    /// The 256 entries, in LiteRT's order (see [`Lut`]).
    pub const fn entries(&self) -> &[i8; 256] {
        &self.entries
    }

    /// The output for input `q`.
    #[inline(always)]
    pub fn get(&self, q: i8) -> i8 {
        // A u8 index into a 256-entry array is always in bounds.
        self.entries[usize::from(q as u8)]
    }

    /// TFLite's `LUTPopulate<int8_t>` for the float function `f` (see the module docs for the
    /// exact arithmetic).
    ///
    /// Fails with [`Error::BadQuantization`] if a scale is not finite and positive.
    pub fn from_fn(
        input_scale: f32,
        input_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
        f: impl Fn(f32) -> f32,
    ) -> Result<Self, Error> {
        let valid = |s: f32| s.is_finite() && s > 0.0;
        if !valid(input_scale) || !valid(output_scale) {
            return Err(Error::BadQuantization);
        }
        let inverse_scale = 1.0 / output_scale;
        let mut entries = [0i8; 256];
        for q in i8::MIN..=i8::MAX {
            let dequantized = input_scale * i32::from(q).saturating_sub(input_zero_point) as f32;
            let rescaled = libm::roundf(f(dequantized) * inverse_scale);
            // C++ adds the int zero point in f32 and truncates; `as` saturates where C++ has
            // undefined behaviour (a result beyond i32, only for absurd scales).
            let quantized = (rescaled + output_zero_point as f32) as i32;
            entries[usize::from(q as u8)] =
                quantized.clamp(i32::from(i8::MIN), i32::from(i8::MAX)) as i8;
        }
        Ok(Self { entries })
    }

    /// The table of an int8 LOGISTIC (sigmoid), as TFLite's `SigmoidPrepare` builds it:
    /// `f(x) = 1 / (1 + exp(−x))` in `f32`.
    ///
    /// Fails with [`Error::BadQuantization`] where TFLite refuses the op: an output scale
    /// other than 1/256 (TFLite compares it exactly), or a scale that is not finite and
    /// positive. The output zero point is −128 in every converted model but, as in TFLite's
    /// reference kernel, is not checked.
    pub fn logistic(
        input_scale: f32,
        input_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
    ) -> Result<Self, Error> {
        if output_scale != LOGISTIC_OUTPUT_SCALE {
            return Err(Error::BadQuantization);
        }
        Self::from_fn(
            input_scale,
            input_zero_point,
            output_scale,
            output_zero_point,
            |x| 1.0 / (1.0 + expf(-x)),
        )
    }

    /// The table of an int8 TANH, as TFLite's `TanhPrepare` builds it: `f(x) = tanh(x)` in
    /// `f32`. Converted models use output scale 1/128 and zero point 0, but TFLite's reference
    /// kernel takes whatever the output tensor has, and so does this.
    ///
    /// Fails with [`Error::BadQuantization`] if a scale is not finite and positive.
    pub fn tanh(
        input_scale: f32,
        input_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
    ) -> Result<Self, Error> {
        Self::from_fn(
            input_scale,
            input_zero_point,
            output_scale,
            output_zero_point,
            tanhf,
        )
    }
}

/// Applies `lut` to every element: `output[i] = lut(input[i])`.
///
/// Errors: [`Error::ShapeMismatch`] if the lengths differ.
pub fn lookup(input: &[i8], lut: &Lut, output: &mut [i8]) -> Result<(), Error> {
    if input.len() != output.len() {
        return Err(Error::ShapeMismatch);
    }
    for (out, &q) in output.iter_mut().zip(input) {
        *out = lut.get(q);
    }
    Ok(())
}
