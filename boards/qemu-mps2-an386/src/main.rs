//! The serving firmware: answers fixnet's serial protocol (see `fixnet_app::protocol`) on
//! UART0 with the embedded model, fine-tunes it on request, and keeps saved weights in the
//! semihosting-file NOR flash, loading the newest valid set at start-up. Start it with
//! `fixnet qemu`, or by hand as in README.md.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use fixnet::{Interpreter, Model};
use fixnet_app::{
    slot_size, BoardInfo, Boot, NoFineTuning, Server, Training, TrainingBuffers, ARENA_SIZE, MODEL,
    PAYLOAD_WORDS, TRAIN_ARENA_SIZE,
};
use fixnet_qemu_mps2_an386::flash::{self, SemihostingFlash};
use fixnet_qemu_mps2_an386::uart::{Uart, UART0_BASE};
use fixnet_qemu_mps2_an386::{Led, SysTickCounter, SysTickDelay};

extern "C" {
    /// cortex-m-rt's handler for every exception and interrupt without one of its own.
    fn DefaultHandler();
}

/// The device interrupt vectors (cortex-m-rt's `device` feature leaves them to the binary):
/// the 32 interrupts of QEMU's MPS2 images (the UARTs, the timers…), all to DefaultHandler.
/// None is taken: the flash driver's timer-0 interrupt only wakes the core from `wfi` with
/// PRIMASK set.
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
static __INTERRUPTS: [unsafe extern "C" fn(); 32] = [DefaultHandler; 32];

/// The weight slots start at the beginning of the emulated flash.
const SLOTS_BASE: u32 = 0;

#[entry]
fn main() -> ! {
    let cp = cortex_m::Peripherals::take().unwrap();
    let counter = SysTickCounter::start(cp.SYST);
    // SAFETY: UART0 is this firmware's only serial port and is driven from here alone.
    let uart = unsafe { Uart::new(UART0_BASE) };
    let model = cortex_m::singleton!(: Model<'static> = Model::from_bytes(MODEL).unwrap()).unwrap();
    let arena = cortex_m::singleton!(: [u8; ARENA_SIZE] = [0; ARENA_SIZE]).unwrap();
    hprintln!(
        "fixnet serving on UART0: model {} bytes, CRC {:08x}, arena {} bytes",
        model.len(),
        model.crc(),
        model.arena_size()
    );

    let flash = match SemihostingFlash::open() {
        Ok(flash) if TRAIN_ARENA_SIZE > 0 => Some(flash),
        Ok(_) => {
            hprintln!("the model cannot be fine-tuned: classification only");
            None
        }
        Err(e) => {
            hprintln!("no flash file ({:?}): classification only", e);
            None
        }
    };
    let mut board = BoardInfo {
        name: "qemu-mps2-an386",
        firmware_version: env!("CARGO_PKG_VERSION"),
        flash_bytes: 0,
        flash_erase_bytes: 0,
    };
    if let Some(flash) = flash {
        board.flash_bytes = flash::CAPACITY as u32;
        board.flash_erase_bytes = flash::ERASE_SIZE as u32;
        let buffers = TrainingBuffers {
            train_arena: cortex_m::singleton!(: [u8; TRAIN_ARENA_SIZE] = [0; TRAIN_ARENA_SIZE])
                .unwrap(),
            arena,
            payload: cortex_m::singleton!(: [u32; PAYLOAD_WORDS] = [0; PAYLOAD_WORDS]).unwrap(),
        };
        let slot = slot_size(flash::ERASE_SIZE);
        let training = Training::new(model, buffers, flash, SLOTS_BASE, slot).unwrap();
        match training.boot() {
            Boot::Factory => hprintln!("fine-tuning on; factory weights"),
            Boot::Saved { generation } => {
                hprintln!("fine-tuning on; saved weights, generation {}", generation)
            }
            Boot::Unreadable => hprintln!("fine-tuning on; saved weights unreadable: factory"),
        }
        let mut server =
            Server::with_backend(training, uart, Led::new(), SysTickDelay, counter, board).unwrap();
        server.serve()
    }
    let interp = Interpreter::new(model, arena).unwrap();
    let mut server = Server::new(
        interp,
        uart,
        Led::new(),
        SysTickDelay,
        counter,
        NoFineTuning,
        board,
    )
    .unwrap();
    server.serve()
}
