//! int8 kernels, bit-exact with TFLite's reference kernels.
//!
//! Every kernel checks the lengths of the slices it is given against the shapes it is told
//! and returns [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) instead of reading out of
//! bounds. Layouts are TFLite's: activations NHWC (batch 1), convolution filters OHWI,
//! depthwise filters `1 × KH × KW × C·M`, fully connected weights `[outputs][inputs]`.

pub mod conv2d;
pub mod depthwise_conv2d;
pub mod fixedpoint;
pub mod fully_connected;
pub mod pooling;
pub mod softmax;

pub use conv2d::conv2d;
pub use depthwise_conv2d::depthwise_conv2d;
pub use fully_connected::fully_connected;
pub use pooling::{avg_pool, max_pool};
pub use softmax::{softmax, SoftmaxParams};

/// How an int32 accumulator becomes an int8 output, per output channel.
///
/// `output = clamp(MultiplyByQuantizedMultiplier(acc, multipliers[c], shifts[c]) +
/// output_offset, act_min, act_max)` where `acc = bias[c] + Σ (input + input_offset) · weight`.
#[derive(Clone, Copy, Debug)]
pub struct Requantize<'a> {
    /// Added to every input value: minus the input zero point.
    pub input_offset: i32,
    /// Added after rescaling: the output zero point.
    pub output_offset: i32,
    /// Q31 multipliers, one per output channel (TFLite's `QuantizeMultiplier`).
    pub multipliers: &'a [i32],
    /// Shifts, one per output channel; positive shifts left (TFLite's convention).
    pub shifts: &'a [i32],
    /// Lower clamp of the fused activation, in the output's quantized domain.
    pub act_min: i8,
    /// Upper clamp of the fused activation, in the output's quantized domain.
    pub act_max: i8,
}
