//! Models as graphs (format version 3): ops with two inputs, tensors with several readers,
//! and more tensors and ops than the old fixed tables held.

mod common;

use common::{lcg_i8, Aligned};
use fixnet::float::Activation;
use fixnet::format::{write_model, AddOp, Dims, Op, Tensor, TensorId};
use fixnet::kernels::AddParams;
use fixnet::plan::ranges_overlap;
use fixnet::{Error, Interpreter, Model};

/// An Add op of `a + b → y` with TFLite's parameters for these quantizations.
fn add_op(
    a: (TensorId, &Tensor<'_>),
    b: (TensorId, &Tensor<'_>),
    y: (TensorId, &Tensor<'_>),
) -> (Op<'static>, AddParams) {
    let p = AddParams::new(
        (a.1.scale, a.1.zero_point),
        (b.1.scale, b.1.zero_point),
        (y.1.scale, y.1.zero_point),
        Activation::None,
    )
    .unwrap();
    let op = Op::Add(AddOp {
        input1: a.0,
        input2: b.0,
        output: y.0,
        act_min: p.act_min,
        act_max: p.act_max,
        left_shift: p.left_shift as u8,
        input1_multiplier: p.input1_multiplier,
        input1_shift: p.input1_shift as i8,
        input2_multiplier: p.input2_multiplier,
        input2_shift: p.input2_shift as i8,
        output_multiplier: p.output_multiplier,
        output_shift: p.output_shift as i8,
    });
    (op, p)
}

fn encode<'a>(
    tensors: &mut [Tensor<'a>],
    ops: &[Op<'a>],
    input: TensorId,
    output: TensorId,
) -> Result<Vec<u8>, Error> {
    let mut out = vec![0u8; fixnet::format::encoded_len(tensors, ops)?];
    let n = write_model(tensors, ops, input, output, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// `x_{k+1} = x_k + x_0` for `n` steps: the input has `n` readers and lives to the end, and
/// the model has `n + 1` tensors and `n` ops, beyond version 2's 64 and 32.
fn running_sum(n: usize) -> (Vec<u8>, Vec<AddParams>) {
    let dims = Dims::new(&[1, 3, 3, 8]).unwrap();
    let mut tensors: Vec<Tensor<'static>> = (0..=n)
        .map(|k| Tensor::activation(dims, 0.02 + 0.001 * k as f32, (k % 7) as i32 - 3))
        .collect();
    let mut ops = Vec::new();
    let mut params = Vec::new();
    for k in 0..n {
        let (a, b, y) = (tensors[k], tensors[0], tensors[k + 1]);
        let (op, p) = add_op((k as u16, &a), (0, &b), ((k + 1) as u16, &y));
        ops.push(op);
        params.push(p);
    }
    (encode(&mut tensors, &ops, 0, n as u16).unwrap(), params)
}

#[test]
fn a_tensor_read_by_every_op_stays_live_and_the_sums_are_exact() {
    let n = 100;
    let (bytes, params) = running_sum(n);
    let buf = Aligned::new(&bytes);
    let model = Model::from_bytes(buf.bytes()).unwrap();
    assert_eq!(
        (model.tensor_count(), model.op_count(), model.version()),
        (n + 1, n, 3)
    );
    let life = model.lifetime(0).unwrap();
    assert_eq!((life.first, life.last), (0, n as u16));
    // Only three 72-byte buffers are ever live at once: x0, x_k and x_{k+1}.
    assert_eq!(model.arena_size(), 3 * 72);

    let input = lcg_i8(7, 72);
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(&model, &mut arena).unwrap();
    interp.input_mut().copy_from_slice(&input);
    interp.invoke().unwrap();
    let mut want = input.clone();
    for p in &params {
        want = want
            .iter()
            .zip(&input)
            .map(|(&a, &b)| p.add(a, b))
            .collect();
    }
    assert_eq!(interp.output(), &want[..]);
}

#[test]
fn add_broadcasts_a_per_channel_vector_over_the_image() {
    let image = Tensor::activation(Dims::new(&[1, 2, 3, 4]).unwrap(), 0.05, 3);
    let sum = Tensor::activation(Dims::new(&[1, 2, 3, 4]).unwrap(), 0.07, 1);
    // The image is the input; an average pool over the whole image gives [1,1,1,4], a
    // per-channel vector that broadcasts back over the image.
    use fixnet::format::PoolOp;
    let pooled = Tensor::activation(Dims::new(&[1, 1, 1, 4]).unwrap(), 0.05, 3);
    let mut tensors = vec![image, pooled, sum];
    let pool = Op::AvgPool(PoolOp {
        input: 0,
        output: 1,
        padding: fixnet::Padding::Valid,
        kernel_h: 2,
        kernel_w: 3,
        stride_h: 1,
        stride_w: 1,
        act_min: -128,
        act_max: 127,
    });
    let (add, p) = add_op((0, &image), (1, &pooled), (2, &sum));
    let bytes = encode(&mut tensors, &[pool, add], 0, 2).unwrap();
    let buf = Aligned::new(&bytes);
    let model = Model::from_bytes(buf.bytes()).unwrap();
    let input = lcg_i8(3, 24);
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(&model, &mut arena).unwrap();
    interp.input_mut().copy_from_slice(&input);
    interp.invoke().unwrap();
    let mean = interp.tensor_data(1).unwrap().to_vec();
    let want: Vec<i8> = input
        .iter()
        .enumerate()
        .map(|(i, &x)| p.add(x, mean[i % 4]))
        .collect();
    assert_eq!(interp.output(), &want[..]);
    // The image is read by both ops: it must not share bytes with the pool's output.
    let (a, b) = (model.tensor(0).unwrap(), model.tensor(1).unwrap());
    assert!(!ranges_overlap(a.arena_offset, 24, b.arena_offset, 4));
}

#[test]
fn graphs_that_read_before_writing_or_write_twice_are_refused() {
    let dims = Dims::new(&[1, 4]).unwrap();
    let t = |s: f32| Tensor::activation(dims, s, 0);
    let mut tensors = vec![t(0.1), t(0.2), t(0.3)];
    let (a, b, c) = (tensors[0], tensors[1], tensors[2]);
    // Op 0 reads tensor 2, which op 1 writes later.
    let (op0, _) = add_op((0, &a), (2, &c), (1, &b));
    let (op1, _) = add_op((0, &a), (1, &b), (2, &c));
    assert_eq!(
        encode(&mut tensors, &[op0, op1], 0, 2).unwrap_err(),
        Error::BadOpOrder
    );
    // Two ops write tensor 1.
    let (op0, _) = add_op((0, &a), (0, &a), (1, &b));
    let (op1, _) = add_op((0, &a), (1, &b), (1, &b));
    assert_eq!(
        encode(&mut tensors, &[op0, op1], 0, 1).unwrap_err(),
        Error::BadOpOrder
    );
    // An input that does not broadcast.
    let mut tensors = vec![
        t(0.1),
        Tensor::activation(Dims::new(&[1, 3]).unwrap(), 0.2, 0),
        t(0.3),
    ];
    let (x, y, z) = (tensors[0], tensors[1], tensors[2]);
    let (op0, _) = add_op((0, &x), (0, &x), (1, &y));
    let (op1, _) = add_op((0, &x), (1, &y), (2, &z));
    assert_eq!(
        encode(&mut tensors, &[op0, op1], 0, 2).unwrap_err(),
        Error::InconsistentShape
    );
}

#[test]
fn every_byte_of_a_graph_model_is_checked() {
    // A small graph (5 ops, the input read by all): each single-byte change is refused
    // (CRC), and with a fresh CRC is refused or runs without panicking.
    let (bytes, _) = running_sum(5);
    let (mut rejected, mut ran) = (0, 0);
    for at in 0..bytes.len() - 4 {
        let mut bad = bytes.clone();
        bad[at] ^= 0x41;
        let buf = Aligned::new(&bad);
        assert!(Model::from_bytes(buf.bytes()).is_err());
        let body = bad.len() - 4;
        let crc = fixnet::format::crc32::crc32(&bad[..body]);
        bad[body..].copy_from_slice(&crc.to_le_bytes());
        let buf = Aligned::new(&bad);
        match Model::from_bytes(buf.bytes()) {
            Err(_) => rejected += 1,
            Ok(m) => {
                ran += 1;
                let mut arena = vec![0u8; m.arena_size().min(1 << 20)];
                if let Ok(mut interp) = Interpreter::new(&m, &mut arena) {
                    interp.input_mut().fill(5);
                    let _ = interp.invoke();
                }
            }
        }
    }
    assert!(rejected > ran, "{rejected} rejected, {ran} ran");
}
