//! The boot sequence every board runs (`fixnet_app::run`) and the queued serial link, on
//! the host: `run` chooses fine-tuning exactly when the model can be fine-tuned and two
//! weight slots fit the region, reports each decision, and then serves; `QueuedLink` hands
//! over the bytes the interrupt side queued, in order, and writes through its transmitter.

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{ErrorType as PinErrorType, OutputPin};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use fixnet_app::protocol::MAX_FRAME;
use fixnet_app::*;
use heapless::spsc::Queue;
use std::convert::Infallible;
use std::panic::{catch_unwind, AssertUnwindSafe};

const SECTOR: usize = 4096;

/// NOR flash in RAM.
struct MemFlash(Vec<u8>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Never;

impl NorFlashError for Never {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

impl ErrorType for MemFlash {
    type Error = Never;
}

impl ReadNorFlash for MemFlash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Never> {
        let at = offset as usize;
        bytes.copy_from_slice(&self.0[at..at + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.0.len()
    }
}

impl NorFlash for MemFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Never> {
        self.0[from as usize..to as usize].fill(0xFF);
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Never> {
        let at = offset as usize;
        for (o, b) in self.0[at..at + bytes.len()].iter_mut().zip(bytes) {
            *o &= b;
        }
        Ok(())
    }
}

/// Feeds the server a byte string, then stops it: once the input is used up, the next read
/// panics with the bytes the server wrote (`serve` never returns on its own).
struct ScriptLink {
    input: Vec<u8>,
    pos: usize,
    output: Vec<u8>,
}

impl embedded_io::ErrorType for ScriptLink {
    type Error = Infallible;
}

impl embedded_io::Read for ScriptLink {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if self.pos == self.input.len() {
            std::panic::panic_any(std::mem::take(&mut self.output));
        }
        let n = buf.len().min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl embedded_io::Write for ScriptLink {
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

fn info_request() -> Vec<u8> {
    let mut scratch = vec![0u8; 2 * MAX_FRAME];
    let mut out = vec![0u8; 2 * MAX_FRAME];
    encode_frame(&Request::Info, &mut scratch, &mut out)
        .unwrap()
        .to_vec()
}

/// Runs the boot sequence with a weight region of `region` bytes (none for `None`) and
/// a train arena of `train_arena` bytes, asks for `info`; returns the reply and the events.
fn boot(region: Option<usize>, train_arena: usize) -> (Info, Vec<Event>) {
    let mut arena = vec![0u8; ARENA_SIZE];
    let mut train = vec![0u8; train_arena];
    let mut payload = vec![0u32; PAYLOAD_WORDS];
    let buffers = TrainingBuffers {
        arena: &mut arena,
        train_arena: &mut train,
        payload: &mut payload,
    };
    let peripherals = Peripherals {
        link: ScriptLink {
            input: info_request(),
            pos: 0,
            output: Vec::new(),
        },
        led: NoLed,
        delay: NoDelay,
        counter: Ticks,
    };
    let flash = region.map(|size| WeightRegion {
        flash: MemFlash(vec![0xFF; size]),
        base: 0,
        size,
        erase_size: SECTOR,
    });
    let board = BoardInfo {
        name: "host-test",
        firmware_version: "0.1.0",
        flash_bytes: 0,
        flash_erase_bytes: 0,
    };
    let mut events = Vec::new();
    let stopped = catch_unwind(AssertUnwindSafe(|| {
        let _ = run(MODEL, board, peripherals, buffers, flash, |e| {
            events.push(e)
        });
    }))
    .expect_err("run returned instead of serving");
    let mut written = *stopped.downcast::<Vec<u8>>().expect("stopped by the link");
    let end = written.iter().position(|&b| b == 0).expect("a reply frame");
    let reply = decode_frame::<Response>(&mut written[..end]).unwrap();
    let Response::Info(info) = reply else {
        panic!("{reply:?}")
    };
    (info, events)
}

#[test]
fn fine_tuning_is_on_when_two_slots_fit_the_region() {
    let slot = slot_size(SECTOR) as usize;
    let (info, events) = boot(Some(2 * slot), TRAIN_ARENA_SIZE);
    assert!(info.training.is_some());
    assert_eq!(info.flash_bytes as usize, 2 * slot);
    assert_eq!(info.flash_erase_bytes as usize, SECTOR);
    assert!(matches!(events[0], Event::Model { arena, .. } if arena == ARENA_SIZE));
    assert_eq!(events[1], Event::FineTuning(Boot::Factory));
}

#[test]
fn one_slot_short_of_room_serves_classification_only() {
    let slot = slot_size(SECTOR) as usize;
    let (info, events) = boot(Some(2 * slot - SECTOR), TRAIN_ARENA_SIZE);
    assert!(info.training.is_none());
    assert_eq!(info.flash_bytes, 0);
    assert_eq!(
        events[1],
        Event::NoRoom {
            slot: slot as u32,
            region: 2 * slot - SECTOR
        }
    );
}

#[test]
fn no_flash_or_no_train_arena_serves_classification_only() {
    let (info, events) = boot(None, TRAIN_ARENA_SIZE);
    assert!(info.training.is_none());
    assert_eq!(events[1], Event::NoFlash);
    let (info, events) = boot(Some(2 * slot_size(SECTOR) as usize), 0);
    assert!(info.training.is_none());
    assert_eq!(events[1], Event::NothingToTrain);
}

/// A transmitter that records what it is given where the test can see it.
struct Recorder(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
impl embedded_io::ErrorType for Recorder {
    type Error = Infallible;
}
impl embedded_io::Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

#[test]
fn the_queued_link_reads_what_was_queued_in_order_and_writes_through() {
    use embedded_io::{Read, Write};
    let mut queue: Queue<u8, 64> = Queue::new();
    let (mut producer, consumer) = queue.split();
    let sent = std::rc::Rc::default();
    let mut link = QueuedLink::new(Recorder(std::rc::Rc::clone(&sent)), consumer);
    for b in 1..=40u8 {
        producer.enqueue(b).unwrap();
    }
    // A read takes what is there, up to the buffer's length; nothing is lost or reordered.
    let mut buf = [0u8; 16];
    assert_eq!(link.read(&mut buf).unwrap(), 16);
    assert_eq!(buf, core::array::from_fn::<u8, 16, _>(|i| i as u8 + 1));
    let mut rest = [0u8; 64];
    assert_eq!(link.read(&mut rest).unwrap(), 24);
    assert_eq!(&rest[..24], &(17..=40).collect::<Vec<u8>>()[..]);
    assert_eq!(link.read(&mut []).unwrap(), 0);
    link.write_all(b"reply").unwrap();
    link.flush().unwrap();
    assert_eq!(sent.borrow().as_slice(), b"reply");
    // The queue was emptied: a byte queued now is the next one read.
    producer.enqueue(99).unwrap();
    assert_eq!(link.read(&mut buf).unwrap(), 1);
    assert_eq!(buf[0], 99);
}
