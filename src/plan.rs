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
    let mut order: heapless::Vec<usize, MAX_TENSORS> = (0..n).filter(|&i| active[i]).collect();
    order.sort_unstable_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));

    let mut placed: heapless::Vec<usize, MAX_TENSORS> = heapless::Vec::new();
    let mut arena = 0usize;
    for &i in order.iter() {
        let mut candidate = 0usize;
        // Every clash pushes the candidate past the clashing buffer, so the first offset
        // without a clash is the lowest one that fits.
        while let Some(&j) = placed.iter().find(|&&j| {
            lifetimes[i].overlaps(&lifetimes[j])
                && ranges_overlap(candidate, sizes[i], offsets[j], sizes[j])
        }) {
            candidate = align_up(offsets[j].saturating_add(sizes[j]))?;
        }
        offsets[i] = candidate;
        arena = arena.max(
            candidate
                .checked_add(sizes[i])
                .ok_or(Error::CapacityExceeded)?,
        );
        placed.push(i).map_err(|_| Error::CapacityExceeded)?;
    }
    align_up(arena)
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
}
