//! The fixed-point trainer: int8 forward, fixed-point backward, master weights, mini-batch
//! SGD with momentum, a learning-rate schedule and a rollback guard, all in one caller arena.

use super::arena::Bump;
use super::backward as bw;
use super::fixed::{Scale, GRAD_BITS, LOSS_BITS, MASTER_BITS, MAX_BIAS_BITS};
use super::forward::{activation, activation_mut, op_window, run_op};
use super::plan::{analyze, arena_use, root, trained_weights, ArenaUse, LayerPlan, Plan};
use super::{Loss, Rounding, TrainConfig, TrainError};
use crate::format::{Model, Op, TensorId};
use crate::overlay::Overlay;
use crate::train::{MAX_LAYERS, MAX_SAVED};
use crate::Error;

/// Largest master weight: int8 weights saturate to ±127, and a master far beyond that would
/// only have to travel back before the int8 weight moves again.
const MASTER_LIMIT: i32 = (127 << MASTER_BITS) + (1 << (MASTER_BITS - 1)) - 1;

struct WeightState<'m, 'a> {
    /// The model's own weights (in flash): what the anchor pulls back towards.
    origin: &'m [i8],
    int8: &'a mut [i8],
    /// Masters, steps and last-good copies of the trained channels, in the order of `picked`.
    master: &'a mut [i32],
    step: &'a mut [i32],
    good: &'a mut [i8],
    /// The output channels whose weights train (empty: all of them).
    picked: &'a mut [u16],
    /// Weights per output channel.
    taps: usize,
}

impl WeightState<'_, '_> {
    /// Groups of weights that move together: one (the whole filter), or one per picked
    /// channel.
    fn groups(&self) -> usize {
        if self.picked.is_empty() {
            1
        } else {
            self.picked.len()
        }
    }

    /// Group `k`'s range in the masters and in the filter.
    fn ranges(&self, k: usize) -> (core::ops::Range<usize>, core::ops::Range<usize>) {
        match self.picked.get(k) {
            Some(&c) => {
                let start = usize::from(c).saturating_mul(self.taps);
                let m = k.saturating_mul(self.taps);
                (
                    m..m.saturating_add(self.taps),
                    start..start.saturating_add(self.taps),
                )
            }
            None => (0..self.master.len(), 0..self.int8.len()),
        }
    }
}

/// Picks `picked.len()` output channels of the convolution at `op` for a sparse update: the
/// ones the next fully connected layer weighs most (largest sum of absolute weights over the
/// inputs that carry the channel, NHWC order), or the first ones without such a layer.
fn pick_channels(
    model: &Model<'_>,
    op: usize,
    channels: usize,
    picked: &mut [u16],
) -> Result<(), Error> {
    let mut next = None;
    for i in op + 1..model.op_count() {
        if let Op::FullyConnected(f) = model.op(i)? {
            next = Some(model.tensor(f.filter)?.data_i8()?);
            let inputs = model.tensor(model.op(i)?.input())?.dims.num_elements();
            if channels == 0 || inputs == 0 || inputs % channels != 0 {
                next = None;
            } else if let Some(w) = next {
                if w.len() % inputs != 0 {
                    next = None;
                }
            }
            break;
        }
    }
    let score = |c: usize| -> u64 {
        match next {
            Some(w) => w
                .iter()
                .enumerate()
                .filter(|(i, _)| i % channels == c)
                .map(|(_, &v)| u64::from(v.unsigned_abs()))
                .sum(),
            None => 0,
        }
    };
    for k in 0..picked.len() {
        let mut best: Option<(usize, u64)> = None;
        for c in 0..channels {
            let taken = picked
                .get(..k)
                .is_some_and(|p| p.iter().any(|&q| usize::from(q) == c));
            if taken {
                continue;
            }
            let s = score(c);
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((c, s));
            }
        }
        let (c, _) = best.ok_or(Error::InvalidParameter)?;
        *picked.get_mut(k).ok_or(Error::InvalidParameter)? =
            u16::try_from(c).map_err(|_| Error::InvalidParameter)?;
    }
    Ok(())
}

struct BiasState<'m, 'a> {
    /// The model's own biases (in flash).
    origin: &'m [i32],
    int32: &'a mut [i32],
    master: &'a mut [i32],
    step: &'a mut [i32],
    good: &'a mut [i32],
    frac_bits: i32,
}

struct Layer<'m, 'a> {
    plan: LayerPlan,
    /// Per-channel weight scales from the model (one scale for a per-tensor filter).
    w_scales: &'m [f32],
    w_scale: f32,
    in_scale: f32,
    in_zero_point: i32,
    weights: Option<WeightState<'m, 'a>>,
    bias: Option<BiasState<'m, 'a>>,
}

/// A constant the trainer has changed: what [`Trainer::constants`] yields.
#[derive(Clone, Copy, Debug)]
pub enum Constant<'x> {
    /// int8 weights of tensor `.0`.
    Int8(TensorId, &'x [i8]),
    /// int32 biases of tensor `.0`.
    Int32(TensorId, &'x [i32]),
}

/// What [`Trainer::guard`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum GuardOutcome {
    /// The held-back loss did not get worse: the current weights are the new last good ones.
    Kept {
        /// Mean held-back loss now.
        loss: Loss,
    },
    /// The held-back loss got worse: the last good weights are back.
    RolledBack {
        /// Mean held-back loss of the rejected weights.
        loss: Loss,
        /// Mean held-back loss of the restored weights.
        best: Loss,
    },
}

/// Fine-tunes a trainable suffix of a model in fixed point, in one caller-provided arena.
///
/// The forward pass is the device's int8 inference with the current int8 weights; the
/// backward pass is fixed point; each mini-batch updates master weights and refreshes the
/// int8 weights from them. See `docs/training.md` for the number formats.
pub struct Trainer<'m, 'a> {
    model: &'m Model<'m>,
    config: TrainConfig,
    first: usize,
    logits: TensorId,
    softmax: crate::kernels::SoftmaxParams,
    layers: heapless::Vec<Layer<'m, 'a>, MAX_LAYERS>,
    saved: heapless::Vec<(TensorId, &'a mut [i8]), MAX_SAVED>,
    grad_a: &'a mut [i32],
    grad_b: &'a mut [i32],
    infer: &'a mut [u8],
    in_batch: u32,
    updates: u32,
    rng: u32,
    best: Option<i64>,
}

impl<'m, 'a> Trainer<'m, 'a> {
    /// Bytes of train arena [`Trainer::new`] needs to train from op `train_from` with the
    /// default configuration.
    pub fn required_arena(model: &Model<'_>, train_from: usize) -> Result<usize, TrainError> {
        Ok(Self::arena_use(model, &TrainConfig::new(train_from))?.total())
    }

    /// What the train arena holds for `config`, by part.
    pub fn arena_use(model: &Model<'_>, config: &TrainConfig) -> Result<ArenaUse, TrainError> {
        let plan = analyze(model, config)?;
        Ok(arena_use(model, &plan, config))
    }

    /// A trainer for the layers from op `train_from` on, default configuration.
    pub fn new(
        model: &'m Model<'m>,
        train_from: usize,
        arena: &'a mut [u8],
    ) -> Result<Self, TrainError> {
        Self::with_config(model, TrainConfig::new(train_from), arena)
    }

    /// A trainer with an explicit configuration.
    pub fn with_config(
        model: &'m Model<'m>,
        config: TrainConfig,
        arena: &'a mut [u8],
    ) -> Result<Self, TrainError> {
        let plan: Plan = analyze(model, &config)?;
        let needed = arena_use(model, &plan, &config).total();
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
            let input_t = model.tensor(model.op(lp.op)?.input())?;
            let weights = if lp.train_weights {
                let flash = filter_t.data_i8()?;
                let trained = trained_weights(lp);
                let mut w = WeightState {
                    origin: flash,
                    int8: bump.take(lp.weights)?,
                    master: bump.take(trained)?,
                    step: bump.take(trained)?,
                    good: if config.rollback {
                        bump.take(trained)?
                    } else {
                        &mut []
                    },
                    picked: &mut [],
                    taps: lp.weights.checked_div(lp.channels).unwrap_or(0),
                };
                if lp.weight_channels < lp.channels {
                    w.picked = bump.take(lp.weight_channels)?;
                    pick_channels(model, lp.op, lp.channels, w.picked)?;
                }
                copy_exact(w.int8, flash)?;
                for k in 0..w.groups() {
                    let (mr, qr) = w.ranges(k);
                    let src = flash.get(qr).ok_or(Error::ShapeMismatch)?;
                    let m = w.master.get_mut(mr.clone()).ok_or(Error::ShapeMismatch)?;
                    for (m, &q) in m.iter_mut().zip(src) {
                        *m = i32::from(q) << MASTER_BITS;
                    }
                    if let Some(g) = w.good.get_mut(mr) {
                        copy_exact(g, src)?;
                    }
                }
                Some(w)
            } else {
                None
            };
            let bias = if lp.train_bias {
                let flash = bias_t.data_i32()?;
                let largest = flash.iter().map(|b| b.unsigned_abs()).max().unwrap_or(0);
                // Keep 2 bits of headroom for the biases to grow.
                let mut frac_bits = MAX_BIAS_BITS;
                while frac_bits > 0 && u64::from(largest) << frac_bits > 1 << 29 {
                    frac_bits -= 1;
                }
                let b = BiasState {
                    origin: flash,
                    int32: bump.take(lp.channels)?,
                    master: bump.take(lp.channels)?,
                    step: bump.take(lp.channels)?,
                    good: if config.rollback {
                        bump.take(lp.channels)?
                    } else {
                        &mut []
                    },
                    frac_bits,
                };
                copy_exact(b.int32, flash)?;
                for (m, &q) in b.master.iter_mut().zip(flash) {
                    *m = q.saturating_mul(1 << frac_bits);
                }
                if !b.good.is_empty() {
                    copy_exact(b.good, flash)?;
                }
                Some(b)
            } else {
                None
            };
            let layer = Layer {
                plan: *lp,
                w_scales: filter_t.channel_scales,
                w_scale: filter_t.scale,
                in_scale: input_t.scale,
                in_zero_point: input_t.zero_point,
                weights,
                bias,
            };
            layers.push(layer).map_err(|_| Error::CapacityExceeded)?;
        }
        let mut saved = heapless::Vec::new();
        for &(id, len) in &plan.saved {
            saved
                .push((id, bump.take::<i8>(len)?))
                .map_err(|_| Error::CapacityExceeded)?;
        }
        let [len_a, len_b] = plan.grad_len;
        let grad_a = bump.take::<i32>(len_a)?;
        let grad_b = bump.take::<i32>(len_b)?;
        Ok(Trainer {
            model,
            rng: config.seed | 1,
            config,
            first: plan.first,
            logits: plan.logits,
            softmax: plan.softmax,
            layers,
            saved,
            grad_a,
            grad_b,
            infer,
            in_batch: 0,
            updates: 0,
            best: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Mini-batch updates applied so far.
    pub fn updates(&self) -> u32 {
        self.updates
    }

    /// The learning rate of the next update, in Q16, after the step-decay schedule.
    pub fn learning_rate_q16(&self) -> u32 {
        let mut lr = u64::from(self.config.learning_rate_q16);
        if let Some(periods) = self.updates.checked_div(self.config.decay_every) {
            for _ in 0..periods {
                lr = (lr * u64::from(self.config.decay_factor_q16) + (1 << 15)) >> 16;
            }
        }
        lr.min(u64::from(u32::MAX)) as u32
    }

    /// The trained constants as an overlay for an [`Interpreter`](crate::Interpreter).
    pub fn overlay(&self) -> Result<Overlay<'_>, Error> {
        let mut overlay = Overlay::new();
        for c in self.constants() {
            match c {
                Constant::Int8(id, v) => overlay.set_int8(id, v)?,
                Constant::Int32(id, v) => overlay.set_int32(id, v)?,
            }
        }
        Ok(overlay)
    }

    /// The trained constants (current int8 weights and int32 biases).
    pub fn constants(&self) -> impl Iterator<Item = Constant<'_>> + '_ {
        self.layers.iter().flat_map(|l| {
            let w = l
                .weights
                .as_ref()
                .map(|w| Constant::Int8(l.plan.filter, &*w.int8));
            let b = l
                .bias
                .as_ref()
                .map(|b| Constant::Int32(l.plan.bias, &*b.int32));
            w.into_iter().chain(b)
        })
    }

    /// Loads trained constants (e.g. from storage) as the current and last good weights;
    /// constants the trainer does not train are ignored.
    pub fn restore(&mut self, overlay: &Overlay<'_>) -> Result<(), TrainError> {
        for l in self.layers.iter_mut() {
            if let (Some(w), Some(v)) = (l.weights.as_mut(), overlay.int8(l.plan.filter)) {
                if v.len() != w.int8.len() {
                    return Err(Error::ShapeMismatch.into());
                }
                w.int8.copy_from_slice(v);
            }
            if let (Some(b), Some(v)) = (l.bias.as_mut(), overlay.int32(l.plan.bias)) {
                if v.len() != b.int32.len() {
                    return Err(Error::ShapeMismatch.into());
                }
                b.int32.copy_from_slice(v);
            }
        }
        self.reset_masters();
        self.commit_good();
        Ok(())
    }

    /// Runs the model on a grey image (0 = background) with the current weights.
    pub fn forward(&mut self, image: &[u8]) -> Result<(), TrainError> {
        let model = self.model;
        let input_t = model.input()?;
        let input = activation_mut(model, self.infer, model.input_index())?;
        if input.len() != image.len() {
            return Err(TrainError::BadInput);
        }
        crate::interpreter::quantize_grey(image, input_t.scale, input_t.zero_point, input);
        self.forward_quantized()
    }

    /// Runs the model on the int8 input already in place (see [`Trainer::input_mut`]).
    pub fn forward_quantized(&mut self) -> Result<(), TrainError> {
        self.run_ops(0, self.model.op_count())
    }

    /// Elements of the *features*: the input of the first trained layer, which the frozen
    /// prefix computes and which does not change while training.
    pub fn feature_len(&self) -> Result<usize, TrainError> {
        let id = self.model.op(self.first)?.input();
        Ok(self.model.tensor(id)?.dims.num_elements())
    }

    /// Runs only the frozen prefix on a grey image and copies its output, the features, to
    /// `out` ([`Trainer::feature_len`] values). Training from cached features
    /// ([`Trainer::step_features`]) skips the prefix in every epoch after the first.
    pub fn features(&mut self, image: &[u8], out: &mut [i8]) -> Result<(), TrainError> {
        let model = self.model;
        let input_t = model.input()?;
        let input = activation_mut(model, self.infer, model.input_index())?;
        if input.len() != image.len() {
            return Err(TrainError::BadInput);
        }
        crate::interpreter::quantize_grey(image, input_t.scale, input_t.zero_point, input);
        self.run_ops(0, self.first)?;
        let id = model.op(self.first)?.input();
        let f = activation(model, self.infer, id)?;
        if out.len() != f.len() {
            return Err(TrainError::BadInput);
        }
        out.copy_from_slice(f);
        Ok(())
    }

    /// Places features in the arena and runs the trained suffix on them.
    fn forward_features(&mut self, features: &[i8]) -> Result<(), TrainError> {
        let model = self.model;
        let id = model.op(self.first)?.input();
        let dst = activation_mut(model, self.infer, id)?;
        if dst.len() != features.len() {
            return Err(TrainError::BadInput);
        }
        dst.copy_from_slice(features);
        let r = root(model, id)?;
        for (t, buf) in self.saved.iter_mut() {
            if *t == r {
                copy_exact(buf, features)?;
            }
        }
        self.run_ops(self.first, model.op_count())
    }

    /// [`Trainer::step`] from cached features (see [`Trainer::features`]).
    pub fn step_features(&mut self, features: &[i8], label: usize) -> Result<Loss, TrainError> {
        self.forward_features(features)?;
        self.backward(label)
    }

    /// [`Trainer::predict`] from cached features.
    pub fn predict_features(&mut self, features: &[i8]) -> Result<usize, TrainError> {
        self.forward_features(features)?;
        Ok(crate::interpreter::top1(self.output()?).0)
    }

    /// [`Trainer::loss`] from cached features.
    pub fn loss_features(&mut self, features: &[i8], label: usize) -> Result<Loss, TrainError> {
        self.forward_features(features)?;
        self.last_loss(label)
    }

    /// Runs ops `start..end`, keeping the activations the backward pass needs.
    fn run_ops(&mut self, start: usize, end: usize) -> Result<(), TrainError> {
        let model = self.model;
        let mut overlay = Overlay::new();
        for l in &self.layers {
            if let Some(w) = &l.weights {
                overlay.set_int8(l.plan.filter, w.int8)?;
            }
            if let Some(b) = &l.bias {
                overlay.set_int32(l.plan.bias, b.int32)?;
            }
        }
        let keep = |id: TensorId,
                    arena: &[u8],
                    saved: &mut heapless::Vec<(TensorId, &'a mut [i8]), MAX_SAVED>|
         -> Result<(), Error> {
            for (t, buf) in saved.iter_mut() {
                if *t == id {
                    copy_exact(buf, activation(model, arena, id)?)?;
                }
            }
            Ok(())
        };
        if start == 0 {
            keep(model.input_index(), self.infer, &mut self.saved)?;
        }
        for i in start..end {
            let op = model.op(i)?;
            run_op(model, self.infer, &overlay, &op)?;
            if i + 1 >= self.first && !matches!(op, Op::Reshape { .. }) {
                keep(op.output(), self.infer, &mut self.saved)?;
            }
        }
        Ok(())
    }

    /// The model input's int8 values, to fill before [`Trainer::forward_quantized`] or
    /// [`Trainer::step_quantized`].
    pub fn input_mut(&mut self) -> Result<&mut [i8], Error> {
        activation_mut(self.model, self.infer, self.model.input_index())
    }

    /// The model output after a forward pass.
    pub fn output(&self) -> Result<&[i8], Error> {
        activation(self.model, self.infer, self.model.output_index())
    }

    /// The predicted class of a grey image with the current weights.
    pub fn predict(&mut self, image: &[u8]) -> Result<usize, TrainError> {
        self.forward(image)?;
        Ok(crate::interpreter::top1(self.output()?).0)
    }

    /// Loss of the last forward pass for `label`, without touching any gradient state.
    pub fn last_loss(&mut self, label: usize) -> Result<Loss, TrainError> {
        let logits = root(self.model, self.logits)?;
        let saved = self
            .saved
            .iter()
            .find(|(t, _)| *t == logits)
            .map(|(_, b)| &**b)
            .ok_or(TrainError::Model(Error::BadTensorIndex(logits)))?;
        if label >= saved.len() {
            return Err(TrainError::BadLabel);
        }
        let grad = self
            .grad_a
            .get_mut(..saved.len())
            .ok_or(Error::ShapeMismatch)?;
        let q = bw::softmax_cross_entropy(saved, &self.softmax, label, grad)?;
        Ok(Loss::from_q16(q))
    }

    /// Loss of a grey image with the current weights (no training).
    pub fn loss(&mut self, image: &[u8], label: usize) -> Result<Loss, TrainError> {
        self.forward(image)?;
        self.last_loss(label)
    }

    /// One training sample: forward, loss, backward, accumulate; applies the update when the
    /// mini-batch is full. Returns the sample's loss (before the update).
    pub fn step(&mut self, image: &[u8], label: usize) -> Result<Loss, TrainError> {
        self.forward(image)?;
        self.backward(label)
    }

    /// [`Trainer::step`] on the int8 input already in place.
    pub fn step_quantized(&mut self, label: usize) -> Result<Loss, TrainError> {
        self.forward_quantized()?;
        self.backward(label)
    }

    fn backward(&mut self, label: usize) -> Result<Loss, TrainError> {
        let loss = self.last_loss(label)?;
        let model = self.model;
        if self.in_batch == 0 {
            self.start_batch();
        }
        let lr = f64::from(self.learning_rate_q16()) / 65536.0 / f64::from(self.config.batch_size);
        let mut cur = &mut *self.grad_a;
        let mut other = &mut *self.grad_b;
        let mut len = model.tensor(self.logits)?.dims.num_elements();
        let grad_unit = libm::ldexp(1.0, -GRAD_BITS);
        let saved = &self.saved;
        let find = |id: TensorId| -> Result<&[i8], TrainError> {
            let r = root(model, id)?;
            saved
                .iter()
                .find(|(t, _)| *t == r)
                .map(|(_, b)| &**b)
                .ok_or(TrainError::Model(Error::BadTensorIndex(id)))
        };
        for i in (self.first..model.op_count()).rev() {
            let op = model.op(i)?;
            let out_t = model.tensor(op.output())?;
            let in_t = model.tensor(op.input())?;
            let in_len = in_t.dims.num_elements();
            let g = cur.get_mut(..len).ok_or(Error::ShapeMismatch)?;
            match op {
                Op::Softmax(_) | Op::Reshape { .. } => continue,
                Op::FullyConnected(_) | Op::Conv2d(_) => {
                    let (act_min, act_max) = match op {
                        Op::FullyConnected(f) => (f.act_min, f.act_max),
                        Op::Conv2d(c) => (c.act_min, c.act_max),
                        _ => (i8::MIN, i8::MAX),
                    };
                    bw::activation_mask(find(op.output())?, out_t.zero_point, act_min, act_max, g)?;
                    let layer = self
                        .layers
                        .iter_mut()
                        .find(|l| l.plan.op == i)
                        .ok_or(TrainError::Model(Error::InvalidParameter))?;
                    let s_x = f64::from(layer.in_scale);
                    if let Some(b) = layer.bias.as_mut() {
                        let unit = libm::ldexp(1.0, b.frac_bits);
                        let w_scales = layer.w_scales;
                        let w_scale = layer.w_scale;
                        let rate = |c: usize| {
                            let s_w = f64::from(w_scales.get(c).copied().unwrap_or(w_scale));
                            Scale::from_f64(lr * unit * grad_unit / (s_x * s_w))
                        };
                        bw::bias_grad(g, rate, b.step)?;
                    }
                    let window = match op {
                        Op::Conv2d(_) => Some(op_window(model, &op)?),
                        _ => None,
                    };
                    let w_scales = layer.w_scales;
                    let w_scale = layer.w_scale;
                    let s_w = |c: usize| f64::from(w_scales.get(c).copied().unwrap_or(w_scale));
                    if let Some(w) = layer.weights.as_mut() {
                        let master_unit = libm::ldexp(1.0, MASTER_BITS);
                        let rate =
                            |c: usize| Scale::from_f64(lr * s_x * master_unit * grad_unit / s_w(c));
                        let input = find(op.input())?;
                        match window {
                            Some(win) => bw::conv2d_weight_grad_channels(
                                input,
                                in_t.dims.activation_shape()?,
                                layer.in_zero_point,
                                g,
                                out_t.dims.activation_shape()?,
                                &win,
                                w.picked,
                                rate,
                                w.step,
                            )?,
                            None => bw::fully_connected_weight_grad(
                                input,
                                layer.in_zero_point,
                                g,
                                rate,
                                w.step,
                            )?,
                        }
                    }
                    if i > self.first {
                        let weights: &[i8] = match layer.weights.as_ref() {
                            Some(w) => w.int8,
                            None => model.tensor(layer.plan.filter)?.data_i8()?,
                        };
                        let dst = other.get_mut(..in_len).ok_or(Error::ShapeMismatch)?;
                        let scale = |c: usize| Scale::from_f64(s_w(c));
                        match window {
                            Some(win) => bw::conv2d_input_grad(
                                g,
                                out_t.dims.activation_shape()?,
                                weights,
                                &win,
                                scale,
                                dst,
                                in_t.dims.activation_shape()?,
                            )?,
                            None => bw::fully_connected_input_grad(g, weights, scale, dst)?,
                        }
                    }
                }
                Op::MaxPool(p) | Op::AvgPool(p) => {
                    bw::activation_mask(
                        find(op.output())?,
                        out_t.zero_point,
                        p.act_min,
                        p.act_max,
                        g,
                    )?;
                    let win = op_window(model, &op)?;
                    let dst = other.get_mut(..in_len).ok_or(Error::ShapeMismatch)?;
                    let (in_shape, out_shape) = (
                        in_t.dims.activation_shape()?,
                        out_t.dims.activation_shape()?,
                    );
                    if let Op::MaxPool(_) = op {
                        bw::max_pool_backward(
                            find(op.input())?,
                            in_shape,
                            &win,
                            g,
                            out_shape,
                            dst,
                        )?;
                    } else {
                        bw::avg_pool_backward(in_shape, &win, g, out_shape, dst)?;
                    }
                }
                Op::DepthwiseConv2d(_)
                | Op::Add(_)
                | Op::Lookup(_)
                | Op::Mean(_)
                | Op::Pad(_)
                | Op::Concatenation(_)
                | Op::Mul(_) => return Err(TrainError::Unsupported { op: i }),
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

    /// Turns the velocity into the accumulator of a new mini-batch: `v ← μ·v`.
    fn start_batch(&mut self) {
        let mu = i64::from(self.config.momentum_q15);
        let decay = |v: &mut i32| {
            *v = super::fixed::saturate_i32(super::fixed::shift_round(i64::from(*v) * mu, 15));
        };
        for l in self.layers.iter_mut() {
            if let Some(w) = l.weights.as_mut() {
                w.step.iter_mut().for_each(decay);
            }
            if let Some(b) = l.bias.as_mut() {
                b.step.iter_mut().for_each(decay);
            }
        }
    }

    /// Applies a partly filled mini-batch now (its mean uses the full batch size).
    pub fn flush(&mut self) {
        if self.in_batch > 0 {
            self.apply();
        }
    }

    fn next_random(&mut self) -> u32 {
        // xorshift32: cheap, deterministic, good enough to dither a rounding.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng = x;
        x
    }

    /// `master -= step`, then refresh the int8 weights and int32 biases from the masters.
    fn apply(&mut self) {
        let stochastic = matches!(self.config.rounding, Rounding::Stochastic);
        let anchor = i64::from(self.config.anchor_q16);
        // Pulls a master a fraction `anchor` of the way back to the model's own value.
        let pull = |m: i32, origin: i64| -> i32 {
            let d = i64::from(m) - origin;
            super::fixed::saturate_i32(i64::from(m) - super::fixed::shift_round(d * anchor, 16))
        };
        let mut layers = core::mem::take(&mut self.layers);
        for l in layers.iter_mut() {
            if let Some(w) = l.weights.as_mut() {
                for k in 0..w.groups() {
                    let (mr, qr) = w.ranges(k);
                    let (Some(master), Some(step), Some(int8), Some(origin)) = (
                        w.master.get_mut(mr.clone()),
                        w.step.get(mr),
                        w.int8.get_mut(qr.clone()),
                        w.origin.get(qr),
                    ) else {
                        continue;
                    };
                    for (((m, s), q), &o) in
                        master.iter_mut().zip(step).zip(int8.iter_mut()).zip(origin)
                    {
                        *m = pull(m.saturating_sub(*s), i64::from(o) << MASTER_BITS)
                            .clamp(-MASTER_LIMIT, MASTER_LIMIT);
                        let dither = if stochastic {
                            (self.next_random() >> (32 - MASTER_BITS)) as i32
                        } else {
                            1 << (MASTER_BITS - 1)
                        };
                        // Floor of (m + dither) / 2^16: round half up, or stochastic rounding.
                        let v = (i64::from(*m) + i64::from(dither)) >> MASTER_BITS;
                        *q = v.clamp(-127, 127) as i8;
                    }
                }
            }
            if let Some(b) = l.bias.as_mut() {
                for (((m, s), q), &o) in b
                    .master
                    .iter_mut()
                    .zip(b.step.iter())
                    .zip(b.int32.iter_mut())
                    .zip(b.origin)
                {
                    *m = pull(m.saturating_sub(*s), i64::from(o) << b.frac_bits);
                    *q = super::fixed::saturate_i32(super::fixed::shift_round(
                        i64::from(*m),
                        b.frac_bits,
                    ));
                }
            }
        }
        self.layers = layers;
        self.in_batch = 0;
        self.updates = self.updates.saturating_add(1);
    }

    fn reset_masters(&mut self) {
        for l in self.layers.iter_mut() {
            if let Some(w) = l.weights.as_mut() {
                for k in 0..w.groups() {
                    let (mr, qr) = w.ranges(k);
                    if let (Some(master), Some(int8)) = (w.master.get_mut(mr), w.int8.get(qr)) {
                        for (m, &q) in master.iter_mut().zip(int8) {
                            *m = i32::from(q) << MASTER_BITS;
                        }
                    }
                }
                w.step.fill(0);
            }
            if let Some(b) = l.bias.as_mut() {
                for (m, &q) in b.master.iter_mut().zip(b.int32.iter()) {
                    *m = q.saturating_mul(1 << b.frac_bits);
                }
                b.step.fill(0);
            }
        }
        self.in_batch = 0;
    }

    fn commit_good(&mut self) {
        for l in self.layers.iter_mut() {
            if let Some(w) = l.weights.as_mut() {
                for k in 0..w.groups() {
                    let (mr, qr) = w.ranges(k);
                    if let (Some(good), Some(int8)) = (w.good.get_mut(mr), w.int8.get(qr)) {
                        if good.len() == int8.len() {
                            good.copy_from_slice(int8);
                        }
                    }
                }
            }
            if let Some(b) = l.bias.as_mut() {
                if b.good.len() == b.int32.len() {
                    b.good.copy_from_slice(b.int32);
                }
            }
        }
    }

    /// Brings back the last good weights (those of the last [`GuardOutcome::Kept`], or the
    /// model's). Momentum and any partial mini-batch are dropped.
    pub fn rollback(&mut self) -> Result<(), TrainError> {
        if !self.config.rollback {
            return Err(TrainError::BadConfig);
        }
        for l in self.layers.iter_mut() {
            if let Some(w) = l.weights.as_mut() {
                for k in 0..w.groups() {
                    let (mr, qr) = w.ranges(k);
                    let good = w.good.get(mr).ok_or(Error::ShapeMismatch)?;
                    copy_exact(w.int8.get_mut(qr).ok_or(Error::ShapeMismatch)?, good)?;
                }
            }
            if let Some(b) = l.bias.as_mut() {
                copy_exact(b.int32, b.good)?;
            }
        }
        self.reset_masters();
        Ok(())
    }

    /// Mean loss (Q16) over held-back samples with the current weights.
    pub fn mean_loss<'s>(
        &mut self,
        samples: impl IntoIterator<Item = (&'s [u8], usize)>,
    ) -> Result<Loss, TrainError> {
        let (mut total, mut n) = (0i64, 0i64);
        for (image, label) in samples {
            total = total.saturating_add(self.loss(image, label)?.q16);
            n += 1;
        }
        Ok(Loss::from_q16(if n == 0 { 0 } else { total / n }))
    }

    /// The rollback guard: applies any pending mini-batch, measures the mean loss on the
    /// held-back samples, and keeps the weights as the new last good ones if the loss is no
    /// worse than the best so far, or rolls back to the last good ones if it is. Call it once
    /// before training to record the starting loss, then after each epoch.
    pub fn guard<'s>(
        &mut self,
        held_back: impl IntoIterator<Item = (&'s [u8], usize)>,
    ) -> Result<GuardOutcome, TrainError> {
        self.flush();
        let loss = self.mean_loss(held_back)?;
        self.decide(loss)
    }

    /// [`Trainer::guard`] on cached features.
    pub fn guard_features<'s>(
        &mut self,
        held_back: impl IntoIterator<Item = (&'s [i8], usize)>,
    ) -> Result<GuardOutcome, TrainError> {
        self.flush();
        let (mut total, mut n) = (0i64, 0i64);
        for (features, label) in held_back {
            total = total.saturating_add(self.loss_features(features, label)?.q16);
            n += 1;
        }
        self.decide(Loss::from_q16(if n == 0 { 0 } else { total / n }))
    }

    fn decide(&mut self, loss: Loss) -> Result<GuardOutcome, TrainError> {
        match self.best {
            Some(best) if loss.q16 > best && self.config.rollback => {
                self.rollback()?;
                Ok(GuardOutcome::RolledBack {
                    loss,
                    best: Loss::from_q16(best),
                })
            }
            _ => {
                self.best = Some(loss.q16);
                self.commit_good();
                Ok(GuardOutcome::Kept { loss })
            }
        }
    }

    /// Writes the model with the trained constants baked in to `out`; returns its length.
    /// The result is a normal model: same tensors, ops and plan, new weights, new CRC (the
    /// constants are patched in place, so no table of the model's size is needed).
    pub fn write_model(&self, out: &mut [u8]) -> Result<usize, Error> {
        let len = self.model.len();
        let out = out
            .get_mut(..len)
            .ok_or(Error::BufferTooSmall { needed: len })?;
        copy_exact(out, self.model.as_bytes())?;
        for c in self.constants() {
            let (id, bytes): (TensorId, &[u8]) = match c {
                Constant::Int8(id, v) => (id, bytemuck::cast_slice(v)),
                Constant::Int32(id, v) => (id, bytemuck::cast_slice(v)),
            };
            let range = self.model.constant_range(id)?;
            copy_exact(out.get_mut(range).ok_or(Error::OffsetOutOfRange)?, bytes)?;
        }
        let body = len.checked_sub(4).ok_or(Error::Truncated)?;
        let crc = crate::format::crc32::crc32(out.get(..body).ok_or(Error::Truncated)?);
        copy_exact(
            out.get_mut(body..).ok_or(Error::Truncated)?,
            &crc.to_le_bytes(),
        )?;
        Ok(len)
    }

    /// Bytes [`Trainer::write_model`] writes.
    pub fn model_len(&self) -> Result<usize, Error> {
        Ok(self.model.len())
    }
}

/// The loss in Q16 as a real number.
pub(crate) fn loss_f32(q16: i64) -> f32 {
    q16 as f32 / (1u32 << LOSS_BITS) as f32
}

/// `dst.copy_from_slice(src)`, a length mismatch being an error instead of a panic: the
/// lengths come from the same plan, but the optimizer cannot see that (`.ci/no-panic`).
fn copy_exact<T: Copy>(dst: &mut [T], src: &[T]) -> Result<(), Error> {
    if dst.len() != src.len() {
        return Err(Error::ShapeMismatch);
    }
    dst.copy_from_slice(src);
    Ok(())
}
