//! The interpreter on a small model: outputs agree with running the kernels by hand, and an
//! overlay replaces weights without touching the model.

mod common;

use common::{Aligned, SmallModelData};
use fixnet::format::Op;
use fixnet::overlay::Overlay;
use fixnet::{Error, Interpreter, Model};

fn grey_image() -> Vec<u8> {
    (0..64u32).map(|i| (i * 37 % 256) as u8).collect()
}

#[test]
fn quantizes_grey_pixels_as_tflite_feeds_them() {
    let buf = Aligned::new(&SmallModelData::new().encode());
    let model = Model::from_bytes(buf.bytes()).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(&model, &mut arena).unwrap();
    let pixels = grey_image();
    interp.set_input_grey(&pixels).unwrap();
    let want: Vec<i8> = pixels.iter().map(|&p| (i16::from(p) - 128) as i8).collect();
    assert_eq!(interp.input(), &want[..]);
    assert_eq!(
        interp.set_input_grey(&pixels[1..]),
        Err(Error::ShapeMismatch)
    );
}

#[test]
fn softmax_output_is_a_distribution_and_top1_is_its_maximum() {
    let buf = Aligned::new(&SmallModelData::new().encode());
    let model = Model::from_bytes(buf.bytes()).unwrap();
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(&model, &mut arena).unwrap();
    interp.set_input_grey(&grey_image()).unwrap();
    interp.invoke().unwrap();
    let total: f32 = (0..10).map(|i| interp.output_real(i).unwrap()).sum();
    assert!((total - 1.0).abs() < 0.05, "probabilities sum to {total}");
    let (class, score) = interp.top1();
    assert_eq!(score, *interp.output().iter().max().unwrap());
    assert_eq!(interp.output()[class], score);
}

#[test]
fn overlay_replaces_weights_and_is_checked() {
    let buf = Aligned::new(&SmallModelData::new().encode());
    let model = Model::from_bytes(buf.bytes()).unwrap();
    let Op::FullyConnected(fc) = model.op(3).unwrap() else {
        panic!("op 3 is the fully connected layer")
    };
    let mut arena = vec![0u8; model.arena_size()];
    let run = |overlay: Overlay<'_>, arena: &mut [u8]| -> Vec<i8> {
        let mut interp = Interpreter::with_overlay(&model, arena, overlay).unwrap();
        interp.set_input_grey(&grey_image()).unwrap();
        interp.invoke().unwrap();
        interp.output().to_vec()
    };
    let base = run(Overlay::new(), &mut arena);

    // A bias that strongly favours class 7 (and disfavours the rest) must make it win.
    let mut bias = model.tensor(fc.bias).unwrap().data_i32().unwrap().to_vec();
    for (c, b) in bias.iter_mut().enumerate() {
        *b += if c == 7 { 1_000_000 } else { -1_000_000 };
    }
    let mut overlay = Overlay::new();
    overlay.set_int32(fc.bias, &bias).unwrap();
    let favoured = run(overlay, &mut arena);
    assert_ne!(base, favoured);
    assert_eq!(fixnet::interpreter::top1(&favoured).0, 7);

    // The same weights through the overlay give the same outputs as the flash copy.
    let weights = model.tensor(fc.filter).unwrap().data_i8().unwrap().to_vec();
    let mut overlay = Overlay::new();
    overlay.set_int8(fc.filter, &weights).unwrap();
    assert_eq!(run(overlay, &mut arena), base);

    let short = vec![0i32; 3];
    let mut overlay = Overlay::new();
    overlay.set_int32(fc.bias, &short).unwrap();
    assert_eq!(
        Interpreter::with_overlay(&model, &mut arena, overlay).err(),
        Some(Error::ShapeMismatch)
    );
    let mut overlay = Overlay::new();
    overlay.set_int8(fc.bias, &weights).unwrap();
    assert_eq!(
        Interpreter::with_overlay(&model, &mut arena, overlay).err(),
        Some(Error::BadTensorIndex(fc.bias))
    );
}
