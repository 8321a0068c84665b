//! Every fine-tuning mode end to end under QEMU: the `boards/qemu-mps2-an386` firmware
//! built with `FIXNET_TRAIN=MODE` trains over the serial link exactly as the host simulation
//! of that mode does (same losses), saves, and after a restart of QEMU classifies with the
//! learned weights. Prints the guest instructions per training step of each mode (a step
//! without an update, and one that ends a mini-batch).
//!
//! A separate test binary from `qemu_training.rs`: building a firmware in another mode
//! rewrites the board's ELF, which that binary's tests boot concurrently.
//!
//! Needs `qemu-system-arm` and the `thumbv7em-none-eabihf` target; skipped without them,
//! except in CI (`CI` set), where it fails.

use fixnet::overlay::Overlay;
use fixnet::train::{TrainMode, Trainer};
use fixnet::{Interpreter, Model};
use fixnet_app::train_config_for;
use fixnet_tools::device::qemu::{
    board_cargo, board_dir, check_qemu_and_targets, QemuBoard, TARGET,
};
use fixnet_tools::idx;
use std::path::{Path, PathBuf};

const BIN: &str = "fixnet-qemu-mps2-an386";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The seed CNN converted with `--no-fuse`: the shipped model fuses its convolutions with
/// their max pools, which the `biases` and `conv:K` modes cannot train through.
const MODEL: &str = "tests/fixtures/models/seed_cnn_unfused.fxn";

/// The firmware in `mode`, copied out of the board's target directory to `dir`.
fn firmware(mode: TrainMode, dir: &Path) -> PathBuf {
    let status = board_cargo(&["build", "--release", "--bin", BIN], Some(&repo(MODEL)))
        .unwrap()
        .env("FIXNET_TRAIN", mode.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "building the {mode} firmware failed");
    let built = board_dir()
        .join("target")
        .join(TARGET)
        .join("release")
        .join(BIN);
    let elf = dir.join(format!("{BIN}.elf"));
    std::fs::copy(built, &elf).unwrap();
    elf
}

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

#[test]
fn every_mode_trains_saves_and_keeps_what_it_learned_after_a_restart() {
    if let Err(e) = check_qemu_and_targets(&[TARGET]) {
        assert!(std::env::var_os("CI").is_none(), "{e}");
        eprintln!("skipping the QEMU tests: {e}");
        return;
    }
    let images = idx::read_images(&repo("data/mnist/test-images-idx3-ubyte.gz")).unwrap();
    let labels = idx::read_labels(&repo("data/mnist/test-labels-idx1-ubyte.gz")).unwrap();
    // A user who labels digits their own way, so a few steps visibly move the weights.
    let train: Vec<(&[u8], u8)> = (400..420)
        .map(|i| (images.image(i), (labels[i] + 1) % 10))
        .collect();
    let probe: Vec<&[u8]> = (500..508).map(|i| images.image(i)).collect();
    let bytes = std::fs::read(repo(MODEL)).unwrap();
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    let model = Model::from_bytes(&bytemuck::cast_slice::<u64, u8>(&words)[..bytes.len()]).unwrap();
    eprintln!("| --train | train arena (B) | instructions per step | per step with update |");
    for mode in [TrainMode::Last, TrainMode::Biases, TrainMode::Conv(8)] {
        let dir = std::env::temp_dir().join(format!(
            "fixnet-modes-{}-{}",
            std::process::id(),
            mode.to_string().replace(':', "")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let elf = firmware(mode, &dir);

        // Host simulation of the firmware's configuration in this mode.
        let config = train_config_for(&model, mode).unwrap();
        let size = Trainer::arena_use(&model, &config).unwrap().total();
        let mut arena = vec![0u8; size];
        let mut sim = Trainer::with_config(&model, config, &mut arena).unwrap();
        let losses: Vec<f32> = train
            .iter()
            .map(|(im, l)| sim.step(im, usize::from(*l)).unwrap().to_f32())
            .collect();
        sim.flush();
        let learned = outputs(&model, sim.overlay().unwrap(), &probe);
        let factory = outputs(&model, Overlay::new(), &probe);
        assert_ne!(
            learned, factory,
            "{mode}: the samples should move the weights"
        );

        let mut board = QemuBoard::start(&elf, &dir).unwrap();
        let mut dev = board.connect().unwrap();
        let t = dev.info().unwrap().training.expect("fine-tuning firmware");
        assert_eq!(t.mode.as_str(), mode.to_string());
        assert_eq!(t.train_arena_bytes as usize, size);
        let (mut plain, mut update) = (Vec::new(), Vec::new());
        for (i, ((im, l), loss)) in train.iter().zip(&losses).enumerate() {
            let (got, count, w) = dev.train_counted(im, *l).unwrap();
            assert_eq!(got, *loss, "{mode}: loss of sample {i}");
            if w.pending == 0 {
                update.push(count);
            } else {
                plain.push(count);
            }
        }
        assert_eq!(dev.save().unwrap(), 1);
        drop(dev);
        board.kill();

        let mut board = QemuBoard::start(&elf, &dir).unwrap();
        let mut dev = board.connect().unwrap();
        assert_eq!(dev.info().unwrap().weights.generation, 1);
        let after: Vec<Vec<i8>> = probe
            .iter()
            .map(|im| dev.classify(im).unwrap().scores.to_vec())
            .collect();
        assert_eq!(after, learned, "{mode}: after save and restart");
        drop(dev);
        board.kill();
        let _ = std::fs::remove_dir_all(&dir);
        plain.sort_unstable();
        update.sort_unstable();
        eprintln!(
            "| {mode} | {size} | {} | {} |",
            plain[plain.len() / 2],
            update[update.len() / 2]
        );
    }
    // Leave the board's target directory with the default firmware the other tests build.
    let status = board_cargo(&["build", "--release", "--bin", BIN], None)
        .unwrap()
        .status()
        .unwrap();
    assert!(status.success());
}
