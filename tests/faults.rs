//! Fault injection beyond power cuts (power cuts: `tests/storage_powercut.rs`).
//!
//! * Bit flips in flash: every single-bit flip of the newest slot's header, and a sample of
//!   its payload bits, is detected and the previous valid weights are loaded; a flip in the
//!   older slot never disturbs the newest; transient read faults never hand out wrong bytes.
//! * Hostile fine-tuning: only wrong labels, or all-black, all-white or noise images, cannot
//!   push the weights the guard keeps (and that get saved and served) above the held-back
//!   loss the guard started from.

mod common;

use common::Aligned;
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use fixnet::storage::{decode_overlay, encode_constants, encoded_len, WeightStore, HEADER_LEN};
use fixnet::train::{GuardOutcome, Loss, TrainConfig, Trainer};
use fixnet::{Interpreter, Model};
use std::io::Read;
use std::path::Path;

// ------------------------------------------------------------------ a NOR flash with faults

const SECTOR: usize = 1024;
const SLOT: usize = 4 * SECTOR;

#[derive(Debug)]
struct Fault;
impl NorFlashError for Fault {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

/// NOR flash in RAM. `read_fault = Some((n, bit))` flips `bit` of the first byte returned by
/// the `n`-th read call (a transient read disturb; the stored bits stay intact).
struct Flash {
    mem: Vec<u8>,
    reads: usize,
    read_fault: Option<(usize, u8)>,
}

impl Flash {
    fn new() -> Self {
        Flash {
            mem: vec![0xFF; 2 * SLOT],
            reads: 0,
            read_fault: None,
        }
    }
}

impl ErrorType for Flash {
    type Error = Fault;
}
impl ReadNorFlash for Flash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Fault> {
        let at = offset as usize;
        bytes.copy_from_slice(self.mem.get(at..at + bytes.len()).ok_or(Fault)?);
        if let Some((n, bit)) = self.read_fault {
            if n == self.reads && !bytes.is_empty() {
                bytes[0] ^= 1 << bit;
            }
        }
        self.reads += 1;
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.mem.len()
    }
}
impl NorFlash for Flash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = SECTOR;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), Fault> {
        self.mem
            .get_mut(from as usize..to as usize)
            .ok_or(Fault)?
            .fill(0xFF);
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Fault> {
        let at = offset as usize;
        for (d, s) in self
            .mem
            .get_mut(at..at + bytes.len())
            .ok_or(Fault)?
            .iter_mut()
            .zip(bytes)
        {
            *d &= *s;
        }
        Ok(())
    }
}

fn load(mem: &[u8], crc: u32) -> Option<Vec<u8>> {
    let mut flash = Flash::new();
    flash.mem.copy_from_slice(mem);
    let mut store = WeightStore::new(flash, 0, SLOT as u32).unwrap();
    let mut buf = vec![0u32; SLOT / 4];
    store.load(crc, &mut buf).unwrap().map(<[u8]>::to_vec)
}

fn payload(seed: u32, len: usize) -> Vec<u8> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 24) as u8
        })
        .collect()
}

/// Flash holding `old` (sequence 1) and then `new` (sequence 2, in slot 1).
fn two_generations(crc: u32, old: &[u8], new: &[u8]) -> Vec<u8> {
    let mut store = WeightStore::new(Flash::new(), 0, SLOT as u32).unwrap();
    store.save(crc, old).unwrap();
    store.save(crc, new).unwrap();
    store.release().mem
}

#[test]
fn every_header_bit_flip_falls_back_to_the_previous_weights() {
    let crc = 0xC0FF_EE00;
    let (old, new) = (payload(1, 700), payload(2, 1500));
    let mem = two_generations(crc, &old, &new);
    assert_eq!(load(&mem, crc).as_deref(), Some(&new[..]));
    // The newest set sits in slot 1: flip each bit of its header.
    for byte in 0..HEADER_LEN {
        for bit in 0..8 {
            let mut m = mem.clone();
            m[SLOT + byte] ^= 1 << bit;
            assert_eq!(
                load(&m, crc).as_deref(),
                Some(&old[..]),
                "header byte {byte} bit {bit}: not detected"
            );
        }
    }
    // And each bit of the older slot's header: the newest is untouched and still wins.
    for byte in 0..HEADER_LEN {
        for bit in 0..8 {
            let mut m = mem.clone();
            m[byte] ^= 1 << bit;
            assert_eq!(
                load(&m, crc).as_deref(),
                Some(&new[..]),
                "old header {byte}.{bit}"
            );
        }
    }
}

#[test]
fn payload_bit_flips_fall_back_to_the_previous_weights() {
    let crc = 0x1234_5678;
    let (old, new) = (payload(3, 900), payload(4, 2000));
    let mem = two_generations(crc, &old, &new);
    let base = SLOT + fixnet::storage::PAYLOAD_OFFSET;
    // Every bit of the first and last 64 bytes, and every 13th bit in between.
    let bits = new.len() * 8;
    let sample = (0..512)
        .chain((bits - 512)..bits)
        .chain((512..bits - 512).step_by(13));
    let mut tried = 0;
    for b in sample {
        let mut m = mem.clone();
        m[base + b / 8] ^= 1 << (b % 8);
        assert_eq!(load(&m, crc).as_deref(), Some(&old[..]), "payload bit {b}");
        tried += 1;
    }
    // Two flips at once (one per slot): nothing valid is left, the factory weights apply.
    let mut m = mem.clone();
    m[base + 10] ^= 4;
    m[fixnet::storage::PAYLOAD_OFFSET + 3] ^= 0x80;
    assert_eq!(load(&m, crc), None);
    eprintln!("{tried} payload bit flips detected");
}

#[test]
fn transient_read_faults_never_hand_out_wrong_weights() {
    let crc = 0xABCD_0123;
    let (old, new) = (payload(5, 300), payload(6, 600));
    let mem = two_generations(crc, &old, &new);
    // Count the reads of a clean load, then disturb each one, at each bit.
    let mut flash = Flash::new();
    flash.mem.copy_from_slice(&mem);
    let mut store = WeightStore::new(flash, 0, SLOT as u32).unwrap();
    let mut buf = vec![0u32; SLOT / 4];
    store.load(crc, &mut buf).unwrap();
    let reads = store.release().reads;
    for n in 0..reads {
        for bit in 0..8 {
            let mut flash = Flash::new();
            flash.mem.copy_from_slice(&mem);
            flash.read_fault = Some((n, bit));
            let mut store = WeightStore::new(flash, 0, SLOT as u32).unwrap();
            let got = store.load(crc, &mut buf).unwrap().map(<[u8]>::to_vec);
            assert!(
                got.is_none()
                    || got.as_deref() == Some(&new[..])
                    || got.as_deref() == Some(&old[..]),
                "read {n} bit {bit}: corrupted weights handed out"
            );
        }
    }
}

// ------------------------------------------------------------------ hostile fine-tuning

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn mnist(n: usize) -> Vec<(Vec<u8>, usize)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let images = gunzip(&root.join("test-images-idx3-ubyte.gz"));
    let labels = gunzip(&root.join("test-labels-idx1-ubyte.gz"));
    (0..n)
        .map(|i| {
            (
                images[16 + i * 784..][..784].to_vec(),
                usize::from(labels[8 + i]),
            )
        })
        .collect()
}

fn noise(seed: u32) -> Vec<u8> {
    payload(seed, 784)
}

/// Fine-tunes the shipped model (default layers) on `hostile` samples with the rollback
/// guard after every epoch, and checks that the held-back loss of the weights the guard
/// keeps — saved to flash, loaded back and served by the interpreter — never exceeds the
/// starting loss.
fn hostile_run(name: &str, hostile: &[(Vec<u8>, usize)], lr: f32) {
    let bytes =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("models/seed_cnn.fxn")).unwrap();
    let blob = Aligned::new(&bytes);
    let model = Model::from_bytes(blob.bytes()).unwrap();
    let config = TrainConfig::new(6)
        .bias_from(5)
        .learning_rate(lr)
        .batch_size(10);
    let mut arena = vec![0u8; Trainer::arena_use(&model, &config).unwrap().total()];
    let mut t = Trainer::with_config(&model, config, &mut arena).unwrap();
    let n = t.feature_len().unwrap();
    let features = |t: &mut Trainer<'_, '_>, set: &[(Vec<u8>, usize)]| -> Vec<(Vec<i8>, usize)> {
        set.iter()
            .map(|(img, label)| {
                let mut f = vec![0i8; n];
                t.features(img, &mut f).unwrap();
                (f, *label)
            })
            .collect()
    };
    let held = features(&mut t, &mnist(150)[50..]);
    let train = features(&mut t, hostile);
    let held_ref = || held.iter().map(|(f, l)| (f.as_slice(), *l));

    let start = match t.guard_features(held_ref()).unwrap() {
        GuardOutcome::Kept { loss } => loss,
        other => panic!("first guard must keep: {other:?}"),
    };
    let mut rolled_back = 0;
    let mut worst_rejected = Loss::from_q16(0);
    for _epoch in 0..4 {
        for (f, label) in &train {
            t.step_features(f, *label).unwrap();
        }
        match t.guard_features(held_ref()).unwrap() {
            GuardOutcome::Kept { loss } => assert!(loss <= start, "{name}: kept a worse loss"),
            GuardOutcome::RolledBack { loss, best } => {
                assert!(best <= start);
                rolled_back += 1;
                worst_rejected = worst_rejected.max(loss);
            }
        }
        // What the device would serve now: the guarded weights, through flash.
        let mut payload = vec![0u8; encoded_len(t.constants())];
        encode_constants(t.constants(), &mut payload).unwrap();
        let mut store = WeightStore::new(Flash::new(), 0, SLOT as u32).unwrap();
        store.save(model.crc(), &payload).unwrap();
        let mut buf = vec![0u32; SLOT / 4];
        let loaded = store.load(model.crc(), &mut buf).unwrap().unwrap().to_vec();
        let words: Vec<u32> = loaded
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let aligned: &[u8] = bytemuck::cast_slice(&words);
        let overlay = decode_overlay(&model, aligned).unwrap();
        let mut iarena = vec![0u8; model.arena_size()];
        let mut interp = Interpreter::with_overlay(&model, &mut iarena, overlay).unwrap();
        // The served weights score exactly what the trainer measured for them.
        let held_images = mnist(150);
        let served = t
            .mean_loss(held_images[50..].iter().map(|(i, l)| (i.as_slice(), *l)))
            .unwrap();
        assert!(
            served <= start,
            "{name}: served weights have held-back loss {served:?} > {start:?}"
        );
        let (img, _) = &mnist(1)[0];
        interp.set_input_grey(img).unwrap();
        interp.invoke().unwrap();
        t.forward(img).unwrap();
        assert_eq!(
            interp.output(),
            t.output().unwrap(),
            "{name}: served ≠ trained weights"
        );
    }
    eprintln!(
        "{name}: start loss {:.4}, {rolled_back}/4 epochs rolled back (worst rejected {:.4})",
        start.to_f32(),
        worst_rejected.to_f32()
    );
}

#[test]
fn wrong_labels_cannot_degrade_the_guarded_weights() {
    let wrong: Vec<(Vec<u8>, usize)> = mnist(50)
        .into_iter()
        .map(|(img, l)| (img, (l + 1) % 10))
        .collect();
    hostile_run("wrong labels", &wrong, 0.05);
}

#[test]
fn pathological_images_cannot_degrade_the_guarded_weights() {
    let black: Vec<_> = (0..50).map(|i| (vec![0u8; 784], i % 10)).collect();
    hostile_run("all black", &black, 0.05);
    let white: Vec<_> = (0..50).map(|i| (vec![255u8; 784], i % 10)).collect();
    hostile_run("all white", &white, 0.05);
    let noisy: Vec<_> = (0..50)
        .map(|i| (noise(i as u32 + 1), (i * 7) % 10))
        .collect();
    hostile_run("noise", &noisy, 0.05);
    // One class only, as a stuck sensor would produce.
    let stuck: Vec<_> = (0..50).map(|_| (vec![255u8; 784], 3)).collect();
    hostile_run("all white, one label", &stuck, 0.5);
}
