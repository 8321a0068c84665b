//! float32 twins of the backward kernels and a float32 SGD reference trainer.
//!
//! The twins compute plain gradients (`dL/dθ`, no learning rate) of the float kernels in
//! [`crate::float`]; the tests check them against finite differences and the fixed-point
//! kernels against them. [`FloatTrainer`] trains the same layers as [`Trainer`] on the same
//! samples in float32, starting from the dequantized int8 model with the prefix run as int8
//! inference: the reference the fixed-point trainer is measured against.
//!
//! [`Trainer`]: super::Trainer

use super::arena::Bump;
use super::forward::{activation, activation_mut, op_window, run_op};
use super::plan::{analyze, root, LayerPlan};
use super::{Loss, TrainConfig, TrainError};
use crate::float::Activation;
use crate::format::{Model, Op, TensorId};
use crate::overlay::Overlay;
use crate::train::{MAX_LAYERS, MAX_SAVED};
use crate::{Error, Shape, Window};

/// The float activation a fused int8 clamp stands for: ReLU when the lower clamp sits at a
/// real value ≥ 0, ReLU6 when there also is an upper clamp.
pub fn activation_of(act_min: i8, act_max: i8, zero_point: i32) -> Activation {
    if i32::from(act_min) < zero_point {
        Activation::None
    } else if act_max < i8::MAX {
        Activation::Relu6
    } else {
        Activation::Relu
    }
}

/// Zeroes the gradient where `act` is flat at `output`.
pub fn activation_mask(output: &[f32], act: Activation, grad: &mut [f32]) -> Result<(), Error> {
    if output.len() != grad.len() {
        return Err(Error::ShapeMismatch);
    }
    for (g, &y) in grad.iter_mut().zip(output) {
        let flat = match act {
            Activation::None => false,
            Activation::Relu => y <= 0.0,
            Activation::Relu6 => y <= 0.0 || y >= 6.0,
        };
        if flat {
            *g = 0.0;
        }
    }
    Ok(())
}

/// Softmax + cross-entropy on float logits (beta 1): `grad = p − onehot(label)`, returns
/// `−ln p[label]`.
pub fn softmax_cross_entropy(logits: &[f32], label: usize, grad: &mut [f32]) -> Result<f32, Error> {
    if logits.len() != grad.len() || label >= logits.len() {
        return Err(Error::ShapeMismatch);
    }
    let max = logits.iter().copied().fold(f32::MIN, f32::max);
    let sum: f32 = logits.iter().map(|&z| libm::expf(z - max)).sum();
    for (j, (g, &z)) in grad.iter_mut().zip(logits).enumerate() {
        *g = libm::expf(z - max) / sum - if j == label { 1.0 } else { 0.0 };
    }
    Ok(libm::logf(sum) - (logits[label] - max))
}

/// `grad_in[i] = Σ_o grad_out[o] · filter[o][i]`.
pub fn fully_connected_input_grad(
    grad_out: &[f32],
    filter: &[f32],
    grad_in: &mut [f32],
) -> Result<(), Error> {
    let n_in = grad_in.len();
    if grad_out.len().checked_mul(n_in) != Some(filter.len()) {
        return Err(Error::ShapeMismatch);
    }
    grad_in.fill(0.0);
    for (&g, row) in grad_out.iter().zip(filter.chunks_exact(n_in.max(1))) {
        for (gi, &w) in grad_in.iter_mut().zip(row) {
            *gi += g * w;
        }
    }
    Ok(())
}

/// `acc[o][i] += scale · grad_out[o] · input[i]`.
pub fn fully_connected_weight_grad(
    input: &[f32],
    grad_out: &[f32],
    scale: f32,
    acc: &mut [f32],
) -> Result<(), Error> {
    let n_in = input.len();
    if grad_out.len().checked_mul(n_in) != Some(acc.len()) || n_in == 0 {
        return Err(Error::ShapeMismatch);
    }
    for (&g, row) in grad_out.iter().zip(acc.chunks_exact_mut(n_in)) {
        for (a, &x) in row.iter_mut().zip(input) {
            *a += scale * g * x;
        }
    }
    Ok(())
}

/// `acc[c] += scale · Σ_pos grad_out[pos][c]`.
pub fn bias_grad(grad_out: &[f32], scale: f32, acc: &mut [f32]) -> Result<(), Error> {
    let channels = acc.len();
    if channels == 0 || grad_out.len() % channels != 0 {
        return Err(Error::ShapeMismatch);
    }
    for (i, &g) in grad_out.iter().enumerate() {
        acc[i % channels] += scale * g;
    }
    Ok(())
}

fn for_each_window(
    in_shape: Shape,
    out_shape: Shape,
    window: &Window,
    mut f: impl FnMut(usize, (usize, usize, usize), (usize, usize, usize)),
) {
    use crate::kernels::window_taps;
    for oy in 0..out_shape.height {
        let ty = window_taps(
            oy,
            window.stride_h,
            window.pad_top,
            window.kernel_h,
            in_shape.height,
        );
        for ox in 0..out_shape.width {
            let tx = window_taps(
                ox,
                window.stride_w,
                window.pad_left,
                window.kernel_w,
                in_shape.width,
            );
            f(oy * out_shape.width + ox, ty, tx);
        }
    }
}

fn conv_taps(
    window: &Window,
    in_shape: Shape,
    out_shape: Shape,
    filter_len: usize,
) -> Result<usize, Error> {
    crate::kernels::check_window(window)?;
    let taps = window.kernel_h * window.kernel_w * in_shape.channels;
    if out_shape.channels * taps != filter_len {
        return Err(Error::ShapeMismatch);
    }
    Ok(taps)
}

/// Input gradient of [`crate::float::conv2d()`].
pub fn conv2d_input_grad(
    grad_out: &[f32],
    out_shape: Shape,
    filter: &[f32],
    window: &Window,
    grad_in: &mut [f32],
    in_shape: Shape,
) -> Result<(), Error> {
    let taps = conv_taps(window, in_shape, out_shape, filter.len())?;
    in_shape.check_len(grad_in.len())?;
    out_shape.check_len(grad_out.len())?;
    grad_in.fill(0.0);
    let (in_w, in_c, out_c) = (in_shape.width, in_shape.channels, out_shape.channels);
    let kernel_row = window.kernel_w * in_c;
    for_each_window(
        in_shape,
        out_shape,
        window,
        |pos, (fy0, fy1, iy0), (fx0, fx1, ix0)| {
            let run = (fx1 - fx0) * in_c;
            for c in 0..out_c {
                let g = grad_out[pos * out_c + c];
                let cf = &filter[c * taps..][..taps];
                for (fy, iy) in (fy0..fy1).zip(iy0..) {
                    let gr = &mut grad_in[(iy * in_w + ix0) * in_c..][..run];
                    let fr = &cf[fy * kernel_row + fx0 * in_c..][..run];
                    for (gi, &w) in gr.iter_mut().zip(fr) {
                        *gi += g * w;
                    }
                }
            }
        },
    );
    Ok(())
}

/// Weight gradient of [`crate::float::conv2d()`], times `scale`, added to `acc` (OHWI).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_weight_grad(
    input: &[f32],
    in_shape: Shape,
    grad_out: &[f32],
    out_shape: Shape,
    window: &Window,
    scale: f32,
    acc: &mut [f32],
) -> Result<(), Error> {
    let taps = conv_taps(window, in_shape, out_shape, acc.len())?;
    in_shape.check_len(input.len())?;
    out_shape.check_len(grad_out.len())?;
    let (in_w, in_c, out_c) = (in_shape.width, in_shape.channels, out_shape.channels);
    let kernel_row = window.kernel_w * in_c;
    for_each_window(
        in_shape,
        out_shape,
        window,
        |pos, (fy0, fy1, iy0), (fx0, fx1, ix0)| {
            let run = (fx1 - fx0) * in_c;
            for c in 0..out_c {
                let g = scale * grad_out[pos * out_c + c];
                let ca = &mut acc[c * taps..][..taps];
                for (fy, iy) in (fy0..fy1).zip(iy0..) {
                    let xr = &input[(iy * in_w + ix0) * in_c..][..run];
                    let ar = &mut ca[fy * kernel_row + fx0 * in_c..][..run];
                    for (a, &x) in ar.iter_mut().zip(xr) {
                        *a += g * x;
                    }
                }
            }
        },
    );
    Ok(())
}

/// Max pool backward: each gradient goes to its window's first maximum.
pub fn max_pool_backward(
    input: &[f32],
    in_shape: Shape,
    window: &Window,
    grad_out: &[f32],
    out_shape: Shape,
    grad_in: &mut [f32],
) -> Result<(), Error> {
    crate::kernels::check_window(window)?;
    in_shape.check_len(input.len())?;
    in_shape.check_len(grad_in.len())?;
    out_shape.check_len(grad_out.len())?;
    grad_in.fill(0.0);
    let (in_w, ch) = (in_shape.width, in_shape.channels);
    for_each_window(
        in_shape,
        out_shape,
        window,
        |pos, (fy0, fy1, iy0), (fx0, fx1, ix0)| {
            for c in 0..ch {
                let mut best: Option<(usize, f32)> = None;
                for iy in iy0..iy0 + (fy1 - fy0) {
                    for ix in ix0..ix0 + (fx1 - fx0) {
                        let at = (iy * in_w + ix) * ch + c;
                        if best.is_none_or(|(_, b)| input[at] > b) {
                            best = Some((at, input[at]));
                        }
                    }
                }
                if let Some((at, _)) = best {
                    grad_in[at] += grad_out[pos * ch + c];
                }
            }
        },
    );
    Ok(())
}

/// Average pool backward: each gradient shared equally among its window's inside taps.
pub fn avg_pool_backward(
    in_shape: Shape,
    window: &Window,
    grad_out: &[f32],
    out_shape: Shape,
    grad_in: &mut [f32],
) -> Result<(), Error> {
    crate::kernels::check_window(window)?;
    in_shape.check_len(grad_in.len())?;
    out_shape.check_len(grad_out.len())?;
    grad_in.fill(0.0);
    let (in_w, ch) = (in_shape.width, in_shape.channels);
    for_each_window(
        in_shape,
        out_shape,
        window,
        |pos, (fy0, fy1, iy0), (fx0, fx1, ix0)| {
            let n = ((fy1 - fy0) * (fx1 - fx0)) as f32;
            for c in 0..ch {
                let share = grad_out[pos * ch + c] / n;
                for iy in iy0..iy0 + (fy1 - fy0) {
                    for ix in ix0..ix0 + (fx1 - fx0) {
                        grad_in[(iy * in_w + ix) * ch + c] += share;
                    }
                }
            }
        },
    );
    Ok(())
}

struct FloatLayer<'a> {
    plan: LayerPlan,
    weights: &'a mut [f32],
    bias: &'a mut [f32],
    w_step: &'a mut [f32],
    b_step: &'a mut [f32],
}

/// float32 SGD on the same layers as a [`Trainer`](super::Trainer) with the same
/// [`TrainConfig`] (learning rate, momentum, batch size, decay; no rounding, no guard).
pub struct FloatTrainer<'m, 'a> {
    model: &'m Model<'m>,
    config: TrainConfig,
    first: usize,
    logits: TensorId,
    layers: heapless::Vec<FloatLayer<'a>, MAX_LAYERS>,
    acts: heapless::Vec<(TensorId, &'a mut [f32]), MAX_SAVED>,
    grad_a: &'a mut [f32],
    grad_b: &'a mut [f32],
    infer: &'a mut [u8],
    in_batch: u32,
    updates: u32,
}

fn suffix_tensors(
    model: &Model<'_>,
    first: usize,
) -> Result<heapless::Vec<(TensorId, usize), MAX_SAVED>, TrainError> {
    let mut out: heapless::Vec<(TensorId, usize), MAX_SAVED> = heapless::Vec::new();
    let mut add = |id: TensorId| -> Result<(), TrainError> {
        let r = root(model, id)?;
        if out.iter().all(|(t, _)| *t != r) {
            let n = model.tensor(r)?.dims.num_elements();
            out.push((r, n)).map_err(|_| Error::CapacityExceeded)?;
        }
        Ok(())
    };
    for i in first..model.op_count() {
        let op = model.op(i)?;
        add(op.input())?;
        add(op.output())?;
    }
    Ok(out)
}

impl<'m, 'a> FloatTrainer<'m, 'a> {
    /// Bytes of arena [`FloatTrainer::new`] needs.
    pub fn required_arena(model: &Model<'_>, config: &TrainConfig) -> Result<usize, TrainError> {
        let plan = analyze(model, config)?;
        let mut n = Bump::size_of::<u8>(model.arena_size()) + super::CARVE_ALIGN;
        let mut grad = 0;
        for l in &plan.layers {
            n += 2 * Bump::size_of::<f32>(l.weights) + 2 * Bump::size_of::<f32>(l.channels);
        }
        for (_, len) in suffix_tensors(model, plan.first)? {
            n += Bump::size_of::<f32>(len);
            grad = grad.max(len);
        }
        Ok(n + 2 * Bump::size_of::<f32>(grad))
    }

    /// A float trainer starting from the dequantized int8 model.
    pub fn new(
        model: &'m Model<'m>,
        config: TrainConfig,
        arena: &'a mut [u8],
    ) -> Result<Self, TrainError> {
        let plan = analyze(model, &config)?;
        let needed = Self::required_arena(model, &config)?;
        if arena.len() < needed {
            return Err(TrainError::ArenaTooSmall {
                needed,
                provided: arena.len(),
            });
        }
        if config.batch_size == 0 {
            return Err(TrainError::BadConfig);
        }
        let mut bump = Bump::new(arena);
        let infer = bump.take::<u8>(model.arena_size())?;
        let mut layers = heapless::Vec::new();
        for lp in &plan.layers {
            let filter_t = model.tensor(lp.filter)?;
            let bias_t = model.tensor(lp.bias)?;
            let in_scale = model.tensor(model.op(lp.op)?.input())?.scale;
            let weights = bump.take::<f32>(lp.weights)?;
            let bias = bump.take::<f32>(lp.channels)?;
            let per_channel = lp.weights / lp.channels.max(1);
            let s_w = |c: usize| {
                filter_t
                    .channel_scales
                    .get(c)
                    .copied()
                    .unwrap_or(filter_t.scale)
            };
            for (k, (w, &q)) in weights.iter_mut().zip(filter_t.data_i8()?).enumerate() {
                *w = f32::from(q) * s_w(k / per_channel.max(1));
            }
            for (c, (b, &q)) in bias.iter_mut().zip(bias_t.data_i32()?).enumerate() {
                *b = (f64::from(q) * f64::from(in_scale) * f64::from(s_w(c))) as f32;
            }
            let layer = FloatLayer {
                plan: *lp,
                weights,
                bias,
                w_step: bump.take::<f32>(lp.weights)?,
                b_step: bump.take::<f32>(lp.channels)?,
            };
            layers.push(layer).map_err(|_| Error::CapacityExceeded)?;
        }
        let mut acts = heapless::Vec::new();
        let mut grad = 0;
        for (id, len) in suffix_tensors(model, plan.first)? {
            acts.push((id, bump.take::<f32>(len)?))
                .map_err(|_| Error::CapacityExceeded)?;
            grad = grad.max(len);
        }
        Ok(FloatTrainer {
            model,
            config,
            first: plan.first,
            logits: plan.logits,
            layers,
            acts,
            grad_a: bump.take::<f32>(grad)?,
            grad_b: bump.take::<f32>(grad)?,
            infer,
            in_batch: 0,
            updates: 0,
        })
    }

    fn act_index(&self, id: TensorId) -> Result<usize, TrainError> {
        act_index(self.model, &self.acts, id)
    }

    /// Runs the int8 prefix and the float suffix on a grey image; returns the logits.
    pub fn forward(&mut self, image: &[u8]) -> Result<&[f32], TrainError> {
        let model = self.model;
        let input_t = model.input()?;
        let input = activation_mut(model, self.infer, model.input_index())?;
        if input.len() != image.len() {
            return Err(TrainError::BadInput);
        }
        crate::interpreter::quantize_grey(image, input_t.scale, input_t.zero_point, input);
        let none = Overlay::new();
        for i in 0..self.first {
            run_op(model, self.infer, &none, &model.op(i)?)?;
        }
        let first_in = model.op(self.first)?.input();
        let t = model.tensor(first_in)?;
        let q = activation(model, self.infer, first_in)?;
        let k = self.act_index(first_in)?;
        for (x, &v) in self.acts[k].1.iter_mut().zip(q) {
            *x = (i32::from(v) - t.zero_point) as f32 * t.scale;
        }
        self.forward_suffix()
    }

    /// Runs the float suffix on int8 features (the first trained layer's input, as
    /// [`Trainer::features`](super::Trainer::features) gives them); returns the logits.
    pub fn forward_features(&mut self, features: &[i8]) -> Result<&[f32], TrainError> {
        let model = self.model;
        let first_in = model.op(self.first)?.input();
        let t = model.tensor(first_in)?;
        let k = self.act_index(first_in)?;
        if self.acts[k].1.len() != features.len() {
            return Err(TrainError::BadInput);
        }
        for (x, &v) in self.acts[k].1.iter_mut().zip(features) {
            *x = (i32::from(v) - t.zero_point) as f32 * t.scale;
        }
        self.forward_suffix()
    }

    fn forward_suffix(&mut self) -> Result<&[f32], TrainError> {
        let model = self.model;
        for i in self.first..model.op_count() {
            let op = model.op(i)?;
            if let Op::Reshape { .. } = op {
                continue;
            }
            let (ki, ko) = (self.act_index(op.input())?, self.act_index(op.output())?);
            let (input, output) = two(&mut self.acts, ki, ko)?;
            let in_t = model.tensor(op.input())?;
            let out_t = model.tensor(op.output())?;
            match op {
                Op::FullyConnected(f) => {
                    let l = self
                        .layers
                        .iter()
                        .find(|l| l.plan.op == i)
                        .ok_or(Error::InvalidParameter)?;
                    let act = activation_of(f.act_min, f.act_max, out_t.zero_point);
                    crate::float::fully_connected(input, l.weights, l.bias, act, output)?;
                }
                Op::Conv2d(c) => {
                    let l = self
                        .layers
                        .iter()
                        .find(|l| l.plan.op == i)
                        .ok_or(Error::InvalidParameter)?;
                    let act = activation_of(c.act_min, c.act_max, out_t.zero_point);
                    crate::float::conv2d(
                        input,
                        in_t.dims.activation_shape()?,
                        l.weights,
                        l.bias,
                        &op_window(model, &op)?,
                        act,
                        output,
                        out_t.dims.activation_shape()?,
                    )?;
                }
                Op::MaxPool(p) | Op::AvgPool(p) => {
                    let act = activation_of(p.act_min, p.act_max, out_t.zero_point);
                    let pool = if let Op::MaxPool(_) = op {
                        crate::float::max_pool
                    } else {
                        crate::float::avg_pool
                    };
                    pool(
                        input,
                        in_t.dims.activation_shape()?,
                        &op_window(model, &op)?,
                        act,
                        output,
                        out_t.dims.activation_shape()?,
                    )?;
                }
                Op::Softmax(_) => {}
                _ => return Err(TrainError::Unsupported { op: i }),
            }
        }
        let k = self.act_index(self.logits)?;
        Ok(&*self.acts[k].1)
    }

    /// Predicted class of a grey image.
    pub fn predict(&mut self, image: &[u8]) -> Result<usize, TrainError> {
        Ok(argmax(self.forward(image)?))
    }

    /// Predicted class from int8 features.
    pub fn predict_features(&mut self, features: &[i8]) -> Result<usize, TrainError> {
        Ok(argmax(self.forward_features(features)?))
    }

    /// One training sample (see [`Trainer::step`](super::Trainer::step)); returns its loss.
    pub fn step(&mut self, image: &[u8], label: usize) -> Result<f32, TrainError> {
        self.forward(image)?;
        self.backward(label)
    }

    /// One training sample from int8 features.
    pub fn step_features(&mut self, features: &[i8], label: usize) -> Result<f32, TrainError> {
        self.forward_features(features)?;
        self.backward(label)
    }

    fn backward(&mut self, label: usize) -> Result<f32, TrainError> {
        let model = self.model;
        let k = self.act_index(self.logits)?;
        let n = self.acts[k].1.len();
        if label >= n {
            return Err(TrainError::BadLabel);
        }
        if self.in_batch == 0 {
            let mu = f32::from(self.config.momentum_q15) / 32768.0;
            for l in self.layers.iter_mut() {
                l.w_step.iter_mut().for_each(|v| *v *= mu);
                l.b_step.iter_mut().for_each(|v| *v *= mu);
            }
        }
        let loss = softmax_cross_entropy(self.acts[k].1, label, &mut self.grad_a[..n])?;
        let lr = self.learning_rate() / f32::from(self.config.batch_size);
        let mut cur = &mut *self.grad_a;
        let mut other = &mut *self.grad_b;
        let mut len = n;
        for i in (self.first..model.op_count()).rev() {
            let op = model.op(i)?;
            let in_t = model.tensor(op.input())?;
            let out_t = model.tensor(op.output())?;
            let in_len = in_t.dims.num_elements();
            let g = &mut cur[..len];
            let out = &*self.acts[act_index(model, &self.acts, op.output())?].1;
            let inp = &*self.acts[act_index(model, &self.acts, op.input())?].1;
            match op {
                Op::Softmax(_) | Op::Reshape { .. } => continue,
                Op::FullyConnected(_) | Op::Conv2d(_) => {
                    let (lo, hi) = match op {
                        Op::FullyConnected(f) => (f.act_min, f.act_max),
                        Op::Conv2d(c) => (c.act_min, c.act_max),
                        _ => (i8::MIN, i8::MAX),
                    };
                    activation_mask(out, activation_of(lo, hi, out_t.zero_point), g)?;
                    let l = self
                        .layers
                        .iter_mut()
                        .find(|l| l.plan.op == i)
                        .ok_or(Error::InvalidParameter)?;
                    let conv = matches!(op, Op::Conv2d(_));
                    let win = if conv {
                        Some(op_window(model, &op)?)
                    } else {
                        None
                    };
                    if l.plan.train_bias {
                        bias_grad(g, lr, l.b_step)?;
                    }
                    if l.plan.train_weights {
                        match win {
                            Some(w) => conv2d_weight_grad(
                                inp,
                                in_t.dims.activation_shape()?,
                                g,
                                out_t.dims.activation_shape()?,
                                &w,
                                lr,
                                l.w_step,
                            )?,
                            None => fully_connected_weight_grad(inp, g, lr, l.w_step)?,
                        }
                    }
                    if i > self.first {
                        let dst = &mut other[..in_len];
                        match win {
                            Some(w) => conv2d_input_grad(
                                g,
                                out_t.dims.activation_shape()?,
                                l.weights,
                                &w,
                                dst,
                                in_t.dims.activation_shape()?,
                            )?,
                            None => fully_connected_input_grad(g, l.weights, dst)?,
                        }
                    }
                }
                Op::MaxPool(p) | Op::AvgPool(p) => {
                    activation_mask(
                        out,
                        activation_of(p.act_min, p.act_max, out_t.zero_point),
                        g,
                    )?;
                    let w = op_window(model, &op)?;
                    let (si, so) = (
                        in_t.dims.activation_shape()?,
                        out_t.dims.activation_shape()?,
                    );
                    let dst = &mut other[..in_len];
                    if let Op::MaxPool(_) = op {
                        max_pool_backward(inp, si, &w, g, so, dst)?;
                    } else {
                        avg_pool_backward(si, &w, g, so, dst)?;
                    }
                }
                _ => return Err(TrainError::Unsupported { op: i }),
            }
            if i > self.first {
                core::mem::swap(&mut cur, &mut other);
                len = in_len;
            }
        }
        self.in_batch += 1;
        if self.in_batch >= u32::from(self.config.batch_size) {
            self.apply();
        }
        Ok(loss)
    }

    fn learning_rate(&self) -> f32 {
        let mut lr = self.config.learning_rate_q16 as f32 / 65536.0;
        if let Some(periods) = self.updates.checked_div(self.config.decay_every) {
            for _ in 0..periods {
                lr *= self.config.decay_factor_q16 as f32 / 65536.0;
            }
        }
        lr
    }

    fn apply(&mut self) {
        for l in self.layers.iter_mut() {
            if l.plan.train_weights {
                for (w, s) in l.weights.iter_mut().zip(l.w_step.iter()) {
                    *w -= *s;
                }
            }
            if l.plan.train_bias {
                for (b, s) in l.bias.iter_mut().zip(l.b_step.iter()) {
                    *b -= *s;
                }
            }
        }
        self.in_batch = 0;
        self.updates += 1;
    }

    /// Applies a partly filled mini-batch now.
    pub fn flush(&mut self) {
        if self.in_batch > 0 {
            self.apply();
        }
    }

    /// Mean loss over samples, as a [`Loss`] for comparison with the fixed-point trainer.
    pub fn loss(&mut self, image: &[u8], label: usize) -> Result<Loss, TrainError> {
        let logits = self.forward(image)?;
        let max = logits.iter().copied().fold(f32::MIN, f32::max);
        let sum: f32 = logits.iter().map(|&z| libm::expf(z - max)).sum();
        let z = *logits.get(label).ok_or(TrainError::BadLabel)?;
        let l = libm::logf(sum) - (z - max);
        Ok(Loss::from_q16(libm::roundf(l * 65536.0) as i64))
    }
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &z) in v.iter().enumerate() {
        if z > v[best] {
            best = i;
        }
    }
    best
}

fn act_index(
    model: &Model<'_>,
    acts: &[(TensorId, &mut [f32])],
    id: TensorId,
) -> Result<usize, TrainError> {
    let r = root(model, id)?;
    acts.iter()
        .position(|(t, _)| *t == r)
        .ok_or(TrainError::Model(Error::BadTensorIndex(id)))
}

fn two<'x>(
    acts: &'x mut heapless::Vec<(TensorId, &mut [f32]), MAX_SAVED>,
    a: usize,
    b: usize,
) -> Result<(&'x [f32], &'x mut [f32]), Error> {
    if a == b {
        return Err(Error::BadPlan);
    }
    if a < b {
        let (lo, hi) = acts.split_at_mut(b);
        Ok((&*lo[a].1, &mut *hi[0].1))
    } else {
        let (lo, hi) = acts.split_at_mut(a);
        Ok((&*hi[0].1, &mut *lo[b].1))
    }
}
