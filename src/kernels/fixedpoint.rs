//! The part of gemmlowp's fixed-point library that TFLite's reference int8 softmax uses.
//!
//! Values are raw `i32`s of gemmlowp's `FixedPoint<int32, IntegerBits>`: a raw value `r` with
//! `I` integer bits stands for `r / 2^(31 − I)`. The integer-bit count is carried in the
//! function names and docs instead of the type system, and every operation is the scalar
//! gemmlowp operation it mirrors, so results are bit-identical. Plain additions wrap, as the
//! C++ does in practice.

use crate::quant::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul};

/// `1.0` with 0 integer bits: gemmlowp represents it by the largest raw value.
pub const ONE_Q0: i32 = i32::MAX;

/// gemmlowp's `SaturatingRoundingMultiplyByPOT<exponent>`: `x · 2^exponent`, saturating when
/// `exponent > 0`, rounding to nearest (ties away from zero) when `exponent < 0`.
#[inline]
pub fn saturating_rounding_multiply_by_pot(x: i32, exponent: i32) -> i32 {
    if exponent < 0 {
        return rounding_divide_by_pot(x, -exponent);
    }
    if exponent == 0 {
        return x;
    }
    if exponent >= 31 {
        // Every non-zero value overflows.
        return match x {
            0 => 0,
            x if x > 0 => i32::MAX,
            _ => i32::MIN,
        };
    }
    let threshold = (1i32 << (31 - exponent)) - 1;
    if x > threshold {
        i32::MAX
    } else if x < -threshold {
        i32::MIN
    } else {
        x << exponent
    }
}

/// gemmlowp's `Rescale<dst_integer_bits>` of a value with `src_integer_bits`: the same real
/// number in the other format, saturating or rounding as needed.
#[inline]
pub fn rescale(x: i32, src_integer_bits: i32, dst_integer_bits: i32) -> i32 {
    saturating_rounding_multiply_by_pot(x, src_integer_bits - dst_integer_bits)
}

/// gemmlowp's `RoundingHalfSum`: `(a + b) / 2`, rounded half away from zero.
#[inline]
pub fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = i64::from(a) + i64::from(b);
    let sign = if sum >= 0 { 1 } else { -1 };
    // The quotient lies between a and b (truncation toward zero), so it fits.
    ((sum + sign) / 2) as i32
}

/// gemmlowp's `exp_on_interval_between_negative_one_quarter_and_0_excl`: `exp(a)` for `a` in
/// `[−1/4, 0)`, both with 0 integer bits, by a 4th-order Taylor expansion around −1/8.
pub fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    /// exp(−1/8) in Q0.31.
    const CONSTANT_TERM: i32 = 1_895_147_668;
    /// 1/3 in Q0.31.
    const CONSTANT_1_OVER_3: i32 = 715_827_883;
    let mul = saturating_rounding_doubling_high_mul;
    // Change of variable x = a + 1/8 (1/8 is 2^28 with 31 fractional bits).
    let x = a.wrapping_add(1 << 28);
    let x2 = mul(x, x);
    let x3 = mul(x2, x);
    let x4 = mul(x2, x2);
    let x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2);
    let x4_over_24_plus_x3_over_6_plus_x2_over_2 = saturating_rounding_multiply_by_pot(
        mul(x4_over_4.wrapping_add(x3), CONSTANT_1_OVER_3).wrapping_add(x2),
        -1,
    );
    CONSTANT_TERM.wrapping_add(mul(
        CONSTANT_TERM,
        x.wrapping_add(x4_over_24_plus_x3_over_6_plus_x2_over_2),
    ))
}

/// gemmlowp's `exp_on_negative_values` for an input with `INTEGER_BITS` integer bits
/// (`0 ≤ INTEGER_BITS ≤ 29`, checked at compile time): `exp(a)` for `a ≤ 0`, with 0 integer bits.
///
/// The input is split into `a mod 1/4` (exponentiated by
/// [`exp_on_interval_between_negative_one_quarter_and_0_excl`]) and a multiple of 1/4 whose
/// bits select the barrel-shifter factors `exp(−1/4)`, `exp(−1/2)`, …, `exp(−16)`.
pub fn exp_on_negative_values<const INTEGER_BITS: i32>(a: i32) -> i32 {
    /// `(power of two p, exp(−2^p) in Q0.31)` for each barrel-shifter stage.
    const BARREL: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
    const { assert!(INTEGER_BITS >= 0 && INTEGER_BITS <= 29) };
    let fractional_bits = 31 - INTEGER_BITS;
    let one_quarter = 1i32 << (fractional_bits - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(rescale(
        a_mod_quarter_minus_one_quarter,
        INTEGER_BITS,
        0,
    ));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    for (exponent, multiplier) in BARREL {
        if INTEGER_BITS > exponent {
            let bit = fractional_bits + exponent;
            if remainder & (1i32 << bit) != 0 {
                result = saturating_rounding_doubling_high_mul(result, multiplier);
            }
        }
    }
    if INTEGER_BITS > 5 {
        // Below −32 the result is exactly 0 (`-(1 << clamp_b)` is −32 in this format).
        let clamp_b = 36 - INTEGER_BITS;
        if a < -(1i32 << clamp_b) {
            result = 0;
        }
    }
    if a == 0 {
        result = ONE_Q0;
    }
    result
}

/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1`: `1 / (1 + a)` for `a` in `[0, 1)`, both
/// with 0 integer bits, by three Newton–Raphson steps on the half denominator.
pub fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    /// 48/17 with 2 integer bits.
    const CONSTANT_48_OVER_17: i32 = 1_515_870_810;
    /// −32/17 with 2 integer bits.
    const CONSTANT_NEG_32_OVER_17: i32 = -1_010_580_540;
    /// 1.0 with 2 integer bits.
    const ONE_Q2: i32 = 1 << 29;
    let mul = saturating_rounding_doubling_high_mul;
    let half_denominator = rounding_half_sum(a, ONE_Q0);
    let mut x = CONSTANT_48_OVER_17.wrapping_add(mul(half_denominator, CONSTANT_NEG_32_OVER_17));
    for _ in 0..3 {
        let half_denominator_times_x = mul(half_denominator, x);
        let one_minus_half_denominator_times_x = ONE_Q2.wrapping_sub(half_denominator_times_x);
        // x · (1 − d·x) has 4 integer bits; bring it back to 2.
        x = x.wrapping_add(rescale(mul(x, one_minus_half_denominator_times_x), 4, 2));
    }
    // ExactMulByPot<-1> turns Q2 into Q1 without touching the raw value; then back to Q0.
    rescale(x, 1, 0)
}

/// TFLite's `GetReciprocal`: for `x > 0` with `x_integer_digits` integer bits, returns
/// `(1 / x` scaled into `[0.5, 1]` with 0 integer bits, `num_bits_over_unit)` such that
/// `1/x = result · 2^−num_bits_over_unit`.
pub fn get_reciprocal(x: i32, x_integer_digits: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros();
    let num_bits_over_unit = x_integer_digits - headroom_plus_one as i32;
    // TFLite shifts by 32 (undefined) only for x == 0, which a softmax sum never is; 0 is the
    // value ARM produces.
    let shifted = (x as u32).checked_shl(headroom_plus_one).unwrap_or(0);
    let shifted_sum_minus_one = shifted.wrapping_sub(1 << 31) as i32;
    (
        one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one),
        num_bits_over_unit,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(raw: i32, integer_bits: i32) -> f64 {
        f64::from(raw) / f64::from(1u32 << (31 - integer_bits))
    }

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        let mut a: i64 = 0;
        while a >= -(1i64 << 31) {
            let raw = a as i32;
            let got = q(exp_on_negative_values::<5>(raw), 0);
            let want = libm::exp(q(raw, 5));
            // The 4th-order Taylor step alone is off by up to (1/8)^5/5! ≈ 2.5e-7.
            assert!(
                (got - want).abs() < 4e-7,
                "exp({}) = {got}, want {want}",
                q(raw, 5)
            );
            a -= 123_457;
        }
        assert_eq!(exp_on_negative_values::<5>(0), ONE_Q0);
    }

    #[test]
    fn reciprocal_is_accurate() {
        for k in 0..2000 {
            let x = (k << 20) + 12_345;
            let got = q(one_over_one_plus_x_for_x_in_0_1(x), 0);
            let want = 1.0 / (1.0 + q(x, 0));
            assert!((got - want).abs() < 1e-8, "1/(1+{}) = {got}", q(x, 0));
        }
        // sum = 3.0 with 12 integer bits: 1/3 = (2/3) · 2^−1.
        let (scale, bits) = get_reciprocal(3 << 19, 12);
        assert_eq!(bits, 1);
        assert!((q(scale, 0) - 2.0 / 3.0).abs() < 1e-8);
    }

    #[test]
    fn multiply_by_pot_saturates_and_rounds() {
        assert_eq!(saturating_rounding_multiply_by_pot(1 << 29, 2), i32::MAX);
        assert_eq!(
            saturating_rounding_multiply_by_pot((1 << 29) - 1, 2),
            i32::MAX - 3
        );
        assert_eq!(saturating_rounding_multiply_by_pot(-(1 << 29), 2), i32::MIN);
        assert_eq!(
            saturating_rounding_multiply_by_pot(-(1 << 29) - 1, 2),
            i32::MIN
        );
        assert_eq!(saturating_rounding_multiply_by_pot(-6, -2), -2);
        assert_eq!(saturating_rounding_multiply_by_pot(5, 40), i32::MAX);
        assert_eq!(rounding_half_sum(i32::MIN, i32::MIN), i32::MIN);
        assert_eq!(rounding_half_sum(i32::MAX, i32::MAX), i32::MAX);
        assert_eq!(rounding_half_sum(-1, -2), -2);
        assert_eq!(rounding_half_sum(1, 2), 2);
    }
}
