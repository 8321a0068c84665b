//! The interpreter's entry to the hot kernels: the host AVX2 kernel
//! ([`host`](super::host), `host-simd` feature on x86-64) when it takes the call, otherwise
//! the portable kernel named in each function. Without that feature each function is just
//! the portable kernel.

use super::fast::{FcRequant, PoolWindow};
use super::Requantize;
use crate::{Error, Shape, Window};

/// [`fast::conv2d_pool`](super::fast::conv2d_pool).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_pool(
    input: &[i8],
    input_shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    q: &Requantize,
    pool: Option<&PoolWindow>,
    output: &mut [i8],
    output_shape: Shape,
) -> Result<(), Error> {
    #[cfg(all(feature = "host-simd", target_arch = "x86_64"))]
    if let Some(done) = super::host::conv2d_pool(
        input,
        input_shape,
        filter,
        bias,
        window,
        q,
        pool,
        output,
        output_shape,
    ) {
        return done;
    }
    super::fast::conv2d_pool(
        input,
        input_shape,
        filter,
        bias,
        window,
        q,
        pool,
        output,
        output_shape,
    )
}

/// [`conv2d`](super::conv2d) (the reference kernel, for filters beyond the optimized one's
/// limits).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d(
    input: &[i8],
    input_shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    q: &Requantize,
    output: &mut [i8],
    output_shape: Shape,
) -> Result<(), Error> {
    #[cfg(all(feature = "host-simd", target_arch = "x86_64"))]
    if let Some(done) = super::host::conv2d(
        input,
        input_shape,
        filter,
        bias,
        window,
        q,
        output,
        output_shape,
    ) {
        return done;
    }
    super::conv2d(
        input,
        input_shape,
        filter,
        bias,
        window,
        q,
        output,
        output_shape,
    )
}

/// [`fast::depthwise_conv2d`](super::fast::depthwise_conv2d).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn depthwise_conv2d(
    input: &[i8],
    input_shape: Shape,
    filter: &[i8],
    bias: &[i32],
    window: &Window,
    depth_multiplier: usize,
    q: &Requantize,
    output: &mut [i8],
    output_shape: Shape,
) -> Result<(), Error> {
    #[cfg(all(feature = "host-simd", target_arch = "x86_64"))]
    if let Some(done) = super::host::depthwise_conv2d(
        input,
        input_shape,
        filter,
        bias,
        window,
        depth_multiplier,
        q,
        output,
        output_shape,
    ) {
        return done;
    }
    super::fast::depthwise_conv2d(
        input,
        input_shape,
        filter,
        bias,
        window,
        depth_multiplier,
        q,
        output,
        output_shape,
    )
}

/// [`fast::fully_connected`](super::fast::fully_connected).
#[inline(always)]
pub(crate) fn fully_connected(
    input: &[i8],
    filter: &[i8],
    bias: &[i32],
    q: FcRequant<'_>,
    output: &mut [i8],
) -> Result<(), Error> {
    #[cfg(all(feature = "host-simd", target_arch = "x86_64"))]
    if let Some(done) = super::host::fully_connected(input, filter, bias, q, output) {
        return done;
    }
    super::fast::fully_connected(input, filter, bias, q, output)
}
