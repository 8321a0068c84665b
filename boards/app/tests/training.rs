//! The fine-tuning backend on the host, over an in-memory link and an in-memory NOR flash:
//! train-sample, classify, save, restart, revert over the protocol give exactly what the
//! host simulation (`Trainer` with the same samples and configuration, and
//! `Interpreter::with_overlay`) computes; a revert cut short by a power loss leaves either
//! the saved weights or the factory ones.

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{ErrorType as PinErrorType, OutputPin};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use fixnet::train::Trainer;
use fixnet::{Interpreter, Model};
use fixnet_app::protocol::MAX_FRAME;
use fixnet_app::*;
use std::convert::Infallible;
use std::io::Read as _;

const SECTOR: usize = 4096;

/// NOR flash in RAM: erase sets 0xFF, programming clears bits; after `budget` erase or
/// program calls every further one fails (power lost) without effect.
struct MemFlash {
    bytes: Vec<u8>,
    budget: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PowerLost;

impl NorFlashError for PowerLost {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

impl MemFlash {
    fn new() -> Self {
        MemFlash {
            bytes: vec![0xFF; 16 * SECTOR],
            budget: None,
        }
    }

    fn spend(&mut self) -> Result<(), PowerLost> {
        match &mut self.budget {
            Some(0) => Err(PowerLost),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl ErrorType for MemFlash {
    type Error = PowerLost;
}

impl ReadNorFlash for MemFlash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), PowerLost> {
        let at = offset as usize;
        bytes.copy_from_slice(&self.bytes[at..at + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl NorFlash for MemFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), PowerLost> {
        self.spend()?;
        self.bytes[from as usize..to as usize].fill(0xFF);
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), PowerLost> {
        self.spend()?;
        let at = offset as usize;
        for (o, b) in self.bytes[at..at + bytes.len()].iter_mut().zip(bytes) {
            *o &= b;
        }
        Ok(())
    }
}

/// A link that hands the server a prepared byte string and keeps what it writes.
struct MemLink {
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
}

impl embedded_io::ErrorType for MemLink {
    type Error = Infallible;
}

impl embedded_io::Read for MemLink {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let n = buf.len().min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl embedded_io::Write for MemLink {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

struct NoLed;
impl PinErrorType for NoLed {
    type Error = Infallible;
}
impl OutputPin for NoLed {
    fn set_low(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

struct NoDelay;
impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}

struct Ticks;
impl CycleCounter for Ticks {
    fn unit(&self) -> CounterUnit {
        CounterUnit::Cycles
    }
    fn now(&mut self) -> u32 {
        0
    }
}

fn frame(request: &Request<'_>) -> Vec<u8> {
    let mut scratch = vec![0u8; 2 * MAX_FRAME];
    let mut out = vec![0u8; 2 * MAX_FRAME];
    encode_frame(request, &mut scratch, &mut out)
        .unwrap()
        .to_vec()
}

/// A board with fine-tuning on `flash`: boots (loading saved weights), answers `requests`,
/// and gives back the replies, what it found at boot, and the flash.
fn run(
    model: &Model<'_>,
    flash: MemFlash,
    requests: &[Request<'_>],
) -> (Vec<Response>, Boot, MemFlash) {
    let mut train_arena = vec![0u8; TRAIN_ARENA_SIZE];
    let mut arena = vec![0u8; ARENA_SIZE];
    let mut payload = vec![0u32; PAYLOAD_WORDS];
    let buffers = TrainingBuffers {
        train_arena: &mut train_arena,
        arena: &mut arena,
        payload: &mut payload,
    };
    let training = Training::new(model, buffers, flash, 0, slot_size(SECTOR)).unwrap();
    let boot = training.boot();
    let link = MemLink {
        input: requests.iter().flat_map(frame).collect(),
        pos: 0,
        output: Vec::new(),
    };
    let board = BoardInfo {
        name: "host-test",
        firmware_version: "0.1.0",
        flash_bytes: 16 * SECTOR as u32,
        flash_erase_bytes: SECTOR as u32,
    };
    let mut server = Server::with_backend(training, link, NoLed, NoDelay, Ticks, board).unwrap();
    while server.poll().unwrap() > 0 {}
    let output = std::mem::take(&mut server.link_mut().output);
    let responses: Vec<Response> = output
        .split(|&b| b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| decode_frame::<Response>(&mut f.to_vec()).unwrap())
        .collect();
    assert_eq!(responses.len(), requests.len());
    let flash = server.into_backend().release().unwrap();
    (responses, boot, flash)
}

fn test_digits(n: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/mnist/");
    let gunzip = |name: &str| {
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(format!("{root}{name}")).unwrap())
            .read_to_end(&mut bytes)
            .unwrap();
        bytes
    };
    let images = gunzip("test-images-idx3-ubyte.gz");
    let labels = gunzip("test-labels-idx1-ubyte.gz");
    let images = images[16..]
        .chunks(784)
        .take(n)
        .map(<[u8]>::to_vec)
        .collect();
    (images, labels[8..8 + n].to_vec())
}

/// The training samples: test digits with labels the model disagrees with (a user who
/// writes digits their own way), so that the weights visibly move in a few steps.
fn samples(images: &[Vec<u8>], labels: &[u8], n: usize) -> Vec<(Vec<u8>, u8)> {
    (0..n)
        .map(|i| (images[i].clone(), (labels[i] + 1) % 10))
        .collect()
}

fn classify_with(
    model: &Model<'_>,
    overlay: fixnet::overlay::Overlay<'_>,
    image: &[u8],
) -> Vec<i8> {
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::with_overlay(model, &mut arena, overlay).unwrap();
    interp.set_input_grey(image).unwrap();
    interp.invoke().unwrap();
    interp.output().to_vec()
}

fn scores(response: &Response) -> Vec<i8> {
    match response {
        Response::Classified(c) => c.scores.to_vec(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn train_save_restart_revert_equal_the_host_simulation() {
    let model = Model::from_bytes(MODEL).unwrap();
    let (images, labels) = test_digits(40);
    let train = samples(&images, &labels, 15);
    let probe: Vec<&[u8]> = images[..6].iter().map(Vec::as_slice).collect();

    // The host simulation of the same steps.
    let config = train_config(&model).unwrap();
    let mut sim_arena = vec![0u8; TRAIN_ARENA_SIZE];
    let mut sim = Trainer::with_config(&model, config, &mut sim_arena).unwrap();
    let factory: Vec<Vec<i8>> = probe
        .iter()
        .map(|im| classify_with(&model, fixnet::overlay::Overlay::new(), im))
        .collect();
    let losses: Vec<f32> = train
        .iter()
        .map(|(im, l)| sim.step(im, usize::from(*l)).unwrap().to_f32())
        .collect();
    let pending: Vec<Vec<i8>> = probe
        .iter()
        .map(|im| classify_with(&model, sim.overlay().unwrap(), im))
        .collect();
    sim.flush();
    let saved: Vec<Vec<i8>> = probe
        .iter()
        .map(|im| classify_with(&model, sim.overlay().unwrap(), im))
        .collect();
    let moved = saved.iter().zip(&factory).filter(|(a, b)| a != b).count();
    assert!(moved >= 1, "the samples should move the weights");

    // Train, classify, save, classify.
    let mut requests = vec![Request::Info];
    requests.extend(train.iter().map(|(image, label)| Request::TrainSample {
        image,
        label: *label,
    }));
    requests.extend(probe.iter().map(|image| Request::Classify { image }));
    requests.push(Request::Save);
    requests.extend(probe.iter().map(|image| Request::Classify { image }));
    requests.push(Request::Stats);
    let (r, boot, flash) = run(&model, MemFlash::new(), &requests);
    assert_eq!(boot, Boot::Factory);
    let Response::Info(info) = &r[0] else {
        panic!("{:?}", r[0])
    };
    let t = info.training.clone().unwrap();
    assert_eq!(usize::from(t.train_from), config.train_from);
    assert_eq!(t.batch_size, 10);
    assert_eq!(t.train_arena_bytes as usize, TRAIN_ARENA_SIZE);
    assert_eq!(info.weights, Weights::default());
    for (i, loss) in losses.iter().enumerate() {
        let Response::Trained {
            loss: l, weights, ..
        } = &r[1 + i]
        else {
            panic!("{:?}", r[1 + i])
        };
        assert_eq!(l, loss, "sample {i}");
        assert_eq!(weights.steps as usize, i + 1);
        assert_eq!(usize::from(weights.pending), (i + 1) % 10);
    }
    let at = 1 + train.len();
    let got: Vec<Vec<i8>> = r[at..at + probe.len()].iter().map(scores).collect();
    assert_eq!(
        got, pending,
        "classify before save: 5 samples still pending"
    );
    assert_eq!(r[at + probe.len()], Response::Saved { generation: 1 });
    let at = at + probe.len() + 1;
    let got: Vec<Vec<i8>> = r[at..at + probe.len()].iter().map(scores).collect();
    assert_eq!(got, saved, "classify after save");
    let Response::Stats(stats) = r.last().unwrap() else {
        panic!()
    };
    assert_eq!(stats.saves, 1);
    assert_eq!(stats.training_steps, 15);
    assert_eq!(
        stats.weights,
        Weights {
            generation: 1,
            steps: 0,
            pending: 0
        }
    );

    // Restart: the saved weights come back.
    let mut requests: Vec<Request<'_>> = probe
        .iter()
        .map(|image| Request::Classify { image })
        .collect();
    requests.push(Request::Revert);
    requests.extend(probe.iter().map(|image| Request::Classify { image }));
    let (r, boot, flash) = run(&model, flash, &requests);
    assert_eq!(boot, Boot::Saved { generation: 1 });
    let n = probe.len();
    assert_eq!(r[..n].iter().map(scores).collect::<Vec<_>>(), saved);
    assert_eq!(r[n], Response::Reverted);
    assert_eq!(r[n + 1..].iter().map(scores).collect::<Vec<_>>(), factory);

    // Restart after the revert: factory weights.
    let requests: Vec<Request<'_>> = probe
        .iter()
        .map(|image| Request::Classify { image })
        .collect();
    let (r, boot, _) = run(&model, flash, &requests);
    assert_eq!(boot, Boot::Factory);
    assert_eq!(r.iter().map(scores).collect::<Vec<_>>(), factory);
}

#[test]
fn a_revert_cut_short_leaves_the_newest_saved_weights_or_none() {
    let model = Model::from_bytes(MODEL).unwrap();
    let (images, labels) = test_digits(8);
    let train = samples(&images, &labels, 2);
    // Two generations, so that an older valid set sits in the other slot.
    let mut requests: Vec<Request<'_>> = Vec::new();
    for (image, label) in &train {
        requests.push(Request::TrainSample {
            image,
            label: *label,
        });
        requests.push(Request::Save);
    }
    let (_, _, saved) = run(&model, MemFlash::new(), &requests);
    let mut outcomes = Vec::new();
    for budget in 0..4 {
        let mut flash = MemFlash {
            bytes: saved.bytes.clone(),
            budget: Some(budget),
        };
        let (r, boot, f) = run(&model, flash, &[Request::Revert]);
        assert_eq!(boot, Boot::Saved { generation: 2 });
        flash = f;
        flash.budget = None;
        let (_, boot, _) = run(&model, flash, &[]);
        assert!(
            matches!(boot, Boot::Factory | Boot::Saved { generation: 2 }),
            "budget {budget}: {boot:?} ({r:?})"
        );
        outcomes.push(boot);
    }
    assert_eq!(outcomes[0], Boot::Saved { generation: 2 });
    assert_eq!(outcomes[3], Boot::Factory);
}
