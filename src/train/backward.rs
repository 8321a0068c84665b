//! Fixed-point backward kernels.
//!
//! Activation gradients are `dL/dx` of the *real* activation values in Q7.24 ([`GRAD_BITS`]),
//! whatever the tensor's own scale, so a gradient crosses a layer without rescaling to the
//! next tensor's quantization. Parameter gradients are not kept as such: every kernel that
//! touches parameters adds the *step* `rate · gradient` directly to an accumulator in master
//! units (1/2^16 of an int8 weight step, or 1/2^FB of an int32 bias step), the per-channel
//! `rate` folding the learning rate, the batch size and the quantization scales into one
//! [`Scale`]. Layouts are the forward kernels' (NHWC, OHWI, `[outputs][inputs]`).
//!
//! All kernels check their slice lengths and return
//! [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) instead of panicking; all arithmetic
//! saturates.

use super::fixed::{saturate_i32, shift_round, Scale, GRAD_BITS, LOSS_BITS};
use crate::kernels::fixedpoint::exp_on_negative_values;
use crate::kernels::{at, span, span_mut, SoftmaxParams};
use crate::quant::multiply_by_quantized_multiplier_greater_than_one;
use crate::{Error, Shape, Window};

/// Coefficients are carried with this many fractional bits between the per-channel rate and
/// the per-tap input value.
const COEF_BITS: i32 = 32;
/// Largest coefficient magnitude: its product with an input difference (|d| ≤ 255) must fit
/// an `i64`.
const COEF_LIMIT: i64 = 1 << 54;

/// Zeroes the gradient wherever the fused activation clamped the output: at `act_min` when
/// that is a ReLU (`act_min ≥ zero_point`, i.e. the clamp sits at a real value ≥ 0), at
/// `act_max` when it is a ReLU6-style upper clamp (`act_max < 127`). At the bare int8 range
/// ends the gradient passes straight through: saturation there is an artifact of the output
/// quantization, not part of the function being trained.
pub fn activation_mask(
    output: &[i8],
    zero_point: i32,
    act_min: i8,
    act_max: i8,
    grad: &mut [i32],
) -> Result<(), Error> {
    if output.len() != grad.len() {
        return Err(Error::ShapeMismatch);
    }
    let lower = i32::from(act_min) >= zero_point;
    let upper = act_max < i8::MAX;
    for (g, &y) in grad.iter_mut().zip(output) {
        if (lower && y <= act_min) || (upper && y >= act_max) {
            *g = 0;
        }
    }
    Ok(())
}

/// Softmax + cross-entropy on int8 logits: writes `dL/dz = p − onehot(label)` (Q7.24, one per
/// logit, `z` the real logit) to `grad` and returns the loss `−ln p[label]` in Q16.
///
/// The exponentials are the int8 softmax op's own (gemmlowp `exp_on_negative_values` of the
/// scaled difference to the row maximum, `params` as in the model's Softmax op), but `p` is
/// taken to 24 bits instead of the output's 8, so small probabilities still give gradients.
pub fn softmax_cross_entropy(
    logits: &[i8],
    params: &SoftmaxParams,
    label: usize,
    grad: &mut [i32],
) -> Result<i64, Error> {
    if logits.len() != grad.len() || logits.is_empty() {
        return Err(Error::ShapeMismatch);
    }
    let z_label = i32::from(*logits.get(label).ok_or(Error::InvalidParameter)?);
    let max = i32::from(logits.iter().copied().max().unwrap_or(i8::MIN));
    let exp = |z: i8| -> i64 {
        let diff = i32::from(z) - max;
        if diff < params.diff_min {
            return 0;
        }
        let scaled = multiply_by_quantized_multiplier_greater_than_one(
            diff,
            params.input_multiplier,
            params.input_left_shift,
        );
        i64::from(exp_on_negative_values::<5>(scaled).max(0))
    };
    // The row maximum contributes exp(0) ≈ 2^31, so the sum is never 0.
    let sum: i64 = logits.iter().map(|&z| exp(z)).sum::<i64>().max(1);
    for (j, (g, &z)) in grad.iter_mut().zip(logits).enumerate() {
        let p = ((i128::from(exp(z)) << GRAD_BITS) + i128::from(sum / 2)) / i128::from(sum);
        let target = if j == label { 1i128 << GRAD_BITS } else { 0 };
        *g = (p - target) as i32;
    }
    // −ln p = ln(Σ exp(d_j·s)) − d_label·s, with d = z − max: the second term is exact even
    // when exp(d_label·s) underflows. β·s = multiplier · 2^(left_shift − 31 − 26).
    let ln_sum = super::fixed::ln_q16(sum.unsigned_abs(), 31);
    let d = i64::from(max - z_label);
    let term = shift_round(
        d * i64::from(params.input_multiplier),
        57 - params.input_left_shift - LOSS_BITS,
    );
    Ok(ln_sum.saturating_add(term))
}

/// Input gradient of a fully connected layer: `grad_in[i] = Σ_o grad_out[o] · s_w[o] ·
/// weights[o][i]`, with the int8 weights the forward pass used (straight-through) and
/// `weight_scale(o) = s_w[o]`.
pub fn fully_connected_input_grad(
    grad_out: &[i32],
    weights: &[i8],
    weight_scale: impl Fn(usize) -> Scale,
    grad_in: &mut [i32],
) -> Result<(), Error> {
    let n_in = grad_in.len();
    if grad_out.len().checked_mul(n_in) != Some(weights.len()) {
        return Err(Error::ShapeMismatch);
    }
    grad_in.fill(0);
    // No inputs, nothing to accumulate (and `chunks_exact` needs a non-zero size).
    if n_in == 0 {
        return Ok(());
    }
    for (o, (&g, row)) in grad_out.iter().zip(weights.chunks_exact(n_in)).enumerate() {
        if g == 0 {
            continue;
        }
        let gs = weight_scale(o).apply(i64::from(g), 0);
        for (gi, &w) in grad_in.iter_mut().zip(row) {
            *gi = saturate_i32(i64::from(*gi).saturating_add(gs.saturating_mul(i64::from(w))));
        }
    }
    Ok(())
}

/// The per-tap coefficient `rate · g` in Q32, bounded so that `coefficient · (x − zp)` fits.
#[inline]
fn coefficient(rate: Scale, g: i32) -> i64 {
    rate.apply(i64::from(g), COEF_BITS)
        .clamp(-COEF_LIMIT, COEF_LIMIT)
}

#[inline]
fn add_step(acc: &mut i32, coef: i64, d: i32) {
    let step = shift_round(coef * i64::from(d), COEF_BITS);
    *acc = saturate_i32(i64::from(*acc).saturating_add(step));
}

/// Weight step of a fully connected layer: `acc[o][i] += rate(o) · grad_out[o] · (input[i] −
/// input_zero_point)`, rounded to the nearest master unit. With `rate(o) = lr · s_x · 2^16 /
/// (s_w[o] · 2^24)` this is `lr · dL/dW` in master units.
pub fn fully_connected_weight_grad(
    input: &[i8],
    input_zero_point: i32,
    grad_out: &[i32],
    rate: impl Fn(usize) -> Scale,
    acc: &mut [i32],
) -> Result<(), Error> {
    let n_in = input.len();
    if grad_out.len().checked_mul(n_in) != Some(acc.len()) || n_in == 0 {
        return Err(Error::ShapeMismatch);
    }
    for (o, (&g, row)) in grad_out.iter().zip(acc.chunks_exact_mut(n_in)).enumerate() {
        if g == 0 {
            continue;
        }
        let coef = coefficient(rate(o), g);
        for (a, &x) in row.iter_mut().zip(input) {
            add_step(a, coef, i32::from(x) - input_zero_point);
        }
    }
    Ok(())
}

/// Bias step of a fully connected or convolution layer: `acc[c] += rate(c) · Σ_pos
/// grad_out[pos][c]`, the gradient having `acc.len()` channels innermost.
pub fn bias_grad(
    grad_out: &[i32],
    rate: impl Fn(usize) -> Scale,
    acc: &mut [i32],
) -> Result<(), Error> {
    let channels = acc.len();
    if channels == 0 || grad_out.len() % channels != 0 {
        return Err(Error::ShapeMismatch);
    }
    for (c, a) in acc.iter_mut().enumerate() {
        let sum: i64 = grad_out
            .iter()
            .skip(c)
            .step_by(channels)
            .map(|&g| i64::from(g))
            .sum();
        let step = rate(c).apply(sum, 0);
        *a = saturate_i32(i64::from(*a).saturating_add(step));
    }
    Ok(())
}

/// Output positions with the taps of their window that fall inside the input, in the
/// forward kernels' order: calls `f(out_index, (fy0, fy1, iy0), (fx0, fx1, ix0))`, stopping
/// at the first error.
fn for_each_window(
    in_shape: Shape,
    out_shape: Shape,
    window: &Window,
    mut f: impl FnMut(usize, (usize, usize, usize), (usize, usize, usize)) -> Result<(), Error>,
) -> Result<(), Error> {
    use crate::kernels::window_taps;
    for oy in 0..out_shape.height {
        let ty = window_taps(
            oy,
            window.stride_h,
            window.pad_top,
            window.kernel_h,
            in_shape.height,
        );
        for ox in 0..out_shape.width {
            let tx = window_taps(
                ox,
                window.stride_w,
                window.pad_left,
                window.kernel_w,
                in_shape.width,
            );
            f(oy * out_shape.width + ox, ty, tx)?;
        }
    }
    Ok(())
}

fn check_conv(
    in_shape: Shape,
    in_len: usize,
    out_shape: Shape,
    out_len: usize,
    window: &Window,
    filter_len: usize,
) -> Result<usize, Error> {
    crate::kernels::check_window(window)?;
    in_shape.check_len(in_len)?;
    out_shape.check_len(out_len)?;
    let taps = window
        .kernel_h
        .checked_mul(window.kernel_w)
        .and_then(|t| t.checked_mul(in_shape.channels))
        .ok_or(Error::ShapeMismatch)?;
    if out_shape.channels.checked_mul(taps) != Some(filter_len) {
        return Err(Error::ShapeMismatch);
    }
    Ok(taps)
}

/// Input gradient of a 2-D convolution: every output gradient, times its channel's
/// `weight_scale(c) = s_w[c]` and the int8 filter tap, is added to the input position the tap
/// read. Padding taps receive nothing.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_input_grad(
    grad_out: &[i32],
    out_shape: Shape,
    filter: &[i8],
    window: &Window,
    weight_scale: impl Fn(usize) -> Scale,
    grad_in: &mut [i32],
    in_shape: Shape,
) -> Result<(), Error> {
    let taps = check_conv(
        in_shape,
        grad_in.len(),
        out_shape,
        grad_out.len(),
        window,
        filter.len(),
    )?;
    grad_in.fill(0);
    let (in_w, in_c, out_c) = (in_shape.width, in_shape.channels, out_shape.channels);
    let kernel_row = window.kernel_w * in_c;
    for_each_window(
        in_shape,
        out_shape,
        window,
        |pos, (fy0, fy1, iy0), (fx0, fx1, ix0)| {
            let run = (fx1 - fx0) * in_c;
            for (c, &g) in span(grad_out, pos * out_c, out_c)?.iter().enumerate() {
                if g == 0 {
                    continue;
                }
                let gs = weight_scale(c).apply(i64::from(g), 0);
                let channel_filter = span(filter, c * taps, taps)?;
                for (fy, iy) in (fy0..fy1).zip(iy0..) {
                    let grad_run = span_mut(grad_in, (iy * in_w + ix0) * in_c, run)?;
                    let filter_run = span(channel_filter, fy * kernel_row + fx0 * in_c, run)?;
                    for (gi, &w) in grad_run.iter_mut().zip(filter_run) {
                        *gi = saturate_i32(
                            i64::from(*gi).saturating_add(gs.saturating_mul(i64::from(w))),
                        );
                    }
                }
            }
            Ok(())
        },
    )
}

/// Weight step of a 2-D convolution: `acc[c][tap] += rate(c) · Σ_pos grad_out[pos][c] ·
/// (input[tap(pos)] − input_zero_point)`, OHWI like the filter.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_weight_grad(
    input: &[i8],
    in_shape: Shape,
    input_zero_point: i32,
    grad_out: &[i32],
    out_shape: Shape,
    window: &Window,
    rate: impl Fn(usize) -> Scale,
    acc: &mut [i32],
) -> Result<(), Error> {
    conv2d_weight_grad_channels(
        input,
        in_shape,
        input_zero_point,
        grad_out,
        out_shape,
        window,
        &[],
        rate,
        acc,
    )
}

/// [`conv2d_weight_grad`] of some output channels only (a sparse update): `acc` holds the
/// filters of `channels` one after the other, in that order; an empty `channels` means all
/// of them, in order.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_weight_grad_channels(
    input: &[i8],
    in_shape: Shape,
    input_zero_point: i32,
    grad_out: &[i32],
    out_shape: Shape,
    window: &Window,
    channels: &[u16],
    rate: impl Fn(usize) -> Scale,
    acc: &mut [i32],
) -> Result<(), Error> {
    let out_c = out_shape.channels;
    let taps = window
        .kernel_h
        .checked_mul(window.kernel_w)
        .and_then(|t| t.checked_mul(in_shape.channels))
        .ok_or(Error::ShapeMismatch)?;
    let filter_len = out_c.checked_mul(taps).ok_or(Error::ShapeMismatch)?;
    let picked = if channels.is_empty() {
        out_c
    } else {
        channels.len()
    };
    if picked.checked_mul(taps) != Some(acc.len()) {
        return Err(Error::ShapeMismatch);
    }
    check_conv(
        in_shape,
        input.len(),
        out_shape,
        grad_out.len(),
        window,
        filter_len,
    )?;
    if channels.iter().any(|&c| usize::from(c) >= out_c) {
        return Err(Error::ShapeMismatch);
    }
    let channel = |k: usize| channels.get(k).map_or(k, |&c| usize::from(c));
    let (in_w, in_c) = (in_shape.width, in_shape.channels);
    let kernel_row = window.kernel_w * in_c;
    for_each_window(
        in_shape,
        out_shape,
        window,
        |pos, (fy0, fy1, iy0), (fx0, fx1, ix0)| {
            let run = (fx1 - fx0) * in_c;
            let grads = span(grad_out, pos * out_c, out_c)?;
            for k in 0..picked {
                let c = channel(k);
                let g = at(grads, c)?;
                if g == 0 {
                    continue;
                }
                let coef = coefficient(rate(c), g);
                let channel_acc = span_mut(acc, k * taps, taps)?;
                for (fy, iy) in (fy0..fy1).zip(iy0..) {
                    let input_run = span(input, (iy * in_w + ix0) * in_c, run)?;
                    let acc_run = span_mut(channel_acc, fy * kernel_row + fx0 * in_c, run)?;
                    for (a, &x) in acc_run.iter_mut().zip(input_run) {
                        add_step(a, coef, i32::from(x) - input_zero_point);
                    }
                }
            }
            Ok(())
        },
    )
}

/// Max pool backward: each output gradient goes to the input that won the window (the first
/// maximum in the forward kernel's scan order). Input and output share their scale, so the
/// real-valued gradient passes unchanged.
pub fn max_pool_backward(
    input: &[i8],
    in_shape: Shape,
    window: &Window,
    grad_out: &[i32],
    out_shape: Shape,
    grad_in: &mut [i32],
) -> Result<(), Error> {
    crate::kernels::check_window(window)?;
    in_shape.check_len(input.len())?;
    in_shape.check_len(grad_in.len())?;
    out_shape.check_len(grad_out.len())?;
    if in_shape.channels != out_shape.channels {
        return Err(Error::ShapeMismatch);
    }
    grad_in.fill(0);
    let (in_w, ch) = (in_shape.width, in_shape.channels);
    for_each_window(
        in_shape,
        out_shape,
        window,
        |pos, (fy0, fy1, iy0), (fx0, fx1, ix0)| {
            for (c, &g) in span(grad_out, pos * ch, ch)?.iter().enumerate() {
                let mut best: Option<(usize, i8)> = None;
                for iy in iy0..iy0 + (fy1 - fy0) {
                    for ix in ix0..ix0 + (fx1 - fx0) {
                        let i = (iy * in_w + ix) * ch + c;
                        let x = at(input, i)?;
                        if best.is_none_or(|(_, b)| x > b) {
                            best = Some((i, x));
                        }
                    }
                }
                if let Some((i, _)) = best {
                    let gi = grad_in.get_mut(i).ok_or(Error::ShapeMismatch)?;
                    *gi = gi.saturating_add(g);
                }
            }
            Ok(())
        },
    )
}

/// Average pool backward: each output gradient is shared equally (rounded to nearest) among
/// the taps of its window that lie inside the input, the forward kernel's divisor.
pub fn avg_pool_backward(
    in_shape: Shape,
    window: &Window,
    grad_out: &[i32],
    out_shape: Shape,
    grad_in: &mut [i32],
) -> Result<(), Error> {
    crate::kernels::check_window(window)?;
    in_shape.check_len(grad_in.len())?;
    out_shape.check_len(grad_out.len())?;
    if in_shape.channels != out_shape.channels {
        return Err(Error::ShapeMismatch);
    }
    grad_in.fill(0);
    let (in_w, ch) = (in_shape.width, in_shape.channels);
    for_each_window(
        in_shape,
        out_shape,
        window,
        |pos, (fy0, fy1, iy0), (fx0, fx1, ix0)| {
            let n = ((fy1 - fy0) * (fx1 - fx0)) as i64;
            // Empty windows get nothing; `n > 0` also keeps the divisions panic-free.
            if n <= 0 {
                return Ok(());
            }
            for (c, &g) in span(grad_out, pos * ch, ch)?.iter().enumerate() {
                let g = i64::from(g);
                let share = if g >= 0 {
                    (g + n / 2) / n
                } else {
                    (g - n / 2) / n
                };
                for iy in iy0..iy0 + (fy1 - fy0) {
                    for ix in ix0..ix0 + (fx1 - fx0) {
                        let i = (iy * in_w + ix) * ch + c;
                        let gi = grad_in.get_mut(i).ok_or(Error::ShapeMismatch)?;
                        *gi = saturate_i32(i64::from(*gi) + share);
                    }
                }
            }
            Ok(())
        },
    )
}
