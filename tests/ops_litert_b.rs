//! The int8 activation and MUL kernels against LiteRT itself: single-op models run by LiteRT's
//! reference kernels (`BUILTIN_REF`) on every int8 input (unary ops) or random inputs (MUL),
//! several quantization scales each. Every output byte must match.
//!
//! The fixtures in `tests/fixtures/ops_b/` are made by `tools/scripts/make_op_fixtures_b.py`
//! (its docstring describes the file format).

use std::collections::HashMap;
use std::path::Path;

use fixnet::kernels::{self, glibc_f32, Lut};

/// One case of a fixture file: its name and its `key values…` lines.
struct Case {
    name: String,
    fields: HashMap<String, Vec<String>>,
}

impl Case {
    fn words(&self, key: &str) -> &[String] {
        self.fields
            .get(key)
            .unwrap_or_else(|| panic!("{}: no {key}", self.name))
    }

    fn f32(&self, key: &str) -> f32 {
        parse_f32_bits(&self.words(key)[0])
    }

    fn i32(&self, key: &str) -> i32 {
        self.words(key)[0].parse().unwrap()
    }

    fn i8s(&self, key: &str) -> Vec<i8> {
        self.words(key).iter().map(|w| w.parse().unwrap()).collect()
    }
}

fn parse_f32_bits(word: &str) -> f32 {
    f32::from_bits(u32::from_str_radix(word.trim_start_matches("0x"), 16).unwrap())
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ops_b")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cases(name: &str) -> Vec<Case> {
    let mut out: Vec<Case> = Vec::new();
    for line in fixture(name).lines() {
        let mut words = line.split_whitespace().map(str::to_owned);
        let Some(key) = words.next() else { continue };
        if key == "case" {
            out.push(Case {
                name: words.next().unwrap(),
                fields: HashMap::new(),
            });
        } else {
            let case = out.last_mut().expect("a field before the first case");
            case.fields.insert(key, words.collect());
        }
    }
    assert!(!out.is_empty(), "{name} has no case");
    out
}

/// Runs a unary kernel on every case of `file` and checks every byte against LiteRT.
fn check_unary(file: &str, kernel: impl Fn(&Case, &[i8], &mut [i8])) -> usize {
    let cases = cases(file);
    for case in &cases {
        let input = case.i8s("input");
        let want = case.i8s("output");
        assert_eq!(input.len(), 256, "{}: every int8 value", case.name);
        let mut got = vec![0i8; input.len()];
        kernel(case, &input, &mut got);
        for ((x, g), w) in input.iter().zip(&got).zip(&want) {
            assert_eq!(g, w, "{}: input {x}", case.name);
        }
    }
    cases.len()
}

// ---------------------------------------------------------------------------- LUT ops

fn lut_kernel(
    build: fn(f32, i32, f32, i32) -> Result<Lut, fixnet::Error>,
) -> impl Fn(&Case, &[i8], &mut [i8]) {
    move |case, input, output| {
        let lut = build(
            case.f32("input_scale"),
            case.i32("input_zp"),
            case.f32("output_scale"),
            case.i32("output_zp"),
        )
        .unwrap();
        kernels::lookup(input, &lut, output).unwrap();
    }
}

#[test]
fn logistic_matches_litert() {
    assert!(check_unary("logistic.txt", lut_kernel(Lut::logistic)) >= 10);
}

#[test]
fn tanh_matches_litert() {
    assert!(check_unary("tanh.txt", lut_kernel(Lut::tanh)) >= 10);
}

/// LiteRT builds those tables with glibc's `expf` and `tanhf`; fixnet's replicas must agree
/// with them bit for bit, not just to an ulp.
#[test]
fn glibc_f32_replicas_match_glibc() {
    let mut counts = HashMap::new();
    let text = fixture("glibc_f32.txt");
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let (x, want) = (parse_f32_bits(w[1]), parse_f32_bits(w[2]));
        let got = match w[0] {
            "expf" => glibc_f32::expf(x),
            "tanhf" => glibc_f32::tanhf(x),
            f => panic!("unknown function {f}"),
        };
        assert_eq!(got.to_bits(), want.to_bits(), "{}({x:e})", w[0]);
        *counts.entry(w[0]).or_insert(0) += 1;
    }
    assert!(
        counts["expf"] >= 2000 && counts["tanhf"] >= 2000,
        "{counts:?}"
    );
}

#[test]
fn hard_swish_matches_litert() {
    let n = check_unary("hard_swish.txt", |case, input, output| {
        let params = kernels::HardSwishParams::new(
            case.f32("input_scale"),
            case.i32("input_zp"),
            case.f32("output_scale"),
            case.i32("output_zp"),
        )
        .unwrap();
        kernels::hard_swish(input, &params, output).unwrap();
    });
    assert!(n >= 10);
}

// ---------------------------------------------------------------------------- requantizing ops

fn relu_kernel(min: f32, max: f32) -> impl Fn(&Case, &[i8], &mut [i8]) {
    move |case, input, output| {
        let params = kernels::ReluParams::new(
            case.f32("input_scale"),
            case.i32("input_zp"),
            case.f32("output_scale"),
            case.i32("output_zp"),
            min,
            max,
        )
        .unwrap();
        kernels::relu_x(input, &params, output).unwrap();
    }
}

#[test]
fn relu_matches_litert() {
    assert!(check_unary("relu.txt", relu_kernel(0.0, f32::INFINITY)) >= 10);
}

#[test]
fn relu6_matches_litert() {
    assert!(check_unary("relu6.txt", relu_kernel(0.0, 6.0)) >= 10);
}

#[test]
fn relu_n1_to_1_matches_litert() {
    assert!(check_unary("relu_n1_to_1.txt", relu_kernel(-1.0, 1.0)) >= 10);
}

#[test]
fn leaky_relu_matches_litert() {
    let n = check_unary("leaky_relu.txt", |case, input, output| {
        let params = kernels::LeakyReluParams::new(
            case.f32("input_scale"),
            case.i32("input_zp"),
            case.f32("output_scale"),
            case.i32("output_zp"),
            case.f32("alpha"),
        )
        .unwrap();
        kernels::leaky_relu(input, &params, output).unwrap();
    });
    assert!(n >= 10);
}

/// A shape of rank ≤ 4 padded with leading 1s to rank 4, as TFLite's broadcast does.
fn dims4(case: &Case, key: &str) -> [usize; 4] {
    let d: Vec<usize> = case.words(key).iter().map(|w| w.parse().unwrap()).collect();
    assert!(d.len() <= 4, "{}: {key} {d:?}", case.name);
    let mut out = [1; 4];
    out[4 - d.len()..].copy_from_slice(&d);
    out
}

#[test]
fn mul_matches_litert() {
    let cases = cases("mul.txt");
    let mut broadcasts = 0;
    for case in &cases {
        let scale = case.f32("output_scale");
        let zp = case.i32("output_zp");
        let (act_min, act_max) = match case.words("activation")[0].as_str() {
            "NONE" => (-128, 127),
            "RELU" => kernels::relu::clamp_range_i8(0.0, f32::INFINITY, scale, zp),
            "RELU6" => kernels::relu::clamp_range_i8(0.0, 6.0, scale, zp),
            "RELU_N1_TO_1" => kernels::relu::clamp_range_i8(-1.0, 1.0, scale, zp),
            a => panic!("{}: activation {a}", case.name),
        };
        let params = kernels::MulParams::new(
            case.f32("input1_scale"),
            case.i32("input1_zp"),
            case.f32("input2_scale"),
            case.i32("input2_zp"),
            scale,
            zp,
            act_min,
            act_max,
        )
        .unwrap();
        let (s1, s2) = (dims4(case, "shape1"), dims4(case, "shape2"));
        let dout = dims4(case, "shape_out");
        assert_eq!(kernels::broadcast::broadcast_shape(&s1, &s2), Some(dout));
        broadcasts += usize::from(s1 != s2);
        let want = case.i8s("output");
        let mut got = vec![0i8; want.len()];
        kernels::broadcast_mul(
            &case.i8s("input1"),
            &s1,
            &case.i8s("input2"),
            &s2,
            &params,
            &mut got,
            &dout,
        )
        .unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{}: output element {i}", case.name);
        }
    }
    assert!(cases.len() >= 8 && broadcasts >= 5);
}
