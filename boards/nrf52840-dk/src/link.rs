//! UART0 (P0.06 TX, P0.08 RX: the J-Link virtual COM port) as an `embedded-io` byte stream.
//!
//! `nrf52840-hal` drives only the UARTE (EasyDMA: reception needs a buffer length known in
//! advance), so this is a small driver of the same peripheral in its legacy UART mode,
//! through the PAC: it raises an interrupt per received byte, and the handler moves the byte
//! into a queue, so that none is lost while the firmware is busy (an inference takes far
//! longer than the UART's 6-byte FIFO lasts at 115200 baud); `fixnet_app::QueuedLink` reads
//! them from the queue. Writes block until every byte is sent.

use core::cell::RefCell;
use critical_section::Mutex;
use fixnet_app::QueuedLink;
use heapless::spsc::{Producer, Queue};
use nrf52840_hal::gpio::{Floating, Input, Output, Pin, PushPull};
use nrf52840_hal::pac::uart0::baudrate::BAUDRATE_A;
use nrf52840_hal::pac::{interrupt, Interrupt, NVIC, UART0};

/// Bytes buffered between the interrupt and the link's reads: two largest frames.
pub const RX_QUEUE: usize = 2048;

static RX: Mutex<RefCell<Option<Producer<'static, u8>>>> = Mutex::new(RefCell::new(None));

/// The transmitter of UART0 (the pins stay claimed while it lives).
pub struct Tx {
    uart: UART0,
    _pins: (Pin<Output<PushPull>>, Pin<Input<Floating>>),
}

/// The serial link to the host: [`Tx`] and the queue the receive interrupt fills.
pub type Link = QueuedLink<'static, Tx>;

/// UART0 at 115200 8N1 without flow control on `txd`/`rxd`, with interrupt-driven
/// reception. Call once: the receive queue is a singleton.
pub fn link(uart: UART0, txd: Pin<Output<PushPull>>, rxd: Pin<Input<Floating>>) -> Link {
    let queue =
        cortex_m::singleton!(: Queue<u8, RX_QUEUE> = Queue::new()).expect("link called twice");
    let (producer, consumer) = queue.split();
    critical_section::with(|cs| RX.borrow_ref_mut(cs).replace(producer));

    // SAFETY: PSEL takes a pin number (and the connect bit clear) as its bits.
    uart.psel.txd.write(|w| unsafe { w.bits(txd.psel_bits()) });
    uart.psel.rxd.write(|w| unsafe { w.bits(rxd.psel_bits()) });
    uart.psel.cts.reset();
    uart.psel.rts.reset();
    uart.baudrate
        .write(|w| w.baudrate().variant(BAUDRATE_A::BAUD115200));
    uart.config.reset(); // no parity, no flow control, one stop bit
    uart.enable.write(|w| w.enable().enabled());
    uart.events_rxdrdy.reset();
    uart.events_txdrdy.reset();
    uart.events_error.reset();
    uart.intenset.write(|w| w.rxdrdy().set().error().set());
    // SAFETY: writing 1 to a task register starts it.
    uart.tasks_starttx.write(|w| unsafe { w.bits(1) });
    uart.tasks_startrx.write(|w| unsafe { w.bits(1) });
    // SAFETY: the handler only touches the receive side set up just above.
    unsafe { NVIC::unmask(Interrupt::UARTE0_UART0) };
    QueuedLink::new(
        Tx {
            uart,
            _pins: (txd, rxd),
        },
        consumer,
    )
}

#[interrupt]
fn UARTE0_UART0() {
    // SAFETY: the receive-side registers (RXD, RXDRDY, ERROR, ERRORSRC) belong to this
    // handler; `Tx` only transmits.
    let regs = unsafe { &*UART0::ptr() };
    if regs.events_error.read().bits() != 0 {
        regs.events_error.reset();
        let source = regs.errorsrc.read().bits();
        // SAFETY: ERRORSRC bits are cleared by writing 1.
        regs.errorsrc.write(|w| unsafe { w.bits(source) });
        defmt::warn!("receive error (ERRORSRC {=u32:#x})", source);
    }
    critical_section::with(|cs| {
        let mut queue = RX.borrow_ref_mut(cs);
        while regs.events_rxdrdy.read().bits() != 0 {
            regs.events_rxdrdy.reset();
            let byte = regs.rxd.read().bits() as u8;
            if queue.as_mut().is_none_or(|q| q.enqueue(byte).is_err()) {
                defmt::warn!("receive queue full: byte dropped");
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
