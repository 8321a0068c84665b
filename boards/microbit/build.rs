//! Puts `memory.x` where the linker finds it. The model itself is embedded by `fixnet-app`
//! (`FIXNET_MODEL`, set to the micro:bit's digit CNN in .cargo/config.toml), so a change of
//! `FIXNET_MODEL` rebuilds this firmware too.
use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-env-changed=FIXNET_MODEL");
}
