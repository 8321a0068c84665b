//! Model inputs and labels from `.npy` arrays: the shape checks and TFLite's input
//! quantization, so that `run`, `eval` and `convert --calibrate` serve any model, not only
//! 28×28 digits.

use crate::npy::{self, Array, Values};
use anyhow::{bail, ensure, Context, Result};
use fixnet::format::Tensor;
use std::io::Read;
use std::path::Path;

/// Quantized samples ready for the interpreter: `count` rows of `per_sample` int8 values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Samples {
    /// Values per sample (the model input's element count).
    pub per_sample: usize,
    /// All values, sample after sample.
    pub data: Vec<i8>,
}

impl Samples {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.data.len() / self.per_sample.max(1)
    }

    /// True when there is no sample.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values of sample `i` (empty past the end).
    pub fn sample(&self, i: usize) -> &[i8] {
        let n = self.per_sample;
        self.data.get(i * n..(i + 1) * n).unwrap_or_default()
    }

    /// Keeps the first `n` samples.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.data.truncate(n * self.per_sample);
    }
}

/// True when the file starts with the `.npy` magic (the format is told by content, as IDX's
/// gzip is, not by the name).
pub fn is_npy(path: &Path) -> Result<bool> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut magic = [0u8; 6];
    let mut got = 0;
    while got < magic.len() {
        match file.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
    Ok(got == magic.len() && magic == *b"\x93NUMPY")
}

/// The largest `.npy` file read (the limit IDX payloads have): a bigger one is refused from
/// its length, before anything is read.
pub const MAX_NPY_BYTES: u64 = 1 << 30;

/// Reads and decodes a `.npy` file: the magic is checked first and the file's length
/// against [`MAX_NPY_BYTES`], so a foreign or huge file costs no memory.
pub fn read_npy(path: &Path) -> Result<Array> {
    ensure!(
        is_npy(path)?,
        "{}: not a .npy file (it does not start with the \\x93NUMPY magic)",
        path.display()
    );
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    ensure!(
        len <= MAX_NPY_BYTES,
        "{}: {len} bytes, more than the {MAX_NPY_BYTES}-byte limit for .npy arrays",
        path.display()
    );
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    npy::decode(&bytes).with_context(|| path.display().to_string())
}

/// The dims of one sample of a model input: the batch-1 in front dropped (`[1, 49, 10, 1]`
/// → `[49, 10, 1]`, `[1, 640]` → `[640]`), a rank-1 input kept as it is.
pub fn sample_dims(input_dims: &[usize]) -> Vec<usize> {
    match input_dims {
        [1, rest @ ..] if !rest.is_empty() => rest.to_vec(),
        dims => dims.to_vec(),
    }
}

/// `(a, b, c)` as numpy prints a shape.
fn tuple(dims: &[usize]) -> String {
    match dims {
        [one] => format!("({one},)"),
        _ => {
            let parts: Vec<String> = dims.iter().map(usize::to_string).collect();
            format!("({})", parts.join(", "))
        }
    }
}

/// How many samples an array of `shape` holds for a model taking `dims` per sample: the
/// shape must be `(N, …dims)` or `(N, elements)`.
pub fn sample_count(shape: &[usize], dims: &[usize]) -> Result<usize> {
    let elements: usize = dims.iter().product();
    let expected = |first: &str| {
        let parts: Vec<String> = dims.iter().map(usize::to_string).collect();
        format!("({first}, {}) or ({first}, {elements})", parts.join(", "))
    };
    let Some((&n, rest)) = shape.split_first() else {
        bail!(
            "the array is a scalar; the model takes shape {}",
            expected("N")
        );
    };
    if rest == dims || rest == [elements] {
        return Ok(n);
    }
    let per: usize = rest.iter().product();
    if per != elements {
        bail!(
            "wrong element count: shape {} holds {per} values per sample, the model input takes {elements} (shape {})",
            tuple(shape),
            expected(&n.to_string())
        );
    }
    bail!(
        "shape {} does not match the model input: expected {}",
        tuple(shape),
        expected(&n.to_string())
    )
}

/// Quantizes real values to int8 as TFLite's QUANTIZE op does: `round(x / scale) +
/// zero_point`, rounding half away from zero, clamped to −128..=127. NaN has no int8 value
/// and is refused.
pub fn quantize(values: &[f32], scale: f32, zero_point: i32) -> Result<Vec<i8>> {
    if let Some(i) = values.iter().position(|v| v.is_nan()) {
        bail!("value {i} is NaN");
    }
    Ok(values
        .iter()
        .map(|&x| fixnet::quant::quantize_f32(x, scale, zero_point))
        .collect())
}

/// Model inputs from a `.npy` file of shape `(N, …input dims)` or `(N, elements)`: int8
/// values are taken as they are, float32 values are quantized with the input tensor's scale
/// and zero point ([`quantize`]).
pub fn read_inputs(path: &Path, input: &Tensor<'_>) -> Result<Samples> {
    let array = read_npy(path)?;
    inputs_from(array, input).with_context(|| path.display().to_string())
}

/// [`read_inputs`] on a decoded array.
pub fn inputs_from(array: Array, input: &Tensor<'_>) -> Result<Samples> {
    let dims: Vec<usize> = input.dims.as_slice().iter().map(|&d| d.into()).collect();
    let dims = sample_dims(&dims);
    sample_count(&array.shape, &dims)?;
    let per_sample = dims.iter().product();
    let data = match array.values {
        Values::Int8(v) => v,
        Values::Float32(v) => quantize(&v, input.scale, input.zero_point)?,
        Values::Int(_) => bail!(
            "the inputs are an integer array other than int8: give int8 (quantized, used as they are) or float32 (quantized with the model input's scale and zero point)"
        ),
    };
    Ok(Samples { per_sample, data })
}

/// Float calibration samples for a model whose input has `dims` per sample, from a float32
/// `.npy` file of shape `(N, …dims)` or `(N, elements)`.
pub fn read_float_samples(path: &Path, dims: &[usize]) -> Result<Vec<f32>> {
    let array = read_npy(path)?;
    let what = || path.display().to_string();
    sample_count(&array.shape, dims).with_context(what)?;
    match array.values {
        Values::Float32(v) => {
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                bail!("{}: value {i} is not finite", path.display());
            }
            Ok(v)
        }
        _ => bail!(
            "{}: calibration data must be float32 (the float model's own inputs), not {}",
            path.display(),
            array.dtype()
        ),
    }
}

/// Labels from a `.npy` file (any integer type, shape `(N,)`, none negative) or an IDX label
/// file, told apart by content.
pub fn read_labels(path: &Path) -> Result<Vec<usize>> {
    if !is_npy(path)? {
        let labels = crate::idx::read_labels(path)?;
        return Ok(labels.into_iter().map(usize::from).collect());
    }
    let array = read_npy(path)?;
    labels_from(&array).with_context(|| path.display().to_string())
}

/// [`read_labels`] on a decoded array.
pub fn labels_from(array: &Array) -> Result<Vec<usize>> {
    ensure!(
        array.shape.len() == 1,
        "labels must have shape (N,), not {}",
        tuple(&array.shape)
    );
    let Some(values) = array.integers() else {
        bail!("labels must be integers, not {}", array.dtype());
    };
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| usize::try_from(v).map_err(|_| anyhow::anyhow!("label {i} is {v}")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_with_or_without_the_sample_dims() {
        let dims = [49, 10, 1];
        assert_eq!(sample_dims(&[1, 49, 10, 1]), dims);
        assert_eq!(sample_dims(&[1, 640]), [640]);
        assert_eq!(sample_dims(&[12]), [12]);
        assert_eq!(sample_count(&[7, 49, 10, 1], &dims).unwrap(), 7);
        assert_eq!(sample_count(&[7, 490], &dims).unwrap(), 7);
        assert_eq!(sample_count(&[0, 490], &dims).unwrap(), 0);
        let err = sample_count(&[7, 48, 10, 1], &dims)
            .unwrap_err()
            .to_string();
        assert!(err.contains("wrong element count"), "{err}");
        assert!(err.contains("(7, 49, 10, 1) or (7, 490)"), "{err}");
        let err = sample_count(&[7, 10, 49, 1], &dims)
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not match"), "{err}");
        assert!(sample_count(&[490], &dims).is_err());
        assert!(sample_count(&[], &dims).is_err());
        let err = sample_count(&[2, 3], &[640]).unwrap_err().to_string();
        assert!(err.contains("(2, 640) or (2, 640)"), "{err}");
    }

    #[test]
    fn quantization_rounds_half_away_from_zero_and_clamps() {
        // scale 0.5 makes every x / scale exact, so the ties are real ties.
        let x = [0.25f32, -0.25, 0.75, -0.75, 0.2, 100.0, -100.0, 0.0];
        let q = quantize(&x, 0.5, 3).unwrap();
        assert_eq!(q, [4, 2, 5, 1, 3, 127, -128, 3]);
        assert!(quantize(&[1.0, f32::NAN], 0.5, 0).is_err());
        assert_eq!(
            quantize(&[f32::INFINITY, f32::NEG_INFINITY], 0.1, 0).unwrap(),
            [127, -128]
        );
    }

    #[test]
    fn labels_are_one_dimensional_non_negative_integers() {
        let array = |shape: Vec<usize>, values| Array { shape, values };
        assert_eq!(
            labels_from(&array(vec![3], Values::Int(vec![0, 11, 2]))).unwrap(),
            [0, 11, 2]
        );
        assert_eq!(
            labels_from(&array(vec![2], Values::Int8(vec![1, 0]))).unwrap(),
            [1, 0]
        );
        let err = labels_from(&array(vec![2], Values::Int(vec![1, -1]))).unwrap_err();
        assert!(err.to_string().contains("label 1 is -1"), "{err}");
        assert!(labels_from(&array(vec![1, 2], Values::Int(vec![1, 0]))).is_err());
        assert!(labels_from(&array(vec![1], Values::Float32(vec![1.0]))).is_err());
    }
}
