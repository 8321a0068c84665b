//! Embeds the model the firmware serves: the shipped seed CNN, or any converted model given as
//! `FIXNET_MODEL=path` (relative paths are taken from the repository root). Tells the crate
//! the model's arena size so boards can make the arena a static of exactly that size.
use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../..");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=FIXNET_MODEL");
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
    fs::write(out.join("model.fxn"), &model).unwrap();
    fs::write(
        out.join("model_info.rs"),
        format!(
            "/// Arena bytes the embedded model needs (from its header).\n\
             pub const ARENA_SIZE: usize = {arena};\n"
        ),
    )
    .unwrap();
}
