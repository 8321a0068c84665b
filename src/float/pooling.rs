//! float32 max and average pooling, the twins of [`crate::kernels::max_pool()`] and
//! [`crate::kernels::avg_pool()`].

use super::Activation;
use crate::kernels::{check_window, window_taps};
use crate::{Error, Shape, Window};

/// Shared argument checks of both pools.
fn check(
    input: &[f32],
    input_shape: Shape,
    window: &Window,
    output: &[f32],
    output_shape: Shape,
) -> Result<(), Error> {
    check_window(window)?;
    input_shape.check_len(input.len())?;
    output_shape.check_len(output.len())?;
    if input_shape.channels != output_shape.channels {
        return Err(Error::ShapeMismatch);
    }
    Ok(())
}

/// float32 max pool (batch 1, NHWC) over the window taps inside the input, then the
/// activation. A window entirely in the padding yields `act(f32::MIN)` (TFLite starts from
/// the lowest float).
///
/// Errors: as [`crate::kernels::max_pool()`].
pub fn max_pool(
    input: &[f32],
    input_shape: Shape,
    window: &Window,
    act: Activation,
    output: &mut [f32],
    output_shape: Shape,
) -> Result<(), Error> {
    check(input, input_shape, window, output, output_shape)?;
    let channels = output_shape.channels;
    if output.is_empty() {
        return Ok(());
    }
    let (in_h, in_w) = (input_shape.height, input_shape.width);
    let mut pixels = output.chunks_exact_mut(channels);
    for oy in 0..output_shape.height {
        let (fy0, fy1, iy0) =
            window_taps(oy, window.stride_h, window.pad_top, window.kernel_h, in_h);
        for ox in 0..output_shape.width {
            let (fx0, fx1, ix0) =
                window_taps(ox, window.stride_w, window.pad_left, window.kernel_w, in_w);
            let Some(pixel) = pixels.next() else {
                return Ok(());
            };
            pixel.fill(f32::MIN);
            for iy in iy0..iy0 + (fy1 - fy0) {
                for ix in ix0..ix0 + (fx1 - fx0) {
                    let tap = &input[(iy * in_w + ix) * channels..][..channels];
                    for (out, &x) in pixel.iter_mut().zip(tap) {
                        *out = out.max(x);
                    }
                }
            }
            for out in pixel.iter_mut() {
                *out = act.apply(*out);
            }
        }
    }
    Ok(())
}

/// float32 average pool (batch 1, NHWC): the mean over the window taps inside the input only
/// (the divisor is their count, as in TFLite), then the activation.
///
/// Errors: as [`crate::kernels::avg_pool()`], including [`Error::InvalidParameter`] when a
/// window lies entirely in the padding; checks happen before anything is written.
pub fn avg_pool(
    input: &[f32],
    input_shape: Shape,
    window: &Window,
    act: Activation,
    output: &mut [f32],
    output_shape: Shape,
) -> Result<(), Error> {
    check(input, input_shape, window, output, output_shape)?;
    let channels = output_shape.channels;
    if output.is_empty() {
        return Ok(());
    }
    let (in_h, in_w) = (input_shape.height, input_shape.width);
    let rows_empty = (0..output_shape.height).any(|oy| {
        let (f0, f1, _) = window_taps(oy, window.stride_h, window.pad_top, window.kernel_h, in_h);
        f0 == f1
    });
    let cols_empty = (0..output_shape.width).any(|ox| {
        let (f0, f1, _) = window_taps(ox, window.stride_w, window.pad_left, window.kernel_w, in_w);
        f0 == f1
    });
    if rows_empty || cols_empty {
        return Err(Error::InvalidParameter);
    }

    let mut pixels = output.chunks_exact_mut(channels);
    for oy in 0..output_shape.height {
        let (fy0, fy1, iy0) =
            window_taps(oy, window.stride_h, window.pad_top, window.kernel_h, in_h);
        for ox in 0..output_shape.width {
            let (fx0, fx1, ix0) =
                window_taps(ox, window.stride_w, window.pad_left, window.kernel_w, in_w);
            let count = ((fy1 - fy0) * (fx1 - fx0)) as f32;
            let Some(pixel) = pixels.next() else {
                return Ok(());
            };
            pixel.fill(0.0);
            for iy in iy0..iy0 + (fy1 - fy0) {
                for ix in ix0..ix0 + (fx1 - fx0) {
                    let tap = &input[(iy * in_w + ix) * channels..][..channels];
                    for (out, &x) in pixel.iter_mut().zip(tap) {
                        *out += x;
                    }
                }
            }
            for out in pixel.iter_mut() {
                *out = act.apply(*out / count);
            }
        }
    }
    Ok(())
}
