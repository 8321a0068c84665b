//! Requantization of one output channel, exactly [`Requantize::apply`] but with the
//! per-channel work done once per channel instead of once per output, and the two roundings
//! of TFLite's `MultiplyByQuantizedMultiplier` done by one 64-bit multiply-add, then a
//! 32-bit add and shift.
//!
//! gemmlowp's `SaturatingRoundingDoublingHighMul` adds a nudge of `2^30` (or `1 − 2^30` for a
//! negative product) and truncates toward zero; for a negative product, truncating
//! `ab + 1 − 2^30` toward zero is flooring `ab + 2^30` (add `2^31 − 1` before flooring), so
//! for both signs `y = floor((ab + 2^30) / 2^31)`. `RoundingDivideByPOT(y, e)` for `e ≥ 1` is
//! `floor((y + 2^(e−1) − [y < 0]) / 2^e)`, and nested floors of divisions by powers of two
//! are one floor, so the whole is `floor((T + 2^(30+e)) / 2^(31+e))` with
//! `T = ab + 2^30 − [y < 0]·2^31`. `[y < 0]` may be replaced by `[ab < 0]`: they differ only
//! for `−2^30 ≤ ab < 0`, where both forms give 0. So `T = ab ± 2^30` (one `SMLAL`), and for
//! `e ≥ 2` the result is `(hi(T) + 2^(e−2)) >> (e − 1)` with `hi(T) = floor(T / 2^32)`, whose
//! magnitude stays below `2^30 + 1`; for `e = 1` it is `hi(T + 2^31)`. The one overflow of the
//! doubling high multiply, `i32::MIN · i32::MIN`, needs a multiplier of `i32::MIN`, which goes
//! the general way.

use crate::kernels::{clamp, Requantize};

/// One channel's requantization, prepared.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChannelQ {
    multiplier: i32,
    /// Left shift before the multiply (`0..=30`), for a channel without right shift.
    left: u32,
    /// Right shift after it less one (`0..=30`), for a channel with one.
    right_less_one: u32,
    /// `2^(e−2)` for a right shift `e ≥ 2`, else 0.
    round: i32,
    /// The constant added to a non-negative and to a negative product.
    add: [i64; 2],
    kind: Kind,
    shift: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A right shift of 1..=31: the fused form.
    Right,
    /// A left shift of 0..=30: the doubling high multiply alone.
    Left,
    /// Anything else (a multiplier of `i32::MIN`, a shift out of range):
    /// [`Requantize::apply`] itself.
    General,
}

impl ChannelQ {
    /// Channel `(multiplier, shift)` of a layer.
    #[inline(always)]
    pub(crate) fn new(multiplier: i32, shift: i32) -> Self {
        let kind = if multiplier == i32::MIN || !(-31..=30).contains(&shift) {
            Kind::General
        } else if shift < 0 {
            Kind::Right
        } else {
            Kind::Left
        };
        let e = clamp(shift.saturating_neg(), 1, 31) as u32;
        let add = if e == 1 {
            [3 << 30, 1 << 30]
        } else {
            [1 << 30, -(1 << 30)]
        };
        ChannelQ {
            multiplier,
            left: clamp(shift, 0, 30) as u32,
            right_less_one: e - 1,
            round: ((1u32 << e) >> 2) as i32,
            add,
            kind,
            shift,
        }
    }

    /// The requantized accumulator: `q.apply(acc, multiplier, shift)`.
    #[inline(always)]
    pub(crate) fn apply(&self, q: &Requantize, acc: i32) -> i8 {
        let m = self.multiplier;
        let scaled = match self.kind {
            Kind::Right => {
                let [pos, neg] = self.add;
                let add = if (acc ^ m) < 0 { neg } else { pos };
                let high = ((i64::from(acc) * i64::from(m) + add) >> 32) as i32;
                (high + self.round) >> self.right_less_one
            }
            Kind::Left => {
                // Wrapping, as TFLite's `x * (1 << shift)`.
                let x = acc.wrapping_shl(self.left);
                ((i64::from(x) * i64::from(m) + (1 << 30)) >> 31) as i32
            }
            Kind::General => return q.apply(acc, m, self.shift),
        };
        let v = scaled.wrapping_add(q.output_offset);
        clamp(v, i32::from(q.act_min), i32::from(q.act_max)) as i8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_requantize_apply() {
        let mut s = 0x9E37_79B9u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let special = [
            0,
            1,
            -1,
            i32::MIN,
            i32::MAX,
            1 << 30,
            -(1 << 30),
            12345,
            -12345,
        ];
        for i in 0..200_000u32 {
            let acc = match i % 4 {
                0 => special[(next() % special.len() as u32) as usize],
                1 => (next() as i32) >> (next() % 31),
                _ => next() as i32,
            };
            let multiplier = match i % 5 {
                0 => special[(next() % special.len() as u32) as usize],
                _ => next() as i32,
            };
            let shift = (next() % 80) as i32 - 40;
            let (a, b) = ((next() as i8), (next() as i8));
            let q = Requantize {
                input_offset: 0,
                output_offset: (next() % 256) as i32 - 128,
                multipliers: &[],
                shifts: &[],
                act_min: a.min(b),
                act_max: a.max(b),
            };
            let c = ChannelQ::new(multiplier, shift);
            assert_eq!(
                c.apply(&q, acc),
                q.apply(acc, multiplier, shift),
                "{acc} {multiplier} {shift}"
            );
        }
    }
}
