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
    check_header(bytes)?;
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
    // npyz sizes its buffer from the shape: check it against the bytes present first.
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .context("the .npy shape overflows")?;
    ensure!(
        count <= bytes.len(),
        "the .npy shape {shape:?} announces {count} values but the file holds {} bytes",
        bytes.len()
    );
    let data = file
        .into_vec::<i8>()
        .context("the array is not int8 (or is truncated)")?;
    Ok((shape, data))
}

/// Checks the header before npyz parses it: its length field against the bytes present
/// (finding F2: a 299-byte file announcing a 4 GiB header), and that it is the flat
/// dictionary numpy writes for a plain array — one `{…}` holding one shape tuple. npyz
/// parses the dictionary with a backtracking grammar that takes exponential time in the
/// nesting depth (finding F7: 48 nested braces kept it busy for minutes), and a plain int8
/// array never needs more than this.
fn check_header(bytes: &[u8]) -> Result<()> {
    let (len, start) = match bytes {
        [0x93, b'N', b'U', b'M', b'P', b'Y', 1, _, a, b, ..] => {
            (usize::from(u16::from_le_bytes([*a, *b])), 10)
        }
        [0x93, b'N', b'U', b'M', b'P', b'Y', _, _, a, b, c, d, ..] => {
            (u32::from_le_bytes([*a, *b, *c, *d]) as usize, 12)
        }
        _ => return Ok(()), // npyz reports what is wrong
    };
    ensure!(
        len <= bytes.len() - start,
        "the .npy header announces {len} bytes but the file holds {}",
        bytes.len()
    );
    let header = bytes.get(start..start + len).unwrap_or_default();
    let count = |c: u8| header.iter().filter(|&&b| b == c).count();
    ensure!(
        count(b'{') == 1
            && count(b'}') == 1
            && count(b'(') <= 1
            && count(b')') <= 1
            && count(b'[') == 0
            && count(b']') == 0,
        "the .npy header is not a plain array's (nested brackets): only int8 arrays are supported"
    );
    Ok(())
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

    /// `.npy` bytes of the int8 array `[1, 2]` with `header` as its dictionary.
    fn with_header(header: &str) -> Vec<u8> {
        let mut text = header.as_bytes().to_vec();
        text.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&text);
        bytes.extend_from_slice(&[1, 2]);
        bytes
    }

    #[test]
    fn structured_and_nested_headers_are_refused_before_parsing() {
        // What numpy.save writes for np.array([1, 2], dtype=np.int8).
        let numpy = "{'descr': '|i1', 'fortran_order': False, 'shape': (2,), }";
        assert_eq!(
            decode_i8(&with_header(numpy)).unwrap(),
            (vec![2], vec![1, 2])
        );
        for bad in [
            numpy.replacen("'|i1'", "[('a', '|i1')]", 1),
            numpy.replacen("(2,)", "((2,),)", 1),
            numpy.replacen('{', "{{", 1),
        ] {
            let err = decode_i8(&with_header(&bad)).unwrap_err().to_string();
            assert!(err.contains("nested brackets"), "{bad}: {err}");
        }
    }
}
