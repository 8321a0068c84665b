//! AVX2 int8 depthwise convolution (depth multiplier 1), bit-exact with
//! [`depthwise_conv2d`](crate::kernels::depthwise_conv2d).
//!
//! Eight channels at a time in 32-bit lanes: each tap's eight inputs and weights are widened
//! to 32 bits and multiplied with `_mm256_mullo_epi32`, the wrapping product of the reference,
//! so any input offset is exact. Channels past the last multiple of eight take the scalar
//! loop.

use super::detect::avx2;
use super::simd::{requantize_run, shifts_in_range};
use crate::kernels::{at, check_bias, span, window_taps, Requantize};
use crate::{Error, Shape, Window};
use core::arch::x86_64::*;

const LANES: usize = 8;

/// Most channels this kernel takes (its accumulators are on the stack).
pub const MAX_CHANNELS: usize = 2048;

/// [`depthwise_conv2d`](crate::kernels::depthwise_conv2d) with AVX2, or `None` when it does
/// not take the call (see [the module](super)): only a depth multiplier of 1 and at most
/// [`MAX_CHANNELS`] channels.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d(
    input: &[i8],
    input_shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    depth_multiplier: usize,
    q: &Requantize,
    output: &mut [i8],
    output_shape: Shape,
) -> Option<Result<(), Error>> {
    if !avx2() || depth_multiplier != 1 {
        return None;
    }
    let w = window;
    if w.kernel_h == 0 || w.kernel_w == 0 || w.stride_h == 0 || w.stride_w == 0 {
        return None;
    }
    input_shape.check_len(input.len()).ok()?;
    output_shape.check_len(output.len()).ok()?;
    let c = input_shape.channels;
    if output_shape.channels != c || c == 0 || c > MAX_CHANNELS {
        return None;
    }
    if w.kernel_h.checked_mul(w.kernel_w)?.checked_mul(c)? != filter.len() {
        return None;
    }
    check_bias(bias, c).ok()?;
    q.check(c).ok()?;
    // SAFETY: `avx2()` said the CPU runs AVX2.
    Some(unsafe {
        run(
            input,
            input_shape,
            filter,
            bias,
            window,
            q,
            output,
            output_shape,
        )
    })
}

#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
fn run(
    input: &[i8],
    shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    q: &Requantize,
    output: &mut [i8],
    output_shape: Shape,
) -> Result<(), Error> {
    let c = shape.channels;
    let offset = _mm256_set1_epi32(q.input_offset);
    let blocks = c / LANES;
    let vector = shifts_in_range(q.shifts);
    // Accumulators of one output pixel.
    let mut all = [0i32; MAX_CHANNELS];
    let mut pixels = output.chunks_exact_mut(c);
    for oy in 0..output_shape.height {
        let (fy0, fy1, iy0) = window_taps(
            oy,
            window.stride_h,
            window.pad_top,
            window.kernel_h,
            shape.height,
        );
        for ox in 0..output_shape.width {
            let (fx0, fx1, ix0) = window_taps(
                ox,
                window.stride_w,
                window.pad_left,
                window.kernel_w,
                shape.width,
            );
            let Some(pixel) = pixels.next() else {
                return Ok(());
            };
            let acc = all.get_mut(..c).ok_or(Error::ShapeMismatch)?;
            for block in 0..blocks {
                let ch = block * LANES;
                let mut sum = _mm256_setzero_si256();
                for (fy, iy) in (fy0..fy1).zip(iy0..) {
                    for (fx, ix) in (fx0..fx1).zip(ix0..) {
                        let x = span(input, (iy * shape.width + ix) * c + ch, LANES)?;
                        let f = span(filter, (fy * window.kernel_w + fx) * c + ch, LANES)?;
                        // SAFETY: both spans hold LANES = 8 bytes, what `_mm_loadl_epi64` reads.
                        let (x, f) = unsafe {
                            (
                                _mm_loadl_epi64(x.as_ptr().cast()),
                                _mm_loadl_epi64(f.as_ptr().cast()),
                            )
                        };
                        let x = _mm256_add_epi32(_mm256_cvtepi8_epi32(x), offset);
                        let f = _mm256_cvtepi8_epi32(f);
                        sum = _mm256_add_epi32(sum, _mm256_mullo_epi32(x, f));
                    }
                }
                let lanes = acc.get_mut(ch..ch + LANES).ok_or(Error::ShapeMismatch)?;
                // SAFETY: `lanes` holds eight i32, one YMM register.
                unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), sum) };
            }
            for ch in blocks * LANES..c {
                let mut a: i32 = 0;
                for (fy, iy) in (fy0..fy1).zip(iy0..) {
                    for (fx, ix) in (fx0..fx1).zip(ix0..) {
                        let x = i32::from(at(input, (iy * shape.width + ix) * c + ch)?);
                        let f = i32::from(at(filter, (fy * window.kernel_w + fx) * c + ch)?);
                        a = a.wrapping_add(f.wrapping_mul(x.wrapping_add(q.input_offset)));
                    }
                }
                *acc.get_mut(ch).ok_or(Error::ShapeMismatch)? = a;
            }
            // The whole pixel at once, so that the vector requantization meets long runs.
            requantize_run(q, bias, 0, acc, pixel, vector)?;
        }
    }
    Ok(())
}
