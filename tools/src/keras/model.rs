//! The float model: Keras layers turned into fixnet-shaped float ops with weights in fixnet's
//! layouts, and float inference through the core's float32 reference kernels.

use super::config::{LayerSpec, ModelSpec};
use super::hdf5::Array;
use super::KerasError;
use fixnet::float::{self, Activation};
use fixnet::{Padding, Shape, Window};

/// A float Keras model: a graph of ops in execution order, ready to run or quantize.
///
/// Values are numbered: 0 is the model input, `k + 1` the output of op `k`.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatModel {
    /// The model's name from its config.
    pub name: String,
    /// Input shape (batch 1, NHWC; a vector input is `1 × 1 × n`).
    pub input: Shape,
    /// Input dims as Keras has them, without the batch (`[28, 28, 1]`, `[784]`).
    pub input_dims: Vec<usize>,
    /// The ops in execution order; each reads the input or earlier ops' outputs.
    pub layers: Vec<FloatLayer>,
    /// The value that is the model's output.
    pub output: usize,
}

/// One float op and the shape it produces.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatLayer {
    /// Name of the Keras layer this op comes from (a Dense with a softmax activation gives a
    /// `Dense` op and a `Softmax` op, both under the Dense's name).
    pub name: String,
    /// What the op computes.
    pub op: FloatOp,
    /// The values it reads (0 = the model input, `k + 1` = op `k`'s output), in order.
    pub inputs: Vec<usize>,
    /// Output shape (batch 1, NHWC).
    pub output: Shape,
    /// Output dims as Keras has them, without the batch.
    pub output_dims: Vec<usize>,
}

/// A float op with its weights in fixnet's layouts.
#[derive(Clone, Debug, PartialEq)]
pub enum FloatOp {
    /// 2-D convolution; `filter` is OHWI `[out_channels, kernel_h, kernel_w, in_channels]`.
    Conv2d {
        /// Filter values, OHWI.
        filter: Vec<f32>,
        /// One bias per output channel (zeros when the layer had none).
        bias: Vec<f32>,
        /// Kernel rows.
        kernel_h: usize,
        /// Kernel columns.
        kernel_w: usize,
        /// Vertical stride.
        stride_h: usize,
        /// Horizontal stride.
        stride_w: usize,
        /// Padding scheme.
        padding: Padding,
        /// Fused activation.
        act: Activation,
    },
    /// Depthwise convolution; `filter` is `[1, kernel_h, kernel_w, C·M]`, output channel
    /// `c·M + m` reading input channel `c`.
    DepthwiseConv2d {
        /// Filter values.
        filter: Vec<f32>,
        /// One bias per output channel.
        bias: Vec<f32>,
        /// Kernel rows.
        kernel_h: usize,
        /// Kernel columns.
        kernel_w: usize,
        /// Vertical stride.
        stride_h: usize,
        /// Horizontal stride.
        stride_w: usize,
        /// Padding scheme.
        padding: Padding,
        /// Output channels per input channel.
        depth_multiplier: usize,
        /// Fused activation.
        act: Activation,
    },
    /// Max pooling.
    MaxPool(PoolParams),
    /// Average pooling (the divisor counts only the taps inside the input).
    AvgPool(PoolParams),
    /// Flatten or Reshape: same values, new shape.
    Reshape,
    /// Fully connected; `filter` is `[outputs, inputs]`.
    Dense {
        /// Weights, one row of inputs per output.
        filter: Vec<f32>,
        /// One bias per output.
        bias: Vec<f32>,
        /// Fused activation.
        act: Activation,
    },
    /// Softmax over the innermost dimension.
    Softmax,
    /// Element-wise sum of its two inputs (same shape).
    Add {
        /// Fused activation.
        act: Activation,
    },
    /// Zero padding of an `H × W × C` input (a ZeroPadding2D that no convolution absorbs).
    Pad {
        /// Rows added above and below.
        rows: (usize, usize),
        /// Columns added left and right.
        cols: (usize, usize),
    },
}

/// Window of a pooling op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolParams {
    /// Window rows.
    pub kernel_h: usize,
    /// Window columns.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Padding scheme.
    pub padding: Padding,
    /// Fused activation (from a following standalone ReLU layer).
    pub act: Activation,
}

/// Where a layer's weights come from: the layer's variables in Keras order (kernel, then bias).
pub(crate) trait WeightSource {
    /// The variables of `layer`, which is the `position`-th non-input layer of the model.
    fn layer_weights(&self, layer: &LayerSpec, position: usize) -> Result<Vec<Array>, KerasError>;
}

/// A Keras activation as the importer understands it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KerasActivation {
    Linear,
    Relu,
    Relu6,
    Softmax,
}

impl KerasActivation {
    pub(super) fn fused(self) -> Option<Activation> {
        match self {
            KerasActivation::Linear => Some(Activation::None),
            KerasActivation::Relu => Some(Activation::Relu),
            KerasActivation::Relu6 => Some(Activation::Relu6),
            KerasActivation::Softmax => None,
        }
    }
}

/// Reads a layer's `activation` (a name, or Keras 3's serialized function object).
pub(super) fn activation(layer: &LayerSpec) -> Result<KerasActivation, KerasError> {
    let name = match layer.config.get("activation") {
        None | Some(serde_json::Value::Null) => return Ok(KerasActivation::Linear),
        Some(serde_json::Value::String(s)) => s.as_str(),
        Some(v) => v
            .get("config")
            .and_then(|c| {
                c.as_str()
                    .or_else(|| c.get("name").and_then(|n| n.as_str()))
            })
            .ok_or_else(|| layer.unsupported(format!("activation {v} is not a plain name")))?,
    };
    match name {
        "linear" => Ok(KerasActivation::Linear),
        "relu" => Ok(KerasActivation::Relu),
        "relu6" => Ok(KerasActivation::Relu6),
        "softmax" => Ok(KerasActivation::Softmax),
        other => Err(layer.unsupported(format!(
            "activation '{other}' (supported: linear, relu, relu6, softmax)"
        ))),
    }
}

pub(super) fn padding(layer: &LayerSpec) -> Result<Padding, KerasError> {
    match layer.str_field("padding").unwrap_or("valid") {
        "valid" => Ok(Padding::Valid),
        "same" => Ok(Padding::Same),
        other => Err(layer.unsupported(format!("padding '{other}' (supported: valid, same)"))),
    }
}

pub(super) fn check_channels_last(layer: &LayerSpec) -> Result<(), KerasError> {
    match layer.str_field("data_format") {
        None | Some("channels_last") => Ok(()),
        Some(other) => Err(layer.unsupported(format!(
            "data_format '{other}' (only channels_last is supported)"
        ))),
    }
}

pub(super) fn check_no_dilation(layer: &LayerSpec) -> Result<(), KerasError> {
    if layer.config.get("dilation_rate").is_some() && layer.pair_field("dilation_rate")? != (1, 1) {
        return Err(layer.unsupported("dilation_rate other than 1"));
    }
    Ok(())
}

/// Number of elements of `dims`, `None` on overflow.
pub(super) fn checked_len(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Keras tensor dims without the batch, tracked next to fixnet's shape because Keras layers
/// (Dense, Conv2D) care about the rank, which `Shape` does not keep.
pub(super) fn shape_of(dims: &[usize]) -> Option<Shape> {
    match *dims {
        [n] => Some(Shape::new(1, 1, n)),
        [w, c] => Some(Shape::new(1, w, c)),
        [h, w, c] => Some(Shape::new(h, w, c)),
        _ => None,
    }
}

pub(super) fn expect_shape(
    layer: &LayerSpec,
    what: &str,
    array: &Array,
    want: &[usize],
) -> Result<(), KerasError> {
    if array.shape != want {
        return Err(KerasError::Weights {
            layer: layer.name.clone(),
            reason: format!("{what} has shape {:?}, expected {want:?}", array.shape),
        });
    }
    Ok(())
}

/// Splits a weighted layer's variables into kernel and bias (zeros when `use_bias` is off).
pub(super) fn kernel_and_bias(
    layer: &LayerSpec,
    mut vars: Vec<Array>,
    kernel_shape: &[usize],
    outputs: usize,
) -> Result<(Array, Vec<f32>), KerasError> {
    let use_bias = layer.bool_field("use_bias", true);
    let want = if use_bias { 2 } else { 1 };
    if vars.len() != want {
        return Err(KerasError::Weights {
            layer: layer.name.clone(),
            reason: format!("found {} weight arrays, expected {want}", vars.len()),
        });
    }
    let bias = if use_bias { vars.pop() } else { None };
    let kernel = vars.pop().unwrap_or_else(|| Array {
        shape: vec![],
        data: vec![],
    });
    // The kernel's real data bounds `outputs`, so check it before allocating a zero bias.
    expect_shape(layer, "kernel", &kernel, kernel_shape)?;
    let bias = match bias {
        Some(bias) => {
            expect_shape(layer, "bias", &bias, &[outputs])?;
            bias.data
        }
        None => vec![0.0; outputs],
    };
    Ok((kernel, bias))
}

impl FloatModel {
    /// Builds the float model from an architecture and a weight source.
    pub(crate) fn build(spec: &ModelSpec, weights: &dyn WeightSource) -> Result<Self, KerasError> {
        super::build::build(spec, weights)
    }

    /// The Keras dims of value `v` (0 = the input, `k + 1` = op `k`'s output).
    pub fn value_dims(&self, v: usize) -> Option<&[usize]> {
        match v {
            0 => Some(&self.input_dims),
            _ => self.layers.get(v - 1).map(|l| l.output_dims.as_slice()),
        }
    }

    fn value_shape(&self, v: usize) -> Option<Shape> {
        match v {
            0 => Some(self.input),
            _ => self.layers.get(v - 1).map(|l| l.output),
        }
    }

    /// Runs the model on one input (`input.len()` must be the input shape's size) and returns
    /// the output values.
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>, KerasError> {
        self.run_observed(input, |_, _| {})
    }

    /// Runs the model, calling `after(op_index, output)` after each op (used for calibration).
    pub fn run_observed(
        &self,
        input: &[f32],
        mut after: impl FnMut(usize, &[f32]),
    ) -> Result<Vec<f32>, KerasError> {
        if input.len() != self.input.len() {
            return Err(KerasError::Calibration(format!(
                "input has {} values, the model takes {} ({}x{}x{})",
                input.len(),
                self.input.len(),
                self.input.height,
                self.input.width,
                self.input.channels
            )));
        }
        let mut values: Vec<Vec<f32>> = Vec::with_capacity(self.layers.len() + 1);
        values.push(input.to_vec());
        for (index, layer) in self.layers.iter().enumerate() {
            let mut out = vec![0.0f32; layer.output.len()];
            let fail = |source| KerasError::Inference {
                layer: layer.name.clone(),
                source,
            };
            let read = |i: usize| {
                layer
                    .inputs
                    .get(i)
                    .filter(|&&v| v < values.len())
                    .map(|&v| (values[v].as_slice(), self.value_shape(v)))
                    .and_then(|(x, s)| s.map(|s| (x, s)))
                    .ok_or_else(|| fail(fixnet::Error::BadOpOrder))
            };
            let (current, in_shape) = read(0)?;
            match &layer.op {
                FloatOp::Conv2d {
                    filter,
                    bias,
                    kernel_h,
                    kernel_w,
                    stride_h,
                    stride_w,
                    padding,
                    act,
                } => {
                    let (window, _, _) = Window::new(
                        *padding, in_shape, *kernel_h, *kernel_w, *stride_h, *stride_w,
                    )
                    .map_err(fail)?;
                    float::conv2d(
                        current,
                        in_shape,
                        filter,
                        bias,
                        &window,
                        *act,
                        &mut out,
                        layer.output,
                    )
                    .map_err(fail)?;
                }
                FloatOp::DepthwiseConv2d {
                    filter,
                    bias,
                    kernel_h,
                    kernel_w,
                    stride_h,
                    stride_w,
                    padding,
                    depth_multiplier,
                    act,
                } => {
                    let (window, _, _) = Window::new(
                        *padding, in_shape, *kernel_h, *kernel_w, *stride_h, *stride_w,
                    )
                    .map_err(fail)?;
                    float::depthwise_conv2d(
                        current,
                        in_shape,
                        filter,
                        bias,
                        &window,
                        *depth_multiplier,
                        *act,
                        &mut out,
                        layer.output,
                    )
                    .map_err(fail)?;
                }
                FloatOp::MaxPool(p) | FloatOp::AvgPool(p) => {
                    let (window, _, _) = Window::new(
                        p.padding, in_shape, p.kernel_h, p.kernel_w, p.stride_h, p.stride_w,
                    )
                    .map_err(fail)?;
                    let pool = if matches!(layer.op, FloatOp::MaxPool(_)) {
                        float::max_pool
                    } else {
                        float::avg_pool
                    };
                    pool(current, in_shape, &window, p.act, &mut out, layer.output)
                        .map_err(fail)?;
                }
                FloatOp::Reshape => {
                    if current.len() != out.len() {
                        return Err(fail(fixnet::Error::ShapeMismatch));
                    }
                    out.copy_from_slice(current);
                }
                FloatOp::Pad { rows, cols } => {
                    let (h, w, c) = (in_shape.height, in_shape.width, in_shape.channels);
                    let out_w = cols.0 + w + cols.1;
                    if current.len() != h * w * c || out.len() != (rows.0 + h + rows.1) * out_w * c
                    {
                        return Err(fail(fixnet::Error::ShapeMismatch));
                    }
                    for (y, row) in current.chunks_exact(w * c).enumerate() {
                        let at = ((rows.0 + y) * out_w + cols.0) * c;
                        out[at..at + w * c].copy_from_slice(row);
                    }
                }
                FloatOp::Add { act } => {
                    let (other, _) = read(1)?;
                    if current.len() != out.len() || other.len() != out.len() {
                        return Err(fail(fixnet::Error::ShapeMismatch));
                    }
                    for ((o, &a), &b) in out.iter_mut().zip(current).zip(other) {
                        *o = act.apply(a + b);
                    }
                }
                FloatOp::Dense { filter, bias, act } => {
                    float::fully_connected(current, filter, bias, *act, &mut out).map_err(fail)?;
                }
                FloatOp::Softmax => {
                    float::softmax(current, layer.output.channels, 1.0, &mut out).map_err(fail)?;
                }
            }
            after(index, &out);
            values.push(out);
        }
        values.get(self.output).cloned().ok_or_else(|| {
            KerasError::Calibration(format!("the model output {} does not exist", self.output))
        })
    }

    /// Classifies a grey image (one byte per pixel, fed as `pixel / 255` like the Keras
    /// training pipeline): the index of the highest output, the first one on ties.
    pub fn classify_grey(&self, pixels: &[u8]) -> Result<usize, KerasError> {
        let input: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
        Ok(argmax(&self.run(&input)?))
    }
}

/// Index of the largest value, the first one on ties (0 when empty).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Resolves a Reshape layer's `target_shape` (one `-1` allowed) against its input.
pub(super) fn reshape_target(layer: &LayerSpec, dims: &[usize]) -> Result<Vec<usize>, KerasError> {
    let total: usize = dims.iter().product();
    let target = layer
        .field("target_shape")?
        .as_array()
        .ok_or_else(|| layer.unsupported("target_shape is not a list"))?;
    let mut out = Vec::with_capacity(target.len());
    let mut unknown = None;
    for (i, d) in target.iter().enumerate() {
        match d.as_i64() {
            Some(-1) if unknown.is_none() => {
                unknown = Some(i);
                out.push(1);
            }
            Some(n) if n > 0 => out.push(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => return Err(layer.unsupported(format!("target_shape {target:?}"))),
        }
    }
    let known = checked_len(&out).unwrap_or(0);
    if let Some(i) = unknown {
        if known == 0 || total % known != 0 {
            return Err(layer.unsupported(format!("target_shape {target:?} does not fit {dims:?}")));
        }
        out[i] = total / known;
    }
    if checked_len(&out) != Some(total) {
        return Err(layer.unsupported(format!("target_shape {target:?} does not fit {dims:?}")));
    }
    Ok(out)
}

/// Keras's HWIO convolution kernel → fixnet's OHWI.
pub(super) fn hwio_to_ohwi(k: &[f32], kh: usize, kw: usize, ci: usize, co: usize) -> Vec<f32> {
    let mut out = vec![0.0; k.len()];
    for h in 0..kh {
        for w in 0..kw {
            for i in 0..ci {
                for o in 0..co {
                    out[((o * kh + h) * kw + w) * ci + i] = k[((h * kw + w) * ci + i) * co + o];
                }
            }
        }
    }
    out
}

/// Keras's `(inputs, outputs)` Dense kernel → fixnet's `[outputs, inputs]`.
pub(super) fn transpose(k: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; k.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = k[r * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwio_becomes_ohwi() {
        // kh=1, kw=2, ci=2, co=3: value encodes (h, w, i, o).
        let mut k = vec![];
        for w in 0..2 {
            for i in 0..2 {
                for o in 0..3 {
                    k.push((w * 100 + i * 10 + o) as f32);
                }
            }
        }
        let t = hwio_to_ohwi(&k, 1, 2, 2, 3);
        // OHWI index of (o=2, h=0, w=1, i=0) = ((2*1+0)*2+1)*2+0 = 10.
        assert_eq!(t[10], 102.0);
        assert_eq!(t[0], 0.0);
        // (o=1, h=0, w=0, i=1): index ((1*1+0)*2+0)*2+1 = 5.
        assert_eq!(t[5], 11.0);
    }

    #[test]
    fn dense_kernel_is_transposed() {
        let k = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 2 inputs x 3 outputs
        assert_eq!(transpose(&k, 2, 3), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
    }
}
