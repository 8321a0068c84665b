//! int8 2-D convolution, bit-exact with TFLite's `reference_integer_ops::ConvPerChannel`.

use super::{check_bias, check_window, span, window_taps, Requantize};
use crate::{Error, Shape, Window};

/// int8 2-D convolution (batch 1, NHWC, dilation 1) with per-channel requantization.
///
/// * `filter`: OHWI, `output_shape.channels × kernel_h × kernel_w × input_shape.channels`.
/// * `bias`: empty, or one value per output channel.
/// * `q`: one multiplier and shift per output channel (repeat the same value for a
///   per-tensor quantized filter).
///
/// For each output `(y, x, c)`: `acc = Σ filter · (input + input_offset)` over the taps that
/// fall inside the input (padding contributes nothing), plus `bias[c]`, then
/// [`Requantize`]. The output size is taken from `output_shape`; taps outside the input are
/// skipped whatever the geometry, so no combination of arguments reads out of bounds.
///
/// Errors: [`Error::ShapeMismatch`] when a slice length disagrees with the shapes,
/// [`Error::InvalidParameter`] for a zero kernel size or stride or `act_min > act_max`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    input: &[i8],
    input_shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    q: &Requantize,
    output: &mut [i8],
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
    q.check(out_c)?;
    // `out_c` is 0 only when `output` is empty; saying so lets `chunks_exact_mut` go unchecked.
    if output.is_empty() || out_c == 0 {
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
            // The taps inside the input form, on every filter row, one contiguous run of
            // `run` values in both the input row and the filter row.
            let run = (fx1 - fx0) * in_c;
            let Some(pixel) = pixels.next() else {
                return Ok(());
            };
            let requant = q.multipliers.iter().zip(q.shifts);
            for (c, (out, (&m, &s))) in pixel.iter_mut().zip(requant).enumerate() {
                let channel_filter = span(filter, c * taps_per_channel, taps_per_channel)?;
                let mut acc: i32 = 0;
                for (fy, iy) in (fy0..fy1).zip(iy0..) {
                    let input_run = span(input, (iy * in_w + ix0) * in_c, run)?;
                    let filter_run = span(channel_filter, fy * kernel_row + fx0 * in_c, run)?;
                    for (&x, &w) in input_run.iter().zip(filter_run) {
                        let x = i32::from(x).wrapping_add(q.input_offset);
                        acc = acc.wrapping_add(i32::from(w).wrapping_mul(x));
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
