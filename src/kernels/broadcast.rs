//! TFLite's 4-D broadcasting of two element-wise operands (`NdArrayDescsForElementwiseBroadcast`
//! and the `BroadcastBinaryFunction4DSlow` loop order), for kernels that combine two tensors.
//!
//! Shapes are `[batch, height, width, channels]`. A tensor of lower rank is first extended to
//! 4-D by prepending ones ([`extend_to_4d`]), as TFLite's `RuntimeShape::ExtendedShape` does.
//! Along each axis an operand either has the output's extent or extent 1 (then its one element
//! is reused along that axis).

use crate::Error;

/// A 4-D tensor shape, `[batch, height, width, channels]` (NHWC).
pub type Dims4 = [usize; 4];

/// `dims` extended to 4-D by prepending ones (TFLite's `ExtendedShape(4, …)`); `None` for more
/// than four dimensions.
pub fn extend_to_4d(dims: &[usize]) -> Option<Dims4> {
    let lead = 4usize.checked_sub(dims.len())?;
    let mut out = [1usize; 4];
    for (o, &d) in out.iter_mut().skip(lead).zip(dims) {
        *o = d;
    }
    Some(out)
}

/// Number of elements of `dims`, `None` on overflow.
pub fn element_count(dims: &Dims4) -> Option<usize> {
    dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// The shape two operands broadcast to (TFLite's `CalculateShapeForBroadcast`): along each axis
/// the extents must be equal or one of them 1, and the output takes the other. `None` when
/// they are incompatible.
pub fn broadcast_shape(a: &Dims4, b: &Dims4) -> Option<Dims4> {
    let mut out = [0usize; 4];
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = if x == y || y == 1 {
            x
        } else if x == 1 {
            y
        } else {
            return None;
        };
    }
    Some(out)
}

/// Element strides of an operand of shape `dims` read along an output of shape `out`: the
/// natural row-major stride on axes where the operand has the output's extent, 0 where it is
/// broadcast (extent 1).
fn strides(dims: &Dims4, out: &Dims4) -> Result<Dims4, Error> {
    let mut s = [0usize; 4];
    let mut step = 1usize;
    for axis in (0..4).rev() {
        let (d, o) = (dims[axis], out[axis]);
        if d == o {
            s[axis] = if d == 1 { 0 } else { step };
        } else if d != 1 {
            return Err(Error::ShapeMismatch);
        }
        step = step.checked_mul(d).ok_or(Error::ShapeMismatch)?;
    }
    Ok(s)
}

/// Checks two operands and an output against their shapes and TFLite's broadcasting rule
/// (`out` must be exactly [`broadcast_shape`] of the operands); returns the operands' strides
/// along the output.
pub(crate) fn check<A, B, O>(
    a: &[A],
    a_dims: &Dims4,
    b: &[B],
    b_dims: &Dims4,
    out: &[O],
    out_dims: &Dims4,
) -> Result<(Dims4, Dims4), Error> {
    if broadcast_shape(a_dims, b_dims).as_ref() != Some(out_dims) {
        return Err(Error::ShapeMismatch);
    }
    for (len, dims) in [(a.len(), a_dims), (b.len(), b_dims), (out.len(), out_dims)] {
        if element_count(dims) != Some(len) {
            return Err(Error::ShapeMismatch);
        }
    }
    Ok((strides(a_dims, out_dims)?, strides(b_dims, out_dims)?))
}

/// Applies `f` to every output element and the two operand elements broadcast onto it, in
/// TFLite's order (channels fastest). Arguments are those of [`check`], which must have passed
/// (an inconsistent call returns [`Error::ShapeMismatch`] instead of reading out of bounds).
pub(crate) fn for_each<A: Copy, B: Copy, O>(
    a: &[A],
    a_strides: &Dims4,
    b: &[B],
    b_strides: &Dims4,
    out: &mut [O],
    out_dims: &Dims4,
    mut f: impl FnMut(A, B) -> O,
) -> Result<(), Error> {
    let [n, h, w, c] = *out_dims;
    if c == 0 {
        return Ok(());
    }
    let mut rows = out.chunks_exact_mut(c);
    for ib in 0..n {
        for iy in 0..h {
            for ix in 0..w {
                let base = |s: &Dims4| ib * s[0] + iy * s[1] + ix * s[2];
                let (a0, b0) = (base(a_strides), base(b_strides));
                let row = rows.next().ok_or(Error::ShapeMismatch)?;
                for (ic, o) in row.iter_mut().enumerate() {
                    let x = super::at(a, a0 + ic * a_strides[3])?;
                    let y = super::at(b, b0 + ic * b_strides[3])?;
                    *o = f(x, y);
                }
            }
        }
    }
    Ok(())
}

/// `output[i] = f(a[i], b[i])` over two operands of the output's length.
///
/// Errors: [`Error::ShapeMismatch`] when the three lengths differ.
pub fn zip_with(
    a: &[i8],
    b: &[i8],
    output: &mut [i8],
    f: impl Fn(i8, i8) -> i8,
) -> Result<(), Error> {
    if a.len() != output.len() || b.len() != output.len() {
        return Err(Error::ShapeMismatch);
    }
    // Two elements a turn: half the loop overhead of the cheap element functions.
    let mut outs = output.chunks_exact_mut(2);
    let (mut xs, mut ys) = (a.chunks_exact(2), b.chunks_exact(2));
    for ((o, x), y) in (&mut outs).zip(&mut xs).zip(&mut ys) {
        if let ([o0, o1], [x0, x1], [y0, y1]) = (o, x, y) {
            *o0 = f(*x0, *y0);
            *o1 = f(*x1, *y1);
        }
    }
    let tails = xs.remainder().iter().zip(ys.remainder());
    for (o, (&x, &y)) in outs.into_remainder().iter_mut().zip(tails) {
        *o = f(x, y);
    }
    Ok(())
}

/// A binary element-wise op with 4-D broadcasting, shared by ADD and MUL: checks the shapes,
/// takes the plain loop when they are equal, else TFLite's broadcast loop order.
///
/// Errors: [`Error::ShapeMismatch`] when the shapes do not broadcast to `output_dims` or a
/// length disagrees with its shape.
pub fn binary(
    a: &[i8],
    a_dims: &Dims4,
    b: &[i8],
    b_dims: &Dims4,
    output: &mut [i8],
    output_dims: &Dims4,
    f: impl Fn(i8, i8) -> i8,
) -> Result<(), Error> {
    let (sa, sb) = check(a, a_dims, b, b_dims, output, output_dims)?;
    if a_dims == b_dims {
        return zip_with(a, b, output, f);
    }
    for_each(a, &sa, b, &sb, output, output_dims, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_broadcast_like_tflite() {
        assert_eq!(extend_to_4d(&[3]), Some([1, 1, 1, 3]));
        assert_eq!(extend_to_4d(&[]), Some([1, 1, 1, 1]));
        assert_eq!(extend_to_4d(&[1, 2, 3, 4, 5]), None);
        assert_eq!(
            broadcast_shape(&[1, 4, 4, 3], &[1, 1, 1, 3]),
            Some([1, 4, 4, 3])
        );
        assert_eq!(
            broadcast_shape(&[1, 1, 5, 1], &[1, 4, 1, 3]),
            Some([1, 4, 5, 3])
        );
        assert_eq!(broadcast_shape(&[1, 4, 4, 3], &[1, 1, 1, 2]), None);
    }

    #[test]
    fn strides_are_zero_on_broadcast_axes() {
        assert_eq!(strides(&[1, 1, 1, 3], &[1, 4, 4, 3]), Ok([0, 0, 0, 1]));
        assert_eq!(strides(&[1, 4, 1, 3], &[1, 4, 5, 3]), Ok([0, 3, 0, 1]));
        assert_eq!(strides(&[2, 4, 5, 3], &[2, 4, 5, 3]), Ok([60, 15, 3, 1]));
    }
}
