//! int8 fully connected layers.
//!
//! Two requantizations exist upstream and both are provided:
//!
//! * [`fully_connected`]: the Q31-multiplier kernel, TFLite's
//!   `reference_integer_ops::FullyConnectedPerChannel` / `FullyConnected` with
//!   `MultiplyByQuantizedMultiplier`. TFLite Micro's reference kernel and LiteRT's optimized
//!   kernels compute this.
//! * [`fully_connected_float_requant`]: current LiteRT's *reference* kernel (what the
//!   `BUILTIN_REF` op resolver runs, e.g. in TensorFlow 2.21), which passes the float scales
//!   to `reference_integer_ops::FullyConnected[PerChannel]` and rescales each accumulator as
//!   `round((double)acc · effective_scale)`. It differs from the first by one step on a
//!   fraction of a percent of outputs (measured 0.2–0.8 % on random layers): those whose exact
//!   value lies near a rounding boundary, where the Q31 path's two roundings disagree.

use super::{check_bias, clamp, span, FloatRequantize, Requantize};
use crate::Error;

/// int8 fully connected layer for one input vector.
///
/// * `input`: the `n` input features; `output`: the `m` outputs.
/// * `filter`: `m × n`, row `o` holding the weights of output `o`.
/// * `bias`: empty, or `m` values.
/// * `q`: `m` multipliers and shifts (repeat the same value for a per-tensor filter).
///
/// `output[o] = requantize(Σ filter[o][i] · (input[i] + input_offset) + bias[o])`.
///
/// Errors: [`Error::ShapeMismatch`] when a length disagrees, [`Error::InvalidParameter`] when
/// `act_min > act_max`.
pub fn fully_connected(
    input: &[i8],
    filter: &[i8],
    bias: &[i32],
    q: &Requantize,
    output: &mut [i8],
) -> Result<(), Error> {
    let n_in = input.len();
    let n_out = output.len();
    if n_out.checked_mul(n_in) != Some(filter.len()) {
        return Err(Error::ShapeMismatch);
    }
    check_bias(bias, n_out)?;
    q.check(n_out)?;
    let requant = q.multipliers.iter().zip(q.shifts);
    for (o, (out, (&m, &s))) in output.iter_mut().zip(requant).enumerate() {
        let row = span(filter, o * n_in, n_in)?;
        let mut acc: i32 = 0;
        for (&x, &w) in input.iter().zip(row) {
            let x = i32::from(x).wrapping_add(q.input_offset);
            acc = acc.wrapping_add(i32::from(w).wrapping_mul(x));
        }
        if let Some(&b) = bias.get(o) {
            acc = acc.wrapping_add(b);
        }
        *out = q.apply(acc, m, s);
    }
    Ok(())
}

/// int8 fully connected layer rescaled in `f64`, bit-exact with current LiteRT's reference
/// kernel (`BUILTIN_REF`): `output[o] = clamp((int32)round((double)acc · scales[o]) +
/// output_offset)` with `acc = Σ filter[o][i] · (input[i] + input_offset) + bias[o]`.
///
/// IEEE-754 multiplication and `round` are exact operations, so this gives the same bits on
/// every target; without a double-precision FPU it costs one soft-float multiply per output,
/// not per weight. Layouts and errors as [`fully_connected`], with `q.scales` holding one
/// scale per output.
pub fn fully_connected_float_requant(
    input: &[i8],
    filter: &[i8],
    bias: &[i32],
    q: &FloatRequantize,
    output: &mut [i8],
) -> Result<(), Error> {
    let n_in = input.len();
    let n_out = output.len();
    if n_out.checked_mul(n_in) != Some(filter.len()) {
        return Err(Error::ShapeMismatch);
    }
    check_bias(bias, n_out)?;
    if q.act_min > q.act_max {
        return Err(Error::InvalidParameter);
    }
    if q.scales.len() != n_out {
        return Err(Error::ShapeMismatch);
    }
    for (o, (out, &scale)) in output.iter_mut().zip(q.scales).enumerate() {
        let row = span(filter, o * n_in, n_in)?;
        let mut acc: i32 = 0;
        for (&x, &w) in input.iter().zip(row) {
            let x = i32::from(x).wrapping_add(q.input_offset);
            acc = acc.wrapping_add(i32::from(w).wrapping_mul(x));
        }
        if let Some(&b) = bias.get(o) {
            acc = acc.wrapping_add(b);
        }
        // `as` saturates (and maps NaN to 0) where the C++ cast is undefined.
        let scaled = crate::kernels::f64_rescale::rescale(acc, scale);
        let shifted = scaled.wrapping_add(q.output_offset);
        *out = clamp(shifted, i32::from(q.act_min), i32::from(q.act_max)) as i8;
    }
    Ok(())
}
