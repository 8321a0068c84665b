//! float32 element-wise MUL with broadcasting, the twin of [`crate::kernels::mul()`].

use super::Activation;
use crate::kernels::mul::{for_each_broadcast, Dims4};
use crate::Error;

/// `output = activation(input1 · input2)`, broadcasting the 4-D shapes `shape1` and `shape2`
/// as [`crate::kernels::mul()`] does.
///
/// Errors: [`Error::ShapeMismatch`] if the shapes do not broadcast or a slice length does not
/// match its shape.
pub fn mul(
    input1: &[f32],
    shape1: Dims4,
    input2: &[f32],
    shape2: Dims4,
    activation: Activation,
    output: &mut [f32],
) -> Result<(), Error> {
    let len_out = output.len();
    for_each_broadcast(
        shape1,
        input1.len(),
        shape2,
        input2.len(),
        len_out,
        |i1, i2, o| {
            let a = input1.get(i1).ok_or(Error::ShapeMismatch)?;
            let b = input2.get(i2).ok_or(Error::ShapeMismatch)?;
            let out = output.get_mut(o).ok_or(Error::ShapeMismatch)?;
            *out = activation.apply(a * b);
            Ok(())
        },
    )
}
