//! STUB (helper-2).
use crate::Error;
/// f32 softmax (stub).
pub fn softmax(input: &[f32], depth: usize, beta: f32, output: &mut [f32]) -> Result<(), Error> {
    let _ = (input, depth, beta, output);
    Err(Error::InvalidParameter)
}
