//! The BBC micro:bit firmware (`boards/microbit`, nRF51822 Cortex-M0, 16 KiB RAM) end to
//! end on QEMU's `microbit` machine, built and started as `fixnet qemu --board microbit`
//! does: 100 test digits over its UART0 (TCP) equal the host simulation of the model it
//! embeds (models/microbit_cnn.fxn), and bad frames get error replies; and the benchmark
//! firmware (`fixnet bench --qemu --target microbit`) on the same machine.
//!
//! Needs `qemu-system-arm` and the `thumbv6m-none-eabi` target. Without either the tests
//! are skipped with a note, except in CI (`CI` set), where they fail.

use fixnet::Interpreter;
use fixnet_app::{CounterUnit, ErrorCode, Response};
use fixnet_tools::device::qemu::{check_qemu_and_targets, QemuBoard, MICROBIT};
use fixnet_tools::fxn::ModelBytes;
use fixnet_tools::idx;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The firmware, built once per test binary (tests run in parallel threads).
fn firmware() -> Option<PathBuf> {
    static ELF: OnceLock<Option<PathBuf>> = OnceLock::new();
    ELF.get_or_init(|| {
        if let Err(e) = check_qemu_and_targets(&[MICROBIT.target]) {
            assert!(std::env::var_os("CI").is_none(), "{e}");
            eprintln!("skipping the micro:bit QEMU tests: {e}");
            return None;
        }
        Some(
            MICROBIT
                .build(None)
                .expect("building the micro:bit firmware"),
        )
    })
    .clone()
}

fn state_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fixnet-microbit-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[test]
fn a_hundred_digits_on_the_micro_bit_equal_the_host_simulation() {
    let Some(elf) = firmware() else { return };
    let mut board = QemuBoard::start_on(&MICROBIT, &elf, &state_dir("digits")).unwrap();
    let mut dev = board.connect().unwrap();

    let bytes = ModelBytes::new(&std::fs::read(MICROBIT.default_model()).unwrap());
    let model = bytes.model().unwrap();
    let info = dev.info().unwrap();
    assert_eq!(info.board.as_str(), "microbit");
    assert_eq!(info.model_crc, model.crc());
    assert_eq!(info.model_bytes as usize, model.len());
    assert_eq!(info.arena_bytes as usize, model.arena_size());
    assert_eq!(info.counter, CounterUnit::Instructions);

    let images = idx::read_images(&repo("data/mnist/test-images-idx3-ubyte.gz")).unwrap();
    let labels = idx::read_labels(&repo("data/mnist/test-labels-idx1-ubyte.gz")).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(&model, &mut arena).unwrap();
    let mut correct = 0;
    for (i, &label) in labels.iter().enumerate().take(100) {
        let c = dev.classify(images.image(i)).unwrap();
        interp.set_input_grey(images.image(i)).unwrap();
        interp.invoke().unwrap();
        assert_eq!(c.scores.as_slice(), interp.output(), "digit {i}");
        assert_eq!(usize::from(c.class), interp.top1().0, "digit {i}");
        // TIMER0 ticks × 62.5 under -icount shift=0: the 72 k MACs of the model take
        // about a million Armv6-M instructions.
        assert!(c.count > 100_000 && c.count < 20_000_000, "{}", c.count);
        correct += usize::from(c.class == label);
    }
    // The model gets 96.3 % of the 2,000 test digits right.
    assert!(correct >= 90, "{correct}/100");
    let stats = dev.stats().unwrap();
    assert_eq!(stats.inferences, 100);
    assert_eq!(stats.errors, 0);
}

#[test]
fn bad_frames_get_error_replies_and_the_next_request_is_served() {
    let Some(elf) = firmware() else { return };
    let mut board = QemuBoard::start_on(&MICROBIT, &elf, &state_dir("bad")).unwrap();
    let mut dev = board.connect().unwrap();
    // A frame with a wrong CRC (COBS-valid bytes, then the delimiter).
    dev.send_raw(&[5, 1, 2, 3, 4, 0]).unwrap();
    assert!(matches!(dev.receive().unwrap(), Response::Error(_)));
    // A frame longer than the firmware's buffer.
    let mut long = vec![0x55u8; 1500];
    long.push(0);
    dev.send_raw(&long).unwrap();
    assert_eq!(
        dev.receive().unwrap(),
        Response::Error(ErrorCode::Oversized)
    );
    assert_eq!(dev.info().unwrap().board.as_str(), "microbit");
}

#[test]
fn the_benchmark_runs_on_the_micro_bit_machine_within_its_16_kib() {
    use fixnet_tools::device::bench::{run_bench, MICROBIT as BENCH_MICROBIT};
    if firmware().is_none() {
        return;
    }
    let r = run_bench(&MICROBIT.default_model(), BENCH_MICROBIT).unwrap();
    // Every output equals the host interpreter's (run_bench fails otherwise).
    assert_eq!(r.host_equal, 100);
    assert!(r.correct.unwrap() >= 90, "{:?}", r.correct);
    assert_eq!(r.arena_bytes, 2136);
    // Statics (arena, the per-layer tables) and the painted stack peak within 16 KiB.
    assert!(r.bss_bytes + r.stack_peak_bytes < 16 * 1024, "{r:?}");
    assert!(r.stack_peak_bytes > 256, "{}", r.stack_peak_bytes);
    // Per layer, the sum stays within the whole inference (which adds the input's
    // quantization and the counter reads).
    let sum: u64 = r.layers.iter().map(|l| l.instructions).sum();
    assert!(sum <= r.instructions_median && sum * 100 >= r.instructions_median * 90);
}
