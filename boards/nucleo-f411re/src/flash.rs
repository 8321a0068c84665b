//! The flash region set aside for weights (`memory.x`: sectors 2 and 3), as
//! `embedded-storage` NOR flash over `stm32f4xx-hal`'s flash driver.
//!
//! Offsets are relative to the start of the region, so nothing outside it (the firmware)
//! can be erased or programmed through this driver. The HAL's own `NorFlash` impl erases in
//! 128 KiB units (its largest sector); this one erases the region's 16 KiB sectors one by
//! one, unlocks the flash only for the duration of an operation, clears stale error flags
//! before each, and resets the ART data cache after each so reads see the new contents.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use stm32f4xx_hal::flash::{Error as HalError, FlashExt};
use stm32f4xx_hal::pac::FLASH;

/// Erase granularity: the 16 KiB sectors the region is made of.
pub const ERASE_SIZE: usize = 16 * 1024;

extern "C" {
    static __fixnet_weights_start: u8;
    static __fixnet_weights_end: u8;
}

/// A failed flash operation.
#[derive(Clone, Copy, Debug, defmt::Format)]
pub enum FlashError {
    /// Offset or length not a multiple of the operation's granularity.
    NotAligned,
    /// Outside the weight region.
    OutOfBounds,
    /// The region in `memory.x` is not made of whole 16 KiB sectors.
    Layout,
    /// The flash controller reported an error.
    Hal(#[defmt(Debug2Format)] HalError),
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::NotAligned => NorFlashErrorKind::NotAligned,
            FlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FlashError::Layout | FlashError::Hal(_) => NorFlashErrorKind::Other,
        }
    }
}

/// The weight region of the on-chip flash.
pub struct WeightFlash {
    flash: FLASH,
    /// Offset of the region from the start of the flash.
    start: usize,
    len: usize,
}

impl WeightFlash {
    /// The region `memory.x` declares; fails unless it is made of whole 16 KiB sectors.
    pub fn new(flash: FLASH) -> Result<Self, FlashError> {
        // Linker symbols: only their addresses are used.
        let start = core::ptr::addr_of!(__fixnet_weights_start) as usize;
        let end = core::ptr::addr_of!(__fixnet_weights_end) as usize;
        let base = flash.address();
        if start < base || end <= start || end > base + flash.len() {
            return Err(FlashError::Layout);
        }
        let this = WeightFlash {
            flash,
            start: start - base,
            len: end - start,
        };
        for at in (0..this.len).step_by(ERASE_SIZE) {
            this.sector(at)?;
        }
        Ok(this)
    }

    /// Bytes in the region.
    pub fn size(&self) -> usize {
        self.len
    }

    /// The HAL's sector number of the 16 KiB sector at region offset `at`.
    fn sector(&self, at: usize) -> Result<u8, FlashError> {
        match self.flash.sector(self.start + at) {
            Some(s) if s.offset == self.start + at && s.size == ERASE_SIZE => Ok(s.number),
            _ => Err(FlashError::Layout),
        }
    }

    fn check(&self, offset: u32, len: usize, align: usize) -> Result<usize, FlashError> {
        let offset = offset as usize;
        if offset % align != 0 || len % align != 0 {
            return Err(FlashError::NotAligned);
        }
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(offset),
            _ => Err(FlashError::OutOfBounds),
        }
    }

    /// Clears the sticky error flags (EOP, OPERR, WRPERR, PGAERR, PGPERR, PGSERR, RDERR),
    /// which would otherwise fail the next operation.
    fn clear_errors(&self) {
        // SAFETY: writing 1 clears these bits; 0s leave the others alone.
        self.flash.sr().write(|w| unsafe { w.bits(0x1F3) });
    }

    /// Resets the ART data cache, which may hold the old contents of what was just changed.
    fn reset_data_cache(&self) {
        let acr = self.flash.acr();
        let enabled = acr.read().dcen().bit_is_set();
        acr.modify(|_, w| w.dcen().clear_bit());
        acr.modify(|_, w| w.dcrst().set_bit());
        acr.modify(|_, w| w.dcrst().clear_bit());
        if enabled {
            acr.modify(|_, w| w.dcen().set_bit());
        }
    }
}

impl ErrorType for WeightFlash {
    type Error = FlashError;
}

impl ReadNorFlash for WeightFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let offset = self.check(offset, bytes.len(), 1)?;
        let at = self.start + offset;
        bytes.copy_from_slice(&self.flash.read()[at..at + bytes.len()]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.len
    }
}

impl NorFlash for WeightFlash {
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let len = (to as usize)
            .checked_sub(from as usize)
            .ok_or(FlashError::OutOfBounds)?;
        let from = self.check(from, len, ERASE_SIZE)?;
        let mut result = Ok(());
        for at in (from..from + len).step_by(ERASE_SIZE) {
            let sector = self.sector(at)?;
            self.clear_errors();
            result = self.flash.unlocked().erase(sector).map_err(FlashError::Hal);
            if result.is_err() {
                break;
            }
        }
        self.reset_data_cache();
        result
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let offset = self.check(offset, bytes.len(), 1)?;
        self.clear_errors();
        let result = self
            .flash
            .unlocked()
            .program(self.start + offset, bytes.iter())
            .map_err(FlashError::Hal);
        self.reset_data_cache();
        result
    }
}
