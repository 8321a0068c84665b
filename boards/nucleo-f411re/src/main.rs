//! fixnet's serving firmware on the NUCLEO-F411RE: answers the serial protocol
//! (`fixnet_app::protocol`) on the ST-LINK virtual COM port (USART2, 115200 8N1) with the
//! embedded model, timing inferences with the DWT cycle counter. LD2 (PA5) is lit while a
//! request is being handled. Logs go out over RTT (defmt).
#![no_std]
#![no_main]

mod flash;
mod link;

use cortex_m::peripheral::DWT;
use cortex_m_rt::entry;
use defmt_rtt as _;
use fixnet::storage::WeightStore;
use fixnet::{Interpreter, Model};
use fixnet_app::{BoardInfo, CounterUnit, CycleCounter, NoFineTuning, Server, ARENA_SIZE, MODEL};
use panic_probe as _;
use stm32f4xx_hal::dwt::DwtExt;
use stm32f4xx_hal::pac;
use stm32f4xx_hal::prelude::*;
use stm32f4xx_hal::rcc::Config;
use stm32f4xx_hal::serial::{self, Serial};

use crate::flash::WeightFlash;
use crate::link::Link;

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
    let link = Link::new(serial);

    let model = Model::from_bytes(MODEL).unwrap();
    let (flash_bytes, flash_erase_bytes) = open_weights(dp.FLASH, model.crc());

    let arena = cortex_m::singleton!(: [u8; ARENA_SIZE] = [0; ARENA_SIZE]).unwrap();
    let interp = Interpreter::new(&model, arena).unwrap();
    let board = BoardInfo {
        name: "nucleo-f411re",
        firmware_version: env!("CARGO_PKG_VERSION"),
        flash_bytes,
        flash_erase_bytes,
    };
    let mut server =
        Server::new(interp, link, led, delay, DwtCounter, NoFineTuning, board).unwrap();
    defmt::info!(
        "fixnet serving on USART2 (115200 8N1): model {=usize} bytes, CRC {=u32:08x}, arena {=usize} bytes, {=u32} MHz",
        model.len(),
        model.crc(),
        model.arena_size(),
        SYSCLK_HZ / 1_000_000
    );
    server.serve()
}

/// Opens the two weight slots in flash and logs which one holds the newest weights for this
/// model; returns the bytes and erase size set aside for weights (0, 0 if unusable).
fn open_weights(flash: pac::FLASH, model_crc: u32) -> (u32, u32) {
    let flash = match WeightFlash::new(flash) {
        Ok(flash) => flash,
        Err(e) => {
            defmt::error!("weight flash unusable: {}", e);
            return (0, 0);
        }
    };
    let len = flash.size() as u32;
    match WeightStore::new(flash, 0, len / 2) {
        Ok(mut store) => {
            match store.newest(model_crc) {
                Ok(Some((slot, header))) => defmt::info!(
                    "saved weights: slot {=usize}, generation {=u32}, {=u32} bytes",
                    slot,
                    header.sequence,
                    header.len
                ),
                Ok(None) => defmt::info!("no saved weights for this model: factory weights"),
                Err(e) => defmt::warn!("reading the weight slots failed: {}", e),
            }
            (len, flash::ERASE_SIZE as u32)
        }
        Err(e) => {
            defmt::error!("weight slots do not fit the flash: {}", e);
            (0, 0)
        }
    }
}
