//! STUB (helper-2).
use super::Activation;
use crate::{Error, Shape, Window};
/// f32 max pool (stub).
pub fn max_pool(
    input: &[f32],
    input_shape: Shape,
    window: &Window,
    act: Activation,
    output: &mut [f32],
    output_shape: Shape,
) -> Result<(), Error> {
    let _ = (input, input_shape, window, act, output, output_shape);
    Err(Error::InvalidParameter)
}
/// f32 avg pool (stub).
pub fn avg_pool(
    input: &[f32],
    input_shape: Shape,
    window: &Window,
    act: Activation,
    output: &mut [f32],
    output_shape: Shape,
) -> Result<(), Error> {
    let _ = (input, input_shape, window, act, output, output_shape);
    Err(Error::InvalidParameter)
}
