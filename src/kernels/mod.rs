//! int8 kernels, bit-exact with TFLite's reference kernels.
//!
//! Every kernel checks the lengths of the slices it is given against the shapes it is told
//! and returns [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) instead of reading out of
//! bounds. Layouts are TFLite's: activations NHWC (batch 1), convolution filters OHWI,
//! depthwise filters `1 × KH × KW × C·M`, fully connected weights `[outputs][inputs]`.
//!
//! A bias slice is either empty (the layer has no bias) or holds one `i32` per output channel.
//! Accumulators are `i32` and wrap on overflow, as TFLite's do in practice; the reference
//! models never get near that (TFLite assumes fewer than 2^16 taps per output).

pub mod add;
pub mod broadcast;
pub mod concatenation;
pub mod conv2d;
pub mod depthwise_conv2d;
pub(crate) mod dispatch;
pub mod f64_rescale;
pub mod fast;
pub mod fixedpoint;
pub mod fully_connected;
pub mod glibc_f32;
pub mod hard_swish;
#[cfg(all(feature = "host-simd", target_arch = "x86_64"))]
pub mod host;
pub mod lut;
pub mod mean;
pub mod mul;
pub mod pad;
pub mod pooling;
pub mod quantize;
pub mod relu;
pub mod softmax;

pub use add::{add, broadcast_add, AddParams};
pub use concatenation::{check_concatenation_quantization, concatenation};
pub use conv2d::conv2d;
pub use depthwise_conv2d::depthwise_conv2d;
pub use fully_connected::{fully_connected, fully_connected_float_requant};
pub use hard_swish::{hard_swish, HardSwishParams};
pub use lut::{lookup, Lut};
pub use mean::{mean_hw, MeanParams};
pub use mul::{broadcast_mul, mul, MulParams};
pub use pad::{pad, padded_dims, Paddings4};
pub use pooling::{avg_pool, max_pool};
pub use quantize::{dequantize, quantize, requantize, RequantizeParams};
pub use relu::{leaky_relu, relu_x, LeakyReluParams, ReluParams};
pub use softmax::{softmax, SoftmaxParams, MAX_SOFTMAX_DEPTH};

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

/// How an int32 accumulator becomes an int8 output in current LiteRT's *reference* fully
/// connected kernel, which rescales in `f64` instead of with a Q31 multiplier.
///
/// `output = clamp((int32)round((double)acc · scales[c]) + output_offset, act_min, act_max)`,
/// `round` going half away from zero. See
/// [`fully_connected_float_requant`].
#[derive(Clone, Copy, Debug)]
pub struct FloatRequantize<'a> {
    /// Added to every input value: minus the input zero point.
    pub input_offset: i32,
    /// Added after rescaling: the output zero point.
    pub output_offset: i32,
    /// Effective scales, one per output channel:
    /// [`fully_connected_effective_scale`](crate::quant::fully_connected_effective_scale).
    pub scales: &'a [f64],
    /// Lower clamp of the fused activation, in the output's quantized domain.
    pub act_min: i8,
    /// Upper clamp of the fused activation, in the output's quantized domain.
    pub act_max: i8,
}

/// The taps of a sliding window that fall inside the input along one axis.
///
/// For output position `out` of a window of `kernel` taps moved by `stride` over `input`
/// elements with `pad` elements of padding before the first, returns `(first_tap, end_tap,
/// first_input)`: taps `first_tap..end_tap` read inputs `first_input..` in order, every other
/// tap falls in the padding. An empty range is `(0, 0, 0)`. Saturating arithmetic keeps
/// absurd strides or paddings from overflowing (they simply give empty ranges).
#[inline]
pub(crate) fn window_taps(
    out: usize,
    stride: usize,
    pad: usize,
    kernel: usize,
    input: usize,
) -> (usize, usize, usize) {
    let origin = out.saturating_mul(stride);
    if origin >= pad {
        let first_input = origin - pad;
        if first_input >= input {
            return (0, 0, 0);
        }
        (0, kernel.min(input - first_input), first_input)
    } else {
        let skipped = pad - origin;
        let end = kernel.min(skipped.saturating_add(input));
        if skipped >= end {
            return (0, 0, 0);
        }
        (skipped, end, 0)
    }
}

/// `len` elements of `s` from `start`, or [`Error::ShapeMismatch`](crate::Error::ShapeMismatch).
///
/// The kernels' one way to take a run at a computed offset: the argument checks at the top of
/// each kernel already exclude a run past the end, but the optimizer cannot follow that
/// reasoning, so an impossible offset must still be an error and never a panic (the
/// `.ci/no-panic` proof). It costs the same compare the panicking index did.
#[inline(always)]
pub(crate) fn span<T>(s: &[T], start: usize, len: usize) -> Result<&[T], crate::Error> {
    s.get(start..)
        .and_then(|s| s.get(..len))
        .ok_or(crate::Error::ShapeMismatch)
}

/// [`span`] of a mutable slice.
#[inline(always)]
pub(crate) fn span_mut<T>(s: &mut [T], start: usize, len: usize) -> Result<&mut [T], crate::Error> {
    s.get_mut(start..)
        .and_then(|s| s.get_mut(..len))
        .ok_or(crate::Error::ShapeMismatch)
}

/// Element `at` of `s`, or [`Error::ShapeMismatch`](crate::Error::ShapeMismatch); see [`span`].
#[inline(always)]
pub(crate) fn at<T: Copy>(s: &[T], at: usize) -> Result<T, crate::Error> {
    s.get(at).copied().ok_or(crate::Error::ShapeMismatch)
}

/// `v` clamped to `[lo, hi]`, for `lo ≤ hi` (which every kernel checks first). Unlike
/// `Ord::clamp` it has no panic path for `lo > hi`, which the optimizer cannot always rule out
/// where the check happened in another function.
#[inline(always)]
pub(crate) fn clamp<T: Ord>(v: T, lo: T, hi: T) -> T {
    v.max(lo).min(hi)
}

/// Rejects a window with a zero kernel size or stride.
pub(crate) fn check_window(window: &crate::Window) -> Result<(), crate::Error> {
    if window.kernel_h == 0 || window.kernel_w == 0 || window.stride_h == 0 || window.stride_w == 0
    {
        return Err(crate::Error::InvalidParameter);
    }
    Ok(())
}

/// Checks that `bias` is empty (no bias) or holds one value per output channel.
pub(crate) fn check_bias<T>(bias: &[T], channels: usize) -> Result<(), crate::Error> {
    if bias.is_empty() || bias.len() == channels {
        Ok(())
    } else {
        Err(crate::Error::ShapeMismatch)
    }
}

impl Requantize<'_> {
    /// Checks the per-channel slices against `channels` and the clamp range.
    pub(crate) fn check(&self, channels: usize) -> Result<(), crate::Error> {
        if self.act_min > self.act_max {
            return Err(crate::Error::InvalidParameter);
        }
        if self.multipliers.len() != channels || self.shifts.len() != channels {
            return Err(crate::Error::ShapeMismatch);
        }
        Ok(())
    }

    /// Rescales an accumulator with one channel's multiplier and shift, adds the output zero
    /// point (wrapping, like TFLite's `int32` addition) and clamps to the activation range.
    #[inline]
    pub(crate) fn apply(&self, acc: i32, multiplier: i32, shift: i32) -> i8 {
        let scaled = crate::quant::multiply_by_quantized_multiplier(acc, multiplier, shift);
        let shifted = scaled.wrapping_add(self.output_offset);
        clamp(shifted, i32::from(self.act_min), i32::from(self.act_max)) as i8
    }
}
