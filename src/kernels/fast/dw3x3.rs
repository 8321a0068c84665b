//! The depthwise kernel's ([`depthwise`](super::depthwise)) Armv7E-M assembly: the 3×3
//! sweep, for strides 1 and 2 along the plane's rows (any stride across them), the plane's
//! fill and the requantizing store.
//!
//! The plane's rows are read a word at a time: two neighbouring `i16` taps `[p_k, p_k+1]`
//! (low half first). With each kernel row's weights packed as `A = [w0, w1]` and
//! `C = [w1, w2]`, all six words in registers:
//!
//! * stride 1, outputs `2j` and `2j+1` together, from the words `E0 = [p_2j, p_2j+1]` and
//!   `E1 = [p_2j+2, p_2j+3]`: `out_2j += SMLAD(E0, A) + SMLABT(E1, C)` and
//!   `out_2j+1 += SMLATB(E0, A) + SMLAD(E1, C)`, so each word loaded serves both outputs;
//! * stride 2, one output from `[p_2o, p_2o+1]` and `[p_2o+2, p_2o+3]`:
//!   `SMLAD(·, A) + SMLABT(·, C)`.
//!
//! Every product is an `i16` plane value times an int8 weight, summed in 32 bits: the same
//! integers as the portable sweep, so the same accumulators.

use super::depthwise::Geom;
use super::requant::ChanQ;
use crate::Error;

/// Runs the assembly sweep when it applies to `g` (3×3, stride 1 or 2 along the rows, a DSP
/// target) and returns whether it did; the caller sweeps with the portable code otherwise.
/// Arguments as [`sweep`](super::depthwise::sweep)'s; `plane` must be word aligned.
#[cfg(fixnet_dsp)]
pub(super) fn run(
    plane: &[i16],
    g: &Geom,
    w: &[i32],
    rows: usize,
    acc: &mut [i32],
) -> Result<bool, Error> {
    if g.ku != 3 || g.kv != 3 || !(g.su == 1 || g.su == 2) || rows == 0 {
        return Ok(false);
    }
    let &[a0, a1, a2, b0, b1, b2, c0, c1, c2] = w else {
        return Ok(false);
    };
    let pack = super::dot::pack;
    // What the assembly reads and writes, checked against the slices it is given: rows
    // `(rows − 1) · sv + 3` of the plane, the columns up to `(acc_pitch − 1) · su + 3` of
    // each, and `rows · acc_pitch` accumulators.
    let last_col = (g.acc_pitch - 1) * g.su + 3;
    let plane_rows = (rows - 1) * g.sv + 3;
    if last_col >= g.pitch
        || plane_rows * g.pitch > plane.len()
        || rows * g.acc_pitch > acc.len()
        || g.acc_pitch % 2 != 0
        || g.pitch % 2 != 0
        || plane.as_ptr() as usize % 4 != 0
    {
        return Err(Error::ShapeMismatch);
    }
    let mut args = dsp::Args {
        w: [
            pack(a0, a1),
            pack(a1, a2),
            pack(b0, b1),
            pack(b1, b2),
            pack(c0, c1),
            pack(c1, c2),
        ],
        plane: plane.as_ptr(),
        row_bytes: g.pitch * 2,
        acc: acc.as_mut_ptr(),
        acc_row_bytes: g.acc_pitch * 4,
        rows,
        row_step: g.sv * g.pitch * 2,
    };
    // SAFETY: the reads and writes are inside `plane` and `acc` (checked above), `plane` is
    // word aligned with an even pitch, so every word read is aligned.
    unsafe { dsp::sweep(&mut args, g.su == 1) };
    Ok(true)
}

/// Requantizes a strip of one channel's accumulators into `out` (which starts at the
/// strip's first output of that channel) with `SMMULR`, `SSAT` and, for a clamp narrower
/// than int8 (`lo`, `hi`), byte-wise `SSUB8`/`SEL`; returns whether it did (always, on a
/// DSP target). Arguments as [`store`](super::depthwise)'s.
#[cfg(fixnet_dsp)]
#[allow(clippy::too_many_arguments)]
pub(super) fn store(
    out: &mut [i8],
    acc: &[i32],
    g: &Geom,
    rows: usize,
    cq: &ChanQ,
    zp: i32,
    lo: i8,
    hi: i8,
) -> Result<bool, Error> {
    if rows == 0 || g.out_u == 0 {
        return Ok(true);
    }
    // The last output written, and the accumulators read, are inside the slices.
    let last = (rows - 1) * g.out_step_v + (g.out_u - 1) * g.out_step_u;
    if last >= out.len() || rows * g.acc_pitch > acc.len() || g.acc_pitch < g.out_u {
        return Err(Error::ShapeMismatch);
    }
    let args = dsp::StoreArgs {
        acc: acc.as_ptr(),
        out: out.as_mut_ptr(),
        step_u: g.out_step_u,
        // From one row's end (after `out_u` steps) to the next row's start; wraps when
        // negative (transposed layers), as the address arithmetic does.
        row_skip: g.out_step_v.wrapping_sub(g.out_u * g.out_step_u),
        count: g.out_u,
        acc_skip: (g.acc_pitch - g.out_u) * 4,
        rows,
        bias: cq.bias,
        multiplier: cq.multiplier,
        left: cq.left,
        round: cq.round,
        right: cq.right,
        zp,
        lo: u32::from(lo as u8),
        hi: u32::from(hi as u8),
    };
    // SAFETY: reads `rows · acc_pitch` accumulators and writes the outputs up to `last`,
    // both checked above.
    unsafe { dsp::store(&args, lo != i8::MIN || hi != i8::MAX) };
    Ok(true)
}

/// The portable build has no assembly store.
#[cfg(not(fixnet_dsp))]
#[allow(clippy::too_many_arguments)]
pub(super) fn store(
    _out: &mut [i8],
    _acc: &[i32],
    _g: &Geom,
    _rows: usize,
    _cq: &ChanQ,
    _zp: i32,
    _lo: i8,
    _hi: i8,
) -> Result<bool, Error> {
    Ok(false)
}

/// Copies `dst.len()` values `step` bytes apart from `src` into `dst`, each plus `offset`
/// (which keeps them inside `i16`), two per word store; returns whether it did (always, on
/// a DSP target).
#[cfg(fixnet_dsp)]
pub(super) fn fill(dst: &mut [i16], src: &[i8], step: usize, offset: i32) -> Result<bool, Error> {
    let n = dst.len();
    if n == 0 {
        return Ok(true);
    }
    if step == 0
        || (n - 1)
            .checked_mul(step)
            .is_none_or(|last| last >= src.len())
    {
        return Err(Error::ShapeMismatch);
    }
    let args = dsp::FillArgs {
        src: src.as_ptr(),
        step,
        dst: dst.as_mut_ptr(),
        n,
        offset: super::dot::pack(offset, offset),
    };
    // SAFETY: reads `src` at `k · step` for `k < n` (the last checked above), writes the `n`
    // elements of `dst`, halfword aligned (word stores only at word-aligned addresses).
    unsafe { dsp::fill(&args) };
    Ok(true)
}

/// The portable build has no assembly fill.
#[cfg(not(fixnet_dsp))]
pub(super) fn fill(
    _dst: &mut [i16],
    _src: &[i8],
    _step: usize,
    _offset: i32,
) -> Result<bool, Error> {
    Ok(false)
}

/// The portable build has no assembly sweep.
#[cfg(not(fixnet_dsp))]
pub(super) fn run(
    _plane: &[i16],
    _g: &Geom,
    _w: &[i32],
    _rows: usize,
    _acc: &mut [i32],
) -> Result<bool, Error> {
    Ok(false)
}

#[cfg(fixnet_dsp)]
mod dsp {
    /// Arguments of both routines, read through one pointer.
    #[repr(C)]
    pub(super) struct Args {
        /// `A0 C0 A1 C1 A2 C2`.
        pub w: [u32; 6],
        pub plane: *const i16,
        pub row_bytes: usize,
        pub acc: *mut i32,
        pub acc_row_bytes: usize,
        pub rows: usize,
        pub row_step: usize,
    }

    /// Arguments of `fixnet_dw_store` (steps in bytes).
    #[repr(C)]
    pub(super) struct StoreArgs {
        pub acc: *const i32,
        pub out: *mut i8,
        pub step_u: usize,
        pub row_skip: usize,
        pub count: usize,
        pub acc_skip: usize,
        pub rows: usize,
        pub bias: i32,
        pub multiplier: i32,
        pub left: u32,
        pub round: i32,
        pub right: u32,
        pub zp: i32,
        /// The clamp's bounds in byte 0.
        pub lo: u32,
        pub hi: u32,
    }

    extern "C" {
        fn fixnet_dw3x3_s1(args: *const Args);
        fn fixnet_dw3x3_s2(args: *const Args);
        fn fixnet_dw_store(args: *const StoreArgs);
        fn fixnet_dw_store_clamp(args: *const StoreArgs);
    }

    /// # Safety
    /// `args` must describe reads and writes inside live buffers, as [`super::store`]
    /// checks.
    pub(super) unsafe fn store(args: &StoreArgs, clamp: bool) {
        // SAFETY: the caller's; both routines follow the AAPCS.
        unsafe {
            if clamp {
                fixnet_dw_store_clamp(args);
            } else {
                fixnet_dw_store(args);
            }
        }
    }

    /// # Safety
    /// `args` must describe reads and writes inside live buffers, as [`super::run`] checks.
    pub(super) unsafe fn sweep(args: &mut Args, stride1: bool) {
        // SAFETY: the caller's; both routines follow the AAPCS.
        unsafe {
            if stride1 {
                fixnet_dw3x3_s1(args);
            } else {
                fixnet_dw3x3_s2(args);
            }
        }
    }

    // r0: a pair of taps; r1-r6: A0 C0 A1 C1 A2 C2; r7: plane (row 0 of the output's
    // window; rows 1 and 2 at +r8, +2·r8); r8: plane row bytes; r9: accumulators; r10: end
    // of this row's accumulators; r11, r12: the outputs; lr: start of this output row's
    // window. Stack: accumulator row bytes, rows left, row step.
    core::arch::global_asm!(
        ".macro fixnet_dw3x3_enter",
        "push {{r4-r11, lr}}",
        "sub sp, sp, #16",
        "ldr r7, [r0, #24]",
        "ldr r8, [r0, #28]",
        "ldr r9, [r0, #32]",
        "ldr r10, [r0, #36]",
        "ldr r11, [r0, #40]",
        "ldr r12, [r0, #44]",
        "str r10, [sp, #0]",
        "str r11, [sp, #4]",
        "str r12, [sp, #8]",
        "ldm r0, {{r1-r6}}",
        "mov lr, r7",
        ".endm",
        // Next output row; leaves when none is left.
        ".macro fixnet_dw3x3_next_row row_loop",
        "ldr r0, [sp, #8]",
        "add lr, lr, r0",
        "mov r7, lr",
        "ldr r0, [sp, #4]",
        "subs r0, r0, #1",
        "str r0, [sp, #4]",
        "bne \\row_loop",
        "add sp, sp, #16",
        "pop {{r4-r11, pc}}",
        ".endm",
        // Stride 1: two outputs per pass.
        ".section .text.fixnet_dw3x3_s1,\"ax\",%progbits",
        ".global fixnet_dw3x3_s1",
        ".type fixnet_dw3x3_s1,%function",
        ".p2align 2",
        ".thumb_func",
        "fixnet_dw3x3_s1:",
        "fixnet_dw3x3_enter",
        "3:",
        "ldr r0, [sp, #0]",
        "add r10, r9, r0",
        "1:",
        "ldr r0, [r7]",
        "smuad r11, r0, r1",
        "smultb r12, r0, r1",
        "ldr r0, [r7, r8]",
        "smlad r11, r0, r3, r11",
        "smlatb r12, r0, r3, r12",
        "ldr r0, [r7, r8, lsl #1]",
        "smlad r11, r0, r5, r11",
        "smlatb r12, r0, r5, r12",
        "add r7, r7, #4",
        "ldr r0, [r7]",
        "smlabt r11, r0, r2, r11",
        "smlad r12, r0, r2, r12",
        "ldr r0, [r7, r8]",
        "smlabt r11, r0, r4, r11",
        "smlad r12, r0, r4, r12",
        "ldr r0, [r7, r8, lsl #1]",
        "smlabt r11, r0, r6, r11",
        "smlad r12, r0, r6, r12",
        "strd r11, r12, [r9], #8",
        "cmp r9, r10",
        "bne 1b",
        "fixnet_dw3x3_next_row 3b",
        ".size fixnet_dw3x3_s1, . - fixnet_dw3x3_s1",
        // Stride 2: one output per pass.
        ".section .text.fixnet_dw3x3_s2,\"ax\",%progbits",
        ".global fixnet_dw3x3_s2",
        ".type fixnet_dw3x3_s2,%function",
        ".p2align 2",
        ".thumb_func",
        "fixnet_dw3x3_s2:",
        "fixnet_dw3x3_enter",
        "3:",
        "ldr r0, [sp, #0]",
        "add r10, r9, r0",
        "1:",
        "ldr r0, [r7]",
        "smuad r11, r0, r1",
        "ldr r0, [r7, r8]",
        "smlad r11, r0, r3, r11",
        "ldr r0, [r7, r8, lsl #1]",
        "smlad r11, r0, r5, r11",
        "add r7, r7, #4",
        "ldr r0, [r7]",
        "smlabt r11, r0, r2, r11",
        "ldr r0, [r7, r8]",
        "smlabt r11, r0, r4, r11",
        "ldr r0, [r7, r8, lsl #1]",
        "smlabt r11, r0, r6, r11",
        "str r11, [r9], #4",
        "cmp r9, r10",
        "bne 1b",
        "fixnet_dw3x3_next_row 3b",
        ".size fixnet_dw3x3_s2, . - fixnet_dw3x3_s2",
        ".purgem fixnet_dw3x3_enter",
        ".purgem fixnet_dw3x3_next_row",
    );

    /// Arguments of `fixnet_dw_fill`.
    #[repr(C)]
    pub(super) struct FillArgs {
        pub src: *const i8,
        pub step: usize,
        pub dst: *mut i16,
        pub n: usize,
        /// The input offset in both halves.
        pub offset: u32,
    }

    extern "C" {
        fn fixnet_dw_fill(args: *const FillArgs);
    }

    /// # Safety
    /// `args` must describe reads and writes inside live buffers, as [`super::fill`]
    /// checks.
    pub(super) unsafe fn fill(args: &FillArgs) {
        // SAFETY: the caller's; the routine follows the AAPCS.
        unsafe { fixnet_dw_fill(args) };
    }

    // r1: source; r2: source step; r3: destination; r4: values left; r5: offset pair; r6:
    // pairs left; r7, r0: values. One value alone first when the destination is not word
    // aligned, then pairs (PKHBT, SADD16, one word store), then the last value alone.
    core::arch::global_asm!(
        ".section .text.fixnet_dw_fill,\"ax\",%progbits",
        ".global fixnet_dw_fill",
        ".type fixnet_dw_fill,%function",
        ".p2align 2",
        ".thumb_func",
        "fixnet_dw_fill:",
        "push {{r4-r7, lr}}",
        "ldm r0, {{r1-r5}}",
        "tst r3, #2",
        "beq 2f",
        "ldrsb r7, [r1]",
        "add r1, r1, r2",
        "add r7, r7, r5",
        "strh r7, [r3], #2",
        "subs r4, r4, #1",
        "beq 9f",
        "2:",
        "lsrs r6, r4, #1",
        "beq 3f",
        "1:",
        "ldrsb r7, [r1]",
        "ldrsb r0, [r1, r2]",
        "add r1, r1, r2, lsl #1",
        "pkhbt r7, r7, r0, lsl #16",
        "sadd16 r7, r7, r5",
        "str r7, [r3], #4",
        "subs r6, r6, #1",
        "bne 1b",
        "3:",
        "tst r4, #1",
        "beq 9f",
        "ldrsb r7, [r1]",
        "add r7, r7, r5",
        "strh r7, [r3]",
        "9:",
        "pop {{r4-r7, pc}}",
        ".size fixnet_dw_fill, . - fixnet_dw_fill",
    );

    // r0: accumulators; r1: output; r2: outputs left in the row; r3: output step; r4: bias;
    // r5: multiplier; r6: left shift; r7: 2^e; r8: e + 1; r9: output zero point; r10, r11:
    // working values; r12, lr: the clamp's bounds (byte 0). Stack: row skip, outputs per
    // row, accumulators to skip at a row's end, rows left. Per output, ChanQ::apply:
    // a = (acc + bias) << left; y = SMMULR(a, m); (2y + 2^e − [y < 0]) >> (e + 1); then
    // + zero point, saturated to int8 and, in the clamping routine, max(lo) and min(hi) on
    // byte 0 (SSUB8 sets GE per byte, SEL picks by it).
    core::arch::global_asm!(
        ".macro fixnet_dw_store_body name, clamp",
        ".section .text.\\name,\"ax\",%progbits",
        ".global \\name",
        ".type \\name,%function",
        ".p2align 2",
        ".thumb_func",
        "\\name:",
        "push {{r4-r11, lr}}",
        "sub sp, sp, #16",
        "ldr r4, [r0, #12]",
        "str r4, [sp, #0]",
        "ldr r4, [r0, #16]",
        "str r4, [sp, #4]",
        "ldr r4, [r0, #20]",
        "str r4, [sp, #8]",
        "ldr r4, [r0, #24]",
        "str r4, [sp, #12]",
        "ldr r1, [r0, #4]",
        "ldr r3, [r0, #8]",
        "ldr r12, [r0, #52]",
        "ldr lr, [r0, #56]",
        "add r10, r0, #28",
        "ldm r10, {{r4-r9}}",
        "ldr r0, [r0, #0]",
        "3:",
        "ldr r2, [sp, #4]",
        "1:",
        "ldr r10, [r0], #4",
        "add r10, r10, r4",
        "lsl r10, r10, r6",
        "smmulr r11, r10, r5",
        "add r10, r7, r11, lsl #1",
        "sub r10, r10, r11, lsr #31",
        "asr r10, r10, r8",
        "add r10, r10, r9",
        "ssat r10, #8, r10",
        ".if \\clamp",
        "ssub8 r11, r10, r12",
        "sel r10, r10, r12",
        "ssub8 r11, lr, r10",
        "sel r10, r10, lr",
        ".endif",
        "strb r10, [r1]",
        "add r1, r1, r3",
        "subs r2, r2, #1",
        "bne 1b",
        "ldr r10, [sp, #8]",
        "add r0, r0, r10",
        "ldr r10, [sp, #0]",
        "add r1, r1, r10",
        "ldr r10, [sp, #12]",
        "subs r10, r10, #1",
        "str r10, [sp, #12]",
        "bne 3b",
        "add sp, sp, #16",
        "pop {{r4-r11, pc}}",
        ".size \\name, . - \\name",
        ".endm",
        "fixnet_dw_store_body fixnet_dw_store, 0",
        "fixnet_dw_store_body fixnet_dw_store_clamp, 1",
        ".purgem fixnet_dw_store_body",
    );
}
