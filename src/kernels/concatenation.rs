//! Concatenation along one axis, as TFLite's `reference_ops::Concatenation`.
//!
//! LiteRT's int8 `CONCATENATION` only copies: its Prepare refuses inputs whose scale or zero
//! point differ from the output's (the converter inserts int8 → int8 `QUANTIZE` ops, see
//! [`requantize`](super::quantize::requantize), to make them equal), and it refuses a fused
//! activation. [`check_concatenation_quantization`] is that check. Generic over the element
//! type: the float twin is the same code.

use super::broadcast::{element_count, Dims4};
use super::{span, span_mut};
use crate::Error;

/// TFLite's int8 CONCATENATION Prepare check: every input's `(scale, zero_point)` equal to
/// the output's, bit for bit. [`Error::BadQuantization`] otherwise (LiteRT fails the op).
pub fn check_concatenation_quantization(
    inputs: &[(f32, i32)],
    output: (f32, i32),
) -> Result<(), Error> {
    let same = |(s, z): &(f32, i32)| s.to_bits() == output.0.to_bits() && *z == output.1;
    if inputs.iter().all(same) {
        Ok(())
    } else {
        Err(Error::BadQuantization)
    }
}

/// Writes the `inputs` (shapes `input_dims`, one per input) one after the other along `axis`
/// (0..4 of the NHWC shape; a tensor of rank `r` extended to 4-D has its axis `a` at
/// `a + 4 − r`) into `output`.
///
/// Errors: [`Error::InvalidParameter`] for an axis above 3 or no input;
/// [`Error::ShapeMismatch`] when `inputs` and `input_dims` differ in length, the inputs
/// differ from the output on another axis, their extents along `axis` do not add up to the
/// output's, or a length disagrees with its shape.
pub fn concatenation<T: Copy>(
    inputs: &[&[T]],
    input_dims: &[Dims4],
    axis: usize,
    output: &mut [T],
    output_dims: &Dims4,
) -> Result<(), Error> {
    if axis > 3 || inputs.is_empty() {
        return Err(Error::InvalidParameter);
    }
    if inputs.len() != input_dims.len() || element_count(output_dims) != Some(output.len()) {
        return Err(Error::ShapeMismatch);
    }
    let mut along = 0usize;
    for (data, dims) in inputs.iter().zip(input_dims) {
        let others_match = (0..4).all(|a| a == axis || dims[a] == output_dims[a]);
        if !others_match || element_count(dims) != Some(data.len()) {
            return Err(Error::ShapeMismatch);
        }
        along = along.checked_add(dims[axis]).ok_or(Error::ShapeMismatch)?;
    }
    if along != output_dims[axis] {
        return Err(Error::ShapeMismatch);
    }
    // Elements after `axis` form contiguous blocks; each input contributes one block of
    // `extent · inner` elements per index of the axes before `axis`.
    let outer: usize = output_dims[..axis].iter().product();
    let inner: usize = output_dims[axis + 1..].iter().product();
    let mut at = 0usize;
    for o in 0..outer {
        for (data, dims) in inputs.iter().zip(input_dims) {
            let block = dims[axis] * inner;
            let src = span(data, o * block, block)?;
            span_mut(output, at, block)?.copy_from_slice(src);
            at += block;
        }
    }
    Ok(())
}
