//! Puts `memory.x` and an empty `device.x` where the linker finds them. (The model is
//! embedded by `fixnet-app`, honouring FIXNET_MODEL.)
use std::path::PathBuf;
use std::{env, fs};

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-changed=memory.x");
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    // cortex-m-rt's `device` feature includes a device.x naming the interrupt handlers; the
    // firmware names none (its vector table points every interrupt at DefaultHandler).
    fs::write(out.join("device.x"), "/* no named interrupt handlers */\n").unwrap();
    println!("cargo:rustc-link-search={}", out.display());
}
