//! The serial protocol between a board and the host tool.
//!
//! Each message is a [`postcard`] encoding of a [`Request`] or [`Response`], followed by the
//! little-endian CRC-32 (zlib polynomial, [`fixnet::format::crc32::crc32`]) of those bytes, the whole
//! COBS-encoded and terminated by one `0x00` byte:
//!
//! ```text
//! COBS( postcard(message) ‖ crc32_le(postcard(message)) ) ‖ 0x00
//! ```
//!
//! COBS guarantees that `0x00` only ever marks the end of a frame, so a receiver that lost
//! bytes (or received garbage) resynchronises at the next zero. Every request gets exactly
//! one response, in order. Frames longer than [`MAX_FRAME`] encoded bytes are refused.

use fixnet::format::crc32::crc32;
use serde::{Deserialize, Serialize};

/// Version of this protocol; bumped on any incompatible change of the messages.
pub const PROTOCOL_VERSION: u16 = 3;

/// Most encoded bytes of one frame, not counting the `0x00` delimiter. A 28×28 image with a
/// label, its length prefix, tag and CRC take 793 bytes before COBS, 797 after.
pub const MAX_FRAME: usize = 1024;

/// Most classes a classification reports.
pub const MAX_CLASSES: usize = 16;

/// Bytes of the CRC-32 trailer.
const CRC_BYTES: usize = 4;

/// A request from the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request<'a> {
    /// Describe the board, the firmware and the model: answered by [`Response::Info`].
    Info,
    /// Classify one grey image (one byte per pixel, 0 = background, as MNIST; as many pixels
    /// as the model's input has): answered by [`Response::Classified`].
    Classify {
        /// Pixels, row by row.
        image: &'a [u8],
    },
    /// One fine-tuning step on a labelled image: answered by [`Response::Trained`]. The
    /// weights change once a mini-batch is complete ([`TrainingInfo::batch_size`] samples).
    TrainSample {
        /// Pixels, row by row.
        image: &'a [u8],
        /// The true class.
        label: u8,
    },
    /// Persist the current (fine-tuned) weights to flash, after applying a partial
    /// mini-batch: answered by [`Response::Saved`].
    Save,
    /// Forget fine-tuning, in RAM and in flash, and go back to the weights the firmware was
    /// built with: answered by [`Response::Reverted`].
    Revert,
    /// Counters since start-up: answered by [`Response::Stats`].
    Stats,
}

/// What the board's instruction/cycle counter counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterUnit {
    /// Guest instructions (an emulator such as QEMU with `-icount`).
    Instructions,
    /// CPU clock cycles (a real core's cycle counter).
    Cycles,
}

/// The board, firmware and model, as answered to [`Request::Info`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Board name, e.g. `qemu-mps2-an386`.
    pub board: heapless::String<32>,
    /// Firmware version (the board crate's package version).
    pub firmware_version: heapless::String<16>,
    /// [`PROTOCOL_VERSION`] of the firmware.
    pub protocol_version: u16,
    /// Bytes of the embedded model.
    pub model_bytes: u32,
    /// CRC-32 of the embedded model (its trailer).
    pub model_crc: u32,
    /// Arena bytes the model's plan needs.
    pub arena_bytes: u32,
    /// Input elements (pixels) the model takes.
    pub input_len: u32,
    /// Output elements (classes) the model gives.
    pub classes: u32,
    /// Bytes of flash for persisted weights (0 without storage).
    pub flash_bytes: u32,
    /// Erase granularity of that flash (0 without storage).
    pub flash_erase_bytes: u32,
    /// What the `count` of a classification counts.
    pub counter: CounterUnit,
    /// How the firmware fine-tunes; `None`: train-sample, save and revert are not supported.
    pub training: Option<TrainingInfo>,
    /// Where the weights in use come from.
    pub weights: Weights,
    /// [`MAX_FRAME`] of the firmware.
    pub max_frame: u32,
}

/// How a firmware fine-tunes (see `fixnet::train` and `docs/training.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// What is trained, as `fixnet finetune --train` names it: `last`, `biases` or `conv:K`
    /// (`fixnet::train::TrainMode`; chosen when the firmware is built, `FIXNET_TRAIN`).
    pub mode: heapless::String<16>,
    /// First op whose weights (and biases) are trained.
    pub train_from: u16,
    /// First op whose biases are trained.
    pub bias_from: u16,
    /// Samples per mini-batch: the weights change once every this many train-sample
    /// requests, and on save.
    pub batch_size: u16,
    /// Learning rate in Q16 (65536 = 1.0).
    pub learning_rate_q16: u32,
    /// Pull towards the model's own weights per update, Q16 (`TrainConfig::anchor_q16`).
    pub anchor_q16: u32,
    /// Bytes of the train arena (the model's inference arena included).
    pub train_arena_bytes: u32,
    /// Bytes of one saved weight set.
    pub payload_bytes: u32,
}

/// Where the weights in use come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    /// Generation of the saved set they were loaded from or last saved as; 0: the factory
    /// weights (the ones the firmware was built with).
    pub generation: u32,
    /// Training steps since then (not saved yet).
    pub steps: u32,
    /// Of those, samples in the unfinished mini-batch (their update is applied when it
    /// is complete, or on save).
    pub pending: u16,
}

/// The result of [`Request::Classify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    /// The winning class (the first one on ties).
    pub class: u8,
    /// Every quantized int8 output of the model.
    pub scores: heapless::Vec<i8, MAX_CLASSES>,
    /// Instructions or cycles (see [`Info::counter`]) spent quantizing the input and running
    /// the model.
    pub count: u32,
}

/// Counters since start-up, as answered to [`Request::Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Frames answered before this reply (including those answered with an error).
    pub requests: u32,
    /// Classifications run.
    pub inferences: u32,
    /// Fine-tuning steps run.
    pub training_steps: u32,
    /// Successful saves.
    pub saves: u32,
    /// Error replies sent.
    pub errors: u32,
    /// Where the weights in use come from.
    pub weights: Weights,
}

/// Why a request failed. The firmware keeps serving after any of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The frame is not valid COBS.
    Cobs,
    /// The frame is too short to hold a message and its CRC (a truncated frame).
    TooShort,
    /// The CRC does not match the frame's bytes.
    Crc,
    /// The frame was longer than [`MAX_FRAME`]; its bytes were dropped.
    Oversized,
    /// The CRC is right but the bytes are not a request this firmware knows (an unknown
    /// message tag, a bad field or trailing bytes).
    Malformed,
    /// The image has the wrong number of pixels for the model.
    BadImage {
        /// Pixels the model takes.
        expected: u32,
        /// Pixels received.
        received: u32,
    },
    /// The label is not a class of the model.
    BadLabel,
    /// The model failed to run: only a model the firmware cannot serve (validated at
    /// start-up, so not expected in practice) does this.
    Model,
    /// This firmware cannot fine-tune or persist weights.
    Unsupported,
    /// Reading, erasing or writing the flash failed.
    Storage,
}

/// All replies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Info`].
    Info(Info),
    /// Answer to [`Request::Classify`].
    Classified(Classification),
    /// Answer to [`Request::TrainSample`].
    Trained {
        /// The sample's cross-entropy loss before the step.
        loss: f32,
        /// Instructions or cycles (see [`Info::counter`]) the step took, forward and backward
        /// pass and (every mini-batch) the weight update.
        count: u32,
        /// The weights after the step.
        weights: Weights,
    },
    /// Answer to [`Request::Save`].
    Saved {
        /// Generation number of the record now in flash.
        generation: u32,
    },
    /// Answer to [`Request::Revert`].
    Reverted,
    /// Answer to [`Request::Stats`].
    Stats(Stats),
    /// The request failed.
    Error(ErrorCode),
}

/// Why a message could not be framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The message, its CRC and COBS overhead do not fit the buffers given.
    BufferTooSmall,
}

impl core::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("message does not fit the frame buffer")
    }
}

/// Most bytes COBS may add to `n` bytes of payload.
pub const fn cobs_overhead(n: usize) -> usize {
    n / 254 + 1
}

/// Frames `message` into `out`: postcard bytes and CRC (built in `scratch`), COBS, then the
/// `0x00` delimiter. Returns the frame, delimiter included.
pub fn encode_frame<'o, T: Serialize>(
    message: &T,
    scratch: &mut [u8],
    out: &'o mut [u8],
) -> Result<&'o [u8], EncodeError> {
    let payload_len = postcard::to_slice(message, scratch)
        .map_err(|_| EncodeError::BufferTooSmall)?
        .len();
    let crc = crc32(&scratch[..payload_len]).to_le_bytes();
    let raw = scratch
        .get_mut(..payload_len + CRC_BYTES)
        .ok_or(EncodeError::BufferTooSmall)?;
    raw[payload_len..].copy_from_slice(&crc);
    let n = cobs::try_encode(raw, out).map_err(|_| EncodeError::BufferTooSmall)?;
    *out.get_mut(n).ok_or(EncodeError::BufferTooSmall)? = 0;
    Ok(&out[..=n])
}

/// Decodes one frame (without its `0x00` delimiter) in place and parses the message.
///
/// The message may borrow from `frame` (an image in a [`Request`] does).
pub fn decode_frame<'f, T: Deserialize<'f>>(frame: &'f mut [u8]) -> Result<T, ErrorCode> {
    let n = cobs::decode_in_place(frame).map_err(|_| ErrorCode::Cobs)?;
    // One tag byte at least, then the CRC.
    if n < 1 + CRC_BYTES {
        return Err(ErrorCode::TooShort);
    }
    let (payload, crc) = frame[..n].split_at(n - CRC_BYTES);
    if crc32(payload).to_le_bytes() != crc {
        return Err(ErrorCode::Crc);
    }
    match postcard::take_from_bytes(payload) {
        Ok((message, [])) => Ok(message),
        _ => Err(ErrorCode::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_protects_every_byte() {
        let mut scratch = [0u8; 64];
        let mut out = [0u8; 64];
        let frame = encode_frame(&Request::Stats, &mut scratch, &mut out)
            .unwrap()
            .to_vec();
        for i in 0..frame.len() - 1 {
            for bit in 0..8 {
                let mut bad = frame.clone();
                bad[i] ^= 1 << bit;
                let end = bad.len() - 1;
                let r: Result<Request<'_>, _> = decode_frame(&mut bad[..end]);
                assert!(r.is_err(), "flip of byte {i} bit {bit} went unnoticed");
            }
        }
    }
}
