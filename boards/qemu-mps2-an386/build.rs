//! Embeds the first test digits for the benchmark binary and puts `memory.x` (and an empty
//! `device.x`) where the linker finds them. (The model itself is embedded by `fixnet-app`,
//! honouring FIXNET_MODEL.)
use std::io::Read;
use std::path::{Path, PathBuf};
use std::{env, fs};

const DIGITS: usize = 100;

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=memory.x");
    let images = gunzip(&root.join("data/mnist/test-images-idx3-ubyte.gz"));
    let labels = gunzip(&root.join("data/mnist/test-labels-idx1-ubyte.gz"));
    fs::write(out.join("digits.bin"), &images[16..16 + DIGITS * 784]).unwrap();
    fs::write(out.join("labels.bin"), &labels[8..8 + DIGITS]).unwrap();
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    // cortex-m-rt's `device` feature includes a device.x naming the interrupt handlers; the
    // binaries name none (their vector tables point every interrupt at DefaultHandler).
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
