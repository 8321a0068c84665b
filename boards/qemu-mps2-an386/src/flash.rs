//! NOR flash emulated in a file on the host, through semihosting file I/O, so that what the
//! firmware saves survives a restart of QEMU.
//!
//! The file (`fixnet-flash.bin` in QEMU's working directory) behaves as NOR flash: erasing
//! sets whole sectors to `0xFF`, programming can only clear bits (the new content is
//! `old & data`). Programming goes one word-aligned page per host write, so a QEMU killed in
//! the middle of a save leaves a torn record, as a power cut would on a real chip.

use cortex_m_semihosting::{nr, syscall};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Name of the backing file, relative to QEMU's working directory.
pub const FILE_NAME: &str = "fixnet-flash.bin";
/// Emulated capacity: room for two copies of the seed CNN's weights.
pub const CAPACITY: usize = 1024 * 1024;
/// Erase granularity, as common 4 KiB-sector SPI NOR parts.
pub const ERASE_SIZE: usize = 4096;
/// Program granularity.
pub const WRITE_SIZE: usize = 4;
/// Bytes programmed per host write.
const PAGE: usize = 256;

/// The emulated flash: an open host file.
pub struct SemihostingFlash {
    handle: usize,
}

/// A failed flash operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashError {
    /// Offset or length not a multiple of the operation's granularity.
    NotAligned,
    /// Outside the flash.
    OutOfBounds,
    /// The host refused a file operation.
    Io,
}

impl NorFlashError for FlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::NotAligned => NorFlashErrorKind::NotAligned,
            FlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FlashError::Io => NorFlashErrorKind::Other,
        }
    }
}

impl SemihostingFlash {
    /// Opens the backing file, creating it erased (all `0xFF`) if it does not exist yet.
    pub fn open() -> Result<Self, FlashError> {
        let name = b"fixnet-flash.bin\0";
        let open = |mode: usize| {
            // SAFETY: a NUL-terminated name and its length without the NUL, as SYS_OPEN takes.
            unsafe { syscall!(OPEN, name.as_ptr(), mode, name.len() - 1) as isize }
        };
        // "r+b" keeps an existing file; only if there is none, "w+b" creates it.
        let mut handle = open(nr::open::RW_BINARY);
        if handle < 0 {
            handle = open(nr::open::RW_TRUNC_BINARY);
        }
        if handle < 0 {
            return Err(FlashError::Io);
        }
        let flash = SemihostingFlash {
            handle: handle as usize,
        };
        // SAFETY: SYS_FLEN on the handle just opened.
        let len = unsafe { syscall!(FLEN, flash.handle) } as isize;
        if len < 0 {
            return Err(FlashError::Io);
        }
        // Extend a new (or short) file with erased bytes.
        let erased = [0xFFu8; PAGE];
        let mut at = (len as usize) / PAGE * PAGE;
        while at < CAPACITY {
            flash.write_at(at, &erased)?;
            at += PAGE;
        }
        Ok(flash)
    }

    fn seek(&self, offset: usize) -> Result<(), FlashError> {
        // SAFETY: SYS_SEEK on an open handle.
        match unsafe { syscall!(SEEK, self.handle, offset) } {
            0 => Ok(()),
            _ => Err(FlashError::Io),
        }
    }

    fn write_at(&self, offset: usize, bytes: &[u8]) -> Result<(), FlashError> {
        self.seek(offset)?;
        // SAFETY: SYS_WRITE of a live buffer; returns the number of bytes NOT written.
        match unsafe { syscall!(WRITE, self.handle, bytes.as_ptr(), bytes.len()) } {
            0 => Ok(()),
            _ => Err(FlashError::Io),
        }
    }

    fn read_at(&self, offset: usize, bytes: &mut [u8]) -> Result<(), FlashError> {
        self.seek(offset)?;
        // SAFETY: SYS_READ into a live buffer; returns the number of bytes NOT read.
        match unsafe { syscall!(READ, self.handle, bytes.as_mut_ptr(), bytes.len()) } {
            0 => Ok(()),
            _ => Err(FlashError::Io),
        }
    }
}

fn check(offset: u32, len: usize, align: usize) -> Result<usize, FlashError> {
    let offset = offset as usize;
    if offset % align != 0 || len % align != 0 {
        return Err(FlashError::NotAligned);
    }
    if offset.checked_add(len).is_none_or(|end| end > CAPACITY) {
        return Err(FlashError::OutOfBounds);
    }
    Ok(offset)
}

impl ErrorType for SemihostingFlash {
    type Error = FlashError;
}

impl ReadNorFlash for SemihostingFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashError> {
        let offset = check(offset, bytes.len(), 1)?;
        self.read_at(offset, bytes)
    }

    fn capacity(&self) -> usize {
        CAPACITY
    }
}

impl NorFlash for SemihostingFlash {
    const WRITE_SIZE: usize = WRITE_SIZE;
    const ERASE_SIZE: usize = ERASE_SIZE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashError> {
        let len = (to as usize)
            .checked_sub(from as usize)
            .ok_or(FlashError::OutOfBounds)?;
        let from = check(from, len, ERASE_SIZE)?;
        let erased = [0xFFu8; PAGE];
        for at in (from..from + len).step_by(PAGE) {
            self.write_at(at, &erased)?;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashError> {
        let offset = check(offset, bytes.len(), WRITE_SIZE)?;
        let mut page = [0u8; PAGE];
        for (i, chunk) in bytes.chunks(PAGE).enumerate() {
            let at = offset + i * PAGE;
            let old = &mut page[..chunk.len()];
            self.read_at(at, old)?;
            // NOR programming only clears bits.
            for (o, &b) in old.iter_mut().zip(chunk) {
                *o &= b;
            }
            self.write_at(at, old)?;
        }
        Ok(())
    }
}
