//! What a [`Server`](crate::Server) runs requests on: the model, and optionally fine-tuning
//! of its weights and their persistence in flash.
//!
//! * [`Inference`]: classification only; train-sample, save and revert answer
//!   [`ErrorCode::Unsupported`].
//! * [`Training`]: a [`fixnet::train::Trainer`] over a static train arena fine-tunes the
//!   layers of [`train_config`](crate::train_config); classification runs the interpreter
//!   with the current weights laid over the flash model ([`fixnet::Interpreter::with_overlay`]);
//!   a [`fixnet::storage::WeightStore`] keeps saved weights in two flash slots, power-cut
//!   safe, and the newest valid set is loaded at start-up.

use crate::protocol::{ErrorCode, TrainingInfo, Weights, MAX_CLASSES};
use embedded_storage::nor_flash::NorFlash;
use fixnet::format::TensorId;
use fixnet::overlay::{Overlay, MAX_OVERLAY};
use fixnet::storage::{decode_overlay, encode_constants, StorageError, WeightStore};
use fixnet::train::{Constant, TrainError, Trainer};
use fixnet::{Interpreter, Model};

/// The int8 outputs of one classification.
pub type Scores = heapless::Vec<i8, MAX_CLASSES>;

/// Runs the requests that touch the model. Only [`Backend::model`] and
/// [`Backend::classify`] are required; the fine-tuning methods default to
/// [`ErrorCode::Unsupported`].
pub trait Backend {
    /// The model served.
    fn model(&self) -> &Model<'_>;

    /// Runs the model on a grey image (as many pixels as the model's input, checked by the
    /// server) with the current weights; returns every int8 output.
    fn classify(&mut self, image: &[u8]) -> Result<Scores, ErrorCode>;

    /// How the backend fine-tunes, or `None` if it does not.
    fn training(&self) -> Option<TrainingInfo> {
        None
    }

    /// Where the weights in use come from.
    fn weights(&self) -> Weights {
        Weights::default()
    }

    /// One training step on `image` (checked by the server) with class `label`; returns the
    /// sample's cross-entropy loss before the step.
    fn train_sample(&mut self, image: &[u8], label: u8) -> Result<f32, ErrorCode> {
        let _ = (image, label);
        Err(ErrorCode::Unsupported)
    }

    /// Persists the current weights; returns the generation now in flash.
    fn save(&mut self) -> Result<u32, ErrorCode> {
        Err(ErrorCode::Unsupported)
    }

    /// Goes back to the weights the firmware was built with, in RAM and in flash.
    fn revert(&mut self) -> Result<(), ErrorCode> {
        Err(ErrorCode::Unsupported)
    }
}

/// Classification only, with the model's own weights.
pub struct Inference<'m, 'a> {
    interp: Interpreter<'m, 'a>,
}

impl<'m, 'a> Inference<'m, 'a> {
    /// Serves the model `interp` runs.
    pub fn new(interp: Interpreter<'m, 'a>) -> Self {
        Inference { interp }
    }
}

impl Backend for Inference<'_, '_> {
    fn model(&self) -> &Model<'_> {
        self.interp.model()
    }

    fn classify(&mut self, image: &[u8]) -> Result<Scores, ErrorCode> {
        self.interp
            .set_input_grey(image)
            .and_then(|()| self.interp.invoke())
            .map_err(|_| ErrorCode::Model)?;
        Scores::from_slice(self.interp.output()).map_err(|_| ErrorCode::Model)
    }
}

/// The RAM [`Training`] works in; boards make each a static of the size `fixnet-app`
/// computes for the embedded model at build time.
pub struct TrainingBuffers<'a> {
    /// The trainer's arena: at least [`TRAIN_ARENA_SIZE`](crate::TRAIN_ARENA_SIZE) bytes.
    pub train_arena: &'a mut [u8],
    /// The interpreter's arena for classification: at least
    /// [`ARENA_SIZE`](crate::ARENA_SIZE) bytes.
    pub arena: &'a mut [u8],
    /// One encoded weight set, for loading and saving: at least
    /// [`PAYLOAD_WORDS`](crate::PAYLOAD_WORDS) words.
    pub payload: &'a mut [u32],
}

/// Why [`Training::new`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetupError<E> {
    /// The model has no layer [`train_config`](crate::train_config) can train.
    NothingToTrain,
    /// The trainer refused the model or its arena.
    Train(TrainError),
    /// The weight slots do not fit the flash.
    Storage(StorageError<E>),
}

/// What [`Training::new`] found in flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Boot {
    /// No valid saved weights for this model: the factory weights apply.
    Factory,
    /// The newest valid saved set was loaded.
    Saved {
        /// Its generation.
        generation: u32,
    },
    /// The flash could not be read, or a saved set did not fit the model: the factory
    /// weights apply.
    Unreadable,
}

/// On-device fine-tuning with persistence: see the [module documentation](self).
///
/// A train-sample request is one [`Trainer::step`]: the weights change once a mini-batch
/// is complete ([`TrainingInfo::batch_size`] samples). Save first applies a partial
/// mini-batch ([`Trainer::flush`]), then writes the trained constants to the slot that does
/// not hold the newest set. Revert restores the model's own constants in the trainer and
/// erases both slots, the one not holding the newest set first, so that a power cut during
/// a revert leaves either the saved weights or none.
pub struct Training<'m, 'a, F: NorFlash> {
    model: &'m Model<'m>,
    trainer: Trainer<'m, 'a>,
    arena: &'a mut [u8],
    payload: &'a mut [u32],
    /// `None` only while a revert has the flash out of the store.
    store: Option<WeightStore<F>>,
    base: u32,
    slot_size: u32,
    info: TrainingInfo,
    weights: Weights,
    boot: Boot,
}

impl<'m, 'a, F: NorFlash> Training<'m, 'a, F> {
    /// Fine-tuning of `model` with [`train_config`](crate::train_config), weights saved in
    /// two slots of `slot_size` bytes at `base` in `flash` (see
    /// [`slot_size`](crate::slot_size)). Loads the newest valid saved set, if any
    /// ([`Training::boot`] tells).
    pub fn new(
        model: &'m Model<'m>,
        buffers: TrainingBuffers<'a>,
        flash: F,
        base: u32,
        slot_size: u32,
    ) -> Result<Self, SetupError<F::Error>> {
        let config = crate::train_config(model).ok_or(SetupError::NothingToTrain)?;
        let TrainingBuffers {
            train_arena,
            arena,
            payload,
        } = buffers;
        let train_arena_bytes = train_arena.len();
        let trainer =
            Trainer::with_config(model, config, train_arena).map_err(SetupError::Train)?;
        if arena.len() < model.arena_size() {
            return Err(SetupError::Train(TrainError::Model(
                fixnet::Error::ArenaTooSmall {
                    needed: model.arena_size(),
                    provided: arena.len(),
                },
            )));
        }
        let payload_bytes = fixnet::storage::encoded_len(trainer.constants());
        if payload.len() * 4 < payload_bytes {
            return Err(SetupError::Storage(StorageError::TooLarge));
        }
        let store = WeightStore::new(flash, base, slot_size).map_err(SetupError::Storage)?;
        if store.capacity() < payload_bytes {
            return Err(SetupError::Storage(StorageError::TooLarge));
        }
        let narrow = |v: usize| u16::try_from(v).unwrap_or(u16::MAX);
        let mut mode = heapless::String::new();
        // Mode names are at most 11 characters (`conv:65535`).
        let _ = core::fmt::write(&mut mode, format_args!("{}", crate::TRAIN_MODE));
        let info = TrainingInfo {
            mode,
            anchor_q16: config.anchor_q16,
            train_from: narrow(config.train_from),
            bias_from: narrow(config.bias_from.unwrap_or(config.train_from)),
            batch_size: config.batch_size,
            learning_rate_q16: config.learning_rate_q16,
            train_arena_bytes: train_arena_bytes as u32,
            payload_bytes: payload_bytes as u32,
        };
        let mut training = Training {
            model,
            trainer,
            arena,
            payload,
            store: Some(store),
            base,
            slot_size,
            info,
            weights: Weights::default(),
            boot: Boot::Factory,
        };
        training.boot = training.load();
        if let Boot::Saved { generation } = training.boot {
            training.weights.generation = generation;
        }
        Ok(training)
    }

    /// What was found in flash at start-up.
    pub fn boot(&self) -> Boot {
        self.boot
    }

    /// The trainer, e.g. to look at its [`Trainer::constants`].
    pub fn trainer(&self) -> &Trainer<'m, 'a> {
        &self.trainer
    }

    /// Gives the flash back.
    pub fn release(self) -> Option<F> {
        self.store.map(WeightStore::release)
    }

    /// Loads the newest valid saved set into the trainer.
    fn load(&mut self) -> Boot {
        let crc = self.model.crc();
        let Some(store) = self.store.as_mut() else {
            return Boot::Unreadable;
        };
        let generation = match store.newest(crc) {
            Ok(Some((_, header))) => header.sequence,
            Ok(None) => return Boot::Factory,
            Err(_) => return Boot::Unreadable,
        };
        let bytes = match store.load(crc, self.payload) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Boot::Factory,
            Err(_) => return Boot::Unreadable,
        };
        let restored = decode_overlay(self.model, bytes)
            .map_err(TrainError::Model)
            .and_then(|overlay| self.trainer.restore(&overlay));
        match restored {
            Ok(()) => Boot::Saved { generation },
            Err(_) => {
                // A partly restored trainer must not stay: back to the model's weights.
                let _ = self.restore_factory();
                Boot::Unreadable
            }
        }
    }

    /// Puts the model's own constants back into the trainer.
    fn restore_factory(&mut self) -> Result<(), ErrorCode> {
        let mut ids: heapless::Vec<(TensorId, bool), { 2 * MAX_OVERLAY }> = heapless::Vec::new();
        for c in self.trainer.constants() {
            let id = match c {
                Constant::Int8(id, _) => (id, true),
                Constant::Int32(id, _) => (id, false),
            };
            ids.push(id).map_err(|_| ErrorCode::Model)?;
        }
        let model = self.model;
        let mut overlay = Overlay::new();
        for (id, int8) in ids {
            let t = model.tensor(id).map_err(|_| ErrorCode::Model)?;
            let set = if int8 {
                t.data_i8().and_then(|v| overlay.set_int8(id, v))
            } else {
                t.data_i32().and_then(|v| overlay.set_int32(id, v))
            };
            set.map_err(|_| ErrorCode::Model)?;
        }
        self.trainer.restore(&overlay).map_err(|_| ErrorCode::Model)
    }

    /// Erases both slots, the one without the newest set first.
    fn erase_saved(&mut self) -> Result<(), ErrorCode> {
        let mut store = self.store.take().ok_or(ErrorCode::Storage)?;
        let newest = store.newest(self.model.crc());
        let mut flash = store.release();
        let slot_base = |slot: usize| self.base + self.slot_size * slot as u32;
        let result = match newest {
            Ok(Some((slot, _))) => flash
                .erase(slot_base(1 - slot), slot_base(1 - slot) + self.slot_size)
                .and_then(|()| flash.erase(slot_base(slot), slot_base(slot) + self.slot_size))
                .map_err(|_| ErrorCode::Storage),
            Ok(None) => Ok(()),
            Err(_) => Err(ErrorCode::Storage),
        };
        // The geometry was accepted before, so the store comes back.
        self.store = WeightStore::new(flash, self.base, self.slot_size).ok();
        result
    }
}

impl<F: NorFlash> Backend for Training<'_, '_, F> {
    fn model(&self) -> &Model<'_> {
        self.model
    }

    fn classify(&mut self, image: &[u8]) -> Result<Scores, ErrorCode> {
        let overlay = self.trainer.overlay().map_err(|_| ErrorCode::Model)?;
        let mut interp = Interpreter::with_overlay(self.model, &mut *self.arena, overlay)
            .map_err(|_| ErrorCode::Model)?;
        interp
            .set_input_grey(image)
            .and_then(|()| interp.invoke())
            .map_err(|_| ErrorCode::Model)?;
        Scores::from_slice(interp.output()).map_err(|_| ErrorCode::Model)
    }

    fn training(&self) -> Option<TrainingInfo> {
        Some(self.info.clone())
    }

    fn weights(&self) -> Weights {
        self.weights
    }

    fn train_sample(&mut self, image: &[u8], label: u8) -> Result<f32, ErrorCode> {
        let updates = self.trainer.updates();
        let loss = self
            .trainer
            .step(image, usize::from(label))
            .map_err(|e| match e {
                TrainError::BadLabel => ErrorCode::BadLabel,
                _ => ErrorCode::Model,
            })?;
        self.weights.steps = self.weights.steps.saturating_add(1);
        self.weights.pending = if self.trainer.updates() == updates {
            self.weights.pending.saturating_add(1)
        } else {
            0
        };
        Ok(loss.to_f32())
    }

    fn save(&mut self) -> Result<u32, ErrorCode> {
        self.trainer.flush();
        self.weights.pending = 0;
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut *self.payload);
        let n =
            encode_constants(self.trainer.constants(), bytes).map_err(|_| ErrorCode::Storage)?;
        let store = self.store.as_mut().ok_or(ErrorCode::Storage)?;
        let generation = store
            .save(self.model.crc(), &bytes[..n])
            .map_err(|_| ErrorCode::Storage)?;
        self.weights = Weights {
            generation,
            steps: 0,
            pending: 0,
        };
        Ok(generation)
    }

    fn revert(&mut self) -> Result<(), ErrorCode> {
        self.restore_factory()?;
        self.weights = Weights::default();
        self.erase_saved()
    }
}
