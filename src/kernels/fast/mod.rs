//! Optimized int8 kernels, each bit-exact with its reference twin in [`crate::kernels`]
//! (checked by `tests/kernels_fast*.rs` over random shapes and quantization parameters).
//!
//! Their inner products ([`dot`]) are Armv7E-M assembly (`SMLAD`/`SXTB16`) on targets with the
//! DSP extension and portable Rust elsewhere (or with the `portable` feature); the loop
//! structure around them, which is where most of the gain on a Cortex-M0+ comes from, is the
//! same on both.

pub mod avg_pool;
pub mod conv2d_pool;
pub mod conv2d_small;
mod conv_mm;
mod conv_patch;
mod conv_requant;
pub mod depthwise;
mod dot;
mod dw3x3;
mod fc_dot;
pub mod fully_connected;
mod requant;

pub use avg_pool::avg_pool;
pub use conv2d_pool::{conv2d_pool, PoolWindow};
pub use depthwise::depthwise_conv2d;
pub use fully_connected::{fully_connected, FcRequant};

/// True when the optimized inner products are the DSP assembly (not the portable Rust).
pub const DSP: bool = cfg!(fixnet_dsp);
