//! `.npy` arrays of int8 (what `fixnet run` writes and what the fixtures hold), via `npyz`.

use anyhow::{ensure, Context, Result};
use npyz::WriterBuilder;

/// Encodes a C-order int8 array of `shape`.
pub fn encode_i8(shape: &[usize], data: &[i8]) -> Result<Vec<u8>> {
    ensure!(
        crate::ir::elements(shape) == data.len(),
        "{} values for shape {shape:?}",
        data.len()
    );
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut out = Vec::new();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(&mut out)
        .begin_nd()?;
    w.extend(data.iter().copied())?;
    w.finish()?;
    Ok(out)
}

/// Decodes an int8 `.npy` array into its shape and C-order values.
pub fn decode_i8(bytes: &[u8]) -> Result<(Vec<usize>, Vec<i8>)> {
    let file = npyz::NpyFile::new(bytes).context("not a .npy file")?;
    ensure!(
        file.order() == npyz::Order::C,
        "only C-order arrays are supported"
    );
    let shape = file
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()?;
    let data = file
        .into_vec::<i8>()
        .context("the array is not int8 (or is truncated)")?;
    Ok((shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data: Vec<i8> = (-6..6).collect();
        let bytes = encode_i8(&[3, 4], &data).unwrap();
        assert!(bytes.starts_with(b"\x93NUMPY"));
        assert_eq!(decode_i8(&bytes).unwrap(), (vec![3, 4], data));
        assert!(encode_i8(&[5], &[1, 2]).is_err());
        assert!(decode_i8(&bytes[..bytes.len() - 1]).is_err());
    }
}
