//! A serial link whose received bytes wait in a queue: the board's receive interrupt
//! enqueues each byte as it arrives ([`heapless::spsc::Producer`]), and
//! [`QueuedLink`] hands them to the server from the other end of the queue. A UART's own
//! FIFO (a few bytes) lasts far less than an inference or a flash erase, so without the
//! queue bytes sent meanwhile would be lost.

use heapless::spsc::Consumer;

/// The firmware's serial link: transmission through the board's driver `T` (blocking),
/// reception from the queue its interrupt handler fills.
pub struct QueuedLink<'q, T> {
    tx: T,
    rx: Consumer<'q, u8>,
}

impl<'q, T> QueuedLink<'q, T> {
    /// A link that writes through `tx` and reads what the interrupt handler puts in the
    /// queue `rx` is the consumer of.
    pub fn new(tx: T, rx: Consumer<'q, u8>) -> Self {
        QueuedLink { tx, rx }
    }
}

impl<T: embedded_io::ErrorType> embedded_io::ErrorType for QueuedLink<'_, T> {
    type Error = T::Error;
}

impl<T: embedded_io::ErrorType> embedded_io::Read for QueuedLink<'_, T> {
    /// Blocks until at least one byte has arrived, then returns what the queue holds (up to
    /// `buf.len()` bytes).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        while !self.rx.ready() {
            core::hint::spin_loop();
        }
        let mut n = 0;
        for slot in buf.iter_mut() {
            match self.rx.dequeue() {
                Some(byte) => {
                    *slot = byte;
                    n += 1;
                }
                None => break,
            }
        }
        Ok(n)
    }
}

impl<T: embedded_io::Write> embedded_io::Write for QueuedLink<'_, T> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.tx.write(buf)
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        self.tx.flush()
    }
}
