//! Loading fixnet model files on the host.

use anyhow::{anyhow, Context, Result};
use fixnet::Model;
use std::path::Path;

/// Storage unit giving the alignment `Model::from_bytes` requires.
type Word = u64;

// Fails to build if the core ever needs more alignment than `Word` gives.
const _: () = assert!(std::mem::align_of::<Word>() >= fixnet::format::ALIGN);

/// Model bytes kept at the alignment `Model::from_bytes` requires (`fixnet::format::ALIGN`;
/// a `Vec<u8>` from the allocator is not guaranteed to have it).
#[derive(Clone, Debug)]
pub struct ModelBytes {
    words: Vec<Word>,
    len: usize,
}

impl ModelBytes {
    /// Copies `bytes` into aligned storage.
    pub fn new(bytes: &[u8]) -> Self {
        let mut words: Vec<Word> = vec![0; bytes.len().div_ceil(std::mem::size_of::<Word>())];
        bytemuck::cast_slice_mut::<Word, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        ModelBytes {
            words,
            len: bytes.len(),
        }
    }

    /// Reads a model file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Self::new(&bytes))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<Word, u8>(&self.words)[..self.len]
    }

    /// Parses and fully validates the model, CRC included.
    pub fn model(&self) -> Result<Model<'_>> {
        if self.len == 0 {
            return Err(anyhow!("the file is empty"));
        }
        Model::from_bytes(self.as_bytes()).map_err(|e| anyhow!("invalid fixnet model: {e}"))
    }
}
