//! The exactness harness of the optimized convolution (`fast::conv2d_pool`) on the shapes
//! its chunking and blocking must get right: patches longer than one chunk (`CHUNK_TAPS`),
//! more output channels than one block (`BLOCK`), 1×1 pointwise convolutions of stride 1 and
//! 2, SAME and VALID padding, non-square kernels and strides, with or without a fused max
//! pool; every case against the reference `kernels::conv2d` (then `kernels::max_pool`), byte
//! for byte, with random zero points, per-channel multipliers (negative and positive
//! shifts), clamps and biases.
//!
//! On the host this runs the portable inner products; the Armv7E-M assembly is checked end to
//! end in QEMU (`tools/tests/qemu_bench.rs`, the benchmark's output checksums).

use fixnet::kernels::fast::{self, conv2d_pool::BLOCK, PoolWindow};
use fixnet::kernels::{self, Requantize};
use fixnet::quant::quantize_multiplier;
use fixnet::{Padding, Shape, Window};
use proptest::prelude::*;

/// Layer geometry: input `(h, w, c)`, kernel `(kh, kw)`, strides `(sh, sw)`, SAME or not,
/// output channels, and a max pool `(kh, kw, stride, same)` or none.
type Geometry = (
    (usize, usize, usize),
    (usize, usize),
    (usize, usize),
    bool,
    usize,
    Option<(usize, usize, usize, bool)>,
);

fn pool() -> impl Strategy<Value = Option<(usize, usize, usize, bool)>> {
    prop_oneof![
        Just(None),
        (1usize..=3, 1usize..=3, 1usize..=3, any::<bool>()).prop_map(Some),
    ]
}

fn geometry() -> impl Strategy<Value = Geometry> {
    prop_oneof![
        // Small layers of every kind.
        (
            (1usize..=7, 1usize..=7, 1usize..=9),
            (1usize..=5, 1usize..=5),
            (1usize..=3, 1usize..=3),
            any::<bool>(),
            1usize..=20,
            pool(),
        ),
        // 1×1 pointwise, stride 1 or 2, deep inputs and many outputs.
        (
            (1usize..=5, 1usize..=5, 1usize..=300),
            Just((1usize, 1usize)),
            prop_oneof![Just((1usize, 1usize)), Just((2, 2))],
            any::<bool>(),
            1usize..=140,
            pool(),
        ),
        // Long patches: several chunks, a partial last group.
        (
            (2usize..=5, 2usize..=5, 20usize..=90),
            (1usize..=3, 1usize..=4),
            (1usize..=2, 1usize..=2),
            any::<bool>(),
            1usize..=70,
            pool(),
        ),
        // More output channels than a block.
        (
            (1usize..=4, 1usize..=4, 1usize..=12),
            (1usize..=3, 1usize..=3),
            (1usize..=2, 1usize..=2),
            any::<bool>(),
            (BLOCK - 2)..=(2 * BLOCK + 9),
            pool(),
        ),
        // First layers: one to three input channels, tall kernels (keyword spotting's 10×4).
        (
            (4usize..=12, 3usize..=8, 1usize..=3),
            (1usize..=10, 1usize..=4),
            (1usize..=2, 1usize..=2),
            any::<bool>(),
            1usize..=66,
            pool(),
        ),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    input_shape: Shape,
    window: Window,
    conv_shape: Shape,
    pool: Option<(Window, Shape)>,
    seed: u64,
    /// Real multipliers as 2^exponent × [1, 2): exponents in `lo..=hi`.
    exponents: (i32, i32),
    input_zp: i32,
    output_zp: i32,
    act: (i8, i8),
    pool_act: (i8, i8),
    with_bias: bool,
}

fn act_range() -> impl Strategy<Value = (i8, i8)> {
    prop_oneof![
        Just((-128i8, 127i8)),
        (any::<i8>(), any::<i8>()).prop_map(|(a, b)| (a.min(b), a.max(b))),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (
        geometry(),
        any::<u64>(),
        prop_oneof![Just((-16, -6)), Just((-14, 1)), Just((-3, 2))],
        (-128i32..=127, -128i32..=127),
        (act_range(), act_range()),
        any::<bool>(),
    )
        .prop_filter_map(
            "window fits",
            |(g, seed, exponents, (input_zp, output_zp), (act, pool_act), with_bias)| {
                let ((h, w, c), (kh, kw), (sh, sw), same, oc, pool) = g;
                let input_shape = Shape::new(h, w, c);
                let padding = if same { Padding::Same } else { Padding::Valid };
                let (window, oh, ow) = Window::new(padding, input_shape, kh, kw, sh, sw).ok()?;
                if oh == 0 || ow == 0 {
                    return None;
                }
                let conv_shape = Shape::new(oh, ow, oc);
                let pool = match pool {
                    Some((pk, pk2, ps, psame)) => {
                        let pp = if psame { Padding::Same } else { Padding::Valid };
                        let (pw, poh, pow) = Window::new(pp, conv_shape, pk, pk2, ps, ps).ok()?;
                        if poh == 0 || pow == 0 {
                            return None;
                        }
                        Some((pw, Shape::new(poh, pow, oc)))
                    }
                    None => None,
                };
                Some(Case {
                    input_shape,
                    window,
                    conv_shape,
                    pool,
                    seed,
                    exponents,
                    input_zp,
                    output_zp,
                    act,
                    pool_act,
                    with_bias,
                })
            },
        )
}

/// xorshift64 from a seed.
fn stream(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

fn run(t: &Case) -> Result<(), TestCaseError> {
    let mut next = stream(t.seed);
    let taps = t.window.kernel_h * t.window.kernel_w * t.input_shape.channels;
    let oc = t.conv_shape.channels;
    let input: Vec<i8> = (0..t.input_shape.len()).map(|_| next() as i8).collect();
    let filter: Vec<i8> = (0..oc * taps).map(|_| next() as i8).collect();
    // Biases up to what a real layer's accumulators reach, sometimes absent.
    let bias: Vec<i32> = if t.with_bias {
        (0..oc)
            .map(|_| (next() % 200_001) as i32 - 100_000)
            .collect()
    } else {
        vec![]
    };
    let (lo, hi) = t.exponents;
    let span = (hi - lo + 1) as u64;
    let (m, s): (Vec<i32>, Vec<i32>) = (0..oc)
        .map(|_| {
            let e = lo + (next() % span) as i32;
            let frac = 1.0 + (next() % 1_000_000) as f64 / 1e6;
            quantize_multiplier(frac * 2f64.powi(e))
        })
        .unzip();
    let q = Requantize {
        input_offset: -t.input_zp,
        output_offset: t.output_zp,
        multipliers: &m,
        shifts: &s,
        act_min: t.act.0,
        act_max: t.act.1,
    };
    let mut conv = vec![0i8; t.conv_shape.len()];
    kernels::conv2d(
        &input,
        t.input_shape,
        &filter,
        &bias,
        &t.window,
        &q,
        &mut conv,
        t.conv_shape,
    )
    .unwrap();
    let (want, out_shape, pool) = match &t.pool {
        Some((pw, ps)) => {
            let (a, b) = t.pool_act;
            let mut pooled = vec![0i8; ps.len()];
            kernels::max_pool(&conv, t.conv_shape, pw, a, b, &mut pooled, *ps).unwrap();
            let pool = PoolWindow {
                window: *pw,
                conv_shape: t.conv_shape,
                act_min: a,
                act_max: b,
            };
            (pooled, *ps, Some(pool))
        }
        None => (conv, t.conv_shape, None),
    };
    let mut got = vec![0x55u8 as i8; out_shape.len()];
    fast::conv2d_pool(
        &input,
        t.input_shape,
        &filter,
        &bias,
        &t.window,
        &q,
        pool.as_ref(),
        &mut got,
        out_shape,
    )
    .unwrap();
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1200,
        max_global_rejects: 100_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn fast_conv_equals_reference(t in case()) {
        run(&t)?;
    }
}

/// The MLPerf Tiny layers the kernel must take whole: ResNet-8's 3×3×64 (576 taps, three
/// chunks), visual wake words' 1×1 with 256 inputs and outputs (four blocks), keyword
/// spotting's 10×4×1 stride-2 SAME first layer and 1×1×64 pointwise layers.
#[test]
fn mlperf_shapes() {
    let shapes = [
        // (input, kernel, stride, same, outputs)
        ((8, 8, 64), (3, 3), 1, true, 64),
        ((3, 3, 256), (1, 1), 1, true, 256),
        ((6, 6, 512), (1, 1), 1, true, 12),
        ((49, 10, 1), (10, 4), 2, true, 64),
        ((25, 5, 64), (1, 1), 1, true, 64),
        ((16, 16, 16), (1, 1), 2, false, 32),
    ];
    for (i, ((h, w, c), (kh, kw), st, same, oc)) in shapes.into_iter().enumerate() {
        let input_shape = Shape::new(h, w, c);
        let padding = if same { Padding::Same } else { Padding::Valid };
        let (window, oh, ow) = Window::new(padding, input_shape, kh, kw, st, st).unwrap();
        let t = Case {
            input_shape,
            window,
            conv_shape: Shape::new(oh, ow, oc),
            pool: None,
            seed: 0x5EED + i as u64,
            exponents: (-12, -8),
            input_zp: -128 + 37 * i as i32,
            output_zp: 5 - 20 * i as i32,
            act: (-128, 127),
            pool_act: (-128, 127),
            with_bias: true,
        };
        run(&t).unwrap();
    }
}
