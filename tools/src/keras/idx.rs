//! IDX image files (MNIST's format), plain or gzipped, for calibration and evaluation.

use super::KerasError;
use std::io::Read;
use std::path::Path;

/// A set of same-sized grey images, one byte per pixel, row-major, back to back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// All pixels, `count · rows · cols` bytes.
    pub pixels: Vec<u8>,
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels
            .len()
            .checked_div(self.rows * self.cols)
            .unwrap_or(0)
    }

    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Image `i`'s pixels.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let n = self.rows * self.cols;
        self.pixels
            .get(i.checked_mul(n)?..i.checked_add(1)?.checked_mul(n)?)
    }

    /// The images in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.pixels.chunks_exact((self.rows * self.cols).max(1))
    }
}

/// Reads a whole file, gunzipping it when it starts with the gzip magic.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, KerasError> {
    let io = |source| KerasError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(io)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> Option<usize> {
    let bytes: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    usize::try_from(u32::from_be_bytes(bytes)).ok()
}

/// Reads an `idx3-ubyte` image file (optionally `.gz`).
pub fn read_images(path: impl AsRef<Path>) -> Result<Images, KerasError> {
    let path = path.as_ref();
    let bytes = read_maybe_gz(path)?;
    let bad = |what: &str| KerasError::Calibration(format!("{}: {what}", path.display()));
    if bytes.get(..4) != Some(&[0, 0, 8, 3]) {
        return Err(bad(
            "not an IDX file of unsigned-byte images (magic 0x00000803)",
        ));
    }
    let (Some(count), Some(rows), Some(cols)) =
        (be_u32(&bytes, 4), be_u32(&bytes, 8), be_u32(&bytes, 12))
    else {
        return Err(bad("truncated header"));
    };
    let len = count
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(cols))
        .ok_or_else(|| bad("absurd dimensions"))?;
    let pixels = bytes.get(16..16 + len).ok_or_else(|| {
        bad(&format!(
            "truncated: {count} images of {rows}x{cols} announced"
        ))
    })?;
    Ok(Images {
        rows,
        cols,
        pixels: pixels.to_vec(),
    })
}

/// Reads an `idx1-ubyte` label file (optionally `.gz`).
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, KerasError> {
    let path = path.as_ref();
    let bytes = read_maybe_gz(path)?;
    let bad = |what: &str| KerasError::Calibration(format!("{}: {what}", path.display()));
    if bytes.get(..4) != Some(&[0, 0, 8, 1]) {
        return Err(bad(
            "not an IDX file of unsigned-byte labels (magic 0x00000801)",
        ));
    }
    let count = be_u32(&bytes, 4).ok_or_else(|| bad("truncated header"))?;
    let labels = bytes
        .get(8..8 + count)
        .ok_or_else(|| bad(&format!("truncated: {count} labels announced")))?;
    Ok(labels.to_vec())
}
