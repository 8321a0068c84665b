//! Bounds-checked little-endian reads from a byte slice: every read either succeeds or gives
//! [`Error::OffsetOutOfRange`], so a malformed model can never cause an out-of-bounds access.

use crate::Error;

pub(crate) fn slice(bytes: &[u8], offset: usize, len: usize) -> Result<&[u8], Error> {
    let end = offset.checked_add(len).ok_or(Error::OffsetOutOfRange)?;
    bytes.get(offset..end).ok_or(Error::OffsetOutOfRange)
}

/// A record of `N` bytes of a blob, bounds-checked once when it is taken; its fields, at
/// offsets checked at compile time, are then read with no check and no error path (a
/// model's tensor and op records are decoded whenever the interpreter looks at them).
#[derive(Clone, Copy)]
pub(crate) struct Record<'b, const N: usize>(&'b [u8; N]);

impl<'b, const N: usize> Record<'b, N> {
    /// The `N` bytes at `offset`, or [`Error::OffsetOutOfRange`].
    pub(crate) fn at(bytes: &'b [u8], offset: usize) -> Result<Self, Error> {
        slice(bytes, offset, N)?
            .try_into()
            .map(Record)
            .map_err(|_| Error::OffsetOutOfRange)
    }

    #[inline(always)]
    fn field<const AT: usize, const LEN: usize>(&self) -> [u8; LEN] {
        const { assert!(AT + LEN <= N, "field past the end of the record") };
        core::array::from_fn(|i| self.0[AT + i])
    }

    pub(crate) fn u8<const AT: usize>(&self) -> u8 {
        u8::from_le_bytes(self.field::<AT, 1>())
    }

    pub(crate) fn i8<const AT: usize>(&self) -> i8 {
        i8::from_le_bytes(self.field::<AT, 1>())
    }

    pub(crate) fn u16<const AT: usize>(&self) -> u16 {
        u16::from_le_bytes(self.field::<AT, 2>())
    }

    pub(crate) fn u32<const AT: usize>(&self) -> u32 {
        u32::from_le_bytes(self.field::<AT, 4>())
    }

    pub(crate) fn i32<const AT: usize>(&self) -> i32 {
        i32::from_le_bytes(self.field::<AT, 4>())
    }

    pub(crate) fn f32<const AT: usize>(&self) -> f32 {
        f32::from_le_bytes(self.field::<AT, 4>())
    }

    /// A `u32` field as a `usize` ([`Error::OffsetOutOfRange`] on 16-bit targets if it
    /// does not fit).
    pub(crate) fn usize<const AT: usize>(&self) -> Result<usize, Error> {
        usize::try_from(self.u32::<AT>()).map_err(|_| Error::OffsetOutOfRange)
    }
}

fn array<const N: usize>(bytes: &[u8], offset: usize) -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    out.copy_from_slice(slice(bytes, offset, N)?);
    Ok(out)
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
