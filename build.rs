//! Tells the core whether the target has the Armv7E-M DSP extension (`SMLAD`, `SXTB16`), whose
//! optimized kernels are then compiled in (`cfg(fixnet_dsp)`). Stable Rust does not expose
//! `target_feature = "dsp"` to `cfg`, so the target name decides: `thumbv7em-*` and
//! `thumbv8m.main-*` (Cortex-M4/M7/M33/M55 class). The `portable` feature turns it off.
fn main() {
    println!("cargo:rustc-check-cfg=cfg(fixnet_dsp)");
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let portable = std::env::var_os("CARGO_FEATURE_PORTABLE").is_some();
    let dsp = target.starts_with("thumbv7em") || target.starts_with("thumbv8m.main");
    if dsp && !portable {
        println!("cargo:rustc-cfg=fixnet_dsp");
    }
}
