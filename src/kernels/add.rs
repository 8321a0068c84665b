//! int8 element-wise addition, bit-exact with TFLite's `reference_integer_ops::Add` and
//! `BroadcastAdd4DSlow` (the kernels LiteRT's `BUILTIN_REF` resolver runs for int8 ADD).
//!
//! Both inputs are brought to a common scale — twice the larger input scale, with 20 bits of
//! headroom — by their own Q31 multipliers, summed exactly in `i32`, and the sum is rescaled to
//! the output. Every step rounds as TFLite's does, so the order of the three roundings is part
//! of the specification.

mod fast;

use super::broadcast::{self, Dims4};
use super::clamp;
use crate::float::Activation;
use crate::quant::{
    activation_range_i8, multiply_by_quantized_multiplier, quantize_multiplier_smaller_than_one_exp,
};
use crate::Error;
use fast::FastAdd;

/// Bits every offset-corrected int8 input is shifted left by before rescaling (TFLite's
/// `left_shift` for 8-bit ADD): `255 · 2^20 < 2^28`, so the shifted inputs and their sum fit
/// `i32` while keeping 20 bits of precision below the common scale's unit.
pub const ADD_LEFT_SHIFT: i32 = 20;

/// Precomputed parameters of an int8 ADD (the 8-bit fields of TFLite's `ArithmeticParams`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AddParams {
    /// Minus the first input's zero point.
    pub input1_offset: i32,
    /// Minus the second input's zero point.
    pub input2_offset: i32,
    /// The output's zero point.
    pub output_offset: i32,
    /// Left shift applied to both offset-corrected inputs ([`ADD_LEFT_SHIFT`]).
    pub left_shift: i32,
    /// Q31 multiplier of `input1_scale / (2 · max_input_scale)`.
    pub input1_multiplier: i32,
    /// Its shift (≤ 0, a right shift).
    pub input1_shift: i32,
    /// Q31 multiplier of `input2_scale / (2 · max_input_scale)`.
    pub input2_multiplier: i32,
    /// Its shift (≤ 0).
    pub input2_shift: i32,
    /// Q31 multiplier of `2 · max_input_scale / (2^left_shift · output_scale)`.
    pub output_multiplier: i32,
    /// Its shift (≤ 0).
    pub output_shift: i32,
    /// Lower clamp of the fused activation, in the output's quantized domain.
    pub act_min: i8,
    /// Upper clamp of the fused activation, in the output's quantized domain.
    pub act_max: i8,
}

/// Scale and zero point of one int8 tensor.
fn check_quant(scale: f32, zero_point: i32) -> Result<(), Error> {
    let zp_ok = (i32::from(i8::MIN)..=i32::from(i8::MAX)).contains(&zero_point);
    if scale > 0.0 && scale.is_finite() && zp_ok {
        Ok(())
    } else {
        Err(Error::BadQuantization)
    }
}

impl AddParams {
    /// The parameters TFLite's ADD `Prepare` computes for int8 tensors.
    ///
    /// `twice_max_input_scale = 2 · max(s1, s2)` (in `f32`, exact), then in `f64`:
    /// `s1 / twice_max`, `s2 / twice_max` and `twice_max / (2^20 · s_out)`, each quantized
    /// with `QuantizeMultiplierSmallerThanOneExp`; the clamp is
    /// `CalculateActivationRangeQuantized` of `activation` in the output's quantization.
    ///
    /// Errors: [`Error::BadQuantization`] for a scale that is not positive and finite or a zero
    /// point outside the int8 range; [`Error::InvalidParameter`] where TFLite aborts (an output
    /// multiplier of 1 or more, i.e. an output scale below `2^−19` of the input scales) or the
    /// activation range comes out empty.
    pub fn new(
        input1: (f32, i32),
        input2: (f32, i32),
        output: (f32, i32),
        activation: Activation,
    ) -> Result<Self, Error> {
        let ((s1, z1), (s2, z2), (so, zo)) = (input1, input2, output);
        check_quant(s1, z1)?;
        check_quant(s2, z2)?;
        check_quant(so, zo)?;
        let twice_max = f64::from(2.0 * s1.max(s2));
        let multiplier = |real: f64| {
            quantize_multiplier_smaller_than_one_exp(real).ok_or(Error::InvalidParameter)
        };
        let (input1_multiplier, input1_shift) = multiplier(f64::from(s1) / twice_max)?;
        let (input2_multiplier, input2_shift) = multiplier(f64::from(s2) / twice_max)?;
        // TFLite forms `(1 << 20) * output_scale` in f32: a power-of-two product, exact unless
        // it overflows, which the f32 check below rules out.
        let scaled_out = (1u32 << ADD_LEFT_SHIFT) as f32 * so;
        if !scaled_out.is_finite() {
            return Err(Error::BadQuantization);
        }
        let (output_multiplier, output_shift) = multiplier(twice_max / f64::from(scaled_out))?;
        let (act_min, act_max) = activation_range_i8(activation, so, zo);
        if act_min > act_max {
            return Err(Error::InvalidParameter);
        }
        Ok(Self {
            input1_offset: -z1,
            input2_offset: -z2,
            output_offset: zo,
            left_shift: ADD_LEFT_SHIFT,
            input1_multiplier,
            input1_shift,
            input2_multiplier,
            input2_shift,
            output_multiplier,
            output_shift,
            act_min,
            act_max,
        })
    }

    /// The sum of one pair of elements (TFLite's `AddFunc`). Arithmetic wraps where TFLite's
    /// `int32` would overflow, which parameters from [`AddParams::new`] never reach.
    #[inline]
    pub fn add(&self, x: i8, y: i8) -> i8 {
        let shift = |v: i32| v.wrapping_mul(1i32.wrapping_shl(self.left_shift as u32));
        let x = shift(self.input1_offset.wrapping_add(i32::from(x)));
        let y = shift(self.input2_offset.wrapping_add(i32::from(y)));
        let x = multiply_by_quantized_multiplier(x, self.input1_multiplier, self.input1_shift);
        let y = multiply_by_quantized_multiplier(y, self.input2_multiplier, self.input2_shift);
        let sum = multiply_by_quantized_multiplier(
            x.wrapping_add(y),
            self.output_multiplier,
            self.output_shift,
        )
        .wrapping_add(self.output_offset);
        clamp(sum, i32::from(self.act_min), i32::from(self.act_max)) as i8
    }

    fn check(&self) -> Result<(), Error> {
        if self.act_min > self.act_max || !(0..=31).contains(&self.left_shift) {
            return Err(Error::InvalidParameter);
        }
        Ok(())
    }
}

/// int8 ADD of two tensors of the same shape (TFLite's `Add`): `output[i] = add(a[i], b[i])`.
///
/// Errors: [`Error::ShapeMismatch`] when the three lengths differ, [`Error::InvalidParameter`]
/// for an empty clamp range or a left shift outside `0..=31`.
pub fn add(a: &[i8], b: &[i8], params: &AddParams, output: &mut [i8]) -> Result<(), Error> {
    params.check()?;
    match FastAdd::new(params) {
        Some(fast) => fast.add_slices(a, b, output),
        None => broadcast::zip_with(a, b, output, |x, y| params.add(x, y)),
    }
}

/// int8 ADD with 4-D broadcasting (TFLite's `BroadcastAdd4DSlow`): along each axis an input
/// has the output's extent or extent 1, e.g. `[1,H,W,C] + [1,1,1,C]` or a scalar
/// `[1,1,1,1]`. Shapes of lower rank are extended with leading ones
/// ([`extend_to_4d`](super::broadcast::extend_to_4d)) by the caller.
///
/// Errors: [`Error::ShapeMismatch`] when the shapes do not broadcast to `output_dims` or a
/// length disagrees with its shape; [`Error::InvalidParameter`] as [`add`].
pub fn broadcast_add(
    a: &[i8],
    a_dims: &Dims4,
    b: &[i8],
    b_dims: &Dims4,
    params: &AddParams,
    output: &mut [i8],
    output_dims: &Dims4,
) -> Result<(), Error> {
    params.check()?;
    let Some(fast) = FastAdd::new(params) else {
        return broadcast::binary(a, a_dims, b, b_dims, output, output_dims, |x, y| {
            params.add(x, y)
        });
    };
    if a_dims == b_dims {
        // The residual case: check the shapes, then one flat pass.
        broadcast::check(a, a_dims, b, b_dims, output, output_dims)?;
        return fast.add_slices(a, b, output);
    }
    broadcast::binary(a, a_dims, b, b_dims, output, output_dims, |x, y| {
        fast.add(x, y)
    })
}
