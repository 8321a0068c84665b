//! The inner products of the optimized kernels, in two builds with the same results: portable
//! Rust, and Armv7E-M assembly (`SMLAD` on pairs of 16-bit values widened by `SXTB16`) when the
//! target has the DSP extension (`cfg(fixnet_dsp)`, see `build.rs`).
//!
//! Activations arrive *widened*: every group of four int8 values `v0 v1 v2 v3` (offset already
//! added, so each fits an `i16`) becomes two words, `[v0, v2]` and `[v1, v3]` (low half
//! first). That is exactly what `SXTB16` and `SXTB16 …, ROR #8` make of the four weight bytes
//! of the same group, so weights are used in their stored order (OHWI, `[outputs][inputs]`)
//! and every `SMLAD` pairs the right values. Accumulation wraps like TFLite's `int32`.

/// Packs two values into one word, `lo` in the low half.
#[inline(always)]
pub(crate) fn pack(lo: i32, hi: i32) -> u32 {
    (lo as u32 & 0xFFFF) | ((hi as u32) << 16)
}

#[cfg(not(fixnet_dsp))]
#[inline(always)]
fn lo(w: u32) -> i32 {
    i32::from(w as u16 as i16)
}

#[cfg(not(fixnet_dsp))]
#[inline(always)]
fn hi(w: u32) -> i32 {
    i32::from((w >> 16) as u16 as i16)
}

/// Two pixels × two output channels over the groups of four taps that `x`, `w0` and `w1` all
/// hold (`x` one entry per group, `w0` and `w1` four weights per group; weights past the last
/// whole group are left for the caller).
///
/// `x` holds, per group, four words: pixel 0's `[v0, v2]`, `[v1, v3]`, then pixel 1's; `w0`
/// and `w1` are the two channels' int8 weights (any alignment). Adds to `acc` =
/// `[p0·w0, p0·w1, p1·w0, p1·w1]`.
#[inline]
pub(crate) fn dot_2x2(acc: &mut [i32; 4], x: &[[u32; 4]], w0: &[i8], w1: &[i8]) {
    #[cfg(fixnet_dsp)]
    {
        let groups = x.len().min(w0.len() / 4).min(w1.len() / 4);
        // SAFETY: each slice holds at least `groups` groups, all the assembly reads
        // (`groups` × 16 bytes of `x`, word aligned, and `groups` × 4 bytes of each row).
        unsafe {
            dsp::dot_2x2(acc, x.as_ptr().cast(), w0.as_ptr(), w1.as_ptr(), groups);
        }
    }
    #[cfg(not(fixnet_dsp))]
    {
        let [mut a00, mut a01, mut a10, mut a11] = *acc;
        for ((x, w0), w1) in x.iter().zip(w0.chunks_exact(4)).zip(w1.chunks_exact(4)) {
            let f = |xe: u32, xo: u32, w: &[i8]| {
                lo(xe)
                    .wrapping_mul(i32::from(w[0]))
                    .wrapping_add(hi(xe).wrapping_mul(i32::from(w[2])))
                    .wrapping_add(lo(xo).wrapping_mul(i32::from(w[1])))
                    .wrapping_add(hi(xo).wrapping_mul(i32::from(w[3])))
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
    /// Arguments of `fixnet_dot_2x2`, read and written through one pointer.
    #[repr(C)]
    struct Args2x2 {
        acc: [i32; 4],
        x: *const u32,
        w0: *const i8,
        w1: *const i8,
        groups: usize,
    }

    extern "C" {
        fn fixnet_dot_2x2(args: *mut Args2x2);
    }

    pub(super) unsafe fn dot_2x2(
        acc: &mut [i32; 4],
        x: *const u32,
        w0: *const i8,
        w1: *const i8,
        groups: usize,
    ) {
        let mut a = Args2x2 {
            acc: *acc,
            x,
            w0,
            w1,
            groups,
        };
        // SAFETY: the caller guarantees the reads; the routine follows the AAPCS.
        unsafe { fixnet_dot_2x2(&mut a) };
        *acc = a.acc;
    }

    // r0-r3: the four accumulators; r4-r7: one group of both pixels (LDM); r8, r9: one weight
    // word widened; r10: x; r11, r12: the two weight rows; lr: end of x.
    core::arch::global_asm!(
        ".section .text.fixnet_dot_2x2,\"ax\",%progbits",
        ".global fixnet_dot_2x2",
        ".type fixnet_dot_2x2,%function",
        ".p2align 2",
        ".thumb_func",
        "fixnet_dot_2x2:",
        "push {{r4-r11, lr}}",
        "ldr r10, [r0, #16]",
        "ldr r11, [r0, #20]",
        "ldr r12, [r0, #24]",
        "ldr r4, [r0, #28]",
        "add lr, r10, r4, lsl #4",
        "push {{r0}}",
        "ldm r0, {{r0-r3}}",
        "tst r4, #1",
        "beq 2f",
        ".macro fixnet_group2x2",
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
        "fixnet_group2x2",
        "2:",
        "cmp r10, lr",
        "beq 9f",
        "1:",
        "fixnet_group2x2",
        "fixnet_group2x2",
        "cmp r10, lr",
        "bne 1b",
        "9:",
        "pop {{r4}}",
        "stm r4, {{r0-r3}}",
        "pop {{r4-r11, pc}}",
        ".purgem fixnet_group2x2",
        ".size fixnet_dot_2x2, . - fixnet_dot_2x2",
    );
}
