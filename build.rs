//! Tells the core whether the target has the Armv7E-M DSP extension (`SMLAD`, `SXTB16`), whose
//! optimized kernels are then compiled in (`cfg(fixnet_dsp)`). Stable Rust does not expose
//! `target_feature = "dsp"` to `cfg`, so the target name decides: `thumbv7em-*` and
//! `thumbv8m.main-*` (Cortex-M4/M7/M33/M55 class). The `portable` feature turns it off.
//!
//! Likewise `cfg(fixnet_no_mul64)` marks the targets without a 32 × 32 → 64-bit multiply
//! (`SMULL`): Armv6-M (`thumbv6m-*`, Cortex-M0/M0+/M1) and Armv8-M Baseline
//! (`thumbv8m.base-*`, Cortex-M23). The requantization's high multiply then uses 16-bit
//! halves instead of a call to `__aeabi_lmul`. It follows the target only, not `portable`
//! (a Cortex-M3 or M4 running the portable kernels still has `SMULL`).
fn main() {
    println!("cargo:rustc-check-cfg=cfg(fixnet_dsp)");
    println!("cargo:rustc-check-cfg=cfg(fixnet_no_mul64)");
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let portable = std::env::var_os("CARGO_FEATURE_PORTABLE").is_some();
    let dsp = target.starts_with("thumbv7em") || target.starts_with("thumbv8m.main");
    if dsp && !portable {
        println!("cargo:rustc-cfg=fixnet_dsp");
    }
    if target.starts_with("thumbv6m") || target.starts_with("thumbv8m.base") {
        println!("cargo:rustc-cfg=fixnet_no_mul64");
    }
}
