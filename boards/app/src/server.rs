//! The firmware's main loop: read frames from the serial link, answer each one.

use crate::protocol::{
    decode_frame, encode_frame, Classification, CounterUnit, ErrorCode, Info, Request, Response,
    Stats, MAX_CLASSES, MAX_FRAME, PROTOCOL_VERSION,
};
use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_io::{Read, Write};
use fixnet::Interpreter;

/// Bytes of one encoded response; the largest, [`Info`], needs about 100.
const RESPONSE_BYTES: usize = 256;

/// A free-running counter of instructions or cycles, for timing inferences.
pub trait CycleCounter {
    /// What [`CycleCounter::elapsed`] counts.
    fn unit(&self) -> CounterUnit;
    /// The counter now, in the counter's own (possibly wrapping, possibly scaled) units.
    fn now(&mut self) -> u32;
    /// Instructions or cycles between two readings of [`CycleCounter::now`]. The default
    /// suits a 32-bit up-counter such as the Cortex-M DWT cycle counter.
    fn elapsed(&self, start: u32, end: u32) -> u32 {
        end.wrapping_sub(start)
    }
}

/// Fine-tuning and persistence of the weights, behind the train-sample, save and revert
/// requests. Every method defaults to [`ErrorCode::Unsupported`].
pub trait FineTuning {
    /// Whether the other methods do anything (reported in [`Info::training`]).
    fn supported(&self) -> bool {
        false
    }
    /// One training step on `image` with class `label`: the loss before the step and the
    /// number of steps since the weights were last reverted.
    fn train(
        &mut self,
        interp: &mut Interpreter<'_, '_>,
        image: &[u8],
        label: u8,
    ) -> Result<(f32, u32), ErrorCode> {
        let _ = (interp, image, label);
        Err(ErrorCode::Unsupported)
    }
    /// Persists the weights; returns the generation number now in flash.
    fn save(&mut self) -> Result<u32, ErrorCode> {
        Err(ErrorCode::Unsupported)
    }
    /// Goes back to the weights the firmware was built with, in RAM and in flash.
    fn revert(&mut self) -> Result<(), ErrorCode> {
        Err(ErrorCode::Unsupported)
    }
}

/// No fine-tuning: train-sample, save and revert answer [`ErrorCode::Unsupported`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFineTuning;

impl FineTuning for NoFineTuning {}

/// What a board tells the host about itself in [`Info`].
#[derive(Clone, Copy, Debug)]
pub struct BoardInfo {
    /// Board name, at most 32 bytes (longer names are cut).
    pub name: &'static str,
    /// Firmware version, at most 16 bytes; usually `env!("CARGO_PKG_VERSION")`.
    pub firmware_version: &'static str,
    /// Bytes of flash set aside for weights (0 without storage).
    pub flash_bytes: u32,
    /// Erase granularity of that flash (0 without storage).
    pub flash_erase_bytes: u32,
}

/// The board's peripherals and the model, everything a request may touch except the link.
struct Core<'m, 'a, P, D, C, F> {
    interp: Interpreter<'m, 'a>,
    led: P,
    delay: D,
    counter: C,
    tuning: F,
    board: BoardInfo,
    stats: Stats,
}

/// Serves the protocol over `link`: one [`Response`] per frame received, whatever the frame.
///
/// Generic over the serial link (`embedded-io`), a status LED (on while a request is being
/// handled), a delay (to back off after link errors), an instruction/cycle counter and the
/// fine-tuning backend, so that each board only supplies drivers.
pub struct Server<'m, 'a, L, P, D, C, F = NoFineTuning> {
    link: L,
    rx: [u8; MAX_FRAME],
    rx_len: usize,
    /// The current frame outgrew `rx`; its bytes are dropped up to the next delimiter.
    overflow: bool,
    core: Core<'m, 'a, P, D, C, F>,
}

impl<'m, 'a, L, P, D, C, F> Server<'m, 'a, L, P, D, C, F>
where
    L: Read + Write,
    P: OutputPin,
    D: DelayNs,
    C: CycleCounter,
    F: FineTuning,
{
    /// A server for the model `interp` runs.
    ///
    /// Fails with [`fixnet::Error::CapacityExceeded`] if the model has more than
    /// [`MAX_CLASSES`] outputs.
    pub fn new(
        interp: Interpreter<'m, 'a>,
        link: L,
        led: P,
        delay: D,
        counter: C,
        tuning: F,
        board: BoardInfo,
    ) -> Result<Self, fixnet::Error> {
        if interp.output().len() > MAX_CLASSES {
            return Err(fixnet::Error::CapacityExceeded);
        }
        Ok(Server {
            link,
            rx: [0; MAX_FRAME],
            rx_len: 0,
            overflow: false,
            core: Core {
                interp,
                led,
                delay,
                counter,
                tuning,
                board,
                stats: Stats::default(),
            },
        })
    }

    /// Serves forever. Link errors are counted and backed off from, never fatal.
    pub fn serve(&mut self) -> ! {
        loop {
            match self.poll() {
                Ok(0) | Err(_) => self.core.delay.delay_ms(1),
                Ok(_) => {}
            }
        }
    }

    /// Reads what the link has (blocking as the link's `read` does) and answers every frame
    /// completed by it. Returns the number of bytes read; 0 means the link had none (or, for
    /// an in-memory link, is exhausted).
    pub fn poll(&mut self) -> Result<usize, L::Error> {
        let mut buf = [0u8; 64];
        let n = self.link.read(&mut buf)?;
        for &byte in &buf[..n] {
            self.push(byte)?;
        }
        Ok(n)
    }

    /// Counters since start-up.
    pub fn stats(&self) -> Stats {
        self.core.stats
    }

    /// The link, e.g. to look at what an in-memory link received.
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    fn push(&mut self, byte: u8) -> Result<(), L::Error> {
        if byte != 0 {
            match self.rx.get_mut(self.rx_len) {
                Some(slot) => {
                    *slot = byte;
                    self.rx_len += 1;
                }
                None => self.overflow = true,
            }
            return Ok(());
        }
        let (len, overflow) = (self.rx_len, self.overflow);
        self.rx_len = 0;
        self.overflow = false;
        let response = if overflow {
            self.core.count(Response::Error(ErrorCode::Oversized))
        } else if len == 0 {
            // An empty frame: a host flushing the line with delimiters. Nothing to answer.
            return Ok(());
        } else {
            self.core.handle(&mut self.rx[..len])
        };
        self.send(&response)
    }

    fn send(&mut self, response: &Response) -> Result<(), L::Error> {
        let mut scratch = [0u8; RESPONSE_BYTES];
        let mut out = [0u8; RESPONSE_BYTES + RESPONSE_BYTES / 254 + 2];
        // Every response fits by construction (bounded strings and vectors); should one not,
        // the host still gets an answer rather than silence.
        let frame = match encode_frame(response, &mut scratch, &mut out) {
            Ok(frame) => frame.len(),
            Err(_) => encode_frame(
                &Response::Error(ErrorCode::Malformed),
                &mut scratch,
                &mut out,
            )
            .map(|f| f.len())
            .unwrap_or(0),
        };
        self.link.write_all(&out[..frame])?;
        self.link.flush()
    }
}

impl<P, D, C, F> Core<'_, '_, P, D, C, F>
where
    P: OutputPin,
    D: DelayNs,
    C: CycleCounter,
    F: FineTuning,
{
    fn handle(&mut self, frame: &mut [u8]) -> Response {
        // The LED is a courtesy: a board without one passes a no-op pin, so errors are moot.
        let _ = self.led.set_high();
        let response = match decode_frame::<Request<'_>>(frame) {
            Ok(request) => self.dispatch(request),
            Err(e) => Response::Error(e),
        };
        let _ = self.led.set_low();
        self.count(response)
    }

    /// Updates the request and error counters for a response about to be sent.
    fn count(&mut self, response: Response) -> Response {
        self.stats.requests = self.stats.requests.wrapping_add(1);
        if let Response::Error(_) = response {
            self.stats.errors = self.stats.errors.wrapping_add(1);
        }
        response
    }

    fn dispatch(&mut self, request: Request<'_>) -> Response {
        let result = match request {
            Request::Info => Ok(Response::Info(self.info())),
            Request::Classify { image } => self.classify(image).map(Response::Classified),
            Request::TrainSample { image, label } => self.train(image, label),
            Request::Save => self.tuning.save().map(|generation| {
                self.stats.saves += 1;
                Response::Saved { generation }
            }),
            Request::Revert => self.tuning.revert().map(|()| Response::Reverted),
            Request::Stats => Ok(Response::Stats(self.stats)),
        };
        result.unwrap_or_else(Response::Error)
    }

    fn info(&self) -> Info {
        let model = self.interp.model();
        Info {
            board: truncated(self.board.name),
            firmware_version: truncated(self.board.firmware_version),
            protocol_version: PROTOCOL_VERSION,
            model_bytes: model.len() as u32,
            model_crc: model.crc(),
            arena_bytes: model.arena_size() as u32,
            input_len: self.interp.input().len() as u32,
            classes: self.interp.output().len() as u32,
            flash_bytes: self.board.flash_bytes,
            flash_erase_bytes: self.board.flash_erase_bytes,
            counter: self.counter.unit(),
            training: self.tuning.supported(),
            max_frame: MAX_FRAME as u32,
        }
    }

    fn check_image(&self, image: &[u8]) -> Result<(), ErrorCode> {
        let expected = self.interp.input().len();
        if image.len() != expected {
            return Err(ErrorCode::BadImage {
                expected: expected as u32,
                received: image.len() as u32,
            });
        }
        Ok(())
    }

    fn classify(&mut self, image: &[u8]) -> Result<Classification, ErrorCode> {
        self.check_image(image)?;
        let start = self.counter.now();
        self.interp
            .set_input_grey(image)
            .and_then(|()| self.interp.invoke())
            .map_err(|_| ErrorCode::Model)?;
        let end = self.counter.now();
        self.stats.inferences += 1;
        let (class, _) = self.interp.top1();
        let scores =
            heapless::Vec::from_slice(self.interp.output()).map_err(|_| ErrorCode::Model)?;
        Ok(Classification {
            class: class as u8,
            scores,
            count: self.counter.elapsed(start, end),
        })
    }

    fn train(&mut self, image: &[u8], label: u8) -> Result<Response, ErrorCode> {
        if !self.tuning.supported() {
            return Err(ErrorCode::Unsupported);
        }
        self.check_image(image)?;
        if usize::from(label) >= self.interp.output().len() {
            return Err(ErrorCode::BadLabel);
        }
        let (loss, steps) = self.tuning.train(&mut self.interp, image, label)?;
        self.stats.training_steps += 1;
        Ok(Response::Trained { loss, steps })
    }
}

/// `s` cut to at most `N` bytes on a character boundary.
fn truncated<const N: usize>(s: &str) -> heapless::String<N> {
    let mut out = heapless::String::new();
    for c in s.chars() {
        if out.push(c).is_err() {
            break;
        }
    }
    out
}
