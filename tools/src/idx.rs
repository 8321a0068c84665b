//! IDX files (MNIST's format): `.idx3-ubyte` images and `.idx1-ubyte` labels, optionally
//! gzip-compressed (detected from the content, not the name).

use anyhow::{bail, ensure, Context, Result};
use flate2::read::GzDecoder;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// A set of equally sized grey images, row-major, one byte per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// All pixels, image after image.
    pub pixels: Vec<u8>,
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.pixels.len() / (self.rows * self.cols).max(1)
    }

    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.pixels[i * n..(i + 1) * n]
    }

    /// Keeps the first `n` images.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.pixels.truncate(n * self.rows * self.cols);
    }
}

const IMAGES_MAGIC: usize = 0x0000_0803;
const LABELS_MAGIC: usize = 0x0000_0801;

/// The most pixel or label bytes an IDX file may announce (MNIST's training images are
/// 47 MB): a header asking for more is refused before anything is read or inflated.
pub const MAX_IDX_PAYLOAD: usize = 1 << 30;

/// Opens a file as a stream, gunzipping it if it starts with the gzip magic.
fn open_maybe_gz(path: &Path) -> Result<(Box<dyn Read>, bool)> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut file = BufReader::new(file);
    let start = file
        .fill_buf()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if start.starts_with(&[0x1f, 0x8b]) {
        Ok((Box::new(GzDecoder::new(file)), true))
    } else {
        Ok((Box::new(file), false))
    }
}

/// Reads up to `n` bytes of `r` (fewer at its end).
fn read_up_to(r: &mut dyn Read, n: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
    r.take(n as u64).read_to_end(out).map(|_| ())
}

/// Reads an IDX file (possibly gzip) header first: `announce` parses the `header_len`-byte
/// header (failing on a short or foreign one) into the exact payload size and a description;
/// then exactly that many bytes are read (or inflated), and a file holding fewer or more is
/// refused. Returns header and payload.
fn read_bounded(
    path: &Path,
    header_len: usize,
    announce: fn(&[u8]) -> Result<(usize, String)>,
) -> Result<Vec<u8>> {
    let (mut r, gz) = open_maybe_gz(path)?;
    let what = || {
        if gz {
            format!("{}: corrupt gzip data", path.display())
        } else {
            format!("cannot read {}", path.display())
        }
    };
    let mut bytes = Vec::with_capacity(header_len);
    read_up_to(&mut r, header_len, &mut bytes).with_context(what)?;
    let (len, description) = announce(&bytes).with_context(|| path.display().to_string())?;
    let path = path.display();
    ensure!(
        len <= MAX_IDX_PAYLOAD,
        "{path}: IDX header announces {description} ({len} bytes), more than the {MAX_IDX_PAYLOAD}-byte limit"
    );
    read_up_to(&mut r, len, &mut bytes).with_context(what)?;
    let held = bytes.len() - header_len;
    ensure!(
        held == len,
        "{path}: IDX header announces {description} ({len} bytes) but the file holds {held} bytes"
    );
    let mut extra = [0u8; 1];
    let more = loop {
        match r.read(&mut extra) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(what),
        }
    };
    ensure!(
        more == 0,
        "{path}: IDX header announces {description} ({len} bytes) but the file holds more"
    );
    Ok(bytes)
}

/// The image header's (count, rows, cols, pixel bytes).
fn images_header(bytes: &[u8]) -> Result<(usize, usize, usize, usize)> {
    if bytes.starts_with(b"\x93NUMPY") {
        bail!("this is a .npy array, not an IDX image file");
    }
    let h = header(bytes, 1)?;
    if h[0] == LABELS_MAGIC {
        bail!("this is an IDX label file, not an image file");
    }
    ensure!(
        h[0] == IMAGES_MAGIC,
        "not an IDX image file (magic {:#010x}, expected 0x00000803)",
        h[0]
    );
    let h = header(bytes, 4)?;
    let (count, rows, cols) = (h[1], h[2], h[3]);
    ensure!(rows > 0 && cols > 0, "IDX images of size {rows}x{cols}");
    let len = count
        .checked_mul(rows)
        .and_then(|n| n.checked_mul(cols))
        .context("IDX header sizes overflow")?;
    Ok((count, rows, cols, len))
}

/// The label header's count.
fn labels_header(bytes: &[u8]) -> Result<usize> {
    let h = header(bytes, 1)?;
    if h[0] == IMAGES_MAGIC {
        bail!("this is an IDX image file, not a label file");
    }
    ensure!(
        h[0] == LABELS_MAGIC,
        "not an IDX label file (magic {:#010x}, expected 0x00000801)",
        h[0]
    );
    Ok(header(bytes, 2)?[1])
}

fn header(bytes: &[u8], words: usize) -> Result<Vec<usize>> {
    ensure!(
        bytes.len() >= 4 * words,
        "file too short for an IDX header ({} bytes)",
        bytes.len()
    );
    Ok(bytes[..4 * words]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect())
}

/// Parses IDX image data (magic 0x803, count, rows, cols).
pub fn parse_images(bytes: &[u8]) -> Result<Images> {
    let (count, rows, cols, len) = images_header(bytes)?;
    let body = &bytes[16..];
    ensure!(
        body.len() == len,
        "IDX header announces {count} images of {rows}x{cols} ({len} bytes) but the file holds {} bytes of pixels",
        body.len()
    );
    Ok(Images {
        rows,
        cols,
        pixels: body.to_vec(),
    })
}

/// Parses IDX label data (magic 0x801, count).
pub fn parse_labels(bytes: &[u8]) -> Result<Vec<u8>> {
    let count = labels_header(bytes)?;
    let body = &bytes[8..];
    ensure!(
        body.len() == count,
        "IDX header announces {count} labels but the file holds {}",
        body.len()
    );
    Ok(body.to_vec())
}

/// Reads an image file (`.gz` or not).
pub fn read_images(path: &Path) -> Result<Images> {
    let bytes = read_bounded(path, 16, |h| {
        let (count, rows, cols, len) = images_header(h)?;
        Ok((len, format!("{count} images of {rows}x{cols}")))
    })?;
    parse_images(&bytes).with_context(|| path.display().to_string())
}

/// Reads a label file (`.gz` or not).
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_bounded(path, 8, |h| {
        let count = labels_header(h)?;
        Ok((count, format!("{count} labels")))
    })?;
    parse_labels(&bytes).with_context(|| path.display().to_string())
}

/// Encodes images as IDX (for tests and for tools that write subsets).
pub fn encode_images(images: &Images) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + images.pixels.len());
    for w in [IMAGES_MAGIC, images.len(), images.rows, images.cols] {
        out.extend_from_slice(&(w as u32).to_be_bytes());
    }
    out.extend_from_slice(&images.pixels);
    out
}

/// Encodes labels as IDX.
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&(LABELS_MAGIC as u32).to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_bad_headers() {
        let images = Images {
            rows: 2,
            cols: 3,
            pixels: (0..12).collect(),
        };
        let bytes = encode_images(&images);
        assert_eq!(parse_images(&bytes).unwrap(), images);
        assert!(parse_images(&bytes[..bytes.len() - 1]).is_err());
        assert!(parse_images(&bytes[..10]).is_err());
        assert!(parse_images(&[]).is_err());
        assert!(parse_labels(&bytes).is_err());
        let labels = encode_labels(&[1, 2, 3]);
        assert_eq!(parse_labels(&labels).unwrap(), vec![1, 2, 3]);
        assert!(parse_labels(&labels[..9]).is_err());
        assert!(parse_images(&labels).is_err());
    }
}
