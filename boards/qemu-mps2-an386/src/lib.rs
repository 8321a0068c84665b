//! Drivers for QEMU's `mps2-an386` (Cortex-M4F) that `fixnet-app` needs: the CMSDK UART0
//! as the serial link, SysTick as an instruction counter and delay, an FPGA LED, NOR flash
//! emulated in a host file over semihosting, and stack painting for the benchmark.
#![no_std]
#![deny(missing_docs)]

pub mod flash;
pub mod uart;

use core::convert::Infallible;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::SYST;
use cortex_m_semihosting::{debug, hprintln};
use fixnet_app::{CounterUnit, CycleCounter};

/// Guest instructions per SysTick tick: the 25 MHz core clock under `-icount shift=0`
/// (QEMU's virtual clock then advances 1 ns per instruction).
pub const INSTRUCTIONS_PER_TICK: u32 = 40;
const SYST_MASK: u32 = 0x00FF_FFFF;

/// SysTick free-running over its full 24 bits on the core clock, read as an instruction
/// counter (and used for delays). One instance per program.
pub struct SysTickCounter(());

impl SysTickCounter {
    /// Starts SysTick counting down from 2^24 − 1 on the core clock, without interrupts.
    pub fn start(mut syst: SYST) -> Self {
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(SYST_MASK);
        syst.clear_current();
        syst.enable_counter();
        SysTickCounter(())
    }
}

impl CycleCounter for SysTickCounter {
    fn unit(&self) -> CounterUnit {
        CounterUnit::Instructions
    }
    fn now(&mut self) -> u32 {
        SYST::get_current()
    }
    /// Wraps at 2^24 ticks (671 M instructions): longer spans are not measurable this way.
    fn elapsed(&self, start: u32, end: u32) -> u32 {
        (start.wrapping_sub(end) & SYST_MASK) * INSTRUCTIONS_PER_TICK
    }
}

/// Busy-waits on the SysTick counter (which keeps running for [`SysTickCounter`]).
pub struct SysTickDelay;

impl embedded_hal::delay::DelayNs for SysTickDelay {
    fn delay_ns(&mut self, ns: u32) {
        // One tick is 40 ns of virtual time; wait in chunks well below the 2^24 wrap.
        let mut ticks = ns / INSTRUCTIONS_PER_TICK + 1;
        while ticks > 0 {
            let chunk = ticks.min(1 << 23);
            let start = SYST::get_current();
            while (start.wrapping_sub(SYST::get_current()) & SYST_MASK) < chunk {}
            ticks -= chunk;
        }
    }
}

/// User LED 0 of the MPS2 FPGA I/O block (`FPGAIO->LED0` at 0x4002_8000, bit 0).
pub struct Led(());

const FPGAIO_LED: *mut u32 = 0x4002_8000 as *mut u32;

impl Led {
    /// LED 0, switched off.
    pub fn new() -> Self {
        let mut led = Led(());
        let _ = embedded_hal::digital::OutputPin::set_low(&mut led);
        led
    }
}

impl Default for Led {
    fn default() -> Self {
        Self::new()
    }
}

impl embedded_hal::digital::ErrorType for Led {
    type Error = Infallible;
}

impl embedded_hal::digital::OutputPin for Led {
    fn set_low(&mut self) -> Result<(), Infallible> {
        // SAFETY: FPGAIO LED0 is a plain read/write register on every MPS2 image.
        unsafe { FPGAIO_LED.write_volatile(FPGAIO_LED.read_volatile() & !1) };
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        // SAFETY: as above.
        unsafe { FPGAIO_LED.write_volatile(FPGAIO_LED.read_volatile() | 1) };
        Ok(())
    }
}

/// The word painted over the free stack.
const STACK_PAINT: u32 = 0xC0FF_EE55;

extern "C" {
    static mut __sheap: u32;
    static _stack_start: u32;
}

/// Paints the stack from the end of static RAM up to a little below the current stack
/// pointer, so that [`stack_peak`] can later find how deep the stack went.
#[inline(never)]
pub fn paint_stack() {
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
pub fn stack_peak() -> usize {
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let mut p = core::ptr::addr_of!(__sheap);
    // SAFETY: reads words of RAM between the statics and the live stack, written by
    // `paint_stack` or by the stack since.
    while (p as usize) < top && unsafe { p.read_volatile() } == STACK_PAINT {
        p = unsafe { p.add(1) };
    }
    top - p as usize
}

/// Reports the panic over semihosting and makes QEMU exit with a failure status, so a test
/// never waits on a dead firmware.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::bkpt();
    }
}
