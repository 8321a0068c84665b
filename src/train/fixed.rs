//! Fixed-point arithmetic of the backward pass: real multipliers, rounding shifts and the
//! logarithm of the loss. Everything saturates instead of wrapping: a gradient that overflows
//! must come out as a large gradient, never as one of the opposite sign.

/// Fractional bits of activation gradients (`dL/dx` of a real activation `x`): Q7.24 in an
/// `i32`, so gradients up to ±128 are representable with a resolution of 6·10⁻⁸.
pub const GRAD_BITS: i32 = 24;
/// Fractional bits of a master weight below one int8 step of its channel's scale.
pub const MASTER_BITS: i32 = 16;
/// Most fractional bits a master bias keeps below one int32 bias step (fewer when the
/// layer's biases are large, see `docs/training.md`).
pub const MAX_BIAS_BITS: i32 = 8;
/// Fractional bits of the loss.
pub const LOSS_BITS: i32 = 16;
/// ln 2 in Q16.
const LN2_Q16: i64 = 45_426;

/// A positive real number as a Q31 significand and a power-of-two exponent:
/// `multiplier · 2^(shift − 31)` (TFLite's representation, with the same rounding when made).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scale {
    /// Q31 significand in `[2^30, 2^31)`, or 0 for zero.
    pub multiplier: i32,
    /// Power-of-two exponent.
    pub shift: i32,
}

impl Scale {
    /// The nearest representable value to `real` ([`quantize_multiplier`]); 0 for zero, negative
    /// or non-finite values and for values below 2⁻³².
    ///
    /// [`quantize_multiplier`]: crate::quant::quantize_multiplier
    pub fn from_f64(real: f64) -> Self {
        if real.is_nan() || real <= 0.0 || !real.is_finite() {
            return Scale::default();
        }
        let (multiplier, shift) = crate::quant::quantize_multiplier(real);
        Scale { multiplier, shift }
    }

    /// The value as `f64` (for reports and tests).
    pub fn to_f64(self) -> f64 {
        f64::from(self.multiplier) * libm::ldexp(1.0, self.shift - 31)
    }

    /// `round(x · value · 2^extra_bits)`, ties away from zero, saturating to `i64`.
    #[inline]
    pub fn apply(self, x: i64, extra_bits: i32) -> i64 {
        let product = i128::from(x) * i128::from(self.multiplier);
        shift_round_i128(product, 31 - self.shift - extra_bits)
    }
}

/// `round(x / 2^shift)` (ties away from zero) for `shift > 0`, `x · 2^−shift` otherwise, both
/// saturating to `i64`.
#[inline]
pub fn shift_round_i128(x: i128, shift: i32) -> i64 {
    let value = if shift > 0 {
        if shift >= 127 {
            0
        } else {
            let half = 1i128 << (shift - 1);
            if x >= 0 {
                (x + half) >> shift
            } else {
                -((-x + half) >> shift)
            }
        }
    } else {
        let left = shift.unsigned_abs();
        if x == 0 {
            0
        } else if left >= 64 || x.unsigned_abs() > (i64::MAX as u128) >> left {
            if x > 0 {
                i128::from(i64::MAX)
            } else {
                i128::from(i64::MIN)
            }
        } else {
            x << left
        }
    };
    saturate_i64(value)
}

/// `round(x / 2^shift)` in `i64`, ties away from zero, for `shift ≥ 0`.
#[inline]
pub fn shift_round(x: i64, shift: i32) -> i64 {
    shift_round_i128(i128::from(x), shift)
}

#[inline]
fn saturate_i64(x: i128) -> i64 {
    x.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// Clamps to `i32`.
#[inline]
pub fn saturate_i32(x: i64) -> i32 {
    x.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// `log2(x)` in Q16 for an integer `x ≥ 1` (0 for 0), bit by bit: the fraction's bits come
/// from repeatedly squaring the mantissa, exact up to the last bit.
pub fn log2_q16(x: u64) -> i64 {
    if x == 0 {
        return 0;
    }
    let int_part = 63 - x.leading_zeros();
    // Mantissa in [1, 2) with 62 fractional bits.
    let mut m: u128 = if int_part <= 62 {
        u128::from(x) << (62 - int_part)
    } else {
        u128::from(x) >> (int_part - 62)
    };
    let mut frac: i64 = 0;
    for bit in (0..LOSS_BITS).rev() {
        m = (m * m) >> 62;
        if m >= 1u128 << 63 {
            m >>= 1;
            frac |= 1 << bit;
        }
    }
    (i64::from(int_part) << LOSS_BITS) | frac
}

/// `ln(x / 2^frac_bits)` in Q16 for `x ≥ 1`.
pub fn ln_q16(x: u64, frac_bits: i32) -> i64 {
    let log2 = log2_q16(x) - (i64::from(frac_bits) << LOSS_BITS);
    shift_round(log2 * LN2_Q16, LOSS_BITS)
}
