//! The int8 forward pass of training: the interpreter's op dispatch, run op by op so that
//! the activations the backward pass needs can be copied out before the memory plan reuses
//! their bytes. It calls the very kernels [`Interpreter`](crate::Interpreter) calls, with the
//! same overlay lookup, so its outputs are the device's outputs bit for bit (checked by the
//! tests against the interpreter).

use crate::format::{Model, Op, Tensor, TensorId};
use crate::kernels::{self, FloatRequantize, Requantize};
use crate::overlay::Overlay;
use crate::{Error, Window};

/// Arena byte range of activation `t`.
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

/// Activation `id`'s values in `arena`.
pub(crate) fn activation<'x>(
    model: &Model<'_>,
    arena: &'x [u8],
    id: TensorId,
) -> Result<&'x [i8], Error> {
    let t = model.tensor(id)?;
    let bytes = arena.get(arena_range(&t)?).ok_or(Error::BadPlan)?;
    Ok(bytemuck::cast_slice(bytes))
}

/// Mutable activation `id`'s values in `arena`.
pub(crate) fn activation_mut<'x>(
    model: &Model<'_>,
    arena: &'x mut [u8],
    id: TensorId,
) -> Result<&'x mut [i8], Error> {
    let t = model.tensor(id)?;
    let bytes = arena.get_mut(arena_range(&t)?).ok_or(Error::BadPlan)?;
    Ok(bytemuck::cast_slice_mut(bytes))
}

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

/// Runs op `op` of `model` on `arena`, reading constants through `overlay`.
pub(crate) fn run_op(
    model: &Model<'_>,
    arena: &mut [u8],
    overlay: &Overlay<'_>,
    op: &Op<'_>,
) -> Result<(), Error> {
    let input_t = model.tensor(op.input())?;
    let output_t = model.tensor(op.output())?;
    if let Op::Reshape { .. } = op {
        return Ok(());
    }
    let weights = |id| match overlay.int8(id) {
        Some(values) => Ok(values),
        None => model.tensor(id)?.data_i8(),
    };
    let biases = |id| match overlay.int32(id) {
        Some(values) => Ok(values),
        None => model.tensor(id)?.data_i32(),
    };
    // A convolution fused with its max pool (format version 2) writes the pool's output; the
    // pool then has nothing left to do.
    if let Op::Conv2d(c) = op {
        if c.fused_pool.is_some() {
            return crate::interpreter::conv2d_op(
                model,
                c,
                weights(c.filter)?,
                biases(c.bias)?,
                arena,
            );
        }
    }
    if let Op::MaxPool(p) = op {
        if model.is_elided(p.input) {
            return Ok(());
        }
    }
    let window = match op {
        Op::Conv2d(_) | Op::DepthwiseConv2d(_) | Op::MaxPool(_) | Op::AvgPool(_) => {
            Some(op_window(model, op)?)
        }
        _ => None,
    };
    let (input, output) = split_io(arena, &input_t, &output_t)?;
    let requant = |multipliers, shifts, act_min, act_max| Requantize {
        input_offset: -input_t.zero_point,
        output_offset: output_t.zero_point,
        multipliers,
        shifts,
        act_min,
        act_max,
    };
    match (op, window) {
        (Op::Conv2d(c), Some(window)) => kernels::conv2d(
            input,
            input_t.dims.activation_shape()?,
            weights(c.filter)?,
            biases(c.bias)?,
            &window,
            &requant(c.multipliers, c.shifts, c.act_min, c.act_max),
            output,
            output_t.dims.activation_shape()?,
        ),
        (Op::DepthwiseConv2d(c), Some(window)) => kernels::depthwise_conv2d(
            input,
            input_t.dims.activation_shape()?,
            weights(c.filter)?,
            biases(c.bias)?,
            &window,
            usize::from(c.depth_multiplier),
            &requant(c.multipliers, c.shifts, c.act_min, c.act_max),
            output,
            output_t.dims.activation_shape()?,
        ),
        (Op::MaxPool(p), Some(window)) => kernels::max_pool(
            input,
            input_t.dims.activation_shape()?,
            &window,
            p.act_min,
            p.act_max,
            output,
            output_t.dims.activation_shape()?,
        ),
        (Op::AvgPool(p), Some(window)) => kernels::avg_pool(
            input,
            input_t.dims.activation_shape()?,
            &window,
            p.act_min,
            p.act_max,
            output,
            output_t.dims.activation_shape()?,
        ),
        (Op::FullyConnected(f), _) => {
            let filter = weights(f.filter)?;
            let bias = biases(f.bias)?;
            if f.double_scales.is_empty() {
                let q = requant(f.multipliers, f.shifts, f.act_min, f.act_max);
                kernels::fully_connected(input, filter, bias, &q, output)
            } else {
                let q = FloatRequantize {
                    input_offset: -input_t.zero_point,
                    output_offset: output_t.zero_point,
                    scales: f.double_scales,
                    act_min: f.act_min,
                    act_max: f.act_max,
                };
                kernels::fully_connected_float_requant(input, filter, bias, &q, output)
            }
        }
        (Op::Softmax(s), _) => kernels::softmax(input, input_t.dims.last(), &s.params, output),
        _ => Err(Error::InvalidParameter),
    }
}
