//! float32 concatenation, the twin of [`crate::kernels::concatenation()`].

use crate::kernels::broadcast::Dims4;
use crate::Error;

/// The inputs one after the other along `axis`. Errors: as
/// [`crate::kernels::concatenation()`].
pub fn concatenation(
    inputs: &[&[f32]],
    input_dims: &[Dims4],
    axis: usize,
    output: &mut [f32],
    output_dims: &Dims4,
) -> Result<(), Error> {
    crate::kernels::concatenation(inputs, input_dims, axis, output, output_dims)
}
