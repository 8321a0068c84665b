//! Constants replaced in RAM: fine-tuned weights and biases laid over a flash model.

use crate::format::{DType, Model, TensorId};
use crate::Error;

/// Most constants one overlay may replace.
pub const MAX_OVERLAY: usize = 16;

/// Replacement values for some of a model's constant tensors.
///
/// The model in flash stays untouched; an [`Interpreter`](crate::Interpreter) made with
/// [`Interpreter::with_overlay`](crate::Interpreter::with_overlay) reads these instead.
// Plain arrays rather than `heapless::Vec`: an overlay needs no destructor, so an
// interpreter holding one can be dropped in any order relative to the buffers it borrows.
#[derive(Clone, Copy, Debug, Default)]
pub struct Overlay<'a> {
    int8: [Option<(TensorId, &'a [i8])>; MAX_OVERLAY],
    int32: [Option<(TensorId, &'a [i32])>; MAX_OVERLAY],
}

impl<'a> Overlay<'a> {
    /// An overlay that replaces nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces int8 constant `id` (weights) with `values`.
    pub fn set_int8(&mut self, id: TensorId, values: &'a [i8]) -> Result<(), Error> {
        put(&mut self.int8, id, values)
    }

    /// Replaces int32 constant `id` (biases) with `values`.
    pub fn set_int32(&mut self, id: TensorId, values: &'a [i32]) -> Result<(), Error> {
        put(&mut self.int32, id, values)
    }

    /// The replacement of int8 constant `id`, if any.
    pub fn int8(&self, id: TensorId) -> Option<&'a [i8]> {
        find(&self.int8, id)
    }

    /// The replacement of int32 constant `id`, if any.
    pub fn int32(&self, id: TensorId) -> Option<&'a [i32]> {
        find(&self.int32, id)
    }

    /// Checks that every replacement names a constant of the right type and length.
    pub fn check(&self, model: &Model<'_>) -> Result<(), Error> {
        let fits = |id: TensorId, dtype: DType, len: usize| -> Result<(), Error> {
            let t = model.tensor(id)?;
            if !t.is_constant() || t.dtype != dtype {
                return Err(Error::BadTensorIndex(id));
            }
            if t.dims.num_elements() != len {
                return Err(Error::ShapeMismatch);
            }
            Ok(())
        };
        for (id, v) in self.int8.iter().flatten() {
            fits(*id, DType::Int8, v.len())?;
        }
        for (id, v) in self.int32.iter().flatten() {
            fits(*id, DType::Int32, v.len())?;
        }
        Ok(())
    }
}

fn find<'a, T>(slots: &[Option<(TensorId, &'a [T])>], id: TensorId) -> Option<&'a [T]> {
    slots
        .iter()
        .flatten()
        .find(|(t, _)| *t == id)
        .map(|(_, v)| *v)
}

/// Replaces `id`'s entry, or fills the first free slot.
fn put<'a, T>(
    slots: &mut [Option<(TensorId, &'a [T])>],
    id: TensorId,
    values: &'a [T],
) -> Result<(), Error> {
    let slot = match slots
        .iter()
        .position(|s| matches!(s, Some((t, _)) if *t == id))
    {
        Some(i) => slots.get_mut(i),
        None => slots.iter_mut().find(|s| s.is_none()),
    }
    .ok_or(Error::CapacityExceeded)?;
    *slot = Some((id, values));
    Ok(())
}
