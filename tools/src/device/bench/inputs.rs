//! What the benchmark firmware feeds a model, made again on the host to check every output:
//! the first 100 MNIST test digits for a model that reads one 28×28 grey picture, else 100
//! full-range random int8 inputs from a fixed-seed xorshift32 generator (the firmware's
//! `XorShift32` and `RANDOM_SEED`, in `boards/qemu-mps2-an386/bench/src/main.rs`).

use super::{Run, RUNS};
use anyhow::{anyhow, bail, ensure, Context, Result};
use fixnet::format::crc32::crc32;
use fixnet::{Interpreter, Model};
use std::path::Path;

/// Seed of the random inputs' generator (the firmware's `RANDOM_SEED`).
pub const RANDOM_SEED: u32 = 0x2545_F491;

/// Pixels of one digit.
const DIGIT_LEN: usize = 28 * 28;

/// The inputs a model is benchmarked on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// The first 100 MNIST test digits, quantized by the firmware.
    Digits,
    /// 100 random int8 inputs ([`XorShift32`] from [`RANDOM_SEED`]).
    Random,
}

impl InputKind {
    /// The word the firmware prints (`digits` or `random`).
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Digits => "digits",
            InputKind::Random => "random",
        }
    }

    /// The kind [`InputKind::name`] names.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "digits" => Ok(InputKind::Digits),
            "random" => Ok(InputKind::Random),
            other => bail!("unknown inputs {other:?}"),
        }
    }
}

/// The firmware's rule: digits for a model whose input is `[1, 28, 28, 1]`, random inputs
/// for any other.
pub fn input_kind(model: &Model<'_>) -> Result<InputKind> {
    let input = model.input().map_err(|e| anyhow!("{e}"))?;
    Ok(if input.dims.as_slice() == [1, 28, 28, 1] {
        InputKind::Digits
    } else {
        InputKind::Random
    })
}

/// Marsaglia's xorshift32 (shifts 13, 17, 5), as the firmware runs it.
#[derive(Clone, Debug)]
pub struct XorShift32(pub u32);

impl XorShift32 {
    /// The next number of the sequence.
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// The next int8 input value: the top byte of the next number.
    pub fn next_i8(&mut self) -> i8 {
        (self.next_u32() >> 24) as u8 as i8
    }
}

/// Runs `model` on the host over the inputs the firmware ran (made as it makes them) and
/// checks every prediction and output checksum it reported. Returns how many inferences
/// were compared (all of them, or an error).
pub fn compare_with_host(model: &Model<'_>, kind: InputKind, runs: &[Run]) -> Result<u32> {
    ensure!(
        runs.len() == RUNS,
        "the firmware reported {} inferences, not {RUNS}",
        runs.len()
    );
    let digits = match kind {
        InputKind::Digits => {
            let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
            let images =
                crate::idx::read_images(&root.join("data/mnist/test-images-idx3-ubyte.gz"))?;
            images
                .pixels
                .get(..RUNS * DIGIT_LEN)
                .context("too few test images")?
                .to_vec()
        }
        InputKind::Random => Vec::new(),
    };
    let mut rng = XorShift32(RANDOM_SEED);
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(model, &mut arena).map_err(|e| anyhow!("{e}"))?;
    for (i, run) in runs.iter().enumerate() {
        match kind {
            InputKind::Digits => {
                let image = digits
                    .get(i * DIGIT_LEN..(i + 1) * DIGIT_LEN)
                    .context("too few test images")?;
                interp.set_input_grey(image).map_err(|e| anyhow!("{e}"))?;
            }
            InputKind::Random => interp
                .input_mut()
                .iter_mut()
                .for_each(|q| *q = rng.next_i8()),
        }
        interp.invoke().map_err(|e| anyhow!("{e}"))?;
        let (predicted, _) = interp.top1();
        let crc = crc32(bytemuck::cast_slice(interp.output()));
        ensure!(
            (predicted, crc) == (run.predicted, run.output_crc),
            "{} input {i}: the firmware predicted {} (output CRC {:08x}), the host interpreter \
             {predicted} ({crc:08x})",
            kind.name(),
            run.predicted,
            run.output_crc,
        );
    }
    Ok(runs.len() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift32_follows_marsaglia() {
        // From 1, worked by hand: x ^= x << 13 gives 8,193; x ^= x >> 17 leaves it;
        // x ^= x << 5 gives 8,193 ^ 262,176 = 270,369.
        let mut rng = XorShift32(1);
        assert_eq!(rng.next_u32(), 270_369);
        // Its top byte is 0; the generator never reaches 0 from a non-zero state.
        let mut rng = XorShift32(1);
        assert_eq!(rng.next_i8(), 0);
        assert!((0..10_000).all(|_| rng.next_u32() != 0));
    }

    #[test]
    fn random_inputs_cover_the_whole_int8_range() {
        let mut rng = XorShift32(RANDOM_SEED);
        let mut seen = [false; 256];
        for _ in 0..10_000 {
            seen[rng.next_i8() as u8 as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn only_a_28_by_28_grey_input_takes_digits() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let bytes = crate::fxn::ModelBytes::read(&root.join("models/seed_cnn.fxn")).unwrap();
        assert_eq!(
            input_kind(&bytes.model().unwrap()).unwrap(),
            InputKind::Digits
        );
        for kind in [InputKind::Digits, InputKind::Random] {
            assert_eq!(InputKind::from_name(kind.name()).unwrap(), kind);
        }
        assert!(InputKind::from_name("pictures").is_err());
    }
}
