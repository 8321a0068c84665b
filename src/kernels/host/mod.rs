//! x86-64 AVX2 kernels for host simulation (`host-simd` feature, x86-64 only; never built for
//! a microcontroller), each bit-exact with the kernel it stands in for.
//!
//! Every kernel returns `None` when it does not handle a call — the CPU lacks AVX2 (or
//! [`set_enabled`] turned them off), a size exceeds its stack buffers, or an argument is
//! malformed — and the caller then runs the portable kernel, which also reports any argument
//! error, so errors are the portable kernels' exactly. [`crate::kernels::dispatch`] does that.
//!
//! Exactness: the int8 products are taken in 16 or 32 bits, where they are exact, and summed in
//! wrapping 32-bit lanes; addition modulo 2^32 is associative and commutative, so any order of
//! summation gives the reference kernels' wrapping accumulator bit for bit. Requantization is the
//! reference's scalar code.

mod conv2d;
mod depthwise;
mod detect;
mod fully_connected;
mod simd;

pub use conv2d::{conv2d, conv2d_pool, MAX_CHANNELS, MAX_TAPS};
pub use depthwise::depthwise_conv2d;
pub use detect::{avx2, set_enabled};
pub use fully_connected::{fully_connected, MAX_INPUTS};
