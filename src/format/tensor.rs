//! Tensor descriptors: data type, dimensions, quantization and where the data lives.

use super::bytes::{cast_words, Record};
use super::{ALIGN, TENSOR_RECORD_LEN};
use crate::plan::Lifetime;
use crate::{Error, Shape};

/// Element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum DType {
    /// Signed 8-bit, quantized (activations and weights).
    Int8,
    /// Signed 32-bit (biases).
    Int32,
}

impl DType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::Int8 => 1,
            DType::Int32 => 4,
        }
    }

    pub(crate) const fn code(self) -> u8 {
        match self {
            DType::Int8 => 1,
            DType::Int32 => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Result<Self, Error> {
        match code {
            1 => Ok(DType::Int8),
            2 => Ok(DType::Int32),
            _ => Err(Error::BadDataType),
        }
    }
}

/// Dimensions of a tensor, rank 1 to 4, outermost first (TFLite order: NHWC, OHWI, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Dims {
    rank: u8,
    dims: [u16; 4],
}

impl Dims {
    /// Dimensions from a slice of 1 to 4 sizes, each 1 to 65535.
    pub fn new(dims: &[usize]) -> Result<Self, Error> {
        if dims.is_empty() || dims.len() > 4 {
            return Err(Error::InconsistentShape);
        }
        let mut out = [0u16; 4];
        for (slot, &d) in out.iter_mut().zip(dims) {
            *slot = u16::try_from(d).map_err(|_| Error::InconsistentShape)?;
            if *slot == 0 {
                return Err(Error::InconsistentShape);
            }
        }
        Ok(Dims {
            rank: dims.len() as u8,
            dims: out,
        })
    }

    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        usize::from(self.rank)
    }

    /// The sizes, outermost first.
    pub fn as_slice(&self) -> &[u16] {
        self.dims.get(..self.rank()).unwrap_or(&[])
    }

    /// Size of dimension `i` (0 when out of range).
    pub fn get(&self, i: usize) -> usize {
        self.as_slice().get(i).map_or(0, |&d| usize::from(d))
    }

    /// Size of the innermost dimension.
    pub fn last(&self) -> usize {
        self.as_slice().last().map_or(0, |&d| usize::from(d))
    }

    /// Number of elements (at most 65535⁴, which fits a `u64`; `usize::MAX` when it does not
    /// fit a `usize`).
    pub fn num_elements(&self) -> usize {
        let n = self
            .as_slice()
            .iter()
            .fold(1u64, |acc, &d| acc.saturating_mul(u64::from(d)));
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// The batch-1 activation shape: `[1, H, W, C]` → H×W×C, `[1, N]` or `[N]` → 1×1×N.
    pub fn activation_shape(&self) -> Result<Shape, Error> {
        match *self.as_slice() {
            [n] => Ok(Shape::new(1, 1, usize::from(n))),
            [1, n] => Ok(Shape::new(1, 1, usize::from(n))),
            [1, h, w, c] => Ok(Shape::new(usize::from(h), usize::from(w), usize::from(c))),
            _ => Err(Error::InconsistentShape),
        }
    }
}

/// One tensor of a model: its type, shape and quantization, and for constants the bytes.
#[derive(Clone, Copy, Debug)]
pub struct Tensor<'a> {
    /// Element type.
    pub dtype: DType,
    /// Dimensions.
    pub dims: Dims,
    /// Zero point (per-tensor; 0 for symmetric weights and biases).
    pub zero_point: i32,
    /// Scale (per-tensor). For per-channel weights, see [`Tensor::channel_scales`].
    pub scale: f32,
    /// Per-channel scales along `quantized_axis`, empty when quantized per tensor.
    pub channel_scales: &'a [f32],
    /// Axis the per-channel scales run along.
    pub quantized_axis: u8,
    /// Little-endian bytes of a constant; `None` for a tensor that lives in the arena.
    pub data: Option<&'a [u8]>,
    /// Offset in the arena (arena tensors of a parsed model; chosen by the planner when
    /// building).
    pub arena_offset: usize,
    /// Steps during which an activation holds live data (stored in version-3 records, found
    /// by the writer; zero for constants and in older versions' records).
    pub lifetime: Lifetime,
    /// An activation that is never stored: the output of a convolution fused with the max
    /// pool that reads it (it has no arena bytes).
    pub elided: bool,
}

impl<'a> Tensor<'a> {
    /// An int8 activation tensor living in the arena.
    pub fn activation(dims: Dims, scale: f32, zero_point: i32) -> Self {
        Tensor {
            dtype: DType::Int8,
            dims,
            zero_point,
            scale,
            channel_scales: &[],
            quantized_axis: 0,
            data: None,
            arena_offset: 0,
            lifetime: Lifetime::default(),
            elided: false,
        }
    }

    /// An int8 constant (weights) with per-channel scales along `axis` (pass one scale for
    /// per-tensor quantization).
    pub fn weights(dims: Dims, data: &'a [i8], channel_scales: &'a [f32], axis: u8) -> Self {
        Tensor {
            dtype: DType::Int8,
            dims,
            zero_point: 0,
            scale: channel_scales.first().copied().unwrap_or(0.0),
            channel_scales,
            quantized_axis: axis,
            data: Some(bytemuck::cast_slice(data)),
            arena_offset: 0,
            lifetime: Lifetime::default(),
            elided: false,
        }
    }

    /// An int32 constant (biases).
    pub fn bias(dims: Dims, data: &'a [i32], scale: f32) -> Self {
        Tensor {
            dtype: DType::Int32,
            dims,
            zero_point: 0,
            scale,
            channel_scales: &[],
            quantized_axis: 0,
            data: Some(bytemuck::cast_slice(data)),
            arena_offset: 0,
            lifetime: Lifetime::default(),
            elided: false,
        }
    }

    /// Bytes the tensor's data takes.
    pub fn byte_len(&self) -> usize {
        self.dims.num_elements().saturating_mul(self.dtype.size())
    }

    /// True for constants stored in the model.
    pub fn is_constant(&self) -> bool {
        self.data.is_some()
    }

    /// A constant's values as int8.
    pub fn data_i8(&self) -> Result<&'a [i8], Error> {
        match (self.dtype, self.data) {
            (DType::Int8, Some(bytes)) => Ok(bytemuck::cast_slice(bytes)),
            _ => Err(Error::BadDataType),
        }
    }

    /// A constant's values as int32 (needs 4-byte aligned data, as in every parsed model).
    pub fn data_i32(&self) -> Result<&'a [i32], Error> {
        match (self.dtype, self.data) {
            (DType::Int32, Some(bytes)) => cast_words(bytes),
            _ => Err(Error::BadDataType),
        }
    }

    /// Decodes tensor record `index` of `blob`, checking everything that does not need the
    /// rest of the model.
    pub(crate) fn decode(
        blob: &'a [u8],
        record: usize,
        data_section: core::ops::Range<usize>,
    ) -> Result<Self, Error> {
        let r = Record::<TENSOR_RECORD_LEN>::at(blob, record)?;
        let dtype = DType::from_code(r.u8::<0>())?;
        let storage = r.u8::<1>();
        let rank = usize::from(r.u8::<2>());
        let quantized_axis = r.u8::<3>();
        if rank == 0 || rank > 4 {
            return Err(Error::InconsistentShape);
        }
        let sizes = [r.u16::<4>(), r.u16::<6>(), r.u16::<8>(), r.u16::<10>()].map(usize::from);
        for (i, size) in sizes.iter().enumerate() {
            // Unused dimensions must be zero so that every byte of the record means something.
            if (i < rank) != (*size != 0) {
                return Err(Error::InconsistentShape);
            }
        }
        let dims = Dims::new(sizes.get(..rank).ok_or(Error::InconsistentShape)?)?;
        let offset = r.usize::<12>()?;
        let byte_len = r.usize::<16>()?;
        let zero_point = r.i32::<20>();
        let scale = r.f32::<24>();
        let scales_offset = r.usize::<28>()?;
        let scales_count = r.usize::<32>()?;
        if byte_len != dims.num_elements().saturating_mul(dtype.size()) {
            return Err(Error::InconsistentShape);
        }
        if !scale.is_finite() || scale < 0.0 {
            return Err(Error::BadQuantization);
        }
        let channel_scales = if scales_count == 0 {
            if scales_offset != 0 {
                return Err(Error::BadQuantization);
            }
            &[][..]
        } else {
            if usize::from(quantized_axis) >= rank
                || dims.get(usize::from(quantized_axis)) != scales_count
            {
                return Err(Error::BadQuantization);
            }
            let bytes = section_slice(blob, &data_section, scales_offset, scales_count * 4)?;
            let scales: &[f32] = cast_words(bytes)?;
            if scales.iter().any(|s| !s.is_finite() || *s < 0.0) {
                return Err(Error::BadQuantization);
            }
            scales
        };
        let is_constant = storage == STORAGE_CONSTANT;
        // Bytes 36..40 hold an activation's lifetime (version 3, checked with the graph);
        // a constant has none.
        if is_constant && r.u32::<36>() != 0 {
            return Err(Error::BadHeader);
        }
        let (data, arena_offset) = match storage {
            STORAGE_ARENA => (None, offset),
            STORAGE_ELIDED if offset == 0 => (None, 0),
            STORAGE_CONSTANT => (
                Some(section_slice(blob, &data_section, offset, byte_len)?),
                0,
            ),
            _ => return Err(Error::BadHeader),
        };
        Ok(Tensor {
            dtype,
            dims,
            zero_point,
            scale,
            channel_scales,
            quantized_axis,
            data,
            arena_offset,
            lifetime: Lifetime {
                first: r.u16::<36>(),
                last: r.u16::<38>(),
            },
            elided: storage == STORAGE_ELIDED,
        })
    }

    /// Encodes the record; `data_offset` and `scales_offset` are where the writer put the
    /// tensor's bytes and scales.
    pub(crate) fn encode(
        &self,
        data_offset: usize,
        scales_offset: usize,
    ) -> Result<[u8; TENSOR_RECORD_LEN], Error> {
        let mut r = [0u8; TENSOR_RECORD_LEN];
        r[0] = self.dtype.code();
        r[1] = match (self.is_constant(), self.elided) {
            (true, _) => STORAGE_CONSTANT,
            (false, true) => STORAGE_ELIDED,
            (false, false) => STORAGE_ARENA,
        };
        r[2] = self.dims.rank;
        r[3] = self.quantized_axis;
        for (i, d) in self.dims.as_slice().iter().enumerate() {
            r[4 + 2 * i..6 + 2 * i].copy_from_slice(&d.to_le_bytes());
        }
        let offset = if self.is_constant() {
            data_offset
        } else {
            self.arena_offset
        };
        r[12..16].copy_from_slice(&to_u32(offset)?.to_le_bytes());
        r[16..20].copy_from_slice(&to_u32(self.byte_len())?.to_le_bytes());
        r[20..24].copy_from_slice(&self.zero_point.to_le_bytes());
        r[24..28].copy_from_slice(&self.scale.to_le_bytes());
        let (s_off, s_count) = if self.channel_scales.is_empty() {
            (0, 0)
        } else {
            (scales_offset, self.channel_scales.len())
        };
        r[28..32].copy_from_slice(&to_u32(s_off)?.to_le_bytes());
        r[32..36].copy_from_slice(&to_u32(s_count)?.to_le_bytes());
        if !self.is_constant() {
            r[36..38].copy_from_slice(&self.lifetime.first.to_le_bytes());
            r[38..40].copy_from_slice(&self.lifetime.last.to_le_bytes());
        }
        Ok(r)
    }
}

/// Storage code of an activation that lives in the arena.
pub(crate) const STORAGE_ARENA: u8 = 0;
/// Storage code of a constant in the data section.
pub(crate) const STORAGE_CONSTANT: u8 = 1;
/// Storage code (version 3) of an activation that is never stored: the output of a
/// convolution fused with its max pool.
pub(crate) const STORAGE_ELIDED: u8 = 2;

pub(crate) fn to_u32(v: usize) -> Result<u32, Error> {
    u32::try_from(v).map_err(|_| Error::OffsetOutOfRange)
}

/// `len` bytes at `offset`, which must be aligned and lie inside the data section.
pub(crate) fn section_slice<'a>(
    blob: &'a [u8],
    section: &core::ops::Range<usize>,
    offset: usize,
    len: usize,
) -> Result<&'a [u8], Error> {
    let end = offset.checked_add(len).ok_or(Error::OffsetOutOfRange)?;
    if offset < section.start || end > section.end {
        return Err(Error::OffsetOutOfRange);
    }
    if offset % ALIGN != 0 {
        return Err(Error::Misaligned);
    }
    blob.get(offset..end).ok_or(Error::OffsetOutOfRange)
}
