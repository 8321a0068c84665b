//! Benchmark: runs the embedded model on the first 100 test digits and reports over
//! semihosting each prediction, the instructions of every layer (SysTick × 40 under
//! `-icount shift=0`), the median per inference and the peak stack. `fixnet bench --qemu`
//! builds, runs and parses this; the line formats below are that parser's contract.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use fixnet::{Interpreter, Model};
use fixnet_app::{CycleCounter, ARENA_SIZE, MODEL};
use fixnet_qemu_mps2_an386::{paint_stack, stack_peak, SysTickCounter};

static DIGITS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/digits.bin"));
static LABELS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/labels.bin"));

const RUNS: usize = 100;
/// Most ops a model may have (the format's limit is 32).
const MAX_OPS: usize = 32;

#[entry]
fn main() -> ! {
    paint_stack();
    let code = match run() {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(e) => {
            hprintln!("error: {:?}", e);
            debug::EXIT_FAILURE
        }
    };
    debug::exit(code);
    // Only reached without a semihosting host (QEMU always is one).
    loop {
        cortex_m::asm::wfi();
    }
}

/// Median of `values` (the upper one of the middle two), sorting them.
fn median(values: &mut [u32]) -> u32 {
    values.sort_unstable();
    values[values.len() / 2]
}

fn run() -> Result<(), fixnet::Error> {
    let cp = cortex_m::Peripherals::take().ok_or(fixnet::Error::InvalidParameter)?;
    let mut counter = SysTickCounter::start(cp.SYST);

    let model = Model::from_bytes(MODEL)?;
    let arena = cortex_m::singleton!(: [u8; ARENA_SIZE] = [0; ARENA_SIZE])
        .ok_or(fixnet::Error::InvalidParameter)?;
    let mut interp = Interpreter::new(&model, arena)?;
    let ops = model.op_count().min(MAX_OPS);
    let input_len = interp.input().len();
    if input_len != 784 {
        // A model for other inputs: time it on the digits' bytes anyway, cut or repeated.
        hprintln!("note: model input has {} elements, not 784", input_len);
    }

    // Statics, not locals: the measured stack peak should be the inference's, not these
    // tables'.
    let totals =
        cortex_m::singleton!(: [u32; RUNS] = [0; RUNS]).ok_or(fixnet::Error::InvalidParameter)?;
    let layers = cortex_m::singleton!(: [[u32; RUNS]; MAX_OPS] = [[0; RUNS]; MAX_OPS])
        .ok_or(fixnet::Error::InvalidParameter)?;
    let mut correct = 0;
    let n = (LABELS.len()).min(RUNS);
    let mut image = [0u8; 784];
    for i in 0..n {
        let digit = &DIGITS[i * 784..(i + 1) * 784];
        let label = LABELS[i];
        image.copy_from_slice(digit);
        let start = counter.now();
        if input_len == 784 {
            interp.set_input_grey(&image)?;
        } else {
            for (k, q) in interp.input_mut().iter_mut().enumerate() {
                *q = (i16::from(image[k % 784]) - 128) as i8;
            }
        }
        let mut last = counter.now();
        interp.invoke_observed(|index, _| {
            let now = counter.now();
            if index < MAX_OPS {
                layers[index][i] = counter.elapsed(last, now);
            }
            last = counter.now();
        })?;
        let end = counter.now();
        // The total includes quantizing the input and the observer's own reads of SysTick
        // (a few instructions per op), as a caller of `invoke` would not pay; the per-layer
        // figures exclude both.
        totals[i] = counter.elapsed(start, end);
        let (digit, _) = interp.top1();
        correct += usize::from(digit == usize::from(label));
        hprintln!(
            "digit {} label {} predicted {} instructions {}",
            i,
            label,
            digit,
            totals[i]
        );
    }
    for (index, counts) in layers.iter_mut().enumerate().take(ops) {
        let op = model.op(index)?;
        hprintln!(
            "layer {} {} instructions {}",
            index,
            op.kind().name(),
            median(&mut counts[..n])
        );
    }
    let peak = stack_peak();
    hprintln!(
        "accuracy {}/{} median_instructions {} model_bytes {} arena_bytes {} stack_peak_bytes {}",
        correct,
        n,
        median(&mut totals[..n]),
        model.len(),
        model.arena_size(),
        peak
    );
    Ok(())
}
