//! The firmware's main loop: read frames from the serial link, answer each one.

use crate::backend::{Backend, Inference};
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

/// The fine-tuning argument of [`Server::new`]: none. (Kept so that boards written against
/// the first `Server::new` build unchanged; fine-tuning comes with a
/// [`Training`](crate::Training) backend and [`Server::with_backend`].)
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFineTuning;

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
struct Core<P, D, C, B> {
    backend: B,
    led: P,
    delay: D,
    counter: C,
    board: BoardInfo,
    stats: Stats,
    /// Pixels the model takes.
    input_len: usize,
    /// Classes the model gives.
    classes: usize,
}

/// Serves the protocol over `link`: one [`Response`] per frame received, whatever the frame.
///
/// Generic over the serial link (`embedded-io`), a status LED (on while a request is being
/// handled), a delay (to back off after link errors), an instruction/cycle counter and the
/// [`Backend`] that runs the model (and maybe fine-tunes it), so that each board only
/// supplies drivers.
pub struct Server<L, P, D, C, B> {
    link: L,
    rx: [u8; MAX_FRAME],
    rx_len: usize,
    /// The current frame outgrew `rx`; its bytes are dropped up to the next delimiter.
    overflow: bool,
    core: Core<P, D, C, B>,
}

impl<'m, 'a, L, P, D, C> Server<L, P, D, C, Inference<'m, 'a>>
where
    L: Read + Write,
    P: OutputPin,
    D: DelayNs,
    C: CycleCounter,
{
    /// A server that classifies with the model `interp` runs, without fine-tuning (an
    /// [`Inference`] backend; see [`Server::with_backend`]).
    ///
    /// Fails with [`fixnet::Error::CapacityExceeded`] if the model has more than
    /// [`MAX_CLASSES`] outputs.
    pub fn new(
        interp: Interpreter<'m, 'a>,
        link: L,
        led: P,
        delay: D,
        counter: C,
        tuning: NoFineTuning,
        board: BoardInfo,
    ) -> Result<Self, fixnet::Error> {
        let NoFineTuning = tuning;
        Self::with_backend(Inference::new(interp), link, led, delay, counter, board)
    }
}

impl<L, P, D, C, B> Server<L, P, D, C, B>
where
    L: Read + Write,
    P: OutputPin,
    D: DelayNs,
    C: CycleCounter,
    B: Backend,
{
    /// A server for the model of `backend`.
    ///
    /// Fails with [`fixnet::Error::CapacityExceeded`] if the model has more than
    /// [`MAX_CLASSES`] outputs.
    pub fn with_backend(
        backend: B,
        link: L,
        led: P,
        delay: D,
        counter: C,
        board: BoardInfo,
    ) -> Result<Self, fixnet::Error> {
        let model = backend.model();
        let input_len = model.input()?.dims.num_elements();
        let classes = model.output()?.dims.num_elements();
        if classes > MAX_CLASSES {
            return Err(fixnet::Error::CapacityExceeded);
        }
        Ok(Server {
            link,
            rx: [0; MAX_FRAME],
            rx_len: 0,
            overflow: false,
            core: Core {
                backend,
                led,
                delay,
                counter,
                board,
                stats: Stats::default(),
                input_len,
                classes,
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
        Stats {
            weights: self.core.backend.weights(),
            ..self.core.stats
        }
    }

    /// The backend, e.g. to look at the trainer of a [`Training`](crate::Training) backend.
    pub fn backend(&self) -> &B {
        &self.core.backend
    }

    /// Stops serving and gives the backend back (e.g. its flash, to restart on it).
    pub fn into_backend(self) -> B {
        self.core.backend
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

impl<P, D, C, B> Core<P, D, C, B>
where
    P: OutputPin,
    D: DelayNs,
    C: CycleCounter,
    B: Backend,
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
            Request::Save => self.backend.save().map(|generation| {
                self.stats.saves += 1;
                Response::Saved { generation }
            }),
            Request::Revert => self.backend.revert().map(|()| Response::Reverted),
            Request::Stats => Ok(Response::Stats(Stats {
                weights: self.backend.weights(),
                ..self.stats
            })),
        };
        result.unwrap_or_else(Response::Error)
    }

    fn info(&self) -> Info {
        let model = self.backend.model();
        Info {
            board: truncated(self.board.name),
            firmware_version: truncated(self.board.firmware_version),
            protocol_version: PROTOCOL_VERSION,
            model_bytes: model.len() as u32,
            model_crc: model.crc(),
            arena_bytes: model.arena_size() as u32,
            input_len: self.input_len as u32,
            classes: self.classes as u32,
            flash_bytes: self.board.flash_bytes,
            flash_erase_bytes: self.board.flash_erase_bytes,
            counter: self.counter.unit(),
            training: self.backend.training(),
            weights: self.backend.weights(),
            max_frame: MAX_FRAME as u32,
        }
    }

    fn check_image(&self, image: &[u8]) -> Result<(), ErrorCode> {
        let expected = self.input_len;
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
        let scores = self.backend.classify(image)?;
        let end = self.counter.now();
        self.stats.inferences += 1;
        let (class, _) = fixnet::interpreter::top1(&scores);
        Ok(Classification {
            class: class as u8,
            scores,
            count: self.counter.elapsed(start, end),
        })
    }

    fn train(&mut self, image: &[u8], label: u8) -> Result<Response, ErrorCode> {
        if self.backend.training().is_none() {
            return Err(ErrorCode::Unsupported);
        }
        self.check_image(image)?;
        if usize::from(label) >= self.classes {
            return Err(ErrorCode::BadLabel);
        }
        let start = self.counter.now();
        let loss = self.backend.train_sample(image, label)?;
        let end = self.counter.now();
        self.stats.training_steps += 1;
        Ok(Response::Trained {
            loss,
            count: self.counter.elapsed(start, end),
            weights: self.backend.weights(),
        })
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
