//! Helpers shared by the fuzz targets and the seed generator: aligned model bytes, a RAM
//! NOR flash, an in-memory serial link and no-op board peripherals.

use core::convert::Infallible;
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Largest arena an input may ask for; models needing more are only parsed, not run.
pub const MAX_ARENA: usize = 256 * 1024;
/// Most multiply-accumulates a fuzzed model may cost before it is run (keeps execs fast).
pub const MAX_MACS: u64 = 500_000;

/// Bytes at the 8-byte alignment `fixnet::Model::from_bytes` requires.
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (i, b) in bytes.iter().enumerate() {
            words[i / 8] |= u64::from(*b) << (8 * (i % 8));
        }
        Aligned {
            words,
            len: bytes.len(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: u64 storage viewed as bytes, within its length (little-endian host).
        unsafe { core::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}

/// A rough MAC count of a validated model (output elements × taps per output), to skip
/// running inputs that would make the fuzzer crawl.
pub fn macs(model: &fixnet::Model<'_>) -> u64 {
    use fixnet::format::Op;
    let elems = |id| {
        model
            .tensor(id)
            .map(|t| t.dims.num_elements() as u64)
            .unwrap_or(0)
    };
    let channels = |id| {
        model
            .tensor(id)
            .map(|t| t.dims.last().max(1) as u64)
            .unwrap_or(1)
    };
    let mut total = 0u64;
    for op in model.ops() {
        let Ok(op) = op else { return u64::MAX };
        let cost = match &op {
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => {
                elems(c.output).saturating_mul(elems(c.filter) / channels(c.output))
            }
            Op::FullyConnected(c) => elems(c.filter),
            Op::MaxPool(p) | Op::AvgPool(p) => {
                elems(p.output).saturating_mul(u64::from(p.kernel_h) * u64::from(p.kernel_w))
            }
            // Element-wise ops, means, pads and concatenations touch each input and output
            // element about once.
            _ => op
                .inputs()
                .iter()
                .map(elems)
                .fold(elems(op.output()), u64::saturating_add),
        };
        total = total.saturating_add(cost);
    }
    total
}

/// NOR flash in RAM: erase sets 0xFF, programming only clears bits (as real NOR does).
pub struct RamFlash {
    pub mem: Vec<u8>,
}

pub const SECTOR: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashFault;

impl NorFlashError for FlashFault {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

impl ErrorType for RamFlash {
    type Error = FlashFault;
}

impl ReadNorFlash for RamFlash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashFault> {
        let start = offset as usize;
        let src = self.mem.get(start..start + bytes.len()).ok_or(FlashFault)?;
        bytes.copy_from_slice(src);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl NorFlash for RamFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashFault> {
        let (from, to) = (from as usize, to as usize);
        if from % SECTOR != 0 || to % SECTOR != 0 || to > self.mem.len() || from > to {
            return Err(FlashFault);
        }
        self.mem[from..to].fill(0xFF);
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashFault> {
        let start = offset as usize;
        if start % 4 != 0 || bytes.len() % 4 != 0 {
            return Err(FlashFault);
        }
        let dst = self
            .mem
            .get_mut(start..start + bytes.len())
            .ok_or(FlashFault)?;
        for (d, s) in dst.iter_mut().zip(bytes) {
            *d &= *s;
        }
        Ok(())
    }
}

/// A serial link fed from bytes (in 7-byte reads, as a UART would), recording the replies.
pub struct MemLink<'a> {
    pub input: &'a [u8],
    pub pos: usize,
    pub output: Vec<u8>,
}

impl embedded_io::ErrorType for MemLink<'_> {
    type Error = Infallible;
}

impl embedded_io::Read for MemLink<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let n = buf.len().min(7).min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl embedded_io::Write for MemLink<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

pub struct NoPin;
impl embedded_hal::digital::ErrorType for NoPin {
    type Error = Infallible;
}
impl embedded_hal::digital::OutputPin for NoPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

pub struct NoDelay;
impl embedded_hal::delay::DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}

pub struct Ticks(pub u32);
impl fixnet_app::CycleCounter for Ticks {
    fn unit(&self) -> fixnet_app::CounterUnit {
        fixnet_app::CounterUnit::Cycles
    }
    fn now(&mut self) -> u32 {
        self.0 = self.0.wrapping_add(1000);
        self.0
    }
}

/// A backend that classifies with the real model and accepts every fine-tuning request,
/// so that train-sample, save and revert requests reach the server's checks and replies.
pub struct AcceptAll<'m, 'a> {
    inference: fixnet_app::Inference<'m, 'a>,
    input_len: usize,
    classes: usize,
    pub steps: u32,
}

impl<'m, 'a> AcceptAll<'m, 'a> {
    pub fn new(interp: fixnet::Interpreter<'m, 'a>) -> Self {
        let input_len = interp.input().len();
        let classes = interp.output().len();
        AcceptAll {
            inference: fixnet_app::Inference::new(interp),
            input_len,
            classes,
            steps: 0,
        }
    }
}

impl fixnet_app::Backend for AcceptAll<'_, '_> {
    fn model(&self) -> &fixnet::Model<'_> {
        self.inference.model()
    }
    fn classify(&mut self, image: &[u8]) -> Result<fixnet_app::Scores, fixnet_app::ErrorCode> {
        assert_eq!(
            image.len(),
            self.input_len,
            "server let a bad image through"
        );
        self.inference.classify(image)
    }
    fn training(&self) -> Option<fixnet_app::TrainingInfo> {
        Some(fixnet_app::TrainingInfo {
            mode: Default::default(),
            anchor_q16: 0,
            train_from: 0,
            bias_from: 0,
            batch_size: 1,
            learning_rate_q16: 0,
            train_arena_bytes: 0,
            payload_bytes: 0,
        })
    }
    fn train_sample(&mut self, image: &[u8], label: u8) -> Result<f32, fixnet_app::ErrorCode> {
        assert_eq!(
            image.len(),
            self.input_len,
            "server let a bad image through"
        );
        assert!(
            usize::from(label) < self.classes,
            "server let a bad label through"
        );
        self.steps += 1;
        Ok(1.0)
    }
    fn save(&mut self) -> Result<u32, fixnet_app::ErrorCode> {
        Ok(self.steps)
    }
    fn revert(&mut self) -> Result<(), fixnet_app::ErrorCode> {
        self.steps = 0;
        Ok(())
    }
}

/// `COBS(payload ‖ crc32_le(payload)) ‖ 0`: a frame whose CRC is right whatever the payload,
/// so the fuzzer reaches the message decoder and the request handler.
pub fn frame_raw(payload: &[u8]) -> Vec<u8> {
    let mut raw = payload.to_vec();
    raw.extend_from_slice(&fixnet::format::crc32::crc32(payload).to_le_bytes());
    // COBS by hand (no dependency on the cobs crate's API).
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 254 + 2);
    let mut code_at = 0;
    out.push(0);
    let mut code = 1u8;
    for &b in &raw {
        if b == 0 {
            out[code_at] = code;
            code_at = out.len();
            out.push(0);
            code = 1;
        } else {
            out.push(b);
            code += 1;
            if code == 0xFF {
                out[code_at] = code;
                code_at = out.len();
                out.push(0);
                code = 1;
            }
        }
    }
    out[code_at] = code;
    out.push(0);
    out
}
