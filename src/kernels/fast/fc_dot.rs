//! The inner product of the optimized fully connected layer: one int8 input vector against four
//! weight rows at a time, so that each input value is loaded and offset once for four MACs.
//!
//! On targets with the DSP extension it is Armv7E-M assembly: each input word is widened *with*
//! the input offset added in the same instruction (`SXTAB16`), and each weight word is widened
//! by `SXTB16` into the even and odd pairs that `SMLAD` multiplies with the matching input pairs
//! (the pairing [`dot`](super::dot) documents). On other Arm targets (Armv6-M: Cortex-M0/M0+)
//! it is Thumb-1 assembly that keeps the four row pointers, the input pointer and one index in
//! the eight low registers `LDRSB`/`MULS` need (the compiler spills that loop), 16
//! instructions per input and four MACs; with the `portable` feature, or off Arm, portable
//! Rust. Accumulation wraps like TFLite's `int32`.

use crate::Error;

/// One int8 input vector (`x`, its whole groups of four) × four weight rows `stride` bytes
/// apart starting at `w`: adds `Σ (x + offset) · w_r` to `acc[r]`. `offset` must keep every
/// `x + offset` within `i16`.
///
/// Errors: [`Error::ShapeMismatch`] when `w` ends before the last row's groups do.
#[inline]
pub(crate) fn dot_1x4(
    acc: &mut [i32; 4],
    x: &[i8],
    offset: i32,
    w: &[i8],
    stride: usize,
) -> Result<(), Error> {
    let groups = x.len() / 4;
    let len = groups * 4;
    let x = x.get(..len).ok_or(Error::ShapeMismatch)?;
    // Checked, not wrapping: the assembly's reads are bounded by this length.
    let reach = stride
        .checked_mul(3)
        .and_then(|r| r.checked_add(len))
        .ok_or(Error::ShapeMismatch)?;
    let w = w.get(..reach).ok_or(Error::ShapeMismatch)?;
    #[cfg(fixnet_dsp)]
    // SAFETY: `x` holds the `groups` × 4 bytes read, `w` the four rows' first `groups` × 4
    // bytes each (the last row ends at `reach`, inside `w`).
    unsafe {
        dsp::dot_1x4(
            acc,
            x.as_ptr(),
            (offset as u32 & 0xffff) | (offset as u32) << 16,
            w.as_ptr(),
            stride,
            groups,
        );
    }
    #[cfg(all(
        target_arch = "arm",
        target_os = "none",
        not(fixnet_dsp),
        not(feature = "portable")
    ))]
    // SAFETY: as above; the routine reads `len` bytes of `x` and of each row.
    unsafe {
        v6m::dot_1x4(acc, x.as_ptr(), offset, w.as_ptr(), stride, len);
    }
    #[cfg(not(any(
        fixnet_dsp,
        all(
            target_arch = "arm",
            target_os = "none",
            not(fixnet_dsp),
            not(feature = "portable")
        )
    )))]
    {
        let row = |r: usize| super::super::span(w, r * stride, len);
        portable_1x4(acc, x, offset, [row(0)?, row(1)?, row(2)?, row(3)?]);
    }
    Ok(())
}

/// [`dot_1x4`] in Rust: one pass over the input, each value widened once for the four rows.
#[cfg(not(any(
    fixnet_dsp,
    all(
        target_arch = "arm",
        target_os = "none",
        not(fixnet_dsp),
        not(feature = "portable")
    )
)))]
#[inline(always)]
fn portable_1x4(acc: &mut [i32; 4], x: &[i8], offset: i32, rows: [&[i8]; 4]) {
    let [mut a0, mut a1, mut a2, mut a3] = *acc;
    let [r0, r1, r2, r3] = rows;
    let lanes = x.iter().zip(r0).zip(r1).zip(r2).zip(r3);
    for ((((&xv, &w0), &w1), &w2), &w3) in lanes {
        let v = i32::from(xv).wrapping_add(offset);
        a0 = a0.wrapping_add(v.wrapping_mul(i32::from(w0)));
        a1 = a1.wrapping_add(v.wrapping_mul(i32::from(w1)));
        a2 = a2.wrapping_add(v.wrapping_mul(i32::from(w2)));
        a3 = a3.wrapping_add(v.wrapping_mul(i32::from(w3)));
    }
    *acc = [a0, a1, a2, a3];
}

#[cfg(fixnet_dsp)]
mod dsp {
    /// Arguments of `fixnet_fc_1x4`, read and written through one pointer.
    #[repr(C)]
    struct Args {
        acc: [i32; 4],
        x: *const i8,
        offset: u32,
        w: *const i8,
        stride: usize,
        groups: usize,
    }

    extern "C" {
        fn fixnet_fc_1x4(args: *mut Args);
    }

    pub(super) unsafe fn dot_1x4(
        acc: &mut [i32; 4],
        x: *const i8,
        offset: u32,
        w: *const i8,
        stride: usize,
        groups: usize,
    ) {
        let mut a = Args {
            acc: *acc,
            x,
            offset,
            w,
            stride,
            groups,
        };
        // SAFETY: the caller guarantees the reads; the routine follows the AAPCS.
        unsafe { fixnet_fc_1x4(&mut a) };
        *acc = a.acc;
    }

    // r0-r3: accumulators; r4, r5: one input word widened, offset added; r6: offset pair; r7:
    // x; r8, r9: one weight word widened; r10: row 0 (row 1 at +r12); r11: row 2 (row 3 at
    // +r12); r12: row stride; lr: end of x. Per group of four inputs: 3 instructions for the
    // input, 5 per row (23 for 16 MACs), two groups per loop turn.
    core::arch::global_asm!(
        ".section .text.fixnet_fc_1x4,\"ax\",%progbits",
        ".global fixnet_fc_1x4",
        ".type fixnet_fc_1x4,%function",
        ".p2align 2",
        ".thumb_func",
        "fixnet_fc_1x4:",
        "push {{r4-r11, lr}}",
        "ldr r7, [r0, #16]",
        "ldr r6, [r0, #20]",
        "ldr r10, [r0, #24]",
        "ldr r12, [r0, #28]",
        "ldr r4, [r0, #32]",
        "add lr, r7, r4, lsl #2",
        "add r11, r10, r12, lsl #1",
        "push {{r0}}",
        "ldm r0, {{r0-r3}}",
        "tst r4, #1",
        "beq 2f",
        ".macro fixnet_fc_row acc",
        "sxtb16 r9, r8",
        "sxtb16 r8, r8, ror #8",
        "smlad \\acc, r4, r9, \\acc",
        "smlad \\acc, r5, r8, \\acc",
        ".endm",
        ".macro fixnet_fc_group",
        "ldr r5, [r7], #4",
        "sxtab16 r4, r6, r5",
        "sxtab16 r5, r6, r5, ror #8",
        "ldr r8, [r10, r12]",
        "fixnet_fc_row r1",
        "ldr r8, [r10], #4",
        "fixnet_fc_row r0",
        "ldr r8, [r11, r12]",
        "fixnet_fc_row r3",
        "ldr r8, [r11], #4",
        "fixnet_fc_row r2",
        ".endm",
        "fixnet_fc_group",
        "2:",
        "cmp r7, lr",
        "beq 9f",
        "1:",
        "fixnet_fc_group",
        "fixnet_fc_group",
        "cmp r7, lr",
        "bne 1b",
        "9:",
        "pop {{r4}}",
        "stm r4, {{r0-r3}}",
        "pop {{r4-r11, pc}}",
        ".purgem fixnet_fc_group",
        ".purgem fixnet_fc_row",
        ".size fixnet_fc_1x4, . - fixnet_fc_1x4",
    );
}

#[cfg(all(
    target_arch = "arm",
    target_os = "none",
    not(fixnet_dsp),
    not(feature = "portable")
))]
mod v6m {
    /// Arguments of `fixnet_fc_1x4_v6m`, read and written through one pointer.
    #[repr(C)]
    struct Args {
        acc: [i32; 4],
        x: *const i8,
        offset: i32,
        w: *const i8,
        stride: usize,
        len: usize,
    }

    extern "C" {
        fn fixnet_fc_1x4_v6m(args: *mut Args);
    }

    pub(super) unsafe fn dot_1x4(
        acc: &mut [i32; 4],
        x: *const i8,
        offset: i32,
        w: *const i8,
        stride: usize,
        len: usize,
    ) {
        let mut a = Args {
            acc: *acc,
            x,
            offset,
            w,
            stride,
            len,
        };
        // SAFETY: the caller guarantees the reads; the routine follows the AAPCS.
        unsafe { fixnet_fc_1x4_v6m(&mut a) };
        *acc = a.acc;
    }

    // r0: end of x; r1-r4: ends of rows 0-3; r5: index, from −len up to 0 (so one ADDS both
    // steps it and ends the loop); r6: x + offset; r7: a weight, then its product; r8-r11:
    // accumulators; r12: offset.
    core::arch::global_asm!(
        ".section .text.fixnet_fc_1x4_v6m,\"ax\",%progbits",
        ".global fixnet_fc_1x4_v6m",
        ".type fixnet_fc_1x4_v6m,%function",
        ".p2align 2",
        ".thumb_func",
        "fixnet_fc_1x4_v6m:",
        "push {{r4-r7, lr}}",
        "mov r4, r8",
        "mov r5, r9",
        "mov r6, r10",
        "mov r7, r11",
        "push {{r4-r7}}",
        "push {{r0}}",
        "ldr r4, [r0, #0]",
        "mov r8, r4",
        "ldr r4, [r0, #4]",
        "mov r9, r4",
        "ldr r4, [r0, #8]",
        "mov r10, r4",
        "ldr r4, [r0, #12]",
        "mov r11, r4",
        "ldr r4, [r0, #20]",
        "mov r12, r4",
        "ldr r5, [r0, #32]",
        "ldr r6, [r0, #28]",
        "ldr r1, [r0, #24]",
        "adds r1, r1, r5",
        "adds r2, r1, r6",
        "adds r3, r2, r6",
        "adds r4, r3, r6",
        "ldr r0, [r0, #16]",
        "adds r0, r0, r5",
        "rsbs r5, r5, #0",
        "beq 9f",
        "1:",
        "ldrsb r6, [r0, r5]",
        "add r6, r12",
        "ldrsb r7, [r1, r5]",
        "muls r7, r6, r7",
        "add r8, r7",
        "ldrsb r7, [r2, r5]",
        "muls r7, r6, r7",
        "add r9, r7",
        "ldrsb r7, [r3, r5]",
        "muls r7, r6, r7",
        "add r10, r7",
        "ldrsb r7, [r4, r5]",
        "muls r7, r6, r7",
        "add r11, r7",
        "adds r5, #1",
        "bne 1b",
        "9:",
        "pop {{r0}}",
        "mov r4, r8",
        "str r4, [r0, #0]",
        "mov r4, r9",
        "str r4, [r0, #4]",
        "mov r4, r10",
        "str r4, [r0, #8]",
        "mov r4, r11",
        "str r4, [r0, #12]",
        "pop {{r4-r7}}",
        "mov r8, r4",
        "mov r9, r5",
        "mov r10, r6",
        "mov r11, r7",
        "pop {{r4-r7, pc}}",
        ".size fixnet_fc_1x4_v6m, . - fixnet_fc_1x4_v6m",
    );
}
