//! float32 element-wise activations, the twins of the int8 LOGISTIC, TANH, HARD_SWISH,
//! LEAKY_RELU and RELU-family kernels ([`crate::kernels::lut`],
//! [`crate::kernels::hard_swish`](mod@crate::kernels::hard_swish), [`crate::kernels::relu`]).
//!
//! Each follows TFLite's float reference kernel. All take an input and an output slice of the
//! same length and fail with [`Error::ShapeMismatch`] otherwise.

use crate::Error;

/// Applies `f` element-wise after checking the lengths.
fn map(input: &[f32], output: &mut [f32], f: impl Fn(f32) -> f32) -> Result<(), Error> {
    if input.len() != output.len() {
        return Err(Error::ShapeMismatch);
    }
    for (out, &x) in output.iter_mut().zip(input) {
        *out = f(x);
    }
    Ok(())
}

/// The logistic sigmoid `1 / (1 + exp(−x))`, as TFLite's float reference `Logistic`: 1 above
/// 16.619047 (where the f32 result is 1 anyway) and `exp(x)` below −9 (where `1 + exp(−x)`
/// would lose the small result's precision).
pub fn logistic(input: &[f32], output: &mut [f32]) -> Result<(), Error> {
    const CUTOFF_UPPER: f32 = 16.619_047;
    const CUTOFF_LOWER: f32 = -9.0;
    map(input, output, |x| {
        if x > CUTOFF_UPPER {
            1.0
        } else if x < CUTOFF_LOWER {
            libm::expf(x)
        } else {
            1.0 / (1.0 + libm::expf(-x))
        }
    })
}

/// `tanh(x)`.
pub fn tanh(input: &[f32], output: &mut [f32]) -> Result<(), Error> {
    map(input, output, libm::tanhf)
}

/// Hard swish `x · relu6(x + 3) / 6`, as TFLite's float reference `HardSwish`.
pub fn hard_swish(input: &[f32], output: &mut [f32]) -> Result<(), Error> {
    map(input, output, |x| x * (x + 3.0).clamp(0.0, 6.0) / 6.0)
}

/// Leaky ReLU: `x` for `x > 0`, `alpha · x` otherwise (alpha may be any value, even negative
/// or above 1, as in TFLite).
pub fn leaky_relu(input: &[f32], alpha: f32, output: &mut [f32]) -> Result<(), Error> {
    map(input, output, |x| if x > 0.0 { x } else { x * alpha })
}

/// A stand-alone clamp activation (RELU, RELU6, RELU_N1_TO_1 as separate layers): `x`
/// clamped to `[min, max]`. Fails with [`Error::InvalidParameter`] if `min > max` or either
/// is NaN.
pub fn relu_x(input: &[f32], min: f32, max: f32, output: &mut [f32]) -> Result<(), Error> {
    if min.is_nan() || max.is_nan() || min > max {
        return Err(Error::InvalidParameter);
    }
    map(input, output, |x| x.max(min).min(max))
}
