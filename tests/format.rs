//! The model format: writer → parser round trip, the stored memory plan, and rejection of
//! every corruption and truncation with a typed error, never a panic.

mod common;

use common::{Aligned, SmallModelData};
use fixnet::format::crc32::crc32;
use fixnet::format::{Op, OpKind, HEADER_LEN, OP_RECORD_LEN, TENSOR_RECORD_LEN};
use fixnet::{Error, Interpreter, Model};

/// Recomputes the CRC trailer so that a deliberate edit reaches the structural checks.
fn with_fresh_crc(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = bytes.len();
    let crc = crc32(&bytes[..n - 4]);
    bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn parse(bytes: &[u8]) -> Result<Model<'_>, Error> {
    Model::from_bytes(bytes)
}

fn op_record(model_bytes: &[u8], op: usize) -> usize {
    let tensors = u16::from_le_bytes([model_bytes[16], model_bytes[17]]) as usize;
    HEADER_LEN + tensors * TENSOR_RECORD_LEN + op * OP_RECORD_LEN
}

#[test]
fn round_trip_keeps_every_tensor_and_op() {
    let data = SmallModelData::new();
    let builder = data.builder();
    let (planned, arena) = builder.plan().unwrap();
    let buf = Aligned::new(&data.encode());
    let model = parse(buf.bytes()).unwrap();

    assert_eq!(model.tensor_count(), builder.tensors().len());
    assert_eq!(model.op_count(), builder.ops().len());
    assert_eq!(model.arena_size(), arena);
    assert_eq!(model.len(), buf.bytes().len());
    for (i, want) in planned.iter().enumerate() {
        let got = model.tensor(i as u16).unwrap();
        assert_eq!(got.dtype, want.dtype, "tensor {i}");
        assert_eq!(got.dims, want.dims, "tensor {i}");
        assert_eq!(got.zero_point, want.zero_point, "tensor {i}");
        assert_eq!(got.scale.to_bits(), want.scale.to_bits(), "tensor {i}");
        assert_eq!(got.channel_scales, want.channel_scales, "tensor {i}");
        assert_eq!(got.data, want.data, "tensor {i}");
        if !got.is_constant() {
            assert_eq!(got.arena_offset, want.arena_offset, "tensor {i}");
        }
    }
    let kinds: Vec<OpKind> = model.ops().map(|op| op.unwrap().kind()).collect();
    assert_eq!(
        kinds,
        [
            OpKind::Conv2d,
            OpKind::MaxPool,
            OpKind::Reshape,
            OpKind::FullyConnected,
            OpKind::Softmax
        ]
    );
    for (i, want) in builder.ops().iter().enumerate() {
        let got = model.op(i).unwrap();
        assert_eq!(got.input(), want.input());
        assert_eq!(got.output(), want.output());
        assert_eq!(got.weights(), want.weights());
        assert_eq!(got.requantization(), want.requantization());
        assert_eq!(got.double_scales(), want.double_scales());
        if let (Op::Softmax(g), Op::Softmax(w)) = (got, want) {
            assert_eq!(g.params, w.params);
        }
    }
    // Writing the parsed model's bytes again is byte-identical (the format is canonical).
    assert_eq!(data.encode(), buf.bytes());
}

#[test]
fn plan_reuses_memory_and_aliases_the_reshape() {
    let data = SmallModelData::new();
    let buf = Aligned::new(&data.encode());
    let model = parse(buf.bytes()).unwrap();
    let activations: usize = (0..model.tensor_count() as u16)
        .map(|i| model.tensor(i).unwrap())
        .filter(|t| !t.is_constant())
        .map(|t| t.byte_len())
        .sum();
    assert!(
        model.arena_size() < activations,
        "arena {} should be smaller than the sum of activations {activations}",
        model.arena_size()
    );
    // The reshape's output uses the pool output's bytes.
    let Op::Reshape { input, output } = model.op(2).unwrap() else {
        panic!("op 2 is the reshape")
    };
    assert_eq!(
        model.tensor(input).unwrap().arena_offset,
        model.tensor(output).unwrap().arena_offset
    );
    // Peak: conv input (64) and conv output (144) live together; 208 rounded to 4.
    assert_eq!(model.arena_size(), 208);
}

#[test]
fn every_truncation_is_rejected() {
    let bytes = SmallModelData::new().encode();
    for len in 0..bytes.len() {
        let buf = Aligned::new(&bytes[..len]);
        assert_eq!(
            parse(buf.bytes()).unwrap_err(),
            Error::Truncated,
            "length {len}"
        );
    }
}

#[test]
fn every_single_byte_corruption_is_rejected() {
    let bytes = SmallModelData::new().encode();
    let mut checked = 0;
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bad = bytes.clone();
            bad[at] ^= flip;
            let buf = Aligned::new(&bad);
            assert!(
                parse(buf.bytes()).is_err(),
                "byte {at} ^ {flip:#04x} accepted"
            );
            checked += 1;
        }
    }
    println!("{checked} corruptions of {} bytes rejected", bytes.len());
}

/// With the CRC check skipped, corruptions reach the structural checks: each is either
/// rejected with an error or yields a model that runs without panicking.
#[test]
fn corruption_past_the_crc_never_panics() {
    let bytes = SmallModelData::new().encode();
    let (mut rejected, mut accepted) = (0, 0);
    for at in 0..bytes.len() - 4 {
        for value in [0x00u8, 0x01, 0x7F, 0x80, 0xFF, bytes[at].wrapping_add(1)] {
            let mut bad = bytes.clone();
            bad[at] = value;
            let buf = Aligned::new(&bad);
            match Model::from_bytes_unchecked_crc(buf.bytes()) {
                Err(_) => rejected += 1,
                Ok(model) => {
                    accepted += 1;
                    let mut arena = vec![0u8; model.arena_size().min(1 << 20)];
                    if let Ok(mut interp) = Interpreter::new(&model, &mut arena) {
                        interp.input_mut().fill(7);
                        let _ = interp.invoke();
                        let _ = interp.top1();
                    }
                }
            }
        }
    }
    println!("structural checks: {rejected} rejected, {accepted} accepted and ran");
    assert!(rejected > 0 && accepted > 0);
}

#[test]
fn each_kind_of_damage_has_its_own_error() {
    let good = SmallModelData::new().encode();
    let check = |bytes: Vec<u8>, want: Error| {
        let buf = Aligned::new(&bytes);
        assert_eq!(parse(buf.bytes()).unwrap_err(), want);
    };

    let mut b = good.clone();
    b[0] = b'X';
    check(b, Error::BadMagic);

    let mut b = good.clone();
    b[4] = 4;
    check(with_fresh_crc(b), Error::UnsupportedVersion(4));

    // Labelled version 2, which stores no lifetimes.
    let mut b = good.clone();
    b[4] = 2;
    check(with_fresh_crc(b), Error::BadHeader);

    let mut b = good.clone();
    b[100] ^= 1;
    let buf = Aligned::new(&b);
    assert!(matches!(parse(buf.bytes()), Err(Error::CrcMismatch { .. })));

    let mut b = good.clone();
    b[6] = 40;
    check(with_fresh_crc(b), Error::BadHeader);

    let op0 = op_record(&good, 0);
    let mut b = good.clone();
    b[op0] = 99;
    check(with_fresh_crc(b), Error::UnknownOp(99));

    // Stride 0 is not a window.
    let mut b = good.clone();
    b[op0 + 12] = 0;
    check(with_fresh_crc(b), Error::InvalidParameter);

    // Conv output stored as 1×6×5×4 instead of 1×6×6×4 (with its byte length to match).
    let t3 = HEADER_LEN + 3 * TENSOR_RECORD_LEN;
    let mut b = good.clone();
    b[t3 + 8..t3 + 10].copy_from_slice(&5u16.to_le_bytes());
    b[t3 + 16..t3 + 20].copy_from_slice(&120u32.to_le_bytes());
    check(with_fresh_crc(b), Error::InconsistentShape);

    // Conv output moved onto the conv input while both are live.
    let input_offset =
        u32::from_le_bytes(good[HEADER_LEN + 12..HEADER_LEN + 16].try_into().unwrap());
    let mut b = good.clone();
    b[t3 + 12..t3 + 16].copy_from_slice(&input_offset.to_le_bytes());
    check(with_fresh_crc(b), Error::BadPlan);

    // Constant data pointing past the data section.
    let t1 = HEADER_LEN + TENSOR_RECORD_LEN;
    let mut b = good.clone();
    b[t1 + 12..t1 + 16].copy_from_slice(&0x00FF_FF00u32.to_le_bytes());
    check(with_fresh_crc(b), Error::OffsetOutOfRange);

    // Data type 9.
    let mut b = good.clone();
    b[t1] = 9;
    check(with_fresh_crc(b), Error::BadDataType);

    // Pool reads the softmax output, which is only written later.
    let op1 = op_record(&good, 1);
    let mut b = good.clone();
    b[op1 + 4..op1 + 6].copy_from_slice(&9u16.to_le_bytes());
    let buf = Aligned::new(&with_fresh_crc(b));
    assert!(matches!(
        parse(buf.bytes()),
        Err(Error::BadOpOrder | Error::InconsistentShape | Error::BadQuantization)
    ));

    // A filter index past the table.
    let mut b = good.clone();
    b[op0 + 8..op0 + 10].copy_from_slice(&60u16.to_le_bytes());
    check(with_fresh_crc(b), Error::BadTensorIndex(60));

    // Misaligned start.
    let mut shifted = vec![0u8];
    shifted.extend_from_slice(&good);
    let buf = Aligned::new(&shifted);
    assert_eq!(
        Model::from_bytes(&buf.bytes()[1..]).unwrap_err(),
        Error::Misaligned
    );
}

#[test]
fn interpreter_needs_the_planned_arena() {
    let buf = Aligned::new(&SmallModelData::new().encode());
    let model = parse(buf.bytes()).unwrap();
    let mut small = vec![0u8; model.arena_size() - 1];
    assert_eq!(
        Interpreter::new(&model, &mut small).err(),
        Some(Error::ArenaTooSmall {
            needed: model.arena_size(),
            provided: model.arena_size() - 1
        })
    );
    let mut arena = vec![0u8; model.arena_size()];
    assert!(Interpreter::new(&model, &mut arena).is_ok());
}

/// The small model with its Conv2D fused with the MaxPool2D after it (format version 2).
fn fused(builder: &fixnet::ModelBuilder<'static>) -> Vec<u8> {
    let mut b = fixnet::ModelBuilder::new();
    for t in builder.tensors() {
        b.add_tensor(*t).unwrap();
    }
    let ops = builder.ops();
    for (i, op) in ops.iter().enumerate() {
        let op = match (op, ops.get(i + 1)) {
            (Op::Conv2d(c), Some(Op::MaxPool(p))) => Op::Conv2d(fixnet::format::ConvOp {
                fused_pool: Some(*p),
                ..*c
            }),
            _ => *op,
        };
        b.add_op(op).unwrap();
    }
    let plain = SMALL.encode();
    let buf = Aligned::new(&plain);
    let m = parse(buf.bytes()).unwrap();
    b.set_io(m.input_index(), m.output_index());
    let mut out = vec![0u8; b.encoded_len().unwrap()];
    b.write(&mut out).unwrap();
    out
}

static SMALL: std::sync::LazyLock<SmallModelData> = std::sync::LazyLock::new(SmallModelData::new);

#[test]
fn fused_conv_pool_elides_the_conv_output_and_computes_the_same_bytes() {
    let plain = SMALL.encode();
    let fused_bytes = fused(&SMALL.builder());
    assert_eq!(u16::from_le_bytes([plain[4], plain[5]]), 3);
    assert_eq!(u16::from_le_bytes([fused_bytes[4], fused_bytes[5]]), 3);
    let (pb, fb) = (Aligned::new(&plain), Aligned::new(&fused_bytes));
    let (pm, fm) = (parse(pb.bytes()).unwrap(), parse(fb.bytes()).unwrap());
    assert_eq!(pm.version(), 3);
    assert_eq!(fm.version(), 3);
    // Same ops and tensors; the 6×6×4 convolution output takes no arena bytes.
    assert_eq!(fm.op_count(), pm.op_count());
    let conv_out = fm.op(0).unwrap().output();
    assert!(fm.is_elided(conv_out) && !pm.is_elided(conv_out));
    assert!(
        fm.arena_size() < pm.arena_size(),
        "{} vs {}",
        fm.arena_size(),
        pm.arena_size()
    );
    assert_eq!(
        fm.op(0).unwrap().fused_pool(),
        pm.op(1).unwrap().fused_pool().or(match pm.op(1).unwrap() {
            Op::MaxPool(p) => Some(p),
            _ => None,
        })
    );
    // Rewriting a parsed fused model gives the same bytes.
    let again = fixnet::ModelBuilder::from_model(&fm).unwrap();
    let mut out = vec![0u8; again.encoded_len().unwrap()];
    again.write(&mut out).unwrap();
    assert_eq!(out, fused_bytes);

    for seed in 0..20u32 {
        let image: Vec<u8> = (0..64u32)
            .map(|i| (i.wrapping_mul(37) ^ (seed * 91)) as u8)
            .collect();
        let mut a1 = vec![0u8; pm.arena_size()];
        let mut a2 = vec![0u8; fm.arena_size()];
        let mut i1 = Interpreter::new(&pm, &mut a1).unwrap();
        let mut i2 = Interpreter::new(&fm, &mut a2).unwrap();
        i1.set_input_grey(&image).unwrap();
        i2.set_input_grey(&image).unwrap();
        i1.invoke().unwrap();
        i2.invoke().unwrap();
        assert_eq!(i1.output(), i2.output());
        let pool_out = fm.op(1).unwrap().output();
        assert_eq!(
            i1.tensor_data(pool_out).unwrap(),
            i2.tensor_data(pool_out).unwrap()
        );
        assert_eq!(
            i2.tensor_data(conv_out),
            Err(Error::BadTensorIndex(conv_out))
        );
    }
}

#[test]
fn broken_fusions_are_rejected() {
    let good = fused(&SMALL.builder());
    let check = |bytes: Vec<u8>, want: Error| {
        let buf = Aligned::new(&bytes);
        assert_eq!(parse(buf.bytes()).unwrap_err(), want);
    };
    let op0 = op_record(&good, 0);
    // The copy of the pool disagrees with the next op.
    let mut b = good.clone();
    b[op0 + 40] = 1;
    check(with_fresh_crc(b), Error::InvalidParameter);
    let mut b = good.clone();
    b[op0 + 14] = 3;
    check(with_fresh_crc(b), Error::InvalidParameter);
    // The elided tensor must sit at offset 0.
    let conv_out = {
        let buf = Aligned::new(&good);
        parse(buf.bytes()).unwrap().op(0).unwrap().output()
    };
    let rec = HEADER_LEN + usize::from(conv_out) * TENSOR_RECORD_LEN;
    let mut b = good.clone();
    b[rec + 12] = 4;
    check(with_fresh_crc(b), Error::BadHeader);
    // Stored as an ordinary activation although the convolution is fused.
    let mut b = good.clone();
    b[rec + 1] = 0;
    check(with_fresh_crc(b), Error::InvalidParameter);
    // An unfused convolution's output marked as never stored.
    let plain = SMALL.encode();
    let mut b = plain.clone();
    b[rec + 1] = 2;
    b[rec + 12..rec + 16].fill(0);
    check(with_fresh_crc(b), Error::InvalidParameter);
    // The fused flag on an op that is not a Conv2D.
    let op3 = op_record(&good, 3);
    let mut b = good.clone();
    b[op3 + 18] = 2;
    check(with_fresh_crc(b), Error::BadHeader);
}

/// A softmax row longer than the kernel's sum of exponentials can hold (finding F3) is
/// refused when the model is built or loaded, not computed with a wrapped sum.
#[test]
fn softmax_rows_over_4095_classes_are_refused() {
    use fixnet::format::{Dims, ModelBuilder, SoftmaxOp, Tensor};
    use fixnet::kernels::SoftmaxParams;
    let build = |classes: usize| -> Result<Vec<u8>, Error> {
        let mut b = ModelBuilder::new();
        let dims = Dims::new(&[1, classes]).unwrap();
        let x = b.add_tensor(Tensor::activation(dims, 0.1, 0))?;
        let y = b.add_tensor(Tensor::activation(dims, 1.0 / 256.0, -128))?;
        b.add_op(Op::Softmax(SoftmaxOp {
            input: x,
            output: y,
            params: SoftmaxParams::new(1.0, 0.1).unwrap(),
        }))?;
        b.set_io(x, y);
        let mut out = vec![0u8; b.encoded_len()?];
        b.write(&mut out)?;
        Ok(out)
    };
    let fine = build(4095).unwrap();
    let buf = Aligned::new(&fine);
    assert!(parse(buf.bytes()).is_ok());
    let r = build(4096);
    assert!(r.is_err(), "{:?}", r.as_ref().map(|v| v.len()));
    assert_eq!(r.unwrap_err(), Error::InvalidParameter);
    assert_eq!(build(65_535).unwrap_err(), Error::InvalidParameter);
}

/// A version-3 blob turned into the version-1 or version-2 encoding of the same model: no
/// lifetimes in the tensor records, elided tensors stored as ordinary activations.
fn as_legacy(v3: &[u8], version: u16) -> Vec<u8> {
    let mut b = v3.to_vec();
    b[4..6].copy_from_slice(&version.to_le_bytes());
    let tensors = usize::from(u16::from_le_bytes([b[16], b[17]]));
    for t in 0..tensors {
        let rec = HEADER_LEN + t * TENSOR_RECORD_LEN;
        if b[rec + 1] == 2 {
            b[rec + 1] = 0;
        }
        if b[rec + 1] == 0 {
            b[rec + 36..rec + 40].fill(0);
        }
    }
    with_fresh_crc(b)
}

#[test]
fn version_1_and_2_blobs_still_load_and_compute_the_same_bytes() {
    let plain = SMALL.encode();
    let fused_bytes = fused(&SMALL.builder());
    let (v1, v2) = (as_legacy(&plain, 1), as_legacy(&fused_bytes, 2));
    let (b3, b1, b2) = (Aligned::new(&plain), Aligned::new(&v1), Aligned::new(&v2));
    let (m3, m1, m2) = (
        parse(b3.bytes()).unwrap(),
        parse(b1.bytes()).unwrap(),
        parse(b2.bytes()).unwrap(),
    );
    assert_eq!((m1.version(), m2.version()), (1, 2));
    let conv_out = m2.op(0).unwrap().output();
    assert!(m2.is_elided(conv_out) && !m1.is_elided(conv_out));
    for t in 0..m3.tensor_count() as u16 {
        if !m3.tensor(t).unwrap().is_constant() {
            assert_eq!(m1.lifetime(t).unwrap(), m3.lifetime(t).unwrap());
        }
    }
    // The version rule of the older formats: version 2 exactly when something is fused.
    let check = |bytes: Vec<u8>| {
        let buf = Aligned::new(&bytes);
        parse(buf.bytes()).unwrap_err()
    };
    assert_eq!(check(as_legacy(&plain, 2)), Error::UnsupportedVersion(2));
    assert_eq!(
        check(as_legacy(&fused_bytes, 1)),
        Error::UnsupportedVersion(1)
    );
    let image: Vec<u8> = (0..64u32).map(|i| (i * 29 % 256) as u8).collect();
    let run = |m: &Model<'_>| {
        let mut arena = vec![0u8; m.arena_size()];
        let mut interp = Interpreter::new(m, &mut arena).unwrap();
        interp.set_input_grey(&image).unwrap();
        interp.invoke().unwrap();
        interp.output().to_vec()
    };
    assert_eq!(run(&m1), run(&m3));
    assert_eq!(run(&m2), run(&m3));
}

#[test]
fn every_stored_lifetime_is_checked() {
    // Each activation's first and last step, nudged by one either way, is refused: the
    // stored lifetimes are exactly the ones the ops imply, so the plan check can trust them.
    let good = SMALL.encode();
    let buf = Aligned::new(&good);
    let model = parse(buf.bytes()).unwrap();
    let mut tried = 0;
    for t in 0..model.tensor_count() {
        if model.tensor(t as u16).unwrap().is_constant() {
            continue;
        }
        let rec = HEADER_LEN + t * TENSOR_RECORD_LEN;
        for field in [rec + 36, rec + 38] {
            let value = u16::from_le_bytes([good[field], good[field + 1]]);
            for nudged in [value.wrapping_sub(1), value + 1] {
                let mut b = good.clone();
                b[field..field + 2].copy_from_slice(&nudged.to_le_bytes());
                let bad = Aligned::new(&with_fresh_crc(b));
                assert!(
                    parse(bad.bytes()).is_err(),
                    "tensor {t} field {field}: {nudged}"
                );
                tried += 1;
            }
        }
    }
    assert!(tried >= 16, "{tried}");
}
