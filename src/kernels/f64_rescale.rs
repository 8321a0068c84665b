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
    use super::rescale;

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
