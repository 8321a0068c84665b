//! The boot sequence every board runs: validate the embedded model, set up fine-tuning on
//! the board's weight flash when the model can be fine-tuned and two weight slots fit,
//! otherwise classification only, then serve forever. A board's `main` makes its drivers
//! and static buffers and calls [`run`].

use crate::backend::{Boot, SetupError, Training, TrainingBuffers};
use crate::server::{BoardInfo, CycleCounter, NoFineTuning, Server};
use crate::slot_size;
use core::convert::Infallible;
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_io::{Read, Write};
use embedded_storage::nor_flash::NorFlash;
use fixnet::{Interpreter, Model};

/// The drivers a [`Server`] needs besides the model.
pub struct Peripherals<L, P, D, C> {
    /// The serial link to the host.
    pub link: L,
    /// The status LED, lit while a request is being handled.
    pub led: P,
    /// A delay, to back off after link errors.
    pub delay: D,
    /// The counter that times inferences and training steps.
    pub counter: C,
}

/// The flash set aside for saved weights.
pub struct WeightRegion<F> {
    /// The flash, addressed from `base`.
    pub flash: F,
    /// Offset of the first weight slot in `flash`.
    pub base: u32,
    /// Bytes of the region from `base`.
    pub size: usize,
    /// The flash's erase granularity (a weight slot is whole erase units).
    pub erase_size: usize,
}

/// What [`run`] reports on its way to serving, for the board to log as it can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The model was validated.
    Model {
        /// Bytes of the model.
        bytes: usize,
        /// Its CRC-32.
        crc: u32,
        /// Arena bytes it needs.
        arena: usize,
    },
    /// Fine-tuning is on; the weights it starts from.
    FineTuning(Boot),
    /// The model has nothing to fine-tune: classification only.
    NothingToTrain,
    /// Two weight slots do not fit the weight region: classification only.
    NoRoom {
        /// Bytes of one slot.
        slot: u32,
        /// Bytes of the region.
        region: usize,
    },
    /// The board has no weight flash: classification only.
    NoFlash,
}

/// Why [`run`] could not start serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunError<E> {
    /// The embedded model is invalid, or does not fit the arena or the protocol.
    Model(fixnet::Error),
    /// Fine-tuning could not be set up on the weight region.
    Setup(SetupError<E>),
}

/// Validates `model`, sets up fine-tuning on `flash` if it can (see [`Event`]), reports each
/// decision to `log`, and serves the protocol forever. Returns only if setting up fails.
///
/// `buffers` are the board's statics: the interpreter's arena serves classification in
/// either case, the train arena and the payload only fine-tuning.
pub fn run<L, P, D, C, F>(
    model: &[u8],
    mut board: BoardInfo,
    peripherals: Peripherals<L, P, D, C>,
    buffers: TrainingBuffers<'_>,
    flash: Option<WeightRegion<F>>,
    mut log: impl FnMut(Event),
) -> Result<Infallible, RunError<F::Error>>
where
    L: Read + Write,
    P: OutputPin,
    D: DelayNs,
    C: CycleCounter,
    F: NorFlash,
{
    let model = Model::from_bytes(model).map_err(RunError::Model)?;
    log(Event::Model {
        bytes: model.len(),
        crc: model.crc(),
        arena: model.arena_size(),
    });
    let trainable = crate::train_config(&model).is_some() && !buffers.train_arena.is_empty();
    match flash {
        Some(region) if trainable => {
            let slot = slot_size(region.erase_size);
            if (slot as usize).saturating_mul(2) <= region.size {
                board.flash_bytes = 2 * slot;
                board.flash_erase_bytes = region.erase_size as u32;
                return serve_training(&model, board, peripherals, buffers, region, slot, log);
            }
            log(Event::NoRoom {
                slot,
                region: region.size,
            });
        }
        Some(_) => log(Event::NothingToTrain),
        None if !trainable => log(Event::NothingToTrain),
        None => log(Event::NoFlash),
    }
    serve_inference(&model, board, peripherals, buffers.arena)
}

// The two ways of serving are separate functions, never inlined: the trainer makes the
// fine-tuning server several kilobytes large, and a board that only classifies (or a 16 KiB
// one) must not reserve that stack frame too.

/// Serves with fine-tuning, the weights in two slots of `slot` bytes of `region`.
#[inline(never)]
fn serve_training<L, P, D, C, F>(
    model: &Model<'_>,
    board: BoardInfo,
    peripherals: Peripherals<L, P, D, C>,
    buffers: TrainingBuffers<'_>,
    region: WeightRegion<F>,
    slot: u32,
    mut log: impl FnMut(Event),
) -> Result<Infallible, RunError<F::Error>>
where
    L: Read + Write,
    P: OutputPin,
    D: DelayNs,
    C: CycleCounter,
    F: NorFlash,
{
    let Peripherals {
        link,
        led,
        delay,
        counter,
    } = peripherals;
    let training =
        Training::new(model, buffers, region.flash, region.base, slot).map_err(RunError::Setup)?;
    log(Event::FineTuning(training.boot()));
    let mut server = Server::with_backend(training, link, led, delay, counter, board)
        .map_err(RunError::Model)?;
    server.serve()
}

/// Serves classification only.
#[inline(never)]
fn serve_inference<L, P, D, C, E>(
    model: &Model<'_>,
    board: BoardInfo,
    peripherals: Peripherals<L, P, D, C>,
    arena: &mut [u8],
) -> Result<Infallible, RunError<E>>
where
    L: Read + Write,
    P: OutputPin,
    D: DelayNs,
    C: CycleCounter,
{
    let Peripherals {
        link,
        led,
        delay,
        counter,
    } = peripherals;
    let interp = Interpreter::new(model, arena).map_err(RunError::Model)?;
    let mut server = Server::new(interp, link, led, delay, counter, NoFineTuning, board)
        .map_err(RunError::Model)?;
    server.serve()
}
