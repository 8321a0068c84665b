//! fixnet's serving firmware on the BBC micro:bit v1 (nRF51822, Cortex-M0 at 16 MHz,
//! 256 KiB flash, 16 KiB RAM): answers the serial protocol (`fixnet_app::protocol`) on
//! UART0 (the USB serial port, 115200 8N1) with the embedded model (by default
//! `models/microbit_cnn.fxn`, see .cargo/config.toml), timing inferences with TIMER0;
//! the weight flash is the NVMC (two 1 KiB slots), for fine-tuning once the trainer fits the
//! RAM (see [`FINE_TUNING`]). The top-left LED of the matrix is lit
//! while a request is being handled. Runs unchanged on QEMU's `microbit` machine.
//!
//! No log channel: the RAM a defmt-rtt buffer takes is needed for the model, and the
//! protocol's `info` reply tells the host what the boot decided.
#![no_std]
#![no_main]

mod flash;
mod timer;
mod uart;

use cortex_m_rt::entry;
use fixnet_app::{
    BoardInfo, Peripherals, TrainingBuffers, WeightRegion, ARENA_SIZE, MODEL, PAYLOAD_WORDS,
    TRAIN_ARENA_SIZE,
};
use heapless::spsc::Queue;
use nrf51_pac as pac;

use crate::flash::WeightFlash;
use crate::timer::{BusyDelay, Timer0Counter};

/// Whether the firmware fine-tunes. Not yet: the core's trainer keeps fixed tables for up
/// to 32 layers and 64 saved activations (4,344 bytes on Armv6-M), and building the
/// fine-tuning server moves it through five stack slots (`fixnet_app::run`'s training frame
/// is 21,476 bytes), while 16 KiB of RAM hold the two arenas (8.0 KB for this model) and
/// the stack. The weight flash (NVMC) is set up either way; with `false` the training
/// statics take no RAM and the board serves classification only.
const FINE_TUNING: bool = false;
/// Bytes of the train arena and words of the payload buffer (none without fine-tuning).
const TRAIN_ARENA: usize = if FINE_TUNING { TRAIN_ARENA_SIZE } else { 0 };
const PAYLOAD: usize = if FINE_TUNING { PAYLOAD_WORDS } else { 0 };

/// The LED matrix's row 1 (driven high) and column 1 (driven low): the top-left LED.
const LED_ROW: usize = 13;
const LED_COL: usize = 4;

/// The LED at row 1, column 1 of the matrix: on while its row pin is high.
struct Led;

impl embedded_hal::digital::ErrorType for Led {
    type Error = core::convert::Infallible;
}

impl embedded_hal::digital::OutputPin for Led {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        // SAFETY: OUTCLR only clears the pins whose bits are set; nothing else drives them.
        unsafe { (*pac::GPIO::ptr()).outclr.write(|w| w.bits(1 << LED_ROW)) };
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Self::Error> {
        // SAFETY: as above, for OUTSET.
        unsafe { (*pac::GPIO::ptr()).outset.write(|w| w.bits(1 << LED_ROW)) };
        Ok(())
    }
}

#[entry]
fn main() -> ! {
    let p = pac::Peripherals::take().unwrap();
    // The 16 MHz crystal: UART baud rates within spec whatever the temperature.
    // SAFETY: writing 1 to a task register starts it.
    p.CLOCK.tasks_hfclkstart.write(|w| unsafe { w.bits(1) });
    while p.CLOCK.events_hfclkstarted.read().bits() == 0 {}

    // Row 1 and column 1 as outputs, the LED off (row low, column low).
    // SAFETY: DIRSET/OUTCLR only touch the pins whose bits are set.
    p.GPIO
        .dirset
        .write(|w| unsafe { w.bits((1 << LED_ROW) | (1 << LED_COL)) });
    p.GPIO
        .outclr
        .write(|w| unsafe { w.bits((1 << LED_ROW) | (1 << LED_COL)) });

    let queue = cortex_m::singleton!(: Queue<u8, { uart::RX_QUEUE }> = Queue::new()).unwrap();
    let peripherals = Peripherals {
        link: uart::link(p.UART0, queue),
        led: Led,
        delay: BusyDelay,
        counter: Timer0Counter::start(p.TIMER0),
    };
    let buffers = TrainingBuffers {
        arena: cortex_m::singleton!(: [u8; ARENA_SIZE] = [0; ARENA_SIZE]).unwrap(),
        train_arena: cortex_m::singleton!(: [u8; TRAIN_ARENA] = [0; TRAIN_ARENA]).unwrap(),
        payload: cortex_m::singleton!(: [u32; PAYLOAD] = [0; PAYLOAD]).unwrap(),
    };
    let region = WeightFlash::new(p.NVMC)
        .ok()
        .filter(|_| FINE_TUNING)
        .map(|flash| WeightRegion {
            size: flash.size(),
            flash,
            base: 0,
            erase_size: flash::PAGE,
        });
    let board = BoardInfo {
        name: "microbit",
        firmware_version: env!("CARGO_PKG_VERSION"),
        flash_bytes: 0,
        flash_erase_bytes: 0,
    };
    // Returns only if the embedded model is broken: nothing to serve.
    let _ = fixnet_app::run(MODEL, board, peripherals, buffers, region, |_| {});
    panic!("the embedded model cannot be served")
}

/// Halts with the LED on: there is no console to tell more.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    cortex_m::interrupt::disable();
    let _ = embedded_hal::digital::OutputPin::set_high(&mut Led);
    loop {
        cortex_m::asm::wfi();
    }
}
