//! Static memory planning: where each activation buffer lives in the one arena.
//!
//! Run ahead of time by the model writer; the result is stored in the model and checked
//! again at load, so the device never plans anything.

use crate::format::MAX_TENSORS;
use crate::Error;

/// The steps during which a buffer holds live data. Step 0 is the model input; op `i`
/// reads its input and writes its output at step `i + 1`, so an op's input and output are
/// live at the same time and never share bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Lifetime {
    /// Step that writes the buffer.
    pub first: u8,
    /// Last step that reads it.
    pub last: u8,
}

impl Lifetime {
    /// True when both buffers hold live data at some common step.
    pub fn overlaps(&self, other: &Lifetime) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

/// True when `[a, a + a_len)` and `[b, b + b_len)` share a byte.
pub fn ranges_overlap(a: usize, a_len: usize, b: usize, b_len: usize) -> bool {
    a < b.saturating_add(b_len) && b < a.saturating_add(a_len) && a_len > 0 && b_len > 0
}

/// Places buffers of the given `sizes` and `lifetimes` in one arena and returns its size.
///
/// Greedy: largest buffer first, each at the lowest aligned offset that does not overlap
/// any already placed buffer live at the same time. `offsets` receives each buffer's offset;
/// buffers whose `active` flag is false are skipped (the caller aliases them).
pub fn plan(
    sizes: &[usize],
    lifetimes: &[Lifetime],
    active: &[bool],
    offsets: &mut [usize],
) -> Result<usize, Error> {
    let n = sizes.len();
    if n > MAX_TENSORS || lifetimes.len() != n || active.len() != n || offsets.len() != n {
        return Err(Error::CapacityExceeded);
    }
    let order = largest_first(sizes, active)?;
    let mut placed: heapless::Vec<usize, MAX_TENSORS> = heapless::Vec::new();
    let mut arena = 0usize;
    for &i in order.iter() {
        let size = *sizes.get(i).ok_or(Error::CapacityExceeded)?;
        let life = *lifetimes.get(i).ok_or(Error::CapacityExceeded)?;
        let mut candidate = 0usize;
        // Every clash pushes the candidate past the clashing buffer, so the first offset
        // without a clash is the lowest one that fits.
        while let Some(end) = placed.iter().find_map(|&j| {
            let (&other_size, &other_offset) = (sizes.get(j)?, offsets.get(j)?);
            let clash = life.overlaps(lifetimes.get(j)?)
                && ranges_overlap(candidate, size, other_offset, other_size);
            clash.then(|| other_offset.saturating_add(other_size))
        }) {
            candidate = align_up(end)?;
        }
        *offsets.get_mut(i).ok_or(Error::CapacityExceeded)? = candidate;
        arena = arena.max(candidate.checked_add(size).ok_or(Error::CapacityExceeded)?);
        placed.push(i).map_err(|_| Error::CapacityExceeded)?;
    }
    align_up(arena)
}

/// Indices of the `active` buffers, largest first and in index order among equals.
///
/// Picks the largest remaining buffer over and over (at most [`MAX_TENSORS`] of them):
/// unlike `slice::sort`, which may panic on an inconsistent order, this has no panic path
/// for the no-panic proof to trip over (`.ci/no-panic`, level `write`).
fn largest_first(
    sizes: &[usize],
    active: &[bool],
) -> Result<heapless::Vec<usize, MAX_TENSORS>, Error> {
    let mut order: heapless::Vec<usize, MAX_TENSORS> = heapless::Vec::new();
    let mut taken = [false; MAX_TENSORS];
    loop {
        let mut largest: Option<(usize, usize)> = None;
        for (i, ((&size, &is_active), &is_taken)) in
            sizes.iter().zip(active).zip(taken.iter()).enumerate()
        {
            if is_active && !is_taken && largest.is_none_or(|(_, best)| size > best) {
                largest = Some((i, size));
            }
        }
        let Some((i, _)) = largest else {
            return Ok(order);
        };
        order.push(i).map_err(|_| Error::CapacityExceeded)?;
        if let Some(t) = taken.get_mut(i) {
            *t = true;
        }
    }
}

/// Activation buffers start on word boundaries so that kernels may load four int8 values at
/// once.
const ARENA_ALIGN: usize = 4;

fn align_up(x: usize) -> Result<usize, Error> {
    x.checked_add(ARENA_ALIGN - 1)
        .map(|v| v & !(ARENA_ALIGN - 1))
        .ok_or(Error::CapacityExceeded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_live_at_different_times_share_bytes() {
        // A chain a -> b -> c: a and c never live together, so c can reuse a's bytes.
        let sizes = [100, 50, 100];
        let life = [
            Lifetime { first: 0, last: 1 },
            Lifetime { first: 1, last: 2 },
            Lifetime { first: 2, last: 3 },
        ];
        let mut offsets = [0; 3];
        let arena = plan(&sizes, &life, &[true; 3], &mut offsets).unwrap();
        assert_eq!(arena, 152);
        assert_eq!(offsets[0], offsets[2]);
        assert!(!ranges_overlap(offsets[0], 100, offsets[1], 50));
    }

    #[test]
    fn largest_first_keeps_index_order_among_equals() {
        let sizes = [5, 9, 5, 1, 9, 0, 7];
        let active = [true, true, false, true, true, true, true];
        let order = largest_first(&sizes, &active).unwrap();
        assert_eq!(order.as_slice(), &[1, 4, 6, 0, 3, 5]);
    }
}
