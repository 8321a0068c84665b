//! `(round((double)acc · scale)) as i32` — LiteRT's f64 rescale of a fully connected
//! layer's accumulator — computed exactly with integers.
//!
//! Microcontrollers without a double-precision FPU (all Cortex-M0+/M3/M4 parts) would run the
//! f64 multiply and round in a software floating-point library: about 2.5 KB of flash for
//! a handful of operations per layer. IEEE-754 multiplication is defined as the exact
//! product rounded to 53 significant bits (to nearest, ties to even), and `round` is
//! defined exactly too (halves away from zero), so both steps can be done on the exact
//! integer product instead, with the same result bit for bit for every `acc` and every
//! `scale`, including zeros, subnormals, infinities and NaN (Rust's saturating `as i32`).

/// Significant bits of an f64 (the implicit leading one included).
const SIGNIFICAND_BITS: u32 = 53;
/// Exponent of an f64 significand's last bit at the smallest normal exponent field (1),
/// and at the subnormal one (0).
const MIN_EXPONENT: i32 = -1074;

/// `libm::round(f64::from(acc) * scale) as i32`, without floating-point arithmetic.
pub fn rescale(acc: i32, scale: f64) -> i32 {
    let bits = scale.to_bits();
    let negative = (bits >> 63 != 0) != (acc < 0);
    let exponent_field = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let magnitude = acc.unsigned_abs();

    if exponent_field == 0x7ff {
        // NaN, or ±∞ times 0, is NaN, which `as i32` turns into 0; ±∞ otherwise saturates.
        return if fraction != 0 || magnitude == 0 {
            0
        } else {
            saturate(negative)
        };
    }
    // scale = significand · 2^exponent exactly.
    let (significand, exponent) = if exponent_field == 0 {
        (fraction, MIN_EXPONENT)
    } else {
        (fraction | 1 << 52, exponent_field + MIN_EXPONENT - 1)
    };
    let product = u128::from(magnitude) * u128::from(significand);
    if product == 0 {
        return 0;
    }
    let (product, exponent) = round_to_significand(product, exponent);
    let integer = round_half_away(product, exponent);
    match integer {
        Some(m) if m <= u64::from(i32::MAX.unsigned_abs()) => {
            let m = m as i32;
            if negative {
                -m
            } else {
                m
            }
        }
        Some(m) if negative && m == 1 << 31 => i32::MIN,
        _ => saturate(negative),
    }
}

/// Smallest and largest biased exponent fields [`rescale_fast`] handles itself: scales from
/// `2^-32` to just under `2^20`, i.e. a rounding position `k = 1075 − field` from 33 to 84
/// bits below the product's last bit. Anything else (zero, subnormal, huge, ∞, NaN) goes to
/// [`rescale`].
const FAST_FIELDS: core::ops::RangeInclusive<u64> = 991..=1042;

/// [`rescale`] with two 32 × 32 → 64-bit multiplies instead of a 64 × 64 → 128-bit one: the
/// same result for every `acc` and `scale`, several times cheaper on a Cortex-M.
///
/// Why it is exact: with `p = |acc| · significand` (at most 84 bits) and the result
/// `round(p / 2^k)`, the f64 product first rounds `p` to 53 bits, at bit `d = bits(p) − 53 ≤
/// 31`. That first rounding only matters when it carries `p` across the half-way point
/// `2^(k−1)` of the final rounding, i.e. when `p mod 2^k` lies in `[2^(k−1) − 2^(d−1),
/// 2^(k−1))`; everywhere else the answer is `(p + 2^(k−1)) >> k` of the exact product. The
/// exact product is formed as `|acc| · hi · 2^32 + |acc| · lo` (the 53-bit significand split
/// into 21 + 32 bits), keeping its bits from 32 up, which `k ≥ 33` needs; the bits below can
/// shift the fraction by less than one unit of bit 32, so any fraction within one such unit
/// of the danger zone (one value in `2^(k−32)`, about `2^-20` for the layers' scales), and any
/// result beyond the `i32` range, is handed to [`rescale`].
#[inline]
pub fn rescale_fast(acc: i32, scale: f64) -> i32 {
    match fast_path(acc, scale) {
        Some(q) => q,
        None => rescale(acc, scale),
    }
}

/// The result of [`rescale_fast`] when its product bits settle it, `None` when [`rescale`]
/// must decide.
#[inline(always)]
fn fast_path(acc: i32, scale: f64) -> Option<i32> {
    let bits = scale.to_bits();
    let field = (bits >> 52) & 0x7ff;
    if !FAST_FIELDS.contains(&field) {
        return None;
    }
    let significand = (bits & ((1 << 52) - 1)) | 1 << 52;
    // k − 32, from 1 to 52: the final rounding position within the product's upper bits.
    let shift = (1075 - 32 - field) as u32;
    // Both products are 32 × 32 → 64 bits; their sum < 2^53.
    let magnitude = acc.unsigned_abs();
    let upper = wide_mul(magnitude, (significand >> 32) as u32)
        + (wide_mul(magnitude, significand as u32) >> 32);
    let mask = (1u64 << shift) - 1;
    let rounded = upper + (1 << (shift - 1));
    if rounded & mask == mask {
        return None;
    }
    let q = i32::try_from(rounded >> shift).ok()?;
    Some(if (bits >> 63 != 0) != (acc < 0) { -q } else { q })
}

/// `a · b` in full: one `UMULL` where the target has it. Armv6-M has only a 32-bit `MULS`, and
/// the compiler would call its 64 × 64-bit multiply routine; [`wide_mul_halves`] is cheaper.
#[inline(always)]
fn wide_mul(a: u32, b: u32) -> u64 {
    #[cfg(not(all(target_arch = "arm", target_os = "none", not(fixnet_dsp))))]
    {
        u64::from(a) * u64::from(b)
    }
    #[cfg(all(target_arch = "arm", target_os = "none", not(fixnet_dsp)))]
    {
        wide_mul_halves(a, b)
    }
}

/// `a · b` from four 16 × 16 → 32-bit products.
#[cfg(any(test, all(target_arch = "arm", target_os = "none", not(fixnet_dsp))))]
#[inline(always)]
fn wide_mul_halves(a: u32, b: u32) -> u64 {
    let (a1, a0) = (a >> 16, a & 0xffff);
    let (b1, b0) = (b >> 16, b & 0xffff);
    // Each partial product fits 32 bits; the two middle ones may carry out of their sum.
    let (mid, carry) = (a1 * b0).overflowing_add(a0 * b1);
    let (low, carry_low) = (a0 * b0).overflowing_add(mid << 16);
    let high = a1 * b1 + (mid >> 16) + (u32::from(carry) << 16) + u32::from(carry_low);
    u64::from(high) << 32 | u64::from(low)
}

/// The f64 nearest `product · 2^exponent` (ties to even), as a significand of at most 53
/// bits (54 when rounding carried into a new bit: the same value) and its exponent. Results
/// below the normal range would keep fewer bits, but they are below 2^-1022 and round to
/// the integer 0 either way; results above the f64 range would be ∞ and saturate either way.
fn round_to_significand(product: u128, exponent: i32) -> (u128, i32) {
    let bits = 128 - product.leading_zeros();
    if bits <= SIGNIFICAND_BITS {
        return (product, exponent);
    }
    let drop = bits - SIGNIFICAND_BITS;
    let kept = product >> drop;
    let rest = product & ((1 << drop) - 1);
    let half = 1 << (drop - 1);
    let up = rest > half || (rest == half && kept & 1 == 1);
    (kept + u128::from(up), exponent + drop as i32)
}

/// `round(significand · 2^exponent)` with halves away from zero, or `None` when it does not
/// fit 64 bits (a saturated result for the caller).
fn round_half_away(significand: u128, exponent: i32) -> Option<u64> {
    if exponent >= 0 {
        // At most 54 bits shifted left: anything at or above 2^64 saturates anyway.
        if exponent >= 64 {
            return None;
        }
        let value = significand.checked_shl(exponent as u32)?;
        return u64::try_from(value).ok();
    }
    let shift = exponent.unsigned_abs();
    if shift > 64 {
        // significand < 2^54, so the value is below 2^-10 < 1/2.
        return Some(0);
    }
    let half = 1u128 << (shift - 1);
    u64::try_from((significand + half) >> shift).ok()
}

/// What `as i32` gives for a value beyond the i32 range with that sign.
fn saturate(negative: bool) -> i32 {
    if negative {
        i32::MIN
    } else {
        i32::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::{fast_path, rescale, rescale_fast, wide_mul_halves};

    fn float(acc: i32, scale: f64) -> i32 {
        libm::round(f64::from(acc) * scale) as i32
    }

    /// A deterministic stream of 64-bit values (SplitMix64).
    fn stream(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
    }

    #[test]
    fn special_scales_and_accumulators() {
        let scales = [
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            -f64::from_bits(1),
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            -f64::NAN,
            1.0,
            -1.0,
            0.5,
            1.5,
            2.0f64.powi(-31),
            2.0f64.powi(31),
            1.0 / 3.0,
        ];
        let accs = [
            0,
            1,
            -1,
            2,
            3,
            -3,
            i32::MAX,
            i32::MIN,
            i32::MIN + 1,
            1 << 30,
            -(1 << 30),
            12345,
        ];
        for &s in &scales {
            for &a in &accs {
                assert_eq!(rescale(a, s), float(a, s), "acc {a} scale {s:e}");
            }
        }
    }

    #[test]
    fn ties_round_away_from_zero_after_the_f64_product_rounds() {
        // acc · 0.5 lands exactly on halves; acc · (0.5 ± 1 ulp) lands beside them, where
        // the product's own rounding to 53 bits decides.
        let scales = [
            0.5,
            f64::from_bits(0.5f64.to_bits() + 1),
            f64::from_bits(0.5f64.to_bits() - 1),
            2.5,
            f64::from_bits(1.5f64.to_bits() - 1),
        ];
        for &s in &scales {
            for a in -100_000..100_000 {
                assert_eq!(rescale(a, s), float(a, s), "acc {a} scale {s:e}");
            }
        }
    }

    /// A scale of every kind the fast path must get right: any bits at all, the exponents
    /// of real layers, and significands of a few bits (whose products land on or next to
    /// exact halves), nudged by a few ulps either way.
    fn any_scale(next: &mut impl FnMut() -> u64) -> f64 {
        let bits = next();
        let sign = bits & 1 << 63;
        let exp = |next: &mut dyn FnMut() -> u64| 1023 - 45 + (next() % 70);
        let b = match bits % 5 {
            0 => next(),
            1 | 2 => sign | exp(next) << 52 | (next() & ((1 << 52) - 1)),
            _ => {
                let width = next() % 12;
                let few = (next() & ((1 << width) - 1)) << (52 - width);
                let nudge = (next() % 7) as i64 - 3;
                (sign | exp(next) << 52 | few).wrapping_add_signed(nudge)
            }
        };
        f64::from_bits(b)
    }

    /// An accumulator of any magnitude, edges included.
    fn any_acc(next: &mut impl FnMut() -> u64) -> i32 {
        match next() % 16 {
            0 => [0, 1, -1, i32::MAX, i32::MIN, i32::MIN + 1][(next() % 6) as usize],
            _ => next() as i32 >> (next() % 32),
        }
    }

    #[test]
    fn fast_equals_exact_on_millions_of_pairs() {
        let mut next = stream(20261203);
        let (mut fast, mut total) = (0u32, 0u32);
        for _ in 0..6_000_000 {
            let s = any_scale(&mut next);
            let a = any_acc(&mut next);
            let want = rescale(a, s);
            assert_eq!(rescale_fast(a, s), want, "acc {a} scale {s:e} ({:#x})", s.to_bits());
            if let Some(q) = fast_path(a, s) {
                assert_eq!(q, want, "fast path: acc {a} scale {:#x}", s.to_bits());
                fast += 1;
            }
            total += 1;
        }
        // Most pairs take the fast path (the rest: scales out of its range, results beyond
        // i32, and the near-ties).
        assert!(fast > total / 2, "{fast} of {total} on the fast path");
    }

    #[test]
    fn sixteen_bit_halves_multiply_in_full() {
        let mut next = stream(16);
        let edges = [0u32, 1, 0xffff, 0x1_0000, 0x8000_0000, u32::MAX, u32::MAX - 1];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(wide_mul_halves(a, b), u64::from(a) * u64::from(b));
            }
        }
        for _ in 0..1_000_000 {
            let (a, b) = (next() as u32, next() as u32);
            assert_eq!(wide_mul_halves(a, b), u64::from(a) * u64::from(b), "{a} · {b}");
        }
    }

    #[test]
    fn fast_path_hands_near_ties_to_the_exact_routine() {
        // acc · (0.5 − 1 ulp) for odd acc is a hair below a half; the f64 product rounds it up
        // to the half (for large enough acc), and round() then goes away from zero.
        let below_half = f64::from_bits(0.5f64.to_bits() - 1);
        let mut handed = 0;
        for a in (1..2_000_001).step_by(2) {
            let want = rescale(a, below_half);
            assert_eq!(rescale_fast(a, below_half), want);
            assert_eq!(rescale_fast(-a, below_half), -want);
            if fast_path(a, below_half).is_none() {
                handed += 1;
            }
        }
        assert!(handed > 0, "no near-tie left the fast path");
        // Exact halves themselves are settled on the fast path.
        assert_eq!(fast_path(3, 0.5), Some(2));
        assert_eq!(fast_path(-3, 0.5), Some(-2));
        assert_eq!(fast_path(5, -0.25), Some(-1));
    }

    #[test]
    fn fast_equals_exact_around_every_half_of_a_layer_scale() {
        // For a few real-looking scales, the accumulators whose exact product is nearest a
        // half: acc ≈ (j + 1/2) / scale, ± 2.
        let mut next = stream(99);
        for _ in 0..200 {
            let s = f64::from(f32::from_bits(0x3800_0000 + (next() as u32 % 0x0300_0000)));
            for j in -300i64..300 {
                let centre = libm::round((j as f64 + 0.5) / s) as i64;
                for a in centre - 2..=centre + 2 {
                    let a = a.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
                    assert_eq!(rescale_fast(a, s), rescale(a, s), "acc {a} scale {s:e}");
                }
            }
        }
    }

    #[test]
    fn random_accumulators_and_scales_of_every_magnitude() {
        let mut next = stream(20261130);
        for _ in 0..2_000_000 {
            let a = next() as i32 >> (next() % 32);
            let bits = next();
            // Mostly the scales real layers have (2^-40 .. 2^8), some of any exponent.
            let s = if bits % 4 == 0 {
                f64::from_bits(next())
            } else {
                let exp = 1023 - 40 + (next() % 48);
                f64::from_bits((bits & (1 << 63 | ((1 << 52) - 1))) | exp << 52)
            };
            assert_eq!(
                rescale(a, s),
                float(a, s),
                "acc {a} scale {s:e} ({:#x})",
                s.to_bits()
            );
        }
    }

    #[test]
    fn the_real_layers_scales() {
        // The effective scales of the seed CNN's dense layers are around 1e-4 .. 1e-2: every
        // accumulator an int8 layer of up to 1,600 inputs can produce, at a few such scales.
        let mut next = stream(7);
        for _ in 0..64 {
            let s = f64::from(f32::from_bits(0x3800_0000 + (next() as u32 % 0x0300_0000)));
            for a in (-(1 << 24)..(1 << 24)).step_by(997) {
                assert_eq!(rescale(a, s), float(a, s), "acc {a} scale {s:e}");
            }
        }
    }
}
