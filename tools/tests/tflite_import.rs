//! The `.tflite` importer on crafted models: what it reads, what it rejects, and that no
//! malformed file makes it panic.

mod support;

use fixnet_tools::ir::{Activation, Layer, Padding};
use fixnet_tools::{fxn::ModelBytes, lower, tflite};
use support::{exp_model, small_model, tflite as write_tflite, F, O, T};

#[test]
fn imports_a_small_model_layer_by_layer() {
    let g = tflite::import(&small_model()).unwrap();
    let names: Vec<&str> = g.layers.iter().map(Layer::name).collect();
    assert_eq!(
        names,
        [
            "CONV_2D",
            "MAX_POOL_2D",
            "RESHAPE",
            "FULLY_CONNECTED",
            "SOFTMAX"
        ]
    );
    match &g.layers[0] {
        Layer::Conv2d(c) => {
            assert_eq!(c.filter.shape, vec![2, 3, 3, 1]);
            assert_eq!(c.filter.scales, vec![0.01, 0.02]);
            assert_eq!(c.bias, vec![100, -50]);
            assert_eq!((c.padding, c.stride_h, c.stride_w), (Padding::Valid, 1, 1));
            assert_eq!(c.activation, Activation::Relu);
        }
        other => panic!("{other:?}"),
    }
    match &g.layers[3] {
        Layer::FullyConnected(f) => {
            assert!(f.weights.is_per_tensor());
            assert_eq!(f.bias, vec![10, 0, -10]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(g.layers[4], Layer::Softmax { beta, .. } if beta == 1.0));
    assert_eq!(g.tensors[g.output].shape, vec![1, 3]);

    // It lowers to a model the core accepts and runs.
    let bytes = ModelBytes::new(&lower::lower(&g).unwrap());
    let model = bytes.model().unwrap();
    assert_eq!(model.op_count(), 5);
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = fixnet::Interpreter::new(&model, &mut arena).unwrap();
    let pixels: Vec<u8> = (0..36).map(|i| (i * 37 % 256) as u8).collect();
    interp.set_input_grey(&pixels).unwrap();
    interp.invoke().unwrap();
    let total: i32 = interp.output().iter().map(|&q| i32::from(q) + 128).sum();
    assert!((250..=262).contains(&total), "softmax sums to {total}/256");
}

fn import_err(bytes: &[u8]) -> String {
    format!("{:#}", tflite::import(bytes).unwrap_err())
}

#[test]
fn names_the_unsupported_op_and_its_index() {
    let e = import_err(&exp_model());
    assert!(e.contains("op 0 (EXP)") && e.contains("unsupported"), "{e}");
}

#[test]
fn rejects_float_models() {
    let bytes =
        std::fs::read(support::root().join("tests/fixtures/models/mlp_float.tflite")).unwrap();
    let e = import_err(&bytes);
    assert!(e.contains("FLOAT32"), "{e}");
}

#[test]
fn rejects_dilation_and_unknown_activations() {
    let tensors = vec![
        T::act("in", &[1, 6, 6, 1], 0.1, 0),
        T::weights("w", &[1, 3, 3, 1], &[1; 9], &[0.1], 0),
        T::act("out", &[1, 2, 2, 1], 0.1, 0),
    ];
    let conv = |fields: Vec<F>| {
        vec![O {
            code: 3,
            inputs: vec![0, 1, -1],
            outputs: vec![2],
            options: Some((1, fields)),
        }]
    };
    let dilated = conv(vec![
        F::I8(0, 1),
        F::I32(1, 1),
        F::I32(2, 1),
        F::I32(4, 2),
        F::I32(5, 2),
    ]);
    let e = import_err(&write_tflite(&tensors, &dilated, 0, 2));
    assert!(
        e.contains("op 0 (CONV_2D)") && e.contains("dilation"),
        "{e}"
    );
    let tanh = conv(vec![F::I8(0, 1), F::I32(1, 1), F::I32(2, 1), F::I8(3, 4)]);
    let e = import_err(&write_tflite(&tensors, &tanh, 0, 2));
    assert!(e.contains("TANH"), "{e}");
    // Without a bias input, the bias is zero; a 3x3 VALID window over 6x6 gives 4x4, not 2x2.
    let plain = conv(vec![F::I8(0, 1), F::I32(1, 1), F::I32(2, 1)]);
    let e = import_err(&write_tflite(&tensors, &plain, 0, 2));
    assert!(e.contains("4x4") || e.contains("2x2"), "{e}");
}

#[test]
fn rejects_out_of_range_indices() {
    let tensors = vec![T::act("x", &[1, 4], 0.1, 0), T::act("y", &[1, 4], 0.1, 0)];
    let ops = vec![O {
        code: 22,
        inputs: vec![0, 99],
        outputs: vec![1],
        options: None,
    }];
    let e = import_err(&write_tflite(&tensors, &ops, 0, 1));
    assert!(e.contains("99"), "{e}");
    let e = import_err(&write_tflite(&tensors, &ops, 7, 1));
    assert!(e.contains('7'), "{e}");
}

#[test]
fn malformed_files_are_errors_not_panics() {
    assert!(tflite::import(&[]).is_err());
    assert!(tflite::import(b"TFL3").is_err());
    assert!(tflite::import(b"\x00\x00\x00\x00TFL3garbage").is_err());
    let small = small_model();
    let mlp = std::fs::read(support::root().join("tests/fixtures/models/mlp_int8.tflite")).unwrap();
    for model in [&small, &mlp] {
        // Every truncation of the small model, a spread of them for the fixture.
        let step = (model.len() / 400).max(1);
        for len in (0..model.len()).step_by(step) {
            let _ = tflite::import(&model[..len]);
        }
        // Single-byte corruptions across the whole file (the flatbuffer's offsets, vtables,
        // vector lengths and data alike).
        let mut state = 0x2545_f491_u32;
        for _ in 0..600 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let mut bad = model.clone();
            let at = state as usize % bad.len();
            bad[at] ^= (state >> 24) as u8 | 1;
            if let Ok(g) = tflite::import(&bad) {
                // Whatever survives import must lower cleanly or fail with an error.
                let _ = lower::lower(&g);
            }
        }
    }
}
