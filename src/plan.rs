//! Static memory planning: where each activation buffer lives in the one arena.
//!
//! Run ahead of time by the model writer; the result is stored in the model and checked
//! again at load, so the device never plans anything. The planner keeps no table of its own
//! (it reads and writes the caller's buffers through [`Buffers`]), so a model's size is
//! limited by nothing but its own counts.

use crate::Error;

/// The steps during which a buffer holds live data. Step 0 is the model input; op `i`
/// reads its inputs and writes its output at step `i + 1`, so an op's inputs and output are
/// live at the same time and never share bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Lifetime {
    /// Step that writes the buffer.
    pub first: u16,
    /// Last step that reads it.
    pub last: u16,
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

/// The buffers to place, as the planner sees them.
pub trait Buffers {
    /// Number of buffers (placed or not).
    fn count(&self) -> usize;
    /// Bytes of buffer `i`, or `None` when the planner must not place it (a constant, an
    /// alias of another buffer, a tensor that is never stored).
    fn size(&self, i: usize) -> Option<usize>;
    /// When buffer `i` holds live data.
    fn lifetime(&self, i: usize) -> Lifetime;
    /// Where buffer `i` was placed.
    fn offset(&self, i: usize) -> usize;
    /// Places buffer `i`.
    fn set_offset(&mut self, i: usize, offset: usize);
}

/// The orders in which the planner tries to place buffers; it keeps the smallest arena.
/// Largest-first alone is a good greedy, but on chains of expanding layers (MobileNets)
/// placing the earliest or longest-lived buffers first packs tighter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    Largest,
    LongestLived,
    EarliestFirst,
    LargestArea,
}

const ORDERS: [Order; 4] = [
    Order::Largest,
    Order::LongestLived,
    Order::EarliestFirst,
    Order::LargestArea,
];

/// Places every buffer in one arena and returns the arena's size.
///
/// Greedy: the buffers in one of a few orders (largest first, longest-lived first, earliest
/// first, largest size × lifetime first; lower index first among equals), each at the lowest
/// aligned offset that does not overlap any already placed buffer live at the same time. The
/// order that gives the smallest arena wins (the first of equals).
pub fn plan(buffers: &mut impl Buffers) -> Result<usize, Error> {
    let mut best: Option<(usize, Order)> = None;
    for order in ORDERS {
        let arena = place(buffers, order)?;
        if best.is_none_or(|(smallest, _)| arena < smallest) {
            best = Some((arena, order));
        }
    }
    match best {
        Some((_, order)) => place(buffers, order),
        None => Ok(0),
    }
}

/// Places every buffer in `order`; returns the arena size.
fn place(buffers: &mut impl Buffers, order: Order) -> Result<usize, Error> {
    let mut arena = 0usize;
    let mut previous: Option<Key> = None;
    while let Some(current) = next_in_order(buffers, order, previous) {
        previous = Some(current);
        let (i, size) = (current.index, current.size);
        let life = buffers.lifetime(i);
        let mut candidate = 0usize;
        // Every clash pushes the candidate past the clashing buffer, so the first offset
        // without a clash is the lowest one that fits.
        while let Some(end) = (0..buffers.count()).find_map(|j| {
            let other = key(buffers, order, j)?;
            let clash = other.before(&current)
                && life.overlaps(&buffers.lifetime(j))
                && ranges_overlap(candidate, size, buffers.offset(j), other.size);
            clash.then(|| buffers.offset(j).saturating_add(other.size))
        }) {
            candidate = align_up(end)?;
        }
        buffers.set_offset(i, candidate);
        arena = arena.max(candidate.checked_add(size).ok_or(Error::CapacityExceeded)?);
    }
    align_up(arena)
}

/// Where a buffer comes in an order: buffers are placed by increasing `rank`, then index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    rank: (u64, u64),
    index: usize,
    size: usize,
}

impl Key {
    fn before(&self, other: &Key) -> bool {
        (self.rank, self.index) < (other.rank, other.index)
    }
}

/// Buffer `i`'s key in `order`, `None` when it is not placed.
fn key(buffers: &impl Buffers, order: Order, i: usize) -> Option<Key> {
    let size = buffers.size(i)?;
    let life = buffers.lifetime(i);
    let big = u64::MAX - size as u64;
    let span = u64::from(life.last.saturating_sub(life.first)) + 1;
    let rank = match order {
        Order::Largest => (big, 0),
        Order::LongestLived => (u64::MAX - span, big),
        Order::EarliestFirst => (u64::from(life.first), big),
        Order::LargestArea => (u64::MAX - (size as u64).saturating_mul(span), big),
    };
    Some(Key {
        rank,
        index: i,
        size,
    })
}

/// The buffer placed right after `previous` (the first one when `None`).
///
/// Found by a scan rather than by sorting, so that the planner needs no table (and has no
/// panic path: `slice::sort` may panic on an inconsistent order, `.ci/no-panic`).
fn next_in_order(buffers: &impl Buffers, order: Order, previous: Option<Key>) -> Option<Key> {
    let mut best: Option<Key> = None;
    for i in 0..buffers.count() {
        let Some(k) = key(buffers, order, i) else {
            continue;
        };
        let after_previous = previous.is_none_or(|p| p.before(&k));
        if after_previous && best.is_none_or(|b| k.before(&b)) {
            best = Some(k);
        }
    }
    best
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

    struct Table<'t> {
        sizes: &'t [Option<usize>],
        lives: &'t [Lifetime],
        offsets: Vec<usize>,
    }

    impl Buffers for Table<'_> {
        fn count(&self) -> usize {
            self.sizes.len()
        }
        fn size(&self, i: usize) -> Option<usize> {
            self.sizes[i]
        }
        fn lifetime(&self, i: usize) -> Lifetime {
            self.lives[i]
        }
        fn offset(&self, i: usize) -> usize {
            self.offsets[i]
        }
        fn set_offset(&mut self, i: usize, offset: usize) {
            self.offsets[i] = offset;
        }
    }

    fn life(first: u16, last: u16) -> Lifetime {
        Lifetime { first, last }
    }

    #[test]
    fn buffers_live_at_different_times_share_bytes() {
        // A chain a -> b -> c: a and c never live together, so c can reuse a's bytes.
        let sizes = [Some(100), Some(50), Some(100)];
        let lives = [life(0, 1), life(1, 2), life(2, 3)];
        let mut t = Table {
            sizes: &sizes,
            lives: &lives,
            offsets: vec![0; 3],
        };
        let arena = plan(&mut t).unwrap();
        assert_eq!(arena, 152);
        assert_eq!(t.offsets[0], t.offsets[2]);
        assert!(!ranges_overlap(t.offsets[0], 100, t.offsets[1], 50));
    }

    #[test]
    fn a_tensor_with_two_readers_stays_apart_from_everything_until_its_last_reader() {
        // x (step 0..3) is read by ops 1 and 3 (a residual branch); y, z in between.
        let sizes = [Some(64), Some(64), Some(64), Some(64)];
        let lives = [life(0, 3), life(1, 2), life(2, 3), life(3, 4)];
        let mut t = Table {
            sizes: &sizes,
            lives: &lives,
            offsets: vec![0; 4],
        };
        let arena = plan(&mut t).unwrap();
        for a in 0..4 {
            for b in a + 1..4 {
                if lives[a].overlaps(&lives[b]) {
                    assert!(!ranges_overlap(t.offsets[a], 64, t.offsets[b], 64));
                }
            }
        }
        assert_eq!(arena, 3 * 64);
    }

    #[test]
    fn order_is_largest_first_then_index_skipping_unplaced() {
        let sizes = [Some(5), Some(9), None, Some(1), Some(9), Some(0), Some(7)];
        let mut order = vec![];
        let mut t = Table {
            sizes: &sizes,
            lives: &[Lifetime::default(); 7],
            offsets: vec![0; 7],
        };
        let mut previous = None;
        while let Some(next) = next_in_order(&t, Order::Largest, previous) {
            order.push(next.index);
            previous = Some(next);
        }
        assert_eq!(order, [1, 4, 6, 0, 3, 5]);
        plan(&mut t).unwrap();
    }

    #[test]
    fn the_best_of_several_orders_is_kept() {
        // A chain whose largest buffer comes last: largest-first puts it at 0 and then has
        // to stack the two early buffers, live together, above each other... anywhere but
        // where the late one goes. Every plan is checked safe, and the arena is the bound.
        let sizes = [Some(40), Some(30), Some(20), Some(60)];
        let lives = [life(0, 1), life(1, 2), life(2, 3), life(3, 4)];
        let mut t = Table {
            sizes: &sizes,
            lives: &lives,
            offsets: vec![0; 4],
        };
        let arena = plan(&mut t).unwrap();
        for a in 0..4 {
            for b in a + 1..4 {
                if lives[a].overlaps(&lives[b]) {
                    let (sa, sb) = (sizes[a].unwrap(), sizes[b].unwrap());
                    assert!(!ranges_overlap(t.offsets[a], sa, t.offsets[b], sb));
                }
            }
        }
        // The most bytes live at one step: 20 + 60 at step 3, 40 + 30 at step 1.
        assert_eq!(arena, 80);
    }
}
