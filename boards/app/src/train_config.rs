//! What the firmware fine-tunes. Shared with the build script, which sizes the static train
//! arena and the weight payload from it, and with the host tool, which simulates the same
//! training steps.

use fixnet::format::Op;
use fixnet::train::TrainConfig;
use fixnet::Model;

/// The fine-tuning configuration of the firmware for `model`, or `None` if the model has no
/// fully connected layer to train.
///
/// The layers are those `fixnet finetune` trains by default: the weights and biases of the
/// last fully connected layer and the biases of the fully connected layer before it. The
/// settings are [`TrainConfig::new`]'s (mini-batch 10, learning rate 0.003, no momentum,
/// round to nearest), except that the rollback guard is off: the device has no held-back
/// samples to guard with, and the last-good copies would only take RAM.
pub fn train_config(model: &Model<'_>) -> Option<TrainConfig> {
    let mut last = None;
    let mut before_last = None;
    for i in 0..model.op_count() {
        if let Ok(Op::FullyConnected(_)) = model.op(i) {
            before_last = last;
            last = Some(i);
        }
    }
    let mut config = TrainConfig::new(last?);
    config.bias_from = before_last;
    config.rollback = false;
    Some(config)
}
