//! Structural checks shared by the parser and the writer: every tensor plays a role it can
//! play, shapes agree, ops run in order, lifetimes are the ones the ops imply, and (for a
//! parsed model) the memory plan is safe.
//!
//! No check keeps a table: each one looks tensors and ops up again, so that a model of any
//! size is checked in a fixed amount of RAM (the stack of these functions).

use super::{DType, Op, OpKind, Tensor, TensorId};
use crate::plan::{ranges_overlap, Lifetime};
use crate::{Error, Shape, Window};

/// What the checks need to see of a model, parsed or under construction.
pub(crate) trait Graph<'a> {
    fn tensor_count(&self) -> usize;
    fn op_count(&self) -> usize;
    fn tensor(&self, id: TensorId) -> Result<Tensor<'a>, Error>;
    fn op(&self, index: usize) -> Result<Op<'a>, Error>;
    fn input(&self) -> TensorId;
    fn output(&self) -> TensorId;
    /// The lifetime of activation `t`: as stored (version 3, checked by [`check_graph`]) or
    /// as the ops imply ([`scan_lifetime`]).
    fn lifetime(&self, t: TensorId) -> Result<Lifetime, Error> {
        Ok(self.tensor(t)?.lifetime)
    }
    /// True for an activation that is never stored (a fused convolution's output).
    fn is_elided(&self, t: TensorId) -> Result<bool, Error> {
        Ok(self.tensor(t)?.elided)
    }
}

/// The step at which op `index` runs.
pub(crate) fn step_of(index: usize) -> Result<u16, Error> {
    index
        .checked_add(1)
        .and_then(|s| u16::try_from(s).ok())
        .filter(|&s| s != u16::MAX)
        .ok_or(Error::CapacityExceeded)
}

/// The lifetime of activation `t` and whether it is elided, as the ops imply: written by the
/// op that outputs it (a max pool fused into the convolution before it one step early, by
/// that convolution), read until its last reader (the model output until the end).
///
/// [`Error::BadOpOrder`] when nothing writes `t`.
pub(crate) fn scan_lifetime<'a>(
    g: &impl Graph<'a>,
    t: TensorId,
) -> Result<(Lifetime, bool), Error> {
    let mut first = (t == g.input()).then_some(0u16);
    let mut last = 0u16;
    let mut elided = false;
    for i in 0..g.op_count() {
        let op = g.op(i)?;
        let step = step_of(i)?;
        if op.inputs().contains(t) {
            last = step;
        }
        if let Some(pool) = op.fused_pool() {
            elided |= op.output() == t;
            if pool.output == t && first.is_none() {
                first = Some(step);
            }
        }
        if op.output() == t && first.is_none() {
            first = Some(step);
        }
    }
    let first = first.ok_or(Error::BadOpOrder)?;
    if t == g.output() {
        last = step_of(g.op_count())?;
    }
    Ok((
        Lifetime {
            first,
            last: last.max(first),
        },
        elided,
    ))
}

/// The tensor whose buffer `t` uses: `t` itself, or for a reshape's output its input's
/// buffer (followed through chains of reshapes).
pub(crate) fn root<'a>(g: &impl Graph<'a>, mut t: TensorId) -> Result<TensorId, Error> {
    for _ in 0..=g.op_count() {
        let first = g.lifetime(t)?.first;
        let Some(writer) = usize::from(first).checked_sub(1) else {
            return Ok(t);
        };
        match g.op(writer)? {
            Op::Reshape { input, output } if output == t => t = input,
            _ => return Ok(t),
        }
    }
    Err(Error::BadOpOrder)
}

/// Checks roles, shapes, op order and the lifetimes [`Graph::lifetime`] gives: each is the
/// one the ops imply, which is what makes the plan check of [`check_plan`] sound.
pub(crate) fn check_graph<'a>(g: &impl Graph<'a>) -> Result<(), Error> {
    let n_tensors = g.tensor_count();
    let n_ops = g.op_count();
    if n_ops == 0 {
        return Err(Error::BadHeader);
    }
    let end = step_of(n_ops)?;
    for t in 0..n_tensors {
        let id = TensorId::try_from(t).map_err(|_| Error::CapacityExceeded)?;
        let tensor = g.tensor(id)?;
        if !tensor.is_constant() && tensor.dtype != DType::Int8 {
            return Err(Error::BadDataType);
        }
    }
    let input = g.input();
    activation(g, input)?;
    let output = g.output();
    activation(g, output)?;
    if input == output {
        return Err(Error::BadOpOrder);
    }

    for i in 0..n_ops {
        let op = g.op(i)?;
        let step = step_of(i)?;
        check_op(g, &op)?;
        let mut first = step;
        if let Op::MaxPool(p) = op {
            if g.is_elided(p.input)? {
                // Fused into the convolution before it: that convolution's work, one step
                // early.
                first = step - 1;
            } else {
                OpKind::MaxPool.require_built()?;
            }
        }
        if let Some(pool) = op.fused_pool() {
            check_fusion(g, i, &op, &pool)?;
        }
        if g.is_elided(op.output())? != op.fused_pool().is_some() {
            return Err(Error::InvalidParameter);
        }
        for t in op.inputs().iter() {
            // A binary op's constant operand is read from the model, not the arena.
            if g.tensor(t)?.is_constant() {
                continue;
            }
            let life = g.lifetime(t)?;
            if life.first >= step || life.last < step {
                return Err(Error::BadOpOrder);
            }
        }
        if g.lifetime(op.output())?.first != first {
            return Err(Error::BadOpOrder);
        }
    }
    // Every activation is written by the op its lifetime names and last read where it says.
    for t in 0..n_tensors {
        let id = TensorId::try_from(t).map_err(|_| Error::CapacityExceeded)?;
        if g.tensor(id)?.is_constant() {
            continue;
        }
        let life = g.lifetime(id)?;
        let written = match usize::from(life.first).checked_sub(1) {
            None => id == input,
            Some(writer) if writer < n_ops => {
                let op = g.op(writer)?;
                id != input
                    && (op.output() == id || op.fused_pool().is_some_and(|p| p.output == id))
            }
            Some(_) => false,
        };
        let read_last = if id == output {
            life.last == end
        } else if life.last == life.first {
            // Read by nobody: any reader would have been later than `last`.
            true
        } else {
            life.last > life.first
                && usize::from(life.last) <= n_ops
                && g.op(usize::from(life.last) - 1)?.inputs().contains(id)
        };
        if !written || !read_last {
            return Err(Error::BadOpOrder);
        }
        // Only a fused convolution's output may go unstored (its writer was just found).
        if g.is_elided(id)? {
            let fused_writer = match usize::from(life.first).checked_sub(1) {
                Some(writer) => {
                    let op = g.op(writer)?;
                    op.output() == id && op.fused_pool().is_some()
                }
                None => false,
            };
            if !fused_writer {
                return Err(Error::InvalidParameter);
            }
        }
    }
    Ok(())
}

/// Checks that the stored plan keeps simultaneously live buffers apart and inside the arena.
pub(crate) fn check_plan<'a>(g: &impl Graph<'a>, arena_size: usize) -> Result<(), Error> {
    let n = g.tensor_count();
    for t in 0..n {
        let id = TensorId::try_from(t).map_err(|_| Error::CapacityExceeded)?;
        let tensor = g.tensor(id)?;
        if tensor.is_constant() {
            continue;
        }
        if g.is_elided(id)? {
            // Never stored: its (canonical) offset is 0 and it takes no arena bytes.
            if tensor.arena_offset != 0 {
                return Err(Error::BadPlan);
            }
            continue;
        }
        let end = tensor
            .arena_offset
            .checked_add(tensor.byte_len())
            .ok_or(Error::BadPlan)?;
        if end > arena_size {
            return Err(Error::BadPlan);
        }
        if g.tensor(root(g, id)?)?.arena_offset != tensor.arena_offset {
            return Err(Error::BadPlan);
        }
    }
    for a in 0..n {
        let a_id = TensorId::try_from(a).map_err(|_| Error::CapacityExceeded)?;
        let ta = g.tensor(a_id)?;
        if ta.is_constant() || g.is_elided(a_id)? {
            continue;
        }
        let (a_life, a_root) = (g.lifetime(a_id)?, root(g, a_id)?);
        for b in (a + 1)..n {
            let b_id = TensorId::try_from(b).map_err(|_| Error::CapacityExceeded)?;
            let tb = g.tensor(b_id)?;
            if tb.is_constant() || g.is_elided(b_id)? || !a_life.overlaps(&g.lifetime(b_id)?) {
                continue;
            }
            // A reshape and its input share their bytes by design.
            if root(g, b_id)? != a_root
                && ranges_overlap(
                    ta.arena_offset,
                    ta.byte_len(),
                    tb.arena_offset,
                    tb.byte_len(),
                )
            {
                return Err(Error::BadPlan);
            }
        }
    }
    Ok(())
}

// Not inlined into `check_graph`: 284 B less firmware flash (measured on the seed CNN's).
#[inline(never)]
fn check_op<'a>(g: &impl Graph<'a>, op: &Op<'a>) -> Result<(), Error> {
    match op {
        Op::Conv2d(c) | Op::DepthwiseConv2d(c) => {
            if c.fused_pool.is_some() && cfg!(feature = "op-conv2d-pool") {
                // Fused with its max pool: the optimized kernel alone runs it.
            } else {
                op.kind().require_built()?;
            }
            let (_, input) = activation_4d(g, c.input)?;
            let (_, output) = activation_4d(g, c.output)?;
            let filter = constant(g, c.filter, DType::Int8)?;
            let [fo, kh, kw, fi] = dims4(&filter)?;
            let depthwise = matches!(op, Op::DepthwiseConv2d(_));
            let channels_ok = if depthwise {
                fo == 1
                    && input.channels.checked_mul(usize::from(c.depth_multiplier)) == Some(fi)
                    && output.channels == fi
            } else {
                c.depth_multiplier == 0 && fi == input.channels && output.channels == fo
            };
            if !channels_ok {
                return Err(Error::InconsistentShape);
            }
            let (_, oh, ow) = Window::new(
                c.padding,
                input,
                kh,
                kw,
                usize::from(c.stride_h),
                usize::from(c.stride_w),
            )?;
            if (oh, ow) != (output.height, output.width) {
                return Err(Error::InconsistentShape);
            }
            check_bias_and_requant(g, c.bias, output.channels, c.multipliers.len())
        }
        Op::MaxPool(p) | Op::AvgPool(p) => {
            // A max pool is checked here whether it is built or not (a fused one runs in its
            // convolution's kernel); `check_graph` refuses an unfused one this build lacks.
            if let Op::AvgPool(_) = op {
                OpKind::AvgPool.require_built()?;
            }
            let (tin, input) = activation_4d(g, p.input)?;
            let (tout, output) = activation_4d(g, p.output)?;
            same_quantization(&tin, &tout)?;
            let (_, oh, ow) = Window::new(
                p.padding,
                input,
                usize::from(p.kernel_h),
                usize::from(p.kernel_w),
                usize::from(p.stride_h),
                usize::from(p.stride_w),
            )?;
            if output != Shape::new(oh, ow, input.channels) {
                return Err(Error::InconsistentShape);
            }
            Ok(())
        }
        Op::FullyConnected(f) => {
            OpKind::FullyConnected.require_built()?;
            let tin = activation(g, f.input)?;
            let tout = activation(g, f.output)?;
            let filter = constant(g, f.filter, DType::Int8)?;
            let (outputs, inputs) = match *filter.dims.as_slice() {
                [o, i] => (usize::from(o), usize::from(i)),
                _ => return Err(Error::InconsistentShape),
            };
            if tin.dims.num_elements() != inputs
                || tout.dims.num_elements() != outputs
                || tout.dims.last() != outputs
            {
                return Err(Error::InconsistentShape);
            }
            check_bias_and_requant(g, f.bias, outputs, f.multipliers.len())
        }
        Op::Softmax(s) => {
            OpKind::Softmax.require_built()?;
            let tin = activation(g, s.input)?;
            let tout = activation(g, s.output)?;
            if tin.dims != tout.dims {
                return Err(Error::InconsistentShape);
            }
            // Longer rows would wrap the kernel's sum of exponentials (finding F3).
            if tin.dims.last() > crate::kernels::MAX_SOFTMAX_DEPTH {
                return Err(Error::InvalidParameter);
            }
            // TFLite's int8 softmax always writes probabilities with scale 1/256, zero
            // point -128; the kernel assumes it.
            if tout.zero_point != -128 || tout.scale != 1.0 / 256.0 {
                return Err(Error::BadQuantization);
            }
            Ok(())
        }
        // Guarded by the features as constants, so that a build with neither links none of
        // this (the decoder already refused such ops).
        Op::Add(_) | Op::Mul(_) if OpKind::Add.is_built() || OpKind::Mul.is_built() => {
            op.kind().require_built()?;
            let out = activation(g, op.output())?;
            for id in op.inputs().iter() {
                let t = operand(g, id)?;
                if !broadcasts_to(&t.dims, &out.dims) {
                    return Err(Error::InconsistentShape);
                }
            }
            Ok(())
        }
        Op::Lookup(l) => {
            OpKind::Lookup.require_built()?;
            let (tin, tout) = (activation(g, l.input)?, activation(g, l.output)?);
            if tin.dims != tout.dims {
                return Err(Error::InconsistentShape);
            }
            Ok(())
        }
        Op::Mean(m) => {
            OpKind::Mean.require_built()?;
            let (_, shape) = activation_4d(g, m.input)?;
            let tout = activation(g, m.output)?;
            let count = shape.height.saturating_mul(shape.width);
            if tout.dims.num_elements() != shape.channels || tout.dims.last() != shape.channels {
                return Err(Error::InconsistentShape);
            }
            // The kernel's sum of `count` int8 values stays inside i32 (TFLite's own bound).
            if count > crate::kernels::mean::MAX_MEAN_COUNT {
                return Err(Error::InvalidParameter);
            }
            Ok(())
        }
        Op::Pad(p) => {
            OpKind::Pad.require_built()?;
            let (tin, tout) = (activation(g, p.input)?, activation(g, p.output)?);
            same_quantization(&tin, &tout)?;
            let (din, dout) = (extended4(&tin), extended4(&tout));
            let padded = din
                .iter()
                .zip(&p.paddings)
                .map(|(&d, [before, after])| d + usize::from(*before) + usize::from(*after));
            if tin.dims.rank() != tout.dims.rank() || !padded.eq(dout.iter().copied()) {
                return Err(Error::InconsistentShape);
            }
            Ok(())
        }
        Op::Concatenation(c) => {
            OpKind::Concatenation.require_built()?;
            let tout = activation(g, c.output)?;
            let axis = usize::from(c.axis);
            let rank = tout.dims.rank();
            if axis < 4 - rank {
                return Err(Error::InvalidParameter);
            }
            let out = extended4(&tout);
            let mut along = 0usize;
            for &id in c.inputs {
                let t = activation(g, id)?;
                same_quantization(&t, &tout)?;
                let d = extended4(&t);
                let others_match = d
                    .iter()
                    .zip(&out)
                    .enumerate()
                    .all(|(a, (x, y))| a == axis || x == y);
                if t.dims.rank() != rank || !others_match {
                    return Err(Error::InconsistentShape);
                }
                along = along.saturating_add(d.get(axis).copied().unwrap_or(0));
            }
            if Some(&along) != out.get(axis) {
                return Err(Error::InconsistentShape);
            }
            Ok(())
        }
        Op::Add(_) | Op::Mul(_) => Err(Error::UnknownOp(op.kind() as u8)),
        Op::Reshape { input, output } => {
            let tin = activation(g, *input)?;
            let tout = activation(g, *output)?;
            same_quantization(&tin, &tout)?;
            if tin.dims.num_elements() != tout.dims.num_elements() {
                return Err(Error::InconsistentShape);
            }
            Ok(())
        }
    }
}

/// A Conv2D fused with a max pool (format version 2): op `i + 1` is that very max pool, it
/// alone reads the convolution's output, and that output is not the model's.
fn check_fusion<'a>(
    g: &impl Graph<'a>,
    i: usize,
    op: &Op<'a>,
    pool: &super::PoolOp,
) -> Result<(), Error> {
    let conv_out = op.output();
    let next_is_the_pool = i + 1 < g.op_count()
        && matches!(g.op(i + 1)?, Op::MaxPool(p) if p == *pool && p.input == conv_out);
    if !next_is_the_pool || g.output() == conv_out {
        return Err(Error::InvalidParameter);
    }
    for j in 0..g.op_count() {
        if j != i + 1 && g.op(j)?.input() == conv_out {
            return Err(Error::InvalidParameter);
        }
    }
    Ok(())
}

fn check_bias_and_requant<'a>(
    g: &impl Graph<'a>,
    bias: TensorId,
    channels: usize,
    requant_len: usize,
) -> Result<(), Error> {
    let bias = constant(g, bias, DType::Int32)?;
    if bias.dims.rank() != 1 || bias.dims.num_elements() != channels {
        return Err(Error::InconsistentShape);
    }
    if requant_len != channels {
        return Err(Error::BadQuantization);
    }
    Ok(())
}

fn same_quantization(a: &Tensor<'_>, b: &Tensor<'_>) -> Result<(), Error> {
    if a.zero_point != b.zero_point || a.scale != b.scale {
        return Err(Error::BadQuantization);
    }
    Ok(())
}

#[inline(never)]
fn activation<'a>(g: &impl Graph<'a>, id: TensorId) -> Result<Tensor<'a>, Error> {
    let t = g.tensor(id)?;
    if t.is_constant() || t.dtype != DType::Int8 {
        return Err(Error::BadTensorIndex(id));
    }
    if !(-128..=127).contains(&t.zero_point) || t.scale <= 0.0 {
        return Err(Error::BadQuantization);
    }
    Ok(t)
}

/// An operand of an element-wise binary op: an activation, or an int8 constant quantized
/// per tensor like one.
#[inline(never)]
fn operand<'a>(g: &impl Graph<'a>, id: TensorId) -> Result<Tensor<'a>, Error> {
    let t = g.tensor(id)?;
    if !t.is_constant() {
        return activation(g, id);
    }
    if t.dtype != DType::Int8 {
        return Err(Error::BadDataType);
    }
    if !(-128..=127).contains(&t.zero_point) || t.scale <= 0.0 || !t.channel_scales.is_empty() {
        return Err(Error::BadQuantization);
    }
    Ok(t)
}

#[inline(never)]
fn activation_4d<'a>(g: &impl Graph<'a>, id: TensorId) -> Result<(Tensor<'a>, Shape), Error> {
    let t = activation(g, id)?;
    if t.dims.rank() != 4 {
        return Err(Error::InconsistentShape);
    }
    let shape = t.dims.activation_shape()?;
    Ok((t, shape))
}

#[inline(never)]
fn constant<'a>(g: &impl Graph<'a>, id: TensorId, dtype: DType) -> Result<Tensor<'a>, Error> {
    let t = g.tensor(id)?;
    if !t.is_constant() {
        return Err(Error::BadTensorIndex(id));
    }
    if t.dtype != dtype {
        return Err(Error::BadDataType);
    }
    Ok(t)
}

fn dims4(t: &Tensor<'_>) -> Result<[usize; 4], Error> {
    match *t.dims.as_slice() {
        [a, b, c, d] => Ok([a, b, c, d].map(usize::from)),
        _ => Err(Error::InconsistentShape),
    }
}

/// A tensor's dims extended to 4-D with leading ones (TFLite's `ExtendedShape(4, …)`).
pub(crate) fn extended4(t: &Tensor<'_>) -> [usize; 4] {
    let given = t.dims.as_slice();
    let lead = 4usize.saturating_sub(given.len());
    let mut out = [1usize; 4];
    for (o, &d) in out.iter_mut().skip(lead).zip(given) {
        *o = usize::from(d);
    }
    out
}

/// True when `from` broadcasts to `to` the way TFLite's binary ops allow: dimensions aligned
/// at the innermost end, each equal or 1 (missing outer ones count as 1).
pub(crate) fn broadcasts_to(from: &super::Dims, to: &super::Dims) -> bool {
    let (f, t) = (from.as_slice(), to.as_slice());
    f.len() <= t.len()
        && f.iter()
            .rev()
            .zip(t.iter().rev())
            .all(|(&a, &b)| a == b || a == 1)
}
