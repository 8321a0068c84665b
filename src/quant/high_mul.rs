//! The rounded high half of a 32 × 32-bit product, `⌊(a·b + 2^30) / 2^31⌋`, the arithmetic
//! core of gemmlowp's `SaturatingRoundingDoublingHighMul` and so of every requantization.
//!
//! Two exact builds: one 64-bit multiply where the target has it (`SMULL` on Armv7-M and up,
//! any host), and four 16 × 16 → 32-bit products where it does not (`cfg(fixnet_no_mul64)`,
//! see `build.rs`: Armv6-M and Armv8-M Baseline, on which Rust's `i64` multiply is a call to
//! the `__aeabi_lmul` library routine, tens of instructions per requantized value). Both are
//! always compiled so that the host tests compare them.

/// `⌊(a·b + 2^30) / 2^31⌋` with one 64-bit multiply. Fits `i32` unless `a = b = i32::MIN`
/// (then it wraps; the caller saturates that case).
#[cfg_attr(fixnet_no_mul64, allow(dead_code))]
#[inline(always)]
pub(crate) fn rounded_high_mul_wide(a: i32, b: i32) -> i32 {
    let ab = i64::from(a) * i64::from(b);
    // |a·b| ≤ 2^62, so adding 2^30 cannot overflow.
    ((ab + (1 << 30)) >> 31) as i32
}

/// `⌊(a·b + 2^30) / 2^31⌋` from four 32-bit products of 16-bit halves, the same value as
/// [`rounded_high_mul_wide`] for every input (including its wrap at `a = b = i32::MIN`).
///
/// With `a = ah·2^16 + al` and `b = bh·2^16 + bl` (`ah`, `bh` signed, `al`, `bl` in
/// `0..2^16`):
///
/// `a·b + 2^30 = hh·2^32 + (lh + hl + ⌊ll / 2^16⌋ + 2^14)·2^16 + (ll mod 2^16)`
///
/// and the last term, below 2^16, never reaches the quotient by 2^31, so the result is
/// `2·hh + ⌊(lh + hl + ⌊ll / 2^16⌋ + 2^14) / 2^15⌋`. Only that middle sum needs 33 bits;
/// it is the one 64-bit addition (two instructions with carry on Armv6-M).
#[cfg_attr(not(any(test, fixnet_no_mul64)), allow(dead_code))]
#[inline(always)]
pub(crate) fn rounded_high_mul_halves(a: i32, b: i32) -> i32 {
    let (ah, al) = (a >> 16, a & 0xFFFF);
    let (bh, bl) = (b >> 16, b & 0xFFFF);
    // (2^16 − 1)^2 < 2^32: exact in u32.
    let ll = (al as u32).wrapping_mul(bl as u32);
    // |ah| ≤ 2^15 and bl < 2^16 (and the mirror): each cross product lies in (−2^31, 2^31).
    let lh = ah.wrapping_mul(bl);
    let hl = al.wrapping_mul(bh);
    // |hh| ≤ 2^30.
    let hh = ah.wrapping_mul(bh);
    // lh + ⌊ll / 2^16⌋ + 2^14 ≤ 32767·65535 + 65535 + 16384 < 2^31: still an i32; adding
    // hl can carry past it, hence the i64.
    let lh_rounded = lh.wrapping_add((ll >> 16) as i32).wrapping_add(1 << 14);
    let middle = i64::from(lh_rounded) + i64::from(hl);
    // The true result fits i32 (or wraps exactly as the wide one at MIN · MIN), so the
    // wrapping sum of its two parts is exact.
    hh.wrapping_shl(1).wrapping_add((middle >> 15) as i32)
}

/// The build this target uses (see the module docs).
#[inline(always)]
pub(crate) fn rounded_high_mul(a: i32, b: i32) -> i32 {
    #[cfg(fixnet_no_mul64)]
    {
        rounded_high_mul_halves(a, b)
    }
    #[cfg(not(fixnet_no_mul64))]
    {
        rounded_high_mul_wide(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{
        multiply_by_quantized_multiplier, rounding_divide_by_pot,
        saturating_rounding_doubling_high_mul,
    };
    use proptest::prelude::*;

    /// gemmlowp's scalar `SaturatingRoundingDoublingHighMul` as written there (and as this
    /// crate had it before the split): sign-dependent nudge, 64-bit division truncating
    /// toward zero.
    fn gemmlowp_high_mul(a: i32, b: i32) -> i32 {
        if a == i32::MIN && b == i32::MIN {
            return i32::MAX;
        }
        let ab = i64::from(a) * i64::from(b);
        let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
        ((ab + nudge) / (1i64 << 31)) as i32
    }

    /// gemmlowp's `RoundingDivideByPOT` with its 64-bit mask, for `0 ≤ exponent ≤ 31`.
    fn gemmlowp_divide_by_pot(x: i32, exponent: i32) -> i32 {
        let mask = ((1i64 << exponent) - 1) as i32;
        let remainder = x & mask;
        let threshold = (mask >> 1) + i32::from(x < 0);
        (x >> exponent) + i32::from(remainder > threshold)
    }

    /// TFLite's `MultiplyByQuantizedMultiplier` from the two functions above.
    fn tflite_multiply(x: i32, multiplier: i32, shift: i32) -> i32 {
        let left = if shift > 0 { shift } else { 0 };
        let right = if shift > 0 { 0 } else { -shift };
        gemmlowp_divide_by_pot(
            gemmlowp_high_mul(x.wrapping_mul(1 << left), multiplier),
            right,
        )
    }

    /// The split product with the caller's saturation, as the Armv6-M build computes it.
    fn halves_saturating(a: i32, b: i32) -> i32 {
        if a == i32::MIN && b == i32::MIN {
            i32::MAX
        } else {
            rounded_high_mul_halves(a, b)
        }
    }

    fn check(a: i32, b: i32) {
        let want = gemmlowp_high_mul(a, b);
        assert_eq!(halves_saturating(a, b), want, "halves({a}, {b})");
        assert_eq!(
            saturating_rounding_doubling_high_mul(a, b),
            want,
            "({a}, {b})"
        );
        assert_eq!(
            rounded_high_mul_halves(a, b),
            rounded_high_mul_wide(a, b),
            "unsaturated ({a}, {b})"
        );
    }

    /// Values where the 16-bit split or the rounding changes behaviour: the ends of the
    /// range, ±2^15 and ±2^16 (a half's sign or carry flips), ±2^30, ±1 around each.
    fn edges() -> Vec<i32> {
        let mut v = vec![i32::MIN, i32::MAX, 0];
        for p in [0, 1, 14, 15, 16, 17, 30] {
            let base = 1i32 << p;
            for d in -1..=1 {
                v.push(base + d);
                v.push(-base + d);
            }
        }
        for x in [
            0xFFFF,
            0x7FFF_0000u32 as i32,
            0x8000_FFFFu32 as i32,
            -0x8000_0000 + 0xFFFF,
        ] {
            v.extend([x, x.wrapping_add(1), x.wrapping_sub(1)]);
        }
        v.extend([i32::MIN + 1, i32::MAX - 1, 1_073_741_824, 1_518_500_250]);
        v
    }

    #[test]
    fn every_pair_of_edge_values() {
        let edges = edges();
        for &a in &edges {
            for &b in &edges {
                check(a, b);
            }
        }
        // The one overflowing product saturates; its neighbours do not.
        assert_eq!(halves_saturating(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(rounded_high_mul_halves(i32::MIN, i32::MIN + 1), i32::MAX);
        assert_eq!(rounded_high_mul_halves(i32::MIN, i32::MAX), i32::MIN + 1);
    }

    #[test]
    fn hand_worked_values() {
        // 0.5 · 0.5 = 0.25 in Q0.31.
        assert_eq!(rounded_high_mul_halves(1 << 30, 1 << 30), 1 << 29);
        // Exact halves round toward +∞: 3 · 2^30 / 2^31 = 1.5 → 2, −1.5 → −1.
        assert_eq!(rounded_high_mul_halves(3, 1 << 30), 2);
        assert_eq!(rounded_high_mul_halves(-3, 1 << 30), -1);
        // 0.5 → 1 and −0.5 → 0.
        assert_eq!(rounded_high_mul_halves(1, 1 << 30), 1);
        assert_eq!(rounded_high_mul_halves(-1, 1 << 30), 0);
        // Just below a half: 2^30 − 1 over 2^31 rounds to 0 either way.
        assert_eq!(rounded_high_mul_halves(1, (1 << 30) - 1), 0);
        assert_eq!(rounded_high_mul_halves(-1, (1 << 30) - 1), 0);
        // A cross product with a carry out of 32 bits: (2^31 − 1)^2 / 2^31 = 2^31 − 2 + 2^−31.
        assert_eq!(rounded_high_mul_halves(i32::MAX, i32::MAX), i32::MAX - 1);
        // i32::MIN · −1 = 2^31: exactly 1.
        assert_eq!(rounded_high_mul_halves(i32::MIN, -1), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// 2,000 cases × 1,000 pairs = 2 M uniformly random pairs.
        #[test]
        fn random_pairs(pairs in proptest::collection::vec(any::<(i32, i32)>(), 1_000)) {
            for (a, b) in pairs {
                check(a, b);
            }
        }

        /// 2 M pairs shaped like requantizations: an accumulator (mostly small, either sign)
        /// times a Q31 multiplier in [2^30, 2^31), as `QuantizeMultiplier` makes them.
        #[test]
        fn requantization_pairs(
            pairs in proptest::collection::vec(
                (prop_oneof![-70_000i32..70_000, any::<i32>()], (1i32 << 30)..=i32::MAX),
                1_000,
            )
        ) {
            for (x, m) in pairs {
                check(x, m);
            }
        }

        /// Products that land exactly on a rounding tie, `a·b = odd · 2^30`:
        /// `a = u · 2^(30−j)`, `b = v · 2^j` with `u`, `v` odd, either sign, `|u| < 2^(j+1)`
        /// and `|v| < 2^(31−j)` so that both fit.
        #[test]
        fn rounding_ties(j in 0u32..=30, u in any::<i32>(), v in any::<i32>()) {
            let a = ((u >> (30 - j)) | 1) << (30 - j);
            let b = ((v >> j) | 1) << j;
            prop_assert_eq!((i64::from(a) * i64::from(b)).rem_euclid(1 << 31), 1 << 30);
            check(a, b);
        }

        /// The whole requantization (left shift, high multiply, rounding shift) against
        /// TFLite's formula, over every shift `QuantizeMultiplier` produces.
        #[test]
        fn multiply_by_quantized_multiplier_matches_tflite(
            x in any::<i32>(),
            m in any::<i32>(),
            shift in -31i32..=30,
        ) {
            prop_assert_eq!(multiply_by_quantized_multiplier(x, m, shift), tflite_multiply(x, m, shift));
            let left = if shift > 0 { shift } else { 0 };
            let right = if shift > 0 { 0 } else { -shift };
            prop_assert_eq!(
                rounding_divide_by_pot(halves_saturating(x.wrapping_mul(1 << left), m), right),
                tflite_multiply(x, m, shift)
            );
        }

        #[test]
        fn rounding_divide_matches_the_64_bit_mask(x in any::<i32>(), exponent in 0i32..=31) {
            prop_assert_eq!(rounding_divide_by_pot(x, exponent), gemmlowp_divide_by_pot(x, exponent));
        }
    }
}
