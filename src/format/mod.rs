//! The fixnet model format, versions 1 to 3 (specified in `docs/format.md`).
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
pub use ops::{
    AddOp, ConcatOp, ConvOp, FullyConnectedOp, Inputs, LookupFunction, LookupOp, MeanOp, MulOp, Op,
    OpKind, PadOp, PoolOp, SoftmaxOp,
};
pub use tensor::{DType, Dims, Tensor};
pub use writer::{encoded_len, plan_arena, write_model, BoundedBuilder, ModelBuilder};

/// The first four bytes of every model.
pub const MAGIC: [u8; 4] = *b"FXNM";
/// The format version this build writes (it reads versions [`MIN_VERSION`] to this one).
/// Version 2 added a Conv2D op fused with the max pool that follows it
/// ([`ConvOp::fused_pool`]); version 3 makes models graphs (ops with several inputs, tensors
/// with several readers, no count limits) and stores each activation's lifetime in its
/// record, so that a reader checks the memory plan without any table of its own.
pub const VERSION: u16 = 3;
/// The oldest format version this build reads: 1 with the `legacy-format` feature (on by
/// default), else 3.
pub const MIN_VERSION: u16 = if cfg!(feature = "legacy-format") {
    1
} else {
    3
};
/// Bytes in the header.
pub const HEADER_LEN: usize = 48;
/// Bytes in one tensor record.
pub const TENSOR_RECORD_LEN: usize = 40;
/// Bytes in one op record.
pub const OP_RECORD_LEN: usize = 48;
/// Bytes in the CRC trailer.
pub const CRC_LEN: usize = 4;
/// Most tensors a version-1 or version-2 model may have (those versions' own limit; version 3
/// has none beyond the 16-bit counts).
pub const LEGACY_MAX_TENSORS: usize = 64;
/// Most ops a version-1 or version-2 model may have.
pub const LEGACY_MAX_OPS: usize = 32;
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
