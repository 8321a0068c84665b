//! End to end under QEMU: the `boards/qemu-mps2-an386` firmware, built and started as
//! `fixnet qemu` does, answers over its serial port (TCP) exactly as the host simulation
//! computes, and survives bad frames.
//!
//! Needs `qemu-system-arm` and the `thumbv7em-none-eabihf` target. Without either the
//! tests are skipped with a note, except in CI (`CI` set), where they fail.

use fixnet::{Interpreter, Model};
use fixnet_app::protocol::MAX_FRAME;
use fixnet_app::{encode_frame, ErrorCode, Request, Response};
use fixnet_tools::device::qemu::{build_firmware, check_qemu_and_targets, QemuBoard, TARGET};
use fixnet_tools::idx;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The serving firmware, built once per test binary (tests run in parallel threads).
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
    let dir = std::env::temp_dir().join(format!("fixnet-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn frame(request: &Request<'_>) -> Vec<u8> {
    let mut scratch = vec![0u8; 2 * MAX_FRAME];
    let mut out = vec![0u8; 2 * MAX_FRAME];
    encode_frame(request, &mut scratch, &mut out)
        .unwrap()
        .to_vec()
}

#[test]
fn two_hundred_digits_over_the_serial_link_equal_the_host_simulation() {
    let Some(elf) = firmware() else { return };
    let dir = state_dir("digits");
    let mut board = QemuBoard::start(&elf, &dir).unwrap();
    let mut dev = board.connect().unwrap();

    let model = Model::from_bytes(fixnet_app::MODEL).unwrap();
    let info = dev.info().unwrap();
    assert_eq!(info.board.as_str(), "qemu-mps2-an386");
    assert_eq!(info.model_crc, model.crc());
    assert_eq!(info.model_bytes as usize, model.len());
    assert_eq!(info.arena_bytes as usize, model.arena_size());

    let images = idx::read_images(&repo("data/mnist/test-images-idx3-ubyte.gz")).unwrap();
    let labels = idx::read_labels(&repo("data/mnist/test-labels-idx1-ubyte.gz")).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(&model, &mut arena).unwrap();
    let mut correct = 0;
    for (i, &label) in labels.iter().enumerate().take(200) {
        let c = dev.classify(images.image(i)).unwrap();
        interp.set_input_grey(images.image(i)).unwrap();
        interp.invoke().unwrap();
        assert_eq!(c.scores.as_slice(), interp.output(), "digit {i}");
        assert_eq!(usize::from(c.class), interp.top1().0, "digit {i}");
        // Under -icount shift=0 the count is the guest's instructions: ~23 M for the seed CNN.
        assert!(c.count > 1_000_000 && c.count < 200_000_000, "{}", c.count);
        correct += usize::from(c.class == label);
    }
    assert!(correct >= 190, "{correct}/200");
    let stats = dev.stats().unwrap();
    assert_eq!(stats.inferences, 200);
    assert_eq!(stats.errors, 0);
    // The firmware created its emulated flash, erased.
    let flash = std::fs::read(dir.join("fixnet-flash.bin")).unwrap();
    assert_eq!(flash.len(), info.flash_bytes as usize);
    board.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_frames_get_error_replies_and_the_next_request_still_works() {
    let Some(elf) = firmware() else { return };
    let dir = state_dir("bad-frames");
    let mut board = QemuBoard::start(&elf, &dir).unwrap();
    let mut dev = board.connect().unwrap();
    let images = idx::read_images(&repo("data/mnist/test-images-idx3-ubyte.gz")).unwrap();
    let image = images.image(0);
    let expected = dev.classify(image).unwrap();
    let valid = frame(&Request::Classify { image });

    // Deterministic pseudo-random garbage (xorshift), never containing the delimiter.
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x as u8) | 1
            })
            .collect()
    };
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    for n in [1, 7, 64, 600] {
        cases.push(("random bytes", random(n)));
    }
    for cut in [1, 5, valid.len() / 2, valid.len() - 2] {
        cases.push(("truncated", valid[..cut].to_vec()));
    }
    let mut flipped = valid.clone();
    // Flip a bit without making a delimiter (which would split the frame in two).
    flipped[400] ^= if flipped[400] == 0x10 { 0x20 } else { 0x10 };
    cases.push(("corrupted", flipped[..flipped.len() - 1].to_vec()));
    cases.push(("oversized", random(3 * MAX_FRAME)));
    for (what, mut bad) in cases {
        bad.push(0);
        dev.send_raw(&bad).unwrap();
        let reply = dev.receive().unwrap();
        assert!(
            matches!(reply, Response::Error(_)),
            "{what} ({} bytes): {reply:?}",
            bad.len()
        );
        if what == "oversized" {
            assert_eq!(reply, Response::Error(ErrorCode::Oversized));
        }
        let again = dev.classify(image).unwrap();
        assert_eq!(again.scores, expected.scores, "after {what}");
    }
    // Bad training requests are typed errors too, and change nothing.
    assert_eq!(
        dev.request(&Request::TrainSample { image, label: 10 })
            .unwrap(),
        Response::Error(ErrorCode::BadLabel)
    );
    assert_eq!(
        dev.request(&Request::TrainSample {
            image: &image[..100],
            label: 1
        })
        .unwrap(),
        Response::Error(ErrorCode::BadImage {
            expected: 784,
            received: 100
        })
    );
    let stats = dev.stats().unwrap();
    assert!(stats.errors >= 12, "{stats:?}");
    assert_eq!(stats.training_steps, 0);
    assert_eq!(dev.classify(image).unwrap().scores, expected.scores);
    board.kill();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fixnet_qemu_demo_runs() {
    let Some(elf) = firmware() else { return };
    let dir = state_dir("demo");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fixnet"))
        .args(["qemu", "--count", "20", "--show", "4", "--elf"])
        .arg(&elf)
        .arg("--state")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("outputs identical to the host simulation: 20/20"));
    assert!(stdout.contains("instructions per inference"));
    assert!(stdout.contains('█'));
    let _ = std::fs::remove_dir_all(&dir);
}
