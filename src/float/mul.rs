//! float32 element-wise MUL, the twin of [`crate::kernels::mul()`] and
//! [`crate::kernels::broadcast_mul()`].

use super::Activation;
use crate::kernels::broadcast::{self, Dims4};
use crate::Error;

/// `output[i] = act(a[i] · b[i])` for operands of the same shape.
///
/// Errors: [`Error::ShapeMismatch`] when the three lengths differ.
pub fn mul(a: &[f32], b: &[f32], act: Activation, output: &mut [f32]) -> Result<(), Error> {
    if a.len() != output.len() || b.len() != output.len() {
        return Err(Error::ShapeMismatch);
    }
    for ((o, &x), &y) in output.iter_mut().zip(a).zip(b) {
        *o = act.apply(x * y);
    }
    Ok(())
}

/// `act(a · b)` with TFLite's 4-D broadcasting (see [`crate::kernels::broadcast`]).
///
/// Errors: as [`crate::kernels::broadcast_mul()`].
pub fn broadcast_mul(
    a: &[f32],
    a_dims: &Dims4,
    b: &[f32],
    b_dims: &Dims4,
    act: Activation,
    output: &mut [f32],
    output_dims: &Dims4,
) -> Result<(), Error> {
    let (sa, sb) = broadcast::check(a, a_dims, b, b_dims, output, output_dims)?;
    broadcast::for_each(a, &sa, b, &sb, output, output_dims, |x, y| act.apply(x * y))
}
