//! The error type of the Keras importer.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong while importing, running or quantizing a Keras model.
///
/// Messages name the file, the layer (with its index in the model's layer list) or the
/// weight involved, so that a user can find the culprit in their model.
#[derive(Debug)]
pub enum KerasError {
    /// A file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is neither a `.keras` zip archive nor an HDF5 file.
    UnknownFormat(PathBuf),
    /// The `.keras` zip archive is damaged or lacks a member.
    Archive(String),
    /// The HDF5 data (weights or legacy model file) is damaged or lacks an object.
    Hdf5(String),
    /// The model configuration JSON is malformed or lacks a field.
    Config(String),
    /// A layer (or one of its settings) that the importer cannot represent in fixnet.
    Unsupported {
        /// Index of the layer in the model's layer list (the `InputLayer`, when present, is 0).
        index: usize,
        /// The layer's name.
        name: String,
        /// The layer's Keras class.
        class: String,
        /// What is not supported.
        reason: String,
    },
    /// A layer's weights are missing or have the wrong shape.
    Weights {
        /// The layer's name.
        layer: String,
        /// What is wrong.
        reason: String,
    },
    /// Calibration data is unusable (unreadable, empty, or of the wrong size).
    Calibration(String),
    /// A float kernel of the core refused to run a layer.
    Inference {
        /// The layer's name.
        layer: String,
        /// The core's error.
        source: fixnet::Error,
    },
    /// Building the quantized model failed.
    Quantize(String),
}

impl fmt::Display for KerasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KerasError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            KerasError::UnknownFormat(path) => write!(
                f,
                "{} is neither a .keras archive nor a Keras HDF5 (.h5) file",
                path.display()
            ),
            KerasError::Archive(msg) => write!(f, "bad .keras archive: {msg}"),
            KerasError::Hdf5(msg) => write!(f, "bad HDF5 data: {msg}"),
            KerasError::Config(msg) => write!(f, "bad Keras model config: {msg}"),
            KerasError::Unsupported {
                index,
                name,
                class,
                reason,
            } => write!(
                f,
                "layer {index} '{name}' ({class}) is not supported: {reason}"
            ),
            KerasError::Weights { layer, reason } => {
                write!(f, "weights of layer '{layer}': {reason}")
            }
            KerasError::Calibration(msg) => write!(f, "calibration: {msg}"),
            KerasError::Inference { layer, source } => {
                write!(f, "float inference failed in layer '{layer}': {source}")
            }
            KerasError::Quantize(msg) => write!(f, "quantization: {msg}"),
        }
    }
}

impl std::error::Error for KerasError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            KerasError::Io { source, .. } => Some(source),
            KerasError::Inference { source, .. } => Some(source),
            _ => None,
        }
    }
}
