//! Benchmark: runs the embedded model 100 times and reports over semihosting each
//! prediction and the CRC-32 of each output vector, the instructions of every layer (SysTick
//! × 40 under `-icount shift=0`), the median per inference and the peak stack. A model that
//! reads one 28×28 grey picture runs the first 100 test digits; any other model runs 100
//! full-range random int8 inputs from a fixed-seed xorshift generator, which the host
//! repeats to check every output. `fixnet bench --qemu` builds, runs and parses this; the
//! line formats below are that parser's contract.
//!
//! The firmware is kept lean so that its flash size measures the runtime, not the harness:
//! no `core::fmt` anywhere (lines are assembled by a small integer formatter and written as
//! raw bytes over semihosting), a panic handler of its own that prints nothing but `panic`
//! and exits (the board library's handler formats the panic message), and fixnet built with
//! only the model's ops (see Cargo.toml). The board library is therefore not used; the few
//! lines of SysTick and stack painting it would provide are repeated here.
//!
//! It builds for `thumbv7em-none-eabihf` (the DSP kernels) and for `thumbv6m-none-eabi` (the
//! portable kernels, Armv6-M instructions only), and both run on the same emulated
//! Cortex-M4: Armv6-M is a subset of Armv7E-M, so the instructions counted are the ones a
//! Cortex-M0+ would execute.
#![no_std]
#![no_main]

use core::ptr::addr_of_mut;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio};
use fixnet::format::crc32::crc32;
use fixnet::{Error, Interpreter, Model};

/// The model measured (see build.rs).
static MODEL: &[u8] = fixnet::include_model!(concat!(env!("OUT_DIR"), "/model.fxn"));
include!(concat!(env!("OUT_DIR"), "/model_sizes.rs"));

static DIGITS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/digits.bin"));
static LABELS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/labels.bin"));

const RUNS: usize = 100;
/// Pixels of one digit.
const DIGIT_LEN: usize = 28 * 28;
/// Seed of the random inputs' generator: `fixnet bench` (tools/src/device/bench/inputs.rs)
/// makes the same inputs from it.
const RANDOM_SEED: u32 = 0x2545_F491;

extern "C" {
    /// cortex-m-rt's handler for every exception and interrupt without one of its own.
    fn DefaultHandler();
}

/// The device interrupt vectors (cortex-m-rt's `device` feature leaves them to the binary).
/// The benchmark enables no interrupt; the linker script wants at least one vector.
#[link_section = ".vector_table.interrupts"]
#[no_mangle]
static __INTERRUPTS: [unsafe extern "C" fn(); 1] = [DefaultHandler];

/// The interpreter's arena.
static mut ARENA: [u8; ARENA_SIZE] = [0; ARENA_SIZE];
/// Instructions of each inference.
static mut TOTALS: [u32; RUNS] = [0; RUNS];
/// Instructions of each op (outer index) in each inference.
static mut LAYERS: [[u32; RUNS]; OP_COUNT] = [[0; RUNS]; OP_COUNT];

#[entry]
fn main() -> ! {
    paint_stack();
    let code = match run() {
        Ok(()) => debug::EXIT_SUCCESS,
        Err(e) => {
            let mut line = Line::new();
            line.str("error: ").str(error_name(e));
            line.send();
            debug::EXIT_FAILURE
        }
    };
    exit(code)
}

/// Exits QEMU through semihosting.
fn exit(code: debug::ExitStatus) -> ! {
    debug::exit(code);
    // Only reached without a semihosting host (QEMU always is one).
    loop {
        cortex_m::asm::wfi();
    }
}

/// Reports a panic without formatting its message (that would link `core::fmt`) and makes
/// QEMU exit with a failure status, so a test never waits on a dead firmware.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    let mut line = Line::new();
    line.str("panic");
    line.send();
    exit(debug::EXIT_FAILURE)
}

/// One line of output, assembled in a buffer and written to the host's stdout in one
/// semihosting call.
struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Line {
            buf: [0; 160],
            len: 0,
        }
    }

    /// Appends `s` (cut at the buffer's end).
    fn str(&mut self, s: &str) -> &mut Self {
        for &b in s.as_bytes() {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        self
    }

    /// Appends `n` in decimal.
    fn num(&mut self, n: usize) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            if self.len < self.buf.len() {
                self.buf[self.len] = d;
                self.len += 1;
            }
        }
        self
    }

    /// Appends ` word n`.
    fn field(&mut self, word: &str, n: usize) -> &mut Self {
        self.str(" ").str(word).str(" ").num(n)
    }

    /// Writes the line and a newline to the host's stdout.
    fn send(&mut self) {
        self.str("\n");
        if let Ok(mut out) = hio::hstdout() {
            let _ = out.write_all(&self.buf[..self.len]);
        }
    }
}

/// The variant of `e`, without its fields.
fn error_name(e: Error) -> &'static str {
    match e {
        Error::BadMagic => "BadMagic",
        Error::UnsupportedVersion(_) => "UnsupportedVersion",
        Error::Truncated => "Truncated",
        Error::CrcMismatch { .. } => "CrcMismatch",
        Error::Misaligned => "Misaligned",
        Error::BadHeader => "BadHeader",
        Error::OffsetOutOfRange => "OffsetOutOfRange",
        Error::UnknownOp(_) => "UnknownOp",
        Error::BadDataType => "BadDataType",
        Error::BadTensorIndex(_) => "BadTensorIndex",
        Error::InconsistentShape => "InconsistentShape",
        Error::InvalidParameter => "InvalidParameter",
        Error::BadQuantization => "BadQuantization",
        Error::BadPlan => "BadPlan",
        Error::BadOpOrder => "BadOpOrder",
        Error::CapacityExceeded => "CapacityExceeded",
        Error::ArenaTooSmall { .. } => "ArenaTooSmall",
        Error::ShapeMismatch => "ShapeMismatch",
        Error::BufferTooSmall { .. } => "BufferTooSmall",
    }
}

/// The instruction counter: SysTick on the mps2-an386, TIMER0 on the micro:bit.
#[cfg(not(feature = "microbit"))]
mod clock {
    use cortex_m::peripheral::syst::SystClkSource;
    use cortex_m::peripheral::SYST;

    /// Guest instructions per SysTick tick: the 25 MHz core clock under `-icount shift=0`.
    const INSTRUCTIONS_PER_TICK: u32 = 40;
    const SYST_MASK: u32 = 0x00FF_FFFF;

    /// Starts SysTick counting down from 2^24 − 1 on the core clock, without interrupts.
    pub fn start(mut syst: SYST) {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(SYST_MASK);
        syst.clear_current();
        syst.enable_counter();
    }

    /// The counter now.
    #[inline(always)]
    pub fn now() -> u32 {
        SYST::get_current()
    }

    /// Instructions between two readings (wraps at 2^24 ticks, 671 M instructions).
    pub fn elapsed(start: u32, end: u32) -> u32 {
        (start.wrapping_sub(end) & SYST_MASK) * INSTRUCTIONS_PER_TICK
    }
}

/// The instruction counter on QEMU's micro:bit: the nRF51's TIMER0, 32 bits at 16 MHz.
/// Under `-icount shift=0` it follows the virtual clock, one nanosecond per instruction,
/// so a tick is 62.5 instructions. (QEMU's Cortex-M0 also has a SysTick on the 16 MHz core
/// clock, but the real nRF51 has none; TIMER0 is what a board would use.)
#[cfg(feature = "microbit")]
mod clock {
    use cortex_m::peripheral::SYST;

    const TIMER0: usize = 0x4000_8000;
    const TASKS_START: usize = TIMER0;
    const TASKS_CLEAR: usize = TIMER0 + 0x00C;
    const TASKS_CAPTURE0: usize = TIMER0 + 0x040;
    const MODE: usize = TIMER0 + 0x504;
    const BITMODE: usize = TIMER0 + 0x508;
    const PRESCALER: usize = TIMER0 + 0x510;
    const CC0: usize = TIMER0 + 0x540;

    fn write(register: usize, value: u32) {
        // SAFETY: a TIMER0 register of the nRF51 (reference manual, TIMER chapter).
        unsafe { (register as *mut u32).write_volatile(value) }
    }

    /// Starts TIMER0 from zero: timer mode, 32 bits, prescaler 0 (16 MHz).
    pub fn start(_: SYST) {
        write(MODE, 0);
        write(BITMODE, 3);
        write(PRESCALER, 0);
        write(TASKS_CLEAR, 1);
        write(TASKS_START, 1);
    }

    /// The counter now (captured into CC[0]).
    #[inline(always)]
    pub fn now() -> u32 {
        write(TASKS_CAPTURE0, 1);
        // SAFETY: CC[0] of TIMER0, just written by the capture task.
        unsafe { (CC0 as *const u32).read_volatile() }
    }

    /// Instructions between two readings: 62.5 per tick.
    pub fn elapsed(start: u32, end: u32) -> u32 {
        (u64::from(end.wrapping_sub(start)) * 125 / 2) as u32
    }
}

use clock::elapsed;

/// The word painted over the free stack.
const STACK_PAINT: u32 = 0xC0FF_EE55;

extern "C" {
    static mut __sheap: u32;
    static _stack_start: u32;
}

/// Paints the stack from the end of static RAM up to a little below the current stack
/// pointer, so that [`stack_peak`] can later find how deep the stack went.
#[inline(never)]
fn paint_stack() {
    // Leave the words of this call's own frame alone.
    let limit = cortex_m::register::msp::read() as usize - 64;
    let mut p = core::ptr::addr_of_mut!(__sheap);
    while (p as usize) < limit {
        // SAFETY: [__sheap, sp − 64) is RAM nothing else uses: below the live stack, above
        // every static (cortex-m-rt's layout; this firmware has no heap).
        unsafe {
            p.write_volatile(STACK_PAINT);
            p = p.add(1);
        }
    }
}

/// Bytes of stack used since [`paint_stack`]: from the top of RAM to the lowest word that
/// no longer holds the paint.
fn stack_peak() -> usize {
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut p = core::ptr::addr_of!(__sheap);
    // SAFETY: reads words of RAM between the statics and the live stack, written by
    // `paint_stack` or by the stack since.
    while (p as usize) < top && unsafe { p.read_volatile() } == STACK_PAINT {
        p = unsafe { p.add(1) };
    }
    top - p as usize
}

/// Median of `values` (the upper one of the middle two), sorting them. An insertion sort:
/// 100 values, and a fraction of the code of `sort_unstable`.
fn median(values: &mut [u32]) -> u32 {
    for i in 1..values.len() {
        let mut j = i;
        while j > 0 && values[j - 1] > values[j] {
            values.swap(j - 1, j);
            j -= 1;
        }
    }
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// Marsaglia's xorshift32 (shifts 13, 17, 5): the random inputs' generator.
struct XorShift32(u32);

impl XorShift32 {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// The next int8 input value: the top byte of the next number, every value of -128..=127
    /// equally likely.
    fn next_i8(&mut self) -> i8 {
        (self.next() >> 24) as u8 as i8
    }
}

/// True when the model reads one 28×28 grey picture (`[1, 28, 28, 1]`), as the seed CNN
/// does: it then runs the test digits. The host applies the same rule.
fn takes_digits(model: &Model<'_>) -> Result<bool, Error> {
    Ok(model.input()?.dims.as_slice() == [1, 28, 28, 1])
}

fn run() -> Result<(), Error> {
    let cp = cortex_m::Peripherals::take().ok_or(Error::InvalidParameter)?;
    clock::start(cp.SYST);

    let model = Model::from_bytes(MODEL)?;
    // SAFETY: `run` is called once, so these are the only references to the statics.
    // (Statics, not `cortex_m::singleton!`: that may build its value on the stack first,
    // and the measured stack peak should be the inference's, not these tables'.)
    let (arena, totals, layers) = unsafe {
        (
            &mut *addr_of_mut!(ARENA),
            &mut *addr_of_mut!(TOTALS),
            &mut *addr_of_mut!(LAYERS),
        )
    };
    let mut interp = Interpreter::new(&model, arena)?;
    let ops = model.op_count().min(OP_COUNT);
    let digits = takes_digits(&model)?;
    let mut rng = XorShift32(RANDOM_SEED);

    let mut correct = 0;
    for i in 0..RUNS {
        let label = if digits {
            let image = DIGITS
                .get(i * DIGIT_LEN..(i + 1) * DIGIT_LEN)
                .ok_or(Error::Truncated)?;
            Some((image, *LABELS.get(i).ok_or(Error::Truncated)?))
        } else {
            // Made before the clock starts: an application's input arrives as int8.
            for q in interp.input_mut() {
                *q = rng.next_i8();
            }
            None
        };
        let start = clock::now();
        if let Some((image, _)) = label {
            interp.set_input_grey(image)?;
        }
        let mut last = clock::now();
        interp.invoke_observed(|index, _| {
            let now = clock::now();
            if let Some(slot) = layers.get_mut(index) {
                slot[i] = elapsed(last, now);
            }
            last = clock::now();
        })?;
        let end = clock::now();
        // The total includes quantizing a digit and the observer's own reads of SysTick (a
        // few instructions per op), as a caller of `invoke` would not pay; the per-layer
        // figures exclude both.
        totals[i] = elapsed(start, end);
        let (predicted, _) = interp.top1();
        // The host runs the same inputs through its interpreter and compares these.
        let output_crc = crc32(bytemuck::cast_slice(interp.output()));
        let mut line = Line::new();
        match label {
            Some((_, label)) => {
                correct += usize::from(predicted == usize::from(label));
                line.str("digit ").num(i).field("label", label.into());
            }
            None => {
                line.str("random ").num(i);
            }
        }
        line.field("predicted", predicted)
            .field("output_crc", output_crc as usize)
            .field("instructions", totals[i] as usize)
            .send();
    }
    for (index, counts) in layers.iter_mut().enumerate().take(ops) {
        let op = model.op(index)?;
        Line::new()
            .str("layer ")
            .num(index)
            .str(" ")
            .str(op.kind().name())
            .field("instructions", median(&mut counts[..]) as usize)
            .send();
    }
    let peak = stack_peak();
    let mut line = Line::new();
    line.str("summary inputs ")
        .str(if digits { "digits" } else { "random" })
        .field("runs", RUNS);
    if digits {
        line.field("correct", correct);
    }
    line.field("median_instructions", median(&mut totals[..]) as usize)
        .field("model_bytes", model.len())
        .field("arena_bytes", model.arena_size())
        .field("stack_peak_bytes", peak)
        .send();
    Ok(())
}
