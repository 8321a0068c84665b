//! Optimized int8 convolution of any kernel size, stride, padding and channel count,
//! optionally fused with the max pool that follows it; bit-exact with
//! [`conv2d`](crate::kernels::conv2d) followed by [`max_pool`](crate::kernels::max_pool).
//!
//! Output pixels are computed two at a time: both pixels' input patches
//! ([`Patch`](super::conv_patch)) are widened to 16 bits with the input offset added
//! ([`widen2`]), then multiplied with every output channel, two channels per pass
//! ([`mm_2x2`]). Patches longer than [`CHUNK_TAPS`] are taken a chunk at a time and output
//! channels [`BLOCK`] at a time, so that the stack buffers are fixed whatever the layer. Without
//! a pool the pair is two neighbouring output pixels; with one, two pixels of the same pool
//! window, whose maxima are kept per channel and written once per pooled pixel, so the
//! full-resolution convolution output is never stored.
//!
//! Requantization is monotonic in the accumulator when the shift does not overflow-wrap (shift
//! ≤ 0, the usual case: multipliers below 1), and so is the clamp; then `max(requantize(aᵢ)) =
//! requantize(max(aᵢ))` exactly and each pooled value is requantized once. Channels with a
//! positive shift are requantized per pixel instead.

use super::conv_mm::{lane, mm_2x2, widen2};
use super::conv_patch::Patch;
use super::conv_requant::ChannelQ;
use crate::kernels::{check_bias, check_window, clamp, span_mut, window_taps, Requantize};
use crate::{Error, Shape, Window};

/// Taps of a patch widened at once; longer patches are taken in chunks of this many.
pub const CHUNK_TAPS: usize = 256;
/// Output channels accumulated at once; more are taken in blocks of this many.
pub const BLOCK: usize = 64;

const CHUNK_GROUPS: usize = CHUNK_TAPS / 4;

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

/// True when [`conv2d_pool`] handles a filter of `taps` taps and `channels` output channels:
/// any filter with at least one tap.
pub fn supported(taps: usize, _channels: usize) -> bool {
    taps > 0
}

/// int8 convolution (arguments as [`conv2d`](crate::kernels::conv2d)); with `pool`, the max
/// pool over its output instead, written to `output` of `output_shape` (the pool's output).
///
/// Errors: those of the reference kernels, plus [`Error::CapacityExceeded`] for a filter
/// without taps (no input channels) and [`Error::InvalidParameter`] for an input offset
/// outside `-127..=128` (no int8 zero point gives one).
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

/// The convolution's arguments, checked by [`conv2d_pool`].
struct Conv<'a> {
    input: &'a [i8],
    shape: Shape,
    window: &'a Window,
    filter: &'a [i8],
    bias: &'a [i32],
    q: &'a Requantize<'a>,
    pad: i8,
    taps: usize,
    out_c: usize,
}

/// The stack buffers of [`general`], borrowed (so that they are never moved).
struct Buffers<'a> {
    /// The two pixels' widened chunk.
    x: &'a mut [[u32; 4]; CHUNK_GROUPS],
    /// The two pixels' gathered chunk.
    patch: &'a mut [[i8; CHUNK_TAPS]; 2],
    /// One block's accumulators, a channel pair per entry (see [`mm_2x2`]).
    acc: &'a mut [[i32; 4]; BLOCK / 2],
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
    let out_c = output_shape.channels;
    let taps = window.kernel_h * window.kernel_w * input_shape.channels;
    if taps == 0 || out_c == 0 {
        return Err(Error::CapacityExceeded);
    }
    let conv = Conv {
        input,
        shape: input_shape,
        window,
        filter,
        bias,
        q,
        pad,
        taps,
        out_c,
    };
    let mut x = [[0; 4]; CHUNK_GROUPS];
    let mut patch = [[0; CHUNK_TAPS]; 2];
    let mut acc = [[0; 4]; BLOCK / 2];
    let mut bufs = Buffers {
        x: &mut x,
        patch: &mut patch,
        acc: &mut acc,
    };
    let is_identity = pool.window.kernel_h == 1
        && pool.window.kernel_w == 1
        && pool.window.stride_h == 1
        && pool.window.stride_w == 1
        && pool.window.pad_top == 0
        && pool.window.pad_left == 0
        && pool.conv_shape.height == output_shape.height
        && pool.conv_shape.width == output_shape.width
        && pool.act_min == i8::MIN
        && pool.act_max == i8::MAX;
    if is_identity {
        unpooled(&conv, &mut bufs, output, output_shape)
    } else {
        pooled(&conv, &mut bufs, pool, output, output_shape)
    }
}

/// No pool: neighbouring output pixels in pairs (the last one alone, computed twice).
fn unpooled(conv: &Conv, bufs: &mut Buffers, output: &mut [i8], shape: Shape) -> Result<(), Error> {
    let out_c = conv.out_c;
    let width = shape.width;
    let count = shape.height * width;
    if width == 0 {
        return Ok(());
    }
    let (multipliers, shifts) = (conv.q.multipliers, conv.q.shifts);
    let mut p = 0;
    while p < count {
        let alone = p + 1 == count;
        let p1 = if alone { p } else { p + 1 };
        let pixels = [(p / width, p % width), (p1 / width, p1 % width)];
        let outs = span_mut(output, p * out_c, if alone { out_c } else { 2 * out_c })?;
        let (out0, out1) = outs.split_at_mut(out_c.min(outs.len()));
        let mut widened = false;
        let mut c0 = 0;
        while c0 < out_c {
            let cn = BLOCK.min(out_c - c0);
            let acc = accumulate(conv, bufs, pixels, c0, cn, &mut widened)?;
            for (s, a) in acc.iter().enumerate() {
                for k in 0..2 {
                    let c = c0 + 2 * s + k;
                    if c >= c0 + cn {
                        break;
                    }
                    let (Some(&m), Some(&sh)) = (multipliers.get(c), shifts.get(c)) else {
                        return Err(Error::ShapeMismatch);
                    };
                    let cq = ChannelQ::new(m, sh);
                    if let Some(o) = out0.get_mut(c) {
                        *o = cq.apply(conv.q, a[k]);
                    }
                    if let Some(o) = out1.get_mut(c) {
                        *o = cq.apply(conv.q, a[2 + k]);
                    }
                }
            }
            c0 += cn;
        }
        p += 2;
    }
    Ok(())
}

/// With a max pool: for each pooled pixel and block of channels, the pixels of its window
/// in pairs (an odd last one paired with itself), maxima kept per channel.
fn pooled(
    conv: &Conv,
    bufs: &mut Buffers<'_>,
    pool: &PoolWindow,
    output: &mut [i8],
    output_shape: Shape,
) -> Result<(), Error> {
    let out_c = conv.out_c;
    let q = conv.q;
    let (multipliers, shifts) = (q.multipliers, q.shifts);
    let mut best = [0i32; BLOCK];
    let cs = pool.conv_shape;
    let pw = &pool.window;
    let mut pixels = output.chunks_exact_mut(out_c);
    for py in 0..output_shape.height {
        let (fy0, fy1, cy0) = window_taps(py, pw.stride_h, pw.pad_top, pw.kernel_h, cs.height);
        for px in 0..output_shape.width {
            let (fx0, fx1, cx0) = window_taps(px, pw.stride_w, pw.pad_left, pw.kernel_w, cs.width);
            let Some(out) = pixels.next() else {
                return Ok(());
            };
            let (rows, cols) = (fy1 - fy0, fx1 - fx0);
            if rows == 0 || cols == 0 {
                out.fill(clamp(i8::MIN, pool.act_min, pool.act_max));
                continue;
            }
            let count = rows * cols;
            let mut c0 = 0;
            while c0 < out_c {
                let cn = BLOCK.min(out_c - c0);
                let best = best.get_mut(..cn).ok_or(Error::ShapeMismatch)?;
                best.fill(i32::MIN);
                let mut k = 0;
                while k < count {
                    let second = (k + 1).min(count - 1);
                    let at = |t: usize| (cy0 + t / cols, cx0 + t % cols);
                    let mut widened = false;
                    let acc = accumulate(conv, bufs, [at(k), at(second)], c0, cn, &mut widened)?;
                    k += 2;
                    for (s, a) in acc.iter().enumerate() {
                        for j in 0..2 {
                            let c = c0 + 2 * s + j;
                            let (Some(b), Some(&m), Some(&sh)) =
                                (best.get_mut(2 * s + j), multipliers.get(c), shifts.get(c))
                            else {
                                break;
                            };
                            let v = if sh <= 0 {
                                a[j].max(a[2 + j])
                            } else {
                                let cq = ChannelQ::new(m, sh);
                                i32::from(cq.apply(q, a[j])).max(i32::from(cq.apply(q, a[2 + j])))
                            };
                            *b = (*b).max(v);
                        }
                    }
                }
                let outs = span_mut(out, c0, cn)?;
                let requant = multipliers.get(c0..).unwrap_or(&[]).iter();
                let requant = requant.zip(shifts.get(c0..).unwrap_or(&[]));
                for ((o, &b), (&m, &sh)) in outs.iter_mut().zip(best.iter()).zip(requant) {
                    // Monotone channels (shift ≤ 0) kept the maximum accumulator, the others
                    // the maximum requantized value.
                    let v = if sh <= 0 {
                        ChannelQ::new(m, sh).apply(q, b)
                    } else {
                        b as i8
                    };
                    *o = clamp(v, pool.act_min, pool.act_max);
                }
                c0 += cn;
            }
        }
    }
    Ok(())
}

/// The accumulators of output channels `c0..c0 + cn` (`cn ≤ BLOCK`) for the two output
/// pixels `pixels`, one channel pair per entry (an odd last channel paired with itself).
/// `widened` says the pixels' patch is already in `bufs.x` (a one-chunk patch is widened
/// once for all blocks).
fn accumulate<'b>(
    conv: &Conv,
    bufs: &'b mut Buffers<'_>,
    pixels: [(usize, usize); 2],
    c0: usize,
    cn: usize,
    widened: &mut bool,
) -> Result<&'b [[i32; 4]], Error> {
    let taps = conv.taps;
    let slots = cn.div_ceil(2);
    let pairs = cn / 2;
    let acc = bufs.acc.get_mut(..slots).ok_or(Error::ShapeMismatch)?;
    for (s, a) in acc.iter_mut().enumerate() {
        let c = c0 + 2 * s;
        let c1 = if 2 * s + 1 < cn { c + 1 } else { c };
        let b0 = conv.bias.get(c).copied().unwrap_or(0);
        let b1 = conv.bias.get(c1).copied().unwrap_or(0);
        *a = [b0, b1, b0, b1];
    }
    let single = taps <= CHUNK_TAPS;
    let patches = pixels.map(|(y, x)| Patch::new(conv.shape, conv.window, y, x));
    let mut t0 = 0;
    while t0 < taps {
        let n = CHUNK_TAPS.min(taps - t0);
        let groups = n.div_ceil(4);
        let x = bufs.x.get_mut(..groups).ok_or(Error::ShapeMismatch)?;
        if !(single && *widened) {
            let [b0, b1] = &mut *bufs.patch;
            let b0 = b0.get_mut(..groups * 4).ok_or(Error::ShapeMismatch)?;
            let b1 = b1.get_mut(..groups * 4).ok_or(Error::ShapeMismatch)?;
            let (i, s, w, pad) = (conv.input, conv.shape, conv.window, conv.pad);
            let x0 = patches[0].taps(i, s, w, (t0, n), pad, b0)?;
            let x1 = patches[1].taps(i, s, w, (t0, n), pad, b1)?;
            widen2(x0, x1, conv.q.input_offset, x)?;
            *widened = true;
        }
        let x = &*x;
        let w = conv
            .filter
            .get(c0 * taps + t0..)
            .ok_or(Error::ShapeMismatch)?;
        // A chunk ending in a partial group reads its rows' padding weights (multiplied by
        // zero), up to 3 bytes past each row: the slots whose last row would read past the
        // filter's end take the partial group by hand.
        let reads = groups * 4;
        let last_row = |s: usize| if 2 * s + 1 < cn { 2 * s + 1 } else { 2 * s };
        let mut safe = slots;
        while safe > 0 && last_row(safe - 1) * taps + reads > w.len() {
            safe -= 1;
        }
        let np = pairs.min(safe);
        let (acc_pairs, rest) = acc.split_at_mut_checked(np).ok_or(Error::ShapeMismatch)?;
        mm_2x2(acc_pairs, x, w, taps, 2 * taps)?;
        if safe > np {
            // The odd last channel, alone.
            let w = w.get(2 * np * taps..).ok_or(Error::ShapeMismatch)?;
            mm_2x2(rest.get_mut(..1).ok_or(Error::ShapeMismatch)?, x, w, 0, 0)?;
        }
        let whole = n / 4;
        let tail = n % 4;
        for s in safe..slots {
            let w1 = if 2 * s + 1 < cn { taps } else { 0 };
            let w = w.get(2 * s * taps..).ok_or(Error::ShapeMismatch)?;
            let a = acc.get_mut(s..=s).ok_or(Error::ShapeMismatch)?;
            mm_2x2(a, x.get(..whole).ok_or(Error::ShapeMismatch)?, w, w1, 0)?;
            let (Some(a), Some(g)) = (a.first_mut(), x.get(whole)) else {
                return Err(Error::ShapeMismatch);
            };
            let r0 = w.get(whole * 4..).ok_or(Error::ShapeMismatch)?;
            let r1 = w.get(w1 + whole * 4..).ok_or(Error::ShapeMismatch)?;
            for (j, (&f0, &f1)) in r0.iter().zip(r1).take(tail).enumerate() {
                let (v0, v1) = (lane(g, 0, j), lane(g, 1, j));
                let (f0, f1) = (i32::from(f0), i32::from(f1));
                a[0] = a[0].wrapping_add(v0.wrapping_mul(f0));
                a[1] = a[1].wrapping_add(v0.wrapping_mul(f1));
                a[2] = a[2].wrapping_add(v1.wrapping_mul(f0));
                a[3] = a[3].wrapping_add(v1.wrapping_mul(f1));
            }
        }
        t0 += n;
    }
    Ok(acc)
}
