//! STUB (helper-2).
use super::Activation;
use crate::Error;
/// f32 fc (stub).
pub fn fully_connected(
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    act: Activation,
    output: &mut [f32],
) -> Result<(), Error> {
    let _ = (input, filter, bias, act, output);
    Err(Error::InvalidParameter)
}
