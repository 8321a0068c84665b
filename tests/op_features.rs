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
