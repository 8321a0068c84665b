//! TIMER0 as the counter that times inferences, and a busy-wait delay.
//!
//! The nRF51's Cortex-M0 has neither the DWT cycle counter nor (on the real chip) SysTick,
//! so TIMER0 runs free in 32-bit mode at 16 MHz, the core clock: one tick per core cycle on
//! the board. Under QEMU with `-icount shift=0` the timer follows the virtual clock, one
//! nanosecond per instruction, so a tick is 62.5 guest instructions; the `qemu` feature
//! reports that count instead.

use fixnet_app::{CounterUnit, CycleCounter};
use nrf51_pac::TIMER0;

/// TIMER0 counting free at 16 MHz; read by capturing into CC[0].
pub struct Timer0Counter {
    timer: TIMER0,
}

impl Timer0Counter {
    /// Starts TIMER0 from zero: timer mode, 32 bits, prescaler 0 (16 MHz).
    pub fn start(timer: TIMER0) -> Self {
        timer.mode.write(|w| w.mode().timer());
        timer.bitmode.write(|w| w.bitmode()._32bit());
        // SAFETY: prescaler 0 divides the 16 MHz clock by 2^0.
        timer.prescaler.write(|w| unsafe { w.prescaler().bits(0) });
        // SAFETY: writing 1 to a task register starts it.
        timer.tasks_clear.write(|w| unsafe { w.bits(1) });
        timer.tasks_start.write(|w| unsafe { w.bits(1) });
        Timer0Counter { timer }
    }
}

impl CycleCounter for Timer0Counter {
    fn unit(&self) -> CounterUnit {
        if cfg!(feature = "qemu") {
            CounterUnit::Instructions
        } else {
            CounterUnit::Cycles
        }
    }

    fn now(&mut self) -> u32 {
        // SAFETY: writing 1 to a task register starts it: CC[0] takes the count.
        self.timer.tasks_capture[0].write(|w| unsafe { w.bits(1) });
        self.timer.cc[0].read().bits()
    }

    /// Ticks since `start` (the 32-bit counter wraps after 268 s), as instructions under
    /// QEMU (62.5 per tick, saturating at `u32::MAX`).
    fn elapsed(&self, start: u32, end: u32) -> u32 {
        let ticks = end.wrapping_sub(start);
        if cfg!(feature = "qemu") {
            u32::try_from(u64::from(ticks) * 125 / 2).unwrap_or(u32::MAX)
        } else {
            ticks
        }
    }
}

/// Busy-waits a number of core cycles (16 per microsecond).
pub struct BusyDelay;

impl embedded_hal::delay::DelayNs for BusyDelay {
    fn delay_ns(&mut self, ns: u32) {
        cortex_m::asm::delay(ns / 1000 * 16 + 1);
    }
}
