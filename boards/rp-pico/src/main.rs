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
use fixnet_app::{
    BoardInfo, Boot, CounterUnit, CycleCounter, Event, Peripherals, TrainingBuffers, WeightRegion,
    ARENA_SIZE, MODEL, PAYLOAD_WORDS, TRAIN_ARENA_SIZE,
};
use fugit::RateExtU32;
use panic_probe as _;
use rp2040_hal::clocks::{init_clocks_and_plls, Clock};
use rp2040_hal::gpio::{FunctionUart, Pins};
use rp2040_hal::uart::{DataBits, StopBits, UartConfig, UartPeripheral};
use rp2040_hal::{pac, Sio, Timer, Watchdog};

use crate::flash::WeightFlash;

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
    let peripherals = Peripherals {
        link: link::link(uart),
        led,
        delay,
        counter,
    };
    let buffers = TrainingBuffers {
        arena: cortex_m::singleton!(: [u8; ARENA_SIZE] = [0; ARENA_SIZE]).unwrap(),
        train_arena: cortex_m::singleton!(: [u8; TRAIN_ARENA_SIZE] = [0; TRAIN_ARENA_SIZE])
            .unwrap(),
        payload: cortex_m::singleton!(: [u32; PAYLOAD_WORDS] = [0; PAYLOAD_WORDS]).unwrap(),
    };
    let region = match WeightFlash::new() {
        Ok(flash) => Some(WeightRegion {
            size: flash.size(),
            flash,
            base: 0,
            erase_size: flash::ERASE_SIZE,
        }),
        Err(e) => {
            defmt::error!("weight flash unusable ({}): classification only", e);
            None
        }
    };
    let board = BoardInfo {
        name: "rp-pico",
        firmware_version: env!("CARGO_PKG_VERSION"),
        flash_bytes: 0,
        flash_erase_bytes: 0,
    };
    let logger = |event| log(event, sysclk_hz);
    match fixnet_app::run(MODEL, board, peripherals, buffers, region, logger) {
        Ok(never) => match never {},
        Err(e) => defmt::panic!("cannot serve: {}", defmt::Debug2Format(&e)),
    }
}

/// Logs what the boot sequence decided.
fn log(event: Event, sysclk_hz: u32) {
    match event {
        Event::Model { bytes, crc, arena } => defmt::info!(
            "fixnet serving on UART0 (115200 8N1): model {=usize} bytes, CRC {=u32:08x}, arena {=usize} bytes, {=u32} MHz",
            bytes,
            crc,
            arena,
            sysclk_hz / 1_000_000
        ),
        Event::FineTuning(Boot::Factory) => defmt::info!("fine-tuning on; factory weights"),
        Event::FineTuning(Boot::Saved { generation }) => defmt::info!(
            "fine-tuning on; saved weights, generation {=u32}",
            generation
        ),
        Event::FineTuning(Boot::Unreadable) => {
            defmt::warn!("fine-tuning on; saved weights unreadable: factory")
        }
        Event::NoRoom { slot, region } => defmt::warn!(
            "two weight slots of {=u32} bytes do not fit the {=usize}-byte weight region: classification only",
            slot,
            region
        ),
        Event::NothingToTrain => defmt::warn!("the model cannot be fine-tuned: classification only"),
        Event::NoFlash => defmt::warn!("no weight flash: classification only"),
    }
}
