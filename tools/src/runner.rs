//! Running a model over a set of inputs: IDX images or quantized samples.

use crate::idx::Images;
use crate::inputs::Samples;
use crate::parallel;
use anyhow::{anyhow, ensure, Result};
use fixnet::{Interpreter, Model};
use std::sync::atomic::Ordering;

/// Runs `model` on every image (pixels quantized as `Interpreter::set_input_grey` does:
/// `u8 − 128` for the usual 1/255, −128 input) and returns the int8 outputs, one row of
/// `outputs` values per image. `progress` is called with the number of images done.
pub fn run_images(
    model: &Model<'_>,
    images: &Images,
    progress: impl FnMut(usize),
) -> Result<(usize, Vec<i8>)> {
    let input = model.input().map_err(|e| anyhow!("model input: {e}"))?;
    let pixels = images.rows * images.cols;
    ensure!(
        input.dims.num_elements() == pixels,
        "the model input has {} elements ({:?}) but the images have {}x{} = {pixels} pixels",
        input.dims.num_elements(),
        input.dims.as_slice(),
        images.rows,
        images.cols
    );
    run_each(
        model,
        images.len(),
        |interp, i| interp.set_input_grey(images.image(i)),
        progress,
    )
}

/// Runs `model` on every sample, its int8 values copied into the input tensor as they are,
/// and returns the outputs as [`run_images`] does.
pub fn run_samples(
    model: &Model<'_>,
    samples: &Samples,
    progress: impl FnMut(usize),
) -> Result<(usize, Vec<i8>)> {
    let input = model.input().map_err(|e| anyhow!("model input: {e}"))?;
    ensure!(
        input.dims.num_elements() == samples.per_sample,
        "the model input has {} elements ({:?}) but the samples have {}",
        input.dims.num_elements(),
        input.dims.as_slice(),
        samples.per_sample
    );
    run_each(
        model,
        samples.len(),
        |interp, i| {
            let (dst, src) = (interp.input_mut(), samples.sample(i));
            if dst.len() != src.len() {
                return Err(fixnet::Error::ShapeMismatch);
            }
            dst.copy_from_slice(src);
            Ok(())
        },
        progress,
    )
}

/// The loop shared by both: `fill` writes input `i`, then the model runs and its output row
/// is kept. Inputs are split over [`parallel::default_threads`] threads, each with its own
/// interpreter and arena; the rows come back in input order, the same bytes as on one thread.
fn run_each(
    model: &Model<'_>,
    count: usize,
    fill: impl Fn(&mut Interpreter<'_, '_>, usize) -> Result<(), fixnet::Error> + Sync,
    progress: impl FnMut(usize),
) -> Result<(usize, Vec<i8>)> {
    let outputs = model
        .output()
        .map_err(|e| anyhow!("model output: {e}"))?
        .dims
        .num_elements();
    let rows = parallel::map_chunks(
        count,
        parallel::default_threads(),
        |chunk, done| {
            let mut arena = vec![0u8; model.arena_size()];
            let mut interp = Interpreter::new(model, &mut arena).map_err(|e| anyhow!("{e}"))?;
            let mut out = Vec::with_capacity(chunk.len().saturating_mul(outputs));
            for i in chunk {
                fill(&mut interp, i).map_err(|e| anyhow!("input {i}: {e}"))?;
                interp
                    .invoke()
                    .map_err(|e| anyhow!("running input {i}: {e}"))?;
                out.extend_from_slice(interp.output());
                if i % 64 == 63 {
                    done.fetch_add(64, Ordering::Relaxed);
                }
            }
            Ok(out)
        },
        progress,
    )?;
    Ok((outputs, rows.concat()))
}
