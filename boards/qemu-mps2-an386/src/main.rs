//! Recognises the first 100 MNIST test digits with the embedded model and reports, over
//! semihosting, each prediction and the guest instructions it took (SysTick × 40 under
//! `-icount shift=0`).
#![no_std]
#![no_main]

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use fixnet::{Interpreter, Model};
use panic_halt as _;

include!(concat!(env!("OUT_DIR"), "/model_info.rs"));

static MODEL: &[u8] = fixnet::include_model!(concat!(env!("OUT_DIR"), "/model.fxn"));
static DIGITS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/digits.bin"));
static LABELS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/labels.bin"));

/// Guest instructions per SysTick tick: the 25 MHz core clock under `-icount shift=0`.
const INSTRUCTIONS_PER_TICK: u32 = 40;
const SYST_MASK: u32 = 0x00FF_FFFF;

#[entry]
fn main() -> ! {
    let code = match run() {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(e) => {
            hprintln!("error: {}", e);
            debug::EXIT_FAILURE
        }
    };
    debug::exit(code);
    loop {}
}

fn run() -> Result<(), fixnet::Error> {
    let mut cp = cortex_m::Peripherals::take().ok_or(fixnet::Error::InvalidParameter)?;
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(SYST_MASK);
    cp.SYST.clear_current();
    cp.SYST.enable_counter();

    let model = Model::from_bytes(MODEL)?;
    let arena = cortex_m::singleton!(: [u8; ARENA_SIZE] = [0; ARENA_SIZE])
        .ok_or(fixnet::Error::InvalidParameter)?;
    let mut interp = Interpreter::new(&model, arena)?;

    let mut counts = [0u32; 100];
    let mut correct = 0;
    let n = LABELS.len().min(counts.len());
    for (i, (pixels, &label)) in DIGITS.chunks_exact(784).zip(LABELS).take(n).enumerate() {
        let start = cortex_m::peripheral::SYST::get_current();
        interp.set_input_grey(pixels)?;
        interp.invoke()?;
        let end = cortex_m::peripheral::SYST::get_current();
        // SysTick counts down and wraps at 2^24 ticks (16.7 M ticks = 671 M instructions).
        let instructions = (start.wrapping_sub(end) & SYST_MASK) * INSTRUCTIONS_PER_TICK;
        let (digit, _) = interp.top1();
        correct += usize::from(digit == usize::from(label));
        counts[i] = instructions;
        hprintln!("digit {} label {} predicted {} instructions {}", i, label, digit, instructions);
    }
    let counts = &mut counts[..n];
    counts.sort_unstable();
    hprintln!(
        "accuracy {}/{} median_instructions {} model_bytes {} arena_bytes {}",
        correct,
        n,
        counts[n / 2],
        model.len(),
        model.arena_size()
    );
    Ok(())
}
