//! Power-cut safety of the two-slot weight store: a simulated NOR flash (erase to 0xFF,
//! programming only clears bits, 4-byte program granules, 256-byte sectors) loses power at
//! every single program and erase step of a save, once before the step and once half-way
//! through it; after each cut a reboot must load exactly the old or exactly the new weights.

mod common;

use common::{Aligned, SmallModelData};
use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};
use fixnet::storage::{decode_overlay, encode_constants, WeightStore};
use fixnet::train::{Constant, TrainConfig, Trainer};
use fixnet::Model;

const SECTOR: usize = 256;
const GRANULE: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PowerLost;

impl NorFlashError for PowerLost {
    fn kind(&self) -> NorFlashErrorKind {
        NorFlashErrorKind::Other
    }
}

/// How a cut hits the step it happens at.
#[derive(Clone, Copy, Debug)]
enum Cut {
    Before,
    Halfway,
}

struct SimFlash {
    mem: Vec<u8>,
    steps: usize,
    cut_at: Option<(usize, Cut)>,
    dead: bool,
}

impl SimFlash {
    fn new(size: usize) -> Self {
        SimFlash {
            mem: vec![0xFF; size],
            steps: 0,
            cut_at: None,
            dead: false,
        }
    }

    /// Counts a step; returns how much of it happens (None: all of it).
    fn step(&mut self) -> Result<Option<Cut>, PowerLost> {
        if self.dead {
            return Err(PowerLost);
        }
        let n = self.steps;
        self.steps += 1;
        match self.cut_at {
            Some((at, how)) if at == n => {
                self.dead = true;
                Ok(Some(how))
            }
            _ => Ok(None),
        }
    }
}

impl ErrorType for SimFlash {
    type Error = PowerLost;
}

impl ReadNorFlash for SimFlash {
    const READ_SIZE: usize = 1;
    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), PowerLost> {
        let o = offset as usize;
        bytes.copy_from_slice(&self.mem[o..o + bytes.len()]);
        Ok(())
    }
    fn capacity(&self) -> usize {
        self.mem.len()
    }
}

impl NorFlash for SimFlash {
    const WRITE_SIZE: usize = GRANULE;
    const ERASE_SIZE: usize = SECTOR;
    fn erase(&mut self, from: u32, to: u32) -> Result<(), PowerLost> {
        assert_eq!(from as usize % SECTOR, 0);
        assert_eq!(to as usize % SECTOR, 0);
        for s in (from as usize..to as usize).step_by(SECTOR) {
            match self.step()? {
                None => self.mem[s..s + SECTOR].fill(0xFF),
                Some(Cut::Before) => return Err(PowerLost),
                Some(Cut::Halfway) => {
                    // A half-erased sector: some bytes erased, the rest left as they were.
                    self.mem[s..s + SECTOR / 2].fill(0xFF);
                    return Err(PowerLost);
                }
            }
        }
        Ok(())
    }
    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), PowerLost> {
        let o = offset as usize;
        assert_eq!(o % GRANULE, 0);
        assert_eq!(bytes.len() % GRANULE, 0);
        for (k, g) in bytes.chunks(GRANULE).enumerate() {
            let at = o + k * GRANULE;
            let n = match self.step()? {
                None => GRANULE,
                Some(Cut::Before) => return Err(PowerLost),
                Some(Cut::Halfway) => GRANULE / 2,
            };
            for (m, &b) in self.mem[at..at + n].iter_mut().zip(g) {
                // NOR programming can only clear bits.
                *m &= b;
            }
            if n < GRANULE {
                return Err(PowerLost);
            }
        }
        Ok(())
    }
}

const FLASH: usize = 8 * SECTOR;
const SLOT: u32 = 4 * SECTOR as u32;

fn load(mem: &[u8], model_crc: u32) -> Option<Vec<u8>> {
    let mut flash = SimFlash::new(FLASH);
    flash.mem.copy_from_slice(mem);
    let mut store = WeightStore::new(flash, 0, SLOT).unwrap();
    let mut buf = vec![0u32; SLOT as usize / 4];
    store.load(model_crc, &mut buf).unwrap().map(<[u8]>::to_vec)
}

fn payload(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Saves `new` over a flash holding `old` (as newest), cutting at every step both ways.
/// Returns the number of cut points.
fn cut_everywhere(start: &[u8], old: Option<&[u8]>, new: &[u8], crc: u32) -> usize {
    // Count the steps of an uninterrupted save.
    let mut flash = SimFlash::new(FLASH);
    flash.mem.copy_from_slice(start);
    let mut store = WeightStore::new(flash, 0, SLOT).unwrap();
    store.save(crc, new).unwrap();
    let total = store.release().steps;
    assert!(total > 0);
    for at in 0..total {
        for how in [Cut::Before, Cut::Halfway] {
            let mut flash = SimFlash::new(FLASH);
            flash.mem.copy_from_slice(start);
            flash.cut_at = Some((at, how));
            let mut store = WeightStore::new(flash, 0, SLOT).unwrap();
            assert!(
                store.save(crc, new).is_err(),
                "cut at {at} must interrupt the save"
            );
            let mem = store.release().mem;
            let got = load(&mem, crc);
            let is_old = got.as_deref() == old;
            let is_new = got.as_deref() == Some(new);
            assert!(
                is_old || is_new,
                "cut {how:?} at step {at}/{total}: loaded neither the old nor the new set"
            );
        }
    }
    total
}

#[test]
fn every_cut_point_leaves_old_or_new_weights() {
    let crc = 0x1234_5678;
    let empty = vec![0xFFu8; FLASH];
    let a = payload(1, 300);
    let b = payload(2, 517);
    let c = payload(3, 64);

    // Factory state → A: a cut leaves nothing (factory weights) or A.
    let mut cuts = cut_everywhere(&empty, None, &a, crc);
    let mut store = WeightStore::new(SimFlash::new(FLASH), 0, SLOT).unwrap();
    store.save(crc, &a).unwrap();
    let after_a = store.release().mem;
    assert_eq!(load(&after_a, crc).as_deref(), Some(&a[..]));

    // A → B (into slot 1), then B → C (over slot 0, which held A).
    cuts += cut_everywhere(&after_a, Some(&a), &b, crc);
    let mut flash = SimFlash::new(FLASH);
    flash.mem.copy_from_slice(&after_a);
    let mut store = WeightStore::new(flash, 0, SLOT).unwrap();
    store.save(crc, &b).unwrap();
    let after_b = store.release().mem;
    assert_eq!(load(&after_b, crc).as_deref(), Some(&b[..]));
    cuts += cut_everywhere(&after_b, Some(&b), &c, crc);
    eprintln!("{cuts} cut points, each tested before and half-way through the step");
    assert!(cuts > 100);

    // Weights saved for another model are ignored.
    assert_eq!(load(&after_b, crc ^ 1), None);
}

#[test]
fn trained_weights_round_trip_through_flash() {
    let data = SmallModelData::new();
    let blob = Aligned::new(&data.encode());
    let model = Model::from_bytes(blob.bytes()).unwrap();
    let config = TrainConfig::new(3).bias_from(0).learning_rate(0.5);
    let mut arena = vec![0u8; Trainer::arena_use(&model, &config).unwrap().total()];
    let mut trainer = Trainer::with_config(&model, config, &mut arena).unwrap();
    let image: Vec<u8> = (0..64).map(|i| (i * 4) as u8).collect();
    for _ in 0..20 {
        trainer.step(&image, 3).unwrap();
    }
    trainer.flush();
    let mut payload = vec![0u8; fixnet::storage::encoded_len(trainer.constants())];
    let n = encode_constants(trainer.constants(), &mut payload).unwrap();
    assert_eq!(n, payload.len());

    let mut store = WeightStore::new(SimFlash::new(FLASH), 0, SLOT).unwrap();
    store.save(model.crc(), &payload).unwrap();
    let mut buf = vec![0u32; SLOT as usize / 4];
    let loaded = store.load(model.crc(), &mut buf).unwrap().unwrap();
    let overlay = decode_overlay(&model, loaded).unwrap();
    for c in trainer.constants() {
        match c {
            Constant::Int8(id, v) => assert_eq!(overlay.int8(id), Some(v)),
            Constant::Int32(id, v) => assert_eq!(overlay.int32(id), Some(v)),
        }
    }
    // The interpreter runs the loaded weights exactly as the trainer does.
    let mut iarena = vec![0u8; model.arena_size()];
    let mut interp = fixnet::Interpreter::with_overlay(&model, &mut iarena, overlay).unwrap();
    interp.set_input_grey(&image).unwrap();
    interp.invoke().unwrap();
    trainer.forward(&image).unwrap();
    assert_eq!(interp.output(), trainer.output().unwrap());
}
