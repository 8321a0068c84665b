//! Turning a Keras layer graph into a [`FloatModel`]: layers in dependency order, each
//! translated into float ops reading earlier values, with BatchNormalization, standalone
//! activations, identities and ZeroPadding2D folded away where fixnet has no op for them.

use super::config::{LayerSpec, ModelSpec};
use super::fold::{batch_norm_affine, fold_affine, padding_is_same};
use super::model::{
    activation, check_channels_last, check_no_dilation, checked_len, hwio_to_ohwi, kernel_and_bias,
    padding, reshape_target, shape_of, transpose, FloatLayer, FloatModel, FloatOp, KerasActivation,
    PoolParams, WeightSource,
};
use super::KerasError;
use fixnet::float::Activation;
use fixnet::{Padding, Shape, Window};
use std::collections::HashMap;

/// What a Keras layer's name stands for while the graph is built.
#[derive(Clone)]
enum Node {
    /// A value: 0 is the model input, `k + 1` the output of op `k`.
    Value(usize),
    /// A ZeroPadding2D's output, to be folded into the convolutions that read it.
    Pad(PendingPad),
}

#[derive(Clone)]
struct PendingPad {
    layer: LayerSpec,
    source: usize,
    rows: (usize, usize),
    cols: (usize, usize),
}

struct Builder<'a> {
    weights: &'a dyn WeightSource,
    layers: Vec<FloatLayer>,
    /// Keras dims (without the batch) of each value.
    dims: Vec<Vec<usize>>,
    /// How many readers each value has (layers, and the model output), so that a layer is
    /// only folded into an op nothing else reads.
    readers: Vec<usize>,
    /// How many readers each Keras layer has.
    name_readers: HashMap<String, usize>,
    /// The PAD op made for a ZeroPadding2D that some reader could not absorb, by its name.
    pads: HashMap<String, usize>,
}

/// Builds the float model from an architecture and a weight source.
pub(super) fn build(
    spec: &ModelSpec,
    weights: &dyn WeightSource,
) -> Result<FloatModel, KerasError> {
    let dims = spec.input_shape.clone().ok_or_else(|| {
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
    let mut name_readers: HashMap<String, usize> = HashMap::new();
    for l in &spec.layers {
        for n in &l.inbound {
            *name_readers.entry(n.clone()).or_insert(0) += 1;
        }
    }
    *name_readers.entry(spec.output_name.clone()).or_insert(0) += 1;
    let mut b = Builder {
        weights,
        layers: Vec::new(),
        dims: vec![dims.clone()],
        readers: vec![name_readers.get(&spec.input_name).copied().unwrap_or(0)],
        name_readers,
        pads: HashMap::new(),
    };
    let mut nodes: HashMap<String, Node> = HashMap::new();
    nodes.insert(spec.input_name.clone(), Node::Value(0));
    // Keras lists a Functional model's layers after the ones they read, but nothing requires
    // it: take the first layer whose inputs are all known, each time.
    let mut pending: Vec<(usize, &LayerSpec)> = spec.layers.iter().enumerate().collect();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|(_, l)| l.inbound.iter().all(|n| nodes.contains_key(n)));
        let Some(k) = ready else {
            let (_, l) = pending[0];
            let missing: Vec<&String> = l
                .inbound
                .iter()
                .filter(|n| !nodes.contains_key(*n))
                .collect();
            return Err(l.unsupported(format!(
                "it reads {missing:?}, which no layer of the model produces (or the graph has a cycle)"
            )));
        };
        let (position, layer) = pending.remove(k);
        if nodes.contains_key(&layer.name) {
            return Err(layer.unsupported("another layer has the same name"));
        }
        let inputs: Vec<Node> = layer.inbound.iter().map(|n| nodes[n].clone()).collect();
        let before = b.layers.len();
        let node = b.layer(layer, position, &inputs)?;
        if let Node::Value(v) = node {
            if v > before {
                b.readers[v] = b.name_readers.get(&layer.name).copied().unwrap_or(0);
            }
        }
        nodes.insert(layer.name.clone(), node);
    }
    let output = match nodes.get(&spec.output_name) {
        Some(Node::Value(v)) if *v > 0 => *v,
        Some(Node::Pad(p)) => {
            return Err(p.layer.unsupported(
                "a ZeroPadding2D as the model output (a PAD op is not supported yet)",
            ))
        }
        Some(Node::Value(_)) => return Err(KerasError::Config("the model has no layers".into())),
        None => {
            return Err(KerasError::Config(format!(
                "the model output '{}' is not one of its layers",
                spec.output_name
            )))
        }
    };
    Ok(FloatModel {
        name: spec.name.clone(),
        input,
        input_dims: dims,
        layers: b.layers,
        output,
    })
}

impl Builder<'_> {
    /// Appends an op and returns its value.
    fn push(
        &mut self,
        layer: &LayerSpec,
        op: FloatOp,
        inputs: Vec<usize>,
        dims: Vec<usize>,
    ) -> Result<usize, KerasError> {
        let output = shape_of(&dims).ok_or_else(|| {
            layer.unsupported(format!("its output rank {} is above 3", dims.len()))
        })?;
        self.layers.push(FloatLayer {
            name: layer.name.clone(),
            op,
            inputs,
            output,
            output_dims: dims.clone(),
        });
        self.dims.push(dims);
        // Inside a layer that emits several ops, each is read once by the next.
        self.readers.push(1);
        Ok(self.layers.len())
    }

    /// `layer` computes nothing new: its name now stands for value `v`, whose readers are
    /// the layer's readers instead of the layer itself.
    fn alias(&mut self, layer: &LayerSpec, v: usize) -> Node {
        let own = self.name_readers.get(&layer.name).copied().unwrap_or(0);
        if let Some(r) = self.readers.get_mut(v) {
            *r = r.saturating_sub(1) + own;
        }
        Node::Value(v)
    }

    /// The op that writes value `v`, when `layer` is its only reader (so it may be changed).
    fn sole_producer(&mut self, v: usize) -> Option<&mut FloatOp> {
        if v == 0 || self.readers.get(v) != Some(&1) {
            return None;
        }
        self.layers.get_mut(v - 1).map(|l| &mut l.op)
    }

    /// Translates one Keras layer reading `inputs`.
    fn layer(
        &mut self,
        layer: &LayerSpec,
        position: usize,
        inputs: &[Node],
    ) -> Result<Node, KerasError> {
        let class = layer.class.as_str();
        let conv = matches!(class, "Conv2D" | "DepthwiseConv2D");
        // Only a convolution may absorb a ZeroPadding2D; anything else reads a PAD op.
        let mut inputs = inputs.to_vec();
        if !conv {
            for n in &mut inputs {
                if let Node::Pad(p) = n {
                    *n = Node::Value(self.materialize(p)?);
                }
            }
        }
        let inputs = inputs.as_slice();
        if class == "Add" {
            return self.add(layer, inputs);
        }
        let [input] = inputs else {
            return Err(
                layer.unsupported(format!("it reads {} tensors, expected one", inputs.len()))
            );
        };
        if conv {
            return self.conv(layer, position, input);
        }
        let Node::Value(v) = *input else {
            return Err(layer.unsupported("it reads an unresolved ZeroPadding2D"));
        };
        let dims = self.dims[v].clone();
        match class {
            "MaxPooling2D" | "AveragePooling2D" => {
                check_channels_last(layer)?;
                let &[in_h, in_w, in_c] = dims.as_slice() else {
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
                let op = if class == "MaxPooling2D" {
                    FloatOp::MaxPool(params)
                } else {
                    FloatOp::AvgPool(params)
                };
                Ok(Node::Value(self.push(
                    layer,
                    op,
                    vec![v],
                    vec![out_h, out_w, in_c],
                )?))
            }
            "GlobalAveragePooling2D" => {
                check_channels_last(layer)?;
                let &[h, w, c] = dims.as_slice() else {
                    return Err(layer.unsupported(format!(
                        "its input has shape {dims:?}; 2-D pooling needs height, width and channels"
                    )));
                };
                // One window over the whole image: TFLite's AVERAGE_POOL_2D, whose int8
                // output keeps the input's quantization.
                let params = PoolParams {
                    kernel_h: h,
                    kernel_w: w,
                    stride_h: 1,
                    stride_w: 1,
                    padding: Padding::Valid,
                    act: Activation::None,
                };
                let pooled = self.push(layer, FloatOp::AvgPool(params), vec![v], vec![1, 1, c])?;
                if layer.bool_field("keepdims", false) {
                    return Ok(Node::Value(pooled));
                }
                Ok(Node::Value(self.push(
                    layer,
                    FloatOp::Reshape,
                    vec![pooled],
                    vec![c],
                )?))
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
                let flat = vec![dims.iter().product()];
                Ok(Node::Value(self.push(
                    layer,
                    FloatOp::Reshape,
                    vec![v],
                    flat,
                )?))
            }
            "Reshape" => {
                let target = reshape_target(layer, &dims)?;
                Ok(Node::Value(self.push(
                    layer,
                    FloatOp::Reshape,
                    vec![v],
                    target,
                )?))
            }
            "Dense" => self.dense(layer, position, v, &dims),
            "BatchNormalization" => self.batch_norm(layer, position, v, &dims),
            "Activation" => {
                let act = activation(layer)?;
                self.standalone_activation(layer, act, v, &dims)
            }
            "ReLU" => {
                let number = |key: &str| layer.config.get(key).and_then(|v| v.as_f64());
                if number("negative_slope").unwrap_or(0.0) != 0.0
                    || number("threshold").unwrap_or(0.0) != 0.0
                {
                    return Err(layer.unsupported("ReLU with a negative slope or threshold"));
                }
                let act = match number("max_value") {
                    None => KerasActivation::Relu,
                    Some(6.0) => KerasActivation::Relu6,
                    Some(m) => return Err(layer.unsupported(format!("ReLU with max_value {m}"))),
                };
                self.standalone_activation(layer, act, v, &dims)
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
                Ok(Node::Value(self.push(
                    layer,
                    FloatOp::Softmax,
                    vec![v],
                    dims,
                )?))
            }
            "ZeroPadding2D" => self.zero_padding(layer, v, &dims),
            // Identity at inference time.
            "Dropout" => Ok(self.alias(layer, v)),
            _ => Err(layer.unsupported(
                "no fixnet equivalent (supported layers: InputLayer, Conv2D, DepthwiseConv2D, \
                 MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, ZeroPadding2D, Flatten, \
                 Reshape, Dense, BatchNormalization, Add, Activation, ReLU, Softmax, Dropout)",
            )),
        }
    }

    fn conv(
        &mut self,
        layer: &LayerSpec,
        position: usize,
        input: &Node,
    ) -> Result<Node, KerasError> {
        check_channels_last(layer)?;
        check_no_dilation(layer)?;
        let depthwise = layer.class == "DepthwiseConv2D";
        // Keras 2 configs carry `groups` on DepthwiseConv2D too (always 1 there).
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
        let mut padding = padding(layer)?;
        let v = match input {
            Node::Value(v) => *v,
            Node::Pad(p) => {
                let (h, w) = match self.dims[p.source].as_slice() {
                    &[h, w, _] => (h, w),
                    _ => (0, 0),
                };
                let same = padding_is_same(
                    (h, w),
                    (kernel_h, kernel_w),
                    (stride_h, stride_w),
                    p.rows,
                    p.cols,
                );
                if padding == Padding::Valid && same {
                    padding = Padding::Same;
                    p.source
                } else {
                    self.materialize(p)?
                }
            }
        };
        let dims = self.dims[v].clone();
        let &[in_h, in_w, in_c] = dims.as_slice() else {
            return Err(layer.unsupported(format!(
                "its input has shape {dims:?}; a 2-D convolution needs height, width and channels"
            )));
        };
        let act = activation(layer)?;
        let (_, out_h, out_w) = Window::new(
            padding,
            Shape::new(in_h, in_w, in_c),
            kernel_h,
            kernel_w,
            stride_h,
            stride_w,
        )
        .map_err(|_| layer.unsupported(format!("its window does not fit the input {dims:?}")))?;
        let vars = self.weights.layer_weights(layer, position)?;
        let fused = act.fused().unwrap_or(Activation::None);
        let (op, out_c) = if depthwise {
            let m = layer.usize_field("depth_multiplier")?;
            let out_c = in_c.saturating_mul(m);
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
                act: fused,
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
                act: fused,
            };
            (op, out_c)
        };
        let out_dims = vec![out_h, out_w, out_c];
        let mut y = self.push(layer, op, vec![v], out_dims.clone())?;
        if act == KerasActivation::Softmax {
            y = self.push(layer, FloatOp::Softmax, vec![y], out_dims)?;
        }
        Ok(Node::Value(y))
    }

    fn dense(
        &mut self,
        layer: &LayerSpec,
        position: usize,
        v: usize,
        dims: &[usize],
    ) -> Result<Node, KerasError> {
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
        let vars = self.weights.layer_weights(layer, position)?;
        let (kernel, bias) = kernel_and_bias(layer, vars, &[inputs, units], units)?;
        let op = FloatOp::Dense {
            filter: transpose(&kernel.data, inputs, units),
            bias,
            act: act.fused().unwrap_or(Activation::None),
        };
        let mut out = dims[..dims.len().saturating_sub(1)].to_vec();
        out.push(units);
        let mut y = self.push(layer, op, vec![v], out.clone())?;
        if act == KerasActivation::Softmax {
            y = self.push(layer, FloatOp::Softmax, vec![y], out)?;
        }
        Ok(Node::Value(y))
    }

    /// BatchNormalization: folded into the convolution or Dense that writes its input when
    /// nothing else reads that; otherwise a per-channel affine op (a 1x1 depthwise
    /// convolution on images, a diagonal Dense on vectors).
    fn batch_norm(
        &mut self,
        layer: &LayerSpec,
        position: usize,
        v: usize,
        dims: &[usize],
    ) -> Result<Node, KerasError> {
        let rank = dims.len();
        let axis_ok = |a: &serde_json::Value| {
            a.as_i64()
                .is_some_and(|a| a == -1 || usize::try_from(a).ok() == Some(rank))
        };
        let axis = layer.config.get("axis");
        let last_axis = match axis {
            None => true,
            Some(serde_json::Value::Array(a)) => a.len() == 1 && axis_ok(&a[0]),
            Some(a) => axis_ok(a),
        };
        if !last_axis {
            return Err(layer.unsupported(format!(
                "normalization over axis {} (only the channel axis, the last, is supported)",
                axis.map_or("?".into(), |a| a.to_string())
            )));
        }
        let channels = *dims.last().unwrap_or(&0);
        let scale = layer.bool_field("scale", true);
        let center = layer.bool_field("center", true);
        let epsilon = layer
            .config
            .get("epsilon")
            .and_then(|e| e.as_f64())
            .unwrap_or(1e-3);
        let mut vars = self.weights.layer_weights(layer, position)?.into_iter();
        let want = 2 + usize::from(scale) + usize::from(center);
        if vars.len() != want {
            return Err(KerasError::Weights {
                layer: layer.name.clone(),
                reason: format!("found {} weight arrays, expected {want}", vars.len()),
            });
        }
        let mut next = |what: &str, present: bool, default: f32| -> Result<Vec<f32>, KerasError> {
            if !present {
                return Ok(vec![default; channels]);
            }
            let a = vars.next().unwrap_or_else(|| super::hdf5::Array {
                shape: vec![],
                data: vec![],
            });
            super::model::expect_shape(layer, what, &a, &[channels])?;
            Ok(a.data)
        };
        let gamma = next("gamma", scale, 1.0)?;
        let beta = next("beta", center, 0.0)?;
        let mean = next("moving_mean", true, 0.0)?;
        let variance = next("moving_variance", true, 1.0)?;
        let (mul, add) = batch_norm_affine(&gamma, &beta, &mean, &variance, epsilon);
        if let Some(op) = self.sole_producer(v) {
            if fold_affine(op, &mul, &add) {
                return Ok(self.alias(layer, v));
            }
        }
        let mul32: Vec<f32> = mul.iter().map(|&m| m as f32).collect();
        let add32: Vec<f32> = add.iter().map(|&a| a as f32).collect();
        let op = match rank {
            3 => FloatOp::DepthwiseConv2d {
                filter: mul32,
                bias: add32,
                kernel_h: 1,
                kernel_w: 1,
                stride_h: 1,
                stride_w: 1,
                padding: Padding::Valid,
                depth_multiplier: 1,
                act: Activation::None,
            },
            1 => {
                let mut filter = vec![0.0; channels.saturating_mul(channels)];
                for (c, &m) in mul32.iter().enumerate() {
                    filter[c * channels + c] = m;
                }
                FloatOp::Dense {
                    filter,
                    bias: add32,
                    act: Activation::None,
                }
            }
            _ => {
                return Err(layer.unsupported(format!(
                    "it cannot be folded into the layer before it, and on a {dims:?} input it \
                     has no fixnet equivalent"
                )))
            }
        };
        Ok(Node::Value(self.push(layer, op, vec![v], dims.to_vec())?))
    }

    /// Fuses a standalone activation into the op that writes its input.
    fn standalone_activation(
        &mut self,
        layer: &LayerSpec,
        act: KerasActivation,
        v: usize,
        dims: &[usize],
    ) -> Result<Node, KerasError> {
        let fused = match act.fused() {
            None => {
                return Ok(Node::Value(self.push(
                    layer,
                    FloatOp::Softmax,
                    vec![v],
                    dims.to_vec(),
                )?))
            }
            Some(Activation::None) => return Ok(self.alias(layer, v)),
            Some(f) => f,
        };
        let slot = self.sole_producer(v).and_then(|op| match op {
            FloatOp::Conv2d { act, .. }
            | FloatOp::DepthwiseConv2d { act, .. }
            | FloatOp::Dense { act, .. }
            | FloatOp::Add { act } => Some(act),
            FloatOp::MaxPool(p) | FloatOp::AvgPool(p) => Some(&mut p.act),
            FloatOp::Reshape | FloatOp::Softmax | FloatOp::Pad { .. } => None,
        });
        match slot {
            Some(a) if *a == Activation::None => {
                *a = fused;
                Ok(self.alias(layer, v))
            }
            _ => Err(layer.unsupported(
                "a standalone activation must be the only reader of a convolution, pooling, \
                 Dense or Add layer that has no activation of its own",
            )),
        }
    }

    /// Add of two or more same-shaped tensors (chained pairwise; the activation on the last).
    fn add(&mut self, layer: &LayerSpec, inputs: &[Node]) -> Result<Node, KerasError> {
        let values: Vec<usize> = inputs
            .iter()
            .filter_map(|n| match n {
                Node::Value(v) => Some(*v),
                Node::Pad(_) => None,
            })
            .collect();
        let [first, rest @ ..] = values.as_slice() else {
            return Err(layer.unsupported("it reads no tensor"));
        };
        if rest.is_empty() {
            return Err(layer.unsupported("it reads a single tensor"));
        }
        let dims = self.dims[*first].clone();
        for &v in rest {
            if self.dims[v] != dims {
                return Err(layer.unsupported(format!(
                    "its inputs have shapes {dims:?} and {:?} (only same-shaped inputs are supported)",
                    self.dims[v]
                )));
            }
        }
        let act = activation(layer)?;
        let Some(fused) = act.fused() else {
            return Err(layer.unsupported("a softmax activation on Add"));
        };
        let mut acc = *first;
        for (i, &v) in rest.iter().enumerate() {
            let act = if i + 1 == rest.len() {
                fused
            } else {
                Activation::None
            };
            acc = self.push(layer, FloatOp::Add { act }, vec![acc, v], dims.clone())?;
        }
        Ok(Node::Value(acc))
    }

    /// The PAD op of a ZeroPadding2D (made once, on first need).
    fn materialize(&mut self, p: &PendingPad) -> Result<usize, KerasError> {
        if let Some(&v) = self.pads.get(&p.layer.name) {
            return Ok(v);
        }
        let &[h, w, c] = self.dims[p.source].as_slice() else {
            return Err(p.layer.unsupported("its input is not H, W, C"));
        };
        let dims = vec![
            h.saturating_add(p.rows.0).saturating_add(p.rows.1),
            w.saturating_add(p.cols.0).saturating_add(p.cols.1),
            c,
        ];
        if checked_len(&dims).is_none_or(|n| n > 1 << 28) {
            return Err(p
                .layer
                .unsupported(format!("its output {dims:?} is too large")));
        }
        let op = FloatOp::Pad {
            rows: p.rows,
            cols: p.cols,
        };
        let v = self.push(&p.layer, op, vec![p.source], dims)?;
        self.readers[v] = self.name_readers.get(&p.layer.name).copied().unwrap_or(0);
        self.pads.insert(p.layer.name.clone(), v);
        Ok(v)
    }

    fn zero_padding(
        &mut self,
        layer: &LayerSpec,
        v: usize,
        dims: &[usize],
    ) -> Result<Node, KerasError> {
        check_channels_last(layer)?;
        if dims.len() != 3 {
            return Err(
                layer.unsupported(format!("its input has shape {dims:?}, expected H, W, C"))
            );
        }
        let n = |v: &serde_json::Value| v.as_u64().and_then(|v| usize::try_from(v).ok());
        let pair = |v: &serde_json::Value| match v {
            serde_json::Value::Array(a) if a.len() == 2 => n(&a[0]).zip(n(&a[1])),
            _ => n(v).map(|p| (p, p)),
        };
        let p = layer.field("padding")?;
        let pads = match p {
            serde_json::Value::Array(a) if a.len() == 2 => pair(&a[0]).zip(pair(&a[1])),
            _ => n(p).map(|k| ((k, k), (k, k))),
        };
        let Some((rows, cols)) = pads else {
            return Err(
                layer.unsupported(format!("padding {p} is not ((top, bottom), (left, right))"))
            );
        };
        if rows == (0, 0) && cols == (0, 0) {
            return Ok(self.alias(layer, v));
        }
        self.alias(layer, v);
        Ok(Node::Pad(PendingPad {
            layer: layer.clone(),
            source: v,
            rows,
            cols,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::parse_model_config;
    use super::super::hdf5::Array;
    use super::*;

    /// Weights held in memory, by layer name.
    struct Mem(HashMap<String, Vec<Array>>);

    impl WeightSource for Mem {
        fn layer_weights(&self, layer: &LayerSpec, _: usize) -> Result<Vec<Array>, KerasError> {
            Ok(self.0.get(&layer.name).cloned().unwrap_or_default())
        }
    }

    fn arr(shape: &[usize], data: &[f32]) -> Array {
        Array {
            shape: shape.to_vec(),
            data: data.to_vec(),
        }
    }

    /// A Keras 2 (TF 2.x `.h5`) layer entry reading `inbound`.
    fn layer(class: &str, name: &str, config: &str, inbound: &[&str]) -> String {
        let nodes: Vec<String> = inbound
            .iter()
            .map(|n| format!(r#"["{n}", 0, 0, {{}}]"#))
            .collect();
        let nodes = if inbound.is_empty() {
            "[]".to_string()
        } else {
            format!("[[{}]]", nodes.join(", "))
        };
        let sep = if config.is_empty() { "" } else { ", " };
        format!(
            r#"{{"class_name": "{class}", "name": "{name}", "config": {{"name": "{name}"{sep}{config}}}, "inbound_nodes": {nodes}}}"#
        )
    }

    fn model(layers: &[String], output: &str) -> String {
        format!(
            r#"{{"class_name": "Functional", "config": {{"name": "m", "layers": [{}],
               "input_layers": [["in", 0, 0]], "output_layers": [["{output}", 0, 0]]}}}}"#,
            layers.join(",\n")
        )
    }

    const INPUT: &str = r#""batch_input_shape": [null, 4, 4, 2], "dtype": "float32""#;
    const CONV1X1: &str = r#""filters": 2, "kernel_size": [1, 1], "strides": [1, 1], "padding": "valid", "activation": "linear", "use_bias": true, "groups": 1"#;
    const BN: &str = r#""axis": [3], "epsilon": 0.001, "center": true, "scale": true"#;

    fn bn_weights(g: [f32; 2], b: [f32; 2], m: [f32; 2], v: [f32; 2]) -> Vec<Array> {
        vec![arr(&[2], &g), arr(&[2], &b), arr(&[2], &m), arr(&[2], &v)]
    }

    /// BN applied the way Keras does at inference, for the reference.
    fn bn(x: f32, c: usize, w: &[Array]) -> f32 {
        let (g, b, m, v) = (w[0].data[c], w[1].data[c], w[2].data[c], w[3].data[c]);
        (x - m) / (v + 0.001).sqrt() * g + b
    }

    /// 1x1 convolution on a 4x4x2 HWC image with HWIO kernel [1, 1, 2, 2].
    fn conv1x1(x: &[f32], w: &[Array]) -> Vec<f32> {
        let mut y = vec![0.0; 32];
        for p in 0..16 {
            for o in 0..2 {
                y[p * 2 + o] = w[1].data[o]
                    + (0..2)
                        .map(|i| x[p * 2 + i] * w[0].data[i * 2 + o])
                        .sum::<f32>();
            }
        }
        y
    }

    #[test]
    fn functional_graph_with_batch_norm_add_padding_and_global_pool() {
        let layers = [
            layer("InputLayer", "in", INPUT, &[]),
            layer("Conv2D", "c1", CONV1X1, &["in"]),
            layer("BatchNormalization", "bn1", BN, &["c1"]),
            layer("Activation", "a1", r#""activation": "relu""#, &["bn1"]),
            layer("Conv2D", "c2", CONV1X1, &["a1"]),
            layer("BatchNormalization", "bn2", BN, &["c2"]),
            layer("Add", "add", "", &["a1", "bn2"]),
            layer("BatchNormalization", "bn3", BN, &["add"]),
            layer("ReLU", "r", r#""max_value": 6.0"#, &["bn3"]),
            layer(
                "ZeroPadding2D",
                "zp",
                r#""padding": [[0, 1], [0, 1]]"#,
                &["r"],
            ),
            layer(
                "DepthwiseConv2D",
                "c3",
                r#""kernel_size": [3, 3], "strides": [2, 2], "padding": "valid", "depth_multiplier": 1, "activation": "linear", "use_bias": true, "groups": 1"#,
                &["zp"],
            ),
            layer("GlobalAveragePooling2D", "gap", "", &["c3"]),
            layer("Dropout", "drop", r#""rate": 0.5"#, &["gap"]),
            layer(
                "Dense",
                "d",
                r#""units": 2, "activation": "softmax""#,
                &["drop"],
            ),
        ];
        let spec = parse_model_config(&model(&layers, "d")).unwrap();
        let mut w = HashMap::new();
        let c1 = vec![
            arr(&[1, 1, 2, 2], &[0.5, -1.0, 2.0, 0.25]),
            arr(&[2], &[0.1, -0.2]),
        ];
        let c2 = vec![
            arr(&[1, 1, 2, 2], &[-0.5, 1.5, 1.0, -0.75]),
            arr(&[2], &[0.3, 0.0]),
        ];
        let bn1 = bn_weights([1.5, 0.5], [0.2, -0.1], [0.3, -0.4], [2.0, 0.5]);
        let bn2 = bn_weights([0.8, 2.0], [0.0, 0.5], [-0.2, 0.1], [1.0, 3.0]);
        let bn3 = bn_weights([1.2, -0.7], [0.4, 1.0], [0.5, 0.2], [0.25, 1.5]);
        let dw: Vec<f32> = (0..18).map(|i| (i as f32 - 8.0) / 10.0).collect();
        let c3 = vec![arr(&[3, 3, 2, 1], &dw), arr(&[2], &[0.05, -0.05])];
        let d = vec![arr(&[2, 2], &[1.0, -1.0, 0.5, 2.0]), arr(&[2], &[0.0, 0.1])];
        for (name, v) in [
            ("c1", &c1),
            ("c2", &c2),
            ("bn1", &bn1),
            ("bn2", &bn2),
            ("bn3", &bn3),
            ("c3", &c3),
            ("d", &d),
        ] {
            w.insert(name.to_string(), v.clone());
        }
        let m = build(&spec, &Mem(w)).unwrap();

        // bn1 and bn2 folded, a1 fused into c1, bn3 (after Add) a 1x1 depthwise with r fused,
        // zp folded into a SAME c3, gap an average pool and a reshape, drop gone.
        let kinds: Vec<String> = m
            .layers
            .iter()
            .map(|l| match &l.op {
                FloatOp::Conv2d { act, padding, .. } => format!("conv {act:?} {padding:?}"),
                FloatOp::DepthwiseConv2d {
                    act,
                    padding,
                    kernel_h,
                    ..
                } => format!("dw{kernel_h} {act:?} {padding:?}"),
                FloatOp::AvgPool(p) => format!("avg {}x{}", p.kernel_h, p.kernel_w),
                FloatOp::Add { act } => format!("add {act:?}"),
                FloatOp::Dense { act, .. } => format!("dense {act:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "conv Relu Valid",
                "conv None Valid",
                "add None",
                "dw1 Relu6 Valid",
                "dw3 None Same",
                "avg 2x2",
                "Reshape",
                "dense None",
                "Softmax"
            ]
        );
        let inputs: Vec<Vec<usize>> = m.layers.iter().map(|l| l.inputs.clone()).collect();
        assert_eq!(
            inputs,
            [
                vec![0],
                vec![1],
                vec![1, 2],
                vec![3],
                vec![4],
                vec![5],
                vec![6],
                vec![7],
                vec![8]
            ]
        );
        assert_eq!(m.output, 9);

        // The float model computes what the Keras graph computes, layer by layer.
        let x: Vec<f32> = (0..32).map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0).collect();
        let a1: Vec<f32> = conv1x1(&x, &c1)
            .iter()
            .enumerate()
            .map(|(i, &v)| bn(v, i % 2, &bn1).max(0.0))
            .collect();
        let b2: Vec<f32> = conv1x1(&a1, &c2)
            .iter()
            .enumerate()
            .map(|(i, &v)| bn(v, i % 2, &bn2))
            .collect();
        let r: Vec<f32> = (0..32)
            .map(|i| bn(a1[i] + b2[i], i % 2, &bn3).clamp(0.0, 6.0))
            .collect();
        // Depthwise 3x3 stride 2 over r padded with one zero row / column at the bottom / right.
        let mut c3_out = [0.0f32; 8];
        for oy in 0..2 {
            for ox in 0..2 {
                for c in 0..2 {
                    let mut s = c3[1].data[c];
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (y, x) = (oy * 2 + ky, ox * 2 + kx);
                            if y < 4 && x < 4 {
                                s += r[(y * 4 + x) * 2 + c] * dw[(ky * 3 + kx) * 2 + c];
                            }
                        }
                    }
                    c3_out[(oy * 2 + ox) * 2 + c] = s;
                }
            }
        }
        let gap: Vec<f32> = (0..2)
            .map(|c| (0..4).map(|p| c3_out[p * 2 + c]).sum::<f32>() / 4.0)
            .collect();
        let logits: Vec<f32> = (0..2)
            .map(|o| d[1].data[o] + gap[0] * d[0].data[o] + gap[1] * d[0].data[2 + o])
            .collect();
        let e: Vec<f32> = logits.iter().map(|l| l.exp()).collect();
        let want: Vec<f32> = e.iter().map(|v| v / (e[0] + e[1])).collect();
        let got = m.run(&x).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn batch_norm_is_not_folded_into_a_shared_producer_or_the_input() {
        let layers = [
            layer("InputLayer", "in", INPUT, &[]),
            layer("BatchNormalization", "bn0", BN, &["in"]),
            layer("Conv2D", "c1", CONV1X1, &["bn0"]),
            layer("BatchNormalization", "bn1", BN, &["c1"]),
            layer("Add", "add", "", &["c1", "bn1"]),
        ];
        let spec = parse_model_config(&model(&layers, "add")).unwrap();
        let mut w = HashMap::new();
        let c1 = vec![
            arr(&[1, 1, 2, 2], &[0.5, -1.0, 2.0, 0.25]),
            arr(&[2], &[0.1, -0.2]),
        ];
        let bn = bn_weights([2.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.999, 0.249]);
        w.insert("c1".to_string(), c1.clone());
        w.insert("bn0".to_string(), bn.clone());
        w.insert("bn1".to_string(), bn);
        let m = build(&spec, &Mem(w)).unwrap();
        let ops: Vec<&FloatOp> = m.layers.iter().map(|l| &l.op).collect();
        // BN after the input and BN of a conv the Add also reads: per-channel affines,
        // y = x · (gamma / sqrt(var + eps)) + beta − mean · that = [2x + 1, 2x − 2].
        let affine = FloatOp::DepthwiseConv2d {
            filter: vec![2.0, 2.0],
            bias: vec![1.0, -2.0],
            kernel_h: 1,
            kernel_w: 1,
            stride_h: 1,
            stride_w: 1,
            padding: Padding::Valid,
            depth_multiplier: 1,
            act: Activation::None,
        };
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[0], &affine);
        assert!(
            matches!(ops[1], FloatOp::Conv2d { filter, .. } if filter == &vec![0.5, 2.0, -1.0, 0.25])
        );
        assert_eq!(ops[2], &affine);
        assert!(matches!(ops[3], FloatOp::Add { .. }));
        assert_eq!(m.layers[3].inputs, vec![2, 3]);
    }

    #[test]
    fn unfoldable_zero_padding_becomes_a_pad_op() {
        // Padding on the top / left is not TFLite's SAME split for a stride-2 conv on 4x4.
        let conv = r#""filters": 1, "kernel_size": [3, 3], "strides": [2, 2], "padding": "valid", "activation": "linear", "use_bias": false"#;
        let layers = [
            layer("InputLayer", "in", INPUT, &[]),
            layer(
                "ZeroPadding2D",
                "pad",
                r#""padding": [[1, 0], [1, 0]]"#,
                &["in"],
            ),
            layer("Conv2D", "c", conv, &["pad"]),
            layer("ZeroPadding2D", "pad2", r#""padding": 1"#, &["c"]),
            layer("MaxPooling2D", "p", r#""pool_size": [2, 2]"#, &["pad2"]),
        ];
        let spec = parse_model_config(&model(&layers, "p")).unwrap();
        let mut w = HashMap::new();
        // Sums channel 0 over the window.
        let mut k = vec![0.0; 18];
        for t in 0..9 {
            k[t * 2] = 1.0;
        }
        w.insert("c".to_string(), vec![arr(&[3, 3, 2, 1], &k)]);
        let m = build(&spec, &Mem(w)).unwrap();
        let kinds: Vec<String> = m
            .layers
            .iter()
            .map(|l| match &l.op {
                FloatOp::Conv2d { padding, .. } => format!("conv {padding:?}"),
                FloatOp::MaxPool(_) => "max".into(),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "Pad { rows: (1, 0), cols: (1, 0) }",
                "conv Valid",
                "Pad { rows: (1, 1), cols: (1, 1) }",
                "max"
            ]
        );
        let dims: Vec<&[usize]> = m.layers.iter().map(|l| l.output_dims.as_slice()).collect();
        assert_eq!(dims, [&[5, 5, 2][..], &[2, 2, 1], &[4, 4, 1], &[2, 2, 1]]);
        // Channel 0 of the input is 1 everywhere: each window of the padded 5x5 image sums
        // its in-image taps (4, 6, 6, 9); padding those with zeros and max pooling 2x2 keeps
        // one value per corner.
        let x: Vec<f32> = (0..32)
            .map(|i| if i % 2 == 0 { 1.0 } else { 5.0 })
            .collect();
        assert_eq!(m.run(&x).unwrap(), vec![4.0, 6.0, 6.0, 9.0]);
        // Quantized, both pads become PAD ops the lowering accepts.
        let options = super::super::CalibrationOptions::default();
        let samples = super::super::FloatSamples {
            per_sample: 32,
            values: x,
        };
        let ranges = super::super::calibrate(&m, &samples, &options).unwrap();
        let graph = super::super::quantize(&m, &ranges).unwrap();
        let pads = graph.layers.iter().filter(|l| l.name() == "PAD").count();
        assert_eq!(pads, 2);
        crate::lower::lower(&graph).unwrap();
    }

    #[test]
    fn activation_after_the_input_names_the_layer() {
        // A ReLU straight after the input has no op to fuse into.
        let layers = [
            layer("InputLayer", "in", INPUT, &[]),
            layer("ReLU", "r", "", &["in"]),
        ];
        let spec = parse_model_config(&model(&layers, "r")).unwrap();
        let err = build(&spec, &Mem(HashMap::new())).unwrap_err().to_string();
        assert!(err.contains("'r'"), "{err}");
    }
}
