//! A bump allocator over one caller buffer: the trainer's whole state is carved from it, so
//! the RAM a fine-tuning session needs is fixed before it starts and nothing is allocated.

use super::TrainError;

/// Every carve is rounded up to this many bytes, so the size of a layout does not depend on
/// the order of its buffers and [`Bump::size_of`] can add sizes up front.
pub const CARVE_ALIGN: usize = 8;

/// Hands out aligned, zeroed slices of one `&mut [u8]`, front to back.
#[derive(Debug)]
pub struct Bump<'a> {
    rest: &'a mut [u8],
    used: usize,
    capacity: usize,
}

impl<'a> Bump<'a> {
    /// A bump allocator over `buffer`. The first [`CARVE_ALIGN`]-aligned address is used as the
    /// start, so a buffer of any alignment works (at the cost of up to 7 bytes).
    pub fn new(buffer: &'a mut [u8]) -> Self {
        let capacity = buffer.len();
        let skip = buffer.as_ptr().align_offset(CARVE_ALIGN).min(buffer.len());
        let rest = buffer.split_at_mut(skip).1;
        Bump {
            rest,
            used: skip,
            capacity,
        }
    }

    /// Bytes a buffer of `n` elements of `T` takes in the arena.
    pub const fn size_of<T>(n: usize) -> usize {
        let bytes = n.saturating_mul(core::mem::size_of::<T>());
        bytes.saturating_add(CARVE_ALIGN - 1) / CARVE_ALIGN * CARVE_ALIGN
    }

    /// Bytes handed out so far, alignment included.
    pub fn used(&self) -> usize {
        self.used
    }

    /// `n` zeroed elements of `T` (alignment at most [`CARVE_ALIGN`]).
    pub fn take<T: bytemuck::Pod>(&mut self, n: usize) -> Result<&'a mut [T], TrainError> {
        let bytes = Self::size_of::<T>(n);
        if bytes > self.rest.len() || core::mem::align_of::<T>() > CARVE_ALIGN {
            return Err(TrainError::ArenaTooSmall {
                needed: self.used.saturating_add(bytes),
                provided: self.capacity,
            });
        }
        let rest = core::mem::take(&mut self.rest);
        let (head, tail) = rest.split_at_mut(bytes);
        self.rest = tail;
        self.used += bytes;
        let head =
            head.get_mut(..n * core::mem::size_of::<T>())
                .ok_or(TrainError::ArenaTooSmall {
                    needed: self.used,
                    provided: self.capacity,
                })?;
        head.fill(0);
        bytemuck::try_cast_slice_mut(head).map_err(|_| TrainError::ArenaTooSmall {
            needed: self.used,
            provided: self.capacity,
        })
    }
}
