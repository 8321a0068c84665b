//! Embeds the model the firmware serves: the shipped seed CNN, or any converted model given as
//! `FIXNET_MODEL=path` (relative paths are taken from the repository root). Tells the crate
//! the model's arena size, the train arena size of its fine-tuning configuration
//! (`src/train_config.rs`) and the bytes of a saved weight set, so that boards can make
//! those buffers statics of exactly that size.
use fixnet::train::{TrainMode, Trainer};
use std::path::PathBuf;
use std::{env, fs};

#[path = "src/train_config.rs"]
#[allow(dead_code)]
mod train_config;

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=FIXNET_MODEL");
    println!("cargo:rerun-if-env-changed=FIXNET_TRAIN");
    let mode_name = env::var("FIXNET_TRAIN").unwrap_or_else(|_| "last".into());
    let mode = TrainMode::parse(&mode_name)
        .unwrap_or_else(|| panic!("FIXNET_TRAIN={mode_name}: expected last, biases or conv:K"));
    println!("cargo:rerun-if-changed=src/train_config.rs");
    let model_path = match env::var("FIXNET_MODEL") {
        Ok(p) if !p.is_empty() => root.join(p),
        _ => root.join("models/seed_cnn.fxn"),
    };
    println!("cargo:rerun-if-changed={}", model_path.display());
    let model = fs::read(&model_path)
        .unwrap_or_else(|e| panic!("cannot read model {}: {e}", model_path.display()));
    assert!(
        model.len() >= 52 && &model[..4] == b"FXNM",
        "{} is not a fixnet model",
        model_path.display()
    );
    // Header offset 12: the arena size (docs/format.md); the model is validated at start-up.
    let arena = u32::from_le_bytes(model[12..16].try_into().unwrap());
    let (train_arena, payload) = training_sizes(&model, &model_path.display().to_string(), mode);
    let mode_code = match mode {
        TrainMode::Last => "fixnet::train::TrainMode::Last".to_string(),
        TrainMode::Biases => "fixnet::train::TrainMode::Biases".to_string(),
        TrainMode::Conv(k) => format!("fixnet::train::TrainMode::Conv({k})"),
    };
    fs::write(out.join("model.fxn"), &model).unwrap();
    fs::write(
        out.join("model_info.rs"),
        format!(
            "/// Arena bytes the embedded model needs (from its header).\n\
             pub const ARENA_SIZE: usize = {arena};\n\
             /// Bytes of the train arena for [`train_config`] (0: the model cannot be \
             fine-tuned).\n\
             pub const TRAIN_ARENA_SIZE: usize = {train_arena};\n\
             /// 32-bit words of one saved weight set (`fixnet::storage::encode_constants` of \
             the trained constants; 0 without fine-tuning).\n\
             pub const PAYLOAD_WORDS: usize = {};\n\
             /// What the firmware fine-tunes (`FIXNET_TRAIN` at build time, `last` by \
             default).\n\
             pub const TRAIN_MODE: fixnet::train::TrainMode = {mode_code};\n",
            payload.div_ceil(4)
        ),
    )
    .unwrap();
}

/// Train arena bytes and saved-weights bytes of the firmware's fine-tuning configuration,
/// (0, 0) if the model has nothing to train.
fn training_sizes(bytes: &[u8], name: &str, mode: TrainMode) -> (usize, usize) {
    // The model must sit at an 8-byte aligned address.
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    let aligned: &mut [u8] = bytemuck::cast_slice_mut(&mut words);
    aligned[..bytes.len()].copy_from_slice(bytes);
    let model = fixnet::Model::from_bytes(aligned)
        .unwrap_or_else(|e| panic!("{name} is not a valid fixnet model: {e}"));
    let Some(config) = train_config::train_config_for(&model, mode) else {
        return (0, 0);
    };
    let Ok(usage) = Trainer::arena_use(&model, &config) else {
        return (0, 0);
    };
    let mut arena = vec![0u8; usage.total()];
    let trainer = Trainer::with_config(&model, config, &mut arena)
        .unwrap_or_else(|e| panic!("cannot set up fine-tuning of {name}: {e}"));
    (
        usage.total(),
        fixnet::storage::encoded_len(trainer.constants()),
    )
}
