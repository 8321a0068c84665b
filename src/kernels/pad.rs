//! Constant padding of a tensor of up to four dimensions, as TFLite's `reference_ops::Pad`
//! (int8 `PAD` pads with the output zero point; input and output share their quantization,
//! so the kernel only moves bytes). Generic over the element type: the float twin is the same
//! code with `0.0`.

use super::broadcast::{element_count, Dims4};
use super::span_mut;
use crate::Error;

/// Elements added before and after each axis of a 4-D NHWC tensor, `[[before, after]; 4]`
/// (TFLite's `paddings` tensor, extended with `[0, 0]` rows in front for fewer dimensions).
pub type Paddings4 = [[usize; 2]; 4];

/// The shape `dims` padded by `paddings`, `None` on overflow.
pub fn padded_dims(dims: &Dims4, paddings: &Paddings4) -> Option<Dims4> {
    let mut out = [0usize; 4];
    for ((o, &d), [before, after]) in out.iter_mut().zip(dims).zip(paddings) {
        *o = d.checked_add(*before)?.checked_add(*after)?;
    }
    Some(out)
}

/// Copies `input` (shape `input_dims`) into the middle of `output` (shape `output_dims`,
/// which must be [`padded_dims`]) and fills the border with `pad_value` — for int8 `PAD`,
/// the output zero point.
///
/// Errors: [`Error::ShapeMismatch`] when `output_dims` is not the padded shape or a length
/// disagrees with its shape.
pub fn pad<T: Copy>(
    input: &[T],
    input_dims: &Dims4,
    paddings: &Paddings4,
    pad_value: T,
    output: &mut [T],
    output_dims: &Dims4,
) -> Result<(), Error> {
    if padded_dims(input_dims, paddings).as_ref() != Some(output_dims)
        || element_count(input_dims) != Some(input.len())
        || element_count(output_dims) != Some(output.len())
    {
        return Err(Error::ShapeMismatch);
    }
    let [_, out_h, out_w, out_c] = *output_dims;
    let [[n0, _], [h0, _], [w0, _], [c0, _]] = *paddings;
    let [in_n, in_h, in_w, in_c] = *input_dims;
    output.fill(pad_value);
    if in_c == 0 {
        return Ok(());
    }
    // Each input row (the channels of one pixel) lands at its padded position; every index
    // below is bounded by the output's element count, which fits a usize.
    let mut rows = input.chunks_exact(in_c);
    for b in n0..n0 + in_n {
        for y in h0..h0 + in_h {
            for x in w0..w0 + in_w {
                let src = rows.next().ok_or(Error::ShapeMismatch)?;
                let at = ((b * out_h + y) * out_w + x) * out_c + c0;
                span_mut(output, at, in_c)?.copy_from_slice(src);
            }
        }
    }
    Ok(())
}
