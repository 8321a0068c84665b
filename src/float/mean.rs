//! float32 mean over height and width, the twin of [`crate::kernels::mean_hw()`].

use crate::{Error, Shape};

/// `output[c]` = the mean of channel `c` over the `height · width` pixels of a batch-1 NHWC
/// tensor (summed in pixel order, then divided, as TFLite's float reference kernel does).
///
/// Errors: [`Error::ShapeMismatch`] as [`crate::kernels::mean_hw()`];
/// [`Error::InvalidParameter`] for an input with no pixel.
pub fn mean_hw(input: &[f32], input_shape: Shape, output: &mut [f32]) -> Result<(), Error> {
    input_shape.check_len(input.len())?;
    let channels = input_shape.channels;
    if output.len() != channels {
        return Err(Error::ShapeMismatch);
    }
    let count = input_shape
        .height
        .checked_mul(input_shape.width)
        .filter(|&n| n > 0)
        .ok_or(Error::InvalidParameter)?;
    for (c, out) in output.iter_mut().enumerate() {
        let sum: f32 = input.iter().skip(c).step_by(channels).sum();
        *out = sum / count as f32;
    }
    Ok(())
}
