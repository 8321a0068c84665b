//! `.npy` arrays, via `npyz`: int8 and float32 model inputs and outputs, integer labels.
//!
//! Every file goes through [`decode`], which checks the header before npyz parses it and the
//! announced size against the bytes present before anything is allocated.

use anyhow::{bail, ensure, Context, Result};
use npyz::{AutoSerialize, TypeChar, WriterBuilder};

/// A decoded array: its shape and its C-order values.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// The values, in the file's element type.
    pub values: Values,
}

/// The values of an [`Array`], by element type.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// `int8`.
    Int8(Vec<i8>),
    /// `float32`.
    Float32(Vec<f32>),
    /// Any other integer type (`uint8` … `int64`, `uint64` up to `i64::MAX`), widened.
    Int(Vec<i64>),
}

impl Array {
    /// numpy's name for the element type (`int8`, `float32`, or `integer` for the widened
    /// ones), for messages.
    pub fn dtype(&self) -> &'static str {
        match self.values {
            Values::Int8(_) => "int8",
            Values::Float32(_) => "float32",
            Values::Int(_) => "integer",
        }
    }

    /// The values of an integer array of any width, widened; `None` for float32.
    pub fn integers(&self) -> Option<Vec<i64>> {
        match &self.values {
            Values::Int8(v) => Some(v.iter().map(|&x| i64::from(x)).collect()),
            Values::Int(v) => Some(v.clone()),
            Values::Float32(_) => None,
        }
    }
}

/// Encodes a C-order int8 array of `shape`.
pub fn encode_i8(shape: &[usize], data: &[i8]) -> Result<Vec<u8>> {
    encode(shape, data)
}

/// Encodes a C-order float32 array of `shape`.
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Result<Vec<u8>> {
    encode(shape, data)
}

fn encode<T: AutoSerialize + Copy>(shape: &[usize], data: &[T]) -> Result<Vec<u8>> {
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
    let array = decode(bytes)?;
    match array.values {
        Values::Int8(v) => Ok((array.shape, v)),
        _ => bail!("the array is {}, not int8", array.dtype()),
    }
}

/// Decodes a `.npy` array of int8, float32 or any other integer type (in either byte order).
/// Other element types (float64, bool, strings, structured records…) are refused, naming the
/// type.
pub fn decode(bytes: &[u8]) -> Result<Array> {
    ensure!(
        bytes.starts_with(b"\x93NUMPY"),
        "not a .npy file (it does not start with the \\x93NUMPY magic)"
    );
    check_header(bytes)?;
    let file = npyz::NpyFile::new(bytes).context("not a valid .npy file")?;
    ensure!(
        file.order() == npyz::Order::C,
        "only C-order arrays are supported (this one is Fortran-order)"
    );
    let shape = file
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()?;
    let npyz::DType::Plain(ty) = file.dtype() else {
        bail!("structured .npy arrays are not supported");
    };
    let (kind, size) = (ty.type_char(), ty.size_field());
    let name = match kind {
        TypeChar::Int => format!("int{}", 8 * size),
        TypeChar::Uint => format!("uint{}", 8 * size),
        TypeChar::Float => format!("float{}", 8 * size),
        TypeChar::Bool => "bool".into(),
        _ => format!("'{ty}'"),
    };
    // npyz sizes its buffer from the shape: check it against the bytes present first.
    let count = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .context("the .npy shape overflows")?;
    let needed = usize::try_from(size)
        .ok()
        .and_then(|s| count.checked_mul(s))
        .context("the .npy shape overflows")?;
    ensure!(
        needed <= bytes.len(),
        "the .npy shape {shape:?} announces {count} {name} values but the file holds {} bytes",
        bytes.len()
    );
    let truncated = || format!("the {name} data is truncated");
    let widen = |v: Vec<i64>| Values::Int(v);
    let values = match (kind, size) {
        (TypeChar::Int, 1) => Values::Int8(file.into_vec::<i8>().with_context(truncated)?),
        (TypeChar::Float, 4) => Values::Float32(file.into_vec::<f32>().with_context(truncated)?),
        (TypeChar::Int, 2) => widen(ints::<i16>(file).with_context(truncated)?),
        (TypeChar::Int, 4) => widen(ints::<i32>(file).with_context(truncated)?),
        (TypeChar::Int, 8) => widen(ints::<i64>(file).with_context(truncated)?),
        (TypeChar::Uint, 1) => widen(ints::<u8>(file).with_context(truncated)?),
        (TypeChar::Uint, 2) => widen(ints::<u16>(file).with_context(truncated)?),
        (TypeChar::Uint, 4) => widen(ints::<u32>(file).with_context(truncated)?),
        (TypeChar::Uint, 8) => {
            let v = file.into_vec::<u64>().with_context(truncated)?;
            widen(
                v.into_iter()
                    .map(i64::try_from)
                    .collect::<Result<_, _>>()
                    .context("a uint64 value is larger than int64 can hold")?,
            )
        }
        _ => bail!("unsupported .npy element type {name} (int8, float32 or integers are read)"),
    };
    Ok(Array { shape, values })
}

/// Reads an integer array of type `T`, widened to `i64`.
fn ints<T>(file: npyz::NpyFile<&[u8]>) -> std::io::Result<Vec<i64>>
where
    T: npyz::Deserialize + Into<i64>,
{
    Ok(file.into_vec::<T>()?.into_iter().map(Into::into).collect())
}

/// Checks the header before npyz parses it: its length field against the bytes present
/// (finding F2: a 299-byte file announcing a 4 GiB header), and that it is the flat
/// dictionary numpy writes for a plain array — one `{…}` holding one shape tuple. npyz
/// parses the dictionary with a backtracking grammar that takes exponential time in the
/// nesting depth (finding F7: 48 nested braces kept it busy for minutes), and a plain
/// numeric array never needs more than this.
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
        "the .npy header is not a plain array's (nested brackets): only plain numeric arrays are supported"
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

    #[test]
    fn float32_and_every_integer_type() {
        let floats = [0.5f32, -1.25, 3e7, f32::MIN_POSITIVE];
        let array = decode(&encode_f32(&[2, 2], &floats).unwrap()).unwrap();
        assert_eq!(array.shape, vec![2, 2]);
        assert_eq!(array.values, Values::Float32(floats.to_vec()));
        assert_eq!(array.integers(), None);
        let err = decode_i8(&encode_f32(&[4], &floats).unwrap()).unwrap_err();
        assert!(err.to_string().contains("float32, not int8"), "{err}");

        let want = vec![0i64, 7, 200];
        let check = |bytes: Vec<u8>| {
            let a = decode(&bytes).unwrap();
            assert_eq!(
                (a.shape.clone(), a.integers()),
                (vec![3], Some(want.clone()))
            );
        };
        check(encode(&[3], &[0u8, 7, 200]).unwrap());
        check(encode(&[3], &[0i16, 7, 200]).unwrap());
        check(encode(&[3], &[0u16, 7, 200]).unwrap());
        check(encode(&[3], &[0i32, 7, 200]).unwrap());
        check(encode(&[3], &[0u32, 7, 200]).unwrap());
        check(encode(&[3], &[0i64, 7, 200]).unwrap());
        check(encode(&[3], &[0u64, 7, 200]).unwrap());
        let a = decode(&encode_i8(&[2], &[-3, 4]).unwrap()).unwrap();
        assert_eq!(a.integers(), Some(vec![-3, 4]));

        let err = decode(&encode(&[1], &[u64::MAX]).unwrap()).unwrap_err();
        assert!(format!("{err:#}").contains("larger than int64"), "{err:#}");
    }

    #[test]
    fn other_types_and_foreign_or_short_files_are_refused() {
        let err = decode(&encode(&[2], &[1.0f64, 2.0]).unwrap()).unwrap_err();
        assert!(err.to_string().contains("float64"), "{err}");
        let err = decode(&encode(&[2], &[true, false]).unwrap()).unwrap_err();
        assert!(err.to_string().contains("bool"), "{err}");
        let err = decode(b"P5 28 28 255").unwrap_err();
        assert!(err.to_string().contains("not a .npy file"), "{err}");
        let bytes = encode_f32(&[3], &[1.0, 2.0, 3.0]).unwrap();
        // One value's bytes short: the shape check or npyz, never a panic.
        assert!(decode(&bytes[..bytes.len() - 4]).is_err());
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(&bytes[..8]).is_err());
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
