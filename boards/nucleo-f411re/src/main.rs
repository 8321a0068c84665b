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
use fixnet::{Interpreter, Model};
use fixnet_app::{
    slot_size, BoardInfo, Boot, CounterUnit, CycleCounter, NoFineTuning, Server, Training,
    TrainingBuffers, ARENA_SIZE, MODEL, PAYLOAD_WORDS, TRAIN_ARENA_SIZE,
};
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

    let model = cortex_m::singleton!(: Model<'static> = Model::from_bytes(MODEL).unwrap()).unwrap();
    let arena = cortex_m::singleton!(: [u8; ARENA_SIZE] = [0; ARENA_SIZE]).unwrap();
    defmt::info!(
        "fixnet serving on USART2 (115200 8N1): model {=usize} bytes, CRC {=u32:08x}, arena {=usize} bytes, {=u32} MHz",
        model.len(),
        model.crc(),
        model.arena_size(),
        SYSCLK_HZ / 1_000_000
    );

    let mut board = BoardInfo {
        name: "nucleo-f411re",
        firmware_version: env!("CARGO_PKG_VERSION"),
        flash_bytes: 0,
        flash_erase_bytes: 0,
    };
    let slot = slot_size(flash::ERASE_SIZE);
    match WeightFlash::new(dp.FLASH) {
        Ok(flash) if TRAIN_ARENA_SIZE > 0 && 2 * slot as usize <= flash.size() => {
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
                Server::with_backend(training, link, led, delay, DwtCounter, board).unwrap();
            server.serve()
        }
        Ok(flash) => defmt::warn!(
            "two weight slots of {=u32} bytes do not fit the {=usize}-byte weight region, or the model cannot be fine-tuned: classification only",
            slot,
            flash.size()
        ),
        Err(e) => defmt::error!("weight flash unusable ({}): classification only", e),
    }
    let interp = Interpreter::new(model, arena).unwrap();
    let mut server =
        Server::new(interp, link, led, delay, DwtCounter, NoFineTuning, board).unwrap();
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
