//! Structural checks shared by the parser and the writer: every tensor plays a role it can
//! play, shapes agree, ops run in order, and (for a parsed model) the memory plan is safe.

use super::{DType, Op, OpKind, Tensor, TensorId, MAX_TENSORS};
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
}

/// Lifetimes of the arena tensors and which buffer each one really uses (a reshape's output
/// uses its input's buffer).
pub(crate) struct Liveness {
    pub lifetimes: [Lifetime; MAX_TENSORS],
    pub root: [TensorId; MAX_TENSORS],
    pub is_activation: [bool; MAX_TENSORS],
    /// Activation `t` is a fused convolution's output, never stored. (Flags rather than a
    /// `u64` of bits: the struct then needs no 8-byte alignment, for which a size-optimized
    /// build links another memory-clearing routine.)
    pub elided: [bool; MAX_TENSORS],
}

impl Liveness {
    /// True for tensors that own their buffer (activations that are not reshape aliases).
    pub fn owns_buffer(&self, t: usize) -> bool {
        self.is_activation.get(t).copied().unwrap_or(false)
            && self.root.get(t).map(|&r| usize::from(r)) == Some(t)
            && !self.is_elided(t)
    }

    /// True for the output of a convolution fused with its max pool.
    pub fn is_elided(&self, t: usize) -> bool {
        self.elided.get(t).copied().unwrap_or(false)
    }

    /// Bit `t` set for each elided activation `t` (the model keeps them so).
    pub fn elided_bits(&self) -> u64 {
        self.elided
            .iter()
            .rev()
            .fold(0, |bits, &e| (bits << 1) | u64::from(e))
    }
}

impl Liveness {
    /// Nothing known yet: for [`check_graph`] to fill in.
    pub fn new() -> Self {
        Liveness {
            lifetimes: [Lifetime::default(); MAX_TENSORS],
            root: [0; MAX_TENSORS],
            is_activation: [false; MAX_TENSORS],
            elided: [false; MAX_TENSORS],
        }
    }
}

/// Checks roles, shapes and op order; fills in `live`, the liveness the plan must respect
/// (in place: it is a few hundred bytes, which a returned value would be copied through).
pub(crate) fn check_graph<'a>(g: &impl Graph<'a>, live: &mut Liveness) -> Result<(), Error> {
    let n_tensors = g.tensor_count();
    let n_ops = g.op_count();
    if n_tensors > MAX_TENSORS || n_ops > super::MAX_OPS {
        return Err(Error::CapacityExceeded);
    }
    if n_ops == 0 {
        return Err(Error::BadHeader);
    }
    *live = Liveness::new();
    for t in 0..n_tensors {
        let id = TensorId::try_from(t).map_err(|_| Error::CapacityExceeded)?;
        let tensor = g.tensor(id)?;
        set(&mut live.root, t, id)?;
        set(&mut live.is_activation, t, !tensor.is_constant())?;
        if !tensor.is_constant() && tensor.dtype != DType::Int8 {
            return Err(Error::BadDataType);
        }
    }
    let input = g.input();
    activation(g, input)?;
    let mut produced: u64 = bit(input)?;

    for i in 0..n_ops {
        let op = g.op(i)?;
        let step = u8::try_from(i + 1).map_err(|_| Error::CapacityExceeded)?;
        check_op(g, &op)?;
        if let Op::MaxPool(p) = op {
            // A max pool fused into the convolution before it is that convolution's work.
            if !live.is_elided(usize::from(p.input)) {
                OpKind::MaxPool.require_built()?;
            }
        }
        if let Some(pool) = op.fused_pool() {
            check_fusion(g, i, &op, &pool)?;
            set(&mut live.elided, usize::from(op.output()), true)?;
        }
        let (src, dst) = (op.input(), op.output());
        if produced & bit(src)? == 0 || produced & bit(dst)? != 0 {
            return Err(Error::BadOpOrder);
        }
        produced |= bit(dst)?;
        let src_root = get(&live.root, usize::from(src))?;
        extend_last(&mut live.lifetimes, src_root, step)?;
        let dst_root = if matches!(op, Op::Reshape { .. }) {
            src_root
        } else {
            dst
        };
        set(&mut live.root, usize::from(dst), dst_root)?;
        if dst_root == dst {
            // A pool fused into the convolution before it is computed one step early.
            let first = if live.is_elided(usize::from(src)) {
                step - 1
            } else {
                step
            };
            set(
                &mut live.lifetimes,
                usize::from(dst),
                Lifetime { first, last: step },
            )?;
        }
    }
    let output = g.output();
    activation(g, output)?;
    if produced & bit(output)? == 0 {
        return Err(Error::BadOpOrder);
    }
    let end = u8::try_from(n_ops + 1).map_err(|_| Error::CapacityExceeded)?;
    extend_last(
        &mut live.lifetimes,
        get(&live.root, usize::from(output))?,
        end,
    )?;
    // An activation nothing writes would hold garbage: reject it.
    for t in 0..n_tensors {
        if get(&live.is_activation, t)? && produced & bit_usize(t)? == 0 {
            return Err(Error::BadOpOrder);
        }
    }
    Ok(())
}

/// Checks that the stored plan keeps simultaneously live buffers apart and inside the arena.
pub(crate) fn check_plan<'a>(
    g: &impl Graph<'a>,
    live: &Liveness,
    arena_size: usize,
) -> Result<(), Error> {
    let n = g.tensor_count();
    for t in 0..n {
        if !get(&live.is_activation, t)? {
            continue;
        }
        let tensor = g.tensor(t as TensorId)?;
        if live.is_elided(t) {
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
        let root = g.tensor(get(&live.root, t)?)?;
        if root.arena_offset != tensor.arena_offset {
            return Err(Error::BadPlan);
        }
    }
    for a in 0..n {
        if !live.owns_buffer(a) {
            continue;
        }
        let ta = g.tensor(a as TensorId)?;
        for b in (a + 1)..n {
            if !live.owns_buffer(b) {
                continue;
            }
            let tb = g.tensor(b as TensorId)?;
            if get(&live.lifetimes, a)?.overlaps(&get(&live.lifetimes, b)?)
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

fn bit(id: TensorId) -> Result<u64, Error> {
    bit_usize(usize::from(id))
}

fn bit_usize(i: usize) -> Result<u64, Error> {
    u32::try_from(i)
        .ok()
        .and_then(|i| 1u64.checked_shl(i))
        .filter(|_| i < MAX_TENSORS)
        .ok_or(Error::BadTensorIndex(i.min(usize::from(u16::MAX)) as u16))
}

fn get<T: Copy>(a: &[T], i: usize) -> Result<T, Error> {
    a.get(i).copied().ok_or(Error::CapacityExceeded)
}

fn set<T>(a: &mut [T], i: usize, v: T) -> Result<(), Error> {
    *a.get_mut(i).ok_or(Error::CapacityExceeded)? = v;
    Ok(())
}

fn extend_last(l: &mut [Lifetime], t: TensorId, step: u8) -> Result<(), Error> {
    let slot = l.get_mut(usize::from(t)).ok_or(Error::CapacityExceeded)?;
    slot.last = slot.last.max(step);
    Ok(())
}
