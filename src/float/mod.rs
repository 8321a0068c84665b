//! float32 reference kernels, the twins of the int8 kernels in [`crate::kernels`].
//!
//! Used by tests (as the mathematical reference), by training, and on FPU targets. Exact math
//! comes from `libm`; with the `micromath` feature, `exp` uses a fast approximation instead.

pub mod activations;
pub mod add;
pub mod concatenation;
pub mod conv2d;
pub mod depthwise_conv2d;
pub mod fully_connected;
pub mod mean;
pub mod mul;
pub mod pad;
pub mod pooling;
pub mod softmax;

pub use activations::{hard_swish, leaky_relu, logistic, relu_x, tanh};
pub use add::{add, broadcast_add};
pub use concatenation::concatenation;
pub use conv2d::conv2d;
pub use depthwise_conv2d::depthwise_conv2d;
pub use fully_connected::fully_connected;
pub use mean::mean_hw;
pub use mul::{broadcast_mul, mul};
pub use pad::pad;
pub use pooling::{avg_pool, max_pool};
pub use softmax::softmax;

/// A fused activation function of a float layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Activation {
    /// Identity.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

impl Activation {
    /// Applies the activation to one value.
    #[inline]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
        }
    }
}
