//! STUB (helper-2).
use super::Activation;
use crate::{Error, Shape, Window};
/// f32 depthwise (stub).
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d(
    input: &[f32],
    input_shape: Shape,
    filter: &[f32],
    bias: &[f32],
    window: &Window,
    depth_multiplier: usize,
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
        depth_multiplier,
        act,
        output,
        output_shape,
    );
    Err(Error::InvalidParameter)
}
