//! A real multi-layer model (the trained strided CNN: Conv2D stride 2, DepthwiseConv2D, AvgPool,
//! Conv2D fused with MaxPool, Reshape, FullyConnected, Softmax), converted from its int8
//! .tflite, survives every damage a flash or a transfer can do to it: every truncation and
//! every single-byte corruption is rejected with an error; and with the CRC check skipped,
//! every corruption of its header, tables and parameters is either rejected by the structural
//! checks or runs without a panic.

use fixnet::format::crc32::crc32;
use fixnet::{Error, Interpreter, Model};
use fixnet_tools::fxn::ModelBytes;
use fixnet_tools::{idx, lower, tflite};
use std::path::Path;

fn real_model() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models/strided_cnn_int8.tflite");
    let graph = tflite::import(&std::fs::read(path).unwrap()).unwrap();
    lower::lower(&graph).unwrap()
}

fn first_digit() -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist/test-images-idx3-ubyte.gz");
    idx::read_images(&path).unwrap().image(0).to_vec()
}

#[test]
fn every_truncation_and_every_byte_corruption_is_rejected() {
    let good = real_model();
    assert!(
        good.len() > 10_000,
        "a real model, not a toy: {} bytes",
        good.len()
    );
    assert!(ModelBytes::new(&good).model().is_ok());
    for len in 0..good.len() {
        let cut = ModelBytes::new(&good[..len]);
        assert_eq!(
            Model::from_bytes(cut.as_bytes()).unwrap_err(),
            Error::Truncated,
            "length {len}"
        );
    }
    // The CRC runs over everything but itself, so flip each byte and let the parser find it.
    let mut rejected = 0;
    for at in 0..good.len() {
        let mut bytes = good.clone();
        bytes[at] ^= 0x5A;
        let bad = ModelBytes::new(&bytes);
        assert!(
            Model::from_bytes(bad.as_bytes()).is_err(),
            "byte {at} accepted"
        );
        rejected += 1;
    }
    println!(
        "{} truncations and {rejected} single-byte corruptions of a {}-byte model rejected",
        good.len(),
        good.len()
    );
}

#[test]
fn corruption_past_the_crc_is_rejected_or_runs_safely() {
    let good = real_model();
    let model = ModelBytes::new(&good);
    let parsed = model.model().unwrap();
    // Everything before the first constant: header, tensor and op tables.
    let tables_end = (0..parsed.tensor_count() as u16)
        .filter_map(|i| parsed.tensor(i).ok()?.data.map(|d| d.as_ptr() as usize))
        .min()
        .unwrap()
        - model.as_bytes().as_ptr() as usize;
    let digit = first_digit();
    let (mut rejected, mut ran) = (0, 0);
    for at in 0..tables_end {
        for value in [0x00u8, 0x01, 0x7F, 0x80, 0xFF, good[at].wrapping_add(1)] {
            if value == good[at] {
                continue;
            }
            let mut bytes = good.clone();
            bytes[at] = value;
            let n = bytes.len();
            let crc = crc32(&bytes[..n - 4]);
            bytes[n - 4..].copy_from_slice(&crc.to_le_bytes());
            let stored = ModelBytes::new(&bytes);
            match Model::from_bytes(stored.as_bytes()) {
                Err(_) => rejected += 1,
                Ok(m) => {
                    ran += 1;
                    let mut arena = vec![0u8; m.arena_size().min(1 << 20)];
                    if let Ok(mut interp) = Interpreter::new(&m, &mut arena) {
                        let _ = interp.set_input_grey(&digit);
                        let _ = interp.invoke();
                        let _ = interp.top1();
                    }
                }
            }
        }
    }
    println!("{tables_end} bytes of header and tables: {rejected} corruptions rejected, {ran} ran");
    assert!(rejected > 0);
}
