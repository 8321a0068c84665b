//! The matrix product at the heart of the optimized convolution: two pixels' widened patches
//! (a chunk of their taps) against many output channels, two channels per pass, in two builds
//! with the same results: portable Rust and Armv7E-M assembly (`SMLAD`, `SXTB16`).
//!
//! Activations are widened once per pixel pair ([`widen2`]) into the layout of
//! [`dot_2x2`](super::dot): per group of four taps, pixel 0's `[v0, v2]`, `[v1, v3]`, then
//! pixel 1's, so that the weights are used as stored (OHWI). [`mm_2x2`] then runs every
//! channel pair of a block over that buffer in one call, keeping the per-pair overhead to a
//! few instructions. Accumulation wraps like TFLite's `int32`.

use super::dot::pack;
use crate::Error;

/// Widens two int8 patches (`p0`, `p1`, their first `out.len()` groups of four) with
/// `offset` added into `out`. `offset` must keep every `v + offset` within `i16`.
///
/// Errors: [`Error::ShapeMismatch`] when a patch is shorter than `4 × out.len()`.
#[inline]
pub(crate) fn widen2(p0: &[i8], p1: &[i8], offset: i32, out: &mut [[u32; 4]]) -> Result<(), Error> {
    let n = out.len().checked_mul(4).ok_or(Error::ShapeMismatch)?;
    let p0 = p0.get(..n).ok_or(Error::ShapeMismatch)?;
    let p1 = p1.get(..n).ok_or(Error::ShapeMismatch)?;
    #[cfg(fixnet_dsp)]
    // SAFETY: `p0` and `p1` hold the `out.len()` groups read, `out` the groups written.
    unsafe {
        dsp::widen2(
            out.as_mut_ptr().cast(),
            p0.as_ptr(),
            p1.as_ptr(),
            pack(offset, offset),
            out.len(),
        );
    }
    #[cfg(not(fixnet_dsp))]
    for ((o, a), b) in out
        .iter_mut()
        .zip(p0.chunks_exact(4))
        .zip(p1.chunks_exact(4))
    {
        let v = |px: &[i8], j: usize| px.get(j).map_or(0, |&x| i32::from(x) + offset);
        *o = [
            pack(v(a, 0), v(a, 2)),
            pack(v(a, 1), v(a, 3)),
            pack(v(b, 0), v(b, 2)),
            pack(v(b, 1), v(b, 3)),
        ];
    }
    Ok(())
}

/// Element `j` (0..4) of pixel `px` (0 or 1) of one widened group.
#[inline(always)]
pub(crate) fn lane(group: &[u32; 4], px: usize, j: usize) -> i32 {
    let w = group.get(2 * px + (j & 1)).copied().unwrap_or(0);
    if j >= 2 {
        i32::from((w >> 16) as u16 as i16)
    } else {
        i32::from(w as u16 as i16)
    }
}

/// Channel pairs × the two pixels of `x`: for pair `p`, rows `w[p·step..]` and
/// `w[p·step + w1..]` (each read for `4 × x.len()` bytes) are multiplied with both pixels
/// and added to `acc[p] = [p0·row0, p0·row1, p1·row0, p1·row1]`. `w1 = 0` makes a lone
/// channel (both rows the same).
///
/// Errors: [`Error::ShapeMismatch`] when the last pair's rows end past `w`.
#[inline]
pub(crate) fn mm_2x2(
    acc: &mut [[i32; 4]],
    x: &[[u32; 4]],
    w: &[i8],
    w1: usize,
    step: usize,
) -> Result<(), Error> {
    let pairs = acc.len();
    if pairs == 0 {
        return Ok(());
    }
    // Checked, not wrapping: the assembly's reads are bounded by this length.
    let reach = (pairs - 1)
        .checked_mul(step)
        .and_then(|r| r.checked_add(w1))
        .and_then(|r| r.checked_add(x.len().checked_mul(4)?))
        .ok_or(Error::ShapeMismatch)?;
    let w = w.get(..reach).ok_or(Error::ShapeMismatch)?;
    #[cfg(fixnet_dsp)]
    // SAFETY: `w` holds every row's first `4 × x.len()` bytes (the last ends at `reach`),
    // `x` the groups read, `acc` the `pairs` accumulators read and written.
    unsafe {
        dsp::mm_2x2(
            acc.as_mut_ptr().cast(),
            x.as_ptr().cast(),
            x.len(),
            w.as_ptr(),
            w1,
            step,
            pairs,
        );
    }
    #[cfg(not(fixnet_dsp))]
    for (p, a) in acc.iter_mut().enumerate() {
        let row0 = w.get(p * step..).ok_or(Error::ShapeMismatch)?;
        let row1 = w.get(p * step + w1..).ok_or(Error::ShapeMismatch)?;
        portable::dot_2x2(a, x, row0, row1);
    }
    Ok(())
}

#[cfg(not(fixnet_dsp))]
mod portable {
    #[inline(always)]
    fn lo(w: u32) -> i32 {
        i32::from(w as u16 as i16)
    }

    #[inline(always)]
    fn hi(w: u32) -> i32 {
        i32::from((w >> 16) as u16 as i16)
    }

    /// One channel pair × the two pixels of `x` over the groups all three hold.
    #[inline(always)]
    pub(super) fn dot_2x2(acc: &mut [i32; 4], x: &[[u32; 4]], w0: &[i8], w1: &[i8]) {
        let [mut a00, mut a01, mut a10, mut a11] = *acc;
        for ((x, w0), w1) in x.iter().zip(w0.chunks_exact(4)).zip(w1.chunks_exact(4)) {
            let f = |xe: u32, xo: u32, w: &[i8]| {
                let wv = |j: usize| w.get(j).map_or(0, |&v| i32::from(v));
                lo(xe)
                    .wrapping_mul(wv(0))
                    .wrapping_add(hi(xe).wrapping_mul(wv(2)))
                    .wrapping_add(lo(xo).wrapping_mul(wv(1)))
                    .wrapping_add(hi(xo).wrapping_mul(wv(3)))
            };
            a00 = a00.wrapping_add(f(x[0], x[1], w0));
            a01 = a01.wrapping_add(f(x[0], x[1], w1));
            a10 = a10.wrapping_add(f(x[2], x[3], w0));
            a11 = a11.wrapping_add(f(x[2], x[3], w1));
        }
        *acc = [a00, a01, a10, a11];
    }
}

#[cfg(fixnet_dsp)]
mod dsp {
    #[repr(C)]
    struct MmArgs {
        acc: *mut i32,
        x: *const u32,
        groups: usize,
        w: *const i8,
        w1: usize,
        step: usize,
        pairs: usize,
    }

    #[repr(C)]
    struct WidenArgs {
        out: *mut u32,
        p0: *const i8,
        p1: *const i8,
        offset: u32,
        groups: usize,
    }

    extern "C" {
        fn fixnet_mm_2x2(args: *mut MmArgs);
        fn fixnet_widen2(args: *const WidenArgs);
    }

    pub(super) unsafe fn mm_2x2(
        acc: *mut i32,
        x: *const u32,
        groups: usize,
        w: *const i8,
        w1: usize,
        step: usize,
        pairs: usize,
    ) {
        let mut a = MmArgs {
            acc,
            x,
            groups,
            w,
            w1,
            step,
            pairs,
        };
        // SAFETY: the caller guarantees the reads and writes; the routine follows the AAPCS.
        unsafe { fixnet_mm_2x2(&mut a) }
    }

    pub(super) unsafe fn widen2(
        out: *mut u32,
        p0: *const i8,
        p1: *const i8,
        offset: u32,
        groups: usize,
    ) {
        let a = WidenArgs {
            out,
            p0,
            p1,
            offset,
            groups,
        };
        // SAFETY: as above.
        unsafe { fixnet_widen2(&a) }
    }

    // Per pair: r0-r3 the accumulators; r4-r7 one group of both pixels (LDM); r8, r9 one
    // weight word widened; r10 x; r11, r12 the two rows; lr end of x. The arguments block
    // (whose acc, w and pairs fields advance) is at [sp].
    core::arch::global_asm!(
        ".section .text.fixnet_mm_2x2,\"ax\",%progbits",
        ".global fixnet_mm_2x2",
        ".type fixnet_mm_2x2,%function",
        ".p2align 2",
        ".thumb_func",
        "fixnet_mm_2x2:",
        "push {{r4-r11, lr}}",
        "push {{r0}}",
        ".macro fixnet_mm_group",
        "ldm r10!, {{r4-r7}}",
        "ldr r8, [r11], #4",
        "sxtb16 r9, r8",
        "sxtb16 r8, r8, ror #8",
        "smlad r0, r4, r9, r0",
        "smlad r0, r5, r8, r0",
        "smlad r2, r6, r9, r2",
        "smlad r2, r7, r8, r2",
        "ldr r8, [r12], #4",
        "sxtb16 r9, r8",
        "sxtb16 r8, r8, ror #8",
        "smlad r1, r4, r9, r1",
        "smlad r1, r5, r8, r1",
        "smlad r3, r6, r9, r3",
        "smlad r3, r7, r8, r3",
        ".endm",
        "3:",
        "ldr r4, [sp]",
        "ldr r10, [r4, #4]",
        "ldr r5, [r4, #8]",
        "add lr, r10, r5, lsl #4",
        "ldr r11, [r4, #12]",
        "ldr r12, [r4, #16]",
        "add r12, r11, r12",
        "ldr r6, [r4, #20]",
        "add r6, r11, r6",
        "str r6, [r4, #12]",
        "ldr r6, [r4]",
        "ldm r6, {{r0-r3}}",
        "tst r5, #1",
        "beq 2f",
        "fixnet_mm_group",
        "2:",
        "cmp r10, lr",
        "beq 9f",
        "1:",
        "fixnet_mm_group",
        "fixnet_mm_group",
        "cmp r10, lr",
        "bne 1b",
        "9:",
        "ldr r4, [sp]",
        "ldr r6, [r4]",
        "stm r6!, {{r0-r3}}",
        "str r6, [r4]",
        "ldr r5, [r4, #24]",
        "subs r5, r5, #1",
        "str r5, [r4, #24]",
        "bne 3b",
        "add sp, sp, #4",
        "pop {{r4-r11, pc}}",
        ".purgem fixnet_mm_group",
        ".size fixnet_mm_2x2, . - fixnet_mm_2x2",
    );

    // r0 out; r1, r2 the two patches; r3 offset pair; r12 groups left; r4-r7 one group of
    // both pixels widened, r8, r9 their raw words.
    core::arch::global_asm!(
        ".section .text.fixnet_widen2,\"ax\",%progbits",
        ".global fixnet_widen2",
        ".type fixnet_widen2,%function",
        ".p2align 2",
        ".thumb_func",
        "fixnet_widen2:",
        "push {{r4-r9, lr}}",
        "ldr r12, [r0, #16]",
        "ldm r0, {{r0-r3}}",
        "cmp r12, #0",
        "beq 9f",
        "1:",
        "ldr r8, [r1], #4",
        "ldr r9, [r2], #4",
        "sxtb16 r4, r8",
        "sxtb16 r5, r8, ror #8",
        "sxtb16 r6, r9",
        "sxtb16 r7, r9, ror #8",
        "sadd16 r4, r4, r3",
        "sadd16 r5, r5, r3",
        "sadd16 r6, r6, r3",
        "sadd16 r7, r7, r3",
        "stm r0!, {{r4-r7}}",
        "subs r12, r12, #1",
        "bne 1b",
        "9:",
        "pop {{r4-r9, pc}}",
        ".size fixnet_widen2, . - fixnet_widen2",
    );
}
