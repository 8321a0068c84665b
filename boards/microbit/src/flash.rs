//! The flash region set aside for weights (`memory.x`: the last 4 KiB), as
//! `embedded-storage` NOR flash over the nRF51's NVMC.
//!
//! Offsets are relative to the start of the region, so nothing outside it (the firmware)
//! can be erased or programmed through this driver. The NVMC erases 1 KiB pages and
//! programs whole 32-bit words (bits only go from 1 to 0); the CPU stalls while it works,
//! but READY is polled anyway, as the reference manual asks. `nrf-hal-common`'s NVMC
//! driver leaves the nRF51 out, hence this one.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use nrf51_pac::NVMC;

/// Erase granularity: the nRF51822's 1 KiB flash page.
pub const PAGE: usize = 1024;
/// Programming granularity: one 32-bit word.
const WORD: usize = 4;

extern "C" {
    static __fixnet_weights_start: u8;
    static __fixnet_weights_end: u8;
}

/// A refused flash operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashError {
    /// Offset or length not a multiple of the operation's granularity.
    NotAligned,
    /// Outside the weight region.
    OutOfBounds,
    /// The region in `memory.x` is not made of whole pages.
    Layout,
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::NotAligned => NorFlashErrorKind::NotAligned,
            FlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FlashError::Layout => NorFlashErrorKind::Other,
        }
    }
}

/// The weight region of the on-chip flash.
pub struct WeightFlash {
    nvmc: NVMC,
    /// Address of the region (flash starts at 0 on the nRF51).
    start: usize,
    len: usize,
}

impl WeightFlash {
    /// The region `memory.x` declares; fails unless it is made of whole pages.
    pub fn new(nvmc: NVMC) -> Result<Self, FlashError> {
        // Linker symbols: only their addresses are used.
        let start = core::ptr::addr_of!(__fixnet_weights_start) as usize;
        let end = core::ptr::addr_of!(__fixnet_weights_end) as usize;
        if start % PAGE != 0 || end % PAGE != 0 || end <= start {
            return Err(FlashError::Layout);
        }
        Ok(WeightFlash {
            nvmc,
            start,
            len: end - start,
        })
    }

    /// Bytes in the region.
    pub fn size(&self) -> usize {
        self.len
    }

    /// The address of `offset..offset + len` in the region, if it lies inside it.
    fn address(&self, offset: u32, len: usize) -> Result<usize, FlashError> {
        let offset = offset as usize;
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(self.start + offset),
            _ => Err(FlashError::OutOfBounds),
        }
    }

    fn wait_ready(&self) {
        while self.nvmc.ready.read().ready().is_busy() {
            core::hint::spin_loop();
        }
    }
}

impl ErrorType for WeightFlash {
    type Error = FlashError;
}

impl ReadNorFlash for WeightFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let address = self.address(offset, bytes.len())?;
        for (i, byte) in bytes.iter_mut().enumerate() {
            // SAFETY: inside the weight region (checked above), which is flash memory-mapped
            // for reading; volatile so reads after a program or erase are not cached.
            *byte = unsafe { ((address + i) as *const u8).read_volatile() };
        }
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.len
    }
}

impl NorFlash for WeightFlash {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        if from as usize % PAGE != 0 || to as usize % PAGE != 0 || to < from {
            return Err(FlashError::NotAligned);
        }
        let first = self.address(from, (to - from) as usize)?;
        self.wait_ready();
        self.nvmc.config.write(|w| w.wen().een());
        for page in (first..first + (to - from) as usize).step_by(PAGE) {
            // SAFETY: ERASEPAGE takes the address of a page; this one is in the region.
            self.nvmc
                .erasepage()
                .write(|w| unsafe { w.bits(page as u32) });
            self.wait_ready();
        }
        self.nvmc.config.write(|w| w.wen().ren());
        self.wait_ready();
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        if offset as usize % WORD != 0 || bytes.len() % WORD != 0 {
            return Err(FlashError::NotAligned);
        }
        let first = self.address(offset, bytes.len())?;
        self.wait_ready();
        self.nvmc.config.write(|w| w.wen().wen());
        for (i, word) in bytes.chunks_exact(WORD).enumerate() {
            let value = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            // SAFETY: a word-aligned address inside the region; with CONFIG = WEN a word
            // store programs the flash.
            unsafe { ((first + i * WORD) as *mut u32).write_volatile(value) };
            self.wait_ready();
        }
        self.nvmc.config.write(|w| w.wen().ren());
        self.wait_ready();
        Ok(())
    }
}
