//! The quantized graph every importer produces and [`crate::lower`] turns into a fixnet model.
//!
//! It holds exactly what TFLite's int8 kernels are parameterised by — tensor shapes, scales
//! and zero points, int8 filters with their per-channel scales, int32 biases, window geometry
//! and fused activations — and nothing derived from them: the fixed-point multipliers and
//! clamp ranges are computed once, in lowering, the way TFLite's `Prepare` computes them.
//!
//! Conventions (TFLite's): activations are NHWC with batch 1 (`[1, H, W, C]`, or `[1, N]` /
//! `[N]` for vectors); convolution filters OHWI; depthwise filters `[1, KH, KW, C·M]`;
//! fully connected weights `[outputs, inputs]`. Weights are symmetric (zero point 0).

use anyhow::{bail, ensure, Context, Result};
pub use fixnet::Padding;

/// Index of a tensor in [`Graph::tensors`].
pub type TensorId = usize;

/// An int8 activation tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    /// Name, for messages (the importer's name for it).
    pub name: String,
    /// Dimensions, outermost first, batch already set to 1.
    pub shape: Vec<usize>,
    /// Quantization scale.
    pub scale: f32,
    /// Quantization zero point.
    pub zero_point: i32,
}

impl TensorInfo {
    /// Number of elements (saturating, so absurd shapes from a corrupt file cannot overflow).
    pub fn len(&self) -> usize {
        elements(&self.shape)
    }

    /// True when the shape has a zero dimension.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(H, W, C)` of a `[1, H, W, C]` tensor.
    pub fn hwc(&self) -> Option<(usize, usize, usize)> {
        match *self.shape.as_slice() {
            [1, h, w, c] => Some((h, w, c)),
            _ => None,
        }
    }
}

/// A fused activation (the ones TFLite's int8 kernels apply as a clamp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// No clamp beyond the int8 range.
    None,
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
}

impl Activation {
    /// TFLite's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Activation::None => "NONE",
            Activation::Relu => "RELU",
            Activation::Relu6 => "RELU6",
        }
    }
}

/// The element-wise int8 functions fixnet runs by table look-up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Elementwise {
    /// Sigmoid (output scale 1/256).
    Logistic,
    /// Hyperbolic tangent.
    Tanh,
    /// Hard swish.
    HardSwish,
    /// int8 → int8 requantization (QUANTIZE between two scales).
    Requantize,
    /// `max(x, 0)` (a RELU layer of its own, which may requantize).
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `min(max(x, −1), 1)`.
    ReluN1To1,
    /// `x` above 0, `alpha · x` below.
    LeakyRelu {
        /// Slope below zero.
        alpha: f32,
    },
}

impl Elementwise {
    /// TFLite's op name.
    pub fn name(self) -> &'static str {
        match self {
            Elementwise::Logistic => "LOGISTIC",
            Elementwise::Tanh => "TANH",
            Elementwise::HardSwish => "HARD_SWISH",
            Elementwise::Requantize => "QUANTIZE",
            Elementwise::Relu => "RELU",
            Elementwise::Relu6 => "RELU6",
            Elementwise::ReluN1To1 => "RELU_N1_TO_1",
            Elementwise::LeakyRelu { .. } => "LEAKY_RELU",
        }
    }
}

/// Constant int8 weights with their scales.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    /// Dimensions (OHWI, `[1, KH, KW, C·M]` or `[outputs, inputs]`).
    pub shape: Vec<usize>,
    /// Values, row-major in `shape`.
    pub data: Vec<i8>,
    /// One scale per output channel, or a single scale for per-tensor quantization.
    pub scales: Vec<f32>,
}

impl Weights {
    /// Number of output channels the scales must cover.
    fn check(&self, what: &str, channels: usize) -> Result<()> {
        let n = elements(&self.shape);
        ensure!(
            self.data.len() == n,
            "{what}: {} weight values for shape {:?}",
            self.data.len(),
            self.shape
        );
        ensure!(
            self.scales.len() == 1 || self.scales.len() == channels,
            "{what}: {} weight scales for {channels} output channels",
            self.scales.len()
        );
        ensure!(
            self.scales.iter().all(|s| s.is_finite() && *s >= 0.0),
            "{what}: weight scales must be finite and non-negative"
        );
        Ok(())
    }

    /// True when one scale covers every channel.
    pub fn is_per_tensor(&self) -> bool {
        self.scales.len() == 1
    }
}

/// A convolution or a depthwise convolution.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv {
    /// Input activation `[1, H, W, C]`.
    pub input: TensorId,
    /// Output activation `[1, OH, OW, O]`.
    pub output: TensorId,
    /// OHWI filter (convolution) or `[1, KH, KW, C·M]` (depthwise).
    pub filter: Weights,
    /// One int32 bias per output channel (scale `input_scale · filter_scale[c]`).
    pub bias: Vec<i32>,
    /// Padding scheme.
    pub padding: Padding,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Fused activation.
    pub activation: Activation,
}

/// A max or average pooling window.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    /// Input activation `[1, H, W, C]`.
    pub input: TensorId,
    /// Output activation (same quantization as the input).
    pub output: TensorId,
    /// Padding scheme.
    pub padding: Padding,
    /// Window rows.
    pub filter_h: usize,
    /// Window columns.
    pub filter_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Fused activation.
    pub activation: Activation,
}

/// A fully connected (dense) layer.
#[derive(Clone, Debug, PartialEq)]
pub struct FullyConnected {
    /// Input activation, any shape with `inputs` elements.
    pub input: TensorId,
    /// Output activation `[1, outputs]` or `[outputs]`.
    pub output: TensorId,
    /// `[outputs, inputs]` weights.
    pub weights: Weights,
    /// One int32 bias per output.
    pub bias: Vec<i32>,
    /// Fused activation.
    pub activation: Activation,
}

/// One layer of the graph.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// 2-D convolution.
    Conv2d(Conv),
    /// Depthwise 2-D convolution; the depth multiplier is `filter channels / input channels`.
    DepthwiseConv2d(Conv),
    /// Max pooling.
    MaxPool(Pool),
    /// Average pooling.
    AvgPool(Pool),
    /// Fully connected.
    FullyConnected(FullyConnected),
    /// Softmax over the innermost dimension (int8 output: scale 1/256, zero point −128).
    Softmax {
        /// Input activation.
        input: TensorId,
        /// Output activation.
        output: TensorId,
        /// Inverse temperature.
        beta: f32,
    },
    /// Same bytes, another shape (Flatten included).
    Reshape {
        /// Input activation.
        input: TensorId,
        /// Output activation (same quantization).
        output: TensorId,
    },
    /// An element-wise int8 function (lowered to a 256-entry table).
    Elementwise {
        /// Input activation.
        input: TensorId,
        /// Output activation, same shape.
        output: TensorId,
        /// Which function.
        function: Elementwise,
    },
    /// Mean over height and width of a `[1, H, W, C]` input (output `[1, 1, 1, C]` or `[1, C]`).
    Mean {
        /// Input activation.
        input: TensorId,
        /// Output activation.
        output: TensorId,
    },
    /// Constant padding with the zero point.
    Pad {
        /// Input activation.
        input: TensorId,
        /// Output activation (same quantization).
        output: TensorId,
        /// Before/after per axis of the input extended to 4-D.
        paddings: [[usize; 2]; 4],
    },
    /// Concatenation along `axis` (of the dims extended to 4-D); inputs share the output's
    /// quantization.
    Concatenation {
        /// Inputs, in order.
        inputs: Vec<TensorId>,
        /// Output activation.
        output: TensorId,
        /// Axis in 4-D terms.
        axis: usize,
    },
    /// Element-wise product of two operands (either may broadcast, either may be constant).
    Mul {
        /// First operand.
        input1: TensorId,
        /// Second operand.
        input2: TensorId,
        /// Output activation.
        output: TensorId,
        /// Fused activation.
        activation: Activation,
    },
    /// Element-wise sum of two activations (either may broadcast along size-1 dimensions).
    Add {
        /// First input.
        input1: TensorId,
        /// Second input.
        input2: TensorId,
        /// Output activation.
        output: TensorId,
        /// Fused activation.
        activation: Activation,
    },
}

impl Layer {
    /// A short name (TFLite's op name).
    pub fn name(&self) -> &'static str {
        match self {
            Layer::Conv2d(_) => "CONV_2D",
            Layer::DepthwiseConv2d(_) => "DEPTHWISE_CONV_2D",
            Layer::MaxPool(_) => "MAX_POOL_2D",
            Layer::AvgPool(_) => "AVERAGE_POOL_2D",
            Layer::FullyConnected(_) => "FULLY_CONNECTED",
            Layer::Softmax { .. } => "SOFTMAX",
            Layer::Reshape { .. } => "RESHAPE",
            Layer::Add { .. } => "ADD",
            Layer::Mul { .. } => "MUL",
            Layer::Elementwise { function, .. } => function.name(),
            Layer::Mean { .. } => "MEAN",
            Layer::Pad { .. } => "PAD",
            Layer::Concatenation { .. } => "CONCATENATION",
        }
    }

    /// Every activation the layer reads, in order.
    pub fn inputs(&self) -> Vec<TensorId> {
        match self {
            Layer::Add { input1, input2, .. } | Layer::Mul { input1, input2, .. } => {
                vec![*input1, *input2]
            }
            Layer::Concatenation { inputs, .. } => inputs.clone(),
            _ => vec![self.input()],
        }
    }

    /// The (first) activation the layer reads.
    pub fn input(&self) -> TensorId {
        match self {
            Layer::Conv2d(c) | Layer::DepthwiseConv2d(c) => c.input,
            Layer::MaxPool(p) | Layer::AvgPool(p) => p.input,
            Layer::FullyConnected(f) => f.input,
            Layer::Softmax { input, .. } | Layer::Reshape { input, .. } => *input,
            Layer::Add { input1, .. } | Layer::Mul { input1, .. } => *input1,
            Layer::Elementwise { input, .. }
            | Layer::Mean { input, .. }
            | Layer::Pad { input, .. } => *input,
            Layer::Concatenation { inputs, .. } => inputs.first().copied().unwrap_or(usize::MAX),
        }
    }

    /// The activation the layer writes.
    pub fn output(&self) -> TensorId {
        match self {
            Layer::Conv2d(c) | Layer::DepthwiseConv2d(c) => c.output,
            Layer::MaxPool(p) | Layer::AvgPool(p) => p.output,
            Layer::FullyConnected(f) => f.output,
            Layer::Softmax { output, .. }
            | Layer::Reshape { output, .. }
            | Layer::Add { output, .. }
            | Layer::Mul { output, .. }
            | Layer::Elementwise { output, .. }
            | Layer::Mean { output, .. }
            | Layer::Pad { output, .. }
            | Layer::Concatenation { output, .. } => *output,
        }
    }
}

/// A quantized model: a graph of layers, in execution order, from one input tensor to one
/// output tensor; a tensor may have several readers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// Every activation tensor.
    pub tensors: Vec<TensorInfo>,
    /// Layers in execution order.
    pub layers: Vec<Layer>,
    /// The model's input.
    pub input: TensorId,
    /// The model's output.
    pub output: TensorId,
    /// The values of constant operands (int8 tensors an Add or a Mul reads from the model
    /// rather than from an earlier layer), by tensor.
    pub constants: std::collections::BTreeMap<TensorId, Vec<i8>>,
}

impl Graph {
    /// Adds a tensor and returns its id.
    pub fn add_tensor(&mut self, tensor: TensorInfo) -> TensorId {
        self.tensors.push(tensor);
        self.tensors.len() - 1
    }

    /// Tensor `id`, or an error naming the bad index.
    pub fn tensor(&self, id: TensorId) -> Result<&TensorInfo> {
        self.tensors
            .get(id)
            .with_context(|| format!("tensor {id} does not exist"))
    }

    /// Checks every layer's shapes and quantization against its tensors, so that lowering
    /// and the core only ever see a consistent graph (and the user gets a message naming
    /// the layer rather than a bare core error).
    pub fn validate(&self) -> Result<()> {
        ensure!(!self.layers.is_empty(), "the model has no layers");
        for t in &self.tensors {
            ensure!(
                !t.shape.is_empty() && t.shape.len() <= 4 && !t.is_empty(),
                "tensor '{}': shape {:?} is not supported (rank 1 to 4, no zero dimension)",
                t.name,
                t.shape
            );
            ensure!(
                t.scale.is_finite() && t.scale > 0.0,
                "tensor '{}': scale {} is not a positive number",
                t.name,
                t.scale
            );
            ensure!(
                (-128..=127).contains(&t.zero_point),
                "tensor '{}': zero point {} is outside the int8 range",
                t.name,
                t.zero_point
            );
        }
        self.tensor(self.input).context("model input")?;
        self.tensor(self.output).context("model output")?;
        // Every layer reads what an earlier one (or the model input) wrote, and writes a
        // tensor nothing else writes.
        let mut written = vec![false; self.tensors.len()];
        for &id in self.constants.keys() {
            ensure!(
                self.tensors.get(id).map(TensorInfo::len) == self.constants.get(&id).map(Vec::len),
                "constant tensor {id} has the wrong number of values"
            );
            written[id] = true;
        }
        written[self.input] = true;
        for (i, layer) in self.layers.iter().enumerate() {
            let ctx = || format!("layer {i} ({})", layer.name());
            self.validate_layer(layer).with_context(ctx)?;
            for input in layer.inputs() {
                self.tensor(input).with_context(ctx)?;
                ensure!(
                    written[input],
                    "{}: reads tensor '{}' before anything writes it",
                    ctx(),
                    self.tensors[input].name
                );
            }
            ensure!(
                !written[layer.output()],
                "{}: writes tensor '{}' a second time",
                ctx(),
                self.tensors[layer.output()].name
            );
            written[layer.output()] = true;
        }
        ensure!(
            self.output != self.input && written[self.output],
            "no layer writes the model output '{}'",
            self.tensors[self.output].name
        );
        Ok(())
    }

    fn validate_layer(&self, layer: &Layer) -> Result<()> {
        let input = self.tensor(layer.input())?;
        let output = self.tensor(layer.output())?;
        match layer {
            Layer::Conv2d(c) | Layer::DepthwiseConv2d(c) => {
                let depthwise = matches!(layer, Layer::DepthwiseConv2d(_));
                let (h, w, ch) = hwc(input)?;
                let (oh, ow, oc) = hwc(output)?;
                let [fo, kh, kw, fi] = dims4(&c.filter.shape)?;
                if depthwise {
                    ensure!(fo == 1, "depthwise filter shape {:?}", c.filter.shape);
                    ensure!(
                        fi % ch == 0 && fi == oc,
                        "depthwise filter has {fi} channels for {ch} input and {oc} output channels"
                    );
                } else {
                    ensure!(
                        fi == ch,
                        "filter expects {fi} input channels, input has {ch} (grouped convolution is not supported)"
                    );
                    ensure!(fo == oc, "filter has {fo} output channels, output has {oc}");
                }
                c.filter.check("filter", oc)?;
                ensure!(
                    c.bias.len() == oc,
                    "{} biases for {oc} output channels",
                    c.bias.len()
                );
                check_window(
                    c.padding,
                    (h, w),
                    (kh, kw),
                    (c.stride_h, c.stride_w),
                    (oh, ow),
                )?;
            }
            Layer::MaxPool(p) | Layer::AvgPool(p) => {
                let (h, w, ch) = hwc(input)?;
                let (oh, ow, oc) = hwc(output)?;
                ensure!(ch == oc, "pooling changes channels from {ch} to {oc}");
                same_quantization(input, output)?;
                check_window(
                    p.padding,
                    (h, w),
                    (p.filter_h, p.filter_w),
                    (p.stride_h, p.stride_w),
                    (oh, ow),
                )?;
            }
            Layer::FullyConnected(f) => {
                let [outs, ins] = match *f.weights.shape.as_slice() {
                    [o, i] => [o, i],
                    _ => bail!(
                        "weights shape {:?} is not [outputs, inputs]",
                        f.weights.shape
                    ),
                };
                ensure!(
                    input.len() == ins,
                    "input has {} elements, weights expect {ins}",
                    input.len()
                );
                ensure!(
                    output.len() == outs && output.shape.last() == Some(&outs),
                    "output shape {:?} does not end in the {outs} outputs",
                    output.shape
                );
                f.weights.check("weights", outs)?;
                ensure!(
                    f.bias.len() == outs,
                    "{} biases for {outs} outputs",
                    f.bias.len()
                );
            }
            Layer::Softmax { beta, .. } => {
                ensure!(
                    input.shape == output.shape,
                    "input shape {:?} differs from output shape {:?}",
                    input.shape,
                    output.shape
                );
                ensure!(
                    beta.is_finite() && *beta > 0.0,
                    "beta {beta} is not a positive number"
                );
                ensure!(
                    output.zero_point == -128 && output.scale == 1.0 / 256.0,
                    "int8 softmax output must have scale 1/256 and zero point -128 (has {} and {})",
                    output.scale,
                    output.zero_point
                );
            }
            Layer::Add { input1, input2, .. } | Layer::Mul { input1, input2, .. } => {
                for id in [*input1, *input2] {
                    let t = self.tensor(id)?;
                    ensure!(
                        broadcasts_to(&t.shape, &output.shape),
                        "input shape {:?} does not broadcast to the output shape {:?}",
                        t.shape,
                        output.shape
                    );
                }
            }
            Layer::Elementwise { function, .. } => {
                ensure!(
                    input.shape == output.shape,
                    "input shape {:?} differs from output shape {:?}",
                    input.shape,
                    output.shape
                );
                if *function == Elementwise::Logistic {
                    ensure!(
                        output.scale == 1.0 / 256.0,
                        "int8 LOGISTIC output must have scale 1/256 (has {})",
                        output.scale
                    );
                }
            }
            Layer::Mean { .. } => {
                let (_, _, c) = hwc(input)?;
                ensure!(
                    output.len() == c && output.shape.last() == Some(&c),
                    "mean over height and width of {:?} cannot give {:?}",
                    input.shape,
                    output.shape
                );
            }
            Layer::Pad { paddings, .. } => {
                same_quantization(input, output)?;
                let din = extended4(&input.shape)?;
                let dout = extended4(&output.shape)?;
                let padded: Vec<usize> = din
                    .iter()
                    .zip(paddings)
                    .map(|(d, [b, a])| d + b + a)
                    .collect();
                ensure!(
                    input.shape.len() == output.shape.len() && padded == dout,
                    "padding {:?} by {paddings:?} does not give {:?}",
                    input.shape,
                    output.shape
                );
            }
            Layer::Concatenation { inputs, axis, .. } => {
                let out = extended4(&output.shape)?;
                ensure!(
                    *axis < 4 && *axis + output.shape.len() >= 4,
                    "axis {axis} is outside the output's dimensions"
                );
                let mut along = 0;
                for &id in inputs {
                    let t = self.tensor(id)?;
                    same_quantization(t, output)?;
                    let d = extended4(&t.shape)?;
                    ensure!(
                        t.shape.len() == output.shape.len()
                            && (0..4).all(|a| a == *axis || d[a] == out[a]),
                        "input shape {:?} does not fit the output {:?} along axis {axis}",
                        t.shape,
                        output.shape
                    );
                    along += d[*axis];
                }
                ensure!(
                    along == out[*axis],
                    "inputs add up to {along} along axis {axis}, the output has {}",
                    out[*axis]
                );
            }
            Layer::Reshape { .. } => {
                ensure!(
                    input.len() == output.len(),
                    "reshape from {:?} to {:?} changes the element count",
                    input.shape,
                    output.shape
                );
                same_quantization(input, output)?;
            }
        }
        Ok(())
    }
}

/// True when `from` broadcasts to `to` as TFLite's binary ops allow: aligned at the innermost
/// dimension, each equal or 1.
pub fn broadcasts_to(from: &[usize], to: &[usize]) -> bool {
    from.len() <= to.len()
        && from
            .iter()
            .rev()
            .zip(to.iter().rev())
            .all(|(&a, &b)| a == b || a == 1)
}

/// A shape of rank 1 to 4 extended to 4-D with leading ones.
pub fn extended4(shape: &[usize]) -> Result<[usize; 4]> {
    ensure!(
        (1..=4).contains(&shape.len()),
        "shape {shape:?} is not of rank 1 to 4"
    );
    let mut out = [1usize; 4];
    out[4 - shape.len()..].copy_from_slice(shape);
    Ok(out)
}

/// Product of dimensions, saturating at `usize::MAX`.
pub fn elements(shape: &[usize]) -> usize {
    shape.iter().fold(1usize, |n, &d| n.saturating_mul(d))
}

fn hwc(t: &TensorInfo) -> Result<(usize, usize, usize)> {
    t.hwc().with_context(|| {
        format!(
            "tensor '{}' has shape {:?}, expected [1, H, W, C]",
            t.name, t.shape
        )
    })
}

fn dims4(shape: &[usize]) -> Result<[usize; 4]> {
    match *shape {
        [a, b, c, d] => Ok([a, b, c, d]),
        _ => bail!("filter shape {shape:?} is not 4-D"),
    }
}

fn same_quantization(a: &TensorInfo, b: &TensorInfo) -> Result<()> {
    ensure!(
        a.scale == b.scale && a.zero_point == b.zero_point,
        "input quantization ({}, {}) differs from output quantization ({}, {})",
        a.scale,
        a.zero_point,
        b.scale,
        b.zero_point
    );
    Ok(())
}

fn check_window(
    padding: Padding,
    (h, w): (usize, usize),
    (kh, kw): (usize, usize),
    (sh, sw): (usize, usize),
    (oh, ow): (usize, usize),
) -> Result<()> {
    ensure!(
        (1..=255).contains(&sh) && (1..=255).contains(&sw),
        "strides {sh}x{sw} are not supported (1 to 255)"
    );
    let out_h = padding.output_size(h, kh, sh);
    let out_w = padding.output_size(w, kw, sw);
    ensure!(
        out_h == Some(oh) && out_w == Some(ow),
        "a {kh}x{kw} window with stride {sh}x{sw} and {padding:?} padding over {h}x{w} does not give the {oh}x{ow} output"
    );
    Ok(())
}
