//! float32 softmax, the twin of [`crate::kernels::softmax()`].

use crate::Error;

#[inline]
fn exp(x: f32) -> f32 {
    #[cfg(feature = "micromath")]
    {
        micromath::F32Ext::exp(x)
    }
    #[cfg(not(feature = "micromath"))]
    {
        libm::expf(x)
    }
}

/// float32 softmax over the last axis, as TFLite's `reference_ops::Softmax`: for each row of
/// `depth` values, `exp((x − max) · beta) / Σ exp((x' − max) · beta)`. Subtracting the row
/// maximum keeps every exponent ≤ 0, so nothing overflows.
///
/// Errors: [`Error::InvalidParameter`] if `depth` is 0, [`Error::ShapeMismatch`] if the
/// lengths differ or are not a multiple of `depth`.
pub fn softmax(input: &[f32], depth: usize, beta: f32, output: &mut [f32]) -> Result<(), Error> {
    if depth == 0 {
        return Err(Error::InvalidParameter);
    }
    if input.len() != output.len() || input.len() % depth != 0 {
        return Err(Error::ShapeMismatch);
    }
    for (row_in, row_out) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
    {
        let max = row_in.iter().copied().fold(f32::MIN, f32::max);
        let mut sum = 0.0f32;
        for (out, &x) in row_out.iter_mut().zip(row_in) {
            *out = exp((x - max) * beta);
            sum += *out;
        }
        for out in row_out.iter_mut() {
            *out /= sum;
        }
    }
    Ok(())
}
