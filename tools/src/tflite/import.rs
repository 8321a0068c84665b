//! Walks a verified `.tflite` model and builds the IR graph.

use super::fold::{self, Folded};
use super::opcodes as op;
use super::schema::{
    self, tensor_type, AddOptions, Buffer, Conv2DOptions, DepthwiseConv2DOptions,
    FullyConnectedOptions, LeakyReluOptions, MulOptions, Operator, PackOptions, Pool2DOptions,
    ReshapeOptions, SoftmaxOptions, StridedSliceOptions, TensorDef,
};
use crate::ir::{
    self, Activation, Conv, Elementwise, Graph, Layer, Padding, TensorId, TensorInfo, Weights,
};
use anyhow::{anyhow, bail, ensure, Context, Result};
use flatbuffers::{Follow, ForwardsUOffset, Vector};
use std::collections::HashMap;

/// Parses a `.tflite` file into the IR. Never panics on malformed input: the flatbuffer is
/// verified first and every index is bounds-checked.
pub fn import(bytes: &[u8]) -> Result<Graph> {
    ensure!(!bytes.is_empty(), "the file is empty");
    ensure!(
        bytes.len() >= 8 && &bytes[4..8] == b"TFL3",
        "not a TFLite model (no TFL3 file identifier)"
    );
    let model = schema::root(bytes).map_err(|e| anyhow!("malformed TFLite flatbuffer: {e}"))?;
    ensure!(
        model.version() == 3,
        "unsupported TFLite schema version {}",
        model.version()
    );
    let subgraphs = model.subgraphs().context("the model has no subgraph")?;
    ensure!(
        subgraphs.len() == 1,
        "the model has {} subgraphs; only single-subgraph models are supported",
        subgraphs.len()
    );
    let sg = subgraphs.get(0);
    let mut im = Importer {
        bytes,
        codes: model.operator_codes(),
        buffers: model.buffers(),
        tensors: sg.tensors().context("the subgraph has no tensors")?,
        graph: Graph::default(),
        ids: HashMap::new(),
        folded: HashMap::new(),
    };
    let inputs = indices(sg.inputs());
    let outputs = indices(sg.outputs());
    ensure!(
        inputs.len() == 1 && outputs.len() == 1,
        "the model has {} inputs and {} outputs; exactly one of each is supported",
        inputs.len(),
        outputs.len()
    );
    let operators = sg.operators().context("the subgraph has no operators")?;
    // A model with float input and output starts with a QUANTIZE and ends with a
    // DEQUANTIZE: fixnet runs the int8 graph between them (its host tool quantizes and
    // dequantizes at the edges with the same arithmetic).
    let float_edge =
        |index: usize| -> Result<bool> { Ok(im.tensor(index)?.dtype() == tensor_type::FLOAT32) };
    let (float_in, float_out) = (float_edge(inputs[0])?, float_edge(outputs[0])?);
    if !float_in {
        im.graph.input = im.activation(inputs[0]).context("model input")?;
    }
    let mut model_output = outputs[0];
    for (i, operator) in operators.iter().enumerate() {
        let code = im.code(&operator)?;
        let ctx = || format!("op {i} ({})", op::name(code));
        let (ins, outs) = (slots(operator.inputs()), indices(operator.outputs()));
        let (first_in, only_out) = (ins.first().copied().flatten(), outs.first().copied());
        if float_in && code == op::QUANTIZE && first_in == Some(inputs[0]) {
            let out = only_out.with_context(|| format!("{}: no output", ctx()))?;
            im.graph.input = im.activation(out).with_context(ctx)?;
            continue;
        }
        if float_out && code == op::DEQUANTIZE && only_out == Some(outputs[0]) {
            model_output = first_in.with_context(|| format!("{}: no input", ctx()))?;
            continue;
        }
        im.operator(&operator, code).with_context(ctx)?;
    }
    let out = *im
        .ids
        .get(&model_output)
        .context("the model output is not produced by any supported op")?;
    im.graph.output = out;
    im.graph.validate()?;
    Ok(im.graph)
}

struct Importer<'a> {
    bytes: &'a [u8],
    codes: Option<Vector<'a, ForwardsUOffset<schema::OperatorCode<'a>>>>,
    buffers: Option<Vector<'a, ForwardsUOffset<Buffer<'a>>>>,
    tensors: Vector<'a, ForwardsUOffset<TensorDef<'a>>>,
    graph: Graph,
    /// TFLite tensor index → IR tensor.
    ids: HashMap<usize, TensorId>,
    /// Integer tensors evaluated at import time.
    folded: HashMap<usize, Folded>,
}

/// Element `i` of a flatbuffer vector, `None` past its end (`Vector::get` would panic).
fn at<'a, T: Follow<'a> + 'a>(v: &Vector<'a, T>, i: usize) -> Option<T::Inner> {
    (i < v.len()).then(|| v.get(i))
}

/// Tensor indices of an op or subgraph; −1 (an omitted optional input) stays as `None`.
fn indices(v: Option<Vector<'_, i32>>) -> Vec<usize> {
    v.map(|v| v.iter().filter_map(|i| usize::try_from(i).ok()).collect())
        .unwrap_or_default()
}

/// Optional-input-aware tensor indices: `None` for −1.
fn slots(v: Option<Vector<'_, i32>>) -> Vec<Option<usize>> {
    v.map(|v| v.iter().map(|i| usize::try_from(i).ok()).collect())
        .unwrap_or_default()
}

impl<'a> Importer<'a> {
    fn code(&self, operator: &Operator<'a>) -> Result<i32> {
        let index = operator.opcode_index() as usize;
        let code = self
            .codes
            .as_ref()
            .and_then(|c| at(c, index))
            .with_context(|| format!("opcode index {index} does not exist"))?;
        if code.code() == op::CUSTOM {
            bail!(
                "custom operator '{}' is not supported",
                code.custom_code().unwrap_or("?")
            );
        }
        Ok(code.code())
    }

    fn tensor(&self, index: usize) -> Result<TensorDef<'a>> {
        at(&self.tensors, index).with_context(|| format!("tensor index {index} does not exist"))
    }

    fn name(t: &TensorDef<'_>) -> String {
        t.name().unwrap_or("?").to_string()
    }

    /// The static shape, checked for dynamic dimensions; batch (dimension 0 of a rank ≥ 2
    /// tensor) becomes 1.
    fn shape(&self, index: usize) -> Result<Vec<usize>> {
        let t = self.tensor(index)?;
        let shape: Vec<i32> = t.shape().map(|s| s.iter().collect()).unwrap_or_default();
        let signature: Vec<i32> = t
            .shape_signature()
            .map(|s| s.iter().collect())
            .unwrap_or_default();
        let rank = shape.len();
        let mut out = Vec::with_capacity(rank);
        for (i, &d) in shape.iter().enumerate() {
            let dynamic = signature.get(i).is_some_and(|&s| s < 0) || d < 0;
            if i == 0 && rank >= 2 {
                out.push(1);
            } else if dynamic {
                bail!(
                    "tensor '{}' has a dynamic dimension {i} (shape signature {signature:?}); only the batch may be dynamic",
                    Self::name(&t)
                );
            } else {
                out.push(usize::try_from(d)?);
            }
        }
        Ok(out)
    }

    /// Constant bytes of a tensor, `None` when it has no data (an activation).
    fn data(&self, t: &TensorDef<'a>) -> Result<Option<&'a [u8]>> {
        let index = t.buffer() as usize;
        if index == 0 {
            return Ok(None);
        }
        let buffer = self
            .buffers
            .as_ref()
            .and_then(|b| at(b, index))
            .with_context(|| format!("buffer {index} does not exist"))?;
        if let Some(data) = buffer.data() {
            if !data.is_empty() {
                return Ok(Some(data.bytes()));
            }
        }
        // Models above 2 GB keep their data after the flatbuffer, addressed by offset/size
        // (offset 1 is the converter's "no data" placeholder).
        if buffer.offset() > 1 {
            let start = usize::try_from(buffer.offset())?;
            let len = usize::try_from(buffer.size())?;
            let bytes = start
                .checked_add(len)
                .and_then(|end| self.bytes.get(start..end))
                .with_context(|| format!("buffer {index} lies outside the file"))?;
            return Ok(Some(bytes));
        }
        Ok(None)
    }

    /// The IR tensor for activation `index`, created on first use.
    fn activation(&mut self, index: usize) -> Result<TensorId> {
        if let Some(&id) = self.ids.get(&index) {
            return Ok(id);
        }
        let t = self.tensor(index)?;
        let name = Self::name(&t);
        match t.dtype() {
            tensor_type::INT8 => {}
            tensor_type::FLOAT32 => bail!(
                "tensor '{name}' is FLOAT32: float models are not supported, convert with full-integer int8 quantization (int8 input and output)"
            ),
            other => bail!(
                "tensor '{name}' is {}: only int8 activations are supported",
                tensor_type::name(other)
            ),
        }
        ensure!(
            self.data(&t)?.is_none(),
            "tensor '{name}' is a constant where an activation is expected"
        );
        let (scales, zero_points, _) = quantization(&t)?;
        ensure!(
            scales.len() == 1 && zero_points.len() <= 1,
            "tensor '{name}' must be quantized per tensor (has {} scales)",
            scales.len()
        );
        let zero_point = i32::try_from(zero_points.first().copied().unwrap_or(0))
            .ok()
            .filter(|z| (-128..=127).contains(z))
            .with_context(|| format!("tensor '{name}': zero point out of the int8 range"))?;
        let id = self.graph.add_tensor(TensorInfo {
            name,
            shape: self.shape(index)?,
            scale: scales[0],
            zero_point,
        });
        self.ids.insert(index, id);
        Ok(id)
    }

    /// Constant int8 weights, symmetric, per tensor or per channel along `axis`.
    fn weights(&self, index: usize, axis: usize) -> Result<Weights> {
        let t = self.tensor(index)?;
        let name = Self::name(&t);
        ensure!(
            t.dtype() == tensor_type::INT8,
            "weights '{name}' are {}, only int8 weights are supported",
            tensor_type::name(t.dtype())
        );
        let data = self
            .data(&t)?
            .with_context(|| format!("weights '{name}' are not constant"))?;
        let shape: Vec<usize> = t
            .shape()
            .map(|s| s.iter().map(|d| usize::try_from(d).unwrap_or(0)).collect())
            .unwrap_or_default();
        ensure!(
            data.len() == ir::elements(&shape),
            "weights '{name}': {} bytes for shape {shape:?}",
            data.len()
        );
        let (scales, zero_points, dim) = quantization(&t)?;
        if scales.len() > 1 {
            ensure!(
                dim == axis && shape.get(axis) == Some(&scales.len()),
                "weights '{name}': {} scales along dimension {dim} of {shape:?}, expected one per output channel (dimension {axis})",
                scales.len()
            );
        }
        ensure!(
            zero_points.iter().all(|&z| z == 0),
            "weights '{name}' have a non-zero zero point; int8 weights must be symmetric"
        );
        Ok(Weights {
            shape,
            data: data.iter().map(|&b| b as i8).collect(),
            scales,
        })
    }

    /// int32 bias, or zeros when the op has none.
    fn bias(&self, index: Option<usize>, channels: usize) -> Result<Vec<i32>> {
        let Some(index) = index else {
            return Ok(vec![0; channels]);
        };
        let t = self.tensor(index)?;
        let name = Self::name(&t);
        ensure!(
            t.dtype() == tensor_type::INT32,
            "bias '{name}' is {}, only int32 biases are supported",
            tensor_type::name(t.dtype())
        );
        let data = self
            .data(&t)?
            .with_context(|| format!("bias '{name}' is not constant"))?;
        ensure!(
            data.len() == channels * 4,
            "bias '{name}' has {} bytes for {channels} channels",
            data.len()
        );
        Ok(data
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// A constant or folded integer tensor.
    fn integers(&self, index: usize) -> Result<Folded> {
        if let Some(f) = self.folded.get(&index) {
            return Ok(f.clone());
        }
        let t = self.tensor(index)?;
        let name = Self::name(&t);
        let data = self.data(&t)?.with_context(|| {
            format!("tensor '{name}' is computed at run time; only constant shape arithmetic is supported")
        })?;
        let values: Vec<i64> = match t.dtype() {
            tensor_type::INT32 => data
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                .collect(),
            4 => data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
                .collect(),
            other => bail!(
                "tensor '{name}' is {}, expected an integer constant",
                tensor_type::name(other)
            ),
        };
        let shape: Vec<usize> = t
            .shape()
            .map(|s| s.iter().map(|d| usize::try_from(d).unwrap_or(0)).collect())
            .unwrap_or_default();
        ensure!(
            ir::elements(&shape) == values.len(),
            "tensor '{name}' has {} values for shape {shape:?}",
            values.len()
        );
        Ok(Folded { shape, values })
    }

    fn operator(&mut self, o: &Operator<'a>, code: i32) -> Result<()> {
        let ins = slots(o.inputs());
        let outs = indices(o.outputs());
        ensure!(outs.len() == 1, "{} outputs, expected 1", outs.len());
        let out = outs[0];
        let input = |k: usize| -> Result<usize> {
            ins.get(k)
                .copied()
                .flatten()
                .with_context(|| format!("input {k} is missing"))
        };
        match code {
            op::CONV_2D => {
                let opts: Conv2DOptions = o.options().context("missing Conv2DOptions")?;
                ensure!(
                    opts.dilation_h() == 1 && opts.dilation_w() == 1,
                    "dilation {}x{} is not supported (only 1)",
                    opts.dilation_h(),
                    opts.dilation_w()
                );
                let conv = self.conv(
                    &ins,
                    out,
                    0,
                    (opts.padding(), opts.stride_h(), opts.stride_w()),
                    opts.activation(),
                )?;
                self.graph.layers.push(Layer::Conv2d(conv));
            }
            op::DEPTHWISE_CONV_2D => {
                let opts: DepthwiseConv2DOptions =
                    o.options().context("missing DepthwiseConv2DOptions")?;
                ensure!(
                    opts.dilation_h() == 1 && opts.dilation_w() == 1,
                    "dilation {}x{} is not supported (only 1)",
                    opts.dilation_h(),
                    opts.dilation_w()
                );
                let conv = self.conv(
                    &ins,
                    out,
                    3,
                    (opts.padding(), opts.stride_h(), opts.stride_w()),
                    opts.activation(),
                )?;
                let channels = self.graph.tensor(conv.input)?.shape.last().copied();
                let filter_channels = conv.filter.shape.last().copied();
                if let (Some(c), Some(f), Ok(m)) = (
                    channels,
                    filter_channels,
                    usize::try_from(opts.depth_multiplier()),
                ) {
                    ensure!(
                        m == 0 || c.checked_mul(m) == Some(f),
                        "depth multiplier {m} does not match {c} input and {f} filter channels"
                    );
                }
                self.graph.layers.push(Layer::DepthwiseConv2d(conv));
            }
            op::MAX_POOL_2D | op::AVERAGE_POOL_2D => {
                let opts: Pool2DOptions = o.options().context("missing Pool2DOptions")?;
                let pool = ir::Pool {
                    input: self.activation(input(0)?)?,
                    output: self.activation(out)?,
                    padding: padding(opts.padding())?,
                    filter_h: positive(opts.filter_height(), "filter height")?,
                    filter_w: positive(opts.filter_width(), "filter width")?,
                    stride_h: positive(opts.stride_h(), "stride")?,
                    stride_w: positive(opts.stride_w(), "stride")?,
                    activation: activation(opts.activation())?,
                };
                self.graph.layers.push(if code == op::MAX_POOL_2D {
                    Layer::MaxPool(pool)
                } else {
                    Layer::AvgPool(pool)
                });
            }
            op::FULLY_CONNECTED => {
                let opts: FullyConnectedOptions =
                    o.options().context("missing FullyConnectedOptions")?;
                ensure!(
                    opts.weights_format() == 0,
                    "shuffled weights format {} is not supported",
                    opts.weights_format()
                );
                let weights = self.weights(input(1)?, 0)?;
                let outputs = match *weights.shape.as_slice() {
                    [o, _] => o,
                    _ => bail!("weights shape {:?} is not [outputs, inputs]", weights.shape),
                };
                let fc = ir::FullyConnected {
                    input: self.activation(input(0)?)?,
                    output: self.activation(out)?,
                    bias: self.bias(ins.get(2).copied().flatten(), outputs)?,
                    weights,
                    activation: activation(opts.activation())?,
                };
                self.graph.layers.push(Layer::FullyConnected(fc));
            }
            op::ADD => {
                let opts: AddOptions = o.options().context("missing AddOptions")?;
                let layer = Layer::Add {
                    input1: self.operand(input(0)?)?,
                    input2: self.operand(input(1)?)?,
                    output: self.activation(out)?,
                    activation: activation(opts.activation())?,
                };
                self.graph.layers.push(layer);
            }
            op::MUL => {
                let opts: MulOptions = o.options().context("missing MulOptions")?;
                let layer = Layer::Mul {
                    input1: self.operand(input(0)?)?,
                    input2: self.operand(input(1)?)?,
                    output: self.activation(out)?,
                    activation: activation(opts.activation())?,
                };
                self.graph.layers.push(layer);
            }
            op::SOFTMAX => {
                let opts: SoftmaxOptions = o.options().context("missing SoftmaxOptions")?;
                let layer = Layer::Softmax {
                    input: self.activation(input(0)?)?,
                    output: self.activation(out)?,
                    beta: opts.beta(),
                };
                self.graph.layers.push(layer);
            }
            op::RESHAPE => {
                let x = self.activation(input(0)?)?;
                let y = self.activation(out)?;
                let requested = match ins.get(1).copied().flatten() {
                    Some(shape) => Some(self.integers(shape)?.values),
                    None => o
                        .options::<ReshapeOptions>()
                        .and_then(|r| r.new_shape())
                        .map(|s| s.iter().map(i64::from).collect()),
                };
                let from = self.graph.tensor(x)?;
                let to = self.graph.tensor(y)?;
                if let Some(requested) = requested {
                    let mut target = fold::reshape_target(&requested, from.len())?;
                    // The requested shape keeps the batch the model was traced with.
                    if target.len() >= 2 {
                        target[0] = 1;
                    }
                    ensure!(
                        target == to.shape,
                        "reshape target {target:?} differs from the output shape {:?}",
                        to.shape
                    );
                }
                self.graph
                    .layers
                    .push(Layer::Reshape { input: x, output: y });
            }
            op::SHAPE => {
                let shape = self.shape(input(0)?)?;
                let values = shape.iter().map(|&d| d as i64).collect();
                self.folded.insert(out, Folded::vector(values));
            }
            op::STRIDED_SLICE => {
                let r = fold::strided_slice(
                    &self.integers(input(0)?)?,
                    &self.integers(input(1)?)?,
                    &self.integers(input(2)?)?,
                    &self.integers(input(3)?)?,
                    o.options::<StridedSliceOptions>(),
                )?;
                self.folded.insert(out, r);
            }
            op::PACK => {
                let values = ins
                    .iter()
                    .map(|i| self.integers(i.context("missing input")?))
                    .collect::<Result<Vec<_>>>()?;
                let r = fold::pack(&values, o.options::<PackOptions>())?;
                self.folded.insert(out, r);
            }
            op::LOGISTIC
            | op::TANH
            | op::HARD_SWISH
            | op::QUANTIZE
            | op::RELU
            | op::RELU6
            | op::RELU_N1_TO_1
            | op::LEAKY_RELU => {
                let x = input(0)?;
                ensure!(
                    self.tensor(x)?.dtype() == tensor_type::INT8,
                    "only int8 → int8 is supported here (float ↔ int8 conversions only at the model's input and output)"
                );
                let function = match code {
                    op::LOGISTIC => Elementwise::Logistic,
                    op::TANH => Elementwise::Tanh,
                    op::HARD_SWISH => Elementwise::HardSwish,
                    op::RELU => Elementwise::Relu,
                    op::RELU6 => Elementwise::Relu6,
                    op::RELU_N1_TO_1 => Elementwise::ReluN1To1,
                    op::LEAKY_RELU => Elementwise::LeakyRelu {
                        alpha: o
                            .options::<LeakyReluOptions>()
                            .context("missing LeakyReluOptions")?
                            .alpha(),
                    },
                    _ => Elementwise::Requantize,
                };
                let layer = Layer::Elementwise {
                    input: self.activation(x)?,
                    output: self.activation(out)?,
                    function,
                };
                self.graph.layers.push(layer);
            }
            op::MEAN => {
                let x = self.activation(input(0)?)?;
                let mut axes = self.integers(input(1)?)?.values;
                let rank = self.graph.tensor(x)?.shape.len() as i64;
                for a in &mut axes {
                    if *a < 0 {
                        *a += rank;
                    }
                }
                axes.sort_unstable();
                ensure!(
                    rank == 4 && axes == [1, 2],
                    "only a mean over height and width (axes 1 and 2 of a 4-D input) is supported, not axes {axes:?}"
                );
                let layer = Layer::Mean {
                    input: x,
                    output: self.activation(out)?,
                };
                self.graph.layers.push(layer);
            }
            op::PAD | op::PADV2 => {
                let x = self.activation(input(0)?)?;
                let y = self.activation(out)?;
                let values = self.integers(input(1)?)?.values;
                let rank = self.graph.tensor(x)?.shape.len();
                ensure!(
                    values.len() == 2 * rank && rank <= 4,
                    "paddings of {} values for a rank-{rank} input",
                    values.len()
                );
                if code == op::PADV2 {
                    let v = self.pad_value(input(2)?)?;
                    let zp = self.graph.tensor(y)?.zero_point;
                    ensure!(
                        v == i64::from(zp),
                        "padding with {v} instead of the zero point {zp} is not supported"
                    );
                }
                let mut paddings = [[0usize; 2]; 4];
                for (k, pair) in values.chunks_exact(2).enumerate() {
                    let ok = |v: i64| usize::try_from(v).context("negative padding");
                    paddings[4 - rank + k] = [ok(pair[0])?, ok(pair[1])?];
                }
                self.graph.layers.push(Layer::Pad {
                    input: x,
                    output: y,
                    paddings,
                });
            }
            op::CONCATENATION => {
                let inputs = ins
                    .iter()
                    .map(|i| self.activation(i.context("missing input")?))
                    .collect::<Result<Vec<_>>>()?;
                let y = self.activation(out)?;
                let out_shape = self.graph.tensor(y)?.shape.clone();
                let first = self.graph.tensor(inputs[0])?.shape.clone();
                // The axis is the one dimension along which the inputs and the output differ
                // (any axis copies a single input the same way).
                let lead = 4usize.saturating_sub(out_shape.len());
                let axis = (0..out_shape.len())
                    .find(|&a| first.get(a) != out_shape.get(a))
                    .unwrap_or(out_shape.len().saturating_sub(1));
                self.graph.layers.push(Layer::Concatenation {
                    inputs,
                    output: y,
                    axis: lead + axis,
                });
            }
            op::DEQUANTIZE => bail!(
                "float ↔ int8 conversions are supported only at the model's input and output"
            ),
            _ => bail!(
                "unsupported operator; fixnet supports CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, AVERAGE_POOL_2D, FULLY_CONNECTED, SOFTMAX, RESHAPE, ADD, MEAN, PAD, PADV2, CONCATENATION, LOGISTIC, TANH, HARD_SWISH and QUANTIZE/DEQUANTIZE (int8 requantization, or float at the model's edges)"
            ),
        }
        Ok(())
    }

    /// An operand of an element-wise binary op: an activation, or an int8 constant quantized
    /// per tensor (a scalar counts as shape `[1]`).
    fn operand(&mut self, index: usize) -> Result<TensorId> {
        if let Some(&id) = self.ids.get(&index) {
            return Ok(id);
        }
        let t = self.tensor(index)?;
        let Some(data) = self.data(&t)? else {
            return self.activation(index);
        };
        let name = Self::name(&t);
        ensure!(
            t.dtype() == tensor_type::INT8,
            "constant operand '{name}' is {}: only int8 constants are supported",
            tensor_type::name(t.dtype())
        );
        let (scales, zero_points, _) = quantization(&t)?;
        ensure!(
            scales.len() == 1 && zero_points.len() <= 1,
            "constant operand '{name}' must be quantized per tensor"
        );
        let zero_point = i32::try_from(zero_points.first().copied().unwrap_or(0))
            .ok()
            .filter(|z| (-128..=127).contains(z))
            .with_context(|| format!("constant '{name}': zero point out of the int8 range"))?;
        let mut shape = self.shape(index)?;
        if shape.is_empty() {
            shape = vec![1];
        }
        ensure!(
            ir::elements(&shape) == data.len(),
            "constant '{name}' has {} values for shape {shape:?}",
            data.len()
        );
        let id = self.graph.add_tensor(TensorInfo {
            name,
            shape,
            scale: scales[0],
            zero_point,
        });
        self.graph
            .constants
            .insert(id, data.iter().map(|&b| b as i8).collect());
        self.ids.insert(index, id);
        Ok(id)
    }

    /// The constant value of a PADV2 (an int8 or int32 scalar).
    fn pad_value(&self, index: usize) -> Result<i64> {
        let t = self.tensor(index)?;
        let data = self
            .data(&t)?
            .context("the padding value is computed at run time")?;
        match (t.dtype(), data) {
            (tensor_type::INT8, [v, ..]) => Ok(i64::from(*v as i8)),
            _ => Ok(self.integers(index)?.values.first().copied().unwrap_or(0)),
        }
    }

    fn conv(
        &mut self,
        ins: &[Option<usize>],
        out: usize,
        axis: usize,
        (pad, stride_h, stride_w): (i8, i32, i32),
        act: i8,
    ) -> Result<Conv> {
        let x = ins.first().copied().flatten().context("input is missing")?;
        let w = ins.get(1).copied().flatten().context("filter is missing")?;
        let filter = self.weights(w, axis)?;
        ensure!(
            filter.shape.len() == 4,
            "filter shape {:?} is not 4-D",
            filter.shape
        );
        let channels = filter.shape[axis];
        Ok(Conv {
            input: self.activation(x)?,
            output: self.activation(out)?,
            bias: self.bias(ins.get(2).copied().flatten(), channels)?,
            filter,
            padding: padding(pad)?,
            stride_h: positive(stride_h, "stride")?,
            stride_w: positive(stride_w, "stride")?,
            activation: activation(act)?,
        })
    }
}

/// Scales, zero points and quantized dimension of a tensor.
fn quantization(t: &TensorDef<'_>) -> Result<(Vec<f32>, Vec<i64>, usize)> {
    let name = t.name().unwrap_or("?");
    let q = t
        .quantization()
        .with_context(|| format!("tensor '{name}' is not quantized"))?;
    ensure!(
        q.details_type() == 0,
        "tensor '{name}' uses custom quantization"
    );
    let scales: Vec<f32> = q.scale().map(|s| s.iter().collect()).unwrap_or_default();
    let zero_points: Vec<i64> = q
        .zero_point()
        .map(|z| z.iter().collect())
        .unwrap_or_default();
    ensure!(
        !scales.is_empty(),
        "tensor '{name}' has no quantization scale"
    );
    ensure!(
        zero_points.len() <= 1 || zero_points.len() == scales.len(),
        "tensor '{name}' has {} zero points for {} scales",
        zero_points.len(),
        scales.len()
    );
    ensure!(
        scales.iter().all(|s| s.is_finite() && *s >= 0.0),
        "tensor '{name}' has an invalid scale"
    );
    let dim = usize::try_from(q.quantized_dimension())
        .with_context(|| format!("tensor '{name}' has a negative quantized dimension"))?;
    Ok((scales, zero_points, dim))
}

fn padding(code: i8) -> Result<Padding> {
    match code {
        0 => Ok(Padding::Same),
        1 => Ok(Padding::Valid),
        other => bail!("unknown padding {other}"),
    }
}

fn activation(code: i8) -> Result<Activation> {
    Ok(match code {
        0 => Activation::None,
        1 => Activation::Relu,
        3 => Activation::Relu6,
        other => {
            let name = match other {
                2 => "RELU_N1_TO_1",
                4 => "TANH",
                5 => "SIGN_BIT",
                _ => "unknown",
            };
            bail!("fused activation {name} ({other}) is not supported (NONE, RELU and RELU6 are)")
        }
    })
}

fn positive(v: i32, what: &str) -> Result<usize> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .with_context(|| format!("{what} {v} is not positive"))
}
