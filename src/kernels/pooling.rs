//! int8 max and average pooling, bit-exact with TFLite's `reference_integer_ops::MaxPool` and
//! `reference_integer_ops::AveragePool`.
//!
//! Input and output share their quantization (TFLite requires it), so no rescaling happens;
//! `act_min`/`act_max` are the fused activation's clamp in that domain.

use super::{check_window, span, window_taps};
use crate::{Error, Shape, Window};

/// Shared argument checks of both pools.
fn check(
    input: &[i8],
    input_shape: Shape,
    window: &Window,
    act_min: i8,
    act_max: i8,
    output: &[i8],
    output_shape: Shape,
) -> Result<(), Error> {
    check_window(window)?;
    if act_min > act_max {
        return Err(Error::InvalidParameter);
    }
    input_shape.check_len(input.len())?;
    output_shape.check_len(output.len())?;
    if input_shape.channels != output_shape.channels {
        return Err(Error::ShapeMismatch);
    }
    Ok(())
}

/// int8 max pool (batch 1, NHWC): the maximum over the window taps inside the input (padding
/// never wins), clamped to `[act_min, act_max]`. A window entirely in the padding yields
/// `clamp(−128)`, as in TFLite.
///
/// Errors: [`Error::ShapeMismatch`] when a length or the channel counts disagree,
/// [`Error::InvalidParameter`] for a zero kernel size or stride or `act_min > act_max`.
#[allow(clippy::too_many_arguments)]
pub fn max_pool(
    input: &[i8],
    input_shape: Shape,
    window: &Window,
    act_min: i8,
    act_max: i8,
    output: &mut [i8],
    output_shape: Shape,
) -> Result<(), Error> {
    check(
        input,
        input_shape,
        window,
        act_min,
        act_max,
        output,
        output_shape,
    )?;
    let channels = output_shape.channels;
    // `channels` is 0 only when `output` is empty; saying so lets `chunks_exact_mut` and
    // `step_by` go unchecked.
    if output.is_empty() || channels == 0 {
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
            pixel.fill(i8::MIN);
            for iy in iy0..iy0 + (fy1 - fy0) {
                for ix in ix0..ix0 + (fx1 - fx0) {
                    let tap = span(input, (iy * in_w + ix) * channels, channels)?;
                    for (out, &x) in pixel.iter_mut().zip(tap) {
                        *out = (*out).max(x);
                    }
                }
            }
            for out in pixel.iter_mut() {
                *out = (*out).clamp(act_min, act_max);
            }
        }
    }
    Ok(())
}

/// int8 average pool (batch 1, NHWC): the mean of the window taps inside the input only (the
/// divisor is the number of such taps, not the kernel area), rounded half away from zero as
/// TFLite does (`acc > 0 ? (acc + n/2) / n : (acc − n/2) / n` with truncating division), then
/// clamped to `[act_min, act_max]`.
///
/// Errors: as [`max_pool`], plus [`Error::InvalidParameter`] when some window lies entirely
/// in the padding (TFLite fails the op then). All checks happen before anything is written.
#[allow(clippy::too_many_arguments)]
pub fn avg_pool(
    input: &[i8],
    input_shape: Shape,
    window: &Window,
    act_min: i8,
    act_max: i8,
    output: &mut [i8],
    output_shape: Shape,
) -> Result<(), Error> {
    check(
        input,
        input_shape,
        window,
        act_min,
        act_max,
        output,
        output_shape,
    )?;
    let channels = output_shape.channels;
    // `channels` is 0 only when `output` is empty; saying so lets `chunks_exact_mut` and
    // `step_by` go unchecked.
    if output.is_empty() || channels == 0 {
        return Ok(());
    }
    let (in_h, in_w) = (input_shape.height, input_shape.width);
    // A window is empty exactly when its row range or its column range is.
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
    // The tap count must fit TFLite's `int` divisor.
    let max_count = window
        .kernel_h
        .min(in_h)
        .checked_mul(window.kernel_w.min(in_w));
    if max_count.is_none_or(|n| i32::try_from(n).is_err()) {
        return Err(Error::InvalidParameter);
    }

    let mut pixels = output.chunks_exact_mut(channels);
    for oy in 0..output_shape.height {
        let (fy0, fy1, iy0) =
            window_taps(oy, window.stride_h, window.pad_top, window.kernel_h, in_h);
        for ox in 0..output_shape.width {
            let (fx0, fx1, ix0) =
                window_taps(ox, window.stride_w, window.pad_left, window.kernel_w, in_w);
            // Checked above to be in 1..=i32::MAX; the error is never returned, but it keeps
            // the divisions below free of a zero-divisor panic path.
            let n = i32::try_from((fy1 - fy0) * (fx1 - fx0)).unwrap_or(0);
            if n <= 0 {
                return Err(Error::InvalidParameter);
            }
            let Some(pixel) = pixels.next() else {
                return Ok(());
            };
            for (c, out) in pixel.iter_mut().enumerate() {
                let mut acc: i32 = 0;
                for iy in iy0..iy0 + (fy1 - fy0) {
                    let row = span(input, (iy * in_w + ix0) * channels, (fx1 - fx0) * channels)?;
                    for x in row.iter().skip(c).step_by(channels) {
                        acc = acc.wrapping_add(i32::from(*x));
                    }
                }
                let mean = if acc > 0 {
                    acc.wrapping_add(n / 2) / n
                } else {
                    acc.wrapping_sub(n / 2) / n
                };
                *out = mean.clamp(i32::from(act_min), i32::from(act_max)) as i8;
            }
        }
    }
    Ok(())
}
