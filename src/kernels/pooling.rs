//! STUB (helper-2).
use crate::{Error, Shape, Window};
/// int8 max pool (stub).
#[allow(clippy::too_many_arguments)]
pub fn max_pool(
    input: &[i8],
    input_shape: Shape,
    window: &Window,
    act_min: i8,
    act_max: i8,
    output: &mut [i8],
    output_shape: Shape,
) -> Result<(), Error> {
    let _ = (
        input,
        input_shape,
        window,
        act_min,
        act_max,
        output,
        output_shape,
    );
    Err(Error::InvalidParameter)
}
/// int8 average pool (stub).
#[allow(clippy::too_many_arguments)]
pub fn avg_pool(
    input: &[i8],
    input_shape: Shape,
    window: &Window,
    act_min: i8,
    act_max: i8,
    output: &mut [i8],
    output_shape: Shape,
) -> Result<(), Error> {
    let _ = (
        input,
        input_shape,
        window,
        act_min,
        act_max,
        output,
        output_shape,
    );
    Err(Error::InvalidParameter)
}
