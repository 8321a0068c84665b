//! Calls fixnet's public API on inputs the optimizer cannot see through; the panic handler
//! references an undefined symbol, so this only links if no panic path is reachable.
//! Built by `.ci/no-panic` for thumbv6m-none-eabi in release mode with LTO.
#![no_std]
#![no_main]
// Which API calls are compiled depends on the level (features); unused helpers are fine.
#![allow(dead_code, unused_imports)]

use core::ptr::{addr_of, addr_of_mut};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use fixnet::storage::{decode_overlay, WeightStore};
use fixnet::{Interpreter, Model};

#[cfg_attr(feature = "locate", allow(dead_code))]
extern "C" {
    /// Defined nowhere: any surviving call to the panic handler fails the link with
    /// "undefined symbol: fixnet_panic_is_reachable", naming the caller.
    fn fixnet_panic_is_reachable() -> !;
}

#[cfg(not(feature = "locate"))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: never called; the link fails while a call to it exists.
    unsafe { fixnet_panic_is_reachable() }
}

/// With `locate`, the binary links and keeps every surviving panic's source location in
/// `.rodata`, where `.ci/no-panic` finds and lists them.
#[cfg(feature = "locate")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    if let Some(l) = info.location() {
        sink(l.file().as_ptr() as u32 ^ l.file().len() as u32 ^ l.line() ^ l.column());
    }
    loop {}
}

#[repr(C, align(16))]
struct Buf<const N: usize>([u8; N]);

/// Model bytes "in flash": the program cannot know their contents.
static mut MODEL: Buf<65536> = Buf([0; 65536]);
static mut ARENA: Buf<32768> = Buf([0; 32768]);
static mut FLASH: Buf<8192> = Buf([0xFF; 8192]);
static mut WORDS: [u32; 1024] = [0; 1024];
static mut PIXELS: [u8; 784] = [0; 784];
static mut SINK: u32 = 0;
#[cfg(feature = "train")]
static mut TRAIN: Buf<32768> = Buf([0; 32768]);
#[cfg(feature = "write")]
static mut OUT: Buf<65536> = Buf([0; 65536]);

/// An opaque length in `0..=max`, read through a volatile load.
fn opaque_len(max: usize) -> usize {
    // SAFETY: single-threaded; volatile read of a static.
    let n = unsafe { core::ptr::read_volatile(addr_of!(SINK)) } as usize;
    n.min(max)
}

fn sink(v: u32) {
    // SAFETY: single-threaded; volatile write of a static.
    unsafe { core::ptr::write_volatile(addr_of_mut!(SINK), v) }
}

/// NOR flash over a static buffer, erroring (not panicking) out of range.
struct Flash;
#[derive(Debug)]
struct Fault;
impl NorFlashError for Fault {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::OutOfBounds
    }
}
impl ErrorType for Flash {
    type Error = Fault;
}
impl ReadNorFlash for Flash {
    const READ_SIZE: usize = 4;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Fault> {
        // SAFETY: single-threaded access to a static buffer.
        let mem = unsafe { &*addr_of!(FLASH) };
        let start = offset as usize;
        let src = mem
            .0
            .get(start..start.checked_add(bytes.len()).ok_or(Fault)?)
            .ok_or(Fault)?;
        if src.len() != bytes.len() {
            return Err(Fault);
        }
        for (d, s) in bytes.iter_mut().zip(src) {
            *d = *s;
        }
        Ok(())
    }
    fn capacity(&self) -> usize {
        8192
    }
}
impl NorFlash for Flash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = 1024;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Fault> {
        // SAFETY: single-threaded access to a static buffer.
        let mem = unsafe { &mut *addr_of_mut!(FLASH) };
        let range = mem.0.get_mut(from as usize..to as usize).ok_or(Fault)?;
        for b in range {
            *b = 0xFF;
        }
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Fault> {
        // SAFETY: single-threaded access to a static buffer.
        let mem = unsafe { &mut *addr_of_mut!(FLASH) };
        let start = offset as usize;
        let end = start.checked_add(bytes.len()).ok_or(Fault)?;
        let dst = mem.0.get_mut(start..end).ok_or(Fault)?;
        for (d, s) in dst.iter_mut().zip(bytes) {
            *d &= *s;
        }
        Ok(())
    }
}

#[no_mangle]
pub extern "C" fn _start() -> ! {
    // SAFETY: the only code running; each static is borrowed once.
    let (model_bytes, arena, words, pixels) = unsafe {
        (
            &(&(*addr_of!(MODEL)).0)[..],
            &mut (&mut (*addr_of_mut!(ARENA)).0)[..],
            &mut *addr_of_mut!(WORDS),
            &*addr_of!(PIXELS),
        )
    };
    let bytes = &model_bytes[..opaque_len(model_bytes.len())];
    let arena_len = opaque_len(arena.len());
    let arena = &mut arena[..arena_len];
    let pixels = &pixels[..opaque_len(pixels.len())];

    // Parsing and validation, with and without the CRC.
    if let Ok(m) = Model::from_bytes_unchecked_crc(bytes) {
        sink(m.arena_size() as u32);
    }
    let Ok(model) = Model::from_bytes(bytes) else {
        loop {}
    };
    sink(model.crc() ^ model.op_count() as u32);
    for op in model.ops() {
        sink(op.is_ok() as u32);
    }

    #[cfg(feature = "train")]
    train(&model, pixels);
    #[cfg(not(feature = "storage"))]
    let _ = (words, arena, pixels);
    #[cfg(feature = "storage")]
    storage(&model, words, arena, pixels);
    loop {}
}

#[cfg(feature = "storage")]
fn storage(model: &Model<'_>, words: &mut [u32], arena: &mut [u8], pixels: &[u8]) {
    let model = model;
    // Fine-tuned weights from flash, else the model's own.
    let mut overlay = fixnet::overlay::Overlay::new();
    if let Ok(mut store) = WeightStore::new(Flash, 4096, 2048) {
        if let Ok(Some(payload)) = store.load(model.crc(), words) {
            if let Ok(o) = decode_overlay(model, payload) {
                overlay = o;
            }
        }
    }
    #[cfg(feature = "interp")]
    if let Ok(mut interp) = Interpreter::with_overlay(model, arena, overlay) {
        run(&mut interp, pixels);
    }
    #[cfg(not(feature = "interp"))]
    let _ = (overlay, arena);
    // A save (the firmware's persist path).
    if let Ok(mut store) = WeightStore::new(Flash, 4096, 2048) {
        let _ = store.save(model.crc(), pixels);
    }
}

#[cfg(feature = "interp")]
#[inline(never)]
fn run(interp: &mut Interpreter<'_, '_>, pixels: &[u8]) {
    if interp.set_input_grey(pixels).is_err() {
        return;
    }
    #[cfg(feature = "invoke")]
    {
        if interp.invoke().is_err() {
            return;
        }
    }
    let (class, score) = interp.top1();
    sink(class as u32 ^ score as u32);
    if let Some(x) = interp.output_real(0) {
        sink(x.to_bits());
    }
}

#[cfg(feature = "train")]
#[inline(never)]
fn train(model: &Model<'_>, pixels: &[u8]) {
    // SAFETY: the only borrow of this static.
    let arena = unsafe { &mut (&mut (*addr_of_mut!(TRAIN)).0)[..] };
    let from = opaque_len(model.op_count());
    let label = opaque_len(16);
    let Ok(mut trainer) = fixnet::train::Trainer::new(model, from, &mut *arena) else {
        return;
    };
    if let Ok(loss) = trainer.step(pixels, label) {
        sink(loss.q16 as u32);
    }
    trainer.flush();
    if let Ok(outcome) = trainer.guard([(pixels, label)]) {
        sink(matches!(outcome, fixnet::train::GuardOutcome::Kept { .. }) as u32);
    }
    let mut out = [0u8; 64];
    if let Ok(n) = fixnet::storage::encode_constants(trainer.constants(), &mut out) {
        sink(n as u32);
    }
    drop(trainer);
    train_more(model, pixels, arena, from, label);
}

/// The rest of the fine-tuning API, on a trainer whose settings the optimizer cannot see:
/// cached features, prediction and loss, the rollback guard, restoring saved constants.
#[cfg(feature = "train")]
#[inline(never)]
fn train_more(model: &Model<'_>, pixels: &[u8], arena: &mut [u8], from: usize, label: usize) {
    use fixnet::train::{Rounding, TrainConfig, Trainer};
    let mut config = TrainConfig::new(from).bias_from(opaque_len(model.op_count()));
    config.batch_size = opaque_len(64) as u16;
    config.rollback = opaque_len(1) == 1;
    config.rounding = if opaque_len(1) == 1 {
        Rounding::Stochastic
    } else {
        Rounding::Nearest
    };
    config.decay_every = opaque_len(100) as u32;
    let Ok(mut trainer) = Trainer::with_config(model, config, arena) else {
        return;
    };
    let mut features = [0i8; 2048];
    let n = opaque_len(features.len());
    let features = &mut features[..n];
    if trainer.features(pixels, features).is_ok() {
        if let Ok(loss) = trainer.step_features(features, label) {
            sink(loss.q16 as u32);
        }
        if let Ok(class) = trainer.predict_features(features) {
            sink(class as u32);
        }
        if let Ok(loss) = trainer.loss_features(features, label) {
            sink(loss.q16 as u32);
        }
        if let Ok(outcome) = trainer.guard_features([(&*features, label)]) {
            sink(matches!(outcome, fixnet::train::GuardOutcome::Kept { .. }) as u32);
        }
    }
    if let Ok(class) = trainer.predict(pixels) {
        sink(class as u32);
    }
    if let Ok(loss) = trainer.loss(pixels, label) {
        sink(loss.q16 as u32);
    }
    if let Ok(loss) = trainer.mean_loss([(pixels, label)]) {
        sink(loss.q16 as u32);
    }
    trainer.flush();
    sink(trainer.rollback().is_ok() as u32);
    sink(trainer.updates());
    #[cfg(feature = "write")]
    {
        if let Ok(n) = trainer.model_len() {
            sink(n as u32);
        }
        // SAFETY: the only borrow of this static.
        let out = unsafe { &mut (*addr_of_mut!(OUT)).0 };
        let n = opaque_len(out.len());
        if let Ok(n) = trainer.write_model(&mut out[..n]) {
            sink(n as u32);
        }
        // The model writer and planner themselves: the parsed model written again.
        if let Ok(builder) = fixnet::ModelBuilder::from_model(model) {
            if let Ok(n) = builder.write(&mut out[..n]) {
                sink(n as u32);
            }
        }
    }
    // Constants saved earlier (flash) restored into the trainer.
    // SAFETY: single-threaded; nothing borrows this static mutably while this runs.
    let flash = unsafe { &(*addr_of!(FLASH)).0 };
    let payload = &flash[..opaque_len(flash.len())];
    if let Ok(overlay) = fixnet::storage::decode_overlay(model, payload) {
        sink(trainer.restore(&overlay).is_ok() as u32);
    }
}
