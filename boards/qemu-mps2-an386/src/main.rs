//! The serving firmware: answers fixnet's serial protocol (see `fixnet_app::protocol`) on
//! UART0 with the embedded model. Start it with `fixnet qemu`, or by hand as in README.md.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use fixnet::{Interpreter, Model};
use fixnet_app::{BoardInfo, NoFineTuning, Server, ARENA_SIZE, MODEL};
use fixnet_qemu_mps2_an386::flash::{self, SemihostingFlash};
use fixnet_qemu_mps2_an386::uart::{Uart, UART0_BASE};
use fixnet_qemu_mps2_an386::{Led, SysTickCounter, SysTickDelay};

#[entry]
fn main() -> ! {
    let cp = cortex_m::Peripherals::take().unwrap();
    let counter = SysTickCounter::start(cp.SYST);
    // SAFETY: UART0 is this firmware's only serial port and is driven from here alone.
    let uart = unsafe { Uart::new(UART0_BASE) };

    // Opened now so that a host without semihosting file I/O is noticed at start-up; the
    // weights persisted in it are used once fine-tuning is wired in (see README.md).
    let flash = SemihostingFlash::open();
    let (flash_bytes, flash_erase_bytes) = match flash {
        Ok(_) => (flash::CAPACITY as u32, flash::ERASE_SIZE as u32),
        Err(_) => (0, 0),
    };

    let model = Model::from_bytes(MODEL).unwrap();
    let arena = cortex_m::singleton!(: [u8; ARENA_SIZE] = [0; ARENA_SIZE]).unwrap();
    let interp = Interpreter::new(&model, arena).unwrap();
    let board = BoardInfo {
        name: "qemu-mps2-an386",
        firmware_version: env!("CARGO_PKG_VERSION"),
        flash_bytes,
        flash_erase_bytes,
    };
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
    hprintln!(
        "fixnet serving on UART0: model {} bytes, CRC {:08x}, arena {} bytes",
        model.len(),
        model.crc(),
        model.arena_size()
    );
    server.serve()
}
