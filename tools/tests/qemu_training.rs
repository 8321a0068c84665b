//! Fine-tuning end to end under QEMU: the `boards/qemu-mps2-an386` firmware trains over the
//! serial link exactly as the host simulation does (`Trainer` with the firmware's
//! `fixnet_app::train_config`, the same samples, then `Interpreter::with_overlay`), keeps
//! saved weights in its semihosting flash file across restarts of QEMU, reverts to the
//! factory weights, and a save killed at pseudo-random moments always leaves exactly the old
//! or exactly the new weights.
//!
//! Needs `qemu-system-arm` and the `thumbv7em-none-eabihf` target. Without either the
//! tests are skipped with a note, except in CI (`CI` set), where they fail.

use fixnet::format::crc32::crc32;
use fixnet::overlay::Overlay;
use fixnet::storage::{decode_overlay, encode_constants, encoded_len, PAYLOAD_OFFSET};
use fixnet::train::Trainer;
use fixnet::{Interpreter, Model};
use fixnet_app::protocol::MAX_FRAME;
use fixnet_app::{encode_frame, train_config, Request, Weights};
use fixnet_tools::device::qemu::{build_firmware, check_qemu_and_targets, QemuBoard, TARGET};
use fixnet_tools::device::Device;
use fixnet_tools::idx;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Slot size of the firmware's weight store (`fixnet_app::slot_size` of the 4 KiB sectors of
/// the emulated flash).
const SLOT: usize = fixnet_app::slot_size(4096) as usize;

/// The serving firmware, built once per test binary.
fn firmware() -> Option<PathBuf> {
    static ELF: OnceLock<Option<PathBuf>> = OnceLock::new();
    ELF.get_or_init(|| {
        if let Err(e) = check_qemu_and_targets(&[TARGET]) {
            assert!(std::env::var_os("CI").is_none(), "{e}");
            eprintln!("skipping the QEMU tests: {e}");
            return None;
        }
        Some(build_firmware("fixnet-qemu-mps2-an386", None).expect("building the firmware"))
    })
    .clone()
}

fn state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fixnet-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

struct Digits {
    images: idx::Images,
    labels: Vec<u8>,
}

fn digits() -> &'static Digits {
    static D: OnceLock<Digits> = OnceLock::new();
    D.get_or_init(|| Digits {
        images: idx::read_images(&repo("data/mnist/test-images-idx3-ubyte.gz")).unwrap(),
        labels: idx::read_labels(&repo("data/mnist/test-labels-idx1-ubyte.gz")).unwrap(),
    })
}

/// Training samples: test digits `range` with labels the model disagrees with (a user who
/// writes digits their own way), so that a few steps visibly move the weights.
fn samples(range: std::ops::Range<usize>) -> Vec<(&'static [u8], u8)> {
    let d = digits();
    range
        .map(|i| (d.images.image(i), (d.labels[i] + 1) % 10))
        .collect()
}

fn model() -> Model<'static> {
    Model::from_bytes(fixnet_app::MODEL).unwrap()
}

/// The host simulation: the firmware's trainer configuration over a host arena.
fn simulator<'m>(model: &'m Model<'m>, arena: &'m mut Vec<u8>) -> Trainer<'m, 'm> {
    let config = train_config(model).unwrap();
    arena.resize(fixnet_app::TRAIN_ARENA_SIZE, 0);
    Trainer::with_config(model, config, arena).unwrap()
}

/// The model's int8 outputs for `images` with `overlay` laid over its constants.
fn outputs(model: &Model<'_>, overlay: Overlay<'_>, images: &[&[u8]]) -> Vec<Vec<i8>> {
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::with_overlay(model, &mut arena, overlay).unwrap();
    images
        .iter()
        .map(|im| {
            interp.set_input_grey(im).unwrap();
            interp.invoke().unwrap();
            interp.output().to_vec()
        })
        .collect()
}

/// The trainer's constants as the firmware saves them.
fn payload(trainer: &Trainer<'_, '_>) -> Vec<u8> {
    let mut out = vec![0u8; encoded_len(trainer.constants())];
    encode_constants(trainer.constants(), &mut out).unwrap();
    out
}

fn classify_all(dev: &mut Device, images: &[&[u8]]) -> Vec<Vec<i8>> {
    images
        .iter()
        .map(|im| dev.classify(im).unwrap().scores.to_vec())
        .collect()
}

/// The newest valid weight set in a flash image, read independently of the firmware's
/// `WeightStore` from the slot format of `fixnet::storage`: (generation, payload).
fn saved_set(flash: &[u8], model_crc: u32) -> Option<(u32, Vec<u8>)> {
    let word = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    let mut best: Option<(u32, Vec<u8>)> = None;
    for slot in 0..2 {
        let s = &flash[slot * SLOT..(slot + 1) * SLOT];
        let len = word(s, 12) as usize;
        let valid = &s[0..4] == b"FXWT"
            && word(s, 28) == crc32(&s[..28])
            && word(s, 16) == model_crc
            && PAYLOAD_OFFSET + len <= SLOT
            && word(s, 20) == crc32(&s[PAYLOAD_OFFSET..PAYLOAD_OFFSET + len]);
        let sequence = word(s, 8);
        if valid
            && best
                .as_ref()
                .is_none_or(|(b, _)| (sequence.wrapping_sub(*b) as i32) > 0)
        {
            best = Some((sequence, s[PAYLOAD_OFFSET..PAYLOAD_OFFSET + len].to_vec()));
        }
    }
    best
}

fn flash_file(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("fixnet-flash.bin")).unwrap()
}

/// A board on `dir`, connected.
fn boot(elf: &Path, dir: &Path) -> (QemuBoard, Device) {
    let mut board = QemuBoard::start(elf, dir).unwrap();
    let dev = board.connect().unwrap();
    (board, dev)
}

#[test]
fn training_over_the_link_equals_the_host_simulation_and_survives_a_restart() {
    let Some(elf) = firmware() else { return };
    let t0 = Instant::now();
    let dir = state_dir("train");
    let model = model();
    let train = samples(100..115);
    let d = digits();
    let probe: Vec<&[u8]> = (100..104)
        .chain(200..204)
        .map(|i| d.images.image(i))
        .collect();

    // Host simulation: losses, outputs with 5 samples pending, outputs after save's flush.
    let mut sim_arena = Vec::new();
    let mut sim = simulator(&model, &mut sim_arena);
    let factory = outputs(&model, Overlay::new(), &probe);
    let losses: Vec<f32> = train
        .iter()
        .map(|(im, l)| sim.step(im, usize::from(*l)).unwrap().to_f32())
        .collect();
    let pending = outputs(&model, sim.overlay().unwrap(), &probe);
    sim.flush();
    let saved = outputs(&model, sim.overlay().unwrap(), &probe);
    let saved_payload = payload(&sim);
    assert_ne!(saved, factory, "the samples should move the weights");

    let (mut board, mut dev) = boot(&elf, &dir);
    let info = dev.info().unwrap();
    let t = info.training.expect("the QEMU firmware fine-tunes");
    assert_eq!(
        usize::from(t.train_from),
        train_config(&model).unwrap().train_from
    );
    assert_eq!(t.train_arena_bytes as usize, fixnet_app::TRAIN_ARENA_SIZE);
    assert_eq!(info.weights, Weights::default());
    assert_eq!(classify_all(&mut dev, &probe), factory);
    for (i, ((image, label), loss)) in train.iter().zip(&losses).enumerate() {
        let (l, w) = dev.train(image, *label).unwrap();
        assert_eq!(l, *loss, "loss of sample {i}");
        assert_eq!(w.steps as usize, i + 1);
    }
    assert_eq!(classify_all(&mut dev, &probe), pending, "5 samples pending");
    assert_eq!(dev.save().unwrap(), 1);
    assert_eq!(classify_all(&mut dev, &probe), saved, "after save");
    let stats = dev.stats().unwrap();
    assert_eq!(
        (stats.training_steps, stats.saves, stats.errors),
        (15, 1, 0)
    );
    assert_eq!(stats.weights.generation, 1);
    assert_eq!(
        saved_set(&flash_file(&dir), model.crc()),
        Some((1, saved_payload.clone()))
    );
    drop(dev);
    board.kill();

    // Restart: the saved weights are loaded.
    let (mut board, mut dev) = boot(&elf, &dir);
    let info = dev.info().unwrap();
    assert_eq!(info.weights.generation, 1);
    assert_eq!(classify_all(&mut dev, &probe), saved, "after restart");
    // And they are the simulation's, exactly: restored from the payload.
    let restored = outputs(
        &model,
        decode_overlay(&model, &aligned(&saved_payload)).unwrap(),
        &probe,
    );
    assert_eq!(restored, saved);

    // Revert: factory weights, also after a restart, and no valid set left in flash.
    dev.revert().unwrap();
    assert_eq!(dev.info().unwrap().weights, Weights::default());
    assert_eq!(classify_all(&mut dev, &probe), factory, "after revert");
    drop(dev);
    board.kill();
    assert_eq!(saved_set(&flash_file(&dir), model.crc()), None);
    let (mut board, mut dev) = boot(&elf, &dir);
    assert_eq!(dev.info().unwrap().weights.generation, 0);
    assert_eq!(
        classify_all(&mut dev, &probe),
        factory,
        "after revert and restart"
    );
    drop(dev);
    board.kill();
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "train/save/restart/revert: {:.1} s",
        t0.elapsed().as_secs_f64()
    );
}

/// Payload bytes in 4-byte aligned memory, as `decode_overlay` needs them.
struct Aligned(Vec<u32>);

impl std::ops::Deref for Aligned {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

fn aligned(bytes: &[u8]) -> Aligned {
    let mut words = vec![0u32; bytes.len() / 4];
    bytemuck::cast_slice_mut::<u32, u8>(&mut words).copy_from_slice(bytes);
    Aligned(words)
}

/// Where a kill landed, from the target slot's pages after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Phase {
    /// The target slot is untouched.
    Before,
    /// Some of its pages are erased, some still hold the older set.
    Erasing,
    /// Erased, and some of the new payload is in, not the header.
    Programming,
    /// The header is in: the save is complete.
    After,
}

fn phase(before: &[u8], after: &[u8], complete: &[u8], slot: usize) -> Phase {
    let range = slot * SLOT..(slot + 1) * SLOT;
    let (b, a, c) = (
        &before[range.clone()],
        &after[range.clone()],
        &complete[range],
    );
    if a == c {
        return Phase::After;
    }
    if a == b {
        return Phase::Before;
    }
    let pages = |x: &[u8]| x.chunks(256).map(<[u8]>::to_vec).collect::<Vec<_>>();
    let (pb, pa, pc) = (pages(b), pages(a), pages(c));
    let old_left = pa
        .iter()
        .zip(&pb)
        .zip(&pc)
        .any(|((a, b), c)| a == b && a != c && a.iter().any(|&x| x != 0xFF));
    if old_left {
        Phase::Erasing
    } else {
        Phase::Programming
    }
}

#[test]
fn a_save_killed_at_random_moments_leaves_the_old_or_the_new_weights() {
    let Some(elf) = firmware() else { return };
    let t0 = Instant::now();
    let model = model();
    let crc = model.crc();
    let (first, second, third) = (samples(300..302), samples(302..304), samples(304..306));

    // Host simulation: generation 1 and 2 saved in one session, then after a restart
    // (weights restored from generation 2) the set a third save writes.
    let mut arena_a = Vec::new();
    let mut sim = simulator(&model, &mut arena_a);
    for (im, l) in &first {
        sim.step(im, usize::from(*l)).unwrap();
    }
    sim.flush();
    for (im, l) in &second {
        sim.step(im, usize::from(*l)).unwrap();
    }
    sim.flush();
    let old = payload(&sim);
    drop(sim);
    let old_words = aligned(&old);
    let mut arena_b = Vec::new();
    let mut sim = simulator(&model, &mut arena_b);
    sim.restore(&decode_overlay(&model, &old_words).unwrap())
        .unwrap();
    for (im, l) in &third {
        sim.step(im, usize::from(*l)).unwrap();
    }
    sim.flush();
    let new = payload(&sim);
    let new_words = aligned(&new);
    assert_ne!(old, new);
    // Probe digits: the trained ones first, then any whose outputs tell the sets apart.
    let d = digits();
    let candidates: Vec<&[u8]> = (300..306).chain(0..40).map(|i| d.images.image(i)).collect();
    let old_candidates = outputs(
        &model,
        decode_overlay(&model, &old_words).unwrap(),
        &candidates,
    );
    let new_candidates = outputs(
        &model,
        decode_overlay(&model, &new_words).unwrap(),
        &candidates,
    );
    let mut probe: Vec<usize> = (0..candidates.len())
        .filter(|&i| old_candidates[i] != new_candidates[i])
        .take(4)
        .collect();
    assert!(
        !probe.is_empty(),
        "no digit tells the two weight sets apart"
    );
    probe.push(candidates.len() - 1);
    let probe_images: Vec<&[u8]> = probe.iter().map(|&i| candidates[i]).collect();
    let old_out: Vec<Vec<i8>> = probe.iter().map(|&i| old_candidates[i].clone()).collect();
    let new_out: Vec<Vec<i8>> = probe.iter().map(|&i| new_candidates[i].clone()).collect();

    // Prepare the flash: generation 1 in slot 0, generation 2 in slot 1.
    let prep = state_dir("cut-prep");
    let (mut board, mut dev) = boot(&elf, &prep);
    for (im, l) in &first {
        dev.train(im, *l).unwrap();
    }
    assert_eq!(dev.save().unwrap(), 1);
    for (im, l) in &second {
        dev.train(im, *l).unwrap();
    }
    assert_eq!(dev.save().unwrap(), 2);
    drop(dev);
    board.kill();
    let prepared = flash_file(&prep);
    assert_eq!(saved_set(&prepared, crc), Some((2, old.clone())));

    // One complete third save, timed: the span the kills are spread over.
    let (mut board, mut dev) = boot(&elf, &prep);
    assert_eq!(dev.info().unwrap().weights.generation, 2);
    for (im, l) in &third {
        dev.train(im, *l).unwrap();
    }
    let start = Instant::now();
    assert_eq!(dev.save().unwrap(), 3);
    let save_time = start.elapsed();
    drop(dev);
    board.kill();
    let complete = flash_file(&prep);
    assert_eq!(saved_set(&complete, crc), Some((3, new.clone())));
    let _ = std::fs::remove_dir_all(&prep);

    // The kills: delays after sending the save request, stratified over 1.3 save times with
    // xorshift jitter and shifted back by a tenth of one (the first kills come at once, before
    // the firmware has even read the request), run by three workers in parallel.
    const KILLS: usize = 24;
    let span = save_time.as_secs_f64() * 1.3;
    let shift = save_time.as_secs_f64() * 0.1;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let delays: Vec<Duration> = (0..KILLS)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let jitter = (x >> 11) as f64 / (1u64 << 53) as f64;
            Duration::from_secs_f64((span * (i as f64 + jitter) / KILLS as f64 - shift).max(0.0))
        })
        .collect();
    let next = Mutex::new(0usize);
    let results = Mutex::new(Vec::new());
    let save_frame = {
        let mut scratch = vec![0u8; 2 * MAX_FRAME];
        let mut out = vec![0u8; 2 * MAX_FRAME];
        encode_frame(&Request::Save, &mut scratch, &mut out)
            .unwrap()
            .to_vec()
    };
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                if i >= KILLS {
                    break;
                }
                let dir = state_dir(&format!("cut-{i}"));
                std::fs::write(dir.join("fixnet-flash.bin"), &prepared).unwrap();
                let (mut board, mut dev) = boot(&elf, &dir);
                for (im, l) in &third {
                    dev.train(im, *l).unwrap();
                }
                dev.send_raw(&save_frame).unwrap();
                std::thread::sleep(delays[i]);
                board.kill();
                drop(dev);
                let after = flash_file(&dir);
                let landed = phase(&prepared, &after, &complete, 0);
                let on_flash = saved_set(&after, crc);

                let (mut board, mut dev) = boot(&elf, &dir);
                let generation = dev.info().unwrap().weights.generation;
                let got = classify_all(&mut dev, &probe_images);
                drop(dev);
                board.kill();
                let _ = std::fs::remove_dir_all(&dir);
                results.lock().unwrap().push((
                    i,
                    delays[i],
                    landed,
                    generation,
                    got,
                    on_flash.map(|(g, p)| (g, p == old, p == new)),
                ));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| r.0);
    let (mut olds, mut news) = (0, 0);
    let mut phases = std::collections::BTreeMap::new();
    for (i, delay, landed, generation, got, on_flash) in &results {
        eprintln!(
            "kill {i:2} after {:5.1} ms: {landed:?}, boots generation {generation}",
            delay.as_secs_f64() * 1e3
        );
        *phases.entry(*landed).or_insert(0) += 1;
        match generation {
            2 => {
                olds += 1;
                assert_eq!(got, &old_out, "kill {i}: generation 2 with other weights");
                assert_eq!(*on_flash, Some((2, true, false)), "kill {i}");
                assert_ne!(*landed, Phase::After, "kill {i}");
            }
            3 => {
                news += 1;
                assert_eq!(got, &new_out, "kill {i}: generation 3 with other weights");
                assert_eq!(*on_flash, Some((3, false, true)), "kill {i}");
                assert_eq!(*landed, Phase::After, "kill {i}");
            }
            g => panic!("kill {i}: booted generation {g}, neither the old (2) nor the new (3)"),
        }
    }
    eprintln!(
        "{KILLS} kills over {:.1} ms (a save takes {:.1} ms): {olds} boot the old set, {news} the new; landed {phases:?}; {:.1} s",
        span * 1e3,
        save_time.as_secs_f64() * 1e3,
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(olds + news, KILLS);
    assert!(olds > 0 && news > 0, "{olds} old, {news} new");
    let torn =
        phases.get(&Phase::Erasing).unwrap_or(&0) + phases.get(&Phase::Programming).unwrap_or(&0);
    assert!(
        torn > 0,
        "no kill landed in the middle of a save: {phases:?}"
    );
}

/// Runs the `fixnet` binary; returns stdout, failing the test on a non-zero exit.
fn fixnet(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixnet"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "fixnet {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn fixnet_device_train_save_revert_drive_the_board() {
    let Some(elf) = firmware() else { return };
    let dir = state_dir("cli");
    let mut board = QemuBoard::start(&elf, &dir).unwrap();
    let port = board.address();
    drop(board.connect().unwrap());
    let images = repo("data/mnist/test-images-idx3-ubyte.gz");
    let labels = repo("data/mnist/test-labels-idx1-ubyte.gz");
    let (images, labels) = (images.to_str().unwrap(), labels.to_str().unwrap());

    let info = fixnet(&["device", "--port", &port, "info"]);
    assert!(
        info.contains("fine-tuning (") && info.contains("weights of op"),
        "{info}"
    );
    assert!(info.contains("weights: factory"), "{info}");
    // The first digit of each class among the first 40: 10 samples, one mini-batch per epoch.
    let out = fixnet(&[
        "device",
        "--port",
        &port,
        "train",
        "--images",
        images,
        "--labels",
        labels,
        "--limit",
        "40",
        "--per-class",
        "1",
        "--epochs",
        "2",
    ]);
    assert!(out.contains("epoch 2: mean loss"), "{out}");
    assert!(out.contains("factory + 20 unsaved training steps"), "{out}");
    let out = fixnet(&["device", "--port", &port, "save"]);
    assert!(out.contains("saved: generation 1"), "{out}");
    let stats = fixnet(&["device", "--port", &port, "stats"]);
    assert!(stats.contains("training steps 20, saves 1"), "{stats}");
    assert!(stats.contains("weights: saved generation 1"), "{stats}");
    board.kill();

    let mut board = QemuBoard::start(&elf, &dir).unwrap();
    let port = board.address();
    drop(board.connect().unwrap());
    let info = fixnet(&["device", "--port", &port, "info"]);
    assert!(info.contains("weights: saved generation 1"), "{info}");
    let out = fixnet(&["device", "--port", &port, "revert"]);
    assert!(out.contains("reverted"), "{out}");
    let info = fixnet(&["device", "--port", &port, "info"]);
    assert!(info.contains("weights: factory"), "{info}");
    board.kill();
    let _ = std::fs::remove_dir_all(&dir);
}
