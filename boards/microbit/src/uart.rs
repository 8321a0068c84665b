//! UART0 on P0.24 (TX) and P0.25 (RX), the micro:bit's USB serial port through its
//! interface chip, as the transmit half of a [`fixnet_app::QueuedLink`].
//!
//! The receive interrupt moves each byte into the queue the link reads from, so that none
//! is lost while the firmware is busy (the UART holds only 6 received bytes). Transmission
//! blocks on TXDRDY byte by byte, as on the nRF52. Registers through `nrf51-pac`; QEMU's
//! `microbit` machine models the same UART (pin selection aside), so one driver serves both.

use core::cell::RefCell;
use critical_section::Mutex;
use fixnet_app::QueuedLink;
use heapless::spsc::{Producer, Queue};
use nrf51_pac::uart0::baudrate::BAUDRATE_A;
use nrf51_pac::{interrupt, Interrupt, NVIC, UART0};

/// The TX pin, wired to the interface chip's serial input.
const TX_PIN: u32 = 24;
/// The RX pin.
const RX_PIN: u32 = 25;

/// Bytes buffered between the interrupt and the link's reads: two largest frames, as on
/// the other boards. At 115200 baud the server keeps up with far less, but QEMU's UART has
/// no baud rate: a whole request arrives as fast as the interrupt can take it, faster than
/// the server reads (a 256-byte queue dropped bytes of 800-byte image frames).
pub const RX_QUEUE: usize = 2048;

static RX: Mutex<RefCell<Option<Producer<'static, u8>>>> = Mutex::new(RefCell::new(None));

/// The transmitter of UART0.
pub struct Tx {
    uart: UART0,
}

/// UART0 at 115200 8N1 without flow control, with interrupt-driven reception into `queue`.
pub fn link(uart: UART0, queue: &'static mut Queue<u8, RX_QUEUE>) -> QueuedLink<'static, Tx> {
    let (producer, consumer) = queue.split();
    critical_section::with(|cs| RX.borrow_ref_mut(cs).replace(producer));

    // SAFETY: PSEL registers take a pin number as their bits.
    uart.pseltxd.write(|w| unsafe { w.bits(TX_PIN) });
    uart.pselrxd.write(|w| unsafe { w.bits(RX_PIN) });
    uart.pselcts.write(|w| unsafe { w.bits(0xFFFF_FFFF) });
    uart.pselrts.write(|w| unsafe { w.bits(0xFFFF_FFFF) });
    uart.baudrate
        .write(|w| w.baudrate().variant(BAUDRATE_A::BAUD115200));
    uart.config.reset(); // no parity, no flow control
    uart.enable.write(|w| w.enable().enabled());
    uart.events_rxdrdy.reset();
    uart.events_txdrdy.reset();
    uart.events_error.reset();
    uart.intenset.write(|w| w.rxdrdy().set().error().set());
    // SAFETY: writing 1 to a task register starts it.
    uart.tasks_starttx.write(|w| unsafe { w.bits(1) });
    uart.tasks_startrx.write(|w| unsafe { w.bits(1) });
    // SAFETY: the handler only touches the receive side set up just above.
    unsafe { NVIC::unmask(Interrupt::UART0) };
    QueuedLink::new(Tx { uart }, consumer)
}

#[interrupt]
fn UART0() {
    // SAFETY: the receive-side registers (RXD, RXDRDY, ERROR, ERRORSRC) belong to this
    // handler; `Tx` only transmits.
    let regs = unsafe { &*UART0::ptr() };
    if regs.events_error.read().bits() != 0 {
        regs.events_error.reset();
        let source = regs.errorsrc.read().bits();
        // SAFETY: ERRORSRC bits are cleared by writing 1. The byte is lost; the host's
        // CRC check and retry cover it.
        regs.errorsrc.write(|w| unsafe { w.bits(source) });
    }
    critical_section::with(|cs| {
        let mut queue = RX.borrow_ref_mut(cs);
        // RXDRDY is cleared before RXD is read, as the reference manual asks: the next byte
        // of the FIFO raises it again.
        while regs.events_rxdrdy.read().bits() != 0 {
            regs.events_rxdrdy.reset();
            let byte = regs.rxd.read().bits() as u8;
            // A full queue drops the byte: the frame's CRC then fails and the host is told.
            if let Some(q) = queue.as_mut() {
                let _ = q.enqueue(byte);
            }
        }
    });
}

impl embedded_io::ErrorType for Tx {
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for Tx {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        for &byte in buf {
            // SAFETY: any byte is a valid TXD value.
            self.uart.txd.write(|w| unsafe { w.bits(byte.into()) });
            while self.uart.events_txdrdy.read().bits() == 0 {
                core::hint::spin_loop();
            }
            self.uart.events_txdrdy.reset();
        }
        Ok(buf.len())
    }

    /// Every byte is out once `write` returns.
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}
