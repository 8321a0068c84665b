//! fixnet's serving firmware on the nRF52840 DK: answers the serial protocol
//! (`fixnet_app::protocol`) on the J-Link virtual COM port (UART0 on P0.06/P0.08, 115200
//! 8N1) with the embedded model, timing inferences with the DWT cycle counter; fine-tunes it
//! on request and keeps saved weights in two flash slots (NVMC), loading the newest valid set
//! at start-up. LED1 (P0.13) is lit while a request is being handled. Logs go out over RTT
//! (defmt).
#![no_std]
#![no_main]

mod link;

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use embedded_hal::digital::{ErrorType, OutputPin};
use fixnet_app::{
    BoardInfo, Boot, CounterUnit, CycleCounter, Event, Peripherals, TrainingBuffers, WeightRegion,
    ARENA_SIZE, MODEL, PAYLOAD_WORDS, TRAIN_ARENA_SIZE,
};
use nrf52840_hal::clocks::Clocks;
use nrf52840_hal::gpio::{p0, Level};
use nrf52840_hal::nvmc::Nvmc;
use nrf52840_hal::pac::{self, NVMC};
use nrf52840_hal::timer::Timer;
use panic_probe as _;

/// The nRF52840's fixed core clock.
const SYSCLK_HZ: u32 = 64_000_000;
/// NVMC page: the flash's erase granularity.
const PAGE: usize = 4096;

/// The DWT cycle counter, enabled at start-up; wraps every 67 s at 64 MHz.
struct DwtCounter;

impl CycleCounter for DwtCounter {
    fn unit(&self) -> CounterUnit {
        CounterUnit::Cycles
    }
    fn now(&mut self) -> u32 {
        DWT::cycle_count()
    }
}

/// A LED wired to light when its pin is low (the DK's LEDs), driven as "high = on".
struct ActiveLow<P>(P);

impl<P: OutputPin> ErrorType for ActiveLow<P> {
    type Error = P::Error;
}

impl<P: OutputPin> OutputPin for ActiveLow<P> {
    fn set_low(&mut self) -> Result<(), P::Error> {
        self.0.set_high()
    }
    fn set_high(&mut self) -> Result<(), P::Error> {
        self.0.set_low()
    }
}

extern "C" {
    static __fixnet_weights_start: u8;
    static __fixnet_weights_end: u8;
}

#[entry]
fn main() -> ! {
    let p = pac::Peripherals::take().unwrap();
    let mut cp = cortex_m::Peripherals::take().unwrap();
    // The crystal: UART baud rates within spec whatever the temperature.
    let _clocks = Clocks::new(p.CLOCK).enable_ext_hfosc();
    cp.DCB.enable_trace();
    cp.DWT.enable_cycle_counter();
    // TIMER0 at 1 MHz as the delay (SysTick and the DWT stay free).
    let delay = Timer::new(p.TIMER0);

    let port0 = p0::Parts::new(p.P0);
    let peripherals = Peripherals {
        link: link::link(
            p.UART0,
            port0.p0_06.into_push_pull_output(Level::High).degrade(),
            port0.p0_08.into_floating_input().degrade(),
        ),
        led: ActiveLow(port0.p0_13.into_push_pull_output(Level::High).degrade()),
        delay,
        counter: DwtCounter,
    };
    let buffers = TrainingBuffers {
        arena: cortex_m::singleton!(: [u8; ARENA_SIZE] = [0; ARENA_SIZE]).unwrap(),
        train_arena: cortex_m::singleton!(: [u8; TRAIN_ARENA_SIZE] = [0; TRAIN_ARENA_SIZE])
            .unwrap(),
        payload: cortex_m::singleton!(: [u32; PAYLOAD_WORDS] = [0; PAYLOAD_WORDS]).unwrap(),
    };
    let region = match weight_flash(p.NVMC) {
        Ok((flash, size)) => Some(WeightRegion {
            flash,
            base: 0,
            size,
            erase_size: PAGE,
        }),
        Err(e) => {
            defmt::error!("weight flash unusable ({}): classification only", e);
            None
        }
    };
    let board = BoardInfo {
        name: "nrf52840-dk",
        firmware_version: env!("CARGO_PKG_VERSION"),
        flash_bytes: 0,
        flash_erase_bytes: 0,
    };
    match fixnet_app::run(MODEL, board, peripherals, buffers, region, log) {
        Ok(never) => match never {},
        Err(e) => defmt::panic!("cannot serve: {}", defmt::Debug2Format(&e)),
    }
}

/// Logs what the boot sequence decided.
fn log(event: Event) {
    match event {
        Event::Model { bytes, crc, arena } => defmt::info!(
            "fixnet serving on UART0 (115200 8N1): model {=usize} bytes, CRC {=u32:08x}, arena {=usize} bytes, {=u32} MHz",
            bytes,
            crc,
            arena,
            SYSCLK_HZ / 1_000_000
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

/// The NVMC over the flash region `memory.x` sets aside for weights, and its size.
fn weight_flash(nvmc: NVMC) -> Result<(Nvmc<NVMC>, usize), &'static str> {
    let start = core::ptr::addr_of!(__fixnet_weights_start) as usize;
    let end = core::ptr::addr_of!(__fixnet_weights_end) as usize;
    if start % PAGE != 0 || end % PAGE != 0 || end <= start {
        return Err("the weight region is not whole pages");
    }
    // SAFETY: memory.x keeps this flash region out of the image; nothing else refers to it,
    // and this is the only place that makes a slice of it (called once, from main).
    let region = unsafe { core::slice::from_raw_parts_mut(start as *mut u8, end - start) };
    Ok((Nvmc::new(nvmc, region), end - start))
}
