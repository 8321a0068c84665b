//! STUB (helper-2).
use super::Requantize;
use crate::{Error, Shape, Window};
/// int8 2-D convolution (stub).
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    input: &[i8],
    input_shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    q: &Requantize,
    output: &mut [i8],
    output_shape: Shape,
) -> Result<(), Error> {
    let _ = (
        input,
        input_shape,
        filter,
        bias,
        window,
        q,
        output,
        output_shape,
    );
    Err(Error::InvalidParameter)
}
