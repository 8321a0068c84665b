//! Optimized int8 average pool, bit-exact with [`avg_pool`](crate::kernels::avg_pool).
//!
//! The reference sums one channel at a time, striding through the window; here each
//! window row is one contiguous run of pixels that is added, channel-inner, into a row of
//! 32-bit sums on the stack ([`MAX_CHANNELS`] of them; wider layers use the reference).

use crate::kernels::{self, check_window, clamp, span, window_taps};
use crate::{Error, Shape, Window};

/// Most channels this kernel takes (1 KiB of sums on the stack).
pub const MAX_CHANNELS: usize = 256;

/// int8 average pool; arguments, results and errors exactly as
/// [`kernels::avg_pool`]'s, which it calls for more than [`MAX_CHANNELS`] channels.
pub fn avg_pool(
    input: &[i8],
    input_shape: Shape,
    window: &Window,
    act_min: i8,
    act_max: i8,
    output: &mut [i8],
    output_shape: Shape,
) -> Result<(), Error> {
    let channels = output_shape.channels;
    if channels > MAX_CHANNELS {
        return kernels::avg_pool(
            input,
            input_shape,
            window,
            act_min,
            act_max,
            output,
            output_shape,
        );
    }
    // The reference's checks, in its order.
    check_window(window)?;
    if act_min > act_max {
        return Err(Error::InvalidParameter);
    }
    input_shape.check_len(input.len())?;
    output_shape.check_len(output.len())?;
    if input_shape.channels != channels {
        return Err(Error::ShapeMismatch);
    }
    if output.is_empty() || channels == 0 {
        return Ok(());
    }
    let (in_h, in_w) = (input_shape.height, input_shape.width);
    let rows = |oy| window_taps(oy, window.stride_h, window.pad_top, window.kernel_h, in_h);
    let cols = |ox| window_taps(ox, window.stride_w, window.pad_left, window.kernel_w, in_w);
    let empty = (0..output_shape.height).any(|oy| rows(oy).0 == rows(oy).1)
        || (0..output_shape.width).any(|ox| cols(ox).0 == cols(ox).1);
    if empty {
        return Err(Error::InvalidParameter);
    }
    let max_count = window
        .kernel_h
        .min(in_h)
        .checked_mul(window.kernel_w.min(in_w));
    if max_count.is_none_or(|n| i32::try_from(n).is_err()) {
        return Err(Error::InvalidParameter);
    }

    let mut sums = [0i32; MAX_CHANNELS];
    let sums = sums.get_mut(..channels).ok_or(Error::ShapeMismatch)?;
    let (lo, hi) = (i32::from(act_min), i32::from(act_max));
    let mut pixels = output.chunks_exact_mut(channels);
    for oy in 0..output_shape.height {
        let (fy0, fy1, iy0) = rows(oy);
        for ox in 0..output_shape.width {
            let (fx0, fx1, ix0) = cols(ox);
            let n = i32::try_from((fy1 - fy0) * (fx1 - fx0)).unwrap_or(0);
            if n <= 0 {
                return Err(Error::InvalidParameter);
            }
            let Some(pixel) = pixels.next() else {
                return Ok(());
            };
            sums.fill(0);
            for iy in iy0..iy0 + (fy1 - fy0) {
                let run = span(input, (iy * in_w + ix0) * channels, (fx1 - fx0) * channels)?;
                for tap in run.chunks_exact(channels) {
                    for (s, &x) in sums.iter_mut().zip(tap) {
                        *s = s.wrapping_add(i32::from(x));
                    }
                }
            }
            for (out, &acc) in pixel.iter_mut().zip(sums.iter()) {
                let mean = if acc > 0 {
                    acc.wrapping_add(n / 2) / n
                } else {
                    acc.wrapping_sub(n / 2) / n
                };
                *out = clamp(mean, lo, hi) as i8;
            }
        }
    }
    Ok(())
}
