//! Tensor shapes and sliding-window geometry, computed exactly as TFLite does.

use crate::Error;

/// Height, width and channels of a batch-1 NHWC activation tensor.
///
/// A vector of `n` features (a fully connected layer's input or output) is `1 × 1 × n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Channels (innermost, contiguous).
    pub channels: usize,
}

impl Shape {
    /// A shape of `height × width × channels`.
    pub const fn new(height: usize, width: usize, channels: usize) -> Self {
        Self {
            height,
            width,
            channels,
        }
    }

    /// Number of elements, or `None` on overflow.
    pub const fn checked_len(&self) -> Option<usize> {
        match self.height.checked_mul(self.width) {
            Some(hw) => hw.checked_mul(self.channels),
            None => None,
        }
    }

    /// Number of elements (saturating; shapes from a validated model never overflow).
    pub const fn len(&self) -> usize {
        match self.checked_len() {
            Some(n) => n,
            None => usize::MAX,
        }
    }

    /// True when the shape holds no element.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that `len` elements fit this shape exactly.
    pub fn check_len(&self, len: usize) -> Result<(), Error> {
        if self.checked_len() == Some(len) {
            Ok(())
        } else {
            Err(Error::ShapeMismatch)
        }
    }
}

/// Padding scheme of a convolution or pooling window (TFLite's `Padding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Padding {
    /// No padding: the window stays inside the input.
    Valid,
    /// Output size is `ceil(input / stride)`; the missing border is padded, the extra pixel
    /// (when the total is odd) going to the bottom/right, as TFLite does.
    Same,
}

impl Padding {
    /// Output size along one axis (`ComputeOutSize` in TFLite), `None` when the window does
    /// not fit or a parameter is zero.
    pub fn output_size(self, input: usize, kernel: usize, stride: usize) -> Option<usize> {
        if stride == 0 || kernel == 0 || input == 0 {
            return None;
        }
        match self {
            Padding::Same => Some(input.checked_add(stride - 1)? / stride),
            Padding::Valid => {
                let span = input.checked_sub(kernel)?;
                Some(span / stride + 1)
            }
        }
    }

    /// Padding before the first element along one axis (top or left), TFLite's
    /// `ComputePaddingWithOffset`: half the total padding, rounded down.
    pub fn before(self, input: usize, kernel: usize, stride: usize, output: usize) -> usize {
        match self {
            Padding::Valid => 0,
            Padding::Same => {
                let needed = output
                    .saturating_sub(1)
                    .saturating_mul(stride)
                    .saturating_add(kernel);
                needed.saturating_sub(input) / 2
            }
        }
    }
}

/// A sliding window: kernel size, strides and the padding before the first row and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Window {
    /// Kernel rows.
    pub kernel_h: usize,
    /// Kernel columns.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Padding rows above the input.
    pub pad_top: usize,
    /// Padding columns left of the input.
    pub pad_left: usize,
}

impl Window {
    /// The window for `padding` over `input`, and the output height and width it gives.
    pub fn new(
        padding: Padding,
        input: Shape,
        kernel_h: usize,
        kernel_w: usize,
        stride_h: usize,
        stride_w: usize,
    ) -> Result<(Self, usize, usize), Error> {
        let out_h = padding
            .output_size(input.height, kernel_h, stride_h)
            .ok_or(Error::InvalidParameter)?;
        let out_w = padding
            .output_size(input.width, kernel_w, stride_w)
            .ok_or(Error::InvalidParameter)?;
        let window = Window {
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
            pad_top: padding.before(input.height, kernel_h, stride_h, out_h),
            pad_left: padding.before(input.width, kernel_w, stride_w, out_w),
        };
        Ok((window, out_h, out_w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tflite_on_even_and_odd_inputs() {
        // 28 wide, 3x3, stride 2: out 14, total pad (13*2+3-28)=1 -> before 0.
        let (w, oh, ow) = Window::new(Padding::Same, Shape::new(28, 28, 1), 3, 3, 2, 2).unwrap();
        assert_eq!((oh, ow, w.pad_top, w.pad_left), (14, 14, 0, 0));
        // 7 wide, 3x3, stride 1: out 7, total pad 2 -> before 1.
        let (w, oh, _) = Window::new(Padding::Same, Shape::new(7, 7, 1), 3, 3, 1, 1).unwrap();
        assert_eq!((oh, w.pad_top), (7, 1));
        // 7 wide, 3x3, stride 2: out 4, total pad (3*2+3-7)=2 -> before 1.
        let (w, oh, _) = Window::new(Padding::Same, Shape::new(7, 7, 1), 3, 3, 2, 2).unwrap();
        assert_eq!((oh, w.pad_top), (4, 1));
    }

    #[test]
    fn valid_padding_rejects_a_window_larger_than_the_input() {
        assert!(Window::new(Padding::Valid, Shape::new(2, 2, 1), 3, 3, 1, 1).is_err());
        let (_, oh, ow) = Window::new(Padding::Valid, Shape::new(28, 28, 1), 3, 3, 1, 1).unwrap();
        assert_eq!((oh, ow), (26, 26));
    }
}
