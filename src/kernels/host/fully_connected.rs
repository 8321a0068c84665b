//! AVX2 int8 fully connected layer, bit-exact with
//! [`fully_connected`](crate::kernels::fast::fully_connected) (both requantizations): the
//! input is widened once, with its offset, then four weight rows at a time share each load of
//! it ([`dot`]).

use super::detect::avx2;
use super::simd::{dot, widen, STEP};
use crate::kernels::fast::FcRequant;
use crate::kernels::{check_bias, clamp};
use crate::Error;

/// Most inputs this kernel takes (its widened copy of the input is on the stack).
pub const MAX_INPUTS: usize = 8192;

const ROWS: usize = 4;

/// [`fully_connected`](crate::kernels::fast::fully_connected) with AVX2, or `None` when it does
/// not take the call (see [the module](super)).
pub fn fully_connected(
    input: &[i8],
    filter: &[i8],
    bias: &[i32],
    q: FcRequant<'_>,
    output: &mut [i8],
) -> Option<Result<(), Error>> {
    if !avx2() {
        return None;
    }
    let (n_in, n_out) = (input.len(), output.len());
    if n_in == 0 || n_in > MAX_INPUTS || n_out.checked_mul(n_in)? != filter.len() {
        return None;
    }
    check_bias(bias, n_out).ok()?;
    let offset = match q {
        FcRequant::Fixed(r) => {
            r.check(n_out).ok()?;
            r.input_offset
        }
        FcRequant::Float(f) => {
            if f.act_min > f.act_max || f.scales.len() != n_out {
                return None;
            }
            f.input_offset
        }
    };
    // `x + offset` must fit 16 bits; every int8 zero point gives |offset| ≤ 128.
    let offset = i16::try_from(offset).ok()?;
    if !(-256..=256).contains(&offset) {
        return None;
    }
    // SAFETY: `avx2()` said the CPU runs AVX2.
    Some(unsafe { run(input, filter, bias, q, offset, output) })
}

#[target_feature(enable = "avx2")]
fn run(
    input: &[i8],
    filter: &[i8],
    bias: &[i32],
    q: FcRequant<'_>,
    offset: i16,
    output: &mut [i8],
) -> Result<(), Error> {
    let n_in = input.len();
    // Zero past the inputs, so that the last partial step of `dot` adds nothing.
    let mut x = [0i16; MAX_INPUTS + STEP];
    widen(input, offset, &mut x);
    let x = &x[..];
    let finish = |o: usize, acc: i32| -> Result<i8, Error> {
        let acc = acc.wrapping_add(bias.get(o).copied().unwrap_or(0));
        Ok(match q {
            FcRequant::Fixed(r) => {
                let m = *r.multipliers.get(o).ok_or(Error::ShapeMismatch)?;
                let s = *r.shifts.get(o).ok_or(Error::ShapeMismatch)?;
                r.apply(acc, m, s)
            }
            FcRequant::Float(f) => {
                let scale = *f.scales.get(o).ok_or(Error::ShapeMismatch)?;
                let scaled = crate::kernels::f64_rescale::rescale(acc, scale);
                let shifted = scaled.wrapping_add(f.output_offset);
                clamp(shifted, i32::from(f.act_min), i32::from(f.act_max)) as i8
            }
        })
    };
    // Each row with the rest of the filter after it (see `dot`).
    let row = |o: usize| filter.get(o * n_in..).ok_or(Error::ShapeMismatch);
    let full = output.len() / ROWS;
    let (blocks, rest) = output.split_at_mut(full * ROWS);
    for (block, outs) in blocks.chunks_exact_mut(ROWS).enumerate() {
        let o = block * ROWS;
        let rows = [row(o)?, row(o + 1)?, row(o + 2)?, row(o + 3)?];
        let [acc] = dot::<1, ROWS>([x], rows, n_in).ok_or(Error::ShapeMismatch)?;
        for (r, (out, &a)) in outs.iter_mut().zip(&acc).enumerate() {
            *out = finish(o + r, a)?;
        }
    }
    for (r, out) in rest.iter_mut().enumerate() {
        let o = full * ROWS + r;
        let [[a]] = dot::<1, 1>([x], [row(o)?], n_in).ok_or(Error::ShapeMismatch)?;
        *out = finish(o, a)?;
    }
    Ok(())
}
