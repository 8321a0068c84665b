//! IR → fixnet model bytes.
//!
//! Everything TFLite's kernels compute in `Prepare` is computed here, with TFLite's exact
//! arithmetic, so that the int8 kernels see the very multipliers, shifts and clamp ranges
//! TFLite's reference kernels see:
//!
//! * convolution, depthwise convolution and per-channel fully connected, per output channel
//!   (`PopulateConvolutionQuantizationParams`, `fully_connected.cc` per-channel path):
//!   `QuantizeMultiplier((double)input_scale * (double)filter_scale[c] / (double)output_scale)`
//!   — a per-tensor convolution broadcasts its one filter scale;
//! * per-tensor fully connected (`GetQuantizedConvolutionMultipler`): the product of the two
//!   scales is taken in *float*, then widened:
//!   `QuantizeMultiplier((double)(input_scale * filter_scale) / (double)output_scale)`;
//! * fused activations (`CalculateActivationRangeQuantized`): `zero_point +
//!   (int32)round(f / scale)` in float for f = 0 and 6, intersected with [−128, 127];
//! * softmax (`SoftmaxPrepare`, reference kernel): `PreprocessSoftmaxScaling(beta, scale, 5)`
//!   and `diff_min = −CalculateInputRadius(5, left_shift)`.

use crate::ir::{
    Activation, Conv, Elementwise, FullyConnected, Graph, Layer, Pool, TensorId, TensorInfo,
};
use anyhow::{anyhow, bail, ensure, Context, Result};
use fixnet::float::Activation as CoreActivation;
use fixnet::format::{
    AddOp, ConcatOp, ConvOp, Dims, FullyConnectedOp, LookupFunction, LookupOp, MeanOp, MulOp, Op,
    PadOp, PoolOp, SoftmaxOp, Tensor, TensorId as CoreId,
};
use fixnet::kernels::{
    AddParams, HardSwishParams, LeakyReluParams, Lut, MeanParams, MulParams, ReluParams,
    RequantizeParams, SoftmaxParams,
};
use fixnet::quant;

/// TFLite's int8 softmax works on input differences with 5 integer bits
/// (`kScaledDiffIntegerBits`).
const SOFTMAX_INTEGER_BITS: i32 = 5;

/// Requantization of one layer: one `(multiplier, shift)` per output channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Requant {
    /// Q31 significands.
    pub multipliers: Vec<i32>,
    /// Power-of-two exponents (positive = left).
    pub shifts: Vec<i32>,
}

/// Per-channel multipliers of a convolution or depthwise convolution (TFLite's
/// `PopulateConvolutionQuantizationParams`: double arithmetic, one filter scale broadcast
/// when quantized per tensor).
pub fn conv_requant(
    input_scale: f32,
    filter_scales: &[f32],
    output_scale: f32,
    channels: usize,
) -> Requant {
    let mut r = Requant::default();
    for c in 0..channels {
        let s = if filter_scales.len() == 1 {
            filter_scales[0]
        } else {
            filter_scales[c]
        };
        let (m, shift) = quant::conv_multiplier(input_scale, s, output_scale);
        r.multipliers.push(m);
        r.shifts.push(shift);
    }
    r
}

/// Multipliers of a fully connected layer. TFLite takes the per-channel path (double
/// arithmetic, as a convolution) only when there is more than one filter scale; with one
/// scale it uses `GetQuantizedConvolutionMultipler`, whose scale product is a float.
pub fn fully_connected_requant(
    input_scale: f32,
    filter_scales: &[f32],
    output_scale: f32,
    outputs: usize,
) -> Requant {
    if filter_scales.len() > 1 {
        return conv_requant(input_scale, filter_scales, output_scale, outputs);
    }
    let s = filter_scales.first().copied().unwrap_or(0.0);
    let (m, shift) = quant::fully_connected_per_tensor_multiplier(input_scale, s, output_scale);
    Requant {
        multipliers: vec![m; outputs],
        shifts: vec![shift; outputs],
    }
}

/// The int8 clamp range of a fused activation on an output with this quantization
/// (TFLite's `CalculateActivationRangeQuantized`).
pub fn activation_range(activation: Activation, output: &TensorInfo) -> Result<(i8, i8)> {
    let (lo, hi) =
        quant::activation_range_i8(core_activation(activation), output.scale, output.zero_point);
    ensure!(
        lo <= hi,
        "fused {} on output scale {} zero point {} leaves no int8 value",
        activation.name(),
        output.scale,
        output.zero_point
    );
    Ok((lo, hi))
}

/// Softmax parameters exactly as TFLite's reference `SoftmaxPrepare` derives them
/// (`PreprocessSoftmaxScaling(beta, input_scale, 5)`, `diff_min = −CalculateInputRadius`);
/// the core's `SoftmaxParams::new` is the single implementation, so its kernel and this
/// converter cannot disagree.
pub fn softmax_params(beta: f32, input_scale: f32) -> Result<SoftmaxParams> {
    SoftmaxParams::new(beta, input_scale).map_err(|_| {
        let real = quant::softmax_real_multiplier(
            f64::from(beta),
            f64::from(input_scale),
            SOFTMAX_INTEGER_BITS,
        );
        anyhow!(
            "softmax beta {beta} with input scale {input_scale} gives multiplier {real}, which TFLite requires to be above 1"
        )
    })
}

/// What each layer needs to own so that the builder, which borrows, can point at it.
#[derive(Default)]
struct Owned {
    requant: Requant,
    act: (i8, i8),
    filter_scales: Vec<f32>,
    double_scales: Vec<f64>,
    softmax: Option<SoftmaxParams>,
    add: Option<AddParams>,
    /// A look-up op's 256 outputs.
    table: Vec<i8>,
    /// A mean's or a mul's multiplier and shift.
    rescale: Option<(i32, i32)>,
}

/// Convert-time rewrites [`lower_with`] may apply.
#[derive(Clone, Copy, Debug)]
pub struct LowerOptions {
    /// Fuse each Conv2D with the MaxPool2D that alone reads its output (format version 2):
    /// the interpreter then computes the pool's output directly and the full-resolution
    /// convolution output takes no arena bytes. Outputs are bit-identical; training cannot
    /// backpropagate through a fused pair, so convert with `fuse: false` to fine-tune
    /// convolutions on the device.
    pub fuse: bool,
}

impl Default for LowerOptions {
    fn default() -> Self {
        LowerOptions { fuse: true }
    }
}

/// Lowers a graph to fixnet model bytes with the default options (fusion on).
pub fn lower(graph: &Graph) -> Result<Vec<u8>> {
    lower_with(graph, &LowerOptions::default())
}

/// Layer `i` is a Conv2D whose output only the MaxPool2D right after it reads, and the
/// optimized fused kernel takes its size.
fn fusable(graph: &Graph, i: usize) -> bool {
    let (Some(Layer::Conv2d(c)), Some(Layer::MaxPool(p))) =
        (graph.layers.get(i), graph.layers.get(i + 1))
    else {
        return false;
    };
    let readers = graph
        .layers
        .iter()
        .filter(|l| l.inputs().contains(&c.output))
        .count();
    let taps: usize = c.filter.shape.iter().skip(1).product();
    let channels = c.filter.shape.first().copied().unwrap_or(0);
    p.input == c.output
        && readers == 1
        && graph.output != c.output
        && fixnet::kernels::fast::conv2d_pool::supported(taps, channels)
}

/// Lowers a graph to fixnet model bytes.
pub fn lower_with(graph: &Graph, options: &LowerOptions) -> Result<Vec<u8>> {
    graph.validate()?;
    let owned = graph
        .layers
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            prepare(graph, layer)
                .and_then(|owned| check_quantization(graph, layer, owned))
                .with_context(|| format!("layer {i} ({})", layer.name()))
        })
        .collect::<Result<Vec<_>>>()?;

    let mut b = Parts::default();
    let mut ids: Vec<Option<CoreId>> = vec![None; graph.tensors.len()];
    // Constant operands: int8 values with the tensor's own quantization.
    for (&id, values) in &graph.constants {
        let t = graph.tensor(id)?;
        let dims = dims(&t.shape).with_context(|| format!("constant '{}'", t.name))?;
        ids[id] = Some(b.add_tensor(Tensor {
            zero_point: t.zero_point,
            scale: t.scale,
            ..Tensor::weights(dims, values, &[], 0)
        })?);
    }
    let mut activation = |b: &mut Parts<'_>, id: TensorId| -> Result<CoreId> {
        if let Some(core) = ids[id] {
            return Ok(core);
        }
        let t = graph.tensor(id)?;
        let dims = dims(&t.shape).with_context(|| format!("tensor '{}'", t.name))?;
        let core = b.add_tensor(Tensor::activation(dims, t.scale, t.zero_point))?;
        ids[id] = Some(core);
        Ok(core)
    };
    let input = activation(&mut b, graph.input)?;
    // A concatenation's input list lives in the model's data section: collect the lists
    // first, so that the ops can borrow them.
    let mut lists: Vec<Vec<CoreId>> = Vec::with_capacity(graph.layers.len());
    for layer in &graph.layers {
        let list = match layer {
            Layer::Concatenation { inputs, .. } => inputs
                .iter()
                .map(|&id| activation(&mut b, id))
                .collect::<Result<_>>()?,
            _ => Vec::new(),
        };
        lists.push(list);
    }
    for (i, (layer, own)) in graph.layers.iter().zip(&owned).enumerate() {
        let ctx = || format!("layer {i} ({})", layer.name());
        let x = activation(&mut b, layer.input()).with_context(ctx)?;
        let x2 = match layer {
            Layer::Add { input2, .. } | Layer::Mul { input2, .. } => {
                Some(activation(&mut b, *input2).with_context(ctx)?)
            }
            _ => None,
        };
        let y = activation(&mut b, layer.output()).with_context(ctx)?;
        let op = match layer {
            Layer::Conv2d(c) | Layer::DepthwiseConv2d(c) => {
                let (filter, bias) = add_weights(
                    &mut b,
                    &c.filter.shape,
                    &c.filter.data,
                    &own.filter_scales,
                    conv_axis(layer),
                    &c.bias,
                    graph.tensor(c.input)?.scale,
                )
                .with_context(ctx)?;
                let conv = ConvOp {
                    input: x,
                    filter,
                    bias,
                    output: y,
                    padding: c.padding,
                    stride_h: small(c.stride_h, "stride").with_context(ctx)?,
                    stride_w: small(c.stride_w, "stride").with_context(ctx)?,
                    depth_multiplier: depth_multiplier(graph, layer, c).with_context(ctx)?,
                    act_min: own.act.0,
                    act_max: own.act.1,
                    multipliers: &own.requant.multipliers,
                    shifts: &own.requant.shifts,
                    fused_pool: None,
                };
                let conv = match graph.layers.get(i + 1) {
                    Some(Layer::MaxPool(p)) if options.fuse && fusable(graph, i) => {
                        let z = activation(&mut b, p.output).with_context(ctx)?;
                        let act = owned[i + 1].act;
                        ConvOp {
                            fused_pool: Some(pool_op(p, y, z, act).with_context(ctx)?),
                            ..conv
                        }
                    }
                    _ => conv,
                };
                if matches!(layer, Layer::Conv2d(_)) {
                    Op::Conv2d(conv)
                } else {
                    Op::DepthwiseConv2d(conv)
                }
            }
            Layer::MaxPool(p) | Layer::AvgPool(p) => {
                let pool = pool_op(p, x, y, own.act).with_context(ctx)?;
                if matches!(layer, Layer::MaxPool(_)) {
                    Op::MaxPool(pool)
                } else {
                    Op::AvgPool(pool)
                }
            }
            Layer::FullyConnected(f) => {
                let (filter, bias) = add_weights(
                    &mut b,
                    &f.weights.shape,
                    &f.weights.data,
                    &own.filter_scales,
                    0,
                    &f.bias,
                    graph.tensor(f.input)?.scale,
                )
                .with_context(ctx)?;
                Op::FullyConnected(FullyConnectedOp {
                    input: x,
                    filter,
                    bias,
                    output: y,
                    act_min: own.act.0,
                    act_max: own.act.1,
                    multipliers: &own.requant.multipliers,
                    shifts: &own.requant.shifts,
                    double_scales: &own.double_scales,
                })
            }
            Layer::Softmax { .. } => Op::Softmax(SoftmaxOp {
                input: x,
                output: y,
                params: own.softmax.context("softmax parameters missing")?,
            }),
            Layer::Reshape { .. } => Op::Reshape {
                input: x,
                output: y,
            },
            Layer::Elementwise { function, .. } => Op::Lookup(LookupOp {
                input: x,
                output: y,
                function: match function {
                    Elementwise::Logistic => LookupFunction::Logistic,
                    Elementwise::Tanh => LookupFunction::Tanh,
                    Elementwise::HardSwish => LookupFunction::HardSwish,
                    Elementwise::Requantize => LookupFunction::Requantize,
                    Elementwise::Relu => LookupFunction::Relu,
                    Elementwise::Relu6 => LookupFunction::Relu6,
                    Elementwise::ReluN1To1 => LookupFunction::ReluN1To1,
                    Elementwise::LeakyRelu { .. } => LookupFunction::LeakyRelu,
                },
                table: own
                    .table
                    .as_slice()
                    .try_into()
                    .context("look-up table missing")?,
            }),
            Layer::Mean { .. } => {
                let (multiplier, shift) = own.rescale.context("mean parameters missing")?;
                Op::Mean(MeanOp {
                    input: x,
                    output: y,
                    multiplier,
                    shift,
                })
            }
            Layer::Pad { paddings, .. } => {
                let mut p = [[0u16; 2]; 4];
                for (dst, src) in p.iter_mut().flatten().zip(paddings.iter().flatten()) {
                    *dst = u16::try_from(*src)
                        .with_context(|| format!("padding {src} is too large (at most 65,535)"))?;
                }
                Op::Pad(PadOp {
                    input: x,
                    output: y,
                    paddings: p,
                })
            }
            Layer::Concatenation { axis, .. } => Op::Concatenation(ConcatOp {
                inputs: &lists[i],
                output: y,
                axis: u8::try_from(*axis).context("concatenation axis")?,
            }),
            Layer::Mul { .. } => {
                let (multiplier, shift) = own.rescale.context("mul parameters missing")?;
                Op::Mul(MulOp {
                    input1: x,
                    input2: x2.context("mul has no second input")?,
                    output: y,
                    act_min: own.act.0,
                    act_max: own.act.1,
                    multiplier,
                    shift,
                })
            }
            Layer::Add { .. } => {
                let p = own.add.context("add parameters missing")?;
                let narrow = |v: i32| i8::try_from(v).context("add shift out of range");
                Op::Add(AddOp {
                    input1: x,
                    input2: x2.context("add has no second input")?,
                    output: y,
                    act_min: p.act_min,
                    act_max: p.act_max,
                    left_shift: u8::try_from(p.left_shift).context("add left shift")?,
                    input1_multiplier: p.input1_multiplier,
                    input1_shift: narrow(p.input1_shift)?,
                    input2_multiplier: p.input2_multiplier,
                    input2_shift: narrow(p.input2_shift)?,
                    output_multiplier: p.output_multiplier,
                    output_shift: narrow(p.output_shift)?,
                })
            }
        };
        b.ops.push(op);
    }
    let output = ids[graph.output].context("the model output is not written by any layer")?;
    let len = fixnet::format::encoded_len(&b.tensors, &b.ops)
        .map_err(|e| anyhow!("laying out the model: {e}"))?;
    let mut out = vec![0u8; len];
    let n = fixnet::format::write_model(&mut b.tensors, &b.ops, input, output, &mut out)
        .map_err(|e| anyhow!("writing the model: {e}"))?;
    out.truncate(n);
    Ok(out)
}

/// The model's tensors and ops as lowering adds them (as many as the model has: the format
/// counts them in 16 bits).
#[derive(Default)]
struct Parts<'a> {
    tensors: Vec<Tensor<'a>>,
    ops: Vec<Op<'a>>,
}

impl<'a> Parts<'a> {
    fn add_tensor(&mut self, tensor: Tensor<'a>) -> Result<CoreId> {
        let id = CoreId::try_from(self.tensors.len())
            .ok()
            .filter(|&id| id != fixnet::format::NO_TENSOR)
            .context("the model has more than 65,534 tensors")?;
        self.tensors.push(tensor);
        Ok(id)
    }
}

/// Computes what TFLite's Prepare would for one layer.
fn prepare(graph: &Graph, layer: &Layer) -> Result<Owned> {
    let input = graph.tensor(layer.input())?;
    let output = graph.tensor(layer.output())?;
    Ok(match layer {
        Layer::Conv2d(Conv {
            filter, activation, ..
        })
        | Layer::DepthwiseConv2d(Conv {
            filter, activation, ..
        }) => {
            let channels = output.shape.last().copied().unwrap_or(0);
            Owned {
                requant: conv_requant(input.scale, &filter.scales, output.scale, channels),
                act: activation_range(*activation, output)?,
                filter_scales: broadcast(&filter.scales, channels),
                double_scales: Vec::new(),
                softmax: None,
                add: None,
                table: Vec::new(),
                rescale: None,
            }
        }
        Layer::MaxPool(Pool { activation, .. }) | Layer::AvgPool(Pool { activation, .. }) => {
            Owned {
                act: activation_range(*activation, output)?,
                ..Owned::default()
            }
        }
        Layer::FullyConnected(FullyConnected {
            weights,
            activation,
            ..
        }) => {
            let outputs = weights.shape.first().copied().unwrap_or(0);
            Owned {
                requant: fully_connected_requant(
                    input.scale,
                    &weights.scales,
                    output.scale,
                    outputs,
                ),
                act: activation_range(*activation, output)?,
                filter_scales: broadcast(&weights.scales, outputs),
                // LiteRT's reference kernel rescales fully connected outputs in f64 (for
                // per-tensor and per-channel filters alike); storing its scales keeps fixnet
                // bit-exact with it.
                double_scales: broadcast(&weights.scales, outputs)
                    .iter()
                    .map(|&w| {
                        fixnet::quant::fully_connected_effective_scale(input.scale, w, output.scale)
                    })
                    .collect(),
                softmax: None,
                add: None,
                table: Vec::new(),
                rescale: None,
            }
        }
        Layer::Softmax { beta, .. } => Owned {
            softmax: Some(softmax_params(*beta, input.scale)?),
            ..Owned::default()
        },
        Layer::Reshape { .. } => Owned::default(),
        Layer::Elementwise { function, .. } => Owned {
            table: lookup_table(*function, input, output)?,
            ..Owned::default()
        },
        Layer::Mean { .. } => {
            let (h, w, _) = input.hwc().context("mean input is not [1, H, W, C]")?;
            let p = MeanParams::new(
                (input.scale, input.zero_point),
                (output.scale, output.zero_point),
                h * w,
            )
            .map_err(|e| anyhow!("mean quantization: {e}"))?;
            Owned {
                rescale: Some((p.multiplier, p.shift)),
                ..Owned::default()
            }
        }
        Layer::Pad { .. } | Layer::Concatenation { .. } => Owned::default(),
        Layer::Mul {
            input1,
            input2,
            activation,
            ..
        } => {
            let (a, b) = (graph.tensor(*input1)?, graph.tensor(*input2)?);
            let act = activation_range(*activation, output)?;
            let p = MulParams::new(
                a.scale,
                a.zero_point,
                b.scale,
                b.zero_point,
                output.scale,
                output.zero_point,
                act.0,
                act.1,
            )
            .map_err(|e| anyhow!("mul quantization: {e}"))?;
            Owned {
                act,
                rescale: Some((p.output_multiplier, p.output_shift)),
                ..Owned::default()
            }
        }
        Layer::Add {
            input1,
            input2,
            activation,
            ..
        } => {
            let (a, b) = (graph.tensor(*input1)?, graph.tensor(*input2)?);
            let params = AddParams::new(
                (a.scale, a.zero_point),
                (b.scale, b.zero_point),
                (output.scale, output.zero_point),
                core_activation(*activation),
            )
            .map_err(|e| anyhow!("add quantization: {e}"))?;
            Owned {
                add: Some(params),
                ..Owned::default()
            }
        }
    })
}

/// The 256 outputs of an element-wise function, computed with the core's bit-exact kernels.
fn lookup_table(function: Elementwise, input: &TensorInfo, output: &TensorInfo) -> Result<Vec<i8>> {
    let (si, zi, so, zo) = (
        input.scale,
        input.zero_point,
        output.scale,
        output.zero_point,
    );
    let err = |e: fixnet::Error| anyhow!("{} quantization: {e}", function.name());
    let f: Box<dyn Fn(i8) -> i8> = match function {
        Elementwise::Logistic => {
            let lut = Lut::logistic(si, zi, so, zo).map_err(err)?;
            Box::new(move |q| lut.get(q))
        }
        Elementwise::Tanh => {
            let lut = Lut::tanh(si, zi, so, zo).map_err(err)?;
            Box::new(move |q| lut.get(q))
        }
        Elementwise::HardSwish => {
            let p = HardSwishParams::new(si, zi, so, zo).map_err(err)?;
            Box::new(move |q| p.apply(q))
        }
        Elementwise::Requantize => {
            let p = RequantizeParams::new((si, zi), (so, zo)).map_err(err)?;
            Box::new(move |q| p.apply(q))
        }
        Elementwise::Relu | Elementwise::Relu6 | Elementwise::ReluN1To1 => {
            let (lo, hi) = match function {
                Elementwise::Relu => (0.0, f32::INFINITY),
                Elementwise::Relu6 => (0.0, 6.0),
                _ => (-1.0, 1.0),
            };
            let p = ReluParams::new(si, zi, so, zo, lo, hi).map_err(err)?;
            Box::new(move |q| p.apply(q))
        }
        Elementwise::LeakyRelu { alpha } => {
            let p = LeakyReluParams::new(si, zi, so, zo, alpha).map_err(err)?;
            Box::new(move |q| p.apply(q))
        }
    };
    // Indexed by the input's two's-complement byte, as the core's look-up op reads it.
    Ok((0..=255u8).map(|byte| f(byte as i8)).collect())
}

fn core_activation(a: Activation) -> CoreActivation {
    match a {
        Activation::None => CoreActivation::None,
        Activation::Relu => CoreActivation::Relu,
        Activation::Relu6 => CoreActivation::Relu6,
    }
}

/// Refuses, with a clear message, the quantization parameters the core would reject when
/// loading the lowered model (finding F1: a denormal filter scale used to pass here and be
/// refused only by the core as "inconsistent quantization parameters").
fn check_quantization(graph: &Graph, layer: &Layer, owned: Owned) -> Result<Owned> {
    for id in layer.inputs().into_iter().chain([layer.output()]) {
        let t = graph.tensor(id)?;
        ensure!(
            t.scale.is_finite() && t.scale > 0.0,
            "unsupported scale {:e} on tensor '{}' (must be finite and positive)",
            t.scale,
            t.name
        );
        ensure!(
            (-128..=127).contains(&t.zero_point),
            "unsupported zero point {} on int8 tensor '{}'",
            t.zero_point,
            t.name
        );
    }
    if let Some(s) = owned
        .filter_scales
        .iter()
        .find(|s| !s.is_finite() || **s < 0.0)
    {
        bail!("unsupported filter scale {s:e} (must be finite and not negative)");
    }
    for (c, (&m, &shift)) in owned
        .requant
        .multipliers
        .iter()
        .zip(&owned.requant.shifts)
        .enumerate()
    {
        ensure!(
            m >= 0 && (-31..=30).contains(&shift),
            "unsupported scale: the requantization of channel {c} needs multiplier {m} \
             shift {shift}, outside what fixnet (and TFLite's int8 kernels) can represent \
             (shift -31..=30)"
        );
    }
    if let Some(s) = owned
        .double_scales
        .iter()
        .find(|s| !s.is_finite() || **s <= 0.0)
    {
        bail!(
            "unsupported scale: the effective output scale is {s:e} (must be finite and positive)"
        );
    }
    Ok(owned)
}

/// The fixnet format stores either per-channel scales (as many as channels) or none; a
/// per-tensor scale is kept per channel so `inspect` and dequantization stay exact.
fn broadcast(scales: &[f32], channels: usize) -> Vec<f32> {
    if scales.len() == 1 {
        vec![scales[0]; channels]
    } else {
        scales.to_vec()
    }
}

/// Axis of a filter's per-channel scales: output channels, first for OHWI, last for the
/// depthwise `[1, KH, KW, C·M]`.
fn conv_axis(layer: &Layer) -> u8 {
    if matches!(layer, Layer::DepthwiseConv2d(_)) {
        3
    } else {
        0
    }
}

fn add_weights<'a>(
    b: &mut Parts<'a>,
    shape: &[usize],
    data: &'a [i8],
    scales: &'a [f32],
    axis: u8,
    bias: &'a [i32],
    input_scale: f32,
) -> Result<(CoreId, CoreId)> {
    let filter = b.add_tensor(Tensor::weights(dims(shape)?, data, scales, axis))?;
    // The bias scale is informational in fixnet (the kernels use the multipliers); record
    // the first channel's, as TFLite's bias tensors carry input_scale · filter_scale.
    let bias_scale = input_scale * scales.first().copied().unwrap_or(0.0);
    let bias = b.add_tensor(Tensor::bias(dims(&[bias.len()])?, bias, bias_scale))?;
    Ok((filter, bias))
}

fn depth_multiplier(graph: &Graph, layer: &Layer, c: &Conv) -> Result<u16> {
    if !matches!(layer, Layer::DepthwiseConv2d(_)) {
        return Ok(0);
    }
    let (_, _, ch) = graph
        .tensor(c.input)?
        .hwc()
        .context("depthwise input is not [1, H, W, C]")?;
    let m = c.filter.shape.last().copied().unwrap_or(0) / ch.max(1);
    u16::try_from(m)
        .ok()
        .filter(|&m| m > 0)
        .with_context(|| format!("depth multiplier {m} is not supported"))
}

fn pool_op(p: &Pool, input: CoreId, output: CoreId, act: (i8, i8)) -> Result<PoolOp> {
    Ok(PoolOp {
        input,
        output,
        padding: p.padding,
        kernel_h: small(p.filter_h, "window size")?,
        kernel_w: small(p.filter_w, "window size")?,
        stride_h: small(p.stride_h, "stride")?,
        stride_w: small(p.stride_w, "stride")?,
        act_min: act.0,
        act_max: act.1,
    })
}

fn small(v: usize, what: &str) -> Result<u8> {
    match u8::try_from(v) {
        Ok(x) if x > 0 => Ok(x),
        _ => bail!("{what} {v} is not supported (1 to 255)"),
    }
}

fn dims(shape: &[usize]) -> Result<Dims> {
    Dims::new(shape).map_err(|_| {
        anyhow!("shape {shape:?} is not supported (rank 1 to 4, each dimension 1 to 65535)")
    })
}

#[cfg(test)]
// Scales are written as the fixtures print them (f64 digits of f32 values).
#[allow(clippy::excessive_precision)]
mod tests {
    use super::*;

    /// TFLite's `QuantizeMultiplier`, written independently of the core: frexp, then
    /// round-half-away of q·2³¹, renormalised when it reaches 2³¹, flushed below 2⁻³¹.
    fn tflite_quantize_multiplier(d: f64) -> (i32, i32) {
        if d == 0.0 {
            return (0, 0);
        }
        let mut shift = d.abs().log2().floor() as i32 + 1;
        let mut q = d / 2f64.powi(shift);
        // log2 can be off by one at exact powers of two; normalise into [0.5, 1).
        while q.abs() >= 1.0 {
            q /= 2.0;
            shift += 1;
        }
        while q.abs() < 0.5 {
            q *= 2.0;
            shift -= 1;
        }
        let mut fixed = (q * 2147483648.0).round() as i64;
        if fixed == 1 << 31 {
            fixed /= 2;
            shift += 1;
        }
        if shift < -31 {
            return (0, 0);
        }
        (fixed as i32, shift)
    }

    #[test]
    fn conv_multipliers_use_double_products() {
        let (i, o) = (0.003921568859368563f32, 0.004495801869779825f32);
        let scales = [0.001264626276679337f32, 0.002617866965010762];
        let r = conv_requant(i, &scales, o, 2);
        for (c, s) in scales.iter().enumerate() {
            let want = tflite_quantize_multiplier(f64::from(i) * f64::from(*s) / f64::from(o));
            assert_eq!((r.multipliers[c], r.shifts[c]), want);
        }
        // One scale is broadcast to every channel.
        let r = conv_requant(i, &scales[..1], o, 3);
        assert_eq!(r.multipliers.len(), 3);
        assert!(r.multipliers.iter().all(|&m| m == r.multipliers[0]));
    }

    #[test]
    fn per_tensor_fully_connected_multiplies_scales_in_float() {
        // Search for scales where the float and double products quantize differently, and
        // check that the per-tensor path follows the float one.
        let mut differing = 0;
        for k in 1..2000u32 {
            let i = 0.0039215689f32 * (1.0 + k as f32 * 1e-4);
            let w = 0.0012646263f32 * (1.0 + k as f32 * 7e-5);
            let o = 0.0143225817f32;
            let float_path = tflite_quantize_multiplier(f64::from(i * w) / f64::from(o));
            let double_path =
                tflite_quantize_multiplier(f64::from(i) * f64::from(w) / f64::from(o));
            let r = fully_connected_requant(i, &[w], o, 4);
            assert_eq!((r.multipliers[3], r.shifts[3]), float_path);
            let pc = fully_connected_requant(i, &[w, w], o, 2);
            assert_eq!((pc.multipliers[1], pc.shifts[1]), double_path);
            differing += usize::from(float_path != double_path);
        }
        assert!(
            differing > 0,
            "no case distinguishes float from double products"
        );
    }

    #[test]
    fn activation_ranges_follow_tflite() {
        let t = |scale: f32, zero_point: i32| TensorInfo {
            name: "t".into(),
            shape: vec![1],
            scale,
            zero_point,
        };
        // zero_point + (int)round(f / scale), float division, clamped to int8.
        assert_eq!(
            activation_range(Activation::None, &t(0.1, 3)).unwrap(),
            (-128, 127)
        );
        assert_eq!(
            activation_range(Activation::Relu, &t(0.1, -128)).unwrap(),
            (-128, 127)
        );
        assert_eq!(
            activation_range(Activation::Relu, &t(0.1, 5)).unwrap(),
            (5, 127)
        );
        let s = 6.0f32 / 255.0;
        let hi = -128 + (6.0f32 / s).round() as i32;
        assert_eq!(
            activation_range(Activation::Relu6, &t(s, -128)).unwrap(),
            (-128, hi.min(127) as i8)
        );
        assert_eq!(
            activation_range(Activation::Relu6, &t(0.01, 0)).unwrap(),
            (0, 127)
        );
        assert_eq!(
            activation_range(Activation::Relu6, &t(0.1, -100)).unwrap(),
            (-100, -40)
        );
    }

    #[test]
    fn softmax_params_match_tflite_prepare() {
        let p = softmax_params(1.0, 0.1).unwrap();
        // beta · scale · 2^(31-5) = 0.1 · 2^26
        let want = tflite_quantize_multiplier(f64::from(0.1f32) * 2f64.powi(26));
        assert_eq!((p.input_multiplier, p.input_left_shift), want);
        let radius = ((2f64.powi(5) - 1.0) * 2f64.powi(31 - 5) / 2f64.powi(want.1)).floor();
        assert_eq!(p.diff_min, -(radius as i32));
        assert!(softmax_params(1.0, 1e-12).is_err());
    }
}
