//! The little of HDF5 that Keras files need, on top of the pure-Rust `hdf5-reader` crate
//! (no libhdf5, so neither developers nor CI need a system package).

use super::KerasError;
use hdf5_reader::group::Group;
use hdf5_reader::Hdf5File;

/// An HDF5 file held in memory.
pub(crate) struct H5 {
    file: Hdf5File,
}

/// A float32 array read from a dataset, row-major.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Array {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<f32>,
}

fn h5_err(what: &str, e: impl std::fmt::Display) -> KerasError {
    KerasError::Hdf5(format!("{what}: {e}"))
}

impl H5 {
    /// Parses an HDF5 file from its bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, KerasError> {
        if !bytes.starts_with(b"\x89HDF\r\n\x1a\n") {
            return Err(KerasError::Hdf5("missing the HDF5 signature".into()));
        }
        let len = bytes.len() as u64;
        let file = Hdf5File::from_vec(bytes).map_err(|e| h5_err("cannot open", e))?;
        // libhdf5's truncation check: the superblock records where the file ends.
        let sb = file.superblock();
        let end = sb.base_address.saturating_add(sb.eof_address);
        // An undefined address (all ones) is left unchecked.
        if sb.eof_address != u64::MAX && end > len {
            return Err(KerasError::Hdf5(format!(
                "truncated: {len} bytes, the superblock says {end}"
            )));
        }
        Ok(H5 { file })
    }

    /// The group at `path` (`""` or `"/"` is the root), or `None` when it does not exist.
    pub fn group(&self, path: &str) -> Option<Group> {
        self.file.group(path).ok()
    }

    /// The root group.
    pub fn root(&self) -> Result<Group, KerasError> {
        self.file
            .root_group()
            .map_err(|e| h5_err("cannot read the root group", e))
    }
}

/// A string attribute of `group` (scalar, fixed or variable length), `None` when absent.
pub(crate) fn string_attr(group: &Group, name: &str) -> Result<Option<String>, KerasError> {
    let attrs = group
        .attributes()
        .map_err(|e| h5_err(&format!("cannot list attributes of '{}'", group.name()), e))?;
    let Some(attr) = attrs.into_iter().find(|a| a.name == name) else {
        return Ok(None);
    };
    attr.read_string()
        .or_else(|_| {
            attr.read_strings().map(|mut v| {
                if v.len() == 1 {
                    v.remove(0)
                } else {
                    v.join("")
                }
            })
        })
        .map(Some)
        .map_err(|e| h5_err(&format!("attribute '{name}' is not a string"), e))
}

/// A string-array attribute of `group` (Keras's `weight_names`), `None` when absent.
pub(crate) fn strings_attr(group: &Group, name: &str) -> Result<Option<Vec<String>>, KerasError> {
    let attrs = group
        .attributes()
        .map_err(|e| h5_err(&format!("cannot list attributes of '{}'", group.name()), e))?;
    let Some(attr) = attrs.into_iter().find(|a| a.name == name) else {
        return Ok(None);
    };
    if attr.num_elements().ok() == Some(0) {
        return Ok(Some(Vec::new()));
    }
    attr.read_strings()
        .or_else(|_| attr.read_string().map(|s| vec![s]))
        .map(Some)
        .map_err(|e| h5_err(&format!("attribute '{name}' is not a string array"), e))
}

/// Reads the float dataset at `path` under `group` (float64 is narrowed to float32).
pub(crate) fn read_array(group: &Group, path: &str) -> Result<Array, KerasError> {
    let mut g = group.clone();
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let Some(last) = parts.pop() else {
        return Err(KerasError::Hdf5(format!("empty dataset path '{path}'")));
    };
    for part in parts {
        g = g
            .group(part)
            .map_err(|e| h5_err(&format!("no group '{part}' on the way to '{path}'"), e))?;
    }
    let ds = g
        .dataset(last)
        .map_err(|e| h5_err(&format!("no dataset '{path}' in '{}'", group.name()), e))?;
    let shape: Vec<usize> = ds
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<_, _>>()
        .map_err(|e| h5_err(&format!("dataset '{path}' is too large"), e))?;
    let data: Vec<f32> = match ds.read_array::<f32>() {
        // Iterating (not taking the raw vector) yields logical row-major order whatever the
        // array's memory layout.
        Ok(a) => a.iter().copied().collect(),
        Err(_) => ds
            .read_array::<f64>()
            .map_err(|e| h5_err(&format!("dataset '{path}' is not float32/float64"), e))?
            .iter()
            .map(|&v| v as f32)
            .collect(),
    };
    let expected = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    if expected != Some(data.len()) {
        return Err(KerasError::Hdf5(format!(
            "dataset '{path}' holds {} values for shape {shape:?}",
            data.len()
        )));
    }
    Ok(Array { shape, data })
}

/// Names of the subgroups of `group`, in storage order.
pub(crate) fn subgroups(group: &Group) -> Result<Vec<Group>, KerasError> {
    group
        .groups()
        .map_err(|e| h5_err(&format!("cannot list groups in '{}'", group.name()), e))
}
