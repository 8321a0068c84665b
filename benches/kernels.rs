//! Per-kernel host benchmarks on the seed CNN's real layers: the shapes, weights and
//! quantization parameters of `models/seed_cnn.fxn`, fed with the activations the first test
//! digit produces at each layer.
//!
//! For each layer: the int8 reference kernel, the optimized kernel the interpreter runs
//! (`kernels::fast`, portable Rust on the host), and the float32 twin on the dequantized
//! weights. Before timing, each optimized kernel's output is checked against its reference
//! twin, byte for byte. The seed CNN has no depthwise convolution and no average pool; those
//! are timed on the geometry of its layers (conv2's, pool1's) with its weights.
//!
//! `cargo bench --bench kernels [-- FILTER]`; convolution and fully connected groups report
//! MACs per second as "elem/s".

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fixnet::float::{self, Activation};
use fixnet::format::{ConvOp, FullyConnectedOp, Op, PoolOp, SoftmaxOp, Tensor};
use fixnet::kernels::fast::{self, FcRequant, PoolWindow};
use fixnet::kernels::{self, FloatRequantize, Requantize};
use fixnet::{Model, Shape, Window};
use std::hint::black_box;

fn shape(t: &Tensor<'_>) -> Shape {
    t.dims.activation_shape().expect("activation tensor")
}

fn dequantize(values: &[i8], t: &Tensor<'_>) -> Vec<f32> {
    values
        .iter()
        .map(|&v| (i32::from(v) - t.zero_point) as f32 * t.scale)
        .collect()
}

/// int8 weights to float with their per-channel scales, channel = `index % channels` for
/// depthwise filters (innermost axis) or `index / per_channel` otherwise (outermost axis).
fn dequantize_weights(values: &[i8], scales: &[f32], innermost: bool) -> Vec<f32> {
    let per_channel = values.len() / scales.len();
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = if innermost {
                i % scales.len()
            } else {
                i / per_channel
            };
            f32::from(v) * scales[c]
        })
        .collect()
}

fn dequantize_bias(bias: &[i32], input_scale: f32, scales: &[f32]) -> Vec<f32> {
    bias.iter()
        .zip(scales)
        .map(|(&b, &s)| b as f32 * input_scale * s)
        .collect()
}

/// The float activation of an int8 clamp: ReLU when the clamp cuts at the zero point.
fn activation(act_min: i8, zero_point: i32) -> Activation {
    if i32::from(act_min) > -128 && i32::from(act_min) == zero_point {
        Activation::Relu
    } else {
        Activation::None
    }
}

fn pool_window(p: &PoolOp, input: Shape) -> (Window, Shape) {
    let (window, h, w) = Window::new(
        p.padding,
        input,
        usize::from(p.kernel_h),
        usize::from(p.kernel_w),
        usize::from(p.stride_h),
        usize::from(p.stride_w),
    )
    .expect("pool window");
    (window, Shape::new(h, w, input.channels))
}

/// A convolution of the model with its fused max pool; returns the pool's output (the next
/// layer's input).
/// The window and the Q31 requantization of a (depthwise) convolution layer.
fn conv_window_and_requant<'m>(
    op: &ConvOp<'m>,
    in_shape: Shape,
    (kh, kw): (usize, usize),
    in_t: &Tensor<'_>,
    out_t: &Tensor<'_>,
) -> (Window, Requantize<'m>) {
    let (window, _, _) = Window::new(
        op.padding,
        in_shape,
        kh,
        kw,
        usize::from(op.stride_h),
        usize::from(op.stride_w),
    )
    .unwrap();
    let q = Requantize {
        input_offset: -in_t.zero_point,
        output_offset: out_t.zero_point,
        multipliers: op.multipliers,
        shifts: op.shifts,
        act_min: op.act_min,
        act_max: op.act_max,
    };
    (window, q)
}

fn conv(
    c: &mut Criterion,
    name: &str,
    model: &Model<'_>,
    op: &ConvOp<'_>,
    input: &[i8],
) -> Vec<i8> {
    let (in_t, out_t) = (
        model.tensor(op.input).unwrap(),
        model.tensor(op.output).unwrap(),
    );
    let filter_t = model.tensor(op.filter).unwrap();
    let filter = filter_t.data_i8().unwrap();
    let bias = model.tensor(op.bias).unwrap().data_i32().unwrap();
    let (in_shape, conv_shape) = (shape(&in_t), shape(&out_t));
    let (kh, kw) = (filter_t.dims.get(1), filter_t.dims.get(2));
    let (window, q) = conv_window_and_requant(op, in_shape, (kh, kw), &in_t, &out_t);
    let macs = conv_shape.len() * kh * kw * in_shape.channels;

    // Each kernel call once: checked here, timed below.
    let reference_conv = |x: &[i8], out: &mut [i8]| {
        kernels::conv2d(x, in_shape, filter, bias, &window, &q, out, conv_shape)
    };
    let fast_conv = |x: &[i8], pool: Option<&PoolWindow>, out: &mut [i8], out_shape| {
        fast::conv2d_pool(x, in_shape, filter, bias, &window, &q, pool, out, out_shape)
    };
    let mut reference = vec![0i8; conv_shape.len()];
    reference_conv(input, &mut reference).unwrap();
    let mut optimized = vec![0i8; conv_shape.len()];
    fast_conv(input, None, &mut optimized, conv_shape).unwrap();
    assert_eq!(
        optimized, reference,
        "{name}: fast kernel differs from the reference"
    );

    let x = dequantize(input, &in_t);
    let fw = dequantize_weights(filter, filter_t.channel_scales, false);
    let fb = dequantize_bias(bias, in_t.scale, filter_t.channel_scales);
    let act = activation(op.act_min, out_t.zero_point);
    let mut fout = vec![0f32; conv_shape.len()];

    let title = format!(
        "{name} {}x{}x{} -> {}x{}x{} ({kh}x{kw})",
        in_shape.height,
        in_shape.width,
        in_shape.channels,
        conv_shape.height,
        conv_shape.width,
        conv_shape.channels
    );
    let mut g = c.benchmark_group(&title);
    g.throughput(Throughput::Elements(macs as u64));
    let mut out = vec![0i8; conv_shape.len()];
    g.bench_function("int8 reference", |b| {
        b.iter(|| reference_conv(black_box(input), &mut out))
    });
    g.bench_function("int8 fast", |b| {
        b.iter(|| fast_conv(black_box(input), None, &mut out, conv_shape))
    });
    g.bench_function("float32 reference", |b| {
        b.iter(|| {
            float::conv2d(
                black_box(&x),
                in_shape,
                &fw,
                &fb,
                &window,
                act,
                &mut fout,
                conv_shape,
            )
        })
    });

    let Some(p) = op.fused_pool else {
        g.finish();
        return reference;
    };
    let (pwindow, pooled_shape) = pool_window(&p, conv_shape);
    let pool = PoolWindow {
        window: pwindow,
        conv_shape,
        act_min: p.act_min,
        act_max: p.act_max,
    };
    let mut pooled = vec![0i8; pooled_shape.len()];
    kernels::max_pool(
        &reference,
        conv_shape,
        &pwindow,
        p.act_min,
        p.act_max,
        &mut pooled,
        pooled_shape,
    )
    .unwrap();
    let mut fused = vec![0i8; pooled_shape.len()];
    fast_conv(input, Some(&pool), &mut fused, pooled_shape).unwrap();
    assert_eq!(
        fused, pooled,
        "{name}: fused kernel differs from conv + max pool"
    );

    let mut pout = vec![0i8; pooled_shape.len()];
    g.bench_function("int8 reference + max_pool", |b| {
        b.iter(|| {
            reference_conv(black_box(input), &mut out)?;
            kernels::max_pool(
                &out,
                conv_shape,
                &pwindow,
                p.act_min,
                p.act_max,
                &mut pout,
                pooled_shape,
            )
        })
    });
    // What the interpreter runs for this layer.
    g.bench_function("int8 fast fused max_pool", |b| {
        b.iter(|| fast_conv(black_box(input), Some(&pool), &mut pout, pooled_shape))
    });
    g.finish();

    pools(c, name, &reference, &out_t, &p, conv_shape);
    pooled
}

/// The model's max pool and, on the same geometry, the average pool, int8 and float.
fn pools(
    c: &mut Criterion,
    conv: &str,
    input: &[i8],
    in_t: &Tensor<'_>,
    p: &PoolOp,
    in_shape: Shape,
) {
    let (window, out_shape) = pool_window(p, in_shape);
    let title = format!(
        "pool after {conv} {}x{}x{} -> {}x{}x{} ({}x{})",
        in_shape.height,
        in_shape.width,
        in_shape.channels,
        out_shape.height,
        out_shape.width,
        out_shape.channels,
        window.kernel_h,
        window.kernel_w
    );
    let x = dequantize(input, in_t);
    let act = activation(p.act_min, in_t.zero_point);
    let mut out = vec![0i8; out_shape.len()];
    let mut fout = vec![0f32; out_shape.len()];
    let mut g = c.benchmark_group(&title);
    g.bench_function("int8 max_pool", |b| {
        b.iter(|| {
            kernels::max_pool(
                black_box(input),
                in_shape,
                &window,
                p.act_min,
                p.act_max,
                &mut out,
                out_shape,
            )
        })
    });
    g.bench_function("int8 avg_pool", |b| {
        b.iter(|| {
            kernels::avg_pool(
                black_box(input),
                in_shape,
                &window,
                p.act_min,
                p.act_max,
                &mut out,
                out_shape,
            )
        })
    });
    g.bench_function("float32 max_pool", |b| {
        b.iter(|| float::max_pool(black_box(&x), in_shape, &window, act, &mut fout, out_shape))
    });
    g.bench_function("float32 avg_pool", |b| {
        b.iter(|| float::avg_pool(black_box(&x), in_shape, &window, act, &mut fout, out_shape))
    });
    g.finish();
}

/// A depthwise convolution on `op`'s geometry with depth multiplier `out / in` channels:
/// output channel `o` takes `op`'s filter taps of input channel `o / multiplier`, and `op`'s
/// bias and requantization (the values it computes are not the model's; the work is).
fn depthwise(c: &mut Criterion, name: &str, model: &Model<'_>, op: &ConvOp<'_>, input: &[i8]) {
    let (in_t, out_t) = (
        model.tensor(op.input).unwrap(),
        model.tensor(op.output).unwrap(),
    );
    let filter_t = model.tensor(op.filter).unwrap();
    let conv_filter = filter_t.data_i8().unwrap();
    let bias = model.tensor(op.bias).unwrap().data_i32().unwrap();
    let (in_shape, out_shape) = (shape(&in_t), shape(&out_t));
    let multiplier = out_shape.channels / in_shape.channels;
    let (kh, kw, ic, oc) = (
        filter_t.dims.get(1),
        filter_t.dims.get(2),
        in_shape.channels,
        out_shape.channels,
    );
    let mut filter = vec![0i8; kh * kw * oc];
    for o in 0..oc {
        for tap in 0..kh * kw {
            filter[tap * oc + o] = conv_filter[(o * kh * kw + tap) * ic + o / multiplier];
        }
    }
    let (window, q) = conv_window_and_requant(op, in_shape, (kh, kw), &in_t, &out_t);
    let x = dequantize(input, &in_t);
    let fw = dequantize_weights(&filter, filter_t.channel_scales, true);
    let fb = dequantize_bias(bias, in_t.scale, filter_t.channel_scales);
    let act = activation(op.act_min, out_t.zero_point);
    let title = format!(
        "depthwise on {name}'s geometry {}x{}x{} x{multiplier} -> {}x{}x{} ({kh}x{kw})",
        in_shape.height, in_shape.width, ic, out_shape.height, out_shape.width, oc
    );
    let mut out = vec![0i8; out_shape.len()];
    let mut fout = vec![0f32; out_shape.len()];
    let mut g = c.benchmark_group(&title);
    g.throughput(Throughput::Elements((out_shape.len() * kh * kw) as u64));
    g.bench_function("int8 reference", |b| {
        b.iter(|| {
            kernels::depthwise_conv2d(
                black_box(input),
                in_shape,
                &filter,
                bias,
                &window,
                multiplier,
                &q,
                &mut out,
                out_shape,
            )
        })
    });
    g.bench_function("float32 reference", |b| {
        b.iter(|| {
            float::depthwise_conv2d(
                black_box(&x),
                in_shape,
                &fw,
                &fb,
                &window,
                multiplier,
                act,
                &mut fout,
                out_shape,
            )
        })
    });
    g.finish();
}

/// A fully connected layer of the model, with both requantizations (Q31 multipliers as TFLite
/// Micro, f64 scales as LiteRT's reference kernel); returns its output.
fn dense(
    c: &mut Criterion,
    name: &str,
    model: &Model<'_>,
    op: &FullyConnectedOp<'_>,
    input: &[i8],
) -> Vec<i8> {
    let (in_t, out_t) = (
        model.tensor(op.input).unwrap(),
        model.tensor(op.output).unwrap(),
    );
    let filter_t = model.tensor(op.filter).unwrap();
    let filter = filter_t.data_i8().unwrap();
    let bias = model.tensor(op.bias).unwrap().data_i32().unwrap();
    let n_out = out_t.dims.num_elements();
    let fixed = Requantize {
        input_offset: -in_t.zero_point,
        output_offset: out_t.zero_point,
        multipliers: op.multipliers,
        shifts: op.shifts,
        act_min: op.act_min,
        act_max: op.act_max,
    };
    let scales: Vec<f64> = if op.double_scales.is_empty() {
        filter_t
            .channel_scales
            .iter()
            .map(|&s| f64::from(in_t.scale) * f64::from(s) / f64::from(out_t.scale))
            .collect()
    } else {
        op.double_scales.to_vec()
    };
    let double = FloatRequantize {
        input_offset: -in_t.zero_point,
        output_offset: out_t.zero_point,
        scales: &scales,
        act_min: op.act_min,
        act_max: op.act_max,
    };

    let mut q31 = vec![0i8; n_out];
    let mut f64_out = vec![0i8; n_out];
    let mut optimized = vec![0i8; n_out];
    kernels::fully_connected(input, filter, bias, &fixed, &mut q31).unwrap();
    fast::fully_connected(
        input,
        filter,
        bias,
        FcRequant::Fixed(&fixed),
        &mut optimized,
    )
    .unwrap();
    assert_eq!(optimized, q31, "{name}: fast kernel differs (Q31)");
    kernels::fully_connected_float_requant(input, filter, bias, &double, &mut f64_out).unwrap();
    fast::fully_connected(
        input,
        filter,
        bias,
        FcRequant::Float(&double),
        &mut optimized,
    )
    .unwrap();
    assert_eq!(optimized, f64_out, "{name}: fast kernel differs (f64)");

    let x = dequantize(input, &in_t);
    let fw = dequantize_weights(filter, filter_t.channel_scales, false);
    let fb = dequantize_bias(bias, in_t.scale, filter_t.channel_scales);
    let act = activation(op.act_min, out_t.zero_point);
    let mut out = vec![0i8; n_out];
    let mut fout = vec![0f32; n_out];
    let mut g = c.benchmark_group(format!("{name} {} -> {n_out}", input.len()));
    g.throughput(Throughput::Elements(filter.len() as u64));
    g.bench_function("int8 reference Q31", |b| {
        b.iter(|| kernels::fully_connected(black_box(input), filter, bias, &fixed, &mut out))
    });
    g.bench_function("int8 fast Q31", |b| {
        b.iter(|| {
            fast::fully_connected(
                black_box(input),
                filter,
                bias,
                FcRequant::Fixed(&fixed),
                &mut out,
            )
        })
    });
    g.bench_function("int8 reference f64", |b| {
        b.iter(|| {
            kernels::fully_connected_float_requant(
                black_box(input),
                filter,
                bias,
                &double,
                &mut out,
            )
        })
    });
    g.bench_function("int8 fast f64", |b| {
        b.iter(|| {
            fast::fully_connected(
                black_box(input),
                filter,
                bias,
                FcRequant::Float(&double),
                &mut out,
            )
        })
    });
    g.bench_function("float32 reference", |b| {
        b.iter(|| float::fully_connected(black_box(&x), &fw, &fb, act, &mut fout))
    });
    g.finish();
    // The interpreter's choice is the model's: f64 scales when it stores them.
    if op.double_scales.is_empty() {
        q31
    } else {
        f64_out
    }
}

fn softmax(c: &mut Criterion, model: &Model<'_>, op: &SoftmaxOp, input: &[i8]) {
    let in_t = model.tensor(op.input).unwrap();
    let depth = in_t.dims.last();
    let x = dequantize(input, &in_t);
    let mut out = vec![0i8; input.len()];
    let mut fout = vec![0f32; input.len()];
    let mut g = c.benchmark_group(format!("softmax {depth}"));
    g.bench_function("int8", |b| {
        b.iter(|| kernels::softmax(black_box(input), depth, &op.params, &mut out))
    });
    g.bench_function("float32", |b| {
        b.iter(|| float::softmax(black_box(&x), depth, 1.0, &mut fout))
    });
    g.finish();
}

fn seed_cnn_layers(c: &mut Criterion) {
    let blob = common::seed_model();
    let model = Model::from_bytes(blob.bytes()).expect("models/seed_cnn.fxn loads");
    let digits = common::Digits::test();
    let in_t = model.input().unwrap();
    let mut act = vec![0i8; in_t.dims.num_elements()];
    fixnet::interpreter::quantize_grey(digits.image(0), in_t.scale, in_t.zero_point, &mut act);

    let (mut convs, mut denses) = (0, 0);
    for op in model.ops() {
        match op.expect("op decodes") {
            Op::Conv2d(op) => {
                convs += 1;
                let name = format!("conv{convs}");
                if convs == 2 {
                    depthwise(c, &name, &model, &op, &act);
                }
                act = conv(c, &name, &model, &op, &act);
            }
            Op::FullyConnected(op) => {
                denses += 1;
                act = dense(c, &format!("dense{denses}"), &model, &op, &act);
            }
            Op::Softmax(op) => softmax(c, &model, &op, &act),
            Op::MaxPool(p) if !model.is_elided(p.input) => {
                let in_t = model.tensor(p.input).unwrap();
                let in_shape = shape(&in_t);
                let (window, out_shape) = pool_window(&p, in_shape);
                pools(c, "a layer", &act, &in_t, &p, in_shape);
                let mut out = vec![0i8; out_shape.len()];
                kernels::max_pool(
                    &act, in_shape, &window, p.act_min, p.act_max, &mut out, out_shape,
                )
                .unwrap();
                act = out;
            }
            // Fused into the convolution before it (computed there), or a reshape (no work).
            Op::MaxPool(_) | Op::Reshape { .. } => {}
            other => panic!("the seed CNN has no {:?} op", other.kind()),
        }
    }
}

criterion_group!(benches, seed_cnn_layers);
criterion_main!(benches);
