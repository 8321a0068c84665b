//! The op features (`op-conv2d`, `op-max-pool`, …): a build without an op's kernel refuses a
//! model using it with `Error::UnknownOp`, when it is written and when it is loaded, and runs
//! every model whose ops it has. With the default features every op is built; CI also runs
//! this file with the benchmark firmware's set (`--no-default-features --features
//! op-conv2d-pool,op-fully-connected,op-softmax`).

mod common;

use common::{Aligned, SmallModelData};
use fixnet::format::OpKind;
use fixnet::{Error, Interpreter, Model};

/// The first of `kinds` this build lacks, as the error a model using them gets.
fn first_missing(kinds: &[OpKind]) -> Option<Error> {
    kinds
        .iter()
        .find(|k| !k.is_built())
        .map(|&k| Error::UnknownOp(k as u8))
}

#[test]
fn the_default_features_build_every_op() {
    if cfg!(feature = "op-conv2d")
        && cfg!(feature = "op-depthwise-conv2d")
        && cfg!(feature = "op-max-pool")
        && cfg!(feature = "op-avg-pool")
        && cfg!(feature = "op-fully-connected")
        && cfg!(feature = "op-softmax")
    {
        for code in 1..=7u8 {
            let kind = [
                OpKind::Conv2d,
                OpKind::DepthwiseConv2d,
                OpKind::MaxPool,
                OpKind::AvgPool,
                OpKind::FullyConnected,
                OpKind::Softmax,
                OpKind::Reshape,
            ][usize::from(code - 1)];
            assert!(kind.is_built(), "{kind:?}");
        }
    }
    assert!(OpKind::Reshape.is_built(), "a reshape needs no kernel");
}

/// The seed CNN: Conv2D with its max pool fused, twice, Reshape, FullyConnected twice, Softmax.
#[test]
fn the_seed_cnn_loads_and_runs_exactly_when_its_ops_are_built() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/seed_cnn.fxn");
    let bytes = Aligned::new(&std::fs::read(path).unwrap());
    let loaded = Model::from_bytes(bytes.bytes());
    // Its convolutions are fused with their pools: they need only `op-conv2d-pool`, and the
    // pools no `op-max-pool`.
    let missing = if cfg!(feature = "op-conv2d-pool") {
        first_missing(&[OpKind::FullyConnected, OpKind::Softmax])
    } else {
        Some(Error::UnknownOp(OpKind::Conv2d as u8))
    };
    match missing {
        Some(e) => assert_eq!(loaded.unwrap_err(), e),
        None => {
            let model = loaded.unwrap();
            let mut arena = vec![0u8; model.arena_size()];
            let mut interp = Interpreter::new(&model, &mut arena).unwrap();
            interp.set_input_grey(&[0u8; 784]).unwrap();
            interp.invoke().unwrap();
            assert_eq!(interp.output().len(), 10);
        }
    }
}

/// A convolution and a max pool that are not fused need `op-conv2d` and `op-max-pool`, in
/// the writer's checks and the parser's.
#[test]
fn an_unfused_max_pool_needs_its_feature() {
    let data = SmallModelData::new();
    let builder = data.builder();
    let kinds = [
        OpKind::Conv2d,
        OpKind::MaxPool,
        OpKind::FullyConnected,
        OpKind::Softmax,
    ];
    match first_missing(&kinds) {
        Some(e) => {
            let mut out = vec![0u8; builder.encoded_len().unwrap()];
            assert_eq!(builder.write(&mut out).unwrap_err(), e);
        }
        None => {
            let bytes = Aligned::new(&data.encode());
            let model = Model::from_bytes(bytes.bytes()).unwrap();
            let mut arena = vec![0u8; model.arena_size()];
            let mut interp = Interpreter::new(&model, &mut arena).unwrap();
            interp.invoke().unwrap();
        }
    }
}

/// The seed CNN's bytes with op `index`'s kind byte replaced by `kind` (its record is then
/// wrong for that kind; only the kind is read before a build without it refuses the op).
fn seed_with_kind(index: usize, kind: OpKind) -> Aligned {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/seed_cnn.fxn");
    let mut bytes = std::fs::read(path).unwrap();
    let tensors = usize::from(u16::from_le_bytes([bytes[16], bytes[17]]));
    let record = fixnet::format::HEADER_LEN
        + tensors * fixnet::format::TENSOR_RECORD_LEN
        + index * fixnet::format::OP_RECORD_LEN;
    bytes[record] = kind as u8;
    Aligned::new(&bytes)
}

/// A build without an op's feature refuses its record with `Error::UnknownOp` before
/// decoding anything else of it (the decoder is not even linked), whatever the record holds.
#[test]
fn an_op_whose_feature_is_off_is_refused_by_its_kind_alone() {
    let kinds = [
        OpKind::DepthwiseConv2d,
        OpKind::AvgPool,
        OpKind::Add,
        OpKind::Lookup,
        OpKind::Mean,
        OpKind::Pad,
        OpKind::Concatenation,
        OpKind::Mul,
    ];
    for kind in kinds {
        // The softmax, the last op: a record of the softmax's fields under another kind.
        let bytes = seed_with_kind(7, kind);
        let err = Model::from_bytes_unchecked_crc(bytes.bytes()).unwrap_err();
        if !kind.is_built() {
            assert_eq!(err, Error::UnknownOp(kind as u8), "{kind:?}");
        } else {
            // Built: the record is decoded and found wrong for the kind.
            assert_ne!(err, Error::UnknownOp(kind as u8), "{kind:?}");
        }
    }
}

/// Format versions 1 and 2 are read only with `legacy-format`: without it the oldest
/// version read is 3 and an older header is refused as such.
#[test]
fn older_format_versions_need_legacy_format() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/seed_cnn.fxn");
    let mut bytes = std::fs::read(path).unwrap();
    assert_eq!(u16::from_le_bytes([bytes[4], bytes[5]]), 3);
    let expected_min = if cfg!(feature = "legacy-format") {
        1
    } else {
        3
    };
    assert_eq!(fixnet::format::MIN_VERSION, expected_min);
    for version in [1u16, 2] {
        bytes[4..6].copy_from_slice(&version.to_le_bytes());
        let err = Model::from_bytes_unchecked_crc(Aligned::new(&bytes).bytes()).unwrap_err();
        if cfg!(feature = "legacy-format") {
            // Read as an old model, and refused for the lifetimes only version 3 stores.
            assert_eq!(err, Error::BadHeader, "version {version}");
        } else {
            assert_eq!(err, Error::UnsupportedVersion(version));
        }
    }
}
