//! Running a model over a set of images.

use crate::idx::Images;
use anyhow::{anyhow, ensure, Result};
use fixnet::{Interpreter, Model};

/// Runs `model` on every image (pixels quantized as `Interpreter::set_input_grey` does:
/// `u8 − 128` for the usual 1/255, −128 input) and returns the int8 outputs, one row of
/// `outputs` values per image. `progress` is called with the number of images done.
pub fn run_images(
    model: &Model<'_>,
    images: &Images,
    mut progress: impl FnMut(usize),
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
    let mut arena = vec![0u8; model.arena_size()];
    let mut interp = Interpreter::new(model, &mut arena).map_err(|e| anyhow!("{e}"))?;
    let outputs = interp.output().len();
    let mut out = Vec::with_capacity(images.len() * outputs);
    for i in 0..images.len() {
        interp
            .set_input_grey(images.image(i))
            .map_err(|e| anyhow!("image {i}: {e}"))?;
        interp
            .invoke()
            .map_err(|e| anyhow!("running image {i}: {e}"))?;
        out.extend_from_slice(interp.output());
        if i % 64 == 63 {
            progress(i + 1);
        }
    }
    progress(images.len());
    Ok((outputs, out))
}
