//! Optimized int8 convolution, optionally fused with the max pool that follows it; bit-exact
//! with [`conv2d`](crate::kernels::conv2d) followed by [`max_pool`](crate::kernels::max_pool).
//!
//! For each pooled output pixel, the convolution outputs of its window are computed two at a
//! time: both pixels' input patches are gathered (padding taps take the input zero point, so
//! that `x − zero_point` is 0 there, as the reference skips them), widened to 16 bits with the
//! input offset added, interleaved for the `SMLAD` inner product ([`dot`](super::dot)), and
//! multiplied with two output channels' weights at once. The maxima are kept per channel and
//! written once per pooled pixel, so the full-resolution convolution output is never stored.
//!
//! Requantization is monotonic in the accumulator when the shift does not overflow-wrap (shift
//! ≤ 0, the usual case: multipliers below 1), and so is the clamp; then `max(requantize(aᵢ)) =
//! requantize(max(aᵢ))` exactly and each pooled value is requantized once. Channels with a
//! positive shift are requantized per pixel instead.

use super::dot::{dot_2x2, pack};
use crate::kernels::{check_bias, check_window, clamp, span, span_mut, window_taps, Requantize};
use crate::{Error, Shape, Window};

/// Most taps (`kernel_h × kernel_w × input channels`) a filter may have for this kernel; the
/// interpreter uses the reference kernels beyond.
pub const MAX_TAPS: usize = 320;
/// Most output channels for this kernel.
pub const MAX_CHANNELS: usize = 128;

const GROUPS: usize = MAX_TAPS.div_ceil(4);

/// The max pool applied to the convolution's output.
#[derive(Clone, Copy, Debug)]
pub struct PoolWindow {
    /// The pool's window over the convolution output.
    pub window: Window,
    /// The convolution output's shape (the pool's input).
    pub conv_shape: Shape,
    /// Lower clamp of the pool.
    pub act_min: i8,
    /// Upper clamp of the pool.
    pub act_max: i8,
}

/// True when [`conv2d_pool`] handles a filter of `taps` taps and `channels` output channels.
pub fn supported(taps: usize, channels: usize) -> bool {
    taps > 0 && taps <= MAX_TAPS && channels <= MAX_CHANNELS
}

/// int8 convolution (arguments as [`conv2d`](crate::kernels::conv2d)); with `pool`, the max
/// pool over its output instead, written to `output` of `output_shape` (the pool's output).
///
/// Errors: those of the reference kernels, plus [`Error::CapacityExceeded`] beyond
/// [`MAX_TAPS`] taps or [`MAX_CHANNELS`] channels.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_pool(
    input: &[i8],
    input_shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    q: &Requantize,
    pool: Option<&PoolWindow>,
    output: &mut [i8],
    output_shape: Shape,
) -> Result<(), Error> {
    check_window(window)?;
    input_shape.check_len(input.len())?;
    output_shape.check_len(output.len())?;
    let in_c = input_shape.channels;
    let out_c = output_shape.channels;
    let taps = window
        .kernel_h
        .checked_mul(window.kernel_w)
        .and_then(|t| t.checked_mul(in_c))
        .ok_or(Error::ShapeMismatch)?;
    if out_c.checked_mul(taps) != Some(filter.len()) {
        return Err(Error::ShapeMismatch);
    }
    check_bias(bias, out_c)?;
    q.check(out_c)?;
    if !supported(taps, out_c) {
        return Err(Error::CapacityExceeded);
    }
    // Without a pool: a 1×1 window of stride 1 over the convolution output.
    let identity = PoolWindow {
        window: Window {
            kernel_h: 1,
            kernel_w: 1,
            stride_h: 1,
            stride_w: 1,
            pad_top: 0,
            pad_left: 0,
        },
        conv_shape: output_shape,
        act_min: i8::MIN,
        act_max: i8::MAX,
    };
    let pool = pool.unwrap_or(&identity);
    check_window(&pool.window)?;
    if pool.act_min > pool.act_max || pool.conv_shape.channels != out_c {
        return Err(Error::InvalidParameter);
    }
    if output.is_empty() {
        return Ok(());
    }
    // −input_offset is the input zero point: a padding tap must contribute (zp + offset) = 0.
    // Offsets outside int8 (never produced by a converter) cannot be widened exactly.
    let pad = i8::try_from(q.input_offset.wrapping_neg()).map_err(|_| Error::InvalidParameter)?;

    if super::conv2d_small::applies(taps, out_c, q) {
        return super::conv2d_small::run(
            input,
            input_shape,
            filter,
            bias,
            window,
            q,
            pool,
            output,
            output_shape,
            pad,
        );
    }
    general(
        input,
        input_shape,
        filter,
        bias,
        window,
        q,
        pool,
        output,
        output_shape,
        pad,
    )
}

/// The general case (arguments checked by [`conv2d_pool`]); its own frame, so that its
/// buffers and the first-layer kernel's are never on the stack together.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn general(
    input: &[i8],
    input_shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    q: &Requantize,
    pool: &PoolWindow,
    output: &mut [i8],
    output_shape: Shape,
    pad: i8,
) -> Result<(), Error> {
    let in_c = input_shape.channels;
    let out_c = output_shape.channels;
    let taps = window.kernel_h * window.kernel_w * in_c;
    // Checked by the caller; restated here, where the optimizer sees them bound the buffers.
    if !supported(taps, out_c) || out_c == 0 {
        return Err(Error::CapacityExceeded);
    }
    let groups = taps / 4;
    let all_groups = taps.div_ceil(4);
    // Two pixels' widened patches, interleaved per group (see `dot_2x2`).
    let mut xbuf = [[0u32; 4]; GROUPS];
    let mut patch = [[0i8; 4 * GROUPS]; 2];
    let mut best = [0i32; MAX_CHANNELS];
    let best = &mut best[..out_c];
    let multipliers = q.multipliers.get(..out_c).ok_or(Error::ShapeMismatch)?;
    let shifts = q.shifts.get(..out_c).ok_or(Error::ShapeMismatch)?;

    let conv = pool.conv_shape;
    let pw = &pool.window;
    let mut pixels = output.chunks_exact_mut(out_c);
    for py in 0..output_shape.height {
        let (fy0, fy1, cy0) = window_taps(py, pw.stride_h, pw.pad_top, pw.kernel_h, conv.height);
        for px in 0..output_shape.width {
            let (fx0, fx1, cx0) =
                window_taps(px, pw.stride_w, pw.pad_left, pw.kernel_w, conv.width);
            let Some(out) = pixels.next() else {
                return Ok(());
            };
            let (rows, cols) = (fy1 - fy0, fx1 - fx0);
            if rows == 0 || cols == 0 {
                out.fill(clamp(i8::MIN, pool.act_min, pool.act_max));
                continue;
            }
            let count = rows * cols;
            best.fill(i32::MIN);
            let mut k = 0;
            while k < count {
                // The next one or two convolution pixels of the window.
                let second = (k + 1).min(count - 1);
                for (slot, t) in patch.iter_mut().zip([k, second]) {
                    let (cy, cx) = (cy0 + t / cols, cx0 + t % cols);
                    let slot = slot.get_mut(..taps).ok_or(Error::ShapeMismatch)?;
                    gather(input, input_shape, window, cy, cx, pad, slot)?;
                }
                k += 2;
                let x = xbuf.get_mut(..all_groups).ok_or(Error::ShapeMismatch)?;
                widen(&patch, q.input_offset, x);
                let (x, x_tail) = x.split_at_checked(groups).ok_or(Error::ShapeMismatch)?;
                // Channels two at a time (an odd last one paired with itself), with their
                // maxima and requantization parameters.
                let per_pair = best
                    .chunks_mut(2)
                    .zip(multipliers.chunks(2).zip(shifts.chunks(2)));
                for (pair, (best, (m2, s2))) in per_pair.enumerate() {
                    let c = 2 * pair;
                    let c1 = (c + 1).min(out_c - 1);
                    let w0 = span(filter, c * taps, taps)?;
                    let w1 = span(filter, c1 * taps, taps)?;
                    let b0 = bias.get(c).copied().unwrap_or(0);
                    let b1 = bias.get(c1).copied().unwrap_or(0);
                    let mut acc = [b0, b1, b0, b1];
                    dot_2x2(&mut acc, x, w0, w1);
                    // The last `taps % 4` taps, in the last (zero-padded) group of `x`.
                    if let Some(g) = x_tail.first() {
                        let w0_tail = w0.chunks_exact(4).remainder();
                        let w1_tail = w1.chunks_exact(4).remainder();
                        for (j, (&f0, &f1)) in w0_tail.iter().zip(w1_tail).enumerate() {
                            // Element j of the group: halves [v0,v2] and [v1,v3].
                            let word = |base: usize| g[base + (j & 1)];
                            let half = |w: u32| {
                                if j >= 2 {
                                    i32::from((w >> 16) as u16 as i16)
                                } else {
                                    i32::from(w as u16 as i16)
                                }
                            };
                            let (v0, v1) = (half(word(0)), half(word(2)));
                            let (f0, f1) = (i32::from(f0), i32::from(f1));
                            acc[0] = acc[0].wrapping_add(v0.wrapping_mul(f0));
                            acc[1] = acc[1].wrapping_add(v0.wrapping_mul(f1));
                            acc[2] = acc[2].wrapping_add(v1.wrapping_mul(f0));
                            acc[3] = acc[3].wrapping_add(v1.wrapping_mul(f1));
                        }
                    }
                    let pixels_acc = [(acc[0], acc[2]), (acc[1], acc[3])];
                    for ((best, (&m, &s)), (a, b)) in
                        best.iter_mut().zip(m2.iter().zip(s2)).zip(pixels_acc)
                    {
                        let v = if s <= 0 {
                            a.max(b)
                        } else {
                            i32::from(q.apply(a, m, s)).max(i32::from(q.apply(b, m, s)))
                        };
                        *best = (*best).max(v);
                    }
                }
            }
            let requant = best.iter().zip(multipliers.iter().zip(shifts));
            for (o, (&b, (&m, &s))) in out.iter_mut().zip(requant) {
                // Monotone channels (shift ≤ 0) kept the maximum accumulator, the others the
                // maximum requantized value.
                let v = if s <= 0 { q.apply(b, m, s) } else { b as i8 };
                *o = clamp(v, pool.act_min, pool.act_max);
            }
        }
    }
    Ok(())
}

/// The input patch of convolution output pixel `(cy, cx)` in filter order (OHWI without the
/// O), taps outside the input set to `pad`.
fn gather(
    input: &[i8],
    shape: Shape,
    window: &Window,
    cy: usize,
    cx: usize,
    pad: i8,
    patch: &mut [i8],
) -> Result<(), Error> {
    let c = shape.channels;
    let row_len = window.kernel_w * c;
    let (fy0, fy1, iy0) = window_taps(
        cy,
        window.stride_h,
        window.pad_top,
        window.kernel_h,
        shape.height,
    );
    let (fx0, fx1, ix0) = window_taps(
        cx,
        window.stride_w,
        window.pad_left,
        window.kernel_w,
        shape.width,
    );
    let full = fy0 == 0 && fy1 == window.kernel_h && fx0 == 0 && fx1 == window.kernel_w;
    if !full {
        patch.fill(pad);
    }
    if fx1 == fx0 {
        return Ok(());
    }
    let run = (fx1 - fx0) * c;
    for (fy, iy) in (fy0..fy1).zip(iy0..) {
        let src = span(input, (iy * shape.width + ix0) * c, run)?;
        span_mut(patch, fy * row_len + fx0 * c, run)?.copy_from_slice(src);
    }
    Ok(())
}

/// Widens two patches with the offset added into `out`, one group of four taps per entry:
/// pixel 0's `[v0,v2]`, `[v1,v3]`, then pixel 1's. A last partial group is padded with zeros.
fn widen(patch: &[[i8; 4 * GROUPS]; 2], offset: i32, out: &mut [[u32; 4]]) {
    let [p0, p1] = patch;
    for ((o, a), b) in out
        .iter_mut()
        .zip(p0.chunks_exact(4))
        .zip(p1.chunks_exact(4))
    {
        let v = |px: &[i8], j: usize| i32::from(px[j]) + offset;
        *o = [
            pack(v(a, 0), v(a, 2)),
            pack(v(a, 1), v(a, 3)),
            pack(v(b, 0), v(b, 2)),
            pack(v(b, 1), v(b, 3)),
        ];
    }
}
