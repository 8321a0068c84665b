//! What the firmware fine-tunes. Shared with the build script, which sizes the static train
//! arena and the weight payload from it, and with the host tool, which simulates the same
//! training steps.

use fixnet::train::{TrainConfig, TrainMode};
use fixnet::Model;

/// The fine-tuning configuration of the firmware for `model` in `mode`, or `None` if the
/// model has nothing that mode can train.
///
/// The layers are those of `fixnet finetune --train MODE` ([`TrainConfig::for_mode`]) and
/// the settings [`TrainConfig::new`]'s, except that the rollback guard is off: the device has
/// no held-back samples to guard with, and the last-good copies would only take RAM.
pub fn train_config_for(model: &Model<'_>, mode: TrainMode) -> Option<TrainConfig> {
    let mut config = TrainConfig::for_mode(model, mode).ok()?;
    config.rollback = false;
    Some(config)
}
