//! Writing models: collect tensors and ops, plan the arena, lay out and encode the blob.
//!
//! `std`-free and allocation-free like the rest of the core, so tests, the host converter
//! and even a device can produce models the same way.

use super::bytes::put;
use super::crc32::crc32;
use super::validate::{check_graph, check_plan, Graph, Liveness};
use super::{
    Model, Op, Tensor, TensorId, ALIGN, CRC_LEN, HEADER_LEN, MAGIC, MAX_OPS, MAX_TENSORS,
    OP_RECORD_LEN, TENSOR_RECORD_LEN, VERSION,
};
use crate::plan::plan;
use crate::Error;

/// Builds a model blob from tensors and ops.
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
pub struct ModelBuilder<'a> {
    tensors: heapless::Vec<Tensor<'a>, MAX_TENSORS>,
    ops: heapless::Vec<Op<'a>, MAX_OPS>,
    input: TensorId,
    output: TensorId,
}

/// Where each part of the blob goes.
struct Layout {
    data_start: usize,
    tensor_data: [usize; MAX_TENSORS],
    tensor_scales: [usize; MAX_TENSORS],
    op_requant: [usize; MAX_OPS],
    len: usize,
}

impl<'a> ModelBuilder<'a> {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder holding every tensor and op of `model`, for writing it again — typically
    /// after [`ModelBuilder::replace_constant`] baked fine-tuned weights in. Writing it
    /// unchanged gives the same bytes (the planner is deterministic).
    pub fn from_model(model: &Model<'a>) -> Result<Self, Error> {
        let mut builder = ModelBuilder::new();
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

    /// Adds a tensor and returns its index.
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

    /// Checks the graph and plans the arena: returns the tensors with their arena offsets
    /// and the arena size.
    pub fn plan(&self) -> Result<(heapless::Vec<Tensor<'a>, MAX_TENSORS>, usize), Error> {
        let mut live = Liveness::new();
        check_graph(self, &mut live)?;
        let n = self.tensors.len();
        let mut sizes = [0usize; MAX_TENSORS];
        let mut owns = [false; MAX_TENSORS];
        for (t, (tensor, (size, owned))) in self
            .tensors
            .iter()
            .zip(sizes.iter_mut().zip(owns.iter_mut()))
            .enumerate()
        {
            *size = tensor.byte_len();
            *owned = live.owns_buffer(t);
        }
        let mut offsets = [0usize; MAX_TENSORS];
        let arena = plan(
            sizes.get(..n).ok_or(Error::CapacityExceeded)?,
            live.lifetimes.get(..n).ok_or(Error::CapacityExceeded)?,
            owns.get(..n).ok_or(Error::CapacityExceeded)?,
            offsets.get_mut(..n).ok_or(Error::CapacityExceeded)?,
        )?;
        let mut planned = self.tensors.clone();
        for (tensor, (&is_activation, &root)) in planned
            .iter_mut()
            .zip(live.is_activation.iter().zip(live.root.iter()))
        {
            if is_activation {
                tensor.arena_offset = *offsets.get(usize::from(root)).ok_or(Error::BadPlan)?;
            }
        }
        let view = Planned {
            builder: self,
            tensors: &planned,
        };
        check_plan(&view, &live, arena)?;
        Ok((planned, arena))
    }

    fn layout(&self) -> Result<Layout, Error> {
        let data_start =
            HEADER_LEN + self.tensors.len() * TENSOR_RECORD_LEN + self.ops.len() * OP_RECORD_LEN;
        let mut layout = Layout {
            data_start,
            tensor_data: [0; MAX_TENSORS],
            tensor_scales: [0; MAX_TENSORS],
            op_requant: [0; MAX_OPS],
            len: 0,
        };
        let mut at = data_start;
        let mut reserve = |bytes: usize| -> Result<usize, Error> {
            let start = at;
            at = start
                .checked_add(bytes)
                .and_then(|e| e.checked_add(ALIGN - 1))
                .map(|e| e & !(ALIGN - 1))
                .ok_or(Error::CapacityExceeded)?;
            Ok(start)
        };
        let slots = layout
            .tensor_scales
            .iter_mut()
            .zip(layout.tensor_data.iter_mut());
        for (tensor, (scales_at, data_at)) in self.tensors.iter().zip(slots) {
            if !tensor.channel_scales.is_empty() {
                *scales_at = reserve(tensor.channel_scales.len() * 4)?;
            }
            if let Some(data) = tensor.data {
                if data.len() != tensor.byte_len() {
                    return Err(Error::ShapeMismatch);
                }
                *data_at = reserve(data.len())?;
            }
        }
        for (op, requant_at) in self.ops.iter().zip(layout.op_requant.iter_mut()) {
            if let Some((m, s)) = op.requantization() {
                if m.len() != s.len() {
                    return Err(Error::BadQuantization);
                }
                let doubles = op.double_scales();
                if !doubles.is_empty() && doubles.len() != m.len() {
                    return Err(Error::BadQuantization);
                }
                *requant_at = reserve(m.len() * 8 + doubles.len() * 8)?;
            }
        }
        layout.len = at.checked_add(CRC_LEN).ok_or(Error::CapacityExceeded)?;
        Ok(layout)
    }

    /// Bytes the encoded model takes.
    pub fn encoded_len(&self) -> Result<usize, Error> {
        Ok(self.layout()?.len)
    }

    /// Encodes the model into `out` and returns its length. Fails without writing a valid
    /// model if the graph is inconsistent or `out` is too small.
    pub fn write(&self, out: &mut [u8]) -> Result<usize, Error> {
        let (tensors, arena) = self.plan()?;
        let layout = self.layout()?;
        let len = layout.len;
        let out = out
            .get_mut(..len)
            .ok_or(Error::BufferTooSmall { needed: len })?;
        out.fill(0);

        let u32_of = |v: usize| u32::try_from(v).map_err(|_| Error::CapacityExceeded);
        put(out, 0, &MAGIC)?;
        // The lowest version that expresses the model: 2 only when it fuses ops.
        let version: u16 = if self.ops.iter().any(|op| op.fused_pool().is_some()) {
            VERSION
        } else {
            1
        };
        put(out, 4, &version.to_le_bytes())?;
        put(out, 6, &(HEADER_LEN as u16).to_le_bytes())?;
        put(out, 8, &u32_of(len)?.to_le_bytes())?;
        put(out, 12, &u32_of(arena)?.to_le_bytes())?;
        put(out, 16, &(tensors.len() as u16).to_le_bytes())?;
        put(out, 18, &(self.ops.len() as u16).to_le_bytes())?;
        put(out, 20, &self.input.to_le_bytes())?;
        put(out, 22, &self.output.to_le_bytes())?;
        let op_table = HEADER_LEN + tensors.len() * TENSOR_RECORD_LEN;
        put(out, 24, &u32_of(HEADER_LEN)?.to_le_bytes())?;
        put(out, 28, &u32_of(op_table)?.to_le_bytes())?;
        put(out, 32, &u32_of(layout.data_start)?.to_le_bytes())?;
        put(
            out,
            36,
            &u32_of(len - CRC_LEN - layout.data_start)?.to_le_bytes(),
        )?;

        let slots = layout.tensor_data.iter().zip(layout.tensor_scales.iter());
        for (t, (tensor, (&data_at, &scales_at))) in tensors.iter().zip(slots).enumerate() {
            let record = tensor.encode(data_at, scales_at)?;
            put(out, HEADER_LEN + t * TENSOR_RECORD_LEN, &record)?;
            for (k, s) in tensor.channel_scales.iter().enumerate() {
                put(out, scales_at + 4 * k, &s.to_le_bytes())?;
            }
            if let Some(data) = tensor.data {
                put(out, data_at, data)?;
            }
        }
        for (i, (op, &at)) in self.ops.iter().zip(layout.op_requant.iter()).enumerate() {
            put(out, op_table + i * OP_RECORD_LEN, &op.encode(at)?)?;
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
}

impl<'a> Graph<'a> for ModelBuilder<'a> {
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

/// The builder's graph with planned arena offsets, for checking the plan before writing.
struct Planned<'b, 'a> {
    builder: &'b ModelBuilder<'a>,
    tensors: &'b [Tensor<'a>],
}

impl<'a> Graph<'a> for Planned<'_, 'a> {
    fn tensor_count(&self) -> usize {
        self.tensors.len()
    }
    fn op_count(&self) -> usize {
        self.builder.ops.len()
    }
    fn tensor(&self, id: TensorId) -> Result<Tensor<'a>, Error> {
        self.tensors
            .get(usize::from(id))
            .copied()
            .ok_or(Error::BadTensorIndex(id))
    }
    fn op(&self, index: usize) -> Result<Op<'a>, Error> {
        self.builder.op(index)
    }
    fn input(&self) -> TensorId {
        self.builder.input
    }
    fn output(&self) -> TensorId {
        self.builder.output
    }
}
