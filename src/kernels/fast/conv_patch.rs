//! One output pixel's input patch (its taps in filter order, OHWI without the O), a chunk of
//! taps at a time: read in place when the chunk is one run of the input, otherwise gathered
//! into a buffer with the taps in the padding set to the input zero point (which the input
//! offset then turns into 0, as the reference skips them).

use crate::kernels::{span, span_mut, window_taps};
use crate::{Error, Shape, Window};

/// Where a pixel's patch lies in the input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Patch {
    /// Kernel rows inside the input, `fy0..fy1`, the first reading input row `iy0`.
    fy0: usize,
    fy1: usize,
    iy0: usize,
    /// Kernel columns inside the input, `fx0..fx1`, the first reading input column `ix0`.
    fx0: usize,
    fx1: usize,
    ix0: usize,
    /// Every tap inside the input.
    full: bool,
}

impl Patch {
    /// The patch of output pixel `(y, x)` of a convolution with `window` over `shape`.
    #[inline]
    pub(crate) fn new(shape: Shape, window: &Window, y: usize, x: usize) -> Self {
        let (fy0, fy1, iy0) = window_taps(
            y,
            window.stride_h,
            window.pad_top,
            window.kernel_h,
            shape.height,
        );
        let (fx0, fx1, ix0) = window_taps(
            x,
            window.stride_w,
            window.pad_left,
            window.kernel_w,
            shape.width,
        );
        let full = fy0 == 0 && fy1 == window.kernel_h && fx0 == 0 && fx1 == window.kernel_w;
        Patch {
            fy0,
            fy1,
            iy0,
            fx0,
            fx1,
            ix0,
            full,
        }
    }

    /// Taps `t0..t0 + n` of the patch: in place when they are one run of `input` (a whole
    /// patch of a one-row kernel), else gathered into `buf` (whose bytes from `n` on, the
    /// padding of a last partial group, are set to `pad`).
    #[inline]
    pub(crate) fn taps<'a>(
        &self,
        input: &'a [i8],
        shape: Shape,
        window: &Window,
        (t0, n): (usize, usize),
        pad: i8,
        buf: &'a mut [i8],
    ) -> Result<&'a [i8], Error> {
        let c = shape.channels;
        if self.full && window.kernel_h == 1 && n % 4 == 0 {
            return span(input, (self.iy0 * shape.width + self.ix0) * c + t0, n);
        }
        let end = t0.checked_add(n).ok_or(Error::ShapeMismatch)?;
        if self.full {
            buf.get_mut(n..).ok_or(Error::ShapeMismatch)?.fill(pad);
        } else {
            buf.fill(pad);
        }
        let row_len = window.kernel_w * c;
        if row_len == 0 || self.fx0 == self.fx1 {
            return Ok(buf);
        }
        // Kernel rows that meet the chunk and the input.
        let first = (t0 / row_len).max(self.fy0);
        let last = end.div_ceil(row_len).min(self.fy1);
        for ky in first..last {
            let iy = self.iy0 + (ky - self.fy0);
            // The row's taps inside the input, clipped to the chunk.
            let inside = ky * row_len + self.fx0 * c;
            let a = inside.max(t0);
            let b = (ky * row_len + self.fx1 * c).min(end);
            if a >= b {
                continue;
            }
            let src = span(
                input,
                (iy * shape.width + self.ix0) * c + (a - inside),
                b - a,
            )?;
            span_mut(buf, a - t0, b - a)?.copy_from_slice(src);
        }
        Ok(buf)
    }
}
