//! The ARM CMSDK APB UART (UART0 of the MPS2 images at 0x4000_4000) as a blocking
//! `embedded-io` byte stream.
//!
//! A read with nothing received sleeps in `WFI` until the RX interrupt is pending (with
//! interrupts masked, so no handler runs). Busy polling would work too, but under
//! `-icount` QEMU then hands received bytes to the guest only when the busy vCPU yields,
//! about ten times slower; a sleeping core lets QEMU deliver them at once.

use core::convert::Infallible;

/// Base address of UART0 on mps2-an385/an386 (QEMU's first `-serial`).
pub const UART0_BASE: usize = 0x4000_4000;

// Register word offsets (CMSDK APB UART technical reference).
const DATA: usize = 0;
const STATE: usize = 1;
const CTRL: usize = 2;
const INTSTATUS: usize = 3;
const BAUDDIV: usize = 4;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;
const CTRL_RX_INT_EN: u32 = 1 << 3;
const INT_RX: u32 = 1 << 1;

/// NVIC line of UART0's receive interrupt on the MPS2 images.
#[derive(Clone, Copy)]
struct Uart0Rx;

// SAFETY: 0 is UART0 RX's interrupt number on mps2-an385/an386.
unsafe impl cortex_m::interrupt::InterruptNumber for Uart0Rx {
    fn number(self) -> u16 {
        0
    }
}

/// A CMSDK UART, transmitter and receiver enabled.
pub struct Uart {
    base: *mut u32,
}

impl Uart {
    /// Enables the UART at `base`.
    ///
    /// # Safety
    /// `base` must be a CMSDK UART that nothing else drives.
    pub unsafe fn new(base: usize) -> Self {
        let uart = Uart {
            base: base as *mut u32,
        };
        // QEMU ignores the baud rate but refuses to transmit with a divider below 16.
        uart.write_reg(BAUDDIV, 16);
        uart.write_reg(CTRL, CTRL_TX_EN | CTRL_RX_EN | CTRL_RX_INT_EN);
        // The interrupt only wakes the core from WFI: keep it masked at the core so that no
        // handler is needed, and enabled at the NVIC so that it counts as a wake-up event.
        cortex_m::interrupt::disable();
        // SAFETY: unmasking one line whose handler never runs (PRIMASK is set).
        unsafe { cortex_m::peripheral::NVIC::unmask(Uart0Rx) };
        uart
    }

    fn read_reg(&self, word: usize) -> u32 {
        // SAFETY: `new`'s contract: `base` is a UART's register block.
        unsafe { self.base.add(word).read_volatile() }
    }

    fn write_reg(&self, word: usize, value: u32) {
        // SAFETY: as above.
        unsafe { self.base.add(word).write_volatile(value) }
    }

    fn rx_ready(&self) -> bool {
        self.read_reg(STATE) & STATE_RX_FULL != 0
    }
}

impl embedded_io::ErrorType for Uart {
    type Error = Infallible;
}

impl embedded_io::Read for Uart {
    /// Waits for one byte, then takes what else has already arrived.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        while !self.rx_ready() {
            cortex_m::asm::wfi();
        }
        let mut n = 0;
        while n < buf.len() && self.rx_ready() {
            buf[n] = self.read_reg(DATA) as u8;
            n += 1;
        }
        // Clear the UART's and then the NVIC's pending state before the next WFI; a byte
        // arriving after this sets them again, and the `rx_ready` check above catches one
        // that arrived in between.
        self.write_reg(INTSTATUS, INT_RX);
        cortex_m::peripheral::NVIC::unpend(Uart0Rx);
        Ok(n)
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &byte in buf {
            while self.read_reg(STATE) & STATE_TX_FULL != 0 {}
            self.write_reg(DATA, u32::from(byte));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while self.read_reg(STATE) & STATE_TX_FULL != 0 {}
        Ok(())
    }
}
