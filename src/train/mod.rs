//! On-device fine-tuning in fixed point.
//!
//! A *trainable suffix* of a model — every fully connected or convolution layer from op
//! `train_from` on, plus optionally the biases of the layers from `bias_from` on — is trained
//! with mini-batch SGD while the prefix runs as frozen int8 inference. The forward pass is the
//! device's own int8 inference with the current int8 weights; the backward pass is fixed
//! point ([`backward`]); each update goes to higher-precision master weights from which the
//! int8 weights are refreshed. [`Trainer`] holds all of it in one caller buffer of
//! [`Trainer::required_arena`] bytes. `docs/training.md` specifies the number formats.
//!
//! [`float`] has the float32 twins of the backward kernels and a float32 SGD reference
//! trainer on the same layers, for tests and for the host tool's comparison.
//!
//! ```no_run
//! # fn demo<'m>(model: &'m fixnet::Model<'m>, samples: &[([u8; 784], u8)]) -> Result<(), fixnet::train::TrainError> {
//! use fixnet::train::{TrainConfig, Trainer};
//! let k = 6; // the last Dense layer of the seed CNN
//! let config = TrainConfig::new(k).bias_from(5);
//! let mut arena = vec![0u8; Trainer::arena_use(model, &config)?.total()];
//! let mut trainer = Trainer::with_config(model, config, &mut arena)?;
//! for (image, label) in samples {
//!     let loss = trainer.step(image, usize::from(*label))?;
//!     let _ = loss.to_f32();
//! }
//! trainer.flush();
//! let overlay = trainer.overlay()?; // for fixnet::Interpreter::with_overlay
//! # let _ = overlay; Ok(()) }
//! ```

mod arena;
pub mod backward;
pub mod fixed;
pub mod float;
mod forward;
mod mode;
mod plan;
mod trainer;

pub use arena::{Bump, CARVE_ALIGN};
pub use mode::TrainMode;
pub use plan::ArenaUse;
pub use trainer::{Constant, GuardOutcome, Trainer};

use crate::Error;

/// Most layers of a trainable suffix (ops from the first trained layer on): the bound of the
/// trainer's fixed tables, which live in the caller's stack or static memory.
pub const MAX_LAYERS: usize = 32;
/// Most activations a trainable suffix keeps for the backward pass.
pub const MAX_SAVED: usize = 64;

/// Passes over a user's samples that [`TrainConfig::new`]'s settings are made for (what
/// `fixnet finetune` runs by default; a device that keeps its samples can do the same).
pub const DEFAULT_EPOCHS: u16 = 10;

/// How the int8 weights are refreshed from the master weights after an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Rounding {
    /// Round to nearest (ties up).
    Nearest,
    /// Stochastic rounding: round up with probability equal to the fraction (a xorshift32
    /// stream seeded by [`TrainConfig::seed`]).
    Stochastic,
}

/// Training settings. Learning rate, momentum and decay are fixed-point numbers; the builder
/// methods convert from real values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TrainConfig {
    /// First op whose weights (and biases) are trained; ops before it are frozen.
    pub train_from: usize,
    /// First op whose biases are trained (≤ `train_from`); `None` = `train_from`.
    pub bias_from: Option<usize>,
    /// Samples per mini-batch; the update uses the batch mean of the gradients.
    pub batch_size: u16,
    /// Learning rate in Q16 (65536 = 1.0).
    pub learning_rate_q16: u32,
    /// Momentum in Q15 (0 = plain SGD; 29491 ≈ 0.9).
    pub momentum_q15: u16,
    /// Multiply the learning rate by `decay_factor_q16 / 65536` every this many updates
    /// (0 = constant learning rate).
    pub decay_every: u32,
    /// Step-decay factor in Q16.
    pub decay_factor_q16: u32,
    /// Keep a last-good copy of the trained constants for [`Trainer::guard`] /
    /// [`Trainer::rollback`].
    pub rollback: bool,
    /// Refresh rounding of the int8 weights.
    pub rounding: Rounding,
    /// Seed of the stochastic rounding.
    pub seed: u32,
    /// Pull towards the model's own constants, in Q16: every update moves each trained
    /// master this fraction of the way back to its value in the model (0 = off). It bounds
    /// how far a few samples can drag the layer, and so how much of the original data it
    /// forgets.
    pub anchor_q16: u32,
    /// Also train the weights of a few output channels of one convolution before
    /// `train_from` (its biases and those of the layers after it train too).
    pub sparse: Option<SparseChannels>,
}

/// A sparse update of a convolution: the weights of `channels` of its output channels, those
/// whose features the next fully connected layer weighs most (largest sum of absolute
/// weights reading them), or its first ones when no fully connected layer follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SparseChannels {
    /// The convolution's op index.
    pub op: usize,
    /// How many of its output channels train their weights.
    pub channels: u16,
}

impl TrainConfig {
    /// Defaults that work without tuning for a few samples per class ([`DEFAULT_EPOCHS`]
    /// passes over 10 per class, `tests/finetune_defaults.rs`): batch 10, learning rate 0.02
    /// halved every 70 updates, no momentum, an anchor of 0.03 pulling the trained constants
    /// back towards the model's own, rollback guard on, round-to-nearest. The anchor lets the
    /// rate be high enough to follow a user within a few passes while bounding how far the
    /// layer drifts, and so how much of the original data it forgets.
    pub const fn new(train_from: usize) -> Self {
        TrainConfig {
            train_from,
            bias_from: None,
            batch_size: 10,
            learning_rate_q16: 1311,
            momentum_q15: 0,
            decay_every: 70,
            decay_factor_q16: 1 << 15,
            rollback: true,
            rounding: Rounding::Nearest,
            seed: 0x2545_F491,
            anchor_q16: 1966,
            sparse: None,
        }
    }

    /// Also train the biases of the layers from op `op` on.
    pub const fn bias_from(mut self, op: usize) -> Self {
        self.bias_from = Some(op);
        self
    }

    /// Sets the learning rate (a real number, stored in Q16).
    pub fn learning_rate(mut self, lr: f32) -> Self {
        self.learning_rate_q16 = to_fixed(lr, 16, u32::MAX);
        self
    }

    /// Sets the momentum (a real number in [0, 1), stored in Q15).
    pub fn momentum(mut self, mu: f32) -> Self {
        self.momentum_q15 = to_fixed(mu, 15, 32767) as u16;
        self
    }

    /// Sets the mini-batch size.
    pub const fn batch_size(mut self, n: u16) -> Self {
        self.batch_size = n;
        self
    }

    /// Multiplies the learning rate by `factor` every `every` updates.
    pub fn step_decay(mut self, every: u32, factor: f32) -> Self {
        self.decay_every = every;
        self.decay_factor_q16 = to_fixed(factor, 16, u32::MAX);
        self
    }

    /// Sets the pull towards the model's own constants per update (a real number in [0, 1)).
    pub fn anchor(mut self, fraction: f32) -> Self {
        self.anchor_q16 = to_fixed(fraction, 16, 65535);
        self
    }

    /// Also trains the weights of `channels` output channels of convolution `op` (and the
    /// biases from `op` on).
    pub const fn sparse_channels(mut self, op: usize, channels: u16) -> Self {
        self.sparse = Some(SparseChannels { op, channels });
        self
    }

    /// Sets the refresh rounding.
    pub const fn rounding(mut self, rounding: Rounding) -> Self {
        self.rounding = rounding;
        self
    }
}

fn to_fixed(x: f32, bits: i32, max: u32) -> u32 {
    let v = libm::roundf(x * libm::ldexpf(1.0, bits));
    if v.is_nan() || v <= 0.0 {
        0
    } else if v >= max as f32 {
        max
    } else {
        v as u32
    }
}

/// A loss value: cross-entropy in Q16.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Loss {
    /// `−ln p[label]` times 65536.
    pub q16: i64,
}

impl Loss {
    /// A loss from its Q16 value.
    pub const fn from_q16(q16: i64) -> Self {
        Loss { q16 }
    }

    /// The loss as a real number, for reports.
    pub fn to_f32(self) -> f32 {
        trainer::loss_f32(self.q16)
    }
}

/// What can go wrong when setting up or running training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TrainError {
    /// An error of the model or of a kernel.
    Model(Error),
    /// The train arena is smaller than [`Trainer::required_arena`].
    ArenaTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes provided.
        provided: usize,
    },
    /// Op `op` of the trainable suffix has no backward pass here (depthwise convolution, or
    /// a softmax that is not the last op).
    Unsupported {
        /// Index of the op.
        op: usize,
    },
    /// The suffix holds no layer with parameters (or `train_from` is past the last op).
    NothingToTrain,
    /// A label is not one of the model's classes.
    BadLabel,
    /// An input has the wrong number of values.
    BadInput,
    /// A configuration value is out of range (zero batch size, rollback without its copy).
    BadConfig,
}

impl From<Error> for TrainError {
    fn from(e: Error) -> Self {
        TrainError::Model(e)
    }
}

impl core::fmt::Display for TrainError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TrainError::Model(e) => write!(f, "{e}"),
            TrainError::ArenaTooSmall { needed, provided } => {
                write!(
                    f,
                    "train arena too small: need {needed} bytes, got {provided}"
                )
            }
            TrainError::Unsupported { op } => write!(f, "op {op} cannot be trained"),
            TrainError::NothingToTrain => f.write_str("no trainable layer from that op on"),
            TrainError::BadLabel => f.write_str("label out of range"),
            TrainError::BadInput => f.write_str("input has the wrong size"),
            TrainError::BadConfig => f.write_str("invalid training configuration"),
        }
    }
}

impl core::error::Error for TrainError {}
