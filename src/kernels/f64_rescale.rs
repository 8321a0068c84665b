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

/// Biased exponent fields [`F64Scale`] handles itself: scales from `2^-64` to just under 1,
/// i.e. a rounding position `k = 1075 − field` from 53 to 116 bits below the last bit of
/// `|acc| · significand`. Anything else (zero, subnormal, 1 or more, ∞, NaN) goes to
/// [`rescale`].
const FAST_FIELDS: core::ops::RangeInclusive<u64> = 959..=1022;

/// Fractions (the low word of `T` below) this close under a whole unit are handed to
/// [`rescale`]: 2 for the two truncations of `X`, up to `2^9` for the f64 product's own
/// rounding (see [`F64Scale`]), rounded up generously.
const NEAR_TIE: u32 = 1024;

/// One f64 scale prepared for [`F64Scale::apply`], [`rescale`] with two 32 × 32 → 64-bit
/// multiplies instead of a 64 × 64 → 128-bit one: the same result for every `acc` and
/// scale, several times cheaper on a Cortex-M.
///
/// Why it is exact. Write the scale as `sig · 2^-k` and let `P = |acc| · sig` (at most 84
/// bits); `rescale` is `round(P / 2^k)` after the f64 product rounded `P` to 53 bits, at bit
/// `d = bits(P) − 53 ≤ 31`. That first rounding changes the answer only when it carries `P`
/// across the half-way point of the second, i.e. when `P mod 2^k` lies within `2^(d−1)` below
/// `2^(k−1)` (and a result that fits `i32` has `d ≤ k − 22`); everywhere else the answer is
/// `⌊(P + 2^(k−1)) / 2^k⌋`. With `s = k − 32` (21 to 84), split `sig = A · 2^s + B`: `A < 2^32`,
/// and `B' = B · 2^(32−s)` (or `B >> (s − 32)`) is `B` as a 32-bit fraction of `2^s`. Then
/// `X = |acc| · A + ⌊|acc| · B' / 2^32⌋` is `P / 2^s` less at most 2 (the two truncations), and
/// `T = X + 2^31` holds the result in its high word and the fraction in its low word, in units
/// of `2^s` — at least 2^21 times finer than the product's rounding zone of at most `2^(d−1)
/// ≤ 2^(k−23)`. So the high word is the answer unless the low word is within [`NEAR_TIE`] of
/// wrapping, or the high word does not fit `i32`: those go to [`rescale`].
#[derive(Clone, Copy, Debug)]
pub struct F64Scale {
    scale: f64,
    a: u32,
    b: u32,
    negative: bool,
    fast: bool,
}

impl F64Scale {
    /// Splits `scale` for [`apply`](Self::apply).
    #[inline]
    pub fn new(scale: f64) -> Self {
        let bits = scale.to_bits();
        let field = (bits >> 52) & 0x7ff;
        let negative = bits >> 63 != 0;
        if !FAST_FIELDS.contains(&field) {
            return Self {
                scale,
                a: 0,
                b: 0,
                negative,
                fast: false,
            };
        }
        let sig = (bits & ((1 << 52) - 1)) | 1 << 52;
        // s = k − 32, from 21 to 84.
        let s = (1075 - 32 - field) as u32;
        let a = sig.checked_shr(s).unwrap_or(0) as u32;
        let below = sig & 1u64.checked_shl(s).map_or(u64::MAX, |p| p - 1);
        let b = if s <= 32 {
            below << (32 - s)
        } else {
            below.checked_shr(s - 32).unwrap_or(0)
        } as u32;
        Self {
            scale,
            a,
            b,
            negative,
            fast: true,
        }
    }

    /// The scale it was made from.
    #[inline]
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// `rescale(acc, scale)`.
    #[inline]
    pub fn apply(&self, acc: i32) -> i32 {
        match self.fast_path(acc) {
            Some(q) => q,
            None => rescale(acc, self.scale),
        }
    }

    /// The result when the product bits settle it, `None` when [`rescale`] must decide.
    #[inline(always)]
    fn fast_path(&self, acc: i32) -> Option<i32> {
        if !self.fast {
            return None;
        }
        let m = acc.unsigned_abs();
        // X < 2^63 + 2^32, T < 2^64: no overflow.
        let x = wide_mul(m, self.a) + (wide_mul(m, self.b) >> 32);
        let t = x + (1 << 31);
        if (t as u32) >= u32::MAX - NEAR_TIE {
            return None;
        }
        let q = i32::try_from(t >> 32).ok()?;
        Some(if self.negative != (acc < 0) { -q } else { q })
    }
}

/// [`rescale`] through [`F64Scale`]: the same result for every `acc` and `scale`.
#[inline]
pub fn rescale_fast(acc: i32, scale: f64) -> i32 {
    F64Scale::new(scale).apply(acc)
}

/// [`F64Scale::fast_path`] of a fresh scale (tests).
#[cfg(test)]
fn fast_path(acc: i32, scale: f64) -> Option<i32> {
    F64Scale::new(scale).fast_path(acc)
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
            assert_eq!(
                rescale_fast(a, s),
                want,
                "acc {a} scale {s:e} ({:#x})",
                s.to_bits()
            );
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
        let edges = [
            0u32,
            1,
            0xffff,
            0x1_0000,
            0x8000_0000,
            u32::MAX,
            u32::MAX - 1,
        ];
        for &a in &edges {
            for &b in &edges {
                assert_eq!(wide_mul_halves(a, b), u64::from(a) * u64::from(b));
            }
        }
        for _ in 0..1_000_000 {
            let (a, b) = (next() as u32, next() as u32);
            assert_eq!(
                wide_mul_halves(a, b),
                u64::from(a) * u64::from(b),
                "{a} · {b}"
            );
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
