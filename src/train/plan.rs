//! What a trainable suffix needs: which layers train what, which activations are kept for
//! the backward pass, and how many bytes of train arena that all takes.

use super::arena::{Bump, CARVE_ALIGN};
use super::{TrainConfig, TrainError};
use crate::format::{Model, Op, TensorId};
use crate::kernels::SoftmaxParams;
use crate::train::{MAX_LAYERS, MAX_SAVED};

/// One layer with parameters in the trainable suffix.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LayerPlan {
    pub op: usize,
    pub filter: TensorId,
    pub bias: TensorId,
    pub weights: usize,
    pub channels: usize,
    /// Output channels whose weights train: all `channels`, or a sparse subset
    /// ([`TrainConfig::sparse`]).
    pub weight_channels: usize,
    pub train_weights: bool,
    pub train_bias: bool,
}

/// The analysed suffix.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// First op the backward pass reaches (a layer with parameters).
    pub first: usize,
    pub layers: heapless::Vec<LayerPlan, MAX_LAYERS>,
    /// Activations kept for the backward pass: (root tensor, elements).
    pub saved: heapless::Vec<(TensorId, usize), MAX_SAVED>,
    /// Elements of the two gradient buffers, which the backward pass uses in turn (output
    /// gradient in one, input gradient in the other).
    pub grad_len: [usize; 2],
    /// The logits the loss reads, and the softmax that turns them into probabilities.
    pub logits: TensorId,
    pub softmax: SoftmaxParams,
}

/// Bytes of train arena, by what they hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ArenaUse {
    /// The interpreter's activation arena ([`Model::arena_size`]): the forward pass runs in
    /// it, so it is the RAM inference needs anyway, not extra.
    pub inference: usize,
    /// Trained weights: master (i32), step/velocity (i32), int8 working copy, int8 last-good
    /// copy (without the rollback guard: no last-good copy).
    pub weights: usize,
    /// Trained biases: master, step/velocity, int32 working copy, last-good copy (i32 each).
    pub biases: usize,
    /// int8 activations kept from the forward pass for the backward pass.
    pub activations: usize,
    /// The two activation-gradient buffers (i32).
    pub gradients: usize,
    /// Alignment slack (the arena may start at any address).
    pub slack: usize,
}

impl ArenaUse {
    /// RAM training needs on top of inference.
    pub fn extra(&self) -> usize {
        self.weights + self.biases + self.activations + self.gradients + self.slack
    }

    /// The whole train arena: [`ArenaUse::inference`] + [`ArenaUse::extra`].
    pub fn total(&self) -> usize {
        self.inference + self.extra()
    }
}

/// The buffer a reshape output aliases, followed back to a tensor some op really writes.
pub(crate) fn root(model: &Model<'_>, mut id: TensorId) -> Result<TensorId, TrainError> {
    // Each hop moves to an earlier op, so this ends within op_count hops.
    for _ in 0..=model.op_count() {
        let mut next = None;
        for op in model.ops() {
            if let Op::Reshape { input, output } = op? {
                if output == id {
                    next = Some(input);
                }
            }
        }
        match next {
            Some(input) => id = input,
            None => return Ok(id),
        }
    }
    Err(TrainError::Model(crate::Error::BadOpOrder))
}

fn elements(model: &Model<'_>, id: TensorId) -> Result<usize, TrainError> {
    Ok(model.tensor(id)?.dims.num_elements())
}

fn save(
    model: &Model<'_>,
    saved: &mut heapless::Vec<(TensorId, usize), MAX_SAVED>,
    id: TensorId,
) -> Result<(), TrainError> {
    let r = root(model, id)?;
    if saved.iter().all(|(t, _)| *t != r) {
        saved
            .push((r, elements(model, r)?))
            .map_err(|_| TrainError::Model(crate::Error::CapacityExceeded))?;
    }
    Ok(())
}

pub(crate) fn analyze(model: &Model<'_>, config: &TrainConfig) -> Result<Plan, TrainError> {
    let n = model.op_count();
    let train_from = config.train_from;
    let mut bias_from = config.bias_from.unwrap_or(train_from).min(train_from);
    let sparse = match config.sparse {
        Some(s) if s.channels > 0 && s.op < train_from => {
            bias_from = bias_from.min(s.op);
            Some(s)
        }
        Some(_) => return Err(TrainError::BadConfig),
        None => None,
    };
    if train_from >= n {
        return Err(TrainError::NothingToTrain);
    }
    let mut layers = heapless::Vec::new();
    let mut first = None;
    for i in bias_from..n {
        match model.op(i)? {
            Op::FullyConnected(f) => {
                if sparse.is_some_and(|s| s.op == i) {
                    return Err(TrainError::BadConfig);
                }
                let channels = elements(model, f.bias)?;
                let lp = LayerPlan {
                    op: i,
                    filter: f.filter,
                    bias: f.bias,
                    weights: elements(model, f.filter)?,
                    channels,
                    weight_channels: channels,
                    train_weights: i >= train_from,
                    train_bias: true,
                };
                first.get_or_insert(i);
                let _ = layers.push(lp);
            }
            Op::Conv2d(c) => {
                let channels = elements(model, c.bias)?;
                let picked = sparse
                    .filter(|s| s.op == i)
                    .map(|s| usize::from(s.channels));
                let lp = LayerPlan {
                    op: i,
                    filter: c.filter,
                    bias: c.bias,
                    weights: elements(model, c.filter)?,
                    channels,
                    weight_channels: picked.unwrap_or(channels).min(channels),
                    train_weights: i >= train_from || picked.is_some(),
                    train_bias: true,
                };
                first.get_or_insert(i);
                let _ = layers.push(lp);
            }
            Op::DepthwiseConv2d(_) if first.is_some() || i >= train_from => {
                return Err(TrainError::Unsupported { op: i });
            }
            Op::Softmax(_) if i + 1 != n => return Err(TrainError::Unsupported { op: i }),
            _ => {}
        }
    }
    let first = first.ok_or(TrainError::NothingToTrain)?;
    if layers
        .iter()
        .all(|l: &LayerPlan| !l.train_weights && !l.train_bias)
    {
        return Err(TrainError::NothingToTrain);
    }

    if let Some(s) = sparse {
        if layers.iter().all(|l: &LayerPlan| l.op != s.op) {
            return Err(TrainError::BadConfig);
        }
    }
    let mut saved = heapless::Vec::new();
    for i in first..n {
        let op = model.op(i)?;
        // The backward pass needs a fused convolution's output, which is never stored.
        if op.fused_pool().is_some() || matches!(op, Op::MaxPool(p) if model.is_elided(p.input)) {
            return Err(TrainError::Unsupported { op: i });
        }
        match op {
            // The backward pass follows a chain; a join of two branches is not one.
            Op::Add(_)
            | Op::Lookup(_)
            | Op::Mean(_)
            | Op::Pad(_)
            | Op::Concatenation(_)
            | Op::Mul(_) => return Err(TrainError::Unsupported { op: i }),
            Op::FullyConnected(_) | Op::Conv2d(_) => {
                if i >= train_from || sparse.is_some_and(|s| s.op == i) {
                    save(model, &mut saved, op.input())?;
                }
                save(model, &mut saved, op.output())?;
            }
            Op::MaxPool(_) => {
                save(model, &mut saved, op.input())?;
                save(model, &mut saved, op.output())?;
            }
            Op::AvgPool(_) => save(model, &mut saved, op.output())?,
            _ => {}
        }
    }
    let grad_len = gradient_buffers(model, first)?;
    let (logits, softmax) = match model.op(n - 1)? {
        Op::Softmax(s) => (s.input, s.params),
        _ => {
            let out = model.output()?;
            (
                model.output_index(),
                SoftmaxParams::new(1.0, out.scale).map_err(TrainError::Model)?,
            )
        }
    };
    save(model, &mut saved, logits)?;
    Ok(Plan {
        first,
        layers,
        saved,
        grad_len,
        logits: root(model, logits)?,
        softmax,
    })
}

/// Sizes of the two gradient buffers: the backward pass starts with the logits' gradient in
/// the first, and every op with a backward pass reads its output gradient from one and
/// writes its input gradient to the other (except the first trained op, which has no input
/// gradient), so each buffer only has to hold the gradients that land in it.
fn gradient_buffers(model: &Model<'_>, first: usize) -> Result<[usize; 2], TrainError> {
    let n = model.op_count();
    let mut len = [0usize; 2];
    let mut cur = 0;
    for i in (first..n).rev() {
        let op = model.op(i)?;
        if matches!(op, Op::Softmax(_) | Op::Reshape { .. }) {
            if i + 1 == n {
                let slot = len.get_mut(cur).ok_or(TrainError::BadConfig)?;
                *slot = (*slot).max(elements(model, op.input())?);
            }
            continue;
        }
        let slot = len.get_mut(cur).ok_or(TrainError::BadConfig)?;
        *slot = (*slot).max(elements(model, op.output())?);
        if i > first {
            let other = len.get_mut(1 - cur).ok_or(TrainError::BadConfig)?;
            *other = (*other).max(elements(model, op.input())?);
            cur = 1 - cur;
        }
    }
    Ok(len)
}

pub(crate) fn arena_use(model: &Model<'_>, plan: &Plan, config: &TrainConfig) -> ArenaUse {
    let mut u = ArenaUse {
        inference: Bump::size_of::<u8>(model.arena_size()),
        slack: CARVE_ALIGN - 1,
        ..ArenaUse::default()
    };
    for l in &plan.layers {
        if l.train_weights {
            // Masters, steps and last-good copies only for the trained channels; the int8
            // working copy is the whole filter, which the forward pass reads.
            let trained = trained_weights(l);
            u.weights += 2 * Bump::size_of::<i32>(trained) + Bump::size_of::<i8>(l.weights);
            if config.rollback {
                u.weights += Bump::size_of::<i8>(trained);
            }
            if l.weight_channels < l.channels {
                u.weights += Bump::size_of::<u16>(l.weight_channels);
            }
        }
        if l.train_bias {
            let copies = if config.rollback { 4 } else { 3 };
            u.biases += copies * Bump::size_of::<i32>(l.channels);
        }
    }
    for (_, len) in &plan.saved {
        u.activations += Bump::size_of::<i8>(*len);
    }
    u.gradients = plan.grad_len.iter().map(|&n| Bump::size_of::<i32>(n)).sum();
    u
}

/// Weights whose masters a layer keeps: those of its trained output channels.
pub(crate) fn trained_weights(l: &LayerPlan) -> usize {
    match l.weights.checked_div(l.channels) {
        Some(per_channel) if l.weight_channels < l.channels => per_channel * l.weight_channels,
        _ => l.weights,
    }
}
