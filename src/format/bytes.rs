//! Bounds-checked little-endian reads from a byte slice: every read either succeeds or gives
//! [`Error::OffsetOutOfRange`], so a malformed model can never cause an out-of-bounds access.

use crate::Error;

pub(crate) fn slice(bytes: &[u8], offset: usize, len: usize) -> Result<&[u8], Error> {
    let end = offset.checked_add(len).ok_or(Error::OffsetOutOfRange)?;
    bytes.get(offset..end).ok_or(Error::OffsetOutOfRange)
}

fn array<const N: usize>(bytes: &[u8], offset: usize) -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    out.copy_from_slice(slice(bytes, offset, N)?);
    Ok(out)
}

pub(crate) fn u8_at(bytes: &[u8], offset: usize) -> Result<u8, Error> {
    bytes.get(offset).copied().ok_or(Error::OffsetOutOfRange)
}

pub(crate) fn i8_at(bytes: &[u8], offset: usize) -> Result<i8, Error> {
    Ok(i8::from_le_bytes([u8_at(bytes, offset)?]))
}

pub(crate) fn u16_at(bytes: &[u8], offset: usize) -> Result<u16, Error> {
    Ok(u16::from_le_bytes(array(bytes, offset)?))
}

pub(crate) fn u32_at(bytes: &[u8], offset: usize) -> Result<u32, Error> {
    Ok(u32::from_le_bytes(array(bytes, offset)?))
}

pub(crate) fn usize_at(bytes: &[u8], offset: usize) -> Result<usize, Error> {
    usize::try_from(u32_at(bytes, offset)?).map_err(|_| Error::OffsetOutOfRange)
}

pub(crate) fn i32_at(bytes: &[u8], offset: usize) -> Result<i32, Error> {
    Ok(i32::from_le_bytes(array(bytes, offset)?))
}

pub(crate) fn f32_at(bytes: &[u8], offset: usize) -> Result<f32, Error> {
    Ok(f32::from_le_bytes(array(bytes, offset)?))
}

/// Reinterprets 4-byte aligned little-endian bytes as `i32`/`f32` values without copying.
pub(crate) fn cast_words<T: bytemuck::Pod>(bytes: &[u8]) -> Result<&[T], Error> {
    bytemuck::try_cast_slice(bytes).map_err(|_| Error::Misaligned)
}

/// Writes `value` at `offset`; the writer sizes its buffer first, so a miss is a bug there,
/// reported rather than panicking.
pub(crate) fn put(out: &mut [u8], offset: usize, value: &[u8]) -> Result<(), Error> {
    let end = offset
        .checked_add(value.len())
        .ok_or(Error::OffsetOutOfRange)?;
    out.get_mut(offset..end)
        .ok_or(Error::OffsetOutOfRange)?
        .copy_from_slice(value);
    Ok(())
}
