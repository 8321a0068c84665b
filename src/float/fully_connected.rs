//! float32 fully connected layer, the twin of [`crate::kernels::fully_connected()`].

use super::Activation;
use crate::kernels::check_bias;
use crate::Error;

/// float32 fully connected layer for one input vector: `output[o] = act(Σ filter[o][i] ·
/// input[i] + bias[o])`, `filter` being `output.len() × input.len()` and `bias` empty or one
/// value per output.
///
/// Errors: [`Error::ShapeMismatch`] when a length disagrees.
pub fn fully_connected(
    input: &[f32],
    filter: &[f32],
    bias: &[f32],
    act: Activation,
    output: &mut [f32],
) -> Result<(), Error> {
    let n_in = input.len();
    let n_out = output.len();
    if n_out.checked_mul(n_in) != Some(filter.len()) {
        return Err(Error::ShapeMismatch);
    }
    check_bias(bias, n_out)?;
    for (o, out) in output.iter_mut().enumerate() {
        let row = &filter[o * n_in..][..n_in];
        let mut total = 0.0f32;
        for (&x, &w) in input.iter().zip(row) {
            total += x * w;
        }
        let b = bias.get(o).copied().unwrap_or(0.0);
        *out = act.apply(total + b);
    }
    Ok(())
}
