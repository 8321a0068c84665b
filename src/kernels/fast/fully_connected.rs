//! Optimized int8 fully connected layers, bit-exact with
//! [`fully_connected`](crate::kernels::fully_connected) and
//! [`fully_connected_float_requant`](crate::kernels::fully_connected_float_requant): four
//! outputs at a time share each widened input word ([`dot_1x4`](super::fc_dot)), and the f64
//! rescale is [`F64Scale`] (32-bit multiplies, not a 128-bit product; split once for a run of
//! outputs with the same scale, as every per-tensor layer has).

use crate::kernels::f64_rescale::F64Scale;
use crate::kernels::{check_bias, clamp, span, FloatRequantize, Requantize};
use crate::Error;

/// How the accumulators become outputs.
#[derive(Clone, Copy, Debug)]
pub enum FcRequant<'a> {
    /// Q31 multipliers ([`fully_connected`](crate::kernels::fully_connected)).
    Fixed(&'a Requantize<'a>),
    /// f64 scales, LiteRT's reference kernel
    /// ([`fully_connected_float_requant`](crate::kernels::fully_connected_float_requant)).
    Float(&'a FloatRequantize<'a>),
}

/// int8 fully connected layer for one input vector; arguments and errors as the reference
/// kernels'.
pub fn fully_connected(
    input: &[i8],
    filter: &[i8],
    bias: &[i32],
    q: FcRequant<'_>,
    output: &mut [i8],
) -> Result<(), Error> {
    let n_in = input.len();
    let n_out = output.len();
    if n_out.checked_mul(n_in) != Some(filter.len()) {
        return Err(Error::ShapeMismatch);
    }
    check_bias(bias, n_out)?;
    let offset = match q {
        FcRequant::Fixed(r) => {
            r.check(n_out)?;
            r.input_offset
        }
        FcRequant::Float(f) => {
            if f.act_min > f.act_max {
                return Err(Error::InvalidParameter);
            }
            if f.scales.len() != n_out {
                return Err(Error::ShapeMismatch);
            }
            f.input_offset
        }
    };
    // The inputs in groups of four (the packed inner product) and the last `n_in % 4`.
    let body = n_in - n_in % 4;
    let (x_groups, x_tail) = input.split_at_checked(body).ok_or(Error::ShapeMismatch)?;
    // `x + offset` must fit 16 bits for the packed arithmetic; any int8 zero point does.
    let widenable = (-128..=128).contains(&offset);
    // Output `o` from its accumulator over the first `body` inputs: the tail, the bias was
    // already in, then the requantization.
    let mut split = F64Scale::new(0.0);
    let mut finish = |o: usize, mut acc: i32| -> Result<i8, Error> {
        let tail_w = span(filter, o * n_in + body, x_tail.len())?;
        for (&x, &w) in x_tail.iter().zip(tail_w) {
            let x = i32::from(x).wrapping_add(offset);
            acc = acc.wrapping_add(i32::from(w).wrapping_mul(x));
        }
        let requantized = match q {
            FcRequant::Fixed(r) => {
                let m = r.multipliers.get(o).ok_or(Error::ShapeMismatch)?;
                let s = r.shifts.get(o).ok_or(Error::ShapeMismatch)?;
                r.apply(acc, *m, *s)
            }
            FcRequant::Float(f) => {
                let scale = *f.scales.get(o).ok_or(Error::ShapeMismatch)?;
                if scale.to_bits() != split.scale().to_bits() {
                    split = F64Scale::new(scale);
                }
                let scaled = split.apply(acc);
                let shifted = scaled.wrapping_add(f.output_offset);
                clamp(shifted, i32::from(f.act_min), i32::from(f.act_max)) as i8
            }
        };
        Ok(requantized)
    };
    for (block, outs) in output.chunks_mut(4).enumerate() {
        let o = 4 * block;
        let rows = outs.len();
        let mut acc = [0i32; 4];
        if let Some(b) = bias.get(o..o + rows) {
            for (a, &b) in acc.iter_mut().zip(b) {
                *a = b;
            }
        }
        if rows == 4 && widenable {
            let w = filter.get(o * n_in..).ok_or(Error::ShapeMismatch)?;
            super::fc_dot::dot_1x4(&mut acc, x_groups, offset, w, n_in)?;
        } else {
            for (r, a) in acc.iter_mut().enumerate().take(rows) {
                let row = span(filter, (o + r) * n_in, body)?;
                for (&x, &w) in input.iter().zip(row) {
                    let x = i32::from(x).wrapping_add(offset);
                    *a = a.wrapping_add(i32::from(w).wrapping_mul(x));
                }
            }
        }
        for (r, (out, &a)) in outs.iter_mut().zip(&acc).enumerate() {
            *out = finish(o + r, a)?;
        }
    }
    Ok(())
}
