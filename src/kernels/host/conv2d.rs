//! AVX2 int8 convolution, optionally fused with the max pool after it; bit-exact with
//! [`conv2d`](crate::kernels::conv2d) (followed by [`max_pool`](crate::kernels::max_pool)).
//!
//! Two convolution pixels at a time: their input patches are gathered in filter order and
//! widened to 16 bits with the input offset added (padding taps 0, as the reference skips
//! them), then multiplied with four output channels' weights at once ([`dot`]), so that each
//! weight load serves two pixels and each patch load four channels. Every convolution output
//! is requantized as the reference does; a pooled output is the maximum of its window's
//! requantized values, which is what the reference pool computes from the stored ones.

use super::detect::avx2;
use super::simd::{dot, requantize_run, shifts_in_range, widen, STEP};
use crate::kernels::fast::PoolWindow;
use crate::kernels::{check_bias, clamp, span, span_mut, window_taps, Requantize};

use crate::{Error, Shape, Window};

/// Most taps (`kernel_h × kernel_w × input channels`) of a filter this kernel takes (a 3×3
/// filter over 512 channels); its patch buffers are on the stack.
pub const MAX_TAPS: usize = 4608;
/// Most output channels this kernel takes.
pub const MAX_CHANNELS: usize = 1024;

/// Output channels per inner product: four rows keep the two pixels' eight accumulators, two
/// activation vectors and a weight vector within the sixteen YMM registers.
const ROWS: usize = 4;

/// [`conv2d`](crate::kernels::conv2d) with AVX2, or `None` when it does not take the call
/// (see [the module](super)).
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    input: &[i8],
    input_shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    q: &Requantize,
    output: &mut [i8],
    output_shape: Shape,
) -> Option<Result<(), Error>> {
    conv2d_pool(
        input,
        input_shape,
        filter,
        bias,
        window,
        q,
        None,
        output,
        output_shape,
    )
}

/// [`conv2d_pool`](crate::kernels::fast::conv2d_pool) with AVX2, or `None` when it does not
/// take the call (see [the module](super)).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_pool(
    input: &[i8],
    input_shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    q: &Requantize,
    pool: Option<&PoolWindow>,
    output: &mut [i8],
    output_shape: Shape,
) -> Option<Result<(), Error>> {
    if !avx2() {
        return None;
    }
    let conv = Conv::new(input, input_shape, filter, bias, window, q)?;
    if output_shape.check_len(output.len()).is_err() || output_shape.channels != conv.out_c {
        return None;
    }
    if let Some(p) = pool {
        let w = &p.window;
        let zero = w.kernel_h == 0 || w.kernel_w == 0 || w.stride_h == 0 || w.stride_w == 0;
        if zero || p.act_min > p.act_max || p.conv_shape.channels != conv.out_c {
            return None;
        }
    }
    // SAFETY: `avx2()` said the CPU runs AVX2.
    Some(unsafe { run(&conv, pool, output, output_shape) })
}

/// A checked convolution.
struct Conv<'x> {
    input: &'x [i8],
    shape: Shape,
    filter: &'x [i8],
    bias: &'x [i32],
    window: &'x Window,
    q: &'x Requantize<'x>,
    taps: usize,
    out_c: usize,
    offset: i16,
    /// Every shift suits the vector requantization.
    vector: bool,
}

impl<'x> Conv<'x> {
    /// The convolution, if its arguments are consistent and within this kernel's limits.
    fn new(
        input: &'x [i8],
        shape: Shape,
        filter: &'x [i8],
        bias: &'x [i32],
        window: &'x Window,
        q: &'x Requantize<'x>,
    ) -> Option<Self> {
        let w = window;
        if w.kernel_h == 0 || w.kernel_w == 0 || w.stride_h == 0 || w.stride_w == 0 {
            return None;
        }
        shape.check_len(input.len()).ok()?;
        let taps = w
            .kernel_h
            .checked_mul(w.kernel_w)?
            .checked_mul(shape.channels)?;
        if taps == 0 || taps > MAX_TAPS || filter.len() % taps != 0 {
            return None;
        }
        let out_c = filter.len() / taps;
        if out_c == 0 || out_c > MAX_CHANNELS {
            return None;
        }
        check_bias(bias, out_c).ok()?;
        q.check(out_c).ok()?;
        // `x + offset` must fit 16 bits; every int8 zero point gives |offset| ≤ 128.
        let offset = i16::try_from(q.input_offset).ok()?;
        if !(-256..=256).contains(&offset) {
            return None;
        }
        Some(Conv {
            input,
            shape,
            filter,
            bias,
            window,
            q,
            taps,
            out_c,
            offset,
            vector: shifts_in_range(q.shifts),
        })
    }

    /// Writes the input patch of convolution pixel `(cy, cx)` into `patch` (filter order,
    /// widened, padding taps 0); `patch[taps..]` is left as it is.
    fn gather(&self, cy: usize, cx: usize, patch: &mut [i16]) -> Result<(), Error> {
        let (w, c) = (self.window, self.shape.channels);
        let (fy0, fy1, iy0) = window_taps(cy, w.stride_h, w.pad_top, w.kernel_h, self.shape.height);
        let (fx0, fx1, ix0) = window_taps(cx, w.stride_w, w.pad_left, w.kernel_w, self.shape.width);
        let taps = patch.get_mut(..self.taps).ok_or(Error::ShapeMismatch)?;
        if fy0 != 0 || fy1 != w.kernel_h || fx0 != 0 || fx1 != w.kernel_w {
            taps.fill(0);
        }
        let run = (fx1 - fx0) * c;
        if run == 0 {
            return Ok(());
        }
        let row_len = w.kernel_w * c;
        for (fy, iy) in (fy0..fy1).zip(iy0..) {
            let src = span(self.input, (iy * self.shape.width + ix0) * c, run)?;
            let dst = span_mut(taps, fy * row_len + fx0 * c, run)?;
            widen(src, self.offset, dst);
        }
        Ok(())
    }

    /// Both patches' requantized outputs, one per channel, into `out0` and `out1`; `acc` is
    /// scratch space (its first `out_c` values of each row are overwritten).
    #[target_feature(enable = "avx2")]
    fn pair(
        &self,
        patches: &[[i16; MAX_TAPS]; 2],
        acc: &mut [[i32; MAX_CHANNELS]; 2],
        out0: &mut [i8],
        out1: &mut [i8],
    ) -> Result<(), Error> {
        let [p0, p1] = patches;
        let (taps, out_c) = (self.taps, self.out_c);
        let [acc0, acc1] = acc;
        let (acc0, acc1) = (
            acc0.get_mut(..out_c).ok_or(Error::ShapeMismatch)?,
            acc1.get_mut(..out_c).ok_or(Error::ShapeMismatch)?,
        );
        let blocks = acc0.chunks_exact_mut(ROWS).zip(acc1.chunks_exact_mut(ROWS));
        for (block, (a0, a1)) in blocks.enumerate() {
            let c = block * ROWS;
            // Each row with the rest of the filter after it (see `dot`).
            let row = |c: usize| self.filter.get(c * taps..).ok_or(Error::ShapeMismatch);
            let rows = [row(c)?, row(c + 1)?, row(c + 2)?, row(c + 3)?];
            let [d0, d1] = dot::<2, ROWS>([p0, p1], rows, taps).ok_or(Error::ShapeMismatch)?;
            a0.copy_from_slice(&d0);
            a1.copy_from_slice(&d1);
        }
        let first = out_c - out_c % ROWS;
        let rest = acc0.iter_mut().zip(acc1.iter_mut()).enumerate().skip(first);
        for (c, (a0, a1)) in rest {
            let row = span(self.filter, c * taps, taps)?;
            let [[d0], [d1]] = dot::<2, 1>([p0, p1], [row], taps).ok_or(Error::ShapeMismatch)?;
            (*a0, *a1) = (d0, d1);
        }
        let out0 = out0.get_mut(..out_c).ok_or(Error::ShapeMismatch)?;
        let out1 = out1.get_mut(..out_c).ok_or(Error::ShapeMismatch)?;
        requantize_run(self.q, self.bias, 0, acc0, out0, self.vector)?;
        requantize_run(self.q, self.bias, 0, acc1, out1, self.vector)
    }
}

/// The convolution (with `pool`, the pool over it) into `output`.
#[target_feature(enable = "avx2")]
fn run(
    conv: &Conv<'_>,
    pool: Option<&PoolWindow>,
    output: &mut [i8],
    output_shape: Shape,
) -> Result<(), Error> {
    // Zero past the taps, so that the last partial step of `dot` adds nothing.
    let mut patches = [[0i16; MAX_TAPS]; 2];
    let mut acc = [[0i32; MAX_CHANNELS]; 2];
    if conv.taps.div_ceil(STEP) * STEP > MAX_TAPS {
        return Err(Error::CapacityExceeded);
    }
    let out_c = conv.out_c;
    let Some(pool) = pool else {
        // Output pixels two at a time, in row-major order; an odd last one is paired with
        // itself and its copy discarded.
        let width = output_shape.width.max(1);
        let count = output_shape.height * output_shape.width;
        let mut spare = [0i8; MAX_CHANNELS];
        for (pair, out) in output.chunks_mut(2 * out_c).enumerate() {
            let k = 2 * pair;
            let second = (k + 1).min(count.saturating_sub(1));
            for (patch, t) in patches.iter_mut().zip([k, second]) {
                conv.gather(t / width, t % width, patch)?;
            }
            let (out0, out1) = out.split_at_mut(out_c.min(out.len()));
            let out1 = if out1.is_empty() {
                &mut spare[..]
            } else {
                out1
            };
            conv.pair(&patches, &mut acc, out0, out1)?;
        }
        return Ok(());
    };
    let (cs, pw) = (pool.conv_shape, &pool.window);
    let mut values = [[0i8; MAX_CHANNELS]; 2];
    let mut pixels = output.chunks_exact_mut(out_c);
    for py in 0..output_shape.height {
        let (fy0, fy1, cy0) = window_taps(py, pw.stride_h, pw.pad_top, pw.kernel_h, cs.height);
        for px in 0..output_shape.width {
            let (fx0, fx1, cx0) = window_taps(px, pw.stride_w, pw.pad_left, pw.kernel_w, cs.width);
            let Some(out) = pixels.next() else {
                return Ok(());
            };
            // The reference pool starts every channel at −128 (a window wholly in the
            // padding stays there) and clamps at the end.
            out.fill(i8::MIN);
            let cols = fx1 - fx0;
            let count = (fy1 - fy0) * cols;
            let mut k = 0;
            while k < count {
                let second = (k + 1).min(count - 1);
                for (patch, t) in patches.iter_mut().zip([k, second]) {
                    conv.gather(cy0 + t / cols, cx0 + t % cols, patch)?;
                }
                k += 2;
                let [v0, v1] = &mut values;
                conv.pair(&patches, &mut acc, v0, v1)?;
                for ((o, &a), &b) in out.iter_mut().zip(v0.iter()).zip(v1.iter()) {
                    *o = (*o).max(a).max(b);
                }
            }
            for o in out.iter_mut() {
                *o = clamp(*o, pool.act_min, pool.act_max);
            }
        }
    }
    Ok(())
}
