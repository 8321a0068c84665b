//! The flash region set aside for weights (`memory.x`: the last 64 KiB), as
//! `embedded-storage` NOR flash over the boot ROM's flash routines.
//!
//! While the QSPI flash is being erased or programmed it cannot be read, so no code may run
//! from it: `rp2040-flash` calls the ROM routines from a function placed in RAM and
//! re-enters XIP mode through a copy of boot2 afterwards; around each call interrupts are
//! off (a critical section), and core 1 is never started by this firmware. Offsets are
//! relative to the start of the region, so nothing outside it (the firmware) can be erased
//! or programmed through this driver.

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Where the flash appears in the address space (XIP).
const XIP_BASE: usize = 0x1000_0000;
/// Erase granularity of the Pico's W25Q16JV.
pub const ERASE_SIZE: usize = 4096;
/// Program granularity of the ROM routine.
const PAGE: usize = 256;

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
    /// The region in `memory.x` is not made of whole 4 KiB sectors.
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

/// The weight region of the QSPI flash.
pub struct WeightFlash {
    /// Offset of the region from the start of the flash.
    start: usize,
    len: usize,
}

impl WeightFlash {
    /// The region `memory.x` declares; fails unless it is made of whole sectors. Create one
    /// at most: two would not see each other's writes in progress.
    pub fn new() -> Result<Self, FlashError> {
        // Linker symbols: only their addresses are used.
        let start = core::ptr::addr_of!(__fixnet_weights_start) as usize;
        let end = core::ptr::addr_of!(__fixnet_weights_end) as usize;
        if start < XIP_BASE
            || end <= start
            || (start - XIP_BASE) % ERASE_SIZE != 0
            || (end - start) % ERASE_SIZE != 0
            || end - XIP_BASE > 16 * 1024 * 1024
        {
            return Err(FlashError::Layout);
        }
        Ok(WeightFlash {
            start: start - XIP_BASE,
            len: end - start,
        })
    }

    /// Bytes in the region.
    pub fn size(&self) -> usize {
        self.len
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
}

impl ErrorType for WeightFlash {
    type Error = FlashError;
}

impl ReadNorFlash for WeightFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let offset = self.check(offset, bytes.len(), 1)?;
        let src = (XIP_BASE + self.start + offset) as *const u8;
        // SAFETY: inside the memory-mapped weight region (checked above); the ROM routines
        // flush the XIP cache after every change, so this reads the current contents.
        let flash = unsafe { core::slice::from_raw_parts(src, bytes.len()) };
        bytes.copy_from_slice(flash);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.len
    }
}

impl NorFlash for WeightFlash {
    /// Any byte: a partial page is programmed as a whole page padded with `0xFF`, which
    /// leaves the bytes around it as they are (programming can only clear bits).
    const WRITE_SIZE: usize = 1;
    const ERASE_SIZE: usize = ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let len = (to as usize)
            .checked_sub(from as usize)
            .ok_or(FlashError::OutOfBounds)?;
        let from = self.check(from, len, ERASE_SIZE)?;
        // One sector per critical section: interrupts stay off ~50 ms at a time, not for
        // the whole range.
        for at in (from..from + len).step_by(ERASE_SIZE) {
            let addr = (self.start + at) as u32;
            critical_section::with(|_| {
                // SAFETY: a sector-aligned range inside the weight region; interrupts are
                // off, core 1 is not running and no DMA reads flash, so nothing executes
                // from or reads the flash meanwhile.
                unsafe { rp2040_flash::flash::flash_range_erase(addr, ERASE_SIZE as u32, true) }
            });
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let offset = self.check(offset, bytes.len(), 1)?;
        // The page buffer is on the stack: the data must be in RAM while XIP is off.
        let mut page = [0xFFu8; PAGE];
        let mut done = 0;
        while done < bytes.len() {
            let at = offset + done;
            let page_start = at - at % PAGE;
            let n = (PAGE - at % PAGE).min(bytes.len() - done);
            page.fill(0xFF);
            page[at % PAGE..at % PAGE + n].copy_from_slice(&bytes[done..done + n]);
            let addr = (self.start + page_start) as u32;
            critical_section::with(|_| {
                // SAFETY: a page-aligned page inside the weight region, data in RAM; as for
                // erase, nothing touches the flash meanwhile.
                unsafe { rp2040_flash::flash::flash_range_program(addr, &page, true) }
            });
            done += n;
        }
        Ok(())
    }
}
