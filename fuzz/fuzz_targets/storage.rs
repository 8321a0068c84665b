//! The two-slot weight store's loader on arbitrary flash contents, the payload decoder
//! (`decode_overlay`) against the strided CNN, and save-then-load on whatever flash state
//! the loader survived (the saved set must come back).
//!
//! Input: byte 0 selects the mode; the rest is the flash image (two 2 KiB slots). In mode 1
//! the header and payload CRCs are fixed up before loading, so that the fuzzer gets past them
//! to the length checks and the payload decoder.
#![no_main]

use fixnet::format::crc32::crc32;
use fixnet::storage::{decode_overlay, WeightStore, HEADER_LEN, PAYLOAD_OFFSET};
use fixnet::{Interpreter, Model};
use fixnet_fuzz::{Aligned, RamFlash, SECTOR};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const SLOT: usize = 2 * SECTOR;
const FLASH: usize = 2 * SLOT;

/// A small real model (the strided CNN fixture, converted), to decode payloads against.
fn model() -> &'static Model<'static> {
    static BLOB: OnceLock<&'static Aligned> = OnceLock::new();
    static MODEL: OnceLock<Model<'static>> = OnceLock::new();
    MODEL.get_or_init(|| {
        let blob = BLOB.get_or_init(|| {
            let tflite = include_bytes!("../../tests/fixtures/models/strided_cnn_int8.tflite");
            let graph = fixnet_tools::tflite::import(tflite).expect("fixture imports");
            let bytes = fixnet_tools::lower::lower(&graph).expect("fixture lowers");
            Box::leak(Box::new(Aligned::new(&bytes)))
        });
        Model::from_bytes(blob.bytes()).expect("fixture model")
    })
}

fn fix_crcs(mem: &mut [u8]) {
    for slot in 0..2 {
        let base = slot * SLOT;
        let word = |m: &[u8], at: usize| u32::from_le_bytes(m[at..at + 4].try_into().unwrap());
        let len = word(mem, base + 12) as usize % (SLOT - PAYLOAD_OFFSET + 8);
        mem[base + 12..base + 16].copy_from_slice(&(len as u32).to_le_bytes());
        let end = (base + PAYLOAD_OFFSET + len).min(base + SLOT);
        let pcrc = crc32(&mem[base + PAYLOAD_OFFSET..end]);
        mem[base + 20..base + 24].copy_from_slice(&pcrc.to_le_bytes());
        let hcrc = crc32(&mem[base..base + 28]);
        mem[base + 28..base + HEADER_LEN].copy_from_slice(&hcrc.to_le_bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let model = model();
    // The payload decoder on the raw bytes (4-byte aligned, as load hands them out).
    let words: Vec<u32> = rest
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect();
    let raw: &[u8] = &bytemuck_bytes(&words)[..rest.len()];
    let _ = decode_overlay(model, raw);

    let mut mem = vec![0xFFu8; FLASH];
    let n = rest.len().min(FLASH);
    mem[..n].copy_from_slice(&rest[..n]);
    if mode & 1 == 1 {
        fix_crcs(&mut mem);
    }
    // Use the model CRC the flash claims in slot 0 half of the time, so the loader gets past it.
    let crc = if mode & 2 == 2 {
        u32::from_le_bytes(mem[16..20].try_into().unwrap())
    } else {
        model.crc()
    };
    let mut store = WeightStore::new(RamFlash { mem }, 0, SLOT as u32).expect("geometry");
    let mut buf = vec![0u32; SLOT / 4];
    let loaded = store
        .load(crc, &mut buf)
        .expect("RAM flash never fails")
        .map(<[u8]>::to_vec);
    if let Some(payload) = &loaded {
        assert!(payload.len() <= SLOT - PAYLOAD_OFFSET);
        let words: Vec<u32> = payload
            .chunks(4)
            .map(|c| {
                let mut w = [0u8; 4];
                w[..c.len()].copy_from_slice(c);
                u32::from_le_bytes(w)
            })
            .collect();
        let aligned = &bytemuck_bytes(&words)[..payload.len()];
        if crc == model.crc() {
            if let Ok(overlay) = decode_overlay(model, aligned) {
                let mut arena = vec![0u8; model.arena_size()];
                let mut interp =
                    Interpreter::with_overlay(model, &mut arena, overlay).expect("checked overlay");
                interp.invoke().expect("runs with any checked overlay");
            }
        }
    }
    // Save on top of whatever is there: the new set must be the one loaded afterwards.
    let new: Vec<u8> = rest.iter().rev().take(100).copied().collect();
    let seq = store.save(crc, &new).expect("save fits");
    let got = store.load(crc, &mut buf).expect("load").map(<[u8]>::to_vec);
    assert_eq!(
        got.as_deref(),
        Some(&new[..]),
        "saved set (sequence {seq}) not loaded back"
    );
});

fn bytemuck_bytes(words: &[u32]) -> &[u8] {
    // SAFETY: u32 storage viewed as bytes within its length.
    unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), words.len() * 4) }
}
