//! Zero-copy, fully validated view of a model blob.

use super::bytes::{u16_at, u32_at, usize_at, Record};
use super::crc32::crc32;
use super::validate::{check_graph, check_plan, scan_lifetime, Graph};
use super::{
    Op, Tensor, TensorId, ALIGN, CRC_LEN, HEADER_LEN, LEGACY_MAX_OPS, LEGACY_MAX_TENSORS, MAGIC,
    MIN_VERSION, OP_RECORD_LEN, TENSOR_RECORD_LEN, VERSION,
};
use crate::plan::Lifetime;
use crate::Error;
use core::ops::Range;

/// A model, validated once at load and read in place (typically from flash).
///
/// After [`Model::from_bytes`] succeeds every tensor, op and plan entry has been checked, so
/// the interpreter never meets an inconsistent model.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    blob: &'a [u8],
    arena_size: usize,
    tensor_count: usize,
    op_count: usize,
    input: TensorId,
    output: TensorId,
    data: Range<usize>,
    crc: u32,
    version: u16,
}

impl<'a> Model<'a> {
    /// Parses and fully validates a model, CRC included. `bytes` must start at an 8-byte
    /// aligned address (use [`include_model!`](crate::include_model)); bytes after the
    /// model's declared length are ignored.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::parse(bytes, true)
    }

    /// Like [`Model::from_bytes`] but without the CRC check, for callers that verified the
    /// bytes otherwise (and for fuzzing the structural checks). Every other check still
    /// runs, so a corrupt model is still rejected or, if structurally valid, safe to run.
    pub fn from_bytes_unchecked_crc(bytes: &'a [u8]) -> Result<Self, Error> {
        Self::parse(bytes, false)
    }

    fn parse(bytes: &'a [u8], check_crc: bool) -> Result<Self, Error> {
        if bytes.len() < MAGIC.len() {
            return Err(Error::Truncated);
        }
        if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
            return Err(Error::BadMagic);
        }
        if bytes.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let version = u16_at(bytes, 4)?;
        if !(MIN_VERSION..=VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion(version));
        }
        if usize::from(u16_at(bytes, 6)?) != HEADER_LEN {
            return Err(Error::BadHeader);
        }
        let len = usize_at(bytes, 8)?;
        if len < HEADER_LEN + CRC_LEN || len % CRC_LEN != 0 {
            return Err(Error::BadHeader);
        }
        let blob = bytes.get(..len).ok_or(Error::Truncated)?;
        let header = Record::<HEADER_LEN>::at(blob, 0)?;
        let body = blob.get(..len - CRC_LEN).ok_or(Error::Truncated)?;
        let stored = u32_at(blob, len - CRC_LEN)?;
        let computed = crc32(body);
        if check_crc && stored != computed {
            return Err(Error::CrcMismatch { stored, computed });
        }
        if blob.as_ptr() as usize % ALIGN != 0 {
            return Err(Error::Misaligned);
        }

        let arena_size = header.usize::<12>()?;
        let tensor_count = usize::from(header.u16::<16>());
        let op_count = usize::from(header.u16::<18>());
        let input = header.u16::<20>();
        let output = header.u16::<22>();
        if version < 3 && (tensor_count > LEGACY_MAX_TENSORS || op_count > LEGACY_MAX_OPS) {
            return Err(Error::CapacityExceeded);
        }
        // The layout is fixed: header, tensor table, op table, data, CRC, with nothing in
        // between, so a second parser needs no offsets arithmetic beyond this.
        let tensor_table = HEADER_LEN;
        let op_table = tensor_table + tensor_count * TENSOR_RECORD_LEN;
        let data_start = op_table + op_count * OP_RECORD_LEN;
        let data_len = header.usize::<36>()?;
        if header.usize::<24>()? != tensor_table
            || header.usize::<28>()? != op_table
            || header.usize::<32>()? != data_start
            || data_start.checked_add(data_len) != Some(len - CRC_LEN)
            || header.u32::<40>() != 0
            || header.u32::<44>() != 0
        {
            return Err(Error::BadHeader);
        }

        let model = Model {
            blob,
            arena_size,
            tensor_count,
            op_count,
            input,
            output,
            data: data_start..len - CRC_LEN,
            crc: stored,
            version,
        };
        if model.is_legacy() {
            model.check_legacy()?;
        }
        check_graph(&model)?;
        check_plan(&model, arena_size)?;
        Ok(model)
    }

    /// A version-1 or version-2 model (only ever true with the `legacy-format` feature, so
    /// that a build without it links none of their code).
    #[inline(always)]
    fn is_legacy(&self) -> bool {
        MIN_VERSION < 3 && self.version < 3
    }

    /// Versions 1 and 2 store no lifetimes and no elided activations (those are found from
    /// the ops), and a version-2 blob must fuse some op while a version-1 blob must not, so
    /// that every model has exactly one encoding.
    #[cold]
    fn check_legacy(&self) -> Result<(), Error> {
        let mut fuses = false;
        for t in 0..self.tensor_count {
            let tensor = self.tensor(t as TensorId)?;
            if tensor.elided || tensor.lifetime != Lifetime::default() {
                return Err(Error::BadHeader);
            }
        }
        for op in self.ops() {
            fuses |= op?.fused_pool().is_some();
        }
        if (self.version >= 2) != fuses {
            return Err(Error::UnsupportedVersion(self.version));
        }
        Ok(())
    }

    /// Bytes of arena the interpreter needs.
    pub fn arena_size(&self) -> usize {
        self.arena_size
    }

    /// True when activation `id` is the output of a convolution fused with the max pool
    /// that reads it: it is never computed as a whole and has no bytes in the arena.
    pub fn is_elided(&self, id: TensorId) -> bool {
        Graph::is_elided(self, id).unwrap_or(false)
    }

    /// The format version the model is stored with.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// When activation `id` holds live data (steps: 0 is the model input, op `i` runs at
    /// step `i + 1`).
    pub fn lifetime(&self, id: TensorId) -> Result<Lifetime, Error> {
        Graph::lifetime(self, id)
    }

    /// Bytes of the model blob (what it takes in flash).
    pub fn len(&self) -> usize {
        self.blob.len()
    }

    /// Always false: a valid model has at least a header.
    pub fn is_empty(&self) -> bool {
        self.blob.is_empty()
    }

    /// The model's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.blob
    }

    /// The stored (and, unless skipped, verified) CRC-32.
    pub fn crc(&self) -> u32 {
        self.crc
    }

    /// Number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.tensor_count
    }

    /// Number of ops.
    pub fn op_count(&self) -> usize {
        self.op_count
    }

    /// Index of the input tensor.
    pub fn input_index(&self) -> TensorId {
        self.input
    }

    /// Index of the output tensor.
    pub fn output_index(&self) -> TensorId {
        self.output
    }

    /// Tensor `id`.
    pub fn tensor(&self, id: TensorId) -> Result<Tensor<'a>, Error> {
        let i = usize::from(id);
        if i >= self.tensor_count {
            return Err(Error::BadTensorIndex(id));
        }
        Tensor::decode(
            self.blob,
            HEADER_LEN + i * TENSOR_RECORD_LEN,
            self.data.clone(),
        )
    }

    /// Where constant `id`'s bytes lie in the blob ([`Error::BadTensorIndex`] for an
    /// activation).
    pub fn constant_range(&self, id: TensorId) -> Result<Range<usize>, Error> {
        let data = self.tensor(id)?.data.ok_or(Error::BadTensorIndex(id))?;
        let start = (data.as_ptr() as usize)
            .checked_sub(self.blob.as_ptr() as usize)
            .ok_or(Error::OffsetOutOfRange)?;
        Ok(start..start + data.len())
    }

    /// Op `index`, in execution order.
    pub fn op(&self, index: usize) -> Result<Op<'a>, Error> {
        if index >= self.op_count {
            return Err(Error::InvalidParameter);
        }
        let record = HEADER_LEN + self.tensor_count * TENSOR_RECORD_LEN + index * OP_RECORD_LEN;
        Op::decode(self.blob, record, self.data.clone())
    }

    /// The input tensor.
    pub fn input(&self) -> Result<Tensor<'a>, Error> {
        self.tensor(self.input)
    }

    /// The output tensor.
    pub fn output(&self) -> Result<Tensor<'a>, Error> {
        self.tensor(self.output)
    }

    /// The ops in execution order (each already validated at load).
    pub fn ops(&self) -> impl Iterator<Item = Result<Op<'a>, Error>> + '_ {
        (0..self.op_count).map(move |i| self.op(i))
    }
}

impl<'a> Graph<'a> for Model<'a> {
    fn tensor_count(&self) -> usize {
        self.tensor_count
    }
    fn op_count(&self) -> usize {
        self.op_count
    }
    fn tensor(&self, id: TensorId) -> Result<Tensor<'a>, Error> {
        Model::tensor(self, id)
    }
    fn op(&self, index: usize) -> Result<Op<'a>, Error> {
        Model::op(self, index)
    }
    fn input(&self) -> TensorId {
        self.input
    }
    fn output(&self) -> TensorId {
        self.output
    }
    fn lifetime(&self, t: TensorId) -> Result<Lifetime, Error> {
        if self.is_legacy() {
            return Ok(scan_lifetime(self, t)?.0);
        }
        Ok(self.tensor(t)?.lifetime)
    }
    fn is_elided(&self, t: TensorId) -> Result<bool, Error> {
        if self.is_legacy() {
            return Ok(scan_lifetime(self, t)?.1);
        }
        Ok(self.tensor(t)?.elided)
    }
}
