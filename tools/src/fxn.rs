//! Loading fixnet model files on the host.

use anyhow::{anyhow, Context, Result};
use fixnet::Model;
use std::path::Path;

/// Storage unit giving the alignment `Model::from_bytes` requires.
type Word = u64;

// Fails to build if the core ever needs more alignment than `Word` gives.
const _: () = assert!(std::mem::align_of::<Word>() >= fixnet::format::ALIGN);

/// The largest model file the host tool reads (far beyond any microcontroller's flash).
pub const MAX_MODEL_LEN: u64 = 256 << 20;

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

    /// Reads a model file: its header first (magic, version, declared length, checked by
    /// the core's parser), then only the declared length, so a huge or foreign file is
    /// refused without being read. A file shorter than a header is returned as is, for
    /// [`ModelBytes::model`] to report.
    pub fn read(path: &Path) -> Result<Self> {
        use std::io::Read;
        let cannot = || format!("cannot read {}", path.display());
        let file = std::fs::File::open(path).with_context(cannot)?;
        let file_len = file.metadata().with_context(cannot)?.len();
        let mut file = file;
        let mut header = Vec::with_capacity(fixnet::format::HEADER_LEN);
        (&mut file)
            .take(fixnet::format::HEADER_LEN as u64)
            .read_to_end(&mut header)
            .with_context(cannot)?;
        if header.len() < fixnet::format::HEADER_LEN {
            return Ok(Self::new(&header));
        }
        let invalid =
            |e: &dyn std::fmt::Display| anyhow!("{}: invalid fixnet model: {e}", path.display());
        // A header that passes every check the core makes before it needs the rest fails
        // with `Truncated`; anything else is the answer already.
        match Model::from_bytes(Self::new(&header).as_bytes()) {
            Err(fixnet::Error::Truncated) => {}
            Err(e) => return Err(invalid(&e)),
            Ok(_) => return Err(invalid(&"header-only model")),
        }
        let declared = u64::from(u32::from_le_bytes([
            header[8], header[9], header[10], header[11],
        ]));
        if declared > MAX_MODEL_LEN {
            return Err(invalid(&format_args!(
                "the header declares {declared} bytes, more than the {MAX_MODEL_LEN}-byte limit"
            )));
        }
        if declared > file_len {
            return Err(invalid(&format_args!(
                "model is truncated (the header declares {declared} bytes, the file holds {file_len})"
            )));
        }
        let mut bytes = header;
        bytes.reserve_exact(declared as usize - fixnet::format::HEADER_LEN);
        (&mut file)
            .take(declared - fixnet::format::HEADER_LEN as u64)
            .read_to_end(&mut bytes)
            .with_context(cannot)?;
        if (bytes.len() as u64) < declared {
            return Err(invalid(&format_args!(
                "model is truncated (the header declares {declared} bytes, {} could be read)",
                bytes.len()
            )));
        }
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
