//! fixnet's serving firmware on the NUCLEO-F411RE: answers the serial protocol
//! (`fixnet_app::protocol`) on the ST-LINK virtual COM port (USART2, 115200 8N1) with the
//! embedded model, timing inferences with the DWT cycle counter; fine-tunes it on request
//! and keeps saved weights in two flash slots, loading the newest valid set at start-up.
//! LD2 (PA5) is lit while a request is being handled. Logs go out over RTT (defmt).
#![no_std]
#![no_main]

mod flash;
mod link;

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use fixnet_app::{
    BoardInfo, Boot, CounterUnit, CycleCounter, Event, Peripherals, TrainingBuffers, WeightRegion,
    ARENA_SIZE, MODEL, PAYLOAD_WORDS, TRAIN_ARENA_SIZE,
};
use panic_probe as _;
use stm32f4xx_hal::dwt::DwtExt;
use stm32f4xx_hal::pac;
use stm32f4xx_hal::prelude::*;
use stm32f4xx_hal::rcc::Config;
use stm32f4xx_hal::serial::{self, Serial};

use crate::flash::WeightFlash;

/// Core clock: the 16 MHz HSI through the PLL (no dependence on the board's HSE options).
const SYSCLK_HZ: u32 = 100_000_000;

/// The DWT cycle counter, enabled at start-up; wraps every 43 s at 100 MHz.
struct DwtCounter;

impl CycleCounter for DwtCounter {
    fn unit(&self) -> CounterUnit {
        CounterUnit::Cycles
    }
    fn now(&mut self) -> u32 {
        DWT::cycle_count()
    }
}

#[entry]
fn main() -> ! {
    let dp = pac::Peripherals::take().unwrap();
    let cp = cortex_m::Peripherals::take().unwrap();
    let mut rcc = dp.RCC.freeze(Config::hsi().sysclk(SYSCLK_HZ.Hz()));

    // DwtExt::constrain enables trace and the cycle counter; its delay busy-waits on it.
    let dwt = cp.DWT.constrain(cp.DCB, &rcc.clocks);
    let delay = dwt.delay();

    let gpioa = dp.GPIOA.split(&mut rcc);
    let mut led = gpioa.pa5.into_push_pull_output();
    led.set_low();

    let serial = Serial::new(
        dp.USART2,
        (gpioa.pa2, gpioa.pa3),
        serial::Config::default().baudrate(115_200.bps()),
        &mut rcc,
    )
    .unwrap();
    let peripherals = Peripherals {
        link: link::link(serial),
        led,
        delay,
        counter: DwtCounter,
    };
    let buffers = TrainingBuffers {
        arena: cortex_m::singleton!(: [u8; ARENA_SIZE] = [0; ARENA_SIZE]).unwrap(),
        train_arena: cortex_m::singleton!(: [u8; TRAIN_ARENA_SIZE] = [0; TRAIN_ARENA_SIZE])
            .unwrap(),
        payload: cortex_m::singleton!(: [u32; PAYLOAD_WORDS] = [0; PAYLOAD_WORDS]).unwrap(),
    };
    let region = match WeightFlash::new(dp.FLASH) {
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
        name: "nucleo-f411re",
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
            "fixnet serving on USART2 (115200 8N1): model {=usize} bytes, CRC {=u32:08x}, arena {=usize} bytes, {=u32} MHz",
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
