//! fixnet's serving firmware on the Raspberry Pi Pico: answers the serial protocol
//! (`fixnet_app::protocol`) on UART0 (GP0 TX, GP1 RX, 115200 8N1) with the embedded model,
//! timing inferences in core clock cycles with SysTick (extended to 32 bits by counting its
//! wraps); fine-tunes it on request and keeps saved weights in two flash slots, loading the
//! newest valid set at start-up. The LED (GP25) is lit while a request is being handled.
//! Logs go out over RTT (defmt).
#![no_std]
#![no_main]

mod flash;
mod link;

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};
use cortex_m_rt::exception;
use defmt_rtt as _;
use embedded_hal::digital::OutputPin;
use fixnet::{Interpreter, Model};
use fixnet_app::{
    slot_size, BoardInfo, Boot, CounterUnit, CycleCounter, NoFineTuning, Server, Training,
    TrainingBuffers, ARENA_SIZE, MODEL, PAYLOAD_WORDS, TRAIN_ARENA_SIZE,
};
use fugit::RateExtU32;
use panic_probe as _;
use rp2040_hal::clocks::{init_clocks_and_plls, Clock};
use rp2040_hal::gpio::{FunctionUart, Pins};
use rp2040_hal::uart::{DataBits, StopBits, UartConfig, UartPeripheral};
use rp2040_hal::{pac, Sio, Timer, Watchdog};

use crate::flash::WeightFlash;
use crate::link::Link;

/// The second-stage boot loader for the Pico's W25Q16JV flash (as the `rp-pico` BSP uses).
#[link_section = ".boot2"]
#[no_mangle]
#[used]
pub static BOOT2_FIRMWARE: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

/// The Pico's crystal.
const XTAL_FREQ_HZ: u32 = 12_000_000;
/// SysTick counts down from this (24 bits).
const SYST_RELOAD: u32 = 0x00FF_FFFF;

/// SysTick wraps since start-up (written by the SysTick handler only).
static SYST_WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    // A single writer: load + store is enough (thumbv6m has no atomic read-modify-write).
    SYST_WRAPS.store(
        SYST_WRAPS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// Core clock cycles: SysTick on the core clock, its 2^24 wraps counted by its exception,
/// read as one 32-bit up-counter (wraps every 34 s at 125 MHz). The Cortex-M0+ has no DWT
/// cycle counter.
struct SysTickCycles;

impl SysTickCycles {
    fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(SYST_RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        SysTickCycles
    }
}

impl CycleCounter for SysTickCycles {
    fn unit(&self) -> CounterUnit {
        CounterUnit::Cycles
    }
    fn now(&mut self) -> u32 {
        loop {
            let wraps = SYST_WRAPS.load(Ordering::Relaxed);
            let current = SYST::get_current();
            // A wrap between the two loads, or one not yet handled (interrupts masked):
            // read again once it has been counted.
            if SYST_WRAPS.load(Ordering::Relaxed) == wraps && !SCB::is_pendst_pending() {
                return (wraps << 24).wrapping_add(SYST_RELOAD - current);
            }
        }
    }
}

#[rp2040_hal::entry]
fn main() -> ! {
    let mut pac = pac::Peripherals::take().unwrap();
    let core = pac::CorePeripherals::take().unwrap();
    let mut watchdog = Watchdog::new(pac.WATCHDOG);
    let clocks = init_clocks_and_plls(
        XTAL_FREQ_HZ,
        pac.XOSC,
        pac.CLOCKS,
        pac.PLL_SYS,
        pac.PLL_USB,
        &mut pac.RESETS,
        &mut watchdog,
    )
    .ok()
    .unwrap();
    let sysclk_hz = clocks.system_clock.freq().to_Hz();
    let counter = SysTickCycles::start(core.SYST);
    // The 1 MHz TIMER as the delay (SysTick is the cycle counter).
    let delay = Timer::new(pac.TIMER, &mut pac.RESETS, &clocks);

    let sio = Sio::new(pac.SIO);
    let pins = Pins::new(
        pac.IO_BANK0,
        pac.PADS_BANK0,
        sio.gpio_bank0,
        &mut pac.RESETS,
    );
    let mut led = pins.gpio25.into_push_pull_output();
    led.set_low().unwrap();

    let uart_pins = (
        pins.gpio0.into_function::<FunctionUart>(),
        pins.gpio1.into_function::<FunctionUart>(),
    );
    let uart = UartPeripheral::new(pac.UART0, uart_pins, &mut pac.RESETS)
        .enable(
            UartConfig::new(115_200.Hz(), DataBits::Eight, None, StopBits::One),
            clocks.peripheral_clock.freq(),
        )
        .unwrap();
    let link = Link::new(uart);

    let model = cortex_m::singleton!(: Model<'static> = Model::from_bytes(MODEL).unwrap()).unwrap();
    let arena = cortex_m::singleton!(: [u8; ARENA_SIZE] = [0; ARENA_SIZE]).unwrap();
    defmt::info!(
        "fixnet serving on UART0 (115200 8N1): model {=usize} bytes, CRC {=u32:08x}, arena {=usize} bytes, {=u32} MHz",
        model.len(),
        model.crc(),
        model.arena_size(),
        sysclk_hz / 1_000_000
    );

    let mut board = BoardInfo {
        name: "rp-pico",
        firmware_version: env!("CARGO_PKG_VERSION"),
        flash_bytes: 0,
        flash_erase_bytes: 0,
    };
    let slot = slot_size(flash::ERASE_SIZE);
    match WeightFlash::new().map(|f| {
        let size = f.size();
        (f, size)
    }) {
        Ok((flash, size)) if TRAIN_ARENA_SIZE > 0 && 2 * slot as usize <= size => {
            board.flash_bytes = 2 * slot;
            board.flash_erase_bytes = flash::ERASE_SIZE as u32;
            let buffers = TrainingBuffers {
                train_arena: cortex_m::singleton!(: [u8; TRAIN_ARENA_SIZE] = [0; TRAIN_ARENA_SIZE])
                    .unwrap(),
                arena,
                payload: cortex_m::singleton!(: [u32; PAYLOAD_WORDS] = [0; PAYLOAD_WORDS])
                    .unwrap(),
            };
            let training = Training::new(model, buffers, flash, 0, slot).unwrap();
            log_boot(training.boot());
            let mut server =
                Server::with_backend(training, link, led, delay, counter, board).unwrap();
            server.serve()
        }
        Ok((_, size)) => defmt::warn!(
            "two weight slots of {=u32} bytes do not fit the {=usize}-byte weight region, or the model cannot be fine-tuned: classification only",
            slot,
            size
        ),
        Err(e) => defmt::error!("weight flash unusable ({}): classification only", e),
    }
    let interp = Interpreter::new(model, arena).unwrap();
    let mut server = Server::new(interp, link, led, delay, counter, NoFineTuning, board).unwrap();
    server.serve()
}

/// Logs which weights fine-tuning starts from.
fn log_boot(boot: Boot) {
    match boot {
        Boot::Factory => defmt::info!("fine-tuning on; factory weights"),
        Boot::Saved { generation } => {
            defmt::info!(
                "fine-tuning on; saved weights, generation {=u32}",
                generation
            )
        }
        Boot::Unreadable => defmt::warn!("fine-tuning on; saved weights unreadable: factory"),
    }
}
