//! # fixnet-app
//!
//! The board-independent part of fixnet's firmware, and the protocol the host tool speaks
//! to it.
//!
//! * [`protocol`]: the [`Request`]/[`Response`] messages (postcard, COBS framing, CRC-32),
//!   shared by the firmware and the host (`fixnet device`, `fixnet qemu`).
//! * [`server`]: [`Server`] answers one response per frame over any `embedded-io` link; a
//!   board supplies the link, a status LED, a delay, a [`CycleCounter`] and a [`Backend`].
//! * [`backend`]: [`Inference`] only classifies; [`Training`] also fine-tunes the layers of
//!   [`train_config`] in fixed point (`fixnet::train::Trainer` over a static train arena),
//!   saves the weights to flash through `fixnet::storage::WeightStore` (two slots, power-cut
//!   safe), loads the newest valid set at start-up and reverts to the factory weights.
//! * [`link`]: [`QueuedLink`], the serial link of the real boards: a blocking transmitter
//!   and a queue their receive interrupt fills.
//! * [`runner`]: [`run`], the boot sequence every board shares (validate the model, set up
//!   fine-tuning on the weight flash if it fits, else classification only, serve).
//! * [`MODEL`]: the model the firmware serves, embedded at build time (the shipped seed CNN,
//!   or `FIXNET_MODEL=path`), with its [`ARENA_SIZE`] and the sizes of the fine-tuning
//!   buffers ([`TRAIN_ARENA_SIZE`], [`PAYLOAD_WORDS`]), all computed at build time.
//!
//! A board's `main` makes its drivers and static buffers and calls [`run`], which does
//! the equivalent of:
//!
//! ```ignore
//! let model = fixnet::Model::from_bytes(fixnet_app::MODEL)?;
//! // classification only:
//! let interp = fixnet::Interpreter::new(&model, arena)?;
//! let mut server = Server::new(interp, uart, led, delay, counter, NoFineTuning, BOARD)?;
//! // or with fine-tuning, the weights kept in two flash slots at `base`:
//! let buffers = TrainingBuffers { train_arena, arena, payload };
//! let training = Training::new(&model, buffers, flash, base, slot_size(ERASE_SIZE))?;
//! let mut server = Server::with_backend(training, uart, led, delay, counter, BOARD)?;
//! server.serve()
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub mod backend;
pub mod link;
pub mod protocol;
pub mod runner;
pub mod server;
mod train_config;

pub use backend::{Backend, Boot, Inference, Scores, SetupError, Training, TrainingBuffers};
pub use link::QueuedLink;
pub use protocol::{
    decode_frame, encode_frame, Classification, CounterUnit, ErrorCode, Info, Request, Response,
    Stats, TrainingInfo, Weights,
};
pub use runner::{run, Event, Peripherals, RunError, WeightRegion};
pub use server::{BoardInfo, CycleCounter, NoFineTuning, Server};
pub use train_config::train_config_for;

/// The firmware's fine-tuning configuration for `model`: [`train_config_for`] in the mode
/// chosen at build time ([`TRAIN_MODE`], from `FIXNET_TRAIN`, `last` by default).
pub fn train_config(model: &fixnet::Model<'_>) -> Option<fixnet::train::TrainConfig> {
    train_config_for(model, TRAIN_MODE)
}

include!(concat!(env!("OUT_DIR"), "/model_info.rs"));

/// The model the firmware serves, aligned as [`fixnet::Model::from_bytes`] needs.
pub static MODEL: &[u8] = fixnet::include_model!(concat!(env!("OUT_DIR"), "/model.fxn"));

/// Bytes of one weight slot for a flash with sectors of `erase_size` bytes: the slot header
/// and a saved weight set ([`PAYLOAD_WORDS`]), rounded up to whole sectors.
pub const fn slot_size(erase_size: usize) -> u32 {
    let bytes = fixnet::storage::PAYLOAD_OFFSET + 4 * PAYLOAD_WORDS;
    (bytes.div_ceil(erase_size) * erase_size) as u32
}
