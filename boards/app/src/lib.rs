//! # fixnet-app
//!
//! The board-independent part of fixnet's firmware, and the protocol the host tool speaks
//! to it.
//!
//! * [`protocol`]: the [`Request`]/[`Response`] messages (postcard, COBS framing, CRC-32),
//!   shared by the firmware and the host (`fixnet device`, `fixnet qemu`).
//! * [`server`]: [`Server`] answers one response per frame over any `embedded-io` link; a
//!   board supplies the link, a status LED, a delay, a [`CycleCounter`] and optionally a
//!   [`FineTuning`] backend.
//! * [`MODEL`]: the model the firmware serves, embedded at build time (the shipped seed CNN,
//!   or `FIXNET_MODEL=path`), with its [`ARENA_SIZE`].
//!
//! A board's `main` is then a few lines:
//!
//! ```ignore
//! let model = fixnet::Model::from_bytes(fixnet_app::MODEL)?;
//! let interp = fixnet::Interpreter::new(&model, arena)?;
//! let mut server = Server::new(interp, uart, led, delay, counter, NoFineTuning, BOARD)?;
//! server.serve()
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(missing_docs)]

pub mod protocol;
pub mod server;

pub use protocol::{
    decode_frame, encode_frame, Classification, CounterUnit, ErrorCode, Info, Request, Response,
    Stats,
};
pub use server::{BoardInfo, CycleCounter, FineTuning, NoFineTuning, Server};

include!(concat!(env!("OUT_DIR"), "/model_info.rs"));

/// The model the firmware serves, aligned as [`fixnet::Model::from_bytes`] needs.
pub static MODEL: &[u8] = fixnet::include_model!(concat!(env!("OUT_DIR"), "/model.fxn"));
