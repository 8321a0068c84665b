//! int8 depthwise convolution, bit-exact with TFLite's
//! `reference_integer_ops::DepthwiseConvPerChannel`.

use super::{at, check_bias, check_window, window_taps, Requantize};
use crate::{Error, Shape, Window};

/// int8 depthwise convolution (batch 1, NHWC, dilation 1) with per-channel requantization.
///
/// Output channel `ic · depth_multiplier + m` convolves input channel `ic` with filter
/// channel `ic · depth_multiplier + m`.
///
/// * `filter`: `1 × kernel_h × kernel_w × output_shape.channels`, where
///   `output_shape.channels = input_shape.channels · depth_multiplier`.
/// * `bias`: empty, or one value per output channel.
/// * `q`: one multiplier and shift per output channel.
///
/// Errors: [`Error::ShapeMismatch`] when a slice length or the channel count disagrees,
/// [`Error::InvalidParameter`] for a zero kernel size, stride or depth multiplier, or
/// `act_min > act_max`.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d(
    input: &[i8],
    input_shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    depth_multiplier: usize,
    q: &Requantize,
    output: &mut [i8],
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
    q.check(out_c)?;
    // `out_c` is 0 only when `output` is empty; saying so lets `chunks_exact_mut` go unchecked.
    if output.is_empty() || out_c == 0 {
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
            let requant = q.multipliers.iter().zip(q.shifts);
            for (c, (out, (&m, &s))) in pixel.iter_mut().zip(requant).enumerate() {
                let ic = c / depth_multiplier;
                let mut acc: i32 = 0;
                for (fy, iy) in (fy0..fy1).zip(iy0..) {
                    for (fx, ix) in (fx0..fx1).zip(ix0..) {
                        let x = i32::from(at(input, (iy * in_w + ix) * in_c + ic)?);
                        let w = i32::from(at(filter, (fy * window.kernel_w + fx) * out_c + c)?);
                        acc = acc.wrapping_add(w.wrapping_mul(x.wrapping_add(q.input_offset)));
                    }
                }
                if let Some(&b) = bias.get(c) {
                    acc = acc.wrapping_add(b);
                }
                *out = q.apply(acc, m, s);
            }
        }
    }
    Ok(())
}
