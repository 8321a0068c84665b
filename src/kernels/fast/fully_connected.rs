//! Optimized int8 fully connected layers, bit-exact with
//! [`fully_connected`](crate::kernels::fully_connected) and
//! [`fully_connected_float_requant`](crate::kernels::fully_connected_float_requant): four
//! outputs at a time share each widened input word ([`dot_1x4`](super::dot)).

use super::dot::dot_1x4;
use crate::kernels::{check_bias, FloatRequantize, Requantize};
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
    let groups = n_in / 4;
    let body = groups * 4;
    // `x + offset` must fit 16 bits for the packed arithmetic; any int8 zero point does.
    let widenable = (-128..=128).contains(&offset);
    let finish = |o: usize, mut acc: i32| -> i8 {
        for (&x, &w) in input[body..]
            .iter()
            .zip(&filter[o * n_in + body..(o + 1) * n_in])
        {
            let x = i32::from(x).wrapping_add(offset);
            acc = acc.wrapping_add(i32::from(w).wrapping_mul(x));
        }
        match q {
            FcRequant::Fixed(r) => r.apply(acc, r.multipliers[o], r.shifts[o]),
            FcRequant::Float(f) => {
                let scaled = crate::kernels::f64_rescale::rescale(acc, f.scales[o]);
                scaled
                    .wrapping_add(f.output_offset)
                    .clamp(i32::from(f.act_min), i32::from(f.act_max)) as i8
            }
        }
    };
    let mut o = 0;
    while o < n_out {
        let rows = (n_out - o).min(4);
        let mut acc = [0i32; 4];
        for (r, a) in acc.iter_mut().enumerate().take(rows) {
            *a = bias.get(o + r).copied().unwrap_or(0);
        }
        if rows == 4 && widenable {
            dot_1x4(&mut acc, input, offset, &filter[o * n_in..], n_in, groups);
        } else {
            for (r, a) in acc.iter_mut().enumerate().take(rows) {
                let row = &filter[(o + r) * n_in..][..body];
                for (&x, &w) in input.iter().zip(row) {
                    let x = i32::from(x).wrapping_add(offset);
                    *a = a.wrapping_add(i32::from(w).wrapping_mul(x));
                }
            }
        }
        for r in 0..rows {
            output[o + r] = finish(o + r, acc[r]);
        }
        o += rows;
    }
    Ok(())
}
