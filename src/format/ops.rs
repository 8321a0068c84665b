//! Op records: what each layer computes and with which tensors and parameters.

use super::bytes::{cast_words, Record};
use super::tensor::{section_slice, to_u32};
use super::{TensorId, NO_TENSOR, OP_RECORD_LEN};
use crate::kernels::SoftmaxParams;
use crate::{Error, Padding};

/// The kind of an op, as stored in its record's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum OpKind {
    /// 2-D convolution.
    Conv2d = 1,
    /// Depthwise 2-D convolution.
    DepthwiseConv2d = 2,
    /// Max pooling.
    MaxPool = 3,
    /// Average pooling.
    AvgPool = 4,
    /// Fully connected (dense).
    FullyConnected = 5,
    /// Softmax over the innermost dimension.
    Softmax = 6,
    /// Reshape (and Flatten): a new shape over the same bytes, no copy.
    Reshape = 7,
    /// Element-wise addition of two activations (format version 3).
    Add = 8,
    /// An int8 → int8 function of each element, given by its 256 outputs (version 3).
    Lookup = 9,
    /// Mean over height and width (version 3).
    Mean = 10,
    /// Constant padding with the zero point (version 3).
    Pad = 11,
    /// Concatenation of several activations along one axis (version 3).
    Concatenation = 12,
    /// Element-wise product of two operands (version 3).
    Mul = 13,
}

impl OpKind {
    /// A short human-readable name.
    pub const fn name(self) -> &'static str {
        match self {
            OpKind::Conv2d => "Conv2D",
            OpKind::DepthwiseConv2d => "DepthwiseConv2D",
            OpKind::MaxPool => "MaxPool2D",
            OpKind::AvgPool => "AvgPool2D",
            OpKind::FullyConnected => "FullyConnected",
            OpKind::Softmax => "Softmax",
            OpKind::Reshape => "Reshape",
            OpKind::Add => "Add",
            OpKind::Lookup => "Lookup",
            OpKind::Mean => "Mean",
            OpKind::Pad => "Pad",
            OpKind::Concatenation => "Concatenation",
            OpKind::Mul => "Mul",
        }
    }

    /// True when this build has the op's kernel: its `op-…` cargo feature is on (all are by
    /// default; Reshape needs no kernel). A model with an op this build lacks is refused at
    /// load with [`Error::UnknownOp`], except a MaxPool2D fused into the Conv2D before it,
    /// which that convolution's kernel computes, and a Conv2D fused with its max pool, which
    /// `op-conv2d-pool` alone provides.
    pub const fn is_built(self) -> bool {
        match self {
            OpKind::Conv2d => cfg!(feature = "op-conv2d"),
            OpKind::DepthwiseConv2d => cfg!(feature = "op-depthwise-conv2d"),
            OpKind::MaxPool => cfg!(feature = "op-max-pool"),
            OpKind::AvgPool => cfg!(feature = "op-avg-pool"),
            OpKind::FullyConnected => cfg!(feature = "op-fully-connected"),
            OpKind::Softmax => cfg!(feature = "op-softmax"),
            OpKind::Reshape => true,
            OpKind::Add => cfg!(feature = "op-add"),
            OpKind::Lookup => cfg!(feature = "op-lookup"),
            OpKind::Mean => cfg!(feature = "op-mean"),
            OpKind::Pad => cfg!(feature = "op-pad"),
            OpKind::Concatenation => cfg!(feature = "op-concatenation"),
            OpKind::Mul => cfg!(feature = "op-mul"),
        }
    }

    /// True when this build can decode the op's record: its kernel is built, or (a max
    /// pool, a Conv2D) it may be fused into a kernel that is. [`check_graph`] then refuses a
    /// max pool or Conv2D that is decodable but not fused where its feature is off.
    ///
    /// [`check_graph`]: super::validate::check_graph
    const fn is_decodable(self) -> bool {
        match self {
            OpKind::MaxPool => true,
            OpKind::Conv2d => cfg!(feature = "op-conv2d-pool"),
            other => other.is_built(),
        }
    }

    /// `Ok` when [`OpKind::is_decodable`], else [`Error::UnknownOp`] with its code.
    #[inline(always)]
    fn require_decodable(self) -> Result<(), Error> {
        if self.is_decodable() {
            Ok(())
        } else {
            Err(Error::UnknownOp(self as u8))
        }
    }

    /// `Ok` when this build has the op's kernel ([`OpKind::is_built`]), else
    /// [`Error::UnknownOp`] with its code.
    #[inline(always)]
    pub(crate) fn require_built(self) -> Result<(), Error> {
        if self.is_built() {
            Ok(())
        } else {
            Err(Error::UnknownOp(self as u8))
        }
    }

    fn from_code(code: u8) -> Result<Self, Error> {
        Ok(match code {
            1 => OpKind::Conv2d,
            2 => OpKind::DepthwiseConv2d,
            3 => OpKind::MaxPool,
            4 => OpKind::AvgPool,
            5 => OpKind::FullyConnected,
            6 => OpKind::Softmax,
            7 => OpKind::Reshape,
            8 => OpKind::Add,
            9 => OpKind::Lookup,
            10 => OpKind::Mean,
            11 => OpKind::Pad,
            12 => OpKind::Concatenation,
            13 => OpKind::Mul,
            other => return Err(Error::UnknownOp(other)),
        })
    }
}

/// A convolution or depthwise convolution.
#[derive(Clone, Copy, Debug)]
pub struct ConvOp<'a> {
    /// int8 input activation `[1, H, W, C]`.
    pub input: TensorId,
    /// int8 filter: OHWI for a convolution, `[1, KH, KW, C·M]` for a depthwise one.
    pub filter: TensorId,
    /// int32 bias, one per output channel.
    pub bias: TensorId,
    /// int8 output activation.
    pub output: TensorId,
    /// Padding scheme.
    pub padding: Padding,
    /// Vertical stride.
    pub stride_h: u8,
    /// Horizontal stride.
    pub stride_w: u8,
    /// Output channels per input channel (depthwise only; 0 for a convolution).
    pub depth_multiplier: u16,
    /// Fused activation's lower clamp (quantized).
    pub act_min: i8,
    /// Fused activation's upper clamp (quantized).
    pub act_max: i8,
    /// Per-output-channel Q31 multipliers.
    pub multipliers: &'a [i32],
    /// Per-output-channel shifts (positive = left).
    pub shifts: &'a [i32],
    /// Format version 2, Conv2D only: the max pool that directly follows this convolution
    /// (the next op, a copy of its record). The interpreter then computes the pool's output
    /// directly and never stores this op's output tensor, which takes no arena bytes.
    pub fused_pool: Option<PoolOp>,
}

/// A max or average pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolOp {
    /// int8 input activation.
    pub input: TensorId,
    /// int8 output activation (same quantization as the input).
    pub output: TensorId,
    /// Padding scheme.
    pub padding: Padding,
    /// Window rows.
    pub kernel_h: u8,
    /// Window columns.
    pub kernel_w: u8,
    /// Vertical stride.
    pub stride_h: u8,
    /// Horizontal stride.
    pub stride_w: u8,
    /// Fused activation's lower clamp (quantized).
    pub act_min: i8,
    /// Fused activation's upper clamp (quantized).
    pub act_max: i8,
}

/// A fully connected layer.
#[derive(Clone, Copy, Debug)]
pub struct FullyConnectedOp<'a> {
    /// int8 input activation, any shape with as many elements as the filter has columns.
    pub input: TensorId,
    /// int8 weights `[outputs, inputs]`.
    pub filter: TensorId,
    /// int32 bias, one per output.
    pub bias: TensorId,
    /// int8 output activation.
    pub output: TensorId,
    /// Fused activation's lower clamp (quantized).
    pub act_min: i8,
    /// Fused activation's upper clamp (quantized).
    pub act_max: i8,
    /// Per-output Q31 multipliers.
    pub multipliers: &'a [i32],
    /// Per-output shifts (positive = left).
    pub shifts: &'a [i32],
    /// Per-output effective scales `input_scale · filter_scale / output_scale` in f64. When
    /// present the layer rescales as LiteRT's reference kernel does, `round(acc · scale)` in
    /// double precision, instead of with the fixed-point multipliers (which TFLite Micro and
    /// LiteRT's optimized kernels use); the two differ by one step on a few outputs.
    pub double_scales: &'a [f64],
}

/// A softmax over the innermost dimension (int8 output: scale 1/256, zero point −128).
#[derive(Clone, Copy, Debug)]
pub struct SoftmaxOp {
    /// int8 input activation.
    pub input: TensorId,
    /// int8 output activation.
    pub output: TensorId,
    /// Fixed-point parameters derived from beta and the input scale.
    pub params: SoftmaxParams,
}

/// An element-wise addition of two int8 activations (TFLite's ADD), each input rescaled to a
/// common scale before the sum is rescaled to the output's. One input may broadcast along
/// its size-1 dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddOp {
    /// First int8 input.
    pub input1: TensorId,
    /// Second int8 input.
    pub input2: TensorId,
    /// int8 output.
    pub output: TensorId,
    /// Fused activation's lower clamp (quantized).
    pub act_min: i8,
    /// Fused activation's upper clamp (quantized).
    pub act_max: i8,
    /// Left shift applied to both offset inputs before rescaling (TFLite: 20 for int8).
    pub left_shift: u8,
    /// Q31 multiplier of the first input.
    pub input1_multiplier: i32,
    /// Shift of the first input (positive = left; TFLite's convention, at most 0 here).
    pub input1_shift: i8,
    /// Q31 multiplier of the second input.
    pub input2_multiplier: i32,
    /// Shift of the second input.
    pub input2_shift: i8,
    /// Q31 multiplier of the sum.
    pub output_multiplier: i32,
    /// Shift of the sum.
    pub output_shift: i8,
}

/// An element-wise product of two int8 operands (TFLite's MUL): `clamp(MultiplyByQuantized
/// Multiplier((x₁ − z₁)(x₂ − z₂), multiplier, shift) + z_out, act_min, act_max)`. Either
/// operand may broadcast along its size-1 dimensions, and either may be a constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulOp {
    /// First operand.
    pub input1: TensorId,
    /// Second operand.
    pub input2: TensorId,
    /// int8 output.
    pub output: TensorId,
    /// Fused activation's lower clamp (quantized).
    pub act_min: i8,
    /// Fused activation's upper clamp (quantized).
    pub act_max: i8,
    /// Q31 multiplier of `s₁ · s₂ / s_out`.
    pub multiplier: i32,
    /// Its shift (positive = left).
    pub shift: i32,
}

/// The activations an op reads, in order.
#[derive(Clone, Copy, Debug)]
pub enum Inputs<'a> {
    /// One or two inputs (`len` of them).
    Fixed {
        /// The ids; only the first `len` count.
        ids: [TensorId; 2],
        /// How many.
        len: u8,
    },
    /// A list from the model (a concatenation's inputs).
    List(&'a [TensorId]),
}

impl<'a> Inputs<'a> {
    fn one(id: TensorId) -> Self {
        Inputs::Fixed {
            ids: [id, NO_TENSOR],
            len: 1,
        }
    }

    fn two(a: TensorId, b: TensorId) -> Self {
        Inputs::Fixed {
            ids: [a, b],
            len: 2,
        }
    }

    /// The tensor ids, in order.
    pub fn iter(&self) -> impl Iterator<Item = TensorId> + 'a {
        let (fixed, n_fixed, list): ([TensorId; 2], usize, &'a [TensorId]) = match *self {
            Inputs::Fixed { ids, len } => (ids, usize::from(len).min(2), &[]),
            // Only a concatenation has a list: without it the chain is the fixed part.
            Inputs::List(l) if cfg!(feature = "op-concatenation") => ([NO_TENSOR; 2], 0, l),
            Inputs::List(_) => ([NO_TENSOR; 2], 0, &[]),
        };
        fixed.into_iter().take(n_fixed).chain(list.iter().copied())
    }

    /// How many.
    pub fn len(&self) -> usize {
        match *self {
            Inputs::Fixed { len, .. } => usize::from(len).min(2),
            Inputs::List(l) => l.len(),
        }
    }

    /// True when there are none (no valid op).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `id` is one of them.
    pub fn contains(&self, id: TensorId) -> bool {
        self.iter().any(|t| t == id)
    }
}

/// The function a [`LookupOp`] tabulates (what it was converted from; the table alone
/// defines the op).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LookupFunction {
    /// Sigmoid (TFLite LOGISTIC).
    Logistic = 1,
    /// Hyperbolic tangent.
    Tanh = 2,
    /// `x · relu6(x + 3) / 6`.
    HardSwish = 3,
    /// `x` for `x ≥ 0`, `αx` below.
    LeakyRelu = 4,
    /// `max(x, 0)` with requantization.
    Relu = 5,
    /// `min(max(x, 0), 6)` with requantization.
    Relu6 = 6,
    /// `min(max(x, −1), 1)` with requantization.
    ReluN1To1 = 7,
    /// int8 → int8 requantization (TFLite QUANTIZE between two scales).
    Requantize = 8,
}

impl LookupFunction {
    /// The TFLite name of the op it came from.
    pub const fn name(self) -> &'static str {
        match self {
            LookupFunction::Logistic => "LOGISTIC",
            LookupFunction::Tanh => "TANH",
            LookupFunction::HardSwish => "HARD_SWISH",
            LookupFunction::LeakyRelu => "LEAKY_RELU",
            LookupFunction::Relu => "RELU",
            LookupFunction::Relu6 => "RELU6",
            LookupFunction::ReluN1To1 => "RELU_N1_TO_1",
            LookupFunction::Requantize => "QUANTIZE",
        }
    }

    fn from_code(code: u16) -> Result<Self, Error> {
        Ok(match code {
            1 => LookupFunction::Logistic,
            2 => LookupFunction::Tanh,
            3 => LookupFunction::HardSwish,
            4 => LookupFunction::LeakyRelu,
            5 => LookupFunction::Relu,
            6 => LookupFunction::Relu6,
            7 => LookupFunction::ReluN1To1,
            8 => LookupFunction::Requantize,
            _ => return Err(Error::InvalidParameter),
        })
    }
}

/// An element-wise int8 → int8 function given by its 256 outputs: `output[i] =
/// table[input[i] as u8]` (the table indexed by the input's two's-complement byte).
/// Activation functions and requantizations are converted to it bit-exactly, by running the
/// reference kernel on every possible input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LookupOp<'a> {
    /// int8 input.
    pub input: TensorId,
    /// int8 output, with the input's dims.
    pub output: TensorId,
    /// What the table computes.
    pub function: LookupFunction,
    /// The 256 outputs.
    pub table: &'a [i8; 256],
}

/// An int8 mean over height and width of a `[1, H, W, C]` input (TFLite MEAN over axes 1
/// and 2, Keras GlobalAveragePooling2D): output `[1, 1, 1, C]` or `[1, C]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeanOp {
    /// int8 input `[1, H, W, C]`.
    pub input: TensorId,
    /// int8 output, C elements.
    pub output: TensorId,
    /// Q31 multiplier of `input_scale / (output_scale · H · W)` as TFLite derives it.
    pub multiplier: i32,
    /// Its shift (positive = left).
    pub shift: i32,
}

/// Constant padding (TFLite PAD): the output is the input surrounded by the output's zero
/// point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PadOp {
    /// int8 input.
    pub input: TensorId,
    /// int8 output (same quantization).
    pub output: TensorId,
    /// Elements before and after each axis of the input extended to 4-D with leading ones.
    pub paddings: [[u16; 2]; 4],
}

/// Concatenation along one axis (TFLite CONCATENATION: every input shares the output's
/// quantization, so the op only moves bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcatOp<'a> {
    /// The int8 inputs, in order (at least one).
    pub inputs: &'a [TensorId],
    /// int8 output.
    pub output: TensorId,
    /// The axis, counted in the output's dims extended to 4-D with leading ones.
    pub axis: u8,
}

/// One op of a model.
#[derive(Clone, Copy, Debug)]
pub enum Op<'a> {
    /// 2-D convolution.
    Conv2d(ConvOp<'a>),
    /// Depthwise 2-D convolution.
    DepthwiseConv2d(ConvOp<'a>),
    /// Max pooling.
    MaxPool(PoolOp),
    /// Average pooling.
    AvgPool(PoolOp),
    /// Fully connected.
    FullyConnected(FullyConnectedOp<'a>),
    /// Softmax.
    Softmax(SoftmaxOp),
    /// Reshape: the output is the input's bytes under another shape (same arena offset).
    Reshape {
        /// Input activation.
        input: TensorId,
        /// Output activation, aliasing the input.
        output: TensorId,
    },
    /// Element-wise addition.
    Add(AddOp),
    /// Element-wise table look-up (activations, requantization).
    Lookup(LookupOp<'a>),
    /// Mean over height and width.
    Mean(MeanOp),
    /// Constant padding.
    Pad(PadOp),
    /// Concatenation.
    Concatenation(ConcatOp<'a>),
    /// Element-wise product.
    Mul(MulOp),
}

impl<'a> Op<'a> {
    /// What kind of op this is.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Conv2d(_) => OpKind::Conv2d,
            Op::DepthwiseConv2d(_) => OpKind::DepthwiseConv2d,
            Op::MaxPool(_) => OpKind::MaxPool,
            Op::AvgPool(_) => OpKind::AvgPool,
            Op::FullyConnected(_) => OpKind::FullyConnected,
            Op::Softmax(_) => OpKind::Softmax,
            Op::Reshape { .. } => OpKind::Reshape,
            Op::Add(_) => OpKind::Add,
            Op::Lookup(_) => OpKind::Lookup,
            Op::Mean(_) => OpKind::Mean,
            Op::Pad(_) => OpKind::Pad,
            Op::Concatenation(_) => OpKind::Concatenation,
            Op::Mul(_) => OpKind::Mul,
        }
    }

    /// Every activation the op reads, in order ([`Op::input`] is the first).
    pub fn inputs(&self) -> Inputs<'a> {
        match self {
            Op::Add(a) => Inputs::two(a.input1, a.input2),
            Op::Mul(m) => Inputs::two(m.input1, m.input2),
            Op::Concatenation(c) => Inputs::List(c.inputs),
            _ => Inputs::one(self.input()),
        }
    }

    /// The (first) activation the op reads.
    pub fn input(&self) -> TensorId {
        match self {
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => c.input,
            Op::MaxPool(p) | Op::AvgPool(p) => p.input,
            Op::FullyConnected(f) => f.input,
            Op::Softmax(s) => s.input,
            Op::Reshape { input, .. } => *input,
            Op::Add(a) => a.input1,
            Op::Lookup(l) => l.input,
            Op::Mean(m) => m.input,
            Op::Pad(p) => p.input,
            Op::Concatenation(c) => c.inputs.first().copied().unwrap_or(NO_TENSOR),
            Op::Mul(m) => m.input1,
        }
    }

    /// The activation the op writes.
    pub fn output(&self) -> TensorId {
        match self {
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => c.output,
            Op::MaxPool(p) | Op::AvgPool(p) => p.output,
            Op::FullyConnected(f) => f.output,
            Op::Softmax(s) => s.output,
            Op::Reshape { output, .. } => *output,
            Op::Add(a) => a.output,
            Op::Lookup(l) => l.output,
            Op::Mean(m) => m.output,
            Op::Pad(p) => p.output,
            Op::Concatenation(c) => c.output,
            Op::Mul(m) => m.output,
        }
    }

    /// Bytes the op keeps in the data section besides requantization tables: a look-up's
    /// table, a concatenation's input list (with the count stored in its record).
    pub(crate) fn payload(&self) -> Option<(&'a [u8], usize)> {
        match self {
            Op::Lookup(l) => Some((bytemuck::cast_slice(&l.table[..]), l.table.len())),
            Op::Concatenation(c) => Some((bytemuck::cast_slice(c.inputs), c.inputs.len())),
            _ => None,
        }
    }

    /// The constant filter and bias the op reads, if any.
    pub fn weights(&self) -> Option<(TensorId, TensorId)> {
        match self {
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => Some((c.filter, c.bias)),
            Op::FullyConnected(f) => Some((f.filter, f.bias)),
            _ => None,
        }
    }

    /// The fully connected layer's f64 rescale table (empty for every other op).
    pub fn double_scales(&self) -> &'a [f64] {
        match self {
            Op::FullyConnected(f) => f.double_scales,
            _ => &[],
        }
    }

    /// The max pool fused into this op (a version-2 Conv2D), if any.
    pub fn fused_pool(&self) -> Option<PoolOp> {
        match self {
            Op::Conv2d(c) => c.fused_pool,
            _ => None,
        }
    }

    /// The per-channel requantization tables, if any.
    pub fn requantization(&self) -> Option<(&'a [i32], &'a [i32])> {
        match self {
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => Some((c.multipliers, c.shifts)),
            Op::FullyConnected(f) => Some((f.multipliers, f.shifts)),
            _ => None,
        }
    }

    /// Decodes an op record; tensor indices and shapes are checked later against the model.
    pub(crate) fn decode(
        blob: &'a [u8],
        record: usize,
        data_section: core::ops::Range<usize>,
    ) -> Result<Self, Error> {
        let r = Record::<OP_RECORD_LEN>::at(blob, record)?;
        let kind = OpKind::from_code(r.u8::<0>())?;
        // An op this build cannot run is refused before its record is read, so that the
        // decoding and checks of its fields are not linked either.
        kind.require_decodable()?;
        let padding = padding_of(r.u8::<1>())?;
        let act_min = r.i8::<2>();
        let act_max = r.i8::<3>();
        let input = r.u16::<4>();
        let output = r.u16::<6>();
        let filter = r.u16::<8>();
        let bias = r.u16::<10>();
        let stride_h = r.u8::<12>();
        let stride_w = r.u8::<13>();
        let kernel_h = r.u8::<14>();
        let kernel_w = r.u8::<15>();
        let depth_multiplier = r.u16::<16>();
        let flags = r.u16::<18>();
        let requant_offset = r.usize::<20>()?;
        let requant_count = r.usize::<24>()?;
        let p0 = r.i32::<28>();
        let p1 = r.i32::<32>();
        let p2 = r.i32::<36>();
        // Each arm names its kind as a constant, so that a build without the op's feature
        // drops the decoder behind it.
        match kind {
            OpKind::Add if OpKind::Add.is_built() => return decode_add(&r),
            OpKind::Mul if OpKind::Mul.is_built() => return decode_mul(&r),
            OpKind::Lookup if OpKind::Lookup.is_built() => {
                return decode_data_op(OpKind::Lookup, &r, blob, data_section)
            }
            OpKind::Mean if OpKind::Mean.is_built() => {
                return decode_data_op(OpKind::Mean, &r, blob, data_section)
            }
            OpKind::Pad if OpKind::Pad.is_built() => {
                return decode_data_op(OpKind::Pad, &r, blob, data_section)
            }
            OpKind::Concatenation if OpKind::Concatenation.is_built() => {
                return decode_data_op(OpKind::Concatenation, &r, blob, data_section)
            }
            OpKind::Add
            | OpKind::Mul
            | OpKind::Lookup
            | OpKind::Mean
            | OpKind::Pad
            | OpKind::Concatenation => return Err(Error::UnknownOp(kind as u8)),
            _ => {}
        }
        let has_double_scales = flags == FLAG_DOUBLE_SCALES && kind == OpKind::FullyConnected;
        let fused = flags == FLAG_FUSED_POOL && kind == OpKind::Conv2d;
        if flags != 0 && !has_double_scales && !fused {
            return Err(Error::BadHeader);
        }
        let fused_pool = if fused {
            // Bytes 14, 15 and 40..48 describe the pool (format version 2).
            let pool = PoolOp {
                input: output,
                output: r.u16::<46>(),
                padding: padding_of(r.u8::<42>())?,
                kernel_h: r.u8::<14>(),
                kernel_w: r.u8::<15>(),
                stride_h: r.u8::<40>(),
                stride_w: r.u8::<41>(),
                act_min: r.i8::<44>(),
                act_max: r.i8::<45>(),
            };
            if r.u8::<43>() != 0
                || pool.kernel_h == 0
                || pool.kernel_w == 0
                || pool.stride_h == 0
                || pool.stride_w == 0
                || pool.act_min > pool.act_max
            {
                return Err(Error::InvalidParameter);
            }
            Some(pool)
        } else {
            if r.u32::<40>() != 0 || r.u32::<44>() != 0 {
                return Err(Error::BadHeader);
            }
            None
        };
        if act_min > act_max {
            return Err(Error::InvalidParameter);
        }
        let uses = Fields {
            weights: matches!(
                kind,
                OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::FullyConnected
            ),
            window: matches!(
                kind,
                OpKind::Conv2d | OpKind::DepthwiseConv2d | OpKind::MaxPool | OpKind::AvgPool
            ),
            kernel: matches!(kind, OpKind::MaxPool | OpKind::AvgPool) || fused,
            depth_multiplier: kind == OpKind::DepthwiseConv2d,
            softmax: kind == OpKind::Softmax,
        };
        // A field an op does not use must be zero (or "no tensor"), so that no byte of a
        // record is ignored.
        let unused_is_zero = (uses.weights
            || (filter == NO_TENSOR
                && bias == NO_TENSOR
                && requant_offset == 0
                && requant_count == 0))
            && (uses.window || (padding == Padding::Valid && stride_h == 0 && stride_w == 0))
            && (uses.kernel || (kernel_h == 0 && kernel_w == 0))
            && (uses.depth_multiplier || depth_multiplier == 0)
            && (uses.softmax || (p0 == 0 && p1 == 0 && p2 == 0))
            && (uses.window
                || kind == OpKind::FullyConnected
                || (act_min == -128 && act_max == 127));
        if !unused_is_zero {
            return Err(Error::InvalidParameter);
        }
        if uses.window && (stride_h == 0 || stride_w == 0) {
            return Err(Error::InvalidParameter);
        }
        if uses.kernel && !fused && (kernel_h == 0 || kernel_w == 0) {
            return Err(Error::InvalidParameter);
        }
        let (multipliers, shifts) = if uses.weights {
            let table = section_slice(
                blob,
                &data_section,
                requant_offset,
                requant_count
                    .checked_mul(8)
                    .ok_or(Error::OffsetOutOfRange)?,
            )?;
            let words: &[i32] = cast_words(table)?;
            let (m, s) = words.split_at(requant_count);
            if m.iter().any(|&m| m < 0) || s.iter().any(|&s| !(-31..=30).contains(&s)) {
                return Err(Error::BadQuantization);
            }
            (m, s)
        } else {
            (&[][..], &[][..])
        };
        let double_scales: &[f64] = if has_double_scales {
            let at = requant_offset
                .checked_add(requant_count * 8)
                .ok_or(Error::OffsetOutOfRange)?;
            let table = section_slice(blob, &data_section, at, requant_count * 8)?;
            let scales: &[f64] = cast_words(table)?;
            if scales.iter().any(|s| !s.is_finite() || *s <= 0.0) {
                return Err(Error::BadQuantization);
            }
            scales
        } else {
            &[]
        };
        let conv = ConvOp {
            input,
            filter,
            bias,
            output,
            padding,
            stride_h,
            stride_w,
            depth_multiplier,
            act_min,
            act_max,
            multipliers,
            shifts,
            fused_pool,
        };
        let pool = PoolOp {
            input,
            output,
            padding,
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
            act_min,
            act_max,
        };
        Ok(match kind {
            OpKind::Conv2d => Op::Conv2d(conv),
            OpKind::DepthwiseConv2d => {
                if depth_multiplier == 0 {
                    return Err(Error::InvalidParameter);
                }
                Op::DepthwiseConv2d(conv)
            }
            OpKind::MaxPool => Op::MaxPool(pool),
            OpKind::AvgPool => Op::AvgPool(pool),
            OpKind::FullyConnected => Op::FullyConnected(FullyConnectedOp {
                input,
                filter,
                bias,
                output,
                act_min,
                act_max,
                multipliers,
                shifts,
                double_scales,
            }),
            OpKind::Softmax => Op::Softmax(SoftmaxOp {
                input,
                output,
                params: SoftmaxParams {
                    input_multiplier: p0,
                    input_left_shift: p1,
                    diff_min: p2,
                },
            }),
            OpKind::Reshape => Op::Reshape { input, output },
            OpKind::Add
            | OpKind::Mul
            | OpKind::Lookup
            | OpKind::Mean
            | OpKind::Pad
            | OpKind::Concatenation => return Err(Error::UnknownOp(kind as u8)),
        })
    }

    /// Encodes the record; `requant_offset` is where the writer put the op's tables.
    pub(crate) fn encode(&self, requant_offset: usize) -> Result<[u8; OP_RECORD_LEN], Error> {
        let mut r = [0u8; OP_RECORD_LEN];
        r[0] = self.kind() as u8;
        r[2] = (-128i8) as u8;
        r[3] = 127;
        r[4..6].copy_from_slice(&self.input().to_le_bytes());
        r[6..8].copy_from_slice(&self.output().to_le_bytes());
        r[8..10].copy_from_slice(&NO_TENSOR.to_le_bytes());
        r[10..12].copy_from_slice(&NO_TENSOR.to_le_bytes());
        let padding_code = |p: Padding| match p {
            Padding::Valid => 0u8,
            Padding::Same => 1u8,
        };
        match self {
            Op::Conv2d(c) | Op::DepthwiseConv2d(c) => {
                r[1] = padding_code(c.padding);
                r[2] = c.act_min as u8;
                r[3] = c.act_max as u8;
                r[8..10].copy_from_slice(&c.filter.to_le_bytes());
                r[10..12].copy_from_slice(&c.bias.to_le_bytes());
                r[12] = c.stride_h;
                r[13] = c.stride_w;
                r[16..18].copy_from_slice(&c.depth_multiplier.to_le_bytes());
                if let (Op::Conv2d(_), Some(p)) = (self, c.fused_pool) {
                    r[14] = p.kernel_h;
                    r[15] = p.kernel_w;
                    r[18..20].copy_from_slice(&FLAG_FUSED_POOL.to_le_bytes());
                    r[40] = p.stride_h;
                    r[41] = p.stride_w;
                    r[42] = padding_code(p.padding);
                    r[44] = p.act_min as u8;
                    r[45] = p.act_max as u8;
                    r[46..48].copy_from_slice(&p.output.to_le_bytes());
                }
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                r[1] = padding_code(p.padding);
                r[2] = p.act_min as u8;
                r[3] = p.act_max as u8;
                r[12] = p.stride_h;
                r[13] = p.stride_w;
                r[14] = p.kernel_h;
                r[15] = p.kernel_w;
            }
            Op::FullyConnected(f) => {
                r[2] = f.act_min as u8;
                r[3] = f.act_max as u8;
                r[8..10].copy_from_slice(&f.filter.to_le_bytes());
                r[10..12].copy_from_slice(&f.bias.to_le_bytes());
                if !f.double_scales.is_empty() {
                    r[18..20].copy_from_slice(&FLAG_DOUBLE_SCALES.to_le_bytes());
                }
            }
            Op::Softmax(s) => {
                r[28..32].copy_from_slice(&s.params.input_multiplier.to_le_bytes());
                r[32..36].copy_from_slice(&s.params.input_left_shift.to_le_bytes());
                r[36..40].copy_from_slice(&s.params.diff_min.to_le_bytes());
            }
            Op::Reshape { .. } => {}
            Op::Add(a) => {
                r[2] = a.act_min as u8;
                r[3] = a.act_max as u8;
                r[8..10].copy_from_slice(&a.input2.to_le_bytes());
                r[28..32].copy_from_slice(&a.input1_multiplier.to_le_bytes());
                r[32..36].copy_from_slice(&a.input2_multiplier.to_le_bytes());
                r[36..40].copy_from_slice(&a.output_multiplier.to_le_bytes());
                r[40] = a.input1_shift as u8;
                r[41] = a.input2_shift as u8;
                r[42] = a.output_shift as u8;
                r[43] = a.left_shift;
            }
            Op::Lookup(l) => {
                r[16..18].copy_from_slice(&(l.function as u16).to_le_bytes());
            }
            Op::Mean(m) => {
                r[28..32].copy_from_slice(&m.multiplier.to_le_bytes());
                r[32..36].copy_from_slice(&m.shift.to_le_bytes());
            }
            Op::Pad(p) => {
                for (slot, v) in r[28..44]
                    .chunks_exact_mut(2)
                    .zip(p.paddings.iter().flatten())
                {
                    slot.copy_from_slice(&v.to_le_bytes());
                }
            }
            Op::Concatenation(c) => r[12] = c.axis,
            Op::Mul(m) => {
                r[2] = m.act_min as u8;
                r[3] = m.act_max as u8;
                r[8..10].copy_from_slice(&m.input2.to_le_bytes());
                r[28..32].copy_from_slice(&m.multiplier.to_le_bytes());
                r[32..36].copy_from_slice(&m.shift.to_le_bytes());
            }
        }
        if let Some((_, count)) = self.payload() {
            r[20..24].copy_from_slice(&to_u32(requant_offset)?.to_le_bytes());
            r[24..28].copy_from_slice(&to_u32(count)?.to_le_bytes());
        }
        if let Some((m, _)) = self.requantization() {
            r[20..24].copy_from_slice(&to_u32(requant_offset)?.to_le_bytes());
            r[24..28].copy_from_slice(&to_u32(m.len())?.to_le_bytes());
        }
        Ok(r)
    }
}

/// Largest left shift an Add may apply to its offset inputs: TFLite's int8 value, which keeps
/// `(x - zero point) << shift` (at most 255 · 2^20) and the sum of two such terms inside i32.
pub const MAX_ADD_LEFT_SHIFT: u8 = 20;

/// Decodes an Add record (version 3): the second input sits in the filter slot, the
/// rescaling parameters in bytes 28..44; every other field is zero or "no tensor".
fn decode_add(r: &Record<'_, OP_RECORD_LEN>) -> Result<Op<'static>, Error> {
    let add = AddOp {
        input1: r.u16::<4>(),
        input2: r.u16::<8>(),
        output: r.u16::<6>(),
        act_min: r.i8::<2>(),
        act_max: r.i8::<3>(),
        left_shift: r.u8::<43>(),
        input1_multiplier: r.i32::<28>(),
        input1_shift: r.i8::<40>(),
        input2_multiplier: r.i32::<32>(),
        input2_shift: r.i8::<41>(),
        output_multiplier: r.i32::<36>(),
        output_shift: r.i8::<42>(),
    };
    let unused_is_zero = r.u8::<1>() == 0
        && r.u16::<10>() == NO_TENSOR
        && r.u32::<12>() == 0
        && r.u16::<16>() == 0
        && r.u16::<18>() == 0
        && r.u32::<20>() == 0
        && r.u32::<24>() == 0
        && r.u32::<44>() == 0;
    if !unused_is_zero || add.act_min > add.act_max || add.left_shift > MAX_ADD_LEFT_SHIFT {
        return Err(Error::InvalidParameter);
    }
    let multipliers = [
        add.input1_multiplier,
        add.input2_multiplier,
        add.output_multiplier,
    ];
    let shifts = [add.input1_shift, add.input2_shift, add.output_shift];
    if multipliers.iter().any(|&m| m < 0) || shifts.iter().any(|&s| !(-31..=30).contains(&s)) {
        return Err(Error::BadQuantization);
    }
    Ok(Op::Add(add))
}

/// Decodes a Mul record (version 3): the second operand in the filter slot, multiplier and
/// shift in bytes 28..36; every other field is zero or "no tensor".
fn decode_mul(r: &Record<'_, OP_RECORD_LEN>) -> Result<Op<'static>, Error> {
    let mul = MulOp {
        input1: r.u16::<4>(),
        input2: r.u16::<8>(),
        output: r.u16::<6>(),
        act_min: r.i8::<2>(),
        act_max: r.i8::<3>(),
        multiplier: r.i32::<28>(),
        shift: r.i32::<32>(),
    };
    let unused_is_zero = r.u8::<1>() == 0
        && r.u16::<10>() == NO_TENSOR
        && r.u32::<12>() == 0
        && r.u16::<16>() == 0
        && r.u16::<18>() == 0
        && r.u32::<20>() == 0
        && r.u32::<24>() == 0
        && r.u32::<36>() == 0
        && r.u32::<40>() == 0
        && r.u32::<44>() == 0;
    if !unused_is_zero || mul.act_min > mul.act_max {
        return Err(Error::InvalidParameter);
    }
    if mul.multiplier < 0 || !(-31..=30).contains(&mul.shift) {
        return Err(Error::BadQuantization);
    }
    Ok(Op::Mul(mul))
}

/// Decodes the version-3 ops whose record holds only tensors and a few parameters, and
/// whose data (a table, a list of inputs) sits in the data section at bytes 20..28.
fn decode_data_op<'a>(
    kind: OpKind,
    r: &Record<'_, OP_RECORD_LEN>,
    blob: &'a [u8],
    data_section: core::ops::Range<usize>,
) -> Result<Op<'a>, Error> {
    let (input, output) = (r.u16::<4>(), r.u16::<6>());
    let (offset, count) = (r.usize::<20>()?, r.usize::<24>()?);
    let common_zero = r.u8::<1>() == 0
        && r.i8::<2>() == i8::MIN
        && r.i8::<3>() == i8::MAX
        && r.u16::<8>() == NO_TENSOR
        && r.u16::<10>() == NO_TENSOR
        && r.u8::<13>() == 0
        && r.u16::<14>() == 0
        && r.u16::<18>() == 0;
    let axis = r.u8::<12>();
    let function = r.u16::<16>();
    // Bytes 28..48 as they must be for the kinds that store nothing there.
    let tail_zero = r.u32::<28>() == 0
        && r.u32::<32>() == 0
        && r.u32::<36>() == 0
        && r.u32::<40>() == 0
        && r.u32::<44>() == 0;
    let no_data = offset == 0 && count == 0;
    let ok = common_zero
        && match kind {
            OpKind::Lookup => axis == 0 && tail_zero && count == 256,
            OpKind::Mean => {
                axis == 0
                    && function == 0
                    && no_data
                    && r.u32::<36>() == 0
                    && r.u32::<40>() == 0
                    && r.u32::<44>() == 0
            }
            OpKind::Pad => axis == 0 && function == 0 && no_data && r.u32::<44>() == 0,
            _ => axis <= 3 && function == 0 && tail_zero && count >= 1,
        };
    if !ok {
        return Err(Error::InvalidParameter);
    }
    Ok(match kind {
        OpKind::Lookup => {
            let bytes = section_slice(blob, &data_section, offset, 256)?;
            let table: &[i8] = bytemuck::cast_slice(bytes);
            Op::Lookup(LookupOp {
                input,
                output,
                function: LookupFunction::from_code(function)?,
                table: table.try_into().map_err(|_| Error::OffsetOutOfRange)?,
            })
        }
        OpKind::Mean => {
            let (multiplier, shift) = (r.i32::<28>(), r.i32::<32>());
            if multiplier < 0 || !(-31..=30).contains(&shift) {
                return Err(Error::BadQuantization);
            }
            Op::Mean(MeanOp {
                input,
                output,
                multiplier,
                shift,
            })
        }
        OpKind::Pad => {
            let v = [
                r.u16::<28>(),
                r.u16::<30>(),
                r.u16::<32>(),
                r.u16::<34>(),
                r.u16::<36>(),
                r.u16::<38>(),
                r.u16::<40>(),
                r.u16::<42>(),
            ];
            Op::Pad(PadOp {
                input,
                output,
                paddings: [[v[0], v[1]], [v[2], v[3]], [v[4], v[5]], [v[6], v[7]]],
            })
        }
        _ => {
            let bytes = section_slice(
                blob,
                &data_section,
                offset,
                count.checked_mul(2).ok_or(Error::OffsetOutOfRange)?,
            )?;
            let inputs: &[TensorId] = cast_words(bytes)?;
            if inputs.first() != Some(&input) {
                return Err(Error::InvalidParameter);
            }
            Op::Concatenation(ConcatOp {
                inputs,
                output,
                axis,
            })
        }
    })
}

/// Op flag: a fully connected layer's requantization table is followed by f64 scales.
const FLAG_DOUBLE_SCALES: u16 = 1;
/// Op flag (format version 2): a Conv2D op is fused with the max pool that follows it.
pub(crate) const FLAG_FUSED_POOL: u16 = 2;

fn padding_of(code: u8) -> Result<Padding, Error> {
    match code {
        0 => Ok(Padding::Valid),
        1 => Ok(Padding::Same),
        _ => Err(Error::InvalidParameter),
    }
}

struct Fields {
    weights: bool,
    window: bool,
    kernel: bool,
    depth_multiplier: bool,
    softmax: bool,
}
