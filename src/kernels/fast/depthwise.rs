//! Optimized int8 depthwise convolution, bit-exact with
//! [`depthwise_conv2d`](crate::kernels::depthwise_conv2d).
//!
//! Depthwise convolution has no reduction over channels, so the reference's channel-inner
//! loop reloads every weight and requantization parameter for each output. Here the loop
//! runs channel by channel instead: one input channel at a time is copied into a *plane*,
//! a small 2-D `i16` image of the rows a strip of outputs reads, with the input offset
//! already added and zeros in the padding. A zero contributes nothing, exactly like the
//! taps the reference skips, so SAME borders need no special case. Each filter of that
//! input channel (the depth multiplier) then sweeps the plane with its weights in registers
//! ([`dw3x3`], `SMLAD` over pairs of neighbouring taps on Armv7E-M) into 32-bit
//! accumulators, which [`requant`] turns into bytes with the channel's parameters also in
//! registers.
//!
//! Narrow, tall layers (keyword spotting's 25×5) are swept column by column: the plane is
//! then the transposed image, so that its rows are long. Everything is written in terms of
//! an inner axis `u` and an outer axis `v` ([`Geom`]).
//!
//! The fixed stack buffers ([`PLANE_LEN`], [`ACC_LEN`], [`MAX_TAPS`]) bound what this
//! kernel takes; beyond them, and for quantization parameters outside the bounds its
//! arithmetic is exact for ([`ChanQ::new`]), it calls the reference kernel.

use super::dw3x3;
use super::requant::ChanQ;
use crate::kernels::{self, check_bias, check_window, clamp, span, span_mut, Requantize};
use crate::{Error, Shape, Window};

/// `i16` elements of the plane buffer (1 KiB of stack).
pub const PLANE_LEN: usize = 512;
/// 32-bit accumulators of one strip (1 KiB of stack).
pub const ACC_LEN: usize = 256;
/// Most kernel taps (`kernel_h · kernel_w`) this kernel takes: 5×5.
pub const MAX_TAPS: usize = 25;

/// The plane, word aligned: the assembly reads it a word (two taps) at a time.
#[repr(C, align(4))]
struct Plane([i16; PLANE_LEN]);

/// The layer seen along the plane's axes: `u` is the input's width (or its height, when
/// transposed), `v` the other spatial axis. Steps are in elements of the NHWC arrays.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geom {
    pub in_u: usize,
    pub in_v: usize,
    pub out_u: usize,
    pub out_v: usize,
    pub ku: usize,
    pub kv: usize,
    pub su: usize,
    pub sv: usize,
    pub pad_u: usize,
    pub pad_v: usize,
    pub in_step_u: usize,
    pub in_step_v: usize,
    pub out_step_u: usize,
    pub out_step_v: usize,
    pub transposed: bool,
    /// Accumulators per output row: `out_u` rounded up to even (the assembly makes pairs).
    pub acc_pitch: usize,
    /// Plane elements per row: every column an accumulator row reads, one more for the
    /// pair of taps that straddles the end, rounded up to even (word-aligned rows).
    pub pitch: usize,
    /// Output rows per strip, as many as both buffers hold.
    pub strip: usize,
}

impl Geom {
    /// The geometry of a layer, or `None` when one output row does not fit the buffers.
    fn new(input: Shape, output: Shape, w: &Window) -> Option<Self> {
        let transposed = output.height > output.width;
        let (row_in, row_out) = (
            input.width.checked_mul(input.channels)?,
            output.width.checked_mul(output.channels)?,
        );
        let mut g = Geom {
            in_u: input.width,
            in_v: input.height,
            out_u: output.width,
            out_v: output.height,
            ku: w.kernel_w,
            kv: w.kernel_h,
            su: w.stride_w,
            sv: w.stride_h,
            pad_u: w.pad_left,
            pad_v: w.pad_top,
            in_step_u: input.channels,
            in_step_v: row_in,
            out_step_u: output.channels,
            out_step_v: row_out,
            transposed,
            acc_pitch: 0,
            pitch: 0,
            strip: 0,
        };
        if transposed {
            g = Geom {
                in_u: g.in_v,
                in_v: g.in_u,
                out_u: g.out_v,
                out_v: g.out_u,
                ku: g.kv,
                kv: g.ku,
                su: g.sv,
                sv: g.su,
                pad_u: g.pad_v,
                pad_v: g.pad_u,
                in_step_u: g.in_step_v,
                in_step_v: g.in_step_u,
                out_step_u: g.out_step_v,
                out_step_v: g.out_step_u,
                ..g
            };
        }
        g.acc_pitch = g.out_u.checked_add(g.out_u & 1)?;
        let cols = g
            .acc_pitch
            .checked_sub(1)?
            .checked_mul(g.su)?
            .checked_add(g.ku)?
            .checked_add(1)?;
        g.pitch = cols.checked_add(cols & 1)?;
        // Output rows whose input rows fit the plane: (r − 1) · sv + kv rows of `pitch`.
        let plane_rows = PLANE_LEN / g.pitch;
        let by_plane = plane_rows.checked_sub(g.kv)? / g.sv.max(1) + 1;
        let by_acc = ACC_LEN / g.acc_pitch;
        g.strip = by_plane.min(by_acc).min(g.out_v);
        (g.strip > 0 && g.su > 0 && g.sv > 0).then_some(g)
    }

    /// Plane rows that `rows` output rows read.
    fn in_rows(&self, rows: usize) -> usize {
        rows.saturating_sub(1) * self.sv + self.kv
    }
}

/// int8 depthwise convolution; arguments, results and errors exactly as
/// [`kernels::depthwise_conv2d`]'s, which it calls for layers beyond its bounds.
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
    let reference = |output: &mut [i8]| {
        kernels::depthwise_conv2d(
            input,
            input_shape,
            filter,
            bias,
            window,
            depth_multiplier,
            q,
            output,
            output_shape,
        )
    };
    // The reference's checks, so that errors are the same whichever path runs.
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
    let taps = window.kernel_h.checked_mul(window.kernel_w);
    if taps.and_then(|t| t.checked_mul(out_c)) != Some(filter.len()) {
        return Err(Error::ShapeMismatch);
    }
    check_bias(bias, out_c)?;
    q.check(out_c)?;
    if output.is_empty() || out_c == 0 {
        return Ok(());
    }
    let taps = taps.unwrap_or(usize::MAX);
    let Some(g) = Geom::new(input_shape, output_shape, window) else {
        return reference(output);
    };
    // Plane values `x + offset` must fit `i16`; requantization must be exact (ChanQ::new).
    let offset_fits = (-256..=256).contains(&q.input_offset);
    let requant_fits = (0..out_c).all(|c| channel_q(q, bias, c, taps).is_some());
    if taps > MAX_TAPS || !offset_fits || !requant_fits {
        return reference(output);
    }
    run(
        input,
        in_c,
        filter,
        bias,
        depth_multiplier,
        q,
        output,
        out_c,
        &g,
    )
}

/// The requantization of output channel `c`, when [`ChanQ`] is exact for it.
fn channel_q(q: &Requantize, bias: &[i32], c: usize, taps: usize) -> Option<ChanQ> {
    ChanQ::new(
        bias.get(c).copied().unwrap_or(0),
        *q.multipliers.get(c)?,
        *q.shifts.get(c)?,
        taps,
        q.input_offset,
    )
}

/// The strips, input channels and filters; arguments checked by the caller.
#[allow(clippy::too_many_arguments)]
fn run(
    input: &[i8],
    in_c: usize,
    filter: &[i8],
    bias: &[i32],
    depth_multiplier: usize,
    q: &Requantize,
    output: &mut [i8],
    out_c: usize,
    g: &Geom,
) -> Result<(), Error> {
    let mut plane = Plane([0; PLANE_LEN]);
    let mut acc = [0i32; ACC_LEN];
    let mut weights = [0i32; MAX_TAPS];
    let taps = g.ku * g.kv;
    let (lo, hi) = (i32::from(q.act_min), i32::from(q.act_max));
    let mut v0 = 0;
    while v0 < g.out_v {
        let rows = g.strip.min(g.out_v - v0);
        let plane = span_mut(&mut plane.0, 0, g.in_rows(rows) * g.pitch)?;
        let acc = span_mut(&mut acc, 0, rows * g.acc_pitch)?;
        // The padding is the same for every channel: zeroed once, never written.
        plane.fill(0);
        for ic in 0..in_c {
            fill_plane(plane, input, g, v0 * g.sv, ic, q.input_offset)?;
            for c in ic * depth_multiplier..(ic + 1) * depth_multiplier {
                let w = span_mut(&mut weights, 0, taps)?;
                load_weights(w, filter, g, c, out_c)?;
                let done = dw3x3::run(plane, g, w, rows, acc)?;
                if !done {
                    sweep(plane, g, w, rows, acc)?;
                }
                let cq = channel_q(q, bias, c, taps).ok_or(Error::InvalidParameter)?;
                let first = v0 * g.out_step_v + c;
                let out = output.get_mut(first..).ok_or(Error::ShapeMismatch)?;
                store(out, acc, g, rows, &cq, q.output_offset, lo, hi)?;
            }
        }
        v0 += rows;
    }
    Ok(())
}

/// Copies input channel `ic` into the plane: plane row `r` is the input's `v` row
/// `first + r − pad_v` (padded coordinates), column `k` its `u` column `k − pad_u`, each
/// value plus `offset`. Rows and columns outside the input are left as they are (zero).
fn fill_plane(
    plane: &mut [i16],
    input: &[i8],
    g: &Geom,
    first: usize,
    ic: usize,
    offset: i32,
) -> Result<(), Error> {
    if g.pitch == 0 || g.in_step_u == 0 {
        return Err(Error::ShapeMismatch);
    }
    for (r, row) in plane.chunks_exact_mut(g.pitch).enumerate() {
        let v = (first + r).checked_sub(g.pad_v).filter(|&v| v < g.in_v);
        let (Some(v), Some(body)) = (v, row.get_mut(g.pad_u..)) else {
            continue;
        };
        let n = g.in_u.min(body.len());
        if n == 0 {
            continue;
        }
        let start = v * g.in_step_v + ic;
        // The whole run is inside `input`: its last element is.
        span(input, start + (n - 1) * g.in_step_u, 1)?;
        let src = input.get(start..).ok_or(Error::ShapeMismatch)?;
        let body = body.get_mut(..n).ok_or(Error::ShapeMismatch)?;
        if super::dw3x3::fill(body, src, g.in_step_u, offset)? {
            continue;
        }
        for (d, x) in body.iter_mut().zip(src.chunks(g.in_step_u)) {
            if let Some(&x) = x.first() {
                *d = (i32::from(x) + offset) as i16;
            }
        }
    }
    Ok(())
}

/// Channel `c`'s weights in plane order (`[kv][ku]`).
fn load_weights(
    w: &mut [i32],
    filter: &[i8],
    g: &Geom,
    c: usize,
    out_c: usize,
) -> Result<(), Error> {
    if g.ku == 0 {
        return Err(Error::ShapeMismatch);
    }
    for (kv, row) in w.chunks_exact_mut(g.ku).enumerate() {
        for (ku, d) in row.iter_mut().enumerate() {
            let (ky, kx) = if g.transposed { (ku, kv) } else { (kv, ku) };
            let kernel_w = if g.transposed { g.kv } else { g.ku };
            *d = i32::from(kernels::at(filter, (ky * kernel_w + kx) * out_c + c)?);
        }
    }
    Ok(())
}

/// The portable sweep, any kernel and stride: accumulator row `r`, entry `u` is
/// `Σ plane[r · sv + kv][u · su + ku] · w[kv][ku]` (only the first `out_u` of each row).
pub(super) fn sweep(
    plane: &[i16],
    g: &Geom,
    w: &[i32],
    rows: usize,
    acc: &mut [i32],
) -> Result<(), Error> {
    if g.acc_pitch == 0 || g.ku == 0 || g.su == 0 {
        return Err(Error::ShapeMismatch);
    }
    for (r, acc_row) in acc.chunks_exact_mut(g.acc_pitch).take(rows).enumerate() {
        let acc_row = acc_row.get_mut(..g.out_u).ok_or(Error::ShapeMismatch)?;
        acc_row.fill(0);
        for (kv, w_row) in w.chunks_exact(g.ku).enumerate() {
            let p_row = span(plane, (r * g.sv + kv) * g.pitch, g.pitch)?;
            if let ([w0, w1, w2], 1) = (w_row, g.su) {
                let (w0, w1, w2) = (*w0, *w1, *w2);
                // The common 3-tap row at stride 1: each value is loaded once and slides
                // through the three taps.
                let mut xs = p_row.iter().map(|&x| i32::from(x));
                let (Some(mut x0), Some(mut x1)) = (xs.next(), xs.next()) else {
                    return Err(Error::ShapeMismatch);
                };
                for (a, x2) in acc_row.iter_mut().zip(xs) {
                    *a = a.wrapping_add(x0 * w0 + x1 * w1 + x2 * w2);
                    (x0, x1) = (x1, x2);
                }
            } else if let [w0, w1, w2] = *w_row {
                // Other strides, the weights still in registers.
                for (a, x) in acc_row.iter_mut().zip(p_row.windows(3).step_by(g.su)) {
                    if let [x0, x1, x2] = *x {
                        let s = i32::from(x0) * w0 + i32::from(x1) * w1 + i32::from(x2) * w2;
                        *a = a.wrapping_add(s);
                    }
                }
            } else {
                for (a, x) in acc_row.iter_mut().zip(p_row.windows(g.ku).step_by(g.su)) {
                    let s = x
                        .iter()
                        .zip(w_row)
                        .fold(0i32, |s, (&x, &w)| s.wrapping_add(i32::from(x) * w));
                    *a = a.wrapping_add(s);
                }
            }
        }
    }
    Ok(())
}

/// Requantizes a strip's accumulators of one channel into `out`, which starts at the
/// strip's first output of that channel.
#[allow(clippy::too_many_arguments)]
fn store(
    out: &mut [i8],
    acc: &[i32],
    g: &Geom,
    rows: usize,
    cq: &ChanQ,
    zp: i32,
    lo: i32,
    hi: i32,
) -> Result<(), Error> {
    if g.acc_pitch == 0 || g.out_step_u == 0 {
        return Err(Error::ShapeMismatch);
    }
    if super::dw3x3::store(out, acc, g, rows, cq, zp, lo as i8, hi as i8)? {
        return Ok(());
    }
    for (r, acc_row) in acc.chunks_exact(g.acc_pitch).take(rows).enumerate() {
        let start = r * g.out_step_v;
        // The row's last output is inside `out`, so the zip below writes them all.
        span(out, start + g.out_u.saturating_sub(1) * g.out_step_u, 1)?;
        let dst = out.get_mut(start..).ok_or(Error::ShapeMismatch)?;
        let acc_row = acc_row.get(..g.out_u).ok_or(Error::ShapeMismatch)?;
        for (d, &a) in dst.chunks_mut(g.out_step_u).zip(acc_row) {
            if let Some(d) = d.first_mut() {
                *d = clamp(cq.apply(a).wrapping_add(zp), lo, hi) as i8;
            }
        }
    }
    Ok(())
}
