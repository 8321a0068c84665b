//! STUB (helper-2).
use super::Activation;
use crate::{Error, Shape, Window};
/// f32 conv (stub).
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    input: &[f32],
    input_shape: Shape,
    filter: &[f32],
    bias: &[f32],
    window: &Window,
    act: Activation,
    output: &mut [f32],
    output_shape: Shape,
) -> Result<(), Error> {
    let _ = (
        input,
        input_shape,
        filter,
        bias,
        window,
        act,
        output,
        output_shape,
    );
    Err(Error::InvalidParameter)
}
