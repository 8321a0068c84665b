//! Fine-tuned weights kept safely in NOR flash, through the `embedded-storage` traits.
//!
//! Two slots hold two generations of a weight set. A slot is a header and a payload:
//!
//! | offset | type | field |
//! |---:|---|---|
//! | 0 | u32 | magic `"FXWT"` (`0x54575846` little-endian) |
//! | 4 | u16 | version (1) |
//! | 6 | u16 | reserved, 0 |
//! | 8 | u32 | sequence number (the newest valid slot wins) |
//! | 12 | u32 | payload length in bytes |
//! | 16 | u32 | CRC-32 of the model the weights belong to ([`Model::crc`]) |
//! | 20 | u32 | CRC-32 of the payload |
//! | 24 | u32 | reserved, 0 |
//! | 28 | u32 | CRC-32 of bytes 0‥28 |
//!
//! and the payload starts at [`PAYLOAD_OFFSET`]. A save erases only the slot that does *not*
//! hold the newest valid set, programs the payload, and programs the header last. Until the
//! header's last granule is programmed the slot is invalid (erased bytes give a bad magic, a
//! torn header a bad header CRC), so a power cut at any program or erase step leaves the old
//! set as the newest valid one; once it is programmed, the new set is. Weights saved for a
//! different model (another model CRC) are ignored.
//!
//! [`encode_constants`] and [`decode_overlay`] turn a trainer's constants into a payload
//! and a payload back into an [`Overlay`] for the interpreter.
//!
//! [`Model::crc`]: crate::Model::crc

use crate::format::crc32::{crc32, Crc32};
use crate::format::{DType, Model, TensorId};
use crate::overlay::Overlay;
use crate::train::Constant;
use crate::Error;
use embedded_storage::nor_flash::NorFlash;

/// Magic number at the start of a slot header.
pub const MAGIC: u32 = u32::from_le_bytes(*b"FXWT");
/// Header format version.
pub const VERSION: u16 = 1;
/// Bytes in a slot header.
pub const HEADER_LEN: usize = 32;
/// Offset of the payload in a slot: room for the header padded to any write size up to 64.
pub const PAYLOAD_OFFSET: usize = 64;
/// Bytes moved per flash read or program call (a multiple of every supported write size).
const CHUNK: usize = 256;

/// What can go wrong saving or loading weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StorageError<E> {
    /// The flash driver failed (or power was lost mid-way).
    Flash(E),
    /// The slot geometry does not fit the flash: slots must be erase-aligned, inside the
    /// flash, and the write and read sizes must divide 64.
    Geometry,
    /// The payload does not fit a slot, or the caller's buffer is too small for it.
    TooLarge,
    /// A payload does not describe constants of this model.
    Format(Error),
}

/// The header of one slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SlotHeader {
    /// Generation: higher is newer.
    pub sequence: u32,
    /// Payload bytes.
    pub len: u32,
    /// CRC-32 of the model the weights belong to.
    pub model_crc: u32,
    /// CRC-32 of the payload.
    pub payload_crc: u32,
}

impl SlotHeader {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        h[4..6].copy_from_slice(&VERSION.to_le_bytes());
        h[8..12].copy_from_slice(&self.sequence.to_le_bytes());
        h[12..16].copy_from_slice(&self.len.to_le_bytes());
        h[16..20].copy_from_slice(&self.model_crc.to_le_bytes());
        h[20..24].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32(&h[..28]);
        h[28..32].copy_from_slice(&crc.to_le_bytes());
        h
    }

    fn decode(h: &[u8; HEADER_LEN]) -> Option<Self> {
        let word = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let ok = word(0) == MAGIC
            && u16::from_le_bytes([h[4], h[5]]) == VERSION
            && h[6] == 0
            && h[7] == 0
            && word(24) == 0
            && word(28) == crc32(&h[..28]);
        ok.then(|| SlotHeader {
            sequence: word(8),
            len: word(12),
            model_crc: word(16),
            payload_crc: word(20),
        })
    }
}

/// Two-slot, power-cut-safe storage of a weight set in NOR flash.
#[derive(Debug)]
pub struct WeightStore<F> {
    flash: F,
    base: u32,
    slot_size: u32,
}

/// Sequence-number order that survives wrapping: `a` is newer than `b`.
fn newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

impl<F: NorFlash> WeightStore<F> {
    /// Storage in two slots of `slot_size` bytes each at `base` and `base + slot_size`;
    /// both must be multiples of the flash's erase size.
    pub fn new(flash: F, base: u32, slot_size: u32) -> Result<Self, StorageError<F::Error>> {
        let erase = u32::try_from(F::ERASE_SIZE).map_err(|_| StorageError::Geometry)?;
        let end = slot_size
            .checked_mul(2)
            .and_then(|s| s.checked_add(base))
            .ok_or(StorageError::Geometry)?;
        let fits = erase > 0
            && base % erase == 0
            && slot_size % erase == 0
            && slot_size as usize > PAYLOAD_OFFSET
            && end as usize <= flash.capacity()
            && F::WRITE_SIZE > 0
            && PAYLOAD_OFFSET % F::WRITE_SIZE == 0
            && F::READ_SIZE > 0
            && PAYLOAD_OFFSET % F::READ_SIZE == 0;
        if !fits {
            return Err(StorageError::Geometry);
        }
        Ok(WeightStore {
            flash,
            base,
            slot_size,
        })
    }

    /// Gives the flash back.
    pub fn release(self) -> F {
        self.flash
    }

    /// Largest payload a slot holds.
    pub fn capacity(&self) -> usize {
        self.slot_size as usize - PAYLOAD_OFFSET
    }

    fn slot_base(&self, slot: usize) -> u32 {
        self.base + self.slot_size * slot as u32
    }

    fn read_header(&mut self, slot: usize) -> Result<Option<SlotHeader>, StorageError<F::Error>> {
        let mut h = [0u8; PAYLOAD_OFFSET];
        self.flash
            .read(self.slot_base(slot), &mut h)
            .map_err(StorageError::Flash)?;
        let mut head = [0u8; HEADER_LEN];
        head.copy_from_slice(&h[..HEADER_LEN]);
        Ok(SlotHeader::decode(&head).filter(|s| s.len as usize <= self.capacity()))
    }

    /// Checks a slot's payload CRC without keeping the payload.
    fn payload_ok(
        &mut self,
        slot: usize,
        header: &SlotHeader,
    ) -> Result<bool, StorageError<F::Error>> {
        let mut crc = Crc32::new();
        let mut chunk = [0u8; CHUNK];
        let mut at = 0usize;
        let len = header.len as usize;
        while at < len {
            let n = (len - at).min(CHUNK);
            let padded = n.div_ceil(F::READ_SIZE) * F::READ_SIZE;
            let buf = chunk.get_mut(..padded).ok_or(StorageError::Geometry)?;
            self.flash
                .read(self.slot_base(slot) + (PAYLOAD_OFFSET + at) as u32, buf)
                .map_err(StorageError::Flash)?;
            crc.update(buf.get(..n).ok_or(StorageError::Geometry)?);
            at += n;
        }
        Ok(crc.finish() == header.payload_crc)
    }

    /// The slot and header of the newest complete weight set for `model_crc`.
    pub fn newest(
        &mut self,
        model_crc: u32,
    ) -> Result<Option<(usize, SlotHeader)>, StorageError<F::Error>> {
        let mut best: Option<(usize, SlotHeader)> = None;
        for slot in 0..2 {
            let Some(h) = self.read_header(slot)? else {
                continue;
            };
            if h.model_crc != model_crc || !self.payload_ok(slot, &h)? {
                continue;
            }
            if best.is_none_or(|(_, b)| newer(h.sequence, b.sequence)) {
                best = Some((slot, h));
            }
        }
        Ok(best)
    }

    /// Reads the newest complete weight set for `model_crc` into `buffer` (words, so that
    /// int32 values in it are aligned) and returns its bytes, or `None` when there is none
    /// (the factory weights apply).
    pub fn load<'b>(
        &mut self,
        model_crc: u32,
        buffer: &'b mut [u32],
    ) -> Result<Option<&'b [u8]>, StorageError<F::Error>> {
        let Some((slot, h)) = self.newest(model_crc)? else {
            return Ok(None);
        };
        let len = h.len as usize;
        let bytes: &'b mut [u8] = bytemuck::cast_slice_mut(buffer);
        let padded = len.div_ceil(F::READ_SIZE) * F::READ_SIZE;
        let dst = bytes.get_mut(..padded).ok_or(StorageError::TooLarge)?;
        self.flash
            .read(self.slot_base(slot) + PAYLOAD_OFFSET as u32, dst)
            .map_err(StorageError::Flash)?;
        // Re-check: the bytes handed out must be the ones the CRC vouched for.
        if crc32(dst.get(..len).ok_or(StorageError::TooLarge)?) != h.payload_crc {
            return Ok(None);
        }
        Ok(Some(&bytes[..len]))
    }

    /// Saves a new weight set for `model_crc`, power-cut safe; returns its sequence number.
    pub fn save(&mut self, model_crc: u32, payload: &[u8]) -> Result<u32, StorageError<F::Error>> {
        if payload.len() > self.capacity() || CHUNK % F::WRITE_SIZE != 0 {
            return Err(StorageError::TooLarge);
        }
        let current = self.newest(model_crc)?;
        let (target, sequence) = match current {
            Some((slot, h)) => (1 - slot, h.sequence.wrapping_add(1)),
            None => (0, 1),
        };
        let base = self.slot_base(target);
        self.flash
            .erase(base, base + self.slot_size)
            .map_err(StorageError::Flash)?;
        let mut chunk = [0xFFu8; CHUNK];
        for (k, part) in payload.chunks(CHUNK).enumerate() {
            let padded = part.len().div_ceil(F::WRITE_SIZE) * F::WRITE_SIZE;
            // `get` rather than indexing: the bounds hold (chunks of at most CHUNK bytes,
            // CHUNK a multiple of WRITE_SIZE) but the compiler cannot prove it, and the core
            // is checked free of reachable panics (`.ci/no-panic`).
            let (data, rest) = chunk.split_at_mut(part.len().min(CHUNK));
            data.copy_from_slice(part);
            rest.fill(0xFF);
            let padded = chunk.get(..padded).ok_or(StorageError::TooLarge)?;
            self.flash
                .write(base + (PAYLOAD_OFFSET + k * CHUNK) as u32, padded)
                .map_err(StorageError::Flash)?;
        }
        let header = SlotHeader {
            sequence,
            len: payload.len() as u32,
            model_crc,
            payload_crc: crc32(payload),
        }
        .encode();
        let mut head = [0xFFu8; PAYLOAD_OFFSET];
        head[..HEADER_LEN].copy_from_slice(&header);
        let padded = HEADER_LEN.div_ceil(F::WRITE_SIZE) * F::WRITE_SIZE;
        self.flash
            .write(base, &head[..padded])
            .map_err(StorageError::Flash)?;
        Ok(sequence)
    }
}

/// Bytes [`encode_constants`] writes for these constants.
pub fn encoded_len<'x>(constants: impl IntoIterator<Item = Constant<'x>>) -> usize {
    4 + constants
        .into_iter()
        .map(|c| {
            8 + match c {
                Constant::Int8(_, v) => v.len().div_ceil(4) * 4,
                Constant::Int32(_, v) => v.len() * 4,
            }
        })
        .sum::<usize>()
}

/// Serializes constants (e.g. [`Trainer::constants`](crate::train::Trainer::constants)) as a
/// payload: `count: u16, 0: u16`, then per constant `tensor: u16, dtype: u8 (1 int8, 2
/// int32), 0: u8, elements: u32`, the little-endian values, zero padding to 4 bytes.
pub fn encode_constants<'x>(
    constants: impl IntoIterator<Item = Constant<'x>>,
    out: &mut [u8],
) -> Result<usize, Error> {
    let mut at = 4;
    let mut count: u16 = 0;
    let mut put = |at: &mut usize, bytes: &[u8]| -> Result<(), Error> {
        let end = *at + bytes.len();
        out.get_mut(*at..end)
            .ok_or(Error::BufferTooSmall { needed: end })?
            .copy_from_slice(bytes);
        *at = end;
        Ok(())
    };
    for c in constants {
        let (id, code, n, data): (TensorId, u8, usize, &[u8]) = match c {
            Constant::Int8(id, v) => (id, 1, v.len(), bytemuck::cast_slice(v)),
            Constant::Int32(id, v) => (id, 2, v.len(), bytemuck::cast_slice(v)),
        };
        let n32 = u32::try_from(n).map_err(|_| Error::CapacityExceeded)?;
        put(&mut at, &id.to_le_bytes())?;
        put(&mut at, &[code, 0])?;
        put(&mut at, &n32.to_le_bytes())?;
        put(&mut at, data)?;
        let pad = data.len().div_ceil(4) * 4 - data.len();
        put(&mut at, [0u8; 4].get(..pad).unwrap_or_default())?;
        count = count.checked_add(1).ok_or(Error::CapacityExceeded)?;
    }
    let mut head = 0;
    put(&mut head, &count.to_le_bytes())?;
    put(&mut head, &[0, 0])?;
    Ok(at)
}

/// An overlay over `model` from a payload of [`encode_constants`] (4-byte aligned, as
/// [`WeightStore::load`] returns it). Every constant must exist in the model with that type
/// and length.
pub fn decode_overlay<'b>(model: &Model<'_>, payload: &'b [u8]) -> Result<Overlay<'b>, Error> {
    let word = |at: usize| -> Result<u32, Error> {
        let b = payload.get(at..at + 4).ok_or(Error::Truncated)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let head = word(0)?;
    let count = head & 0xFFFF;
    if head >> 16 != 0 {
        return Err(Error::BadHeader);
    }
    let mut overlay = Overlay::new();
    let mut at = 4;
    for _ in 0..count {
        let w = word(at)?;
        let id = (w & 0xFFFF) as TensorId;
        let code = (w >> 16) as u8;
        if w >> 24 != 0 {
            return Err(Error::BadHeader);
        }
        let n = word(at + 4)? as usize;
        at += 8;
        let dtype = match code {
            1 => DType::Int8,
            2 => DType::Int32,
            _ => return Err(Error::BadDataType),
        };
        let bytes = n.checked_mul(dtype.size()).ok_or(Error::Truncated)?;
        let data = payload.get(at..at + bytes).ok_or(Error::Truncated)?;
        match dtype {
            DType::Int8 => overlay.set_int8(id, bytemuck::cast_slice(data))?,
            DType::Int32 => overlay.set_int32(
                id,
                bytemuck::try_cast_slice(data).map_err(|_| Error::Misaligned)?,
            )?,
        }
        at += bytes.div_ceil(4) * 4;
    }
    if at != payload.len() {
        return Err(Error::BadHeader);
    }
    overlay.check(model)?;
    Ok(overlay)
}
