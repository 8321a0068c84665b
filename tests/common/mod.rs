//! Helpers shared by the integration tests: aligned buffers and a small multi-layer model
//! built through the public writer.
#![allow(dead_code)]

use fixnet::format::{ConvOp, Dims, FullyConnectedOp, ModelBuilder, Op, PoolOp, SoftmaxOp, Tensor};
use fixnet::kernels::SoftmaxParams;
use fixnet::quant::quantize_multiplier;
use fixnet::Padding;
use std::io::Read;
use std::path::Path;

/// Bytes in an 8-byte aligned buffer, as a model in flash would be.
pub struct Aligned {
    words: Vec<u64>,
    len: usize,
}

impl Aligned {
    pub fn new(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Aligned {
            words,
            len: bytes.len(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }
}

/// Deterministic pseudo-random int8 values (a 32-bit LCG), so tests need no RNG crate.
pub fn lcg_i8(seed: u32, n: usize) -> Vec<i8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 24) as u8 as i8
        })
        .collect()
}

/// Owned constants of the small model, which the builder borrows.
pub struct SmallModelData {
    conv_w: Vec<i8>,
    conv_scales: Vec<f32>,
    conv_b: Vec<i32>,
    conv_m: Vec<i32>,
    conv_s: Vec<i32>,
    fc_w: Vec<i8>,
    fc_scales: Vec<f32>,
    fc_b: Vec<i32>,
    fc_m: Vec<i32>,
    fc_s: Vec<i32>,
    fc_double: Vec<f64>,
}

impl SmallModelData {
    pub fn new() -> Self {
        let in_scale = 1.0f32 / 255.0;
        let conv_scales: Vec<f32> = (0..4).map(|c| 0.01 + 0.002 * c as f32).collect();
        let conv_out_scale = 0.05f32;
        let (conv_m, conv_s) = conv_scales
            .iter()
            .map(|&w| {
                quantize_multiplier(f64::from(in_scale) * f64::from(w) / f64::from(conv_out_scale))
            })
            .unzip();
        let fc_scales = vec![0.02f32; 10];
        let (fc_m, fc_s) = fc_scales
            .iter()
            .map(|&w| quantize_multiplier(f64::from(conv_out_scale) * f64::from(w) / 0.1))
            .unzip();
        SmallModelData {
            conv_w: lcg_i8(1, 4 * 3 * 3),
            conv_scales,
            conv_b: vec![100, -200, 300, 0],
            conv_m,
            conv_s,
            fc_w: lcg_i8(2, 10 * 36),
            fc_scales,
            fc_b: (0..10).map(|i| i * 50 - 250).collect(),
            fc_m,
            fc_s,
            fc_double: vec![f64::from(conv_out_scale) * 0.02 / 0.1; 10],
        }
    }

    /// input 8×8×1 → Conv2D 3×3×4 (ReLU) → MaxPool 2 → Reshape 36 → FullyConnected 10 →
    /// Softmax: every op kind but the depthwise and average ones, with a reshape alias.
    pub fn builder(&self) -> ModelBuilder<'_> {
        let d = |s: &[usize]| Dims::new(s).unwrap();
        let mut b = ModelBuilder::new();
        let x = b
            .add_tensor(Tensor::activation(d(&[1, 8, 8, 1]), 1.0 / 255.0, -128))
            .unwrap();
        let cw = b
            .add_tensor(Tensor::weights(
                d(&[4, 3, 3, 1]),
                &self.conv_w,
                &self.conv_scales,
                0,
            ))
            .unwrap();
        let cb = b
            .add_tensor(Tensor::bias(d(&[4]), &self.conv_b, 0.0))
            .unwrap();
        let c = b
            .add_tensor(Tensor::activation(d(&[1, 6, 6, 4]), 0.05, -128))
            .unwrap();
        let p = b
            .add_tensor(Tensor::activation(d(&[1, 3, 3, 4]), 0.05, -128))
            .unwrap();
        let r = b
            .add_tensor(Tensor::activation(d(&[1, 36]), 0.05, -128))
            .unwrap();
        let fw = b
            .add_tensor(Tensor::weights(
                d(&[10, 36]),
                &self.fc_w,
                &self.fc_scales,
                0,
            ))
            .unwrap();
        let fb = b
            .add_tensor(Tensor::bias(d(&[10]), &self.fc_b, 0.0))
            .unwrap();
        let f = b
            .add_tensor(Tensor::activation(d(&[1, 10]), 0.1, 3))
            .unwrap();
        let y = b
            .add_tensor(Tensor::activation(d(&[1, 10]), 1.0 / 256.0, -128))
            .unwrap();
        b.add_op(Op::Conv2d(ConvOp {
            input: x,
            filter: cw,
            bias: cb,
            output: c,
            padding: Padding::Valid,
            stride_h: 1,
            stride_w: 1,
            depth_multiplier: 0,
            act_min: -128,
            act_max: 127,
            multipliers: &self.conv_m,
            shifts: &self.conv_s,
            fused_pool: None,
        }))
        .unwrap();
        b.add_op(Op::MaxPool(PoolOp {
            input: c,
            output: p,
            padding: Padding::Valid,
            kernel_h: 2,
            kernel_w: 2,
            stride_h: 2,
            stride_w: 2,
            act_min: -128,
            act_max: 127,
        }))
        .unwrap();
        b.add_op(Op::Reshape {
            input: p,
            output: r,
        })
        .unwrap();
        b.add_op(Op::FullyConnected(FullyConnectedOp {
            input: r,
            filter: fw,
            bias: fb,
            output: f,
            act_min: -128,
            act_max: 127,
            multipliers: &self.fc_m,
            shifts: &self.fc_s,
            double_scales: &self.fc_double,
        }))
        .unwrap();
        b.add_op(Op::Softmax(SoftmaxOp {
            input: f,
            output: y,
            params: SoftmaxParams::new(1.0, 0.1).unwrap(),
        }))
        .unwrap();
        b.set_io(x, y);
        b
    }

    pub fn encode(&self) -> Vec<u8> {
        let b = self.builder();
        let mut out = vec![0u8; b.encoded_len().unwrap()];
        let n = b.write(&mut out).unwrap();
        assert_eq!(n, out.len());
        out
    }
}

/// The bytes of a gzip file.
pub fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The repo's 2,000 MNIST test digits (data/mnist) and their labels.
pub fn mnist_test() -> (Vec<[u8; 784]>, Vec<u8>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
    let images = gunzip(&root.join("test-images-idx3-ubyte.gz"));
    let labels = gunzip(&root.join("test-labels-idx1-ubyte.gz"));
    let n = u32::from_be_bytes(images[4..8].try_into().unwrap()) as usize;
    let images = (0..n)
        .map(|i| images[16 + 784 * i..16 + 784 * (i + 1)].try_into().unwrap())
        .collect();
    (images, labels[8..8 + n].to_vec())
}

/// Bilinear sample of a 28×28 image at real coordinates (0 outside).
pub fn sample(img: &[u8; 784], x: f32, y: f32) -> f32 {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let px = |xi: i32, yi: i32| -> f32 {
        if (0..28).contains(&xi) && (0..28).contains(&yi) {
            f32::from(img[(yi * 28 + xi) as usize])
        } else {
            0.0
        }
    };
    let (xi, yi) = (x0 as i32, y0 as i32);
    px(xi, yi) * (1.0 - fx) * (1.0 - fy)
        + px(xi + 1, yi) * fx * (1.0 - fy)
        + px(xi, yi + 1) * (1.0 - fx) * fy
        + px(xi + 1, yi + 1) * fx * fy
}
