//! The int8 forward pass of training: the interpreter's own op dispatch, run op by op so
//! that the activations the backward pass needs can be copied out before the memory plan
//! reuses their bytes. Its outputs are the device's outputs bit for bit (checked by the tests
//! against the interpreter).

use crate::format::{Model, Op, TensorId};
use crate::interpreter::arena_range;
pub(crate) use crate::interpreter::op_window;
use crate::overlay::Overlay;
use crate::Error;

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

/// Runs op `op` of `model` on `arena`, reading constants through `overlay`: exactly the
/// interpreter's dispatch, so training sees the device's bits.
pub(crate) fn run_op(
    model: &Model<'_>,
    arena: &mut [u8],
    overlay: &Overlay<'_>,
    op: &Op<'_>,
) -> Result<(), Error> {
    crate::interpreter::execute(model, overlay, arena, op)
}
