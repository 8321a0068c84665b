//! int8 element-wise MUL with broadcasting, bit-exact with TFLite's
//! `reference_integer_ops::Mul` / `BroadcastMul6DSlow` (LiteRT's `BUILTIN_REF` kernels).
//!
//! `output = clamp(MultiplyByQuantizedMultiplier((a − zp1) · (b − zp2), m, shift) + zp_out,
//! act_min, act_max)`, with `m · 2^shift ≈ s1 · s2 / s_out`. The product of two offset int8
//! values is at most 255², so the `i32` arithmetic never overflows.
//!
//! Shapes are 4-D (`[N, H, W, C]`; lower ranks are padded with leading 1s, as TFLite does) and
//! broadcast NumPy-style: along each axis the two sizes are equal or one of them is 1, e.g.
//! `[1, H, W, C] · [1, 1, 1, C]` in a squeeze-and-excite block.

use crate::quant::quantize_multiplier;
use crate::Error;

/// A 4-D tensor shape, outermost axis first (TFLite's `RuntimeShape` of rank 4).
pub type Dims4 = [usize; 4];

/// Precomputed parameters of an int8 MUL (the quantized part of TFLite's
/// `ArithmeticParams`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MulParams {
    /// Added to every first-input value: minus its zero point.
    pub input1_offset: i32,
    /// Added to every second-input value: minus its zero point.
    pub input2_offset: i32,
    /// Added after rescaling: the output zero point.
    pub output_offset: i32,
    /// Q31 significand of `s1 · s2 / s_out`.
    pub output_multiplier: i32,
    /// Power-of-two exponent of the multiplier; positive shifts left (TFLite's convention).
    pub output_shift: i32,
    /// Lower clamp of the fused activation, in the output's quantized domain.
    pub act_min: i8,
    /// Upper clamp of the fused activation, in the output's quantized domain.
    pub act_max: i8,
}

impl MulParams {
    /// The parameters TFLite's `Mul` Prepare computes: the real multiplier
    /// `input1_scale · input2_scale / output_scale` is evaluated in `f32` (TFLite multiplies
    /// the `float` scales before widening to `double`), then `QuantizeMultiplier`ed.
    /// `act_min`/`act_max` is the fused activation's range in the output domain
    /// ([`activation_range_i8`](crate::quant::activation_range_i8), or
    /// [`clamp_range_i8`](super::relu::clamp_range_i8) for any other clamp).
    ///
    /// Fails with [`Error::BadQuantization`] if a scale is not finite and positive or a zero
    /// point is outside the int8 range, and with [`Error::InvalidParameter`] if
    /// `act_min > act_max`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        input1_scale: f32,
        input1_zero_point: i32,
        input2_scale: f32,
        input2_zero_point: i32,
        output_scale: f32,
        output_zero_point: i32,
        act_min: i8,
        act_max: i8,
    ) -> Result<Self, Error> {
        let valid = |s: f32| s.is_finite() && s > 0.0;
        let int8 = |z: i32| i8::try_from(z).is_ok();
        if !valid(input1_scale) || !valid(input2_scale) || !valid(output_scale) {
            return Err(Error::BadQuantization);
        }
        if !int8(input1_zero_point) || !int8(input2_zero_point) || !int8(output_zero_point) {
            return Err(Error::BadQuantization);
        }
        if act_min > act_max {
            return Err(Error::InvalidParameter);
        }
        let real = input1_scale * input2_scale / output_scale;
        let (output_multiplier, output_shift) = quantize_multiplier(f64::from(real));
        Ok(Self {
            input1_offset: -input1_zero_point,
            input2_offset: -input2_zero_point,
            output_offset: output_zero_point,
            output_multiplier,
            output_shift,
            act_min,
            act_max,
        })
    }

    /// The output for one pair of inputs.
    #[inline]
    pub fn apply(&self, a: i8, b: i8) -> i8 {
        // The offsets are zero points negated (|·| ≤ 128), so the product is ≤ 256².
        let product = (i32::from(a) + self.input1_offset) * (i32::from(b) + self.input2_offset);
        let scaled = crate::quant::multiply_by_quantized_multiplier(
            product,
            self.output_multiplier,
            self.output_shift,
        );
        let shifted = scaled.wrapping_add(self.output_offset);
        super::clamp(shifted, i32::from(self.act_min), i32::from(self.act_max)) as i8
    }
}

/// The shape two broadcast operands produce: along each axis the sizes must be equal or one
/// of them 1 (the result takes the other).
///
/// Errors: [`Error::ShapeMismatch`] for incompatible sizes.
pub fn broadcast_dims(a: Dims4, b: Dims4) -> Result<Dims4, Error> {
    let mut out = [0usize; 4];
    for ((o, &x), &y) in out.iter_mut().zip(&a).zip(&b) {
        *o = if x == y || y == 1 {
            x
        } else if x == 1 {
            y
        } else {
            return Err(Error::ShapeMismatch);
        };
    }
    Ok(out)
}

/// Number of elements of a shape, or `None` on overflow.
pub(crate) fn element_count(d: Dims4) -> Option<usize> {
    d.iter().try_fold(1usize, |n, &x| n.checked_mul(x))
}

/// Row-major strides of `d` as read by a broadcast to a larger shape: 0 along the axes where
/// `d` has size 1 (the one element is reused). Saturating: a shape with an empty axis may have
/// absurd other sizes, and then no stride is ever used.
pub(crate) fn broadcast_strides(d: Dims4) -> Dims4 {
    let [_, h, w, c] = d;
    let wc = w.saturating_mul(c);
    let strides = [h.saturating_mul(wc), wc, c, 1];
    let mut out = [0usize; 4];
    for ((o, &s), &n) in out.iter_mut().zip(&strides).zip(&d) {
        *o = if n == 1 { 0 } else { s };
    }
    out
}

/// Calls `f(i1, i2, o)` for every output element `o` of the broadcast of shapes `d1` and `d2`
/// (row-major), with the flat indices `i1`, `i2` of the operands it combines.
///
/// Errors: [`Error::ShapeMismatch`] if the shapes do not broadcast, or if `len1`, `len2`,
/// `len_out` are not their element counts.
pub(crate) fn for_each_broadcast(
    d1: Dims4,
    len1: usize,
    d2: Dims4,
    len2: usize,
    len_out: usize,
    mut f: impl FnMut(usize, usize, usize) -> Result<(), Error>,
) -> Result<(), Error> {
    let out = broadcast_dims(d1, d2)?;
    if element_count(d1) != Some(len1)
        || element_count(d2) != Some(len2)
        || element_count(out) != Some(len_out)
    {
        return Err(Error::ShapeMismatch);
    }
    // The counts fit usize, so the stride products below cannot overflow.
    let (s1, s2) = (broadcast_strides(d1), broadcast_strides(d2));
    let mut o = 0usize;
    for n in 0..out[0] {
        for y in 0..out[1] {
            for x in 0..out[2] {
                let base1 = n * s1[0] + y * s1[1] + x * s1[2];
                let base2 = n * s2[0] + y * s2[1] + x * s2[2];
                for c in 0..out[3] {
                    f(base1 + c * s1[3], base2 + c * s2[3], o)?;
                    o += 1;
                }
            }
        }
    }
    Ok(())
}

/// int8 MUL: `output = input1 · input2` (broadcast), requantized and clamped per `params`.
///
/// `shape1` and `shape2` are the operands' 4-D shapes; `output` must hold their broadcast
/// ([`broadcast_dims`]). Operands of the same shape take a plain element-wise loop.
///
/// Errors: [`Error::ShapeMismatch`] if the shapes do not broadcast or a slice length does not
/// match its shape; [`Error::InvalidParameter`] if `act_min > act_max`.
pub fn mul(
    input1: &[i8],
    shape1: Dims4,
    input2: &[i8],
    shape2: Dims4,
    params: &MulParams,
    output: &mut [i8],
) -> Result<(), Error> {
    if params.act_min > params.act_max {
        return Err(Error::InvalidParameter);
    }
    if shape1 == shape2 {
        if element_count(shape1) != Some(input1.len())
            || input2.len() != input1.len()
            || output.len() != input1.len()
        {
            return Err(Error::ShapeMismatch);
        }
        for ((out, &a), &b) in output.iter_mut().zip(input1).zip(input2) {
            *out = params.apply(a, b);
        }
        return Ok(());
    }
    let len_out = output.len();
    for_each_broadcast(
        shape1,
        input1.len(),
        shape2,
        input2.len(),
        len_out,
        |i1, i2, o| {
            let a = super::at(input1, i1)?;
            let b = super::at(input2, i2)?;
            let out = output.get_mut(o).ok_or(Error::ShapeMismatch)?;
            *out = params.apply(a, b);
            Ok(())
        },
    )
}
