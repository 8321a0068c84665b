//! USART2 (PA2 TX, PA3 RX: the ST-LINK virtual COM port) as an `embedded-io` byte stream.
//!
//! Received bytes are moved by the USART2 interrupt into a queue, so that none is lost
//! while the firmware is busy (an inference takes far longer than one byte at 115200
//! baud); `fixnet_app::QueuedLink` reads them from the queue. Writes block until every byte is in the
//! transmitter.

use core::cell::RefCell;
use critical_section::Mutex;
use fixnet_app::QueuedLink;
use heapless::spsc::{Producer, Queue};
use stm32f4xx_hal::pac::{interrupt, Interrupt, NVIC, USART2};
use stm32f4xx_hal::serial::{Error, Rx, RxListen, Serial};

/// Bytes buffered between the interrupt and the link's reads: two largest frames.
pub const RX_QUEUE: usize = 2048;

type RxState = (Rx<USART2>, Producer<'static, u8>);

static RX: Mutex<RefCell<Option<RxState>>> = Mutex::new(RefCell::new(None));

/// The transmitter of USART2.
pub struct Tx(stm32f4xx_hal::serial::Tx<USART2>);

/// The serial link to the host: [`Tx`] and the queue the receive interrupt fills.
pub type Link = QueuedLink<'static, Tx>;

/// Takes over `serial` (already configured) and starts interrupt-driven reception. Call
/// once: the receive queue is a singleton.
pub fn link(serial: Serial<USART2>) -> Link {
    let queue =
        cortex_m::singleton!(: Queue<u8, RX_QUEUE> = Queue::new()).expect("link called twice");
    let (producer, consumer) = queue.split();
    let (tx, mut rx) = serial.split();
    rx.listen();
    critical_section::with(|cs| RX.borrow_ref_mut(cs).replace((rx, producer)));
    // SAFETY: the handler only touches state set up just above.
    unsafe { NVIC::unmask(Interrupt::USART2) };
    QueuedLink::new(Tx(tx), consumer)
}

#[interrupt]
fn USART2() {
    critical_section::with(|cs| {
        if let Some((rx, queue)) = RX.borrow_ref_mut(cs).as_mut() {
            loop {
                match embedded_hal_nb::serial::Read::read(rx) {
                    Ok(byte) => {
                        if queue.enqueue(byte).is_err() {
                            defmt::warn!("receive queue full: byte dropped");
                        }
                    }
                    // The HAL has dropped the byte and cleared the error.
                    Err(nb::Error::Other(e)) => {
                        defmt::warn!("receive error {}: byte dropped", defmt::Debug2Format(&e));
                    }
                    Err(nb::Error::WouldBlock) => break,
                }
            }
        }
    });
}

impl embedded_io::ErrorType for Tx {
    type Error = Error;
}

impl embedded_io::Write for Tx {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        for &byte in buf {
            nb::block!(embedded_hal_nb::serial::Write::write(&mut self.0, byte))?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Error> {
        nb::block!(embedded_hal_nb::serial::Write::flush(&mut self.0))
    }
}
