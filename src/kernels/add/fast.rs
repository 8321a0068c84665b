//! ADD's arithmetic for the parameters TFLite's int8 Prepare produces, in 32-bit operations
//! with every rounding of [`AddParams::add`] reproduced: the two input rescalings become two
//! 32-bit products each, and every shift's rounding constants are computed once per call.

use super::AddParams;
use crate::kernels::clamp;
use crate::Error;

/// gemmlowp's `RoundingDivideByPOT` by a fixed exponent in `0..=31`, its mask and threshold
/// computed once.
#[derive(Clone, Copy, Debug)]
struct RoundingShift {
    exponent: u32,
    mask: i32,
    half: i32,
}

impl RoundingShift {
    fn new(exponent: i32) -> Option<Self> {
        let exponent = u32::try_from(exponent).ok().filter(|&e| e <= 31)?;
        let mask = ((1u32 << exponent) - 1) as i32;
        Some(Self {
            exponent,
            mask,
            half: mask >> 1,
        })
    }

    /// `x / 2^exponent`, rounded to nearest, ties away from zero.
    #[inline(always)]
    fn apply(&self, x: i32) -> i32 {
        let threshold = self.half + i32::from(x < 0);
        (x >> self.exponent) + i32::from(x & self.mask > threshold)
    }
}

/// One operand's rescaling, `MultiplyByQuantizedMultiplier((x + offset) · 2^L, m, s)` for
/// `s ≤ 0`, in 32-bit arithmetic with the same result.
///
/// `SaturatingRoundingDoublingHighMul(a, m)` is `⌊(a·m + 2^30) / 2^31⌋` for every pair but
/// `MIN·MIN` (its nudge and truncation toward zero make exactly that floor, for either sign).
/// With `a = v · 2^L` that is `⌊(v·m + 2^(30−L)) / 2^(31−L)⌋`, and splitting
/// `m = hi · 2^(31−L) + lo` (`0 ≤ lo < 2^(31−L)`) gives `v·hi + ⌊(v·lo + 2^(30−L)) / 2^(31−L)⌋`:
/// two products within `2^30` for `|v| ≤ 256` when `9 ≤ L ≤ 22` (TFLite's int8 ADD has
/// `L = 20`), and `a` never reaches `MIN`. The rounding right shift by `−s` follows unchanged.
#[derive(Clone, Copy, Debug)]
struct OperandScale {
    offset: i32,
    hi: i32,
    lo: i32,
    nudge: i32,
    /// `31 − L`.
    split: u32,
    right: RoundingShift,
}

impl OperandScale {
    /// The 32-bit form, or `None` for parameters outside its exact range.
    fn new(offset: i32, left_shift: i32, multiplier: i32, shift: i32) -> Option<Self> {
        // |x + offset| ≤ 256 for an int8 x.
        if !(9..=22).contains(&left_shift) || !(-128..=128).contains(&offset) {
            return None;
        }
        let split = (31 - left_shift) as u32;
        Some(Self {
            offset,
            hi: multiplier >> split,
            lo: multiplier & ((1 << split) - 1),
            nudge: 1 << (split - 1),
            split,
            right: RoundingShift::new(shift.checked_neg()?)?,
        })
    }

    #[inline(always)]
    fn apply(&self, x: i8) -> i32 {
        let v = i32::from(x) + self.offset;
        let low = (v * self.lo + self.nudge) >> self.split;
        self.right.apply(v * self.hi + low)
    }
}

/// [`AddParams::add`] with precomputed shifts and 32-bit input rescaling; the same result for
/// every parameter set [`FastAdd::new`] accepts (those of TFLite's Prepare, and more).
#[derive(Clone, Copy, Debug)]
pub(super) struct FastAdd {
    x: OperandScale,
    y: OperandScale,
    output_multiplier: i32,
    output_right: RoundingShift,
    output_offset: i32,
    act_min: i32,
    act_max: i32,
}

impl FastAdd {
    /// The fast form of `p`, or `None` where it would differ (the caller then uses
    /// [`AddParams::add`]).
    pub(super) fn new(p: &AddParams) -> Option<Self> {
        // An output multiplier of MIN could meet a sum of MIN (saturation); a positive output
        // shift would need its wrapping left shift: neither comes from TFLite's Prepare.
        if p.output_multiplier == i32::MIN || p.output_shift > 0 {
            return None;
        }
        Some(Self {
            x: OperandScale::new(
                p.input1_offset,
                p.left_shift,
                p.input1_multiplier,
                p.input1_shift,
            )?,
            y: OperandScale::new(
                p.input2_offset,
                p.left_shift,
                p.input2_multiplier,
                p.input2_shift,
            )?,
            output_multiplier: p.output_multiplier,
            output_right: RoundingShift::new(p.output_shift.checked_neg()?)?,
            output_offset: p.output_offset,
            act_min: i32::from(p.act_min),
            act_max: i32::from(p.act_max),
        })
    }

    /// One pair of elements.
    #[inline(always)]
    pub(super) fn add(&self, x: i8, y: i8) -> i8 {
        // Each operand's term is below 2^31 in magnitude, their sum may wrap as TFLite's does.
        let sum = self.x.apply(x).wrapping_add(self.y.apply(y));
        // SaturatingRoundingDoublingHighMul as the floor above (MIN·MIN excluded by `new`).
        let product = i64::from(sum) * i64::from(self.output_multiplier);
        let high = ((product + (1 << 30)) >> 31) as i32;
        let out = self
            .output_right
            .apply(high)
            .wrapping_add(self.output_offset);
        clamp(out, self.act_min, self.act_max) as i8
    }

    /// `output[i] = add(a[i], b[i])`, two elements a turn.
    ///
    /// Errors: [`Error::ShapeMismatch`] when the three lengths differ.
    pub(super) fn add_slices(&self, a: &[i8], b: &[i8], output: &mut [i8]) -> Result<(), Error> {
        if a.len() != output.len() || b.len() != output.len() {
            return Err(Error::ShapeMismatch);
        }
        let mut outs = output.chunks_exact_mut(2);
        let (mut xs, mut ys) = (a.chunks_exact(2), b.chunks_exact(2));
        for ((o, x), y) in (&mut outs).zip(&mut xs).zip(&mut ys) {
            if let ([o0, o1], [x0, x1], [y0, y1]) = (o, x, y) {
                *o0 = self.add(*x0, *y0);
                *o1 = self.add(*x1, *y1);
            }
        }
        let tails = xs.remainder().iter().zip(ys.remainder());
        for (o, (&x, &y)) in outs.into_remainder().iter_mut().zip(tails) {
            *o = self.add(x, y);
        }
        Ok(())
    }
}
