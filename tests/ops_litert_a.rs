//! fixnet's ADD, MEAN, PAD, CONCATENATION, QUANTIZE and DEQUANTIZE kernels against LiteRT's
//! reference kernels (`BUILTIN_REF`), byte for byte, on the single-op models of
//! `tools/scripts/make_op_fixtures_a.py` (`tests/fixtures/ops/ops_a.txt`; the file format is
//! described in the script).

use fixnet::float::Activation;
use fixnet::kernels::broadcast::{extend_to_4d, Dims4};
use fixnet::kernels::{self, AddParams, MeanParams, RequantizeParams};
use fixnet::Shape;

const FIXTURES: &str = include_str!("fixtures/ops/ops_a.txt");

#[derive(Debug, Clone)]
struct Tensor {
    dtype: String,
    dims: Vec<usize>,
    scale: f32,
    zero_point: i32,
    ints: Vec<i64>,
    floats: Vec<f32>,
}

impl Tensor {
    fn parse(tokens: &[&str]) -> Tensor {
        let dtype = tokens[0].to_string();
        let dims = if tokens[1] == "scalar" {
            vec![]
        } else {
            tokens[1].split('x').map(|d| d.parse().unwrap()).collect()
        };
        let scale = f32::from_bits(u32::from_str_radix(tokens[2], 16).unwrap());
        let zero_point = tokens[3].parse().unwrap();
        let values = &tokens[4..];
        let (ints, floats) = if dtype == "f32" {
            let f = values
                .iter()
                .map(|v| f32::from_bits(u32::from_str_radix(v, 16).unwrap()))
                .collect();
            (vec![], f)
        } else {
            (values.iter().map(|v| v.parse().unwrap()).collect(), vec![])
        };
        let t = Tensor {
            dtype,
            dims,
            scale,
            zero_point,
            ints,
            floats,
        };
        assert_eq!(
            t.ints.len() + t.floats.len(),
            t.dims.iter().product::<usize>()
        );
        t
    }

    fn i8s(&self) -> Vec<i8> {
        assert_eq!(self.dtype, "i8");
        self.ints
            .iter()
            .map(|&v| i8::try_from(v).unwrap())
            .collect()
    }

    fn dims4(&self) -> Dims4 {
        extend_to_4d(&self.dims).unwrap()
    }

    fn quant(&self) -> (f32, i32) {
        (self.scale, self.zero_point)
    }
}

#[derive(Debug)]
struct Case {
    name: String,
    op: String,
    opts: Vec<(String, String)>,
    inputs: Vec<Tensor>,
    outputs: Vec<Tensor>,
}

impl Case {
    fn opt(&self, key: &str) -> &str {
        &self.opts.iter().find(|(k, _)| k == key).unwrap().1
    }

    fn activation(&self) -> Activation {
        match self.opt("activation") {
            "NONE" => Activation::None,
            "RELU" => Activation::Relu,
            "RELU6" => Activation::Relu6,
            other => panic!("{}: activation {other}", self.name),
        }
    }

    fn output(&self) -> &Tensor {
        assert_eq!(self.outputs.len(), 1);
        &self.outputs[0]
    }
}

fn cases(op: &str) -> Vec<Case> {
    let mut all = Vec::new();
    let mut cur: Option<Case> = None;
    for line in FIXTURES.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.first().copied() {
            None | Some("#") => {}
            Some("case") => {
                cur = Some(Case {
                    name: t[1].into(),
                    op: t[2].into(),
                    opts: vec![],
                    inputs: vec![],
                    outputs: vec![],
                })
            }
            Some("opt") => cur
                .as_mut()
                .unwrap()
                .opts
                .push((t[1].into(), t[2..].join(" "))),
            Some("input") => cur.as_mut().unwrap().inputs.push(Tensor::parse(&t[1..])),
            Some("output") => cur.as_mut().unwrap().outputs.push(Tensor::parse(&t[1..])),
            Some("end") => all.push(cur.take().unwrap()),
            Some(other) => panic!("bad fixture line {other}"),
        }
    }
    let wanted: Vec<Case> = all.into_iter().filter(|c| c.op == op).collect();
    assert!(!wanted.is_empty(), "no {op} fixtures");
    wanted
}

#[test]
fn add_matches_litert() {
    let cases = cases("ADD");
    let mut broadcast = 0;
    for c in &cases {
        let (a, b, out) = (&c.inputs[0], &c.inputs[1], c.output());
        let params = AddParams::new(a.quant(), b.quant(), out.quant(), c.activation()).unwrap();
        let mut got = vec![0i8; out.ints.len()];
        kernels::broadcast_add(
            &a.i8s(),
            &a.dims4(),
            &b.i8s(),
            &b.dims4(),
            &params,
            &mut got,
            &out.dims4(),
        )
        .unwrap();
        assert_eq!(got, out.i8s(), "{}", c.name);
        if a.dims4() != b.dims4() {
            broadcast += 1;
        } else {
            kernels::add(&a.i8s(), &b.i8s(), &params, &mut got).unwrap();
            assert_eq!(got, out.i8s(), "{} (same-shape kernel)", c.name);
        }
    }
    assert!(cases.len() >= 20 && broadcast >= 9, "{} cases", cases.len());
}

#[test]
fn mean_matches_litert() {
    let cases = cases("MEAN");
    let (mut same_quant, mut kept, mut flat) = (0, 0, 0);
    for c in &cases {
        let (x, axes, out) = (&c.inputs[0], &c.inputs[1], c.output());
        assert_eq!(axes.ints, [1, 2], "{}", c.name);
        let [n, h, w, ch] = x.dims4();
        assert_eq!(n, 1);
        let params = MeanParams::new(x.quant(), out.quant(), h * w).unwrap();
        let mut got = vec![0i8; ch];
        kernels::mean_hw(&x.i8s(), Shape::new(h, w, ch), &params, &mut got).unwrap();
        assert_eq!(got, out.i8s(), "{}", c.name);
        same_quant += usize::from(x.quant() == out.quant());
        if c.opt("keep_dims") == "1" {
            kept += 1;
        } else {
            flat += 1;
        }
    }
    assert!(
        same_quant >= 12 && kept >= 20 && flat >= 20,
        "{same_quant} {kept} {flat}"
    );
}

#[test]
fn pad_matches_litert() {
    let cases: Vec<Case> = cases("PAD").into_iter().chain(cases("PADV2")).collect();
    for c in &cases {
        let (x, pads, out) = (&c.inputs[0], &c.inputs[1], c.output());
        assert_eq!(x.quant(), out.quant(), "{}", c.name);
        let rank = x.dims.len();
        let mut paddings = [[0usize; 2]; 4];
        for (row, pair) in paddings[4 - rank..].iter_mut().zip(pads.ints.chunks(2)) {
            *row = [pair[0] as usize, pair[1] as usize];
        }
        let mut got = vec![0i8; out.ints.len()];
        // PAD pads with the output zero point, PADV2 with its constant (quantized like the
        // output).
        let value = match c.inputs.get(2) {
            Some(v) => {
                assert_eq!(v.quant(), out.quant());
                v.i8s()[0]
            }
            None => i8::try_from(out.zero_point).unwrap(),
        };
        kernels::pad(
            &x.i8s(),
            &x.dims4(),
            &paddings,
            value,
            &mut got,
            &out.dims4(),
        )
        .unwrap();
        assert_eq!(got, out.i8s(), "{}", c.name);
    }
    assert!(cases.len() >= 20);
}

#[test]
fn concatenation_matches_litert() {
    let cases = cases("CONCATENATION");
    for c in &cases {
        assert_eq!(c.opt("activation"), "NONE");
        let out = c.output();
        let rank = out.dims.len() as i64;
        let axis: i64 = c.opt("axis").parse().unwrap();
        let axis = (if axis < 0 { axis + rank } else { axis } + 4 - rank) as usize;
        let quants: Vec<_> = c.inputs.iter().map(Tensor::quant).collect();
        kernels::check_concatenation_quantization(&quants, out.quant()).unwrap();
        let data: Vec<Vec<i8>> = c.inputs.iter().map(Tensor::i8s).collect();
        let refs: Vec<&[i8]> = data.iter().map(Vec::as_slice).collect();
        let dims: Vec<Dims4> = c.inputs.iter().map(Tensor::dims4).collect();
        let mut got = vec![0i8; out.ints.len()];
        kernels::concatenation(&refs, &dims, axis, &mut got, &out.dims4()).unwrap();
        assert_eq!(got, out.i8s(), "{}", c.name);
    }
    assert!(cases.len() >= 15);
}

#[test]
fn quantize_matches_litert() {
    let cases = cases("QUANTIZE");
    let (mut from_float, mut requant) = (0, 0);
    for c in &cases {
        let (x, out) = (&c.inputs[0], c.output());
        let mut got = vec![0i8; out.ints.len()];
        if x.dtype == "f32" {
            kernels::quantize(&x.floats, out.scale, out.zero_point, &mut got).unwrap();
            from_float += 1;
        } else {
            let p = RequantizeParams::new(x.quant(), out.quant()).unwrap();
            kernels::requantize(&x.i8s(), &p, &mut got).unwrap();
            requant += 1;
        }
        assert_eq!(got, out.i8s(), "{}", c.name);
    }
    assert!(from_float >= 15 && requant >= 6, "{from_float} {requant}");
}

#[test]
fn dequantize_matches_litert() {
    let cases = cases("DEQUANTIZE");
    for c in &cases {
        let (x, out) = (&c.inputs[0], c.output());
        let mut got = vec![0f32; out.floats.len()];
        kernels::dequantize(&x.i8s(), x.scale, x.zero_point, &mut got).unwrap();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&out.floats), "{}", c.name);
    }
    assert!(cases.len() >= 15);
}
