//! The one error type of the core.

/// Everything that can go wrong in the core. Each way a model can be malformed has its own
/// variant so that a user (or a fuzzer) can tell what was wrong with the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The blob does not start with the fixnet magic `FXNM`.
    BadMagic,
    /// The format version is not one this build understands.
    UnsupportedVersion(u16),
    /// The blob is shorter than its header or its declared length says.
    Truncated,
    /// The CRC-32 over the blob does not match the stored one.
    CrcMismatch {
        /// CRC stored in the blob.
        stored: u32,
        /// CRC computed over the blob.
        computed: u32,
    },
    /// The blob (or a table in it) is not 4-byte aligned in memory.
    Misaligned,
    /// A header field is inconsistent (header size, table sizes, counts).
    BadHeader,
    /// An offset or length points outside the blob or its section.
    OffsetOutOfRange,
    /// An op code this build does not know, or an op it was built without (the core's
    /// `op-…` cargo features).
    UnknownOp(u8),
    /// A tensor data type this build does not know, or the wrong one for its use.
    BadDataType,
    /// A tensor index is out of range, or a tensor is used in a role it cannot play.
    BadTensorIndex(u16),
    /// Shapes of an op's tensors do not agree with each other or with the op's parameters.
    InconsistentShape,
    /// An op parameter is out of range (zero stride, bad padding code, min above max…).
    InvalidParameter,
    /// Quantization parameters are missing or inconsistent (e.g. wrong per-channel count).
    BadQuantization,
    /// The memory plan stored in the model is not safe: tensors that are live at the same
    /// time overlap in the arena, or a tensor lies outside it.
    BadPlan,
    /// The op list is not in execution order (a tensor is read before it is written).
    BadOpOrder,
    /// The model has more tensors or ops than this build's fixed capacity.
    CapacityExceeded,
    /// The arena given to the interpreter is smaller than the model needs.
    ArenaTooSmall {
        /// Bytes the model's plan needs.
        needed: usize,
        /// Bytes provided.
        provided: usize,
    },
    /// A buffer passed to a kernel or helper has the wrong length for its shape.
    ShapeMismatch,
    /// The output buffer given to the model writer is too small.
    BufferTooSmall {
        /// Bytes the encoded model needs.
        needed: usize,
    },
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::BadMagic => f.write_str("not a fixnet model (bad magic)"),
            Error::UnsupportedVersion(v) => write!(f, "unsupported model format version {v}"),
            Error::Truncated => f.write_str("model is truncated"),
            Error::CrcMismatch { stored, computed } => {
                write!(
                    f,
                    "model CRC mismatch (stored {stored:#010x}, computed {computed:#010x})"
                )
            }
            Error::Misaligned => f.write_str("model data is not 4-byte aligned"),
            Error::BadHeader => f.write_str("model header is inconsistent"),
            Error::OffsetOutOfRange => f.write_str("an offset in the model points outside it"),
            Error::UnknownOp(code) => write!(f, "op code {code} is unknown or not built in"),
            Error::BadDataType => f.write_str("unsupported or wrong tensor data type"),
            Error::BadTensorIndex(i) => write!(f, "bad tensor index {i}"),
            Error::InconsistentShape => f.write_str("inconsistent tensor shapes"),
            Error::InvalidParameter => f.write_str("invalid op parameter"),
            Error::BadQuantization => f.write_str("inconsistent quantization parameters"),
            Error::BadPlan => f.write_str("unsafe memory plan (overlapping live tensors)"),
            Error::BadOpOrder => f.write_str("ops are not in execution order"),
            Error::CapacityExceeded => f.write_str("model exceeds this build's capacity"),
            Error::ArenaTooSmall { needed, provided } => {
                write!(f, "arena too small: need {needed} bytes, got {provided}")
            }
            Error::ShapeMismatch => f.write_str("buffer length does not match its shape"),
            Error::BufferTooSmall { needed } => {
                write!(f, "output buffer too small: need {needed} bytes")
            }
        }
    }
}

impl core::error::Error for Error {}
