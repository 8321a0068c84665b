//! The float model: Keras layers turned into fixnet-shaped float ops with weights in fixnet's
//! layouts, and float inference through the core's float32 reference kernels.

use super::config::{LayerSpec, ModelSpec};
use super::hdf5::Array;
use super::KerasError;
use fixnet::float::{self, Activation};
use fixnet::{Padding, Shape, Window};

/// A float Keras model in execution order, ready to run or quantize.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatModel {
    /// The model's name from its config.
    pub name: String,
    /// Input shape (batch 1, NHWC; a vector input is `1 × 1 × n`).
    pub input: Shape,
    /// Input dims as Keras has them, without the batch (`[28, 28, 1]`, `[784]`).
    pub input_dims: Vec<usize>,
    /// The ops, each reading the previous one's output (the first reads the input).
    pub layers: Vec<FloatLayer>,
}

/// One float op and the shape it produces.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatLayer {
    /// Name of the Keras layer this op comes from (a Dense with a softmax activation gives a
    /// `Dense` op and a `Softmax` op, both under the Dense's name).
    pub name: String,
    /// What the op computes.
    pub op: FloatOp,
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
enum KerasActivation {
    Linear,
    Relu,
    Relu6,
    Softmax,
}

impl KerasActivation {
    fn fused(self) -> Option<Activation> {
        match self {
            KerasActivation::Linear => Some(Activation::None),
            KerasActivation::Relu => Some(Activation::Relu),
            KerasActivation::Relu6 => Some(Activation::Relu6),
            KerasActivation::Softmax => None,
        }
    }
}

/// Reads a layer's `activation` (a name, or Keras 3's serialized function object).
fn activation(layer: &LayerSpec) -> Result<KerasActivation, KerasError> {
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

fn padding(layer: &LayerSpec) -> Result<Padding, KerasError> {
    match layer.str_field("padding").unwrap_or("valid") {
        "valid" => Ok(Padding::Valid),
        "same" => Ok(Padding::Same),
        other => Err(layer.unsupported(format!("padding '{other}' (supported: valid, same)"))),
    }
}

fn check_channels_last(layer: &LayerSpec) -> Result<(), KerasError> {
    match layer.str_field("data_format") {
        None | Some("channels_last") => Ok(()),
        Some(other) => Err(layer.unsupported(format!(
            "data_format '{other}' (only channels_last is supported)"
        ))),
    }
}

fn check_no_dilation(layer: &LayerSpec) -> Result<(), KerasError> {
    if layer.config.get("dilation_rate").is_some() && layer.pair_field("dilation_rate")? != (1, 1) {
        return Err(layer.unsupported("dilation_rate other than 1"));
    }
    Ok(())
}

/// Number of elements of `dims`, `None` on overflow.
fn checked_len(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// Keras tensor dims without the batch, tracked next to fixnet's shape because Keras layers
/// (Dense, Conv2D) care about the rank, which `Shape` does not keep.
fn shape_of(dims: &[usize]) -> Option<Shape> {
    match *dims {
        [n] => Some(Shape::new(1, 1, n)),
        [w, c] => Some(Shape::new(1, w, c)),
        [h, w, c] => Some(Shape::new(h, w, c)),
        _ => None,
    }
}

fn expect_shape(
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
fn kernel_and_bias(
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

/// Ops appended for one Keras layer.
struct Emitted {
    ops: Vec<FloatOp>,
    dims: Vec<usize>,
}

impl FloatModel {
    /// Builds the float model from an architecture and a weight source.
    pub(crate) fn build(spec: &ModelSpec, weights: &dyn WeightSource) -> Result<Self, KerasError> {
        let mut dims = spec.input_shape.clone().ok_or_else(|| {
            KerasError::Config("the config does not state the model's input shape".into())
        })?;
        let input = shape_of(&dims).ok_or_else(|| {
            KerasError::Config(format!(
                "input shape {dims:?} is not supported (rank 1 to 3 without the batch)"
            ))
        })?;
        // Every later tensor is bounded by the input and the (real) weights, so bounding the
        // input keeps all element counts far from overflow.
        if input.is_empty() || checked_len(&dims).is_none_or(|n| n > 1 << 28) {
            return Err(KerasError::Config(format!(
                "input shape {dims:?} is empty or too large"
            )));
        }
        let input_dims = dims.clone();
        let mut layers: Vec<FloatLayer> = Vec::new();
        for (position, layer) in spec.layers.iter().enumerate() {
            let emitted = Self::layer(layer, position, &dims, weights, layers.last_mut())?;
            dims = emitted.dims;
            let output = shape_of(&dims).ok_or_else(|| {
                layer.unsupported(format!("its output rank {} is above 3", dims.len()))
            })?;
            for op in emitted.ops {
                layers.push(FloatLayer {
                    name: layer.name.clone(),
                    op,
                    output,
                    output_dims: dims.clone(),
                });
            }
        }
        if layers.is_empty() {
            return Err(KerasError::Config("the model has no layers".into()));
        }
        Ok(FloatModel {
            name: spec.name.clone(),
            input,
            input_dims,
            layers,
        })
    }

    /// Translates one Keras layer reading a tensor of `dims`. `previous` is the last op so far,
    /// into which a standalone activation is fused.
    fn layer(
        layer: &LayerSpec,
        position: usize,
        dims: &[usize],
        weights: &dyn WeightSource,
        previous: Option<&mut FloatLayer>,
    ) -> Result<Emitted, KerasError> {
        let same = |ops| Emitted {
            ops,
            dims: dims.to_vec(),
        };
        match layer.class.as_str() {
            "Conv2D" | "DepthwiseConv2D" => {
                check_channels_last(layer)?;
                check_no_dilation(layer)?;
                let &[in_h, in_w, in_c] = dims else {
                    return Err(layer.unsupported(format!(
                        "its input has shape {dims:?}; a 2-D convolution needs height, width and channels"
                    )));
                };
                let depthwise = layer.class == "DepthwiseConv2D";
                if !depthwise
                    && layer
                        .config
                        .get("groups")
                        .and_then(|g| g.as_u64())
                        .unwrap_or(1)
                        != 1
                {
                    return Err(layer.unsupported("grouped convolution (groups > 1)"));
                }
                let (kernel_h, kernel_w) = layer.pair_field("kernel_size")?;
                let (stride_h, stride_w) = layer.pair_field("strides")?;
                let padding = padding(layer)?;
                let act = activation(layer)?;
                let input = Shape::new(in_h, in_w, in_c);
                let (_, out_h, out_w) = Window::new(
                    padding, input, kernel_h, kernel_w, stride_h, stride_w,
                )
                .map_err(|_| {
                    layer.unsupported(format!("its window does not fit the input {dims:?}"))
                })?;
                let vars = weights.layer_weights(layer, position)?;
                let (op, out_c) = if depthwise {
                    let m = layer.usize_field("depth_multiplier")?;
                    let out_c = in_c * m;
                    let (kernel, bias) =
                        kernel_and_bias(layer, vars, &[kernel_h, kernel_w, in_c, m], out_c)?;
                    // Keras's (KH, KW, C, M) in row-major order already is fixnet's
                    // [1, KH, KW, C·M] with channel c·M + m.
                    let op = FloatOp::DepthwiseConv2d {
                        filter: kernel.data,
                        bias,
                        kernel_h,
                        kernel_w,
                        stride_h,
                        stride_w,
                        padding,
                        depth_multiplier: m,
                        act: act.fused().unwrap_or(Activation::None),
                    };
                    (op, out_c)
                } else {
                    let out_c = layer.usize_field("filters")?;
                    let (kernel, bias) =
                        kernel_and_bias(layer, vars, &[kernel_h, kernel_w, in_c, out_c], out_c)?;
                    let op = FloatOp::Conv2d {
                        filter: hwio_to_ohwi(&kernel.data, kernel_h, kernel_w, in_c, out_c),
                        bias,
                        kernel_h,
                        kernel_w,
                        stride_h,
                        stride_w,
                        padding,
                        act: act.fused().unwrap_or(Activation::None),
                    };
                    (op, out_c)
                };
                let mut ops = vec![op];
                if act == KerasActivation::Softmax {
                    ops.push(FloatOp::Softmax);
                }
                Ok(Emitted {
                    ops,
                    dims: vec![out_h, out_w, out_c],
                })
            }
            "MaxPooling2D" | "AveragePooling2D" => {
                check_channels_last(layer)?;
                let &[in_h, in_w, in_c] = dims else {
                    return Err(layer.unsupported(format!(
                        "its input has shape {dims:?}; 2-D pooling needs height, width and channels"
                    )));
                };
                let (kernel_h, kernel_w) = layer.pair_field("pool_size")?;
                let (stride_h, stride_w) = match layer.config.get("strides") {
                    None | Some(serde_json::Value::Null) => (kernel_h, kernel_w),
                    Some(_) => layer.pair_field("strides")?,
                };
                let padding = padding(layer)?;
                let (_, out_h, out_w) = Window::new(
                    padding,
                    Shape::new(in_h, in_w, in_c),
                    kernel_h,
                    kernel_w,
                    stride_h,
                    stride_w,
                )
                .map_err(|_| {
                    layer.unsupported(format!("its window does not fit the input {dims:?}"))
                })?;
                let params = PoolParams {
                    kernel_h,
                    kernel_w,
                    stride_h,
                    stride_w,
                    padding,
                    act: Activation::None,
                };
                let op = if layer.class == "MaxPooling2D" {
                    FloatOp::MaxPool(params)
                } else {
                    FloatOp::AvgPool(params)
                };
                Ok(Emitted {
                    ops: vec![op],
                    dims: vec![out_h, out_w, in_c],
                })
            }
            "Flatten" => {
                // NHWC memory order is the flattened order (as in TFLite), so this is a
                // reshape even for channels_first's declared data_format on a 1-channel input;
                // anything else would need a transpose.
                if layer.str_field("data_format") == Some("channels_first")
                    && dims.len() > 1
                    && dims.last() != Some(&1)
                {
                    return Err(layer.unsupported("channels_first flattening needs a transpose"));
                }
                Ok(Emitted {
                    ops: vec![FloatOp::Reshape],
                    dims: vec![dims.iter().product()],
                })
            }
            "Reshape" => {
                let target = reshape_target(layer, dims)?;
                Ok(Emitted {
                    ops: vec![FloatOp::Reshape],
                    dims: target,
                })
            }
            "Dense" => {
                if layer
                    .config
                    .get("quantization_config")
                    .is_some_and(|q| !q.is_null())
                {
                    return Err(layer.unsupported("Keras-quantized Dense (quantization_config)"));
                }
                let inputs = *dims.last().unwrap_or(&0);
                if dims.iter().rev().skip(1).any(|&d| d != 1) {
                    return Err(layer.unsupported(format!(
                        "its input has shape {dims:?}; Dense on a multi-dimensional input works \
                         per position, add a Flatten before it"
                    )));
                }
                let units = layer.usize_field("units")?;
                let act = activation(layer)?;
                let vars = weights.layer_weights(layer, position)?;
                let (kernel, bias) = kernel_and_bias(layer, vars, &[inputs, units], units)?;
                let mut ops = vec![FloatOp::Dense {
                    filter: transpose(&kernel.data, inputs, units),
                    bias,
                    act: act.fused().unwrap_or(Activation::None),
                }];
                if act == KerasActivation::Softmax {
                    ops.push(FloatOp::Softmax);
                }
                let mut out = dims[..dims.len().saturating_sub(1)].to_vec();
                out.push(units);
                Ok(Emitted { ops, dims: out })
            }
            "Activation" => {
                let act = activation(layer)?;
                standalone_activation(layer, act, previous, dims)
            }
            "ReLU" => {
                let max = layer.config.get("max_value").and_then(|v| v.as_f64());
                let slope = layer
                    .config
                    .get("negative_slope")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0);
                let threshold = layer
                    .config
                    .get("threshold")
                    .and_then(|v| v.as_f64())
                    .unwrap_or(0.0);
                if slope != 0.0 || threshold != 0.0 {
                    return Err(layer.unsupported("ReLU with a negative slope or threshold"));
                }
                let act = match max {
                    None => KerasActivation::Relu,
                    Some(6.0) => KerasActivation::Relu6,
                    Some(m) => return Err(layer.unsupported(format!("ReLU with max_value {m}"))),
                };
                standalone_activation(layer, act, previous, dims)
            }
            "Softmax" => {
                let axis = layer.config.get("axis");
                let last = axis.is_none_or(|a| {
                    a.as_i64() == Some(-1)
                        || a.as_i64() == i64::try_from(dims.len()).ok()
                        || a.as_array()
                            .is_some_and(|v| v.len() == 1 && v[0].as_i64() == Some(-1))
                });
                if !last {
                    return Err(layer.unsupported(format!(
                        "softmax over axis {}",
                        axis.map_or("?".into(), |a| a.to_string())
                    )));
                }
                Ok(same(vec![FloatOp::Softmax]))
            }
            // Identity at inference time.
            "Dropout" => Ok(same(vec![])),
            _ => Err(layer.unsupported(
                "no fixnet equivalent (supported layers: InputLayer, Conv2D, \
                 DepthwiseConv2D, MaxPooling2D, AveragePooling2D, Flatten, Reshape, Dense, \
                 Activation, ReLU, Softmax, Dropout)",
            )),
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
        let mut current = input.to_vec();
        let mut in_shape = self.input;
        for (index, layer) in self.layers.iter().enumerate() {
            let mut out = vec![0.0f32; layer.output.len()];
            let fail = |source| KerasError::Inference {
                layer: layer.name.clone(),
                source,
            };
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
                        &current,
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
                        &current,
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
                    pool(&current, in_shape, &window, p.act, &mut out, layer.output)
                        .map_err(fail)?;
                }
                FloatOp::Reshape => out.copy_from_slice(&current),
                FloatOp::Dense { filter, bias, act } => {
                    float::fully_connected(&current, filter, bias, *act, &mut out).map_err(fail)?;
                }
                FloatOp::Softmax => {
                    float::softmax(&current, layer.output.channels, 1.0, &mut out).map_err(fail)?;
                }
            }
            after(index, &out);
            current = out;
            in_shape = layer.output;
        }
        Ok(current)
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

/// Fuses a standalone activation layer into the op before it.
fn standalone_activation(
    layer: &LayerSpec,
    act: KerasActivation,
    previous: Option<&mut FloatLayer>,
    dims: &[usize],
) -> Result<Emitted, KerasError> {
    let same = |ops| Emitted {
        ops,
        dims: dims.to_vec(),
    };
    let fused = match act.fused() {
        None => return Ok(same(vec![FloatOp::Softmax])),
        Some(Activation::None) => return Ok(same(vec![])),
        Some(f) => f,
    };
    let slot = previous.and_then(|p| match &mut p.op {
        FloatOp::Conv2d { act, .. }
        | FloatOp::DepthwiseConv2d { act, .. }
        | FloatOp::Dense { act, .. } => Some(act),
        FloatOp::MaxPool(p) | FloatOp::AvgPool(p) => Some(&mut p.act),
        FloatOp::Reshape | FloatOp::Softmax => None,
    });
    match slot {
        Some(a) if *a == Activation::None => {
            *a = fused;
            Ok(same(vec![]))
        }
        _ => Err(layer.unsupported(
            "a standalone activation must follow a convolution, pooling or Dense layer that \
             has no activation of its own",
        )),
    }
}

/// Resolves a Reshape layer's `target_shape` (one `-1` allowed) against its input.
fn reshape_target(layer: &LayerSpec, dims: &[usize]) -> Result<Vec<usize>, KerasError> {
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
fn hwio_to_ohwi(k: &[f32], kh: usize, kw: usize, ci: usize, co: usize) -> Vec<f32> {
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
fn transpose(k: &[f32], rows: usize, cols: usize) -> Vec<f32> {
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
