//! Work over many inputs split across threads: contiguous chunks, one per thread, results
//! joined in input order, so that any per-chunk state (an interpreter and its arena) is built
//! once per thread and the outcome equals a single-threaded run's.

use anyhow::{anyhow, Result};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The `--threads` setting; 0 when not set (every core).
static DEFAULT_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the thread count of the tool's parallel passes (the `--threads` option); `None` goes
/// back to every core.
pub fn set_default_threads(threads: Option<usize>) {
    DEFAULT_THREADS.store(threads.unwrap_or(0), Ordering::Relaxed);
}

/// The thread count to use: [`set_default_threads`]'s, else every core.
pub fn default_threads() -> usize {
    match DEFAULT_THREADS.load(Ordering::Relaxed) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Runs `work` over `0..count` split into at most `threads` contiguous chunks, each on its
/// own thread (the first on the caller's), and returns the chunks' results in order. `work`
/// gets its chunk and a counter to add the inputs it finished to; `progress` is called on the
/// caller's thread with that counter's value now and then, and with `count` at the end.
///
/// Errors: the first chunk's error in input order, so the error a single thread would have
/// met first.
pub fn map_chunks<T: Send>(
    count: usize,
    threads: usize,
    work: impl Fn(Range<usize>, &AtomicUsize) -> Result<T> + Sync,
    mut progress: impl FnMut(usize),
) -> Result<Vec<T>> {
    let threads = threads.clamp(1, count.max(1));
    let per = count.div_ceil(threads);
    let chunks: Vec<Range<usize>> = (0..threads)
        .map(|t| (t * per).min(count)..((t + 1) * per).min(count))
        .collect();
    let done = AtomicUsize::new(0);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .skip(1)
            .map(|chunk| {
                let (work, done, chunk) = (&work, &done, chunk.clone());
                scope.spawn(move || work(chunk, done))
            })
            .collect();
        let mut results = Vec::with_capacity(threads);
        results.push(work(chunks[0].clone(), &done));
        for handle in handles {
            while !handle.is_finished() {
                progress(done.load(Ordering::Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            results.push(
                handle
                    .join()
                    .unwrap_or_else(|_| Err(anyhow!("a worker thread panicked"))),
            );
        }
        results
    });
    progress(count);
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_input_once_in_order() {
        for (count, threads) in [(0, 4), (1, 4), (7, 3), (10, 1), (10, 16), (1000, 7)] {
            let parts = map_chunks(count, threads, |r, _| Ok(r.collect::<Vec<_>>()), |_| {});
            let flat: Vec<usize> = parts.unwrap().into_iter().flatten().collect();
            assert_eq!(
                flat,
                (0..count).collect::<Vec<_>>(),
                "{count} over {threads}"
            );
        }
    }

    #[test]
    fn first_error_in_input_order_wins() {
        let r = map_chunks(
            100,
            4,
            |r, _| {
                if r.contains(&30) || r.contains(&80) {
                    Err(anyhow!("chunk from {}", r.start))
                } else {
                    Ok(())
                }
            },
            |_| {},
        );
        assert_eq!(r.unwrap_err().to_string(), "chunk from 25");
    }
}
