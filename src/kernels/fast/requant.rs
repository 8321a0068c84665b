//! TFLite's per-channel requantization (`MultiplyByQuantizedMultiplier`, double rounding) in
//! a few instructions, for accumulators known to be small enough.
//!
//! When `|acc · 2^(left+1)| < 2^30` nothing in TFLite's arithmetic wraps, and its two
//! roundings simplify:
//!
//! * `SaturatingRoundingDoublingHighMul(a, m)` is `⌊(a·m + 2^30) / 2^31⌋` (its nudge
//!   `1 − 2^30` for negative products, then truncation toward zero, is the same as adding
//!   `2^30` and flooring), which is `⌊(2a·m + 2^31) / 2^32⌋`: one `SMMULR` of the doubled
//!   accumulator on Armv7E-M.
//! * `RoundingDivideByPOT(y, e)` (ties away from zero) is `(2y + 2^e − [y < 0]) >> (e + 1)`
//!   with an arithmetic shift, for every `e ≥ 0`: for `e = 0` the numerator is `2y` or
//!   `2y + 1`; for `e ≥ 1` it is the textbook `(y + 2^(e−1) − [y < 0]) >> e` with both
//!   sides doubled, and the odd `− 1` cannot cross a multiple of `2^(e+1)` that the even
//!   `− 2` would not.
//!
//! [`ChanQ::new`] checks that bound for every accumulator a layer can produce, from the
//! bias, the tap count and the input offset.

/// One output channel's requantization, prepared by [`ChanQ::new`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChanQ {
    pub(super) bias: i32,
    pub(super) multiplier: i32,
    /// TFLite's left shift plus one (the doubling `SMMULR` needs).
    pub(super) left: u32,
    /// `2^e` for TFLite's right shift `e` (`0..=30`).
    pub(super) round: i32,
    /// `e + 1`.
    pub(super) right: u32,
}

impl ChanQ {
    /// The requantization of a channel with `bias`, `multiplier` and `shift` (TFLite's
    /// convention: positive shifts left) whose accumulators sum `taps` products of an int8
    /// weight and `x + offset` (x int8), or `None` when [`ChanQ::apply`] would not be exact
    /// for all of them.
    pub(crate) fn new(
        bias: i32,
        multiplier: i32,
        shift: i32,
        taps: usize,
        offset: i32,
    ) -> Option<Self> {
        if !(-30..=30).contains(&shift) {
            return None;
        }
        let left = shift.max(0).unsigned_abs() + 1;
        let e = shift.min(0).unsigned_abs();
        let x_max = 128 + i64::from(offset.unsigned_abs());
        let bound = i64::try_from(taps)
            .ok()?
            .checked_mul(128 * x_max)?
            .checked_add(i64::from(bias.unsigned_abs()))?
            .checked_mul(1i64.checked_shl(left)?)?;
        if bound >= 1i64 << 30 {
            return None;
        }
        Some(ChanQ {
            bias,
            multiplier,
            left,
            round: 1i32.checked_shl(e)?,
            right: e + 1,
        })
    }

    /// `MultiplyByQuantizedMultiplier(acc + bias, multiplier, shift)`, for any `acc` that
    /// [`ChanQ::new`] was told about.
    #[inline(always)]
    pub(crate) fn apply(&self, acc: i32) -> i32 {
        let a = acc.wrapping_add(self.bias).wrapping_shl(self.left);
        let y = high_mul_round(a, self.multiplier);
        y.wrapping_shl(1)
            .wrapping_add(self.round)
            .wrapping_sub(i32::from(y < 0))
            .wrapping_shr(self.right)
    }
}

/// `⌊(a·b + 2^31) / 2^32⌋`, Armv7E-M's `SMMULR`.
#[cfg(fixnet_dsp)]
#[inline(always)]
fn high_mul_round(a: i32, b: i32) -> i32 {
    let y: i32;
    // SAFETY: one register-only instruction.
    unsafe {
        core::arch::asm!(
            "smmulr {y}, {a}, {b}",
            y = lateout(reg) y,
            a = in(reg) a,
            b = in(reg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    y
}

/// `⌊(a·b + 2^31) / 2^32⌋` with a 64-bit product, where the target has one.
#[cfg(all(not(fixnet_dsp), not(target_arch = "arm")))]
#[inline(always)]
fn high_mul_round(a: i32, b: i32) -> i32 {
    ((i64::from(a) * i64::from(b) + (1 << 31)) >> 32) as i32
}

/// `⌊(a·b + 2^31) / 2^32⌋` from 16-bit halves, for Armv6-M (no 64-bit multiply: the
/// library call it would take costs several times these four `MULS`).
#[cfg(all(not(fixnet_dsp), target_arch = "arm"))]
#[inline(always)]
fn high_mul_round(a: i32, b: i32) -> i32 {
    split_high_mul_round(a, b)
}

/// `⌊(a·b + 2^31) / 2^32⌋` in 32-bit arithmetic: `a = ah·2^16 + al`, `b = bh·2^16 + bl`
/// (`al`, `bl` unsigned). Every partial sum stays inside `i32` (the two middle products
/// are below `2^31 − 2^16 − 2^15` in magnitude, and what is added to each is under
/// `2^16 + 2^15`).
#[cfg_attr(not(all(not(fixnet_dsp), target_arch = "arm")), allow(dead_code))]
#[inline(always)]
pub(crate) fn split_high_mul_round(a: i32, b: i32) -> i32 {
    let (ah, al) = (a >> 16, a & 0xFFFF);
    let (bh, bl) = (b >> 16, b & 0xFFFF);
    let low = (al as u32).wrapping_mul(bl as u32);
    let t1 = ah
        .wrapping_mul(bl)
        .wrapping_add((low >> 16) as i32)
        .wrapping_add(1 << 15);
    let t2 = al.wrapping_mul(bh).wrapping_add(t1 & 0xFFFF);
    ah.wrapping_mul(bh)
        .wrapping_add(t1 >> 16)
        .wrapping_add(t2 >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::multiply_by_quantized_multiplier;

    fn wide(a: i32, b: i32) -> i32 {
        ((i64::from(a) * i64::from(b) + (1 << 31)) >> 32) as i32
    }

    #[test]
    fn split_high_mul_matches_the_64_bit_product() {
        let edges = [
            i32::MIN,
            i32::MIN + 1,
            -65537,
            -65536,
            -65535,
            -1,
            0,
            1,
            32767,
            65535,
            65536,
            i32::MAX - 1,
            i32::MAX,
        ];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(split_high_mul_round(a, b), wide(a, b), "{a} {b}");
            }
        }
        let mut s = 0x2545_f491u32;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let a = s as i32;
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let b = s as i32;
            assert_eq!(split_high_mul_round(a, b), wide(a, b), "{a} {b}");
            assert_eq!(split_high_mul_round(a >> 9, b), wide(a >> 9, b));
        }
    }

    #[test]
    fn apply_is_tflite_requantization_within_the_bound() {
        let mut s = 0x9e37_79b9u32;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let mut checked = 0;
        for _ in 0..200_000 {
            let shift = (next() % 40) as i32 - 33;
            let shift = if next() % 4 == 0 { 0 } else { shift };
            let multiplier = (next() | 0x4000_0000) as i32 & 0x7FFF_FFFF;
            let multiplier = if next() % 8 == 0 {
                -multiplier
            } else {
                multiplier
            };
            let taps = 1 + (next() % 25) as usize;
            let offset = (next() % 257) as i32 - 128;
            let bias = (next() as i32) >> (next() % 32);
            let Some(cq) = ChanQ::new(bias, multiplier, shift, taps, offset) else {
                continue;
            };
            let reach = (taps as i32) * 128 * (128 + offset.abs());
            for acc in [-reach, reach, (next() as i32) % (reach + 1), -1, 0, 1] {
                let want = multiply_by_quantized_multiplier(acc + bias, multiplier, shift);
                assert_eq!(cq.apply(acc), want, "{acc} {bias} {multiplier} {shift}");
                checked += 1;
            }
        }
        assert!(checked > 100_000, "{checked}");
    }
}
