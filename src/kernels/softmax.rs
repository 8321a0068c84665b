//! STUB (helper-2).
use crate::Error;
/// Softmax parameters (stub).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftmaxParams {
    /// m
    pub input_multiplier: i32,
    /// s
    pub input_left_shift: i32,
    /// d
    pub diff_min: i32,
}
/// int8 softmax (stub).
pub fn softmax(
    input: &[i8],
    depth: usize,
    params: &SoftmaxParams,
    output: &mut [i8],
) -> Result<(), Error> {
    let _ = (input, depth, params, output);
    Err(Error::InvalidParameter)
}
