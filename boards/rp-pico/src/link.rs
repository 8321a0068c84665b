//! UART0 (GP0 TX, GP1 RX) as an `embedded-io` byte stream.
//!
//! The UART0 interrupt (receive FIFO level or receive timeout) moves received bytes into a
//! queue, so that none is lost while the firmware is busy (an inference takes far longer
//! than the 32-byte FIFO lasts at 115200 baud); `fixnet_app::QueuedLink` reads them from the queue. Writes go
//! through `rp2040-hal`'s driver and block until every byte is in the transmit FIFO.

use core::cell::RefCell;
use critical_section::Mutex;
use fixnet_app::QueuedLink;
use heapless::spsc::{Producer, Queue};
use rp2040_hal::gpio::bank0::{Gpio0, Gpio1};
use rp2040_hal::gpio::{FunctionUart, Pin, PullDown};
use rp2040_hal::pac::{self, interrupt, Interrupt, NVIC};
use rp2040_hal::uart::{Enabled, Reader, UartPeripheral, Writer};

/// Bytes buffered between the interrupt and the link's reads: two largest frames.
pub const RX_QUEUE: usize = 2048;

/// GP0 (TX) and GP1 (RX) in their UART function.
pub type Pins = (
    Pin<Gpio0, FunctionUart, PullDown>,
    Pin<Gpio1, FunctionUart, PullDown>,
);

type RxState = (Reader<pac::UART0, Pins>, Producer<'static, u8>);

static RX: Mutex<RefCell<Option<RxState>>> = Mutex::new(RefCell::new(None));

/// The transmitter of UART0.
pub struct Tx(Writer<pac::UART0, Pins>);

/// The serial link to the host: [`Tx`] and the queue the receive interrupt fills.
pub type Link = QueuedLink<'static, Tx>;

/// Takes over `uart` (already enabled) and starts interrupt-driven reception. Call once:
/// the receive queue is a singleton.
pub fn link(uart: UartPeripheral<Enabled, pac::UART0, Pins>) -> Link {
    let queue =
        cortex_m::singleton!(: Queue<u8, RX_QUEUE> = Queue::new()).expect("link called twice");
    let (producer, consumer) = queue.split();
    let (mut rx, tx) = uart.split();
    rx.enable_rx_interrupt();
    critical_section::with(|cs| RX.borrow_ref_mut(cs).replace((rx, producer)));
    // SAFETY: the handler only touches state set up just above.
    unsafe { NVIC::unmask(Interrupt::UART0_IRQ) };
    QueuedLink::new(Tx(tx), consumer)
}

#[interrupt]
fn UART0_IRQ() {
    critical_section::with(|cs| {
        if let Some((rx, queue)) = RX.borrow_ref_mut(cs).as_mut() {
            let mut buf = [0u8; 32];
            loop {
                let bytes = match rx.read_raw(&mut buf) {
                    Ok(n) => &buf[..n],
                    Err(nb::Error::WouldBlock) => break,
                    // The bytes before the bad one (and, for an overrun, the last byte,
                    // which is good) are still delivered.
                    Err(nb::Error::Other(e)) => {
                        defmt::warn!("receive error {}", defmt::Debug2Format(&e.err_type));
                        e.discarded
                    }
                };
                for &byte in bytes {
                    if queue.enqueue(byte).is_err() {
                        defmt::warn!("receive queue full: byte dropped");
                    }
                }
            }
        }
    });
}

impl embedded_io::ErrorType for Tx {
    type Error = core::convert::Infallible;
}

impl embedded_io::Write for Tx {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush()
    }
}
