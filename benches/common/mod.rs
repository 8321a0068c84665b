//! What the benches share: the shipped seed CNN, held 8-byte aligned as it would be in flash,
//! and the MNIST test digits the integration tests use.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Bytes in an 8-byte aligned buffer (the model format reads `i32`/`f64` tables in place).
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }
}

/// `models/seed_cnn.fxn`, the model every benchmark of the project measures.
pub fn seed_model() -> Aligned {
    let path = repo("models/seed_cnn.fxn");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(&bytes);
    Aligned {
        words,
        len: bytes.len(),
    }
}

fn gunzip(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    out
}

/// The 2,000 MNIST test digits of `data/mnist/` (28 × 28 grey bytes, 0 = background).
pub struct Digits {
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

/// Pixels per digit.
pub const PIXELS: usize = 28 * 28;

impl Digits {
    /// Reads the IDX files, skipping their headers (16 bytes for images, 8 for labels).
    pub fn test() -> Self {
        let images = gunzip(&repo("data/mnist/test-images-idx3-ubyte.gz"));
        let labels = gunzip(&repo("data/mnist/test-labels-idx1-ubyte.gz"));
        let digits = Digits {
            pixels: images[16..].to_vec(),
            labels: labels[8..].to_vec(),
        };
        assert_eq!(digits.pixels.len(), digits.labels.len() * PIXELS);
        digits
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Digit `i`'s pixels.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * PIXELS..][..PIXELS]
    }

    /// Digit `i`'s class.
    pub fn label(&self, i: usize) -> usize {
        usize::from(self.labels[i])
    }
}
