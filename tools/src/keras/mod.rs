//! Importing float Keras models (`.keras` archives and legacy `.h5` files) and quantizing them
//! to fixnet with post-training calibration.
//!
//! ```no_run
//! # fn demo() -> Result<(), fixnet_tools::keras::KerasError> {
//! use fixnet_tools::keras;
//! let model = keras::load("seed_cnn.keras")?;
//! let images = fixnet_tools::idx::read_images("data/mnist/train-images-idx3-ubyte.gz".as_ref())
//!     .map_err(|e| keras::KerasError::Calibration(format!("{e:#}")))?;
//! let fxn: Vec<u8> = keras::convert(&model, &images, &keras::CalibrationOptions::default())?;
//! # let _ = fxn; Ok(()) }
//! ```
//!
//! Supported layers: `InputLayer`, `Conv2D`, `DepthwiseConv2D`, `MaxPooling2D`,
//! `AveragePooling2D`, `GlobalAveragePooling2D` (an average pool over the whole image, then a
//! reshape unless `keepdims`), `Flatten`, `Reshape`, `Dense`, `Add`, `BatchNormalization`
//! (folded into the Conv2D / DepthwiseConv2D / Dense before it when nothing else reads that
//! layer, otherwise a per-channel affine: a 1x1 depthwise convolution, or a diagonal Dense on
//! vectors), `ZeroPadding2D` (folded into the next convolution when it is exactly that
//! convolution's SAME padding, otherwise a PAD op), `Activation` / `ReLU` (fused into the
//! layer before, which must have no other reader), `Softmax` and `Dropout` (identity), with
//! activations linear, relu, relu6 and softmax, `valid` / `same` padding, any strides and no
//! dilation, in a `Sequential` model or a single-input, single-output `Functional` graph
//! (Keras 2 or 3 configs; shared layers are not supported). Anything else is rejected with an
//! error naming the layer.

mod build;
mod config;
mod error;
mod fold;
mod hdf5;
mod model;
mod quantize;

pub use error::KerasError;
pub use model::{argmax, FloatLayer, FloatModel, FloatOp, PoolParams};
pub use quantize::{
    asymmetric, calibrate, quantize, CalibrationOptions, CalibrationSet, FloatSamples, RangeMethod,
    Ranges,
};

use config::{parse_model_config, snake_case, LayerSpec, ModelSpec};
use hdf5::{read_array, string_attr, strings_attr, subgroups, Array, H5};
use model::WeightSource;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Loads a float Keras model from a `.keras` archive or a legacy Keras `.h5` file (told apart
/// by their contents, not their extension).
pub fn load(path: impl AsRef<Path>) -> Result<FloatModel, KerasError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| KerasError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    load_bytes(&bytes).map_err(|e| match e {
        KerasError::UnknownFormat(_) => KerasError::UnknownFormat(path.to_path_buf()),
        other => other,
    })
}

/// [`load`] from the file's bytes.
pub fn load_bytes(bytes: &[u8]) -> Result<FloatModel, KerasError> {
    // The HDF5 reader is a third-party parser of untrusted bytes: should it ever panic on a
    // malformed file, report an error rather than abort the tool.
    std::panic::catch_unwind(|| {
        if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
            load_keras_archive(bytes)
        } else if bytes.starts_with(b"\x89HDF\r\n\x1a\n") {
            load_legacy_h5(bytes.to_vec())
        } else {
            Err(KerasError::UnknownFormat("<bytes>".into()))
        }
    })
    .unwrap_or_else(|_| {
        Err(KerasError::Hdf5(
            "the reader failed on malformed data".into(),
        ))
    })
}

/// Calibrates `model` on (at most `options.max_images` of) `data` — IDX images or float
/// samples ([`CalibrationSet`]) — quantizes it and lowers it to fixnet model bytes.
pub fn convert<'a>(
    model: &FloatModel,
    data: impl Into<CalibrationSet<'a>>,
    options: &CalibrationOptions,
) -> Result<Vec<u8>, KerasError> {
    let ranges = calibrate(model, data, options)?;
    let graph = quantize(model, &ranges)?;
    crate::lower::lower(&graph).map_err(|e| KerasError::Quantize(format!("{e:#}")))
}

/// `fixnet convert MODEL.keras|MODEL.h5 --calibrate IMAGES -o OUT.fxn` in one call: loads the
/// model and the calibration images, converts, and writes `output`. Returns the model size.
pub fn convert_file(
    model_path: impl AsRef<Path>,
    calibration_images: impl AsRef<Path>,
    output: impl AsRef<Path>,
    options: &CalibrationOptions,
) -> Result<usize, KerasError> {
    let model = load(model_path)?;
    let images = crate::idx::read_images(calibration_images.as_ref())
        .map_err(|e| KerasError::Calibration(format!("{e:#}")))?;
    let bytes = convert(&model, &images, options)?;
    let output = output.as_ref();
    std::fs::write(output, &bytes).map_err(|source| KerasError::Io {
        path: output.to_path_buf(),
        source,
    })?;
    Ok(bytes.len())
}

fn load_keras_archive(bytes: &[u8]) -> Result<FloatModel, KerasError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| KerasError::Archive(format!("not a readable zip archive: {e}")))?;
    let mut member = |name: &str| -> Result<Vec<u8>, KerasError> {
        let mut file = zip
            .by_name(name)
            .map_err(|e| KerasError::Archive(format!("no '{name}' in the archive: {e}")))?;
        let mut out = Vec::new();
        file.read_to_end(&mut out)
            .map_err(|e| KerasError::Archive(format!("cannot extract '{name}': {e}")))?;
        Ok(out)
    };
    let config = member("config.json")?;
    let weights = member("model.weights.h5")?;
    let config = String::from_utf8(config)
        .map_err(|_| KerasError::Archive("config.json is not UTF-8".into()))?;
    let spec = parse_model_config(&config)?;
    let h5 = H5::from_bytes(weights)?;
    let source = ArchiveWeights::new(&h5, &spec)?;
    FloatModel::build(&spec, &source)
}

fn load_legacy_h5(bytes: Vec<u8>) -> Result<FloatModel, KerasError> {
    let h5 = H5::from_bytes(bytes)?;
    let root = h5.root()?;
    let config = string_attr(&root, "model_config")?.ok_or_else(|| {
        KerasError::Hdf5(
            "no 'model_config' attribute: this is a weights-only file, not a saved model".into(),
        )
    })?;
    let spec = parse_model_config(&config)?;
    let weights = h5
        .group("model_weights")
        .ok_or_else(|| KerasError::Hdf5("no 'model_weights' group".into()))?;
    FloatModel::build(&spec, &LegacyWeights { root: weights })
}

/// Weights of a Keras 3 `.keras` archive: `layers/<path>/vars/0, 1, …`, where the path is
/// the snake-cased class name made unique with a counter, and newer Keras versions also record
/// the layer's name as the `name` attribute of `vars`.
struct ArchiveWeights {
    by_name: HashMap<String, hdf5_reader::group::Group>,
    by_path: HashMap<String, hdf5_reader::group::Group>,
    generated: Vec<String>,
}

impl ArchiveWeights {
    fn new(h5: &H5, spec: &ModelSpec) -> Result<Self, KerasError> {
        let mut by_name = HashMap::new();
        let mut by_path = HashMap::new();
        if let Some(layers) = h5.group("layers") {
            for g in subgroups(&layers)? {
                let path = g.name().rsplit('/').next().unwrap_or("").to_string();
                if let Ok(vars) = g.group("vars") {
                    if let Some(name) = string_attr(&vars, "name")? {
                        by_name.insert(name, vars.clone());
                    }
                    by_path.insert(path, vars);
                }
            }
        }
        let mut used: HashMap<String, usize> = HashMap::new();
        let generated = spec
            .layers
            .iter()
            .map(|l| {
                let base = snake_case(&l.class);
                let n = used.entry(base.clone()).or_insert(0);
                let path = if *n == 0 {
                    base.clone()
                } else {
                    format!("{base}_{n}")
                };
                *n += 1;
                path
            })
            .collect();
        Ok(ArchiveWeights {
            by_name,
            by_path,
            generated,
        })
    }
}

impl WeightSource for ArchiveWeights {
    fn layer_weights(&self, layer: &LayerSpec, position: usize) -> Result<Vec<Array>, KerasError> {
        let vars = self.by_name.get(&layer.name).or_else(|| {
            self.generated
                .get(position)
                .and_then(|p| self.by_path.get(p))
        });
        let Some(vars) = vars else {
            return Err(KerasError::Weights {
                layer: layer.name.clone(),
                reason: "not found in model.weights.h5".into(),
            });
        };
        let mut out = Vec::new();
        for i in 0.. {
            let key = i.to_string();
            if vars.dataset(&key).is_err() {
                break;
            }
            out.push(read_array(vars, &key)?);
        }
        Ok(out)
    }
}

/// Weights of a legacy `.h5` model: `model_weights/<layer>/` lists its variables, in order,
/// in the `weight_names` attribute (`dense/kernel`, or Keras 2's `dense/kernel:0`).
struct LegacyWeights {
    root: hdf5_reader::group::Group,
}

impl WeightSource for LegacyWeights {
    fn layer_weights(&self, layer: &LayerSpec, _position: usize) -> Result<Vec<Array>, KerasError> {
        let missing = |reason: String| KerasError::Weights {
            layer: layer.name.clone(),
            reason,
        };
        let group = self
            .root
            .group(&layer.name)
            .map_err(|_| missing(format!("no group 'model_weights/{}'", layer.name)))?;
        let names = strings_attr(&group, "weight_names")?
            .ok_or_else(|| missing("no 'weight_names' attribute".into()))?;
        names.iter().map(|n| read_array(&group, n)).collect()
    }
}
