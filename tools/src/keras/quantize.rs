//! Post-training quantization of a [`FloatModel`] into the tools IR.
//!
//! Activation ranges come from running the float model on calibration data (IDX images or
//! float samples); weights are quantized symmetrically per output channel, as TFLite's
//! converter does by default.

use super::model::{FloatModel, FloatOp};
use super::KerasError;
use crate::idx::Images;
use crate::ir::{self, Graph, Layer, TensorInfo, Weights};
use fixnet::float::Activation;

/// How activation ranges are taken from the calibration values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeMethod {
    /// The smallest and largest value seen (TFLite's converter does this).
    MinMax,
    /// Clip each tensor's range at this percentile of its values (e.g. 99.99), ignoring rare
    /// outliers that would cost every other value precision.
    Percentile(f32),
}

/// Calibration settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CalibrationOptions {
    /// Use at most this many images or samples from the calibration set (the first ones).
    pub max_images: usize,
    /// How ranges are taken.
    pub method: RangeMethod,
}

impl Default for CalibrationOptions {
    /// The first 500 images, min/max ranges.
    fn default() -> Self {
        CalibrationOptions {
            max_images: 500,
            method: RangeMethod::MinMax,
        }
    }
}

/// The real range `[min, max]` of the model's input and of each op's output, in op order.
#[derive(Clone, Debug, PartialEq)]
pub struct Ranges {
    /// The input's `(min, max)`: `(0, 1)` for images (pixel / 255), the values seen for
    /// float samples.
    pub input: (f32, f32),
    /// One `(min, max)` per op of the float model.
    pub per_op: Vec<(f32, f32)>,
}

/// Float calibration samples: the float model's own inputs, C order, sample after sample.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatSamples {
    /// Values per sample (the model input's element count).
    pub per_sample: usize,
    /// All values.
    pub values: Vec<f32>,
}

/// What a float model is calibrated on.
#[derive(Clone, Copy, Debug)]
pub enum CalibrationSet<'a> {
    /// Grey images fed as `pixel / 255`; the input's range is fixed to `[0, 1]` (scale 1/255,
    /// zero point −128), whatever pixels the images happen to hold.
    Images(&'a Images),
    /// Float samples fed as they are; the input's range is the smallest and largest value
    /// of the samples used.
    Floats(&'a FloatSamples),
}

impl<'a> From<&'a Images> for CalibrationSet<'a> {
    fn from(images: &'a Images) -> Self {
        CalibrationSet::Images(images)
    }
}

impl<'a> From<&'a FloatSamples> for CalibrationSet<'a> {
    fn from(samples: &'a FloatSamples) -> Self {
        CalibrationSet::Floats(samples)
    }
}

impl CalibrationSet<'_> {
    /// Number of images or samples.
    fn len(&self) -> usize {
        match self {
            CalibrationSet::Images(i) => i.len(),
            CalibrationSet::Floats(f) => f.values.len() / f.per_sample.max(1),
        }
    }

    /// Values per image or sample.
    fn per_sample(&self) -> usize {
        match self {
            CalibrationSet::Images(i) => i.rows * i.cols,
            CalibrationSet::Floats(f) => f.per_sample,
        }
    }

    /// The float input of image or sample `i`.
    fn sample(&self, i: usize) -> Vec<f32> {
        match self {
            CalibrationSet::Images(images) => images
                .image(i)
                .iter()
                .map(|&p| f32::from(p) / 255.0)
                .collect(),
            CalibrationSet::Floats(f) => {
                let n = f.per_sample;
                f.values
                    .get(i * n..(i + 1) * n)
                    .unwrap_or_default()
                    .to_vec()
            }
        }
    }
}

/// Runs the float model on the calibration data (images as `pixel / 255`, float samples as
/// they are) and records the input's and each op's output range.
pub fn calibrate<'a>(
    model: &FloatModel,
    data: impl Into<CalibrationSet<'a>>,
    options: &CalibrationOptions,
) -> Result<Ranges, KerasError> {
    let data = data.into();
    let count = data.len().min(options.max_images);
    if count == 0 {
        return Err(KerasError::Calibration("no calibration image".into()));
    }
    if data.per_sample() != model.input.len() {
        let what = match data {
            CalibrationSet::Images(images) => format!(
                "images are {}x{} ({} pixels)",
                images.rows,
                images.cols,
                images.rows * images.cols
            ),
            CalibrationSet::Floats(f) => format!("samples have {} values", f.per_sample),
        };
        return Err(KerasError::Calibration(format!(
            "{what}, the model takes {:?} ({} values)",
            model.input_dims,
            model.input.len()
        )));
    }
    let ops = model.layers.len();
    let percentiles = matches!(options.method, RangeMethod::Percentile(_));
    // Each thread takes a contiguous run of samples; min and max merge in any order, and the
    // percentile values are concatenated in sample order before sorting, so the ranges are
    // those of one pass over the samples.
    let parts = crate::parallel::map_chunks(
        count,
        crate::parallel::default_threads(),
        |chunk, _| {
            let mut part = Partial::new(ops, percentiles);
            for input in chunk.map(|i| data.sample(i)) {
                if let CalibrationSet::Floats(_) = data {
                    for &v in &input {
                        part.input.0 = part.input.0.min(v);
                        part.input.1 = part.input.1.max(v);
                    }
                }
                model
                    .run_observed(&input, |i, out| part.observe(i, out))
                    .map_err(anyhow::Error::from)?;
            }
            Ok(part)
        },
        |_| {},
    )
    .map_err(|e| match e.downcast::<KerasError>() {
        Ok(k) => k,
        Err(other) => KerasError::Calibration(other.to_string()),
    })?;
    let mut input_range = match data {
        CalibrationSet::Images(_) => (0.0, 1.0),
        CalibrationSet::Floats(_) => (f32::INFINITY, f32::NEG_INFINITY),
    };
    let mut per_op = vec![(f32::INFINITY, f32::NEG_INFINITY); ops];
    let mut samples: Vec<Vec<f32>> = vec![Vec::new(); if percentiles { ops } else { 0 }];
    for part in parts {
        if let CalibrationSet::Floats(_) = data {
            input_range = (
                input_range.0.min(part.input.0),
                input_range.1.max(part.input.1),
            );
        }
        for (r, p) in per_op.iter_mut().zip(&part.per_op) {
            *r = (r.0.min(p.0), r.1.max(p.1));
        }
        for (s, p) in samples.iter_mut().zip(part.samples) {
            s.extend(p);
        }
    }
    if let RangeMethod::Percentile(p) = options.method {
        if !(50.0..=100.0).contains(&p) {
            return Err(KerasError::Calibration(format!(
                "percentile {p} is outside 50..=100"
            )));
        }
        for (r, s) in per_op.iter_mut().zip(&mut samples) {
            s.sort_by(f32::total_cmp);
            let last = s.len().saturating_sub(1);
            let k = ((last as f64) * f64::from(100.0 - p) / 100.0).round() as usize;
            if let (Some(&lo), Some(&hi)) = (s.get(k), s.get(last - k.min(last))) {
                *r = (lo, hi);
            }
        }
    }
    if !input_range.0.is_finite() || !input_range.1.is_finite() {
        return Err(KerasError::Calibration(
            "a calibration value is not finite".into(),
        ));
    }
    if per_op
        .iter()
        .any(|(lo, hi)| !lo.is_finite() || !hi.is_finite())
    {
        return Err(KerasError::Calibration(
            "the float model produced a non-finite value".into(),
        ));
    }
    Ok(Ranges {
        input: input_range,
        per_op,
    })
}

/// What one thread of [`calibrate`] saw.
struct Partial {
    input: (f32, f32),
    per_op: Vec<(f32, f32)>,
    /// Every output value per op, only for percentile ranges.
    samples: Vec<Vec<f32>>,
}

impl Partial {
    fn new(ops: usize, percentiles: bool) -> Self {
        Partial {
            input: (f32::INFINITY, f32::NEG_INFINITY),
            per_op: vec![(f32::INFINITY, f32::NEG_INFINITY); ops],
            samples: vec![Vec::new(); if percentiles { ops } else { 0 }],
        }
    }

    fn observe(&mut self, op: usize, out: &[f32]) {
        if let Some(r) = self.per_op.get_mut(op) {
            for &v in out {
                r.0 = r.0.min(v);
                r.1 = r.1.max(v);
            }
        }
        if let Some(s) = self.samples.get_mut(op) {
            s.extend_from_slice(out);
        }
    }
}

/// int8 asymmetric quantization of the real range `[min, max]` (widened to include 0):
/// `scale = (max − min) / 255`, `zero_point = round(−128 − min / scale)` clamped to int8.
pub fn asymmetric(min: f32, max: f32) -> (f32, i32) {
    let min = min.min(0.0);
    let mut max = max.max(0.0);
    if max - min <= f32::EPSILON {
        // An all-zero tensor: any positive scale represents it exactly.
        max = min + 1.0;
    }
    let scale = (max - min) / 255.0;
    let zero_point = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i32;
    (scale, zero_point)
}

/// Symmetric per-output-channel int8 weights: `scale[c] = max|w_c| / 127`. `channel_of(i)`
/// says which output channel value `i` belongs to.
fn quantize_weights(
    values: &[f32],
    shape: Vec<usize>,
    channels: usize,
    channel_of: impl Fn(usize) -> usize,
) -> Weights {
    let mut max_abs = vec![0.0f32; channels];
    for (i, &w) in values.iter().enumerate() {
        let c = channel_of(i);
        max_abs[c] = max_abs[c].max(w.abs());
    }
    // An all-zero channel quantizes to zeros under any scale; 1 keeps the bias scale sane.
    let scales: Vec<f32> = max_abs
        .iter()
        .map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 })
        .collect();
    let data = values
        .iter()
        .enumerate()
        .map(|(i, &w)| (w / scales[channel_of(i)]).round().clamp(-127.0, 127.0) as i8)
        .collect();
    Weights {
        shape,
        data,
        scales,
    }
}

/// int32 bias with scale `input_scale · weight_scale[c]`.
fn quantize_bias(bias: &[f32], input_scale: f32, weights: &Weights) -> Vec<i32> {
    bias.iter()
        .enumerate()
        .map(|(c, &b)| {
            let s = f64::from(input_scale) * f64::from(weights.scales[c]);
            (f64::from(b) / s)
                .round()
                .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
        })
        .collect()
}

fn ir_activation(act: Activation) -> ir::Activation {
    match act {
        Activation::None => ir::Activation::None,
        Activation::Relu => ir::Activation::Relu,
        Activation::Relu6 => ir::Activation::Relu6,
    }
}

/// IR dims of a Keras tensor (batch 1 in front).
fn ir_shape(dims: &[usize]) -> Vec<usize> {
    let mut shape = Vec::with_capacity(dims.len() + 1);
    shape.push(1);
    shape.extend_from_slice(dims);
    shape
}

/// Quantizes the float model with the given activation ranges into the tools IR.
///
/// The input is quantized asymmetrically over its range ([`asymmetric`]; for images `[0, 1]`
/// gives scale 1/255, zero point −128, so a pixel `p` is fed as `p − 128`), softmax outputs
/// to scale 1/256, zero point −128, and pooling, reshape and padding outputs share their
/// input's quantization.
pub fn quantize(model: &FloatModel, ranges: &Ranges) -> Result<Graph, KerasError> {
    if ranges.per_op.len() != model.layers.len() {
        return Err(KerasError::Quantize(format!(
            "{} ranges for {} ops",
            ranges.per_op.len(),
            model.layers.len()
        )));
    }
    let mut g = Graph::default();
    let (scale, zero_point) = asymmetric(ranges.input.0, ranges.input.1);
    // Value v of the float model is IR tensor v: the input first, then one per op.
    g.input = g.add_tensor(TensorInfo {
        name: "input".into(),
        shape: ir_shape(&model.input_dims),
        scale,
        zero_point,
    });
    for (i, (layer, &(lo, hi))) in model.layers.iter().zip(&ranges.per_op).enumerate() {
        let bad = || KerasError::Quantize(format!("op {i} ('{}') reads a later value", layer.name));
        let current = *layer.inputs.first().ok_or_else(bad)?;
        if layer.inputs.iter().any(|&v| v > i) {
            return Err(bad());
        }
        let (in_scale, in_zp) = {
            let t = &g.tensors[current];
            (t.scale, t.zero_point)
        };
        let (scale, zero_point) = match layer.op {
            FloatOp::MaxPool(_) | FloatOp::AvgPool(_) | FloatOp::Reshape | FloatOp::Pad { .. } => {
                (in_scale, in_zp)
            }
            FloatOp::Softmax => (1.0 / 256.0, -128),
            _ => asymmetric(lo, hi),
        };
        let output = g.add_tensor(TensorInfo {
            name: format!("{}:{i}", layer.name),
            shape: ir_shape(&layer.output_dims),
            scale,
            zero_point,
        });
        let in_c = g.tensors[current].shape.last().copied().unwrap_or(1);
        let ir_layer = match &layer.op {
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
                let out_c = bias.len();
                let per_channel = kernel_h * kernel_w * in_c;
                let weights = quantize_weights(
                    filter,
                    vec![out_c, *kernel_h, *kernel_w, in_c],
                    out_c,
                    |k| k / per_channel,
                );
                Layer::Conv2d(ir::Conv {
                    input: current,
                    output,
                    bias: quantize_bias(bias, in_scale, &weights),
                    filter: weights,
                    padding: *padding,
                    stride_h: *stride_h,
                    stride_w: *stride_w,
                    activation: ir_activation(*act),
                })
            }
            FloatOp::DepthwiseConv2d {
                filter,
                bias,
                kernel_h,
                kernel_w,
                stride_h,
                stride_w,
                padding,
                act,
                ..
            } => {
                let out_c = bias.len();
                let weights =
                    quantize_weights(filter, vec![1, *kernel_h, *kernel_w, out_c], out_c, |k| {
                        k % out_c
                    });
                Layer::DepthwiseConv2d(ir::Conv {
                    input: current,
                    output,
                    bias: quantize_bias(bias, in_scale, &weights),
                    filter: weights,
                    padding: *padding,
                    stride_h: *stride_h,
                    stride_w: *stride_w,
                    activation: ir_activation(*act),
                })
            }
            FloatOp::MaxPool(p) | FloatOp::AvgPool(p) => {
                let pool = ir::Pool {
                    input: current,
                    output,
                    padding: p.padding,
                    filter_h: p.kernel_h,
                    filter_w: p.kernel_w,
                    stride_h: p.stride_h,
                    stride_w: p.stride_w,
                    activation: ir_activation(p.act),
                };
                if matches!(layer.op, FloatOp::MaxPool(_)) {
                    Layer::MaxPool(pool)
                } else {
                    Layer::AvgPool(pool)
                }
            }
            FloatOp::Reshape => Layer::Reshape {
                input: current,
                output,
            },
            FloatOp::Dense { filter, bias, act } => {
                let outs = bias.len();
                let ins = filter.len() / outs.max(1);
                let weights = quantize_weights(filter, vec![outs, ins], outs, |k| k / ins);
                Layer::FullyConnected(ir::FullyConnected {
                    input: current,
                    output,
                    bias: quantize_bias(bias, in_scale, &weights),
                    weights,
                    activation: ir_activation(*act),
                })
            }
            FloatOp::Softmax => Layer::Softmax {
                input: current,
                output,
                beta: 1.0,
            },
            FloatOp::Pad { rows, cols } => Layer::Pad {
                input: current,
                output,
                paddings: [[0, 0], [rows.0, rows.1], [cols.0, cols.1], [0, 0]],
            },
            FloatOp::Add { act } => Layer::Add {
                input1: current,
                input2: *layer.inputs.get(1).ok_or_else(bad)?,
                output,
                activation: ir_activation(*act),
            },
        };
        g.layers.push(ir_layer);
    }
    g.output = model.output;
    g.validate()
        .map_err(|e| KerasError::Quantize(format!("{e:#}")))?;
    Ok(g)
}
