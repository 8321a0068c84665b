//! Regression tests for what fuzzing and the robustness table (`fuzz/`, docs/reliability.md)
//! found in host-tool code: F2, F4, F5 and F7, each fixed where it was found.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Records the largest single allocation, to catch parsers that trust a length field.
struct Largest;
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Largest = Largest;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/models")
            .join(name),
    )
    .unwrap()
}

/// The `tflite` fuzz target's first crash (after 68,000 execs): `mlp_int8.tflite` with six
/// bytes changed — a quantization scale becomes the denormal 7 · 2⁻¹⁴⁹ — imports and lowers
/// without error, but the core rejects the result ("inconsistent quantization parameters"),
/// so `fixnet convert` answers "internal error: the converted model is invalid".
fn denormal_scale_tflite() -> Vec<u8> {
    let mut bytes = fixture("mlp_int8.tflite");
    for (at, value) in [
        (96_449usize, 7u8),
        (96_450, 0),
        (96_451, 0),
        (96_452, 0),
        (101_174, 11),
        (113_599, 109),
    ] {
        bytes[at] = value;
    }
    bytes
}

#[test]
fn lower_never_emits_a_model_the_core_rejects() {
    let graph = fixnet_tools::tflite::import(&denormal_scale_tflite()).unwrap();
    if let Ok(bytes) = fixnet_tools::lower::lower(&graph) {
        let stored = fixnet_tools::fxn::ModelBytes::new(&bytes);
        if let Err(e) = stored.model() {
            panic!("lower() produced a model the core rejects: {e:#}");
        }
    }
}

/// Finding F2 (fixed), the `idx_image` fuzz target's first (after 130,000 execs): a 299-byte `.npy` v2
/// file whose header-length field says 0xFFFF_FF8A made `npy::decode_i8` (through npyz)
/// allocate 4 GiB before noticing the file is 299 bytes long.
#[test]
fn npy_header_length_is_checked_before_allocating() {
    let mut bytes = b"\x93NUMPY\x02\x00".to_vec();
    bytes.extend_from_slice(&0xFFFF_FF8Au32.to_le_bytes());
    bytes.resize(299, 0xFF);
    LARGEST.store(0, Ordering::Relaxed);
    assert!(fixnet_tools::npy::decode_i8(&bytes).is_err());
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(
        largest < 1 << 20,
        "allocated {largest} bytes for a 299-byte input"
    );
}

/// The `idx_image` fuzz target's second finding (after 383,000 more execs): a 167-byte `.npy`
/// whose header dictionary holds a run of `{` makes `npy::decode_i8` run for more than 15 s
/// (npyz parses the header with `py_literal`'s backtracking `pest` grammar, exponential in
/// the nesting). Only tests decode `.npy` today.
/// Finding F7 (fuzz/idx_image): npyz parsed a 167-byte header of nested braces for minutes
/// (backtracking grammar); the header is now checked first.
#[test]
fn npy_header_parse_is_fast() {
    let mut bytes = b"\x93NUMPY\x01\x00\x76\x00".to_vec();
    bytes.extend_from_slice(b"{'descr': '|i1', 'fortran_order': False, 'shape': (");
    bytes.extend(std::iter::repeat_n(b' ', 19));
    bytes.extend(std::iter::repeat_n(b'{', 48));
    bytes.push(b'\n');
    let (done, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = fixnet_tools::npy::decode_i8(&bytes);
        let _ = done.send(());
    });
    assert!(
        wait.recv_timeout(std::time::Duration::from_secs(2)).is_ok(),
        "npy::decode_i8 still parsing a 167-byte header after 2 s"
    );
}
