//! float32 kernels against hand-computed results.

use fixnet::float::{self, Activation};
use fixnet::{Error, Padding, Shape, Window};

fn close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 * w.abs().max(1.0),
            "element {i}: {g} vs {w}"
        );
    }
}

fn window(padding: Padding, input: Shape, k: usize, stride: usize) -> (Window, Shape) {
    let (w, oh, ow) = Window::new(padding, input, k, k, stride, stride).unwrap();
    (w, Shape::new(oh, ow, input.channels))
}

#[test]
fn conv2d_same_padding_and_activations() {
    // 3×3 input 1..9, one 3×3 filter with centre 1 and right neighbour 0.5, SAME stride 1:
    // out = x[i][j] + 0.5·x[i][j+1] (the neighbour is padding in the last column), bias −6.
    //   row 0: 1+1−6 = −4, 2+1.5−6 = −2.5, 3−6 = −3
    //   row 1: 4+2.5−6 = 0.5, 5+3−6 = 2, 6−6 = 0
    //   row 2: 7+4−6 = 5, 8+4.5−6 = 6.5, 9−6 = 3
    let input: Vec<f32> = (1..=9).map(|x| x as f32).collect();
    let filter = [0.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.0, 0.0, 0.0];
    let (w, out_shape) = window(Padding::Same, Shape::new(3, 3, 1), 3, 1);
    let mut out = [0f32; 9];
    let run = |act, out: &mut [f32]| {
        float::conv2d(
            &input,
            Shape::new(3, 3, 1),
            &filter,
            &[-6.0],
            &w,
            act,
            out,
            out_shape,
        )
    };
    run(Activation::None, &mut out).unwrap();
    close(&out, &[-4.0, -2.5, -3.0, 0.5, 2.0, 0.0, 5.0, 6.5, 3.0]);
    run(Activation::Relu, &mut out).unwrap();
    close(&out, &[0.0, 0.0, 0.0, 0.5, 2.0, 0.0, 5.0, 6.5, 3.0]);
    run(Activation::Relu6, &mut out).unwrap();
    close(&out, &[0.0, 0.0, 0.0, 0.5, 2.0, 0.0, 5.0, 6.0, 3.0]);
}

#[test]
fn conv2d_two_in_two_out_channels_stride_2() {
    // 4×4×2 input: channel 0 = 1, channel 1 = pixel index (0..16). 2×2 VALID stride 2, two
    // filters: f0 sums channel 0 (→ 4), f1 sums channel 1 (→ window index sums).
    //   windows: {0,1,4,5} = 10, {2,3,6,7} = 18, {8,9,12,13} = 42, {10,11,14,15} = 50.
    let mut input = Vec::new();
    for i in 0..16 {
        input.extend_from_slice(&[1.0f32, i as f32]);
    }
    let f0 = [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0];
    let f1 = [0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0];
    let filter: Vec<f32> = f0.iter().chain(&f1).copied().collect();
    let (w, _) = window(Padding::Valid, Shape::new(4, 4, 2), 2, 2);
    let mut out = [0f32; 8];
    float::conv2d(
        &input,
        Shape::new(4, 4, 2),
        &filter,
        &[],
        &w,
        Activation::None,
        &mut out,
        Shape::new(2, 2, 2),
    )
    .unwrap();
    close(&out, &[4.0, 10.0, 4.0, 18.0, 4.0, 42.0, 4.0, 50.0]);
}

#[test]
fn depthwise_multiplier_2() {
    // 1×2 input, channels [a, b] = [1, 2], [3, 4]; 1×2 kernel, VALID, depth multiplier 2:
    //   c0 = a·w: weights [1, 1] → 1+3 = 4
    //   c1 = a·w: weights [2, −1] → 2−3 = −1
    //   c2 = b·w: weights [0.5, 0.5] → 3
    //   c3 = b·w: weights [0, 1] → 4, bias +1 → 5
    // Filter is tap-major: tap 0 = [1, 2, 0.5, 0], tap 1 = [1, −1, 0.5, 1].
    let (w, _) = window(Padding::Valid, Shape::new(1, 2, 2), 1, 1);
    let w = Window { kernel_w: 2, ..w };
    let mut out = [0f32; 4];
    float::depthwise_conv2d(
        &[1.0, 2.0, 3.0, 4.0],
        Shape::new(1, 2, 2),
        &[1.0, 2.0, 0.5, 0.0, 1.0, -1.0, 0.5, 1.0],
        &[0.0, 0.0, 0.0, 1.0],
        &w,
        2,
        Activation::None,
        &mut out,
        Shape::new(1, 1, 4),
    )
    .unwrap();
    close(&out, &[4.0, -1.0, 3.0, 5.0]);
}

#[test]
fn fully_connected_example() {
    // [1, 2, 3] · [[1, 0, −1], [0.5, 0.5, 0.5]] + [0.5, −4] = [−1.5, −1]; ReLU → [0, 0].
    let mut out = [0f32; 2];
    let w = [1.0, 0.0, -1.0, 0.5, 0.5, 0.5];
    float::fully_connected(
        &[1.0, 2.0, 3.0],
        &w,
        &[0.5, -4.0],
        Activation::None,
        &mut out,
    )
    .unwrap();
    close(&out, &[-1.5, -1.0]);
    float::fully_connected(
        &[1.0, 2.0, 3.0],
        &w,
        &[0.5, -4.0],
        Activation::Relu,
        &mut out,
    )
    .unwrap();
    close(&out, &[0.0, 0.0]);
    float::fully_connected(&[1.0, 2.0, 3.0], &w, &[], Activation::None, &mut out).unwrap();
    close(&out, &[-2.0, 3.0]);
    assert_eq!(
        float::fully_connected(&[1.0], &w, &[], Activation::None, &mut out),
        Err(Error::ShapeMismatch)
    );
}

#[test]
fn pools_divide_by_valid_taps_only() {
    // 3×3 input 1..9, 3×3 SAME stride 2: output 2×2, total padding 1·2 + 3 − 3 = 2, one
    // before. Windows (rows × cols inside the input):
    //   (0,0): rows 0–1 × cols 0–1 = 1,2,4,5 → mean 3, max 5
    //   (0,1): rows 0–1 × cols 1–2 = 2,3,5,6 → mean 4, max 6
    //   (1,0): rows 1–2 × cols 0–1 = 4,5,7,8 → mean 6, max 8
    //   (1,1): rows 1–2 × cols 1–2 = 5,6,8,9 → mean 7, max 9
    let input: Vec<f32> = (1..=9).map(|x| x as f32).collect();
    let (w, out_shape) = window(Padding::Same, Shape::new(3, 3, 1), 3, 2);
    assert_eq!((w.pad_top, out_shape.height), (1, 2));
    let mut out = [0f32; 4];
    float::avg_pool(
        &input,
        Shape::new(3, 3, 1),
        &w,
        Activation::None,
        &mut out,
        out_shape,
    )
    .unwrap();
    close(&out, &[3.0, 4.0, 6.0, 7.0]);
    float::max_pool(
        &input,
        Shape::new(3, 3, 1),
        &w,
        Activation::None,
        &mut out,
        out_shape,
    )
    .unwrap();
    close(&out, &[5.0, 6.0, 8.0, 9.0]);
    float::max_pool(
        &input,
        Shape::new(3, 3, 1),
        &w,
        Activation::Relu6,
        &mut out,
        out_shape,
    )
    .unwrap();
    close(&out, &[5.0, 6.0, 6.0, 6.0]);

    // Max never picks the padding, even when every value is negative.
    let neg: Vec<f32> = input.iter().map(|x| -x).collect();
    float::max_pool(
        &neg,
        Shape::new(3, 3, 1),
        &w,
        Activation::None,
        &mut out,
        out_shape,
    )
    .unwrap();
    close(&out, &[-1.0, -2.0, -4.0, -5.0]);

    let lost = Window { pad_top: 9, ..w };
    assert_eq!(
        float::avg_pool(
            &input,
            Shape::new(3, 3, 1),
            &lost,
            Activation::None,
            &mut out,
            out_shape
        ),
        Err(Error::InvalidParameter)
    );
}

#[test]
fn softmax_examples() {
    // [0, ln 3] → e^0 : 3 = [0.25, 0.75].
    let mut out = [0f32; 2];
    float::softmax(&[0.0, 3f32.ln()], 2, 1.0, &mut out).unwrap();
    close(&out, &[0.25, 0.75]);
    // beta 2 on [0, ln 3 / 2] gives the same.
    float::softmax(&[0.0, 3f32.ln() / 2.0], 2, 2.0, &mut out).unwrap();
    close(&out, &[0.25, 0.75]);
    // Huge inputs do not overflow: the max is subtracted first.
    float::softmax(&[1000.0, 1000.0], 2, 1.0, &mut out).unwrap();
    close(&out, &[0.5, 0.5]);
    // Two rows of two.
    let mut out4 = [0f32; 4];
    float::softmax(&[5.0, 5.0, -1e9, 0.0], 2, 1.0, &mut out4).unwrap();
    close(&out4, &[0.5, 0.5, 0.0, 1.0]);
    assert_eq!(
        float::softmax(&[0.0; 3], 2, 1.0, &mut [0.0; 3]),
        Err(Error::ShapeMismatch)
    );
    assert_eq!(
        float::softmax(&[0.0; 3], 0, 1.0, &mut [0.0; 3]),
        Err(Error::InvalidParameter)
    );
}
