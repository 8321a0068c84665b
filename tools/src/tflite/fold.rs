//! Import-time evaluation of the small integer shape computations TF leaves in models.

use super::schema::{PackOptions, StridedSliceOptions};
use anyhow::{bail, ensure, Context, Result};

/// A constant integer tensor (int32 or int64 in the model).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Folded {
    /// Dimensions; empty for a scalar.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<i64>,
}

impl Folded {
    /// A 1-D tensor.
    pub fn vector(values: Vec<i64>) -> Self {
        Folded {
            shape: vec![values.len()],
            values,
        }
    }

    fn scalar_or_single(&self, what: &str) -> Result<i64> {
        match (crate::ir::elements(&self.shape), self.values.first()) {
            (1, Some(&v)) => Ok(v),
            _ => bail!("{what} must hold one value, has shape {:?}", self.shape),
        }
    }
}

/// STRIDED_SLICE of a 1-D tensor (the only kind shape arithmetic needs), with TFLite's mask
/// and negative-index semantics.
pub fn strided_slice(
    input: &Folded,
    begin: &Folded,
    end: &Folded,
    strides: &Folded,
    options: Option<StridedSliceOptions<'_>>,
) -> Result<Folded> {
    ensure!(
        input.shape.len() == 1,
        "only 1-D slices of constant shapes are supported, input has shape {:?}",
        input.shape
    );
    let (begin_mask, end_mask, shrink) = match options {
        Some(o) => {
            ensure!(
                o.ellipsis_mask() == 0 && o.new_axis_mask() == 0 && !o.offset(),
                "ellipsis, new-axis and offset slices are not supported"
            );
            (
                o.begin_mask() & 1,
                o.end_mask() & 1,
                o.shrink_axis_mask() & 1,
            )
        }
        None => (0, 0, 0),
    };
    let n = i64::try_from(input.values.len()).context("slice input too long")?;
    let stride = strides.scalar_or_single("strides")?;
    ensure!(
        stride > 0,
        "slice stride {stride} is not supported (positive only)"
    );
    let resolve = |i: i64| if i < 0 { i + n } else { i };
    let b = if begin_mask != 0 {
        0
    } else {
        resolve(begin.scalar_or_single("begin")?)
    };
    if shrink != 0 {
        let v = usize::try_from(b)
            .ok()
            .and_then(|b| input.values.get(b))
            .with_context(|| format!("slice index {b} is outside 0..{n}"))?;
        return Ok(Folded {
            shape: Vec::new(),
            values: vec![*v],
        });
    }
    let e = if end_mask != 0 {
        n
    } else {
        resolve(end.scalar_or_single("end")?)
    };
    let (b, e) = (b.clamp(0, n), e.clamp(0, n));
    let values: Vec<i64> = input
        .values
        .iter()
        .enumerate()
        .filter(|&(i, _)| {
            let i = i as i64;
            i >= b && i < e && (i - b) % stride == 0
        })
        .map(|(_, &v)| v)
        .collect();
    Ok(Folded::vector(values))
}

/// PACK along axis 0 of scalars or equally long vectors.
pub fn pack(inputs: &[Folded], options: Option<PackOptions<'_>>) -> Result<Folded> {
    let axis = options.map_or(0, |o| o.axis());
    let first = inputs.first().context("PACK without inputs")?;
    ensure!(
        inputs.iter().all(|f| f.shape == first.shape),
        "PACK inputs have different shapes"
    );
    // Axis −1 of scalars is axis 0 as well.
    ensure!(
        axis == 0 || (axis == -1 && first.shape.is_empty()),
        "PACK along axis {axis} is not supported"
    );
    if let Some(o) = options {
        ensure!(
            usize::try_from(o.values_count()).ok() == Some(inputs.len()),
            "PACK values_count {} does not match its {} inputs",
            o.values_count(),
            inputs.len()
        );
    }
    let mut shape = vec![inputs.len()];
    shape.extend_from_slice(&first.shape);
    let values = inputs
        .iter()
        .flat_map(|f| f.values.iter().copied())
        .collect();
    Ok(Folded { shape, values })
}

/// The shape a RESHAPE asks for, with TFLite's single `-1` inferred from the element count.
pub fn reshape_target(requested: &[i64], elements: usize) -> Result<Vec<usize>> {
    let mut known = 1usize;
    let mut infer = None;
    for (i, &d) in requested.iter().enumerate() {
        match d {
            -1 if infer.is_none() => infer = Some(i),
            d if d > 0 => {
                known = known
                    .checked_mul(usize::try_from(d)?)
                    .context("reshape size overflows")?
            }
            _ => bail!("reshape to {requested:?} is not supported"),
        }
    }
    let mut out: Vec<usize> = requested.iter().map(|&d| d.max(0) as usize).collect();
    if let Some(i) = infer {
        ensure!(
            known > 0 && elements % known == 0,
            "cannot reshape {elements} elements to {requested:?}"
        );
        out[i] = elements / known;
    }
    ensure!(
        crate::ir::elements(&out) == elements,
        "cannot reshape {elements} elements to {requested:?}"
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: i64) -> Folded {
        Folded::vector(vec![v])
    }

    #[test]
    fn slices_the_batch_out_of_a_shape() {
        let shape = Folded::vector(vec![1, 5, 5, 64]);
        let r = strided_slice(&shape, &s(1), &s(3), &s(1), None).unwrap();
        assert_eq!(r.values, vec![5, 5]);
        let r = strided_slice(&shape, &s(-3), &s(-1), &s(1), None).unwrap();
        assert_eq!(r.values, vec![5, 5]);
        let r = strided_slice(&shape, &s(0), &s(4), &s(2), None).unwrap();
        assert_eq!(r.values, vec![1, 5]);
        assert!(strided_slice(&shape, &s(0), &s(4), &s(0), None).is_err());
    }

    #[test]
    fn packs_scalars_and_infers_minus_one() {
        let one = Folded {
            shape: vec![],
            values: vec![1],
        };
        let minus = Folded {
            shape: vec![],
            values: vec![-1],
        };
        let p = pack(&[one, minus], None).unwrap();
        assert_eq!((p.shape.clone(), p.values.clone()), (vec![2], vec![1, -1]));
        assert_eq!(reshape_target(&p.values, 1600).unwrap(), vec![1, 1600]);
        assert!(reshape_target(&[-1, -1], 16).is_err());
        assert!(reshape_target(&[3, -1], 16).is_err());
        assert!(reshape_target(&[0, 4], 16).is_err());
    }
}
