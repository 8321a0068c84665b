//! Float rewrites that remove Keras layers fixnet has no op for: BatchNormalization folded
//! into the weights of the layer before it, and a ZeroPadding2D folded into the padding of
//! the convolution after it.

use super::model::FloatOp;
use fixnet::float::Activation;

/// Inference-time BatchNormalization as a per-channel affine map `y = x · mul + add`, where
/// `mul = gamma / sqrt(variance + epsilon)` and `add = beta − mean · mul`.
///
/// Computed in f64 and rounded once, so the fold is as exact as float32 weights allow.
pub(super) fn batch_norm_affine(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    variance: &[f32],
    epsilon: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mul: Vec<f64> = gamma
        .iter()
        .zip(variance)
        .map(|(&g, &v)| f64::from(g) / (f64::from(v) + epsilon).sqrt())
        .collect();
    let add = beta
        .iter()
        .zip(mean)
        .zip(&mul)
        .map(|((&b, &m), &k)| f64::from(b) - f64::from(m) * k)
        .collect();
    (mul, add)
}

/// Folds `y = x · mul + add` (per output channel) into a convolution, depthwise convolution
/// or Dense op that has no activation of its own: each output channel's weights are scaled by
/// `mul` and its bias becomes `bias · mul + add`. Returns false (and changes nothing) for any
/// other op, a fused activation, or a channel count that does not match.
pub(super) fn fold_affine(op: &mut FloatOp, mul: &[f64], add: &[f64]) -> bool {
    let (filter, bias, act) = match op {
        FloatOp::Conv2d {
            filter, bias, act, ..
        }
        | FloatOp::DepthwiseConv2d {
            filter, bias, act, ..
        }
        | FloatOp::Dense { filter, bias, act } => (filter, bias, *act),
        _ => return false,
    };
    let channels = bias.len();
    if act != Activation::None
        || channels == 0
        || mul.len() != channels
        || add.len() != channels
        || filter.len() % channels != 0
    {
        return false;
    }
    // OHWI and [outputs, inputs] keep each output channel's weights together; a depthwise
    // filter [1, KH, KW, C·M] has the output channel innermost.
    let per_channel = filter.len() / channels;
    let depthwise = matches!(op, FloatOp::DepthwiseConv2d { .. });
    let (FloatOp::Conv2d { filter, bias, .. }
    | FloatOp::DepthwiseConv2d { filter, bias, .. }
    | FloatOp::Dense { filter, bias, .. }) = op
    else {
        return false;
    };
    for (i, w) in filter.iter_mut().enumerate() {
        let c = if depthwise {
            i % channels
        } else {
            i / per_channel
        };
        *w = (f64::from(*w) * mul[c]) as f32;
    }
    for (c, b) in bias.iter_mut().enumerate() {
        *b = (f64::from(*b) * mul[c] + add[c]) as f32;
    }
    true
}

/// The `(before, after)` padding TFLite's SAME scheme adds along one axis: the total is
/// what makes `ceil(input / stride)` outputs, and the odd pixel goes after (bottom / right).
pub(super) fn same_padding(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let stride = stride.max(1);
    let output = input.div_ceil(stride);
    let needed = output
        .saturating_sub(1)
        .saturating_mul(stride)
        .saturating_add(kernel);
    let total = needed.saturating_sub(input);
    (total / 2, total - total / 2)
}

/// True when the explicit `rows` / `cols` padding before a VALID convolution is exactly what
/// SAME padding adds on an `h × w` input, so the pair runs as one SAME convolution.
pub(super) fn padding_is_same(
    (h, w): (usize, usize),
    (kh, kw): (usize, usize),
    (sh, sw): (usize, usize),
    rows: (usize, usize),
    cols: (usize, usize),
) -> bool {
    same_padding(h, kh, sh) == rows && same_padding(w, kw, sw) == cols
}

#[cfg(test)]
mod tests {
    use super::*;
    use fixnet::Padding;

    #[test]
    fn batch_norm_affine_by_hand() {
        // gamma 2, var 3, eps 1: mul = 2 / sqrt(4) = 1; add = beta − mean · 1 = 0.5 − 4.
        // gamma 3, var 8, eps 1: mul = 3 / 3 = 1; gamma 6, var 0, eps 0.25: mul = 6 / 0.5 = 12.
        let (mul, add) =
            batch_norm_affine(&[2.0, 6.0], &[0.5, -1.0], &[4.0, 0.25], &[3.0, 0.0], 0.25);
        // First channel: 2 / sqrt(3.25) is not round; check the identity instead.
        assert!((mul[0] - 2.0 / 3.25f64.sqrt()).abs() < 1e-15);
        assert_eq!(mul[1], 12.0);
        assert_eq!(add[1], -1.0 - 0.25 * 12.0);
        let (mul, add) = batch_norm_affine(&[2.0], &[0.5], &[4.0], &[3.0], 1.0);
        assert_eq!((mul[0], add[0]), (1.0, -3.5));
    }

    #[test]
    fn folding_into_a_conv_scales_each_output_channel() {
        // Two output channels, 1x1 kernel, two inputs: OHWI rows [1, 2] and [3, 4].
        let mut op = FloatOp::Conv2d {
            filter: vec![1.0, 2.0, 3.0, 4.0],
            bias: vec![0.5, -1.0],
            kernel_h: 1,
            kernel_w: 1,
            stride_h: 1,
            stride_w: 1,
            padding: Padding::Valid,
            act: Activation::None,
        };
        // BN: gamma [4, 1], beta [1, 0], mean [0.25, 2], var [3, 0.5625], eps 1
        // → mul = [4 / 2, 1 / 1.25] = [2, 0.8], add = [1 − 0.5, 0 − 1.6] = [0.5, −1.6].
        let (mul, add) =
            batch_norm_affine(&[4.0, 1.0], &[1.0, 0.0], &[0.25, 2.0], &[3.0, 0.5625], 1.0);
        assert_eq!(mul, vec![2.0, 0.8]);
        assert!(fold_affine(&mut op, &mul, &add));
        let FloatOp::Conv2d { filter, bias, .. } = &op else {
            unreachable!()
        };
        assert_eq!(filter, &vec![2.0, 4.0, 2.4, 3.2]);
        // bias' = bias · mul + add = [0.5 · 2 + 0.5, −1 · 0.8 − 1.6].
        assert_eq!(bias, &vec![1.5, -2.4]);
    }

    #[test]
    fn folding_into_depthwise_and_dense_uses_their_layouts() {
        // Depthwise [1, 1, 2, 2]: channel innermost, so values alternate channels.
        let mut dw = FloatOp::DepthwiseConv2d {
            filter: vec![1.0, 1.0, 2.0, 2.0],
            bias: vec![0.0, 0.0],
            kernel_h: 1,
            kernel_w: 2,
            stride_h: 1,
            stride_w: 1,
            padding: Padding::Valid,
            depth_multiplier: 1,
            act: Activation::None,
        };
        assert!(fold_affine(&mut dw, &[3.0, -1.0], &[1.0, 2.0]));
        let FloatOp::DepthwiseConv2d { filter, bias, .. } = &dw else {
            unreachable!()
        };
        assert_eq!(filter, &vec![3.0, -1.0, 6.0, -2.0]);
        assert_eq!(bias, &vec![1.0, 2.0]);
        // Dense [outputs = 2, inputs = 3]: rows are output channels.
        let mut dense = FloatOp::Dense {
            filter: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            bias: vec![1.0, 1.0],
            act: Activation::None,
        };
        assert!(fold_affine(&mut dense, &[2.0, 0.5], &[0.0, -0.5]));
        let FloatOp::Dense { filter, bias, .. } = &dense else {
            unreachable!()
        };
        assert_eq!(filter, &vec![2.0, 4.0, 6.0, 2.0, 2.5, 3.0]);
        assert_eq!(bias, &vec![2.0, 0.0]);
    }

    #[test]
    fn no_fold_through_an_activation_or_into_other_ops() {
        let mut relu = FloatOp::Dense {
            filter: vec![1.0],
            bias: vec![0.0],
            act: Activation::Relu,
        };
        assert!(!fold_affine(&mut relu, &[2.0], &[1.0]));
        assert_eq!(
            relu,
            FloatOp::Dense {
                filter: vec![1.0],
                bias: vec![0.0],
                act: Activation::Relu
            }
        );
        assert!(!fold_affine(&mut FloatOp::Softmax, &[2.0], &[1.0]));
    }

    #[test]
    fn same_padding_puts_the_odd_pixel_after() {
        // 3x3 stride 2 on 96: 48 outputs need 47·2 + 3 = 97 rows, one pad, at the bottom.
        assert_eq!(same_padding(96, 3, 2), (0, 1));
        // On 95: 48 outputs, 97 − 95 = 2, one each side.
        assert_eq!(same_padding(95, 3, 2), (1, 1));
        // 3x3 stride 1: one each side; 1x1: none; 4x4 stride 1: 3 → (1, 2).
        assert_eq!(same_padding(10, 3, 1), (1, 1));
        assert_eq!(same_padding(10, 1, 1), (0, 0));
        assert_eq!(same_padding(10, 4, 1), (1, 2));
        // The core's own SAME arithmetic agrees on the leading side.
        for (n, k, s) in [(96, 3, 2), (95, 3, 2), (10, 4, 1), (7, 5, 3)] {
            let out = Padding::Same.output_size(n, k, s).unwrap();
            assert_eq!(same_padding(n, k, s).0, Padding::Same.before(n, k, s, out));
        }
    }

    #[test]
    fn zero_padding_fold_rule() {
        // MobileNet's ((0, 1), (0, 1)) before a 3x3 stride-2 conv on an even input folds.
        assert!(padding_is_same((96, 96), (3, 3), (2, 2), (0, 1), (0, 1)));
        // The same padding on the other side, or on an odd input, does not.
        assert!(!padding_is_same((96, 96), (3, 3), (2, 2), (1, 0), (1, 0)));
        assert!(!padding_is_same((95, 95), (3, 3), (2, 2), (0, 1), (0, 1)));
        // ((1, 1), (1, 1)) before a 3x3 stride-1 conv folds; before a 1x1 conv it does not.
        assert!(padding_is_same((8, 8), (3, 3), (1, 1), (1, 1), (1, 1)));
        assert!(!padding_is_same((8, 8), (1, 1), (1, 1), (1, 1), (1, 1)));
    }
}
