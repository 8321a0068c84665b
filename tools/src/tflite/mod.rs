//! `.tflite` import: full-integer int8 models to the [IR](crate::ir).
//!
//! Supported: CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, AVERAGE_POOL_2D, FULLY_CONNECTED
//! (per-tensor and per-channel), SOFTMAX and RESHAPE on int8 tensors, batch 1. The constant
//! shape arithmetic TF emits for `Flatten` on a dynamic batch (SHAPE → STRIDED_SLICE → PACK →
//! RESHAPE) is evaluated at import time and disappears. Anything else is an error naming the
//! op and its index.

mod fold;
mod import;
pub mod opcodes;
pub mod schema;

pub use import::import;
