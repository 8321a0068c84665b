//! Runs a validated model in one caller-provided arena.

use crate::format::{AddOp, ConcatOp, ConvOp, Model, MulOp, Op, OpKind, Tensor, TensorId};
use crate::kernels::add::AddParams;
use crate::kernels::fast::{self, FcRequant, PoolWindow};
use crate::kernels::{self, dispatch, span_mut, FloatRequantize, Requantize};
use crate::overlay::Overlay;
use crate::{Error, Window};

/// Runs a [`Model`] with activations in a caller-provided arena.
///
/// The arena must hold at least [`Model::arena_size`] bytes; nothing else is allocated.
pub struct Interpreter<'m, 'a> {
    model: &'m Model<'m>,
    arena: &'a mut [u8],
    overlay: Overlay<'a>,
}

impl<'m, 'a> Interpreter<'m, 'a> {
    /// An interpreter for `model` using `arena` for every activation.
    pub fn new(model: &'m Model<'m>, arena: &'a mut [u8]) -> Result<Self, Error> {
        let needed = model.arena_size();
        if arena.len() < needed {
            return Err(Error::ArenaTooSmall {
                needed,
                provided: arena.len(),
            });
        }
        Ok(Interpreter {
            model,
            arena,
            overlay: Overlay::new(),
        })
    }

    /// Like [`Interpreter::new`], but with some constants (weights, biases) replaced by the
    /// values in `overlay`, typically fine-tuned weights kept in RAM over the flash model.
    pub fn with_overlay(
        model: &'m Model<'m>,
        arena: &'a mut [u8],
        overlay: Overlay<'a>,
    ) -> Result<Self, Error> {
        overlay.check(model)?;
        let mut interp = Self::new(model, arena)?;
        interp.overlay = overlay;
        Ok(interp)
    }

    /// The model being run.
    pub fn model(&self) -> &'m Model<'m> {
        self.model
    }

    /// The input tensor's quantized values, to be filled before [`Interpreter::invoke`].
    pub fn input_mut(&mut self) -> &mut [i8] {
        let id = self.model.input_index();
        self.tensor_data_mut(id).unwrap_or_default()
    }

    /// The input tensor's quantized values.
    pub fn input(&self) -> &[i8] {
        self.tensor_data(self.model.input_index())
            .unwrap_or_default()
    }

    /// The output tensor's quantized values after [`Interpreter::invoke`].
    pub fn output(&self) -> &[i8] {
        self.tensor_data(self.model.output_index())
            .unwrap_or_default()
    }

    /// The arena bytes of activation tensor `id` (valid after the op that writes it ran).
    ///
    /// The output of a convolution fused with its max pool ([`Model::is_elided`]) is never
    /// stored: asking for it is [`Error::BadTensorIndex`].
    pub fn tensor_data(&self, id: TensorId) -> Result<&[i8], Error> {
        if self.model.is_elided(id) {
            return Err(Error::BadTensorIndex(id));
        }
        let t = self.model.tensor(id)?;
        let range = arena_range(&t)?;
        let bytes = self.arena.get(range).ok_or(Error::BadPlan)?;
        Ok(bytemuck::cast_slice(bytes))
    }

    fn tensor_data_mut(&mut self, id: TensorId) -> Result<&mut [i8], Error> {
        let t = self.model.tensor(id)?;
        let range = arena_range(&t)?;
        let bytes = self.arena.get_mut(range).ok_or(Error::BadPlan)?;
        Ok(bytemuck::cast_slice_mut(bytes))
    }

    /// Quantizes a grey image (one byte per pixel, 0 = background, 255 = ink, as MNIST)
    /// into the input tensor: `x = pixel / 255`, `q = round(x / scale) + zero_point`.
    ///
    /// For the usual input quantization (scale 1/255, zero point −128) this is exactly
    /// `pixel − 128`.
    pub fn set_input_grey(&mut self, pixels: &[u8]) -> Result<(), Error> {
        let t = self.model.input()?;
        let (scale, zero_point) = (t.scale, t.zero_point);
        let input = self.input_mut();
        if input.len() != pixels.len() {
            return Err(Error::ShapeMismatch);
        }
        quantize_grey(pixels, scale, zero_point, input);
        Ok(())
    }

    /// Runs every op of the model on the current input.
    pub fn invoke(&mut self) -> Result<(), Error> {
        self.invoke_observed(|_, _| {})
    }

    /// Runs every op, calling `after_op(index, op)` after each one (for per-layer timing or
    /// for looking at intermediate activations).
    pub fn invoke_observed(
        &mut self,
        mut after_op: impl FnMut(usize, &Op<'m>),
    ) -> Result<(), Error> {
        self.invoke_each(&mut after_op)
    }

    /// The body of [`Interpreter::invoke_observed`], not generic so that the op dispatch is
    /// compiled once, in this crate and with its optimization settings, rather than in each
    /// caller's crate with the caller's (a size-optimized firmware would otherwise get the
    /// kernels' glue size-optimized too, and LLVM then calls a 64-bit division routine
    /// where a shift does).
    #[inline(never)]
    fn invoke_each(&mut self, after_op: &mut dyn FnMut(usize, &Op<'m>)) -> Result<(), Error> {
        let model = self.model;
        for index in 0..model.op_count() {
            let op = model.op(index)?;
            self.run_op(&op)?;
            after_op(index, &op);
        }
        Ok(())
    }

    /// Index and quantized score of the highest output (the first one on ties).
    pub fn top1(&self) -> (usize, i8) {
        top1(self.output())
    }

    /// Output `i` converted back to a real value with the output's scale and zero point.
    pub fn output_real(&self, i: usize) -> Option<f32> {
        let t = self.model.output().ok()?;
        let q = *self.output().get(i)?;
        Some((i32::from(q) - t.zero_point) as f32 * t.scale)
    }

    fn run_op(&mut self, op: &Op<'m>) -> Result<(), Error> {
        execute(self.model, &self.overlay, self.arena, op)
    }
}

/// Runs one op of `model` on `arena`, reading constants through `overlay`: the one op
/// dispatch of the crate, shared by [`Interpreter`] and training's forward pass so that both
/// compute the same bits with the same kernels.
pub(crate) fn execute(
    model: &Model<'_>,
    overlay: &Overlay<'_>,
    arena: &mut [u8],
    op: &Op<'_>,
) -> Result<(), Error> {
    let input_t = model.tensor(op.input())?;
    let output_t = model.tensor(op.output())?;
    let weights = |id| match overlay.int8(id) {
        Some(values) => Ok(values),
        None => model.tensor(id)?.data_i8(),
    };
    let biases = |id| match overlay.int32(id) {
        Some(values) => Ok(values),
        None => model.tensor(id)?.data_i32(),
    };
    // Each kernel's arm is guarded by its op feature, so that a build without it links
    // neither the kernel nor its set-up; such ops were refused at load (`OpKind::is_built`).
    match op {
        // The output aliases the input's bytes (checked at load): nothing to do.
        Op::Reshape { .. } => Ok(()),
        // Computed by the convolution it is fused with.
        Op::MaxPool(p) if model.is_elided(p.input) => Ok(()),
        Op::Conv2d(c)
            if cfg!(feature = "op-conv2d")
                || (cfg!(feature = "op-conv2d-pool") && c.fused_pool.is_some()) =>
        {
            conv2d_op(model, c, weights(c.filter)?, biases(c.bias)?, arena)
        }
        Op::DepthwiseConv2d(c) if cfg!(feature = "op-depthwise-conv2d") => {
            let (input, output) = split_io(arena, &input_t, &output_t)?;
            let q = requantize(
                &input_t,
                &output_t,
                c.multipliers,
                c.shifts,
                c.act_min,
                c.act_max,
            );
            dispatch::depthwise_conv2d(
                input,
                input_t.dims.activation_shape()?,
                weights(c.filter)?,
                biases(c.bias)?,
                &op_window(model, op)?,
                usize::from(c.depth_multiplier),
                &q,
                output,
                output_t.dims.activation_shape()?,
            )
        }
        Op::MaxPool(p) if cfg!(feature = "op-max-pool") => {
            pool_op(model, op, p, kernels::max_pool, arena, &input_t, &output_t)
        }
        Op::AvgPool(p) if cfg!(feature = "op-avg-pool") => {
            pool_op(model, op, p, fast::avg_pool, arena, &input_t, &output_t)
        }
        Op::FullyConnected(f) if cfg!(feature = "op-fully-connected") => {
            let (input, output) = split_io(arena, &input_t, &output_t)?;
            let filter = weights(f.filter)?;
            let bias = biases(f.bias)?;
            if f.double_scales.is_empty() {
                let q = requantize(
                    &input_t,
                    &output_t,
                    f.multipliers,
                    f.shifts,
                    f.act_min,
                    f.act_max,
                );
                dispatch::fully_connected(input, filter, bias, FcRequant::Fixed(&q), output)
            } else {
                let q = FloatRequantize {
                    input_offset: -input_t.zero_point,
                    output_offset: output_t.zero_point,
                    scales: f.double_scales,
                    act_min: f.act_min,
                    act_max: f.act_max,
                };
                dispatch::fully_connected(input, filter, bias, FcRequant::Float(&q), output)
            }
        }
        Op::Add(a) if cfg!(feature = "op-add") => add_op(model, a, arena),
        Op::Mul(m) if cfg!(feature = "op-mul") => mul_op(model, m, arena),
        Op::Lookup(l) if cfg!(feature = "op-lookup") => {
            let (input, output) = split_io(arena, &input_t, &output_t)?;
            if input.len() != output.len() {
                return Err(Error::ShapeMismatch);
            }
            for (y, &x) in output.iter_mut().zip(input) {
                // A byte indexes the 256-entry table: always in bounds.
                *y = l.table[usize::from(x as u8)];
            }
            Ok(())
        }
        Op::Mean(m) if cfg!(feature = "op-mean") => {
            let (input, output) = split_io(arena, &input_t, &output_t)?;
            let shape = input_t.dims.activation_shape()?;
            let params = kernels::MeanParams {
                count: u32::try_from(shape.height.saturating_mul(shape.width))
                    .map_err(|_| Error::InvalidParameter)?,
                multiplier: m.multiplier,
                shift: m.shift,
                input_zero_point: input_t.zero_point,
                output_zero_point: output_t.zero_point,
            };
            kernels::mean_hw(input, shape, &params, output)
        }
        Op::Pad(p) if cfg!(feature = "op-pad") => {
            let (input, output) = split_io(arena, &input_t, &output_t)?;
            let paddings = p.paddings.map(|[b, a]| [usize::from(b), usize::from(a)]);
            let pad_value =
                i8::try_from(output_t.zero_point).map_err(|_| Error::BadQuantization)?;
            kernels::pad(
                input,
                &dims4(&input_t)?,
                &paddings,
                pad_value,
                output,
                &dims4(&output_t)?,
            )
        }
        Op::Concatenation(c) if cfg!(feature = "op-concatenation") => {
            concatenation_op(model, c, arena)
        }
        Op::Softmax(s) if cfg!(feature = "op-softmax") => {
            let (input, output) = split_io(arena, &input_t, &output_t)?;
            kernels::softmax(input, input_t.dims.last(), &s.params, output)
        }
        _ => Err(Error::UnknownOp(op.kind() as u8)),
    }
}

/// Runs an Add op: both inputs and the output are read from and written to the arena at once.
fn add_op(model: &Model<'_>, a: &AddOp, arena: &mut [u8]) -> Result<(), Error> {
    let (t1, t2, out_t) = (
        model.tensor(a.input1)?,
        model.tensor(a.input2)?,
        model.tensor(a.output)?,
    );
    let params = AddParams {
        input1_offset: -t1.zero_point,
        input2_offset: -t2.zero_point,
        output_offset: out_t.zero_point,
        left_shift: i32::from(a.left_shift),
        input1_multiplier: a.input1_multiplier,
        input1_shift: i32::from(a.input1_shift),
        input2_multiplier: a.input2_multiplier,
        input2_shift: i32::from(a.input2_shift),
        output_multiplier: a.output_multiplier,
        output_shift: i32::from(a.output_shift),
        act_min: a.act_min,
        act_max: a.act_max,
    };
    let io = OpArena::split(arena, &out_t)?;
    let (x, y) = (io.input(&t1)?, io.input(&t2)?);
    kernels::add::broadcast_add(
        x,
        &dims4(&t1)?,
        y,
        &dims4(&t2)?,
        &params,
        io.output,
        &dims4(&out_t)?,
    )
}

/// Runs a concatenation one input at a time (so any number of inputs needs no table):
/// each input is a run of `outer` blocks, which land `offset` elements into the output's
/// blocks.
fn concatenation_op(model: &Model<'_>, c: &ConcatOp<'_>, arena: &mut [u8]) -> Result<(), Error> {
    let out_t = model.tensor(c.output)?;
    let out_dims = dims4(&out_t)?;
    let axis = usize::from(c.axis);
    let inner: usize = out_dims.get(axis + 1..).unwrap_or(&[]).iter().product();
    let outer: usize = out_dims.get(..axis).unwrap_or(&[]).iter().product();
    let out_block = out_dims
        .get(axis)
        .ok_or(Error::InvalidParameter)?
        .saturating_mul(inner);
    let io = OpArena::split(arena, &out_t)?;
    let mut offset = 0usize;
    for &id in c.inputs {
        let t = model.tensor(id)?;
        let x = io.input(&t)?;
        let block = dims4(&t)?
            .get(axis)
            .ok_or(Error::InvalidParameter)?
            .saturating_mul(inner);
        if block == 0 || x.len() != outer.saturating_mul(block) {
            return Err(Error::ShapeMismatch);
        }
        for (o, src) in x.chunks_exact(block).enumerate() {
            let at = o.saturating_mul(out_block).saturating_add(offset);
            span_mut(&mut *io.output, at, block)?.copy_from_slice(src);
        }
        offset = offset.saturating_add(block);
    }
    if offset != out_block {
        return Err(Error::ShapeMismatch);
    }
    Ok(())
}

/// Runs a Mul op (either operand may be a constant from the model).
fn mul_op(model: &Model<'_>, m: &MulOp, arena: &mut [u8]) -> Result<(), Error> {
    let (t1, t2, out_t) = (
        model.tensor(m.input1)?,
        model.tensor(m.input2)?,
        model.tensor(m.output)?,
    );
    let params = kernels::MulParams {
        input1_offset: -t1.zero_point,
        input2_offset: -t2.zero_point,
        output_offset: out_t.zero_point,
        output_multiplier: m.multiplier,
        output_shift: m.shift,
        act_min: m.act_min,
        act_max: m.act_max,
    };
    let io = OpArena::split(arena, &out_t)?;
    let (x, y) = (io.input(&t1)?, io.input(&t2)?);
    kernels::broadcast_mul(
        x,
        &dims4(&t1)?,
        y,
        &dims4(&t2)?,
        &params,
        io.output,
        &dims4(&out_t)?,
    )
}

/// A tensor's dimensions extended to 4-D with leading ones (TFLite's `ExtendedShape`).
fn dims4(t: &Tensor<'_>) -> Result<kernels::broadcast::Dims4, Error> {
    let mut dims = [1usize; 4];
    let given = t.dims.as_slice();
    let lead = dims
        .len()
        .checked_sub(given.len())
        .ok_or(Error::InconsistentShape)?;
    for (d, &g) in dims.iter_mut().skip(lead).zip(given) {
        *d = usize::from(g);
    }
    Ok(dims)
}

/// An op's output bytes, borrowed mutably, beside the rest of the arena, from which any of
/// its inputs is borrowed (the plan, checked at load, keeps them apart).
struct OpArena<'x> {
    below: &'x [u8],
    output: &'x mut [i8],
    above: &'x [u8],
    above_start: usize,
}

impl<'x> OpArena<'x> {
    fn split(arena: &'x mut [u8], output: &Tensor<'_>) -> Result<Self, Error> {
        let o = arena_range(output)?;
        let (below, rest) = arena.split_at_mut_checked(o.start).ok_or(Error::BadPlan)?;
        let (out, above) = rest.split_at_mut_checked(o.len()).ok_or(Error::BadPlan)?;
        Ok(OpArena {
            below,
            output: bytemuck::cast_slice_mut(out),
            above,
            above_start: o.end,
        })
    }

    fn input<'t>(&self, t: &Tensor<'t>) -> Result<&'x [i8], Error>
    where
        't: 'x,
    {
        if t.is_constant() {
            return t.data_i8();
        }
        let r = arena_range(t)?;
        let bytes = if r.end <= self.below.len() {
            self.below.get(r)
        } else if r.start >= self.above_start {
            self.above
                .get(r.start - self.above_start..r.end - self.above_start)
        } else {
            None
        };
        bytes.map(bytemuck::cast_slice).ok_or(Error::BadPlan)
    }
}

/// The signature shared by the max and average pooling kernels.
type PoolKernel =
    fn(&[i8], crate::Shape, &Window, i8, i8, &mut [i8], crate::Shape) -> Result<(), Error>;

/// Runs a pooling op (not fused into a convolution) with `kernel`.
fn pool_op(
    model: &Model<'_>,
    op: &Op<'_>,
    p: &crate::format::PoolOp,
    kernel: PoolKernel,
    arena: &mut [u8],
    input_t: &Tensor<'_>,
    output_t: &Tensor<'_>,
) -> Result<(), Error> {
    let (input, output) = split_io(arena, input_t, output_t)?;
    kernel(
        input,
        input_t.dims.activation_shape()?,
        &op_window(model, op)?,
        p.act_min,
        p.act_max,
        output,
        output_t.dims.activation_shape()?,
    )
}

/// The window of a convolution or pooling op.
pub(crate) fn op_window(model: &Model<'_>, op: &Op<'_>) -> Result<Window, Error> {
    let in_shape = model.tensor(op.input())?.dims.activation_shape()?;
    let (kh, kw, sh, sw, padding) = match op {
        Op::Conv2d(c) | Op::DepthwiseConv2d(c) => {
            let f = model.tensor(c.filter)?;
            (
                f.dims.get(1),
                f.dims.get(2),
                c.stride_h,
                c.stride_w,
                c.padding,
            )
        }
        Op::MaxPool(p) | Op::AvgPool(p) => (
            usize::from(p.kernel_h),
            usize::from(p.kernel_w),
            p.stride_h,
            p.stride_w,
            p.padding,
        ),
        _ => return Err(Error::InvalidParameter),
    };
    let (window, _, _) = Window::new(padding, in_shape, kh, kw, usize::from(sh), usize::from(sw))?;
    Ok(window)
}

/// Runs a Conv2D op — with its fused max pool, if any, writing the pool's output — with the
/// optimized kernel, or the reference kernel for filters beyond its limits. `filter` and
/// `bias` are the op's constants (possibly from an overlay). Shared with training's forward
/// pass so that both compute the same bits.
pub(crate) fn conv2d_op(
    model: &Model<'_>,
    c: &ConvOp<'_>,
    filter: &[i8],
    bias: &[i32],
    arena: &mut [u8],
) -> Result<(), Error> {
    let input_t = model.tensor(c.input)?;
    let conv_t = model.tensor(c.output)?;
    let filter_t = model.tensor(c.filter)?;
    let in_shape = input_t.dims.activation_shape()?;
    let conv_shape = conv_t.dims.activation_shape()?;
    let (window, _, _) = Window::new(
        c.padding,
        in_shape,
        filter_t.dims.get(1),
        filter_t.dims.get(2),
        usize::from(c.stride_h),
        usize::from(c.stride_w),
    )?;
    let q = requantize(
        &input_t,
        &conv_t,
        c.multipliers,
        c.shifts,
        c.act_min,
        c.act_max,
    );
    let taps = filter_t.dims.get(1) * filter_t.dims.get(2) * in_shape.channels;
    // The optimized kernel takes every layer with taps whose input zero point is an int8
    // value (its padding taps hold the zero point); the reference kernel any other.
    let supported = fast::conv2d_pool::supported(taps, conv_shape.channels)
        && i8::try_from(q.input_offset.wrapping_neg()).is_ok();
    match c.fused_pool {
        Some(p) => {
            let out_t = model.tensor(p.output)?;
            let out_shape = out_t.dims.activation_shape()?;
            let (pool_window, _, _) = Window::new(
                p.padding,
                conv_shape,
                usize::from(p.kernel_h),
                usize::from(p.kernel_w),
                usize::from(p.stride_h),
                usize::from(p.stride_w),
            )?;
            let pool = PoolWindow {
                window: pool_window,
                conv_shape,
                act_min: p.act_min,
                act_max: p.act_max,
            };
            let (input, output) = split_io(arena, &input_t, &out_t)?;
            dispatch::conv2d_pool(
                input,
                in_shape,
                filter,
                bias,
                &window,
                &q,
                Some(&pool),
                output,
                out_shape,
            )
        }
        // Refused at load in a build with only fused convolutions (`op-conv2d-pool`).
        None if !cfg!(feature = "op-conv2d") => Err(Error::UnknownOp(OpKind::Conv2d as u8)),
        None => {
            let (input, output) = split_io(arena, &input_t, &conv_t)?;
            if supported {
                dispatch::conv2d_pool(
                    input, in_shape, filter, bias, &window, &q, None, output, conv_shape,
                )
            } else {
                dispatch::conv2d(
                    input, in_shape, filter, bias, &window, &q, output, conv_shape,
                )
            }
        }
    }
}

fn requantize<'t>(
    input: &Tensor<'_>,
    output: &Tensor<'_>,
    multipliers: &'t [i32],
    shifts: &'t [i32],
    act_min: i8,
    act_max: i8,
) -> Requantize<'t> {
    Requantize {
        input_offset: -input.zero_point,
        output_offset: output.zero_point,
        multipliers,
        shifts,
        act_min,
        act_max,
    }
}

pub(crate) fn arena_range(t: &Tensor<'_>) -> Result<core::ops::Range<usize>, Error> {
    if t.is_constant() {
        return Err(Error::BadTensorIndex(u16::MAX));
    }
    let end = t
        .arena_offset
        .checked_add(t.byte_len())
        .ok_or(Error::BadPlan)?;
    Ok(t.arena_offset..end)
}

/// The input's bytes and the output's bytes of one op, borrowed from the arena at once
/// (they never overlap: the plan was checked at load).
fn split_io<'x>(
    arena: &'x mut [u8],
    input: &Tensor<'_>,
    output: &Tensor<'_>,
) -> Result<(&'x [i8], &'x mut [i8]), Error> {
    let i = arena_range(input)?;
    let o = arena_range(output)?;
    let (src, dst): (&[u8], &mut [u8]) = if i.end <= o.start {
        let (lo, hi) = arena.split_at_mut(o.start.min(arena.len()));
        (
            lo.get(i).ok_or(Error::BadPlan)?,
            hi.get_mut(..o.end - o.start).ok_or(Error::BadPlan)?,
        )
    } else if o.end <= i.start {
        let (lo, hi) = arena.split_at_mut(i.start.min(arena.len()));
        (
            hi.get(..i.end - i.start).ok_or(Error::BadPlan)?,
            lo.get_mut(o).ok_or(Error::BadPlan)?,
        )
    } else {
        return Err(Error::BadPlan);
    };
    Ok((bytemuck::cast_slice(src), bytemuck::cast_slice_mut(dst)))
}

/// Quantizes grey pixels (`x = pixel / 255`) to int8 with the given scale and zero point,
/// rounding half away from zero like TFLite.
pub fn quantize_grey(pixels: &[u8], scale: f32, zero_point: i32, out: &mut [i8]) {
    if scale == 1.0 / 255.0 && zero_point == -128 {
        for (q, &p) in out.iter_mut().zip(pixels) {
            *q = (i16::from(p) - 128) as i8;
        }
        return;
    }
    for (q, &p) in out.iter_mut().zip(pixels) {
        let x = f32::from(p) / 255.0;
        let v = libm::roundf(x / scale) as i32 + zero_point;
        *q = v.clamp(-128, 127) as i8;
    }
}

/// Index and value of the largest element (the first one on ties); `(0, i8::MIN)` when empty.
pub fn top1(values: &[i8]) -> (usize, i8) {
    let mut best = (0usize, i8::MIN);
    for (i, &v) in values.iter().enumerate() {
        if i == 0 || v > best.1 {
            best = (i, v);
        }
    }
    best
}
