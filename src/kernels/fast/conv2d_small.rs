//! The first-layer case of [`conv2d_pool`](super::conv2d_pool): at most 12 taps per output
//! (3×3 on one input channel, as the seed CNN's first convolution), where the general
//! kernel's per-call costs would dominate its nine multiply-accumulates.
//!
//! The weights are widened once per call into a stream that interleaves, per pair of output
//! channels, the two biases and each group's widened weight words; one pixel's widened patch
//! (three groups, six words) then stays in registers while the stream runs past it, and the
//! maxima over the pool window are updated in place. Bit-exact for the same reasons as the
//! general kernel; used only when every channel's requantization is monotonic (shift ≤ 0).

use super::conv2d_pool::PoolWindow;
use super::dot::pack;
use crate::kernels::{at, clamp, span, span_mut, window_taps, Requantize};
use crate::{Error, Shape, Window};

/// Most taps this kernel takes.
pub const MAX_TAPS: usize = 12;
/// Most output channels this kernel takes.
pub const MAX_CHANNELS: usize = 64;
/// Words of the stream per channel pair: two biases, then 3 groups × 2 channels × 2 words.
const PAIR_WORDS: usize = 2 + 12;

/// True when [`run`] takes the layer.
pub(crate) fn applies(taps: usize, channels: usize, q: &Requantize) -> bool {
    taps <= MAX_TAPS
        && channels <= MAX_CHANNELS
        && channels % 2 == 0
        && q.shifts.iter().all(|&s| s <= 0)
}

/// Arguments checked by the caller ([`conv2d_pool`](super::conv2d_pool)).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
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
    let c_in = input_shape.channels;
    let row_len = window.kernel_w * c_in;
    let taps = window.kernel_h * row_len;
    // Checked by the caller ([`applies`], non-empty output); restated here, where the
    // optimizer sees them bound the buffers and rule out a zero divisor or chunk size.
    if taps == 0 || row_len == 0 || taps > MAX_TAPS || out_c == 0 || out_c > MAX_CHANNELS {
        return Err(Error::CapacityExceeded);
    }
    let pairs = out_c / 2;
    let mut stream = [[0u32; PAIR_WORDS]; MAX_CHANNELS / 2];
    let pair_filters = filter.chunks_exact(2 * taps);
    for (p, (s, rows)) in stream.iter_mut().zip(pair_filters).take(pairs).enumerate() {
        for (ch, b) in s[..2].iter_mut().enumerate() {
            *b = bias.get(2 * p + ch).copied().unwrap_or(0) as u32;
        }
        for (ch, row) in rows.chunks_exact(taps).enumerate().take(2) {
            for g in 0..3 {
                let w = |j: usize| row.get(4 * g + j).map_or(0, |&v| i32::from(v));
                s[2 + 4 * g + 2 * ch] = pack(w(0), w(2));
                s[2 + 4 * g + 2 * ch + 1] = pack(w(1), w(3));
            }
        }
    }
    let stream = &stream[..pairs];
    let mut best = [0i32; MAX_CHANNELS];
    let best = &mut best[..out_c];
    let multipliers = q.multipliers.get(..out_c).ok_or(Error::ShapeMismatch)?;
    let shifts = q.shifts.get(..out_c).ok_or(Error::ShapeMismatch)?;
    let mut patch = [0i8; MAX_TAPS];
    let mut x = [0u32; 6];

    let conv = pool.conv_shape;
    let pw = &pool.window;
    // Input offset of each tap from the patch's first, for patches inside the input.
    let mut tap_at = [0usize; MAX_TAPS];
    for (t, at) in tap_at.iter_mut().enumerate().take(taps) {
        let (ky, rest) = (t / row_len, t % row_len);
        *at = ky * input_shape.width * c_in + rest;
    }
    let tap_at = tap_at.get(..taps).ok_or(Error::ShapeMismatch)?;
    // `out_c ≥ 1` (checked above), restated where the optimizer sees it: no zero chunk size.
    let mut pixels = output.chunks_exact_mut(out_c.max(1));
    for py in 0..output_shape.height {
        let (fy0, fy1, cy0) = window_taps(py, pw.stride_h, pw.pad_top, pw.kernel_h, conv.height);
        for px in 0..output_shape.width {
            let (fx0, fx1, cx0) =
                window_taps(px, pw.stride_w, pw.pad_left, pw.kernel_w, conv.width);
            let Some(out) = pixels.next() else {
                return Ok(());
            };
            if fy0 == fy1 || fx0 == fx1 {
                out.fill(clamp(i8::MIN, pool.act_min, pool.act_max));
                continue;
            }
            best.fill(i32::MIN);
            for cy in cy0..cy0 + (fy1 - fy0) {
                for cx in cx0..cx0 + (fx1 - fx0) {
                    let (ky0, ky1, iy0) = window_taps(
                        cy,
                        window.stride_h,
                        window.pad_top,
                        window.kernel_h,
                        input_shape.height,
                    );
                    let (kx0, kx1, ix0) = window_taps(
                        cx,
                        window.stride_w,
                        window.pad_left,
                        window.kernel_w,
                        input_shape.width,
                    );
                    let inside =
                        ky0 == 0 && ky1 == window.kernel_h && kx0 == 0 && kx1 == window.kernel_w;
                    if inside {
                        // The whole patch is in the input: read it through the tap offsets.
                        let base = input
                            .get((iy0 * input_shape.width + ix0) * c_in..)
                            .ok_or(Error::ShapeMismatch)?;
                        let mut vals = [0i32; MAX_TAPS];
                        for (val, &t) in vals.iter_mut().zip(tap_at) {
                            *val = i32::from(at(base, t)?) + q.input_offset;
                        }
                        for g in 0..3 {
                            x[2 * g] = pack(vals[4 * g], vals[4 * g + 2]);
                            x[2 * g + 1] = pack(vals[4 * g + 1], vals[4 * g + 3]);
                        }
                    } else {
                        // Padding taps at the zero point (they then contribute 0).
                        patch.fill(pad);
                        let run = (kx1 - kx0) * c_in;
                        for (ky, iy) in (ky0..ky1).zip(iy0..) {
                            let src = span(input, (iy * input_shape.width + ix0) * c_in, run)?;
                            let dst = span_mut(&mut patch, ky * row_len + kx0 * c_in, run)?;
                            for (d, &s) in dst.iter_mut().zip(src) {
                                *d = s;
                            }
                        }
                        for g in 0..3 {
                            let v = |j: usize| {
                                if 4 * g + j < taps {
                                    i32::from(patch[4 * g + j]) + q.input_offset
                                } else {
                                    0
                                }
                            };
                            x[2 * g] = pack(v(0), v(2));
                            x[2 * g + 1] = pack(v(1), v(3));
                        }
                    }
                    pixel_max(&x, stream, best);
                }
            }
            let requant = best.iter().zip(multipliers.iter().zip(shifts));
            for (o, (&b, (&m, &s))) in out.iter_mut().zip(requant) {
                *o = clamp(q.apply(b, m, s), pool.act_min, pool.act_max);
            }
        }
    }
    Ok(())
}

/// For every channel pair of `stream` (and of `best`): the accumulators of pixel `x`, maxed
/// into `best`.
#[inline]
fn pixel_max(x: &[u32; 6], stream: &[[u32; PAIR_WORDS]], best: &mut [i32]) {
    #[cfg(fixnet_dsp)]
    {
        let pairs = (best.len() / 2).min(stream.len());
        // SAFETY: `stream` holds at least `pairs` × 14 words and `best` 2 × `pairs` values,
        // exactly what the routine reads and writes.
        unsafe { dsp::pixel_max(x, stream.as_ptr().cast(), best.as_mut_ptr(), pairs) }
    }
    #[cfg(not(fixnet_dsp))]
    {
        let lo = |w: u32| i32::from(w as u16 as i16);
        let hi = |w: u32| i32::from((w >> 16) as u16 as i16);
        let smlad = |acc: i32, a: u32, b: u32| {
            acc.wrapping_add(lo(a).wrapping_mul(lo(b)))
                .wrapping_add(hi(a).wrapping_mul(hi(b)))
        };
        for (s, b) in stream.iter().zip(best.chunks_exact_mut(2)) {
            let (mut a0, mut a1) = (s[0] as i32, s[1] as i32);
            for g in 0..3 {
                let w = &s[2 + 4 * g..][..4];
                a0 = smlad(smlad(a0, x[2 * g], w[0]), x[2 * g + 1], w[1]);
                a1 = smlad(smlad(a1, x[2 * g], w[2]), x[2 * g + 1], w[3]);
            }
            b[0] = b[0].max(a0);
            b[1] = b[1].max(a1);
        }
    }
}

#[cfg(fixnet_dsp)]
mod dsp {
    #[repr(C)]
    struct Args {
        x: *const u32,
        stream: *const u32,
        best: *mut i32,
        pairs: usize,
    }

    extern "C" {
        fn fixnet_pixel_max(args: *const Args);
    }

    pub(super) unsafe fn pixel_max(x: &[u32; 6], stream: *const u32, best: *mut i32, pairs: usize) {
        let a = Args {
            x: x.as_ptr(),
            stream,
            best,
            pairs,
        };
        // SAFETY: guaranteed by the caller; the routine follows the AAPCS.
        unsafe { fixnet_pixel_max(&a) }
    }

    // r4-r9: the pixel's six words; r11: stream; r10: best; r0, r1: accumulators; r2, r3, r12,
    // lr: one group of both channels' weights. The end of `best` is kept on the stack.
    core::arch::global_asm!(
        ".section .text.fixnet_pixel_max,\"ax\",%progbits",
        ".global fixnet_pixel_max",
        ".type fixnet_pixel_max,%function",
        ".p2align 2",
        ".thumb_func",
        "fixnet_pixel_max:",
        "push {{r4-r11, lr}}",
        "ldm r0, {{r1, r2, r3, r12}}",
        "ldm r1, {{r4-r9}}",
        "mov r11, r2",
        "mov r10, r3",
        "add r12, r3, r12, lsl #3",
        "push {{r12}}",
        "1:",
        "ldm r11!, {{r0, r1}}",
        "ldm r11!, {{r2, r3, r12, lr}}",
        "smlad r0, r4, r2, r0",
        "smlad r0, r5, r3, r0",
        "smlad r1, r4, r12, r1",
        "smlad r1, r5, lr, r1",
        "ldm r11!, {{r2, r3, r12, lr}}",
        "smlad r0, r6, r2, r0",
        "smlad r0, r7, r3, r0",
        "smlad r1, r6, r12, r1",
        "smlad r1, r7, lr, r1",
        "ldm r11!, {{r2, r3, r12, lr}}",
        "smlad r0, r8, r2, r0",
        "smlad r0, r9, r3, r0",
        "smlad r1, r8, r12, r1",
        "smlad r1, r9, lr, r1",
        "ldrd r2, r3, [r10]",
        "cmp r0, r2",
        "it lt",
        "movlt r0, r2",
        "cmp r1, r3",
        "it lt",
        "movlt r1, r3",
        "strd r0, r1, [r10], #8",
        "ldr r2, [sp]",
        "cmp r10, r2",
        "bne 1b",
        "add sp, sp, #4",
        "pop {{r4-r11, pc}}",
        ".size fixnet_pixel_max, . - fixnet_pixel_max",
    );
}
