//! Embeds the model (the shipped seed CNN, or `FIXNET_MODEL=path`, relative paths taken from
//! the repository root) with its arena size and op count, and the first test digits (run
//! when the model reads 28×28 grey digits); puts the board's `memory.x` and an empty
//! `device.x` where the linker finds them.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::{env, fs};

const DIGITS: usize = 100;

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.join("../../..");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());

    println!("cargo:rerun-if-env-changed=FIXNET_MODEL");
    let model_path = match env::var("FIXNET_MODEL") {
        Ok(p) if !p.is_empty() => root.join(p),
        _ => root.join("models/seed_cnn.fxn"),
    };
    println!("cargo:rerun-if-changed={}", model_path.display());
    let model = fs::read(&model_path)
        .unwrap_or_else(|e| panic!("cannot read model {}: {e}", model_path.display()));
    assert!(
        model.len() >= 52 && &model[..4] == b"FXNM",
        "{} is not a fixnet model",
        model_path.display()
    );
    // Header offsets 12 and 18: the arena size and the op count (docs/format.md); the
    // firmware validates the model.
    let arena = u32::from_le_bytes(model[12..16].try_into().unwrap());
    let ops = u16::from_le_bytes(model[18..20].try_into().unwrap());
    fs::write(out.join("model.fxn"), &model).unwrap();
    fs::write(
        out.join("model_sizes.rs"),
        format!(
            "/// Arena bytes the embedded model needs (from its header).\n\
             const ARENA_SIZE: usize = {arena};\n\
             /// Ops of the embedded model (from its header).\n\
             const OP_COUNT: usize = {ops};\n"
        ),
    )
    .unwrap();

    let images = gunzip(&root.join("data/mnist/test-images-idx3-ubyte.gz"));
    let labels = gunzip(&root.join("data/mnist/test-labels-idx1-ubyte.gz"));
    fs::write(out.join("digits.bin"), &images[16..16 + DIGITS * 784]).unwrap();
    fs::write(out.join("labels.bin"), &labels[8..8 + DIGITS]).unwrap();

    let memory = manifest.join("../memory.x");
    println!("cargo:rerun-if-changed={}", memory.display());
    fs::copy(&memory, out.join("memory.x")).unwrap();
    // cortex-m-rt's `device` feature includes a device.x naming the interrupt handlers; the
    // firmware names none (its one vector points at DefaultHandler).
    fs::write(out.join("device.x"), "/* no named interrupt handlers */\n").unwrap();
    println!("cargo:rustc-link-search={}", out.display());
}

fn gunzip(path: &Path) -> Vec<u8> {
    println!("cargo:rerun-if-changed={}", path.display());
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}
