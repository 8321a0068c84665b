//! float32 twins of ADD, MEAN, PAD, CONCATENATION, QUANTIZE and DEQUANTIZE against
//! hand-computed results.

use fixnet::float::{self, Activation};
use fixnet::{Error, Shape};

#[test]
fn add_same_shape_and_broadcast_with_activations() {
    let a = [1.5, -2.0, 0.25, 7.0];
    let b = [1.0, 1.0, -0.5, 0.5];
    let mut out = [0f32; 4];
    float::add(&a, &b, Activation::None, &mut out).unwrap();
    assert_eq!(out, [2.5, -1.0, -0.25, 7.5]);
    float::add(&a, &b, Activation::Relu, &mut out).unwrap();
    assert_eq!(out, [2.5, 0.0, 0.0, 7.5]);
    float::add(&a, &b, Activation::Relu6, &mut out).unwrap();
    assert_eq!(out, [2.5, 0.0, 0.0, 6.0]);
    // a as 1×2×1×2 plus a per-channel [10, 20]: [11.5, 18, 10.25, 27].
    float::broadcast_add(
        &a,
        &[1, 2, 1, 2],
        &[10.0, 20.0],
        &[1, 1, 1, 2],
        Activation::None,
        &mut out,
        &[1, 2, 1, 2],
    )
    .unwrap();
    assert_eq!(out, [11.5, 18.0, 10.25, 27.0]);
    assert_eq!(
        float::add(&a, &b[..3], Activation::None, &mut out),
        Err(Error::ShapeMismatch)
    );
}

#[test]
fn mean_over_height_and_width() {
    // 2×3×2: channel 0 holds 1..=6 (mean 3.5), channel 1 holds −1, −2, …, −6 (mean −3.5).
    let input = [
        1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 4.0, -4.0, 5.0, -5.0, 6.0, -6.0,
    ];
    let mut out = [0f32; 2];
    float::mean_hw(&input, Shape::new(2, 3, 2), &mut out).unwrap();
    assert_eq!(out, [3.5, -3.5]);
    assert_eq!(
        float::mean_hw(&input, Shape::new(3, 3, 2), &mut out),
        Err(Error::ShapeMismatch)
    );
}

#[test]
fn pad_and_concatenation_move_floats() {
    // 1×1×2×1 [1.5, −2] padded by one column each side: [0, 1.5, −2, 0].
    let mut out = [9f32; 4];
    float::pad(
        &[1.5, -2.0],
        &[1, 1, 2, 1],
        &[[0, 0], [0, 0], [1, 1], [0, 0]],
        &mut out,
        &[1, 1, 4, 1],
    )
    .unwrap();
    assert_eq!(out, [0.0, 1.5, -2.0, 0.0]);
    // Pixels with channels [1, 2] and [10, 20], each gaining a third channel from [3, 30].
    let mut out = [0f32; 6];
    float::concatenation(
        &[&[1.0, 2.0, 10.0, 20.0], &[3.0, 30.0]],
        &[[1, 1, 2, 2], [1, 1, 2, 1]],
        3,
        &mut out,
        &[1, 1, 2, 3],
    )
    .unwrap();
    assert_eq!(out, [1.0, 2.0, 3.0, 10.0, 20.0, 30.0]);
}
