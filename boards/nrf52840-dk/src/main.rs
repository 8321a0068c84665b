//! fixnet's serving firmware on the nRF52840 DK: answers the serial protocol
//! (`fixnet_app::protocol`) on the J-Link virtual COM port (UART0 on P0.06/P0.08, 115200
//! 8N1) with the embedded model, timing inferences with the DWT cycle counter. LED1 (P0.13)
//! is lit while a request is being handled. Logs go out over RTT (defmt).
#![no_std]
#![no_main]

mod link;

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use embedded_hal::digital::{ErrorType, OutputPin};
use fixnet::storage::WeightStore;
use fixnet::{Interpreter, Model};
use fixnet_app::{BoardInfo, CounterUnit, CycleCounter, NoFineTuning, Server, ARENA_SIZE, MODEL};
use nrf52840_hal::clocks::Clocks;
use nrf52840_hal::gpio::{p0, Level};
use nrf52840_hal::nvmc::Nvmc;
use nrf52840_hal::pac::{self, NVMC};
use nrf52840_hal::timer::Timer;
use panic_probe as _;

use crate::link::Link;

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
    let led = ActiveLow(port0.p0_13.into_push_pull_output(Level::High).degrade());
    let link = Link::new(
        p.UART0,
        port0.p0_06.into_push_pull_output(Level::High).degrade(),
        port0.p0_08.into_floating_input().degrade(),
    );

    let model = Model::from_bytes(MODEL).unwrap();
    let (flash_bytes, flash_erase_bytes) = open_weights(p.NVMC, model.crc());

    let arena = cortex_m::singleton!(: [u8; ARENA_SIZE] = [0; ARENA_SIZE]).unwrap();
    let interp = Interpreter::new(&model, arena).unwrap();
    let board = BoardInfo {
        name: "nrf52840-dk",
        firmware_version: env!("CARGO_PKG_VERSION"),
        flash_bytes,
        flash_erase_bytes,
    };
    let mut server =
        Server::new(interp, link, led, delay, DwtCounter, NoFineTuning, board).unwrap();
    defmt::info!(
        "fixnet serving on UART0 (115200 8N1): model {=usize} bytes, CRC {=u32:08x}, arena {=usize} bytes, {=u32} MHz",
        model.len(),
        model.crc(),
        model.arena_size(),
        SYSCLK_HZ / 1_000_000
    );
    server.serve()
}

/// Opens the two weight slots in flash (the NVMC over the region `memory.x` sets aside) and
/// logs which one holds the newest weights for this model; returns the bytes and erase size
/// set aside for weights (0, 0 if unusable).
fn open_weights(nvmc: NVMC, model_crc: u32) -> (u32, u32) {
    let start = core::ptr::addr_of!(__fixnet_weights_start) as usize;
    let end = core::ptr::addr_of!(__fixnet_weights_end) as usize;
    if start % PAGE != 0 || end % PAGE != 0 || end <= start {
        defmt::error!(
            "weight region {=usize:#x}..{=usize:#x} is not whole pages",
            start,
            end
        );
        return (0, 0);
    }
    // SAFETY: memory.x keeps this flash region out of the image; nothing else refers to it,
    // and this is the only place that makes a slice of it.
    let region = unsafe { core::slice::from_raw_parts_mut(start as *mut u8, end - start) };
    let len = region.len() as u32;
    match WeightStore::new(Nvmc::new(nvmc, region), 0, len / 2) {
        Ok(mut store) => {
            match store.newest(model_crc) {
                Ok(Some((slot, header))) => defmt::info!(
                    "saved weights: slot {=usize}, generation {=u32}, {=u32} bytes",
                    slot,
                    header.sequence,
                    header.len
                ),
                Ok(None) => defmt::info!("no saved weights for this model: factory weights"),
                Err(e) => defmt::warn!(
                    "reading the weight slots failed: {}",
                    defmt::Debug2Format(&e)
                ),
            }
            (len, PAGE as u32)
        }
        Err(e) => {
            defmt::error!(
                "weight slots do not fit the flash: {}",
                defmt::Debug2Format(&e)
            );
            (0, 0)
        }
    }
}
