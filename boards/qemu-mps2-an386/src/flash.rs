//! NOR flash emulated in a file on the host, through semihosting file I/O, so that what the
//! firmware saves survives a restart of QEMU.
//!
//! The file (`fixnet-flash.bin` in QEMU's working directory) behaves as NOR flash: erasing
//! sets whole sectors to `0xFF`, programming can only clear bits (the new content is
//! `old & data`). Programming goes one word-aligned page per host write, so a QEMU killed in
//! the middle of a save leaves a torn record, as a power cut would on a real chip.
//!
//! Each page write also takes time, as on a real part: [`PAGE_PROGRAM_US`] per programmed
//! page and [`SECTOR_ERASE_US`] per erased sector (spread over its pages), waited out in
//! `WFI` on CMSDK timer 0, so a save lasts tens of milliseconds of wall-clock time and a
//! QEMU killed at a random moment often lands in the middle of one.

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
/// Time to program one 256-byte page (a typical SPI NOR flash: 0.7 to 3 ms).
pub const PAGE_PROGRAM_US: u32 = 1_000;
/// Time to erase one 4 KiB sector (typical SPI NOR flash: 25 to 400 ms; shorter here to keep
/// tests quick).
pub const SECTOR_ERASE_US: u32 = 16_000;

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
            busy_for(SECTOR_ERASE_US / (ERASE_SIZE / PAGE) as u32);
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
            busy_for(PAGE_PROGRAM_US);
            self.write_at(at, old)?;
        }
        Ok(())
    }
}

/// CMSDK APB timer 0 of the MPS2 image, counting down at the 25 MHz peripheral clock.
const TIMER0: *mut u32 = 0x4000_0000 as *mut u32;
const TIMER_CTRL: usize = 0;
const TIMER_VALUE: usize = 1;
const TIMER_RELOAD: usize = 2;
const TIMER_INT: usize = 3;
const TIMER_ENABLE: u32 = 1 << 0;
const TIMER_IRQ_ENABLE: u32 = 1 << 3;
/// Timer ticks per microsecond.
const TIMER_TICKS_PER_US: u32 = 25;

#[derive(Clone, Copy)]
struct Timer0Irq;

// SAFETY: interrupt 8 is CMSDK timer 0 on the MPS2 AN385/AN386 images.
unsafe impl cortex_m::interrupt::InterruptNumber for Timer0Irq {
    fn number(self) -> u16 {
        8
    }
}

/// The flash is busy for `us` microseconds: sleeps in `WFI` until timer 0 expires. Its
/// interrupt wakes the core but is never taken (interrupts stay masked at the core, as for
/// the UART), and QEMU lets virtual time run at real speed while the core sleeps.
fn busy_for(us: u32) {
    let timer = |reg: usize| {
        // SAFETY: a register of CMSDK timer 0, which only this function uses.
        unsafe { TIMER0.add(reg) }
    };
    let ticks = us.saturating_mul(TIMER_TICKS_PER_US).max(1);
    // Sleeping with the interrupt unmasked at the NVIC needs PRIMASK set (it is, after
    // `Uart::new`; setting it again is harmless).
    cortex_m::interrupt::disable();
    // SAFETY: plain read/write registers of timer 0; its interrupt is masked at the core.
    unsafe {
        timer(TIMER_CTRL).write_volatile(0);
        timer(TIMER_INT).write_volatile(1);
        cortex_m::peripheral::NVIC::unpend(Timer0Irq);
        cortex_m::peripheral::NVIC::unmask(Timer0Irq);
        timer(TIMER_RELOAD).write_volatile(ticks);
        timer(TIMER_VALUE).write_volatile(ticks);
        timer(TIMER_CTRL).write_volatile(TIMER_ENABLE | TIMER_IRQ_ENABLE);
        while timer(TIMER_INT).read_volatile() & 1 == 0 {
            cortex_m::asm::wfi();
        }
        timer(TIMER_CTRL).write_volatile(0);
        timer(TIMER_INT).write_volatile(1);
    }
    cortex_m::peripheral::NVIC::unpend(Timer0Irq);
}
