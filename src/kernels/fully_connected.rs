//! STUB (helper-2).
use super::Requantize;
use crate::Error;
/// int8 fully connected (stub).
pub fn fully_connected(
    input: &[i8],
    filter: &[i8],
    bias: &[i32],
    q: &Requantize,
    output: &mut [i8],
) -> Result<(), Error> {
    let _ = (input, filter, bias, q, output);
    Err(Error::InvalidParameter)
}
