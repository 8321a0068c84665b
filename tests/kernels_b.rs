//! The activation and MUL kernels (LOGISTIC, TANH, HARD_SWISH, MUL, LEAKY_RELU, RELU/RELU6)
//! against hand-worked examples, independent straightforward models (proptests) and their
//! float twins. Bit-exactness with LiteRT itself is `tests/ops_litert_b.rs`.

use fixnet::float;
use fixnet::kernels::{self, Lut};
use fixnet::quant::{dequantize_i8, quantize_f32};
use fixnet::Error;
use proptest::prelude::*;

/// Every int8 value, in order.
fn all_i8() -> Vec<i8> {
    (i8::MIN..=i8::MAX).collect()
}

// ---------------------------------------------------------------------------- LUT ops

#[test]
fn logistic_worked_example() {
    // Input scale 1/16, zero point 0; output scale 1/256, zero point −128.
    //   q = 0    → x = 0     → σ = 0.5        → 128.0 → 0
    //   q = 16   → x = 1     → σ = 0.7310586  → 187.15 → 187 → 59
    //   q = −16  → x = −1    → σ = 0.2689414  → 68.85 → 69 → −59
    //   q = 127  → x = 7.9375 → σ = 0.999643  → 255.91 → 256 → 128 → clamped 127
    //   q = −128 → x = −8    → σ = 0.000335   → 0.086 → 0 → −128
    let lut = Lut::logistic(1.0 / 16.0, 0, 1.0 / 256.0, -128).unwrap();
    let input = [0, 16, -16, 127, -128];
    let mut out = [0i8; 5];
    kernels::lookup(&input, &lut, &mut out).unwrap();
    assert_eq!(out, [0, 59, -59, 127, -128]);
    // A non-zero input zero point shifts the curve: q = 10 is x = 0 for zero point 10.
    let lut = Lut::logistic(1.0 / 16.0, 10, 1.0 / 256.0, -128).unwrap();
    assert_eq!(lut.get(10), 0);
    assert_eq!(lut.get(26), 59);
}

#[test]
fn tanh_worked_example() {
    // Input scale 1/32, zero point 0; output scale 1/128, zero point 0.
    //   q = 32   → tanh(1) = 0.7615942   → 97.48 → 97
    //   q = −32  → −97 (odd function)
    //   q = 127  → tanh(3.96875) = 0.99928 → 127.91 → 128 → clamped 127
    //   q = −128 → tanh(−4) = −0.99933    → −127.91 → −128
    let lut = Lut::tanh(1.0 / 32.0, 0, 1.0 / 128.0, 0).unwrap();
    let input = [0, 32, -32, 127, -128];
    let mut out = [0i8; 5];
    kernels::lookup(&input, &lut, &mut out).unwrap();
    assert_eq!(out, [0, 97, -97, 127, -128]);
}

#[test]
fn lut_order_is_litert_order() {
    // Entry i is the output for input (i as u8) as i8: 0..=127 then −128..=−1.
    let lut = Lut::from_fn(1.0, 0, 1.0, 0, |x| x).unwrap();
    let e = lut.entries();
    assert_eq!((e[0], e[127], e[128], e[255]), (0, 127, -128, -1));
    assert_eq!(Lut::from_entries(*e), lut);
}

#[test]
fn lut_rejects_bad_scales_and_lengths() {
    assert_eq!(
        Lut::logistic(0.1, 0, 1.0 / 128.0, -128),
        Err(Error::BadQuantization)
    );
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert_eq!(
            Lut::tanh(bad, 0, 1.0 / 128.0, 0),
            Err(Error::BadQuantization)
        );
        assert_eq!(Lut::tanh(0.1, 0, bad, 0), Err(Error::BadQuantization));
    }
    let lut = Lut::tanh(0.1, 0, 1.0 / 128.0, 0).unwrap();
    assert_eq!(
        kernels::lookup(&[1, 2], &lut, &mut [0; 3]),
        Err(Error::ShapeMismatch)
    );
}

proptest! {
    /// Against the real function: every table entry is the correctly rounded quantized value
    /// of the f64 function, up to one step where f32 rounding lands on the other side of a
    /// half (never more), and both tables are monotone.
    #[test]
    fn lut_entries_are_the_quantized_function(
        scale_exp in -10.0f64..1.5,
        zp in -128i32..=127,
    ) {
        let s = libm::exp2(scale_exp) as f32;
        let logistic = Lut::logistic(s, zp, 1.0 / 256.0, -128).unwrap();
        let tanh = Lut::tanh(s, zp, 1.0 / 128.0, 0).unwrap();
        for q in all_i8() {
            let x = f64::from(s) * f64::from(i32::from(q) - zp);
            let want_l = (libm::round(256.0 / (1.0 + libm::exp(-x))) - 128.0).clamp(-128.0, 127.0);
            let want_t = libm::round(128.0 * libm::tanh(x)).clamp(-128.0, 127.0);
            prop_assert!((f64::from(logistic.get(q)) - want_l).abs() <= 1.0, "σ q={}", q);
            prop_assert!((f64::from(tanh.get(q)) - want_t).abs() <= 1.0, "tanh q={}", q);
            if q > i8::MIN {
                prop_assert!(logistic.get(q) >= logistic.get(q - 1));
                prop_assert!(tanh.get(q) >= tanh.get(q - 1));
            }
        }
    }
}

#[test]
fn float_logistic_and_tanh_twins() {
    // The int8 kernels are the float functions quantized: within one output step of them.
    let (si, zi) = (0.05f32, -3);
    let input = all_i8();
    let x: Vec<f32> = input.iter().map(|&q| dequantize_i8(q, si, zi)).collect();
    let mut yl = vec![0f32; 256];
    let mut yt = vec![0f32; 256];
    float::logistic(&x, &mut yl).unwrap();
    float::tanh(&x, &mut yt).unwrap();
    let ll = Lut::logistic(si, zi, 1.0 / 256.0, -128).unwrap();
    let lt = Lut::tanh(si, zi, 1.0 / 128.0, 0).unwrap();
    for (i, &q) in input.iter().enumerate() {
        let (fl, ft) = (f64::from(yl[i]), f64::from(yt[i]));
        assert!((fl - 1.0 / (1.0 + libm::exp(-f64::from(x[i])))).abs() < 1e-6);
        assert!((ft - libm::tanh(f64::from(x[i]))).abs() < 1e-6);
        let dl = i32::from(ll.get(q)) - i32::from(quantize_f32(yl[i], 1.0 / 256.0, -128));
        let dt = i32::from(lt.get(q)) - i32::from(quantize_f32(yt[i], 1.0 / 128.0, 0));
        assert!(dl.abs() <= 1 && dt.abs() <= 1, "q={q}");
    }
    assert_eq!(float::logistic(&x, &mut yl[..3]), Err(Error::ShapeMismatch));
}
