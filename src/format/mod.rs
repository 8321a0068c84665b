//! The fixnet model format, versions 1 and 2 (specified in `docs/format.md`).
//!
//! A model is one little-endian blob: a fixed header, a tensor table, an op table, a data
//! section holding constants (weights, biases, requantization tables) at 4-byte aligned
//! offsets, and a CRC-32 trailer. [`Model`] reads it in place; [`ModelBuilder`] writes it.

mod bytes;
pub mod crc32;
mod model;
mod ops;
mod tensor;
mod validate;
mod writer;

pub use model::Model;
pub use ops::{ConvOp, FullyConnectedOp, Op, OpKind, PoolOp, SoftmaxOp};
pub use tensor::{DType, Dims, Tensor};
pub use writer::ModelBuilder;

/// The first four bytes of every model.
pub const MAGIC: [u8; 4] = *b"FXNM";
/// The newest format version this build reads and writes. Version 2 adds one thing, a
/// Conv2D op fused with the max pool that follows it ([`ConvOp::fused_pool`]); the writer
/// writes the lowest version that can express a model, so unfused models stay version 1.
pub const VERSION: u16 = 2;
/// The oldest format version this build reads.
pub const MIN_VERSION: u16 = 1;
/// Bytes in the header.
pub const HEADER_LEN: usize = 48;
/// Bytes in one tensor record.
pub const TENSOR_RECORD_LEN: usize = 40;
/// Bytes in one op record.
pub const OP_RECORD_LEN: usize = 48;
/// Bytes in the CRC trailer.
pub const CRC_LEN: usize = 4;
/// Most tensors a model may have in this build.
pub const MAX_TENSORS: usize = 64;
/// Most ops a model may have in this build.
pub const MAX_OPS: usize = 32;
/// Tensor index meaning "no tensor" in an op record.
pub const NO_TENSOR: u16 = 0xFFFF;
/// Alignment of every table and constant inside the blob, and of the blob in memory (8, so
/// that f64 tables can be read in place).
pub const ALIGN: usize = 8;

/// Index of a tensor in a model's tensor table.
pub type TensorId = u16;

/// Byte wrapper that gives `include_bytes!` data the alignment a model needs; see
/// [`include_model!`](crate::include_model).
#[repr(C, align(16))]
pub struct Aligned<Bytes: ?Sized>(pub Bytes);

/// Includes a model file into flash with the alignment [`Model::from_bytes`] needs, giving a
/// `&'static [u8]`.
///
/// ```ignore
/// static MODEL: &[u8] = fixnet::include_model!("../models/seed_cnn.fxn");
/// ```
#[macro_export]
macro_rules! include_model {
    ($path:expr) => {{
        static ALIGNED: &$crate::format::Aligned<[u8]> =
            &$crate::format::Aligned(*include_bytes!($path));
        &ALIGNED.0
    }};
}
