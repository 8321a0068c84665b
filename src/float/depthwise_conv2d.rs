//! float32 depthwise convolution, the twin of [`crate::kernels::depthwise_conv2d()`].

use super::Activation;
use crate::kernels::{check_bias, check_window, window_taps};
use crate::{Error, Shape, Window};

/// float32 depthwise convolution (batch 1, NHWC, dilation 1): output channel
/// `ic · depth_multiplier + m` convolves input channel `ic` with filter channel
/// `ic · depth_multiplier + m`; then bias and activation.
///
/// Layouts and errors as [`crate::kernels::depthwise_conv2d()`].
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d(
    input: &[f32],
    input_shape: Shape,
    filter: &[f32],
    bias: &[f32],
    window: &Window,
    depth_multiplier: usize,
    act: Activation,
    output: &mut [f32],
    output_shape: Shape,
) -> Result<(), Error> {
    check_window(window)?;
    if depth_multiplier == 0 {
        return Err(Error::InvalidParameter);
    }
    input_shape.check_len(input.len())?;
    output_shape.check_len(output.len())?;
    let in_c = input_shape.channels;
    let out_c = output_shape.channels;
    if in_c.checked_mul(depth_multiplier) != Some(out_c) {
        return Err(Error::ShapeMismatch);
    }
    let filter_len = window
        .kernel_h
        .checked_mul(window.kernel_w)
        .and_then(|t| t.checked_mul(out_c));
    if filter_len != Some(filter.len()) {
        return Err(Error::ShapeMismatch);
    }
    check_bias(bias, out_c)?;
    if output.is_empty() {
        return Ok(());
    }

    let (in_h, in_w) = (input_shape.height, input_shape.width);
    let mut pixels = output.chunks_exact_mut(out_c);
    for oy in 0..output_shape.height {
        let (fy0, fy1, iy0) =
            window_taps(oy, window.stride_h, window.pad_top, window.kernel_h, in_h);
        for ox in 0..output_shape.width {
            let (fx0, fx1, ix0) =
                window_taps(ox, window.stride_w, window.pad_left, window.kernel_w, in_w);
            let Some(pixel) = pixels.next() else {
                return Ok(());
            };
            for (c, out) in pixel.iter_mut().enumerate() {
                let ic = c / depth_multiplier;
                let mut total = 0.0f32;
                for (fy, iy) in (fy0..fy1).zip(iy0..) {
                    for (fx, ix) in (fx0..fx1).zip(ix0..) {
                        total += input[(iy * in_w + ix) * in_c + ic]
                            * filter[(fy * window.kernel_w + fx) * out_c + c];
                    }
                }
                let b = bias.get(c).copied().unwrap_or(0.0);
                *out = act.apply(total + b);
            }
        }
    }
    Ok(())
}
