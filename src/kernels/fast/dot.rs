//! The packing shared by the optimized kernels' inner products (portable Rust, and Armv7E-M
//! assembly with `SMLAD` on pairs of 16-bit values widened by `SXTB16` when the target has the
//! DSP extension, `cfg(fixnet_dsp)`, see `build.rs`).
//!
//! Activations are *widened*: every group of four int8 values `v0 v1 v2 v3` (offset already
//! added, so each fits an `i16`) becomes two words, `[v0, v2]` and `[v1, v3]` (low half
//! first). That is exactly what `SXTB16` and `SXTB16 …, ROR #8` make of the four weight bytes
//! of the same group, so weights are used in their stored order (OHWI, `[outputs][inputs]`)
//! and every `SMLAD` pairs the right values. Accumulation wraps like TFLite's `int32`.

/// Packs two values into one word, `lo` in the low half.
#[inline(always)]
pub(crate) fn pack(lo: i32, hi: i32) -> u32 {
    (lo as u32 & 0xFFFF) | ((hi as u32) << 16)
}
