//! The firmware logic on the host, over an in-memory serial link: every message round-trips,
//! classifications equal the host interpreter's, and bad frames get error replies without
//! disturbing the next request.

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{ErrorType as PinErrorType, OutputPin};
use fixnet::{Interpreter, Model};
use fixnet_app::protocol::MAX_FRAME;
use fixnet_app::*;
use proptest::prelude::*;
use std::convert::Infallible;
use std::io::Read as _;

/// Serial link fed from a byte string, handing bytes out in small chunks (as a UART would)
/// and recording what the server writes.
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
        let n = buf.len().min(7).min(self.input.len() - self.pos);
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

#[derive(Default)]
struct Led {
    on: bool,
    toggles: usize,
}
impl PinErrorType for Led {
    type Error = Infallible;
}
impl OutputPin for Led {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.on = false;
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.on = true;
        self.toggles += 1;
        Ok(())
    }
}

struct NoDelay;
impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}

/// Counts calls, so a classification's `count` is deterministic.
struct Ticks(u32);
impl CycleCounter for Ticks {
    fn unit(&self) -> CounterUnit {
        CounterUnit::Cycles
    }
    fn now(&mut self) -> u32 {
        self.0 += 1000;
        self.0
    }
}

fn frame<T: serde::Serialize>(message: &T) -> Vec<u8> {
    let mut scratch = vec![0u8; 2 * MAX_FRAME];
    let mut out = vec![0u8; 2 * MAX_FRAME];
    encode_frame(message, &mut scratch, &mut out)
        .unwrap()
        .to_vec()
}

/// Runs the server on `input` until the link is exhausted; returns the decoded responses.
fn serve(input: Vec<u8>) -> (Vec<Response>, Stats) {
    let model = Model::from_bytes(MODEL).unwrap();
    let mut arena = vec![0u8; ARENA_SIZE];
    let interp = Interpreter::new(&model, &mut arena).unwrap();
    let link = MemLink {
        input,
        pos: 0,
        output: Vec::new(),
    };
    let board = BoardInfo {
        name: "host-test",
        firmware_version: "0.1.0",
        flash_bytes: 0,
        flash_erase_bytes: 0,
    };
    let mut server = Server::new(
        interp,
        link,
        Led::default(),
        NoDelay,
        Ticks(0),
        NoFineTuning,
        board,
    )
    .unwrap();
    while server.poll().unwrap() > 0 {}
    let stats = server.stats();
    let output = std::mem::take(&mut server.link_mut().output);
    let responses = output
        .split(|&b| b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| decode_frame::<Response>(&mut f.to_vec()).expect("server sent a bad frame"))
        .collect();
    (responses, stats)
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

#[test]
fn every_message_round_trips() {
    let image: Vec<u8> = (0..784).map(|i| (i * 7) as u8).collect();
    let requests = [
        Request::Info,
        Request::Classify { image: &image },
        Request::TrainSample {
            image: &image,
            label: 7,
        },
        Request::Save,
        Request::Revert,
        Request::Stats,
    ];
    for r in &requests {
        let mut f = frame(r);
        assert!(f.len() <= MAX_FRAME + 1, "{r:?} needs {} bytes", f.len());
        assert_eq!(f.iter().filter(|&&b| b == 0).count(), 1);
        let end = f.len() - 1;
        assert_eq!(&decode_frame::<Request>(&mut f[..end]).unwrap(), r);
    }
    let responses = [
        Response::Info(Info {
            board: "qemu-mps2-an386".try_into().unwrap(),
            firmware_version: "0.1.0".try_into().unwrap(),
            protocol_version: 1,
            model_bytes: 236_000,
            model_crc: 0xDEAD_BEEF,
            arena_bytes: 30_000,
            input_len: 784,
            classes: 10,
            flash_bytes: 1 << 20,
            flash_erase_bytes: 4096,
            counter: CounterUnit::Instructions,
            training: Some(TrainingInfo {
                mode: heapless::String::try_from("last").unwrap(),
                anchor_q16: 0,
                train_from: 6,
                bias_from: 5,
                batch_size: 10,
                learning_rate_q16: 197,
                train_arena_bytes: 41_500,
                payload_bytes: 1_860,
            }),
            weights: Weights {
                generation: 3,
                steps: 12,
                pending: 2,
            },
            max_frame: 1024,
        }),
        Response::Classified(Classification {
            class: 3,
            scores: heapless::Vec::from_slice(&[-128, 127, 0, 5, -7, 1, 2, 3, 4, 9]).unwrap(),
            count: 12_345_678,
        }),
        Response::Trained {
            loss: 0.25,
            count: 1_234_567,
            weights: Weights {
                generation: 0,
                steps: 17,
                pending: 7,
            },
        },
        Response::Saved { generation: 4 },
        Response::Reverted,
        Response::Stats(Stats {
            requests: 1,
            inferences: 2,
            training_steps: 3,
            saves: 4,
            errors: 5,
            weights: Weights::default(),
        }),
        Response::Error(ErrorCode::BadImage {
            expected: 784,
            received: 3,
        }),
        Response::Error(ErrorCode::Unsupported),
    ];
    for r in &responses {
        let mut f = frame(r);
        let end = f.len() - 1;
        assert_eq!(&decode_frame::<Response>(&mut f[..end]).unwrap(), r);
    }
}

#[test]
fn classifications_equal_the_host_interpreter() {
    let (images, _) = test_digits(40);
    let mut input = frame(&Request::Info);
    for image in &images {
        input.extend(frame(&Request::Classify { image }));
    }
    input.extend(frame(&Request::Stats));
    let (responses, stats) = serve(input);
    assert_eq!(responses.len(), images.len() + 2);

    let model = Model::from_bytes(MODEL).unwrap();
    let Response::Info(info) = &responses[0] else {
        panic!("{:?}", responses[0])
    };
    assert_eq!(info.model_bytes as usize, model.len());
    assert_eq!(info.model_crc, model.crc());
    assert_eq!(info.arena_bytes as usize, model.arena_size());
    assert_eq!((info.input_len, info.classes), (784, 10));
    assert!(info.training.is_none());

    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(&model, &mut arena).unwrap();
    for (image, response) in images.iter().zip(&responses[1..]) {
        interp.set_input_grey(image).unwrap();
        interp.invoke().unwrap();
        let Response::Classified(c) = response else {
            panic!("{response:?}")
        };
        assert_eq!(c.scores.as_slice(), interp.output());
        assert_eq!(usize::from(c.class), interp.top1().0);
        assert_eq!(c.count, 1000);
    }
    let Response::Stats(s) = responses.last().unwrap() else {
        panic!()
    };
    assert_eq!(s.inferences, 40);
    assert_eq!(s.requests, 41);
    assert_eq!(s.errors, 0);
    assert_eq!(stats.requests, 42);
}

#[test]
fn bad_frames_get_error_replies_and_serving_goes_on() {
    let image = vec![0u8; 784];
    let valid = frame(&Request::Classify { image: &image });
    // `None`: any framing error (which one random bytes trip first is an accident).
    let cases: Vec<(Vec<u8>, Option<ErrorCode>)> = vec![
        // Random bytes (no zero inside), then a delimiter.
        (vec![0x17, 0x99, 0x03, 0xFE, 0x42, 0x42, 0x11, 0x00], None),
        // A valid frame cut short: its delimiter arrives early.
        (
            {
                let mut f = valid[..valid.len() / 2].to_vec();
                f.push(0);
                f
            },
            None,
        ),
        // Only a few bytes of a frame.
        (vec![0x03, 0x01, 0x02, 0x00], Some(ErrorCode::TooShort)),
        // One bit flipped.
        (
            {
                let mut f = valid.clone();
                f[100] ^= 0x20;
                f
            },
            Some(ErrorCode::Crc),
        ),
        // Longer than any frame the firmware accepts.
        (
            {
                let mut f = vec![0x55; 3 * MAX_FRAME];
                f.push(0);
                f
            },
            Some(ErrorCode::Oversized),
        ),
        // A well-framed message with an unknown tag.
        (frame(&(200u8, 1u8)), Some(ErrorCode::Malformed)),
        // A known message with trailing bytes.
        (frame(&(5u8, 1u8)), Some(ErrorCode::Malformed)),
        // The wrong number of pixels.
        (
            frame(&Request::Classify { image: &[1, 2, 3] }),
            Some(ErrorCode::BadImage {
                expected: 784,
                received: 3,
            }),
        ),
        // Fine-tuning is not built into this server.
        (frame(&Request::Save), Some(ErrorCode::Unsupported)),
        (frame(&Request::Revert), Some(ErrorCode::Unsupported)),
        (
            frame(&Request::TrainSample {
                image: &image,
                label: 1,
            }),
            Some(ErrorCode::Unsupported),
        ),
    ];
    for (bad, code) in cases {
        let mut input = bad.clone();
        input.extend(&valid);
        let (responses, _) = serve(input);
        assert_eq!(responses.len(), 2, "{code:?}: {responses:?}");
        match code {
            Some(code) => assert_eq!(responses[0], Response::Error(code)),
            None => assert!(
                matches!(
                    responses[0],
                    Response::Error(ErrorCode::Cobs | ErrorCode::TooShort | ErrorCode::Crc)
                ),
                "{:?}",
                responses[0]
            ),
        }
        assert!(
            matches!(responses[1], Response::Classified(_)),
            "{code:?}: {:?}",
            responses[1]
        );
    }
}

#[test]
fn leading_delimiters_are_ignored() {
    let mut input = vec![0, 0, 0];
    input.extend(frame(&Request::Stats));
    let (responses, _) = serve(input);
    assert_eq!(responses.len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever bytes precede it, a valid request after a delimiter is answered, and every
    /// non-empty frame gets exactly one reply.
    #[test]
    fn garbage_never_stops_the_server(garbage in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let frames = garbage.split(|&b| b == 0).filter(|f| !f.is_empty()).count();
        let mut input = garbage.clone();
        input.push(0);
        input.extend(frame(&Request::Stats));
        let (responses, stats) = serve(input);
        prop_assert_eq!(responses.len(), frames + 1);
        prop_assert!(matches!(responses.last(), Some(Response::Stats(_))));
        prop_assert_eq!(stats.requests as usize, frames + 1);
    }
}
