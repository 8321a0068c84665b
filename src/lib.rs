//! # fixnet
//!
//! A `no_std`, allocation-free int8 neural-network runtime for microcontrollers.
//!
//! * Quantization follows TFLite's int8 scheme exactly (per-channel symmetric weights, int32
//!   bias, fixed-point requantization), so outputs are bit-identical to TFLite's reference
//!   kernels.
//! * Models live in flash in the fixnet format ([`format`], specified in `docs/format.md`),
//!   are validated once at load and are read zero-copy.
//! * The memory plan is made ahead of time: inference needs one caller-provided arena of
//!   [`Model::arena_size`] bytes and nothing else.
//!
//! ```no_run
//! # fn demo(bytes: &[u8], image: &[u8; 784]) -> Result<(), fixnet::Error> {
//! use fixnet::{Interpreter, Model};
//! let model = Model::from_bytes(bytes)?;
//! let mut arena = [0u8; 32 * 1024];
//! let mut interp = Interpreter::new(&model, &mut arena)?;
//! interp.set_input_grey(image)?;
//! interp.invoke()?;
//! let (class, score) = interp.top1();
//! # let _ = (class, score); Ok(()) }
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::cast_lossless)]

#[cfg(target_endian = "big")]
compile_error!(
    "fixnet reads little-endian model data in place and supports little-endian targets only"
);

pub mod error;
pub mod float;
pub mod format;
pub mod interpreter;
pub mod kernels;
pub mod overlay;
pub mod plan;
pub mod quant;
pub mod shape;
pub mod storage;
pub mod train;

pub use error::Error;
pub use format::{Model, ModelBuilder};
pub use interpreter::Interpreter;
pub use shape::{Padding, Shape, Window};
