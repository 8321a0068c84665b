//! Embeds the model (default: the shipped seed CNN; override with FIXNET_MODEL=path) and the
//! first test digits into the firmware, and tells the firmware the model's arena size so the
//! arena can be a static of exactly that size.
use std::io::Read;
use std::path::{Path, PathBuf};
use std::{env, fs};

const DIGITS: usize = 100;

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=FIXNET_MODEL");
    println!("cargo:rerun-if-changed=memory.x");
    let model_path = env::var("FIXNET_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("models/seed_cnn.fxn"));
    println!("cargo:rerun-if-changed={}", model_path.display());
    let model = fs::read(&model_path)
        .unwrap_or_else(|e| panic!("cannot read model {}: {e}", model_path.display()));
    let arena = u32::from_le_bytes(model[12..16].try_into().unwrap());
    fs::write(out.join("model.fxn"), &model).unwrap();
    fs::write(
        out.join("model_info.rs"),
        format!("/// Arena bytes the embedded model needs.\npub const ARENA_SIZE: usize = {arena};\n"),
    )
    .unwrap();

    let images = gunzip(&root.join("data/mnist/test-images-idx3-ubyte.gz"));
    let labels = gunzip(&root.join("data/mnist/test-labels-idx1-ubyte.gz"));
    fs::write(out.join("digits.bin"), &images[16..16 + DIGITS * 784]).unwrap();
    fs::write(out.join("labels.bin"), &labels[8..8 + DIGITS]).unwrap();

    fs::copy("memory.x", out.join("memory.x")).unwrap();
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
