//! Named choices of what to fine-tune, the same for `fixnet finetune --train`, the firmware's
//! train configuration and the tests: each maps to a [`TrainConfig`] for a given model.

use super::{TrainConfig, TrainError};
use crate::format::{Model, Op};

/// What a fine-tuning session trains, on top of the last fully connected layer's weights and
/// biases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TrainMode {
    /// The last fully connected layer, and the biases of the fully connected layer before it
    /// (`last`).
    Last,
    /// The last fully connected layer and the biases of every layer the backward pass can
    /// reach: all of them, or those after the last op without a backward pass (a depthwise
    /// convolution, Add, a convolution fused with its max pool, …) (`biases`). Refused
    /// ([`TrainError::Unsupported`], naming that op) when that reaches nothing `last` does
    /// not.
    Biases,
    /// [`TrainMode::Last`], plus the biases from the last convolution on and the weights of
    /// `K` of its output channels (`conv:K`, see [`super::SparseChannels`]).
    Conv(u16),
}

impl TrainMode {
    /// Parses `last`, `biases` or `conv:K`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "last" => Some(TrainMode::Last),
            "biases" => Some(TrainMode::Biases),
            _ => {
                let k = text.strip_prefix("conv:")?.parse().ok()?;
                (k > 0).then_some(TrainMode::Conv(k))
            }
        }
    }
}

impl core::fmt::Display for TrainMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TrainMode::Last => f.write_str("last"),
            TrainMode::Biases => f.write_str("biases"),
            TrainMode::Conv(k) => write!(f, "conv:{k}"),
        }
    }
}

/// Whether the backward pass crosses `op` (see `analyze` in the plan): not a join, not a
/// depthwise convolution, and not either half of a convolution fused with its max pool.
fn has_backward(model: &Model<'_>, op: &Op<'_>) -> bool {
    if let Op::MaxPool(p) = op {
        if model.is_elided(p.input) {
            return false;
        }
    }
    matches!(
        op,
        Op::FullyConnected(_)
            | Op::Conv2d(_)
            | Op::MaxPool(_)
            | Op::AvgPool(_)
            | Op::Reshape { .. }
            | Op::Softmax(_)
    ) && op.fused_pool().is_none()
}

impl TrainConfig {
    /// The configuration of `mode` for `model`, default settings otherwise.
    pub fn for_mode(model: &Model<'_>, mode: TrainMode) -> Result<Self, TrainError> {
        let mut fcs = heapless::Vec::<usize, 2>::new();
        let mut last_conv = None;
        // The first op from which on every op has a backward pass.
        let mut reachable = 0;
        for i in 0..model.op_count() {
            let op = model.op(i)?;
            match op {
                Op::FullyConnected(_) => {
                    if fcs.is_full() {
                        fcs.remove(0);
                    }
                    let _ = fcs.push(i);
                }
                Op::Conv2d(_) => last_conv = Some(i),
                _ => {}
            }
            if !has_backward(model, &op) {
                reachable = i + 1;
            }
        }
        let last = *fcs.last().ok_or(TrainError::NothingToTrain)?;
        let before = if fcs.len() == 2 {
            fcs.first().copied()
        } else {
            None
        };
        let config = TrainConfig::new(last);
        Ok(match mode {
            TrainMode::Last => TrainConfig {
                bias_from: before.filter(|&b| b >= reachable),
                ..config
            },
            TrainMode::Biases => {
                // Nothing beyond `last` to reach: refuse rather than train the same layers.
                let mut deeper = false;
                for i in reachable..before.unwrap_or(last) {
                    deeper |= matches!(model.op(i)?, Op::Conv2d(_) | Op::FullyConnected(_));
                }
                if !deeper {
                    return Err(TrainError::Unsupported {
                        op: reachable.saturating_sub(1),
                    });
                }
                config.bias_from(reachable)
            }
            TrainMode::Conv(k) => {
                let op = last_conv.filter(|&c| c >= reachable && c < last).ok_or(
                    TrainError::Unsupported {
                        op: reachable.saturating_sub(1),
                    },
                )?;
                config.bias_from(op).sparse_channels(op, k)
            }
        })
    }
}
