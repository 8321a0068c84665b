//! float32 2-D convolution, the twin of [`crate::kernels::conv2d()`].

use super::Activation;
use crate::kernels::{check_bias, check_window, window_taps};
use crate::{Error, Shape, Window};

/// float32 2-D convolution (batch 1, NHWC, dilation 1), with TFLite's
/// `reference_ops::Conv` semantics: the taps inside the input are summed (padding contributes
/// nothing), then the bias is added and the activation applied.
///
/// Layouts and errors as [`crate::kernels::conv2d()`]: `filter` is OHWI, `bias` is empty or one
/// value per output channel.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    input: &[f32],
    input_shape: Shape,
    filter: &[f32],
    bias: &[f32],
    window: &Window,
    act: Activation,
    output: &mut [f32],
    output_shape: Shape,
) -> Result<(), Error> {
    check_window(window)?;
    input_shape.check_len(input.len())?;
    output_shape.check_len(output.len())?;
    let in_c = input_shape.channels;
    let out_c = output_shape.channels;
    let taps_per_channel = window
        .kernel_h
        .checked_mul(window.kernel_w)
        .and_then(|t| t.checked_mul(in_c))
        .ok_or(Error::ShapeMismatch)?;
    if out_c.checked_mul(taps_per_channel) != Some(filter.len()) {
        return Err(Error::ShapeMismatch);
    }
    check_bias(bias, out_c)?;
    if output.is_empty() {
        return Ok(());
    }

    let (in_h, in_w) = (input_shape.height, input_shape.width);
    let kernel_row = window.kernel_w * in_c;
    let mut pixels = output.chunks_exact_mut(out_c);
    for oy in 0..output_shape.height {
        let (fy0, fy1, iy0) =
            window_taps(oy, window.stride_h, window.pad_top, window.kernel_h, in_h);
        for ox in 0..output_shape.width {
            let (fx0, fx1, ix0) =
                window_taps(ox, window.stride_w, window.pad_left, window.kernel_w, in_w);
            let run = (fx1 - fx0) * in_c;
            let Some(pixel) = pixels.next() else {
                return Ok(());
            };
            for (c, out) in pixel.iter_mut().enumerate() {
                let channel_filter = &filter[c * taps_per_channel..][..taps_per_channel];
                let mut total = 0.0f32;
                for (fy, iy) in (fy0..fy1).zip(iy0..) {
                    let input_run = &input[(iy * in_w + ix0) * in_c..][..run];
                    let filter_run = &channel_filter[fy * kernel_row + fx0 * in_c..][..run];
                    for (&x, &w) in input_run.iter().zip(filter_run) {
                        total += x * w;
                    }
                }
                let b = bias.get(c).copied().unwrap_or(0.0);
                *out = act.apply(total + b);
            }
        }
    }
    Ok(())
}
