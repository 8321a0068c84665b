//! `expf` and `tanhf` rounded exactly as glibc's, which LiteRT's lookup tables are built with.
//!
//! LiteRT's int8 LOGISTIC and TANH fill a 256-entry table at prepare time by calling
//! `std::exp(float)` and `std::tanh(float)`, i.e. the C library's `expf` and `tanhf`. Neither
//! is correctly rounded, and a one-ulp difference in the float result can move a table entry
//! by one step, so "an accurate exp" is not enough: these functions follow glibc's algorithms
//! (the ones in every glibc since 2.28) operation by operation.
//!
//! * [`expf`]: glibc's table-driven `expf` — `x·32/ln2 = k + r`, `2^(k/32)` from a table of
//!   the 32 doubles `2^(i/32)`, and a cubic in `r`, all in `f64`, rounded to `f32` once.
//!   (glibc also has an FMA build of it; the two agree on every input checked — see
//!   `tests/ops_litert_b.rs` — because the `f64` error is far below half an `f32` ulp.)
//! * [`tanhf`]: glibc's `tanhf`, the classic one built on `expm1f`
//!   (`1 − 2/(expm1(2|x|) + 2)` above 1, `−t/(t + 2)` with `t = expm1(−2|x|)` below), with
//!   `libm::expm1f`, which has the same origin as glibc's and agrees with it on the
//!   arguments `tanhf` passes.

/// Bit patterns of `2^(i/32)`, `i = 0..32` (correctly rounded doubles).
const EXP2_I_OVER_32: [u64; 32] = [
    0x3ff0000000000000,
    0x3ff059b0d3158574,
    0x3ff0b5586cf9890f,
    0x3ff11301d0125b51,
    0x3ff172b83c7d517b,
    0x3ff1d4873168b9aa,
    0x3ff2387a6e756238,
    0x3ff29e9df51fdee1,
    0x3ff306fe0a31b715,
    0x3ff371a7373aa9cb,
    0x3ff3dea64c123422,
    0x3ff44e086061892d,
    0x3ff4bfdad5362a27,
    0x3ff5342b569d4f82,
    0x3ff5ab07dd485429,
    0x3ff6247eb03a5585,
    0x3ff6a09e667f3bcd,
    0x3ff71f75e8ec5f74,
    0x3ff7a11473eb0187,
    0x3ff82589994cce13,
    0x3ff8ace5422aa0db,
    0x3ff93737b0cdc5e5,
    0x3ff9c49182a3f090,
    0x3ffa5503b23e255d,
    0x3ffae89f995ad3ad,
    0x3ffb7f76f2fb5e47,
    0x3ffc199bdd85529c,
    0x3ffcb720dcef9069,
    0x3ffd5818dcfba487,
    0x3ffdfc97337b9b5f,
    0x3ffea4afa2a490da,
    0x3fff50765b6e4540,
];

/// `exp(x)` in `f32`, bit-identical to glibc's `expf`.
pub fn expf(x: f32) -> f32 {
    const TABLE_BITS: u32 = 5;
    /// 2^TABLE_BITS.
    const N: f64 = 32.0;
    // 1/ln 2 and the minimax cubic for 2^(r/N) − 1, as glibc rounds them.
    let inv_ln2_n = f64::from_bits(0x3ff71547652b82fe) * N;
    let c0 = f64::from_bits(0x3fac6af84b912394) / (N * N * N);
    let c1 = f64::from_bits(0x3fcebfce50fac4f3) / (N * N);
    let c2 = f64::from_bits(0x3fe62e42ff0c52d6) / N;
    // 1.5 · 2^52: adding it rounds to an integer held in the low mantissa bits.
    let shift = f64::from_bits(0x4338000000000000);

    let top12 = |v: f32| (v.to_bits() >> 20) & 0x7ff;
    if top12(x) >= top12(88.0) {
        if x == f32::NEG_INFINITY {
            return 0.0;
        }
        if top12(x) >= top12(f32::INFINITY) {
            return x + x;
        }
        // Above ln(2^128) the result overflows, below ln(2^−150) it underflows to 0.
        if x > f32::from_bits(0x42b17217) {
            return f32::INFINITY;
        }
        if x < f32::from_bits(0xc2cff1b4) {
            return 0.0;
        }
    }
    let z = inv_ln2_n * f64::from(x);
    let k_shifted = z + shift;
    let ki = k_shifted.to_bits();
    let kd = k_shifted - shift;
    let r = z - kd;
    // 2^(k/N): the table entry for k mod N with k / N added to its exponent. `ki` holds k in
    // two's complement in its low bits, so the shift carries the sign into the exponent.
    let i = (ki % (1 << TABLE_BITS)) as usize;
    let entry = EXP2_I_OVER_32.get(i).copied().unwrap_or(0x3ff0000000000000);
    let s = f64::from_bits(
        entry
            .wrapping_sub((i as u64) << (52 - TABLE_BITS))
            .wrapping_add(ki << (52 - TABLE_BITS)),
    );
    let p = c0 * r + c1;
    let r2 = r * r;
    let y = c2 * r + 1.0;
    ((p * r2 + y) * s) as f32
}

/// `tanh(x)` in `f32`, bit-identical to glibc's `tanhf`.
pub fn tanhf(x: f32) -> f32 {
    let ax = libm::fabsf(x);
    if x.is_nan() {
        return x;
    }
    let z = if ax >= 22.0 {
        // tanh(±22) rounds to ±1 in f32.
        1.0
    } else if ax < f32::from_bits(0x24000000) {
        // |x| < 2^−55: tanh(x) = x to far below an ulp; glibc returns x·(1 + x).
        return x * (1.0 + x);
    } else if ax >= 1.0 {
        let t = libm::expm1f(2.0 * ax);
        1.0 - 2.0 / (t + 2.0)
    } else {
        let t = libm::expm1f(-2.0 * ax);
        -t / (t + 2.0)
    };
    if x.is_sign_negative() {
        -z
    } else {
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_powers_of_two_to_the_i_over_32() {
        for (i, &bits) in EXP2_I_OVER_32.iter().enumerate() {
            let want = libm::exp2(i as f64 / 32.0);
            assert_eq!(f64::from_bits(bits), want, "2^({i}/32)");
        }
    }

    #[test]
    fn expf_special_values_and_accuracy() {
        assert_eq!(expf(0.0), 1.0);
        assert_eq!(expf(f32::NEG_INFINITY), 0.0);
        assert_eq!(expf(f32::INFINITY), f32::INFINITY);
        assert!(expf(f32::NAN).is_nan());
        assert_eq!(expf(89.0), f32::INFINITY);
        assert_eq!(expf(-104.0), 0.0);
        // Within an ulp of the f64 value wherever the result is a normal f32.
        let mut x = -87.0f32;
        while x < 88.7 {
            let want = libm::exp(f64::from(x));
            let got = f64::from(expf(x));
            assert!(
                (got - want).abs() <= want * 1.2e-7,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.0137;
        }
    }

    #[test]
    fn tanhf_special_values_and_accuracy() {
        assert_eq!(tanhf(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanhf(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanhf(30.0), 1.0);
        assert_eq!(tanhf(-30.0), -1.0);
        assert_eq!(tanhf(1e-30), 1e-30);
        assert!(tanhf(f32::NAN).is_nan());
        let mut x = -12.0f32;
        while x < 12.0 {
            let want = libm::tanh(f64::from(x));
            let got = f64::from(tanhf(x));
            assert!(
                (got - want).abs() <= want.abs() * 2.5e-7 + 1e-45,
                "tanh({x}) = {got}, want {want}"
            );
            x += 0.00731;
        }
    }
}
