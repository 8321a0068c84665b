//! The ARM CMSDK APB UART (UART0 of the MPS2 images at 0x4000_4000) as a blocking
//! `embedded-io` byte stream, polled: the firmware has nothing else to do while it waits.

use core::convert::Infallible;

/// Base address of UART0 on mps2-an385/an386 (QEMU's first `-serial`).
pub const UART0_BASE: usize = 0x4000_4000;

// Register word offsets (CMSDK APB UART technical reference).
const DATA: usize = 0;
const STATE: usize = 1;
const CTRL: usize = 2;
const BAUDDIV: usize = 4;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const CTRL_TX_EN: u32 = 1 << 0;
const CTRL_RX_EN: u32 = 1 << 1;

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
        uart.write_reg(CTRL, CTRL_TX_EN | CTRL_RX_EN);
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
        while !self.rx_ready() {}
        let mut n = 0;
        while n < buf.len() && self.rx_ready() {
            buf[n] = self.read_reg(DATA) as u8;
            n += 1;
        }
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
