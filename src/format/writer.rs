//! Writing models: plan the arena, lay out and encode the blob.
//!
//! `std`-free and allocation-free like the rest of the core. The writer works on the caller's
//! slices of tensors and ops ([`plan_arena`], [`write_model`]), so a model is as large as the
//! caller's storage; [`ModelBuilder`] wraps them in fixed-capacity vectors for callers that
//! want a bound (tests, a device).

use super::bytes::put;
use super::crc32::crc32;
use super::validate::{check_graph, check_plan, root, scan_lifetime, Graph};
use super::{
    Model, Op, Tensor, TensorId, ALIGN, CRC_LEN, HEADER_LEN, MAGIC, OP_RECORD_LEN,
    TENSOR_RECORD_LEN, VERSION,
};
use crate::plan::{plan, Buffers, Lifetime};
use crate::Error;

/// A model under construction: the caller's tensors and ops.
#[derive(Clone, Copy)]
struct Slices<'s, 'a> {
    tensors: &'s [Tensor<'a>],
    ops: &'s [Op<'a>],
    input: TensorId,
    output: TensorId,
}

impl<'a> Graph<'a> for Slices<'_, 'a> {
    fn tensor_count(&self) -> usize {
        self.tensors.len()
    }
    fn op_count(&self) -> usize {
        self.ops.len()
    }
    fn tensor(&self, id: TensorId) -> Result<Tensor<'a>, Error> {
        self.tensors
            .get(usize::from(id))
            .copied()
            .ok_or(Error::BadTensorIndex(id))
    }
    fn op(&self, index: usize) -> Result<Op<'a>, Error> {
        self.ops.get(index).copied().ok_or(Error::InvalidParameter)
    }
    fn input(&self) -> TensorId {
        self.input
    }
    fn output(&self) -> TensorId {
        self.output
    }
}

/// The buffers the planner places: activations that own their bytes.
struct ArenaBuffers<'s, 'a> {
    tensors: &'s mut [Tensor<'a>],
    ops: &'s [Op<'a>],
    input: TensorId,
    output: TensorId,
}

impl ArenaBuffers<'_, '_> {
    fn owns_buffer(&self, i: usize) -> bool {
        let Some(t) = self.tensors.get(i) else {
            return false;
        };
        let graph = Slices {
            tensors: self.tensors,
            ops: self.ops,
            input: self.input,
            output: self.output,
        };
        !t.is_constant()
            && !t.elided
            && TensorId::try_from(i).is_ok_and(|id| root(&graph, id).is_ok_and(|r| r == id))
    }
}

impl Buffers for ArenaBuffers<'_, '_> {
    fn count(&self) -> usize {
        self.tensors.len()
    }
    fn size(&self, i: usize) -> Option<usize> {
        self.owns_buffer(i)
            .then(|| self.tensors.get(i).map(Tensor::byte_len))
            .flatten()
    }
    fn lifetime(&self, i: usize) -> Lifetime {
        self.tensors.get(i).map(|t| t.lifetime).unwrap_or_default()
    }
    fn offset(&self, i: usize) -> usize {
        self.tensors.get(i).map_or(0, |t| t.arena_offset)
    }
    fn set_offset(&mut self, i: usize, offset: usize) {
        if let Some(t) = self.tensors.get_mut(i) {
            t.arena_offset = offset;
        }
    }
}

/// Checks the graph and plans the arena: fills in every activation's lifetime, elision and
/// arena offset in `tensors`, and returns the arena size.
pub fn plan_arena<'a>(
    tensors: &mut [Tensor<'a>],
    ops: &[Op<'a>],
    input: TensorId,
    output: TensorId,
) -> Result<usize, Error> {
    set_lifetimes(tensors, ops, input, output)?;
    check_graph(&Slices {
        tensors,
        ops,
        input,
        output,
    })?;
    // While planning, a buffer lives as long as any tensor using it: a reshape's output
    // extends its input's buffer. (Only `last` changes, and `root` reads only `first`.)
    for t in 0..tensors.len() {
        let id = TensorId::try_from(t).map_err(|_| Error::CapacityExceeded)?;
        let graph = Slices {
            tensors,
            ops,
            input,
            output,
        };
        let tensor = graph.tensor(id)?;
        if tensor.is_constant() || tensor.elided {
            continue;
        }
        let r = usize::from(root(&graph, id)?);
        if let Some(buffer) = tensors.get_mut(r) {
            buffer.lifetime.last = buffer.lifetime.last.max(tensor.lifetime.last);
        }
    }
    let mut buffers = ArenaBuffers {
        tensors,
        ops,
        input,
        output,
    };
    let arena = plan(&mut buffers)?;
    set_lifetimes(tensors, ops, input, output)?;
    // A reshape's output takes its input's bytes.
    for t in 0..tensors.len() {
        let id = TensorId::try_from(t).map_err(|_| Error::CapacityExceeded)?;
        let graph = Slices {
            tensors,
            ops,
            input,
            output,
        };
        let tensor = graph.tensor(id)?;
        if tensor.is_constant() {
            continue;
        }
        // An elided tensor has no bytes; its canonical offset is 0.
        let offset = if tensor.elided {
            0
        } else {
            graph.tensor(root(&graph, id)?)?.arena_offset
        };
        if let Some(tensor) = tensors.get_mut(t) {
            tensor.arena_offset = offset;
        }
    }
    check_plan(
        &Slices {
            tensors,
            ops,
            input,
            output,
        },
        arena,
    )?;
    Ok(arena)
}

/// Fills in each activation's own lifetime and elision as the ops imply.
fn set_lifetimes<'a>(
    tensors: &mut [Tensor<'a>],
    ops: &[Op<'a>],
    input: TensorId,
    output: TensorId,
) -> Result<(), Error> {
    for t in 0..tensors.len() {
        let id = TensorId::try_from(t).map_err(|_| Error::CapacityExceeded)?;
        let is_constant = tensors.get(t).is_none_or(Tensor::is_constant);
        let (lifetime, elided) = if is_constant {
            (Lifetime::default(), false)
        } else {
            let graph = Slices {
                tensors,
                ops,
                input,
                output,
            };
            scan_lifetime(&graph, id)?
        };
        if let Some(tensor) = tensors.get_mut(t) {
            tensor.lifetime = lifetime;
            tensor.elided = elided;
        }
    }
    Ok(())
}

/// Walks the data section in blob order, handing out each constant's 8-aligned offset.
struct DataCursor {
    at: usize,
}

impl DataCursor {
    fn new(tensor_count: usize, op_count: usize) -> Result<Self, Error> {
        let at = tensor_count
            .checked_mul(TENSOR_RECORD_LEN)
            .and_then(|t| t.checked_add(op_count.checked_mul(OP_RECORD_LEN)?))
            .and_then(|b| b.checked_add(HEADER_LEN))
            .ok_or(Error::CapacityExceeded)?;
        Ok(DataCursor { at })
    }

    fn reserve(&mut self, bytes: usize) -> Result<usize, Error> {
        let start = self.at;
        self.at = start
            .checked_add(bytes)
            .and_then(|e| e.checked_add(ALIGN - 1))
            .map(|e| e & !(ALIGN - 1))
            .ok_or(Error::CapacityExceeded)?;
        Ok(start)
    }

    /// Offsets of a tensor's channel scales and data (0 for what it has not).
    fn tensor(&mut self, tensor: &Tensor<'_>) -> Result<(usize, usize), Error> {
        let scales = if tensor.channel_scales.is_empty() {
            0
        } else {
            self.reserve(tensor.channel_scales.len() * 4)?
        };
        let data = match tensor.data {
            Some(data) if data.len() != tensor.byte_len() => return Err(Error::ShapeMismatch),
            Some(data) => self.reserve(data.len())?,
            None => 0,
        };
        Ok((scales, data))
    }

    /// Offset of an op's requantization tables (0 when it has none).
    fn op(&mut self, op: &Op<'_>) -> Result<usize, Error> {
        if let Some((bytes, _)) = op.payload() {
            return self.reserve(bytes.len());
        }
        let Some((m, s)) = op.requantization() else {
            return Ok(0);
        };
        let doubles = op.double_scales();
        if m.len() != s.len() || (!doubles.is_empty() && doubles.len() != m.len()) {
            return Err(Error::BadQuantization);
        }
        self.reserve(m.len() * 8 + doubles.len() * 8)
    }
}

/// Bytes the encoded model takes.
pub fn encoded_len(tensors: &[Tensor<'_>], ops: &[Op<'_>]) -> Result<usize, Error> {
    let mut cursor = DataCursor::new(tensors.len(), ops.len())?;
    for tensor in tensors {
        cursor.tensor(tensor)?;
    }
    for op in ops {
        cursor.op(op)?;
    }
    cursor
        .at
        .checked_add(CRC_LEN)
        .ok_or(Error::CapacityExceeded)
}

/// Plans the arena ([`plan_arena`], which updates `tensors`) and encodes the model into
/// `out`; returns its length. Fails without writing a valid model if the graph is
/// inconsistent or `out` is too small.
pub fn write_model<'a>(
    tensors: &mut [Tensor<'a>],
    ops: &[Op<'a>],
    input: TensorId,
    output: TensorId,
    out: &mut [u8],
) -> Result<usize, Error> {
    let arena = plan_arena(tensors, ops, input, output)?;
    let tensors = &*tensors;
    let len = encoded_len(tensors, ops)?;
    let out = out
        .get_mut(..len)
        .ok_or(Error::BufferTooSmall { needed: len })?;
    out.fill(0);

    let u32_of = |v: usize| u32::try_from(v).map_err(|_| Error::CapacityExceeded);
    let u16_of = |v: usize| u16::try_from(v).map_err(|_| Error::CapacityExceeded);
    let op_table = HEADER_LEN + tensors.len() * TENSOR_RECORD_LEN;
    let data_start = op_table + ops.len() * OP_RECORD_LEN;
    put(out, 0, &MAGIC)?;
    put(out, 4, &VERSION.to_le_bytes())?;
    put(out, 6, &(HEADER_LEN as u16).to_le_bytes())?;
    put(out, 8, &u32_of(len)?.to_le_bytes())?;
    put(out, 12, &u32_of(arena)?.to_le_bytes())?;
    put(out, 16, &u16_of(tensors.len())?.to_le_bytes())?;
    put(out, 18, &u16_of(ops.len())?.to_le_bytes())?;
    put(out, 20, &input.to_le_bytes())?;
    put(out, 22, &output.to_le_bytes())?;
    put(out, 24, &u32_of(HEADER_LEN)?.to_le_bytes())?;
    put(out, 28, &u32_of(op_table)?.to_le_bytes())?;
    put(out, 32, &u32_of(data_start)?.to_le_bytes())?;
    put(out, 36, &u32_of(len - CRC_LEN - data_start)?.to_le_bytes())?;

    let mut cursor = DataCursor::new(tensors.len(), ops.len())?;
    for (t, tensor) in tensors.iter().enumerate() {
        let (scales_at, data_at) = cursor.tensor(tensor)?;
        let record = tensor.encode(data_at, scales_at)?;
        put(out, HEADER_LEN + t * TENSOR_RECORD_LEN, &record)?;
        for (k, s) in tensor.channel_scales.iter().enumerate() {
            put(out, scales_at + 4 * k, &s.to_le_bytes())?;
        }
        if let Some(data) = tensor.data {
            put(out, data_at, data)?;
        }
    }
    for (i, op) in ops.iter().enumerate() {
        let at = cursor.op(op)?;
        put(out, op_table + i * OP_RECORD_LEN, &op.encode(at)?)?;
        if let Some((bytes, _)) = op.payload() {
            put(out, at, bytes)?;
        }
        if let Some((m, s)) = op.requantization() {
            for (k, v) in m.iter().chain(s.iter()).enumerate() {
                put(out, at + 4 * k, &v.to_le_bytes())?;
            }
            for (k, v) in op.double_scales().iter().enumerate() {
                put(out, at + 8 * (m.len() + k), &v.to_le_bytes())?;
            }
        }
    }
    let crc = crc32(out.get(..len - CRC_LEN).ok_or(Error::Truncated)?);
    put(out, len - CRC_LEN, &crc.to_le_bytes())?;
    Ok(len)
}

/// Builds a model blob from tensors and ops kept in fixed-capacity vectors: at most
/// `TENSORS` tensors and `OPS` ops, the bound a caller states ([`ModelBuilder`] is the one
/// of 64 of each; the host converter calls [`write_model`] on its own vectors instead).
///
/// ```
/// # use fixnet::format::{Dims, ModelBuilder, Op, Tensor};
/// let mut b = ModelBuilder::new();
/// let x = b.add_tensor(Tensor::activation(Dims::new(&[1, 4])?, 0.1, 0))?;
/// let y = b.add_tensor(Tensor::activation(Dims::new(&[4])?, 0.1, 0))?;
/// b.add_op(Op::Reshape { input: x, output: y })?;
/// b.set_io(x, y);
/// let mut out = vec![0u8; b.encoded_len()?];
/// let n = b.write(&mut out)?;
/// # assert_eq!(n, out.len());
/// # Ok::<(), fixnet::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct BoundedBuilder<'a, const TENSORS: usize, const OPS: usize> {
    tensors: heapless::Vec<Tensor<'a>, TENSORS>,
    ops: heapless::Vec<Op<'a>, OPS>,
    input: TensorId,
    output: TensorId,
}

/// A [`BoundedBuilder`] of at most 64 tensors and 64 ops.
pub type ModelBuilder<'a> = BoundedBuilder<'a, 64, 64>;

impl<'a, const TENSORS: usize, const OPS: usize> BoundedBuilder<'a, TENSORS, OPS> {
    /// An empty model.
    pub fn new() -> Self {
        BoundedBuilder {
            tensors: heapless::Vec::new(),
            ops: heapless::Vec::new(),
            input: 0,
            output: 0,
        }
    }

    /// A builder holding every tensor and op of `model`, for writing it again. Writing it
    /// unchanged gives the same bytes (the planner is deterministic).
    pub fn from_model(model: &Model<'a>) -> Result<Self, Error> {
        let mut builder = Self::new();
        for t in 0..model.tensor_count() {
            let id = TensorId::try_from(t).map_err(|_| Error::CapacityExceeded)?;
            builder.add_tensor(model.tensor(id)?)?;
        }
        for op in model.ops() {
            builder.add_op(op?)?;
        }
        builder.set_io(model.input_index(), model.output_index());
        Ok(builder)
    }

    /// Replaces the bytes of constant `id` (little-endian values, same length as before).
    pub fn replace_constant(&mut self, id: TensorId, bytes: &'a [u8]) -> Result<(), Error> {
        let tensor = self
            .tensors
            .get_mut(usize::from(id))
            .ok_or(Error::BadTensorIndex(id))?;
        match tensor.data {
            Some(old) if old.len() == bytes.len() => {
                tensor.data = Some(bytes);
                Ok(())
            }
            Some(_) => Err(Error::ShapeMismatch),
            None => Err(Error::BadTensorIndex(id)),
        }
    }

    /// Adds a tensor and returns its index ([`Error::CapacityExceeded`] past `TENSORS`).
    pub fn add_tensor(&mut self, tensor: Tensor<'a>) -> Result<TensorId, Error> {
        let id = TensorId::try_from(self.tensors.len()).map_err(|_| Error::CapacityExceeded)?;
        self.tensors
            .push(tensor)
            .map_err(|_| Error::CapacityExceeded)?;
        Ok(id)
    }

    /// Appends an op; ops run in the order they are added.
    pub fn add_op(&mut self, op: Op<'a>) -> Result<(), Error> {
        self.ops.push(op).map_err(|_| Error::CapacityExceeded)
    }

    /// Names the model's input and output tensors.
    pub fn set_io(&mut self, input: TensorId, output: TensorId) {
        self.input = input;
        self.output = output;
    }

    /// The tensors added so far (arena offsets are only meaningful after planning).
    pub fn tensors(&self) -> &[Tensor<'a>] {
        &self.tensors
    }

    /// The ops added so far.
    pub fn ops(&self) -> &[Op<'a>] {
        &self.ops
    }

    /// Checks the graph and plans the arena: returns the tensors with their lifetimes and
    /// arena offsets, and the arena size.
    pub fn plan(&self) -> Result<(heapless::Vec<Tensor<'a>, TENSORS>, usize), Error> {
        let mut planned = self.tensors.clone();
        let arena = plan_arena(&mut planned, &self.ops, self.input, self.output)?;
        Ok((planned, arena))
    }

    /// Bytes the encoded model takes.
    pub fn encoded_len(&self) -> Result<usize, Error> {
        encoded_len(&self.tensors, &self.ops)
    }

    /// Encodes the model into `out` and returns its length. Fails without writing a valid
    /// model if the graph is inconsistent or `out` is too small.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, Error> {
        let mut planned = self.tensors.clone();
        write_model(&mut planned, &self.ops, self.input, self.output, out)
    }
}
