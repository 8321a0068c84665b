//! float32 constant padding, the twin of [`crate::kernels::pad()`] (padding with `0.0`, as
//! TFLite's float PAD does).

use crate::kernels::broadcast::Dims4;
use crate::kernels::pad::Paddings4;
use crate::Error;

/// `input` in the middle of `output`, the border zero. Errors: as [`crate::kernels::pad()`].
pub fn pad(
    input: &[f32],
    input_dims: &Dims4,
    paddings: &Paddings4,
    output: &mut [f32],
    output_dims: &Dims4,
) -> Result<(), Error> {
    crate::kernels::pad(input, input_dims, paddings, 0.0, output, output_dims)
}
