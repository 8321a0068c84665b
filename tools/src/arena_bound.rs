//! The arena lower bound of a model: the most activation bytes that are alive at one step
//! of the inference. No memory plan, however clever, fits the activations in fewer bytes,
//! so the planned arena (`Model::arena_size`) divided by this bound says how much the
//! planner leaves on the table.
//!
//! Steps are the core's (`fixnet::plan::Lifetime`): step 0 holds the model input, op `i`
//! runs at step `i + 1`. A buffer is alive from the step that writes it to the last step
//! that reads it (the model output to the end). A reshape's output is its input's bytes. A
//! convolution fused with the max pool after it never stores its own output: the pool's
//! output is written during the convolution's step, as the fused kernel does.

use anyhow::{anyhow, Context, Result};
use fixnet::format::{Op, OpKind, TensorId};
use fixnet::Model;
use std::collections::HashMap;

/// One activation buffer: its bytes and the steps during which it holds live data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveBuffer {
    /// Bytes of the buffer.
    pub bytes: usize,
    /// The step that writes it.
    pub first: usize,
    /// The last step that reads it.
    pub last: usize,
}

/// The most bytes of `buffers` alive at one step.
pub fn peak_live_bytes(buffers: &[LiveBuffer]) -> usize {
    let end = buffers.iter().map(|b| b.last).max().unwrap_or(0);
    (0..=end)
        .map(|step| {
            buffers
                .iter()
                .filter(|b| (b.first..=b.last).contains(&step))
                .map(|b| b.bytes)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

/// The arena lower bound of `model` (see the module documentation).
pub fn arena_lower_bound(model: &Model<'_>) -> Result<usize> {
    Ok(peak_live_bytes(&live_buffers(model)?))
}

/// The tensors an op reads (constant operands of ADD and MUL have no buffer and are passed
/// over where buffers are looked up).
fn activation_inputs(op: &Op<'_>) -> Vec<TensorId> {
    op.inputs().iter().collect()
}

/// The buffers of `model`'s activations with their lifetimes, in the order they are written.
pub fn live_buffers(model: &Model<'_>) -> Result<Vec<LiveBuffer>> {
    let fail = |e: fixnet::Error| anyhow!("{e}");
    let mut buffers = Vec::new();
    // Tensor → the buffer that holds its bytes (none for a fused convolution's output).
    let mut holder: HashMap<TensorId, usize> = HashMap::new();
    let input = model.input_index();
    buffers.push(LiveBuffer {
        bytes: model.tensor(input).map_err(fail)?.byte_len(),
        first: 0,
        last: 0,
    });
    holder.insert(input, 0);
    for (i, op) in model.ops().enumerate() {
        let op = op.map_err(fail)?;
        let step = i + 1;
        let inputs = activation_inputs(&op);
        for src in &inputs {
            if let Some(&b) = holder.get(src) {
                buffers[b].last = buffers[b].last.max(step);
            }
        }
        let dst = op.output();
        if op.kind() == OpKind::Reshape {
            let src = inputs.first().context("a reshape without input")?;
            if let Some(&b) = holder.get(src) {
                holder.insert(dst, b);
            }
            continue;
        }
        if model.is_elided(dst) {
            continue;
        }
        let reads_fused = inputs.iter().any(|&t| model.is_elided(t));
        holder.insert(dst, buffers.len());
        buffers.push(LiveBuffer {
            bytes: model.tensor(dst).map_err(fail)?.byte_len(),
            first: if reads_fused { step - 1 } else { step },
            last: step,
        });
    }
    let end = model.op_count() + 1;
    let output = holder
        .get(&model.output_index())
        .context("the model output is never written")?;
    buffers[*output].last = end;
    Ok(buffers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fxn::ModelBytes;
    use std::path::Path;

    fn buffer(bytes: usize, first: usize, last: usize) -> LiveBuffer {
        LiveBuffer { bytes, first, last }
    }

    #[test]
    fn the_peak_is_the_fullest_step() {
        // a -> b -> c: a and c are never alive together.
        let chain = [buffer(100, 0, 1), buffer(50, 1, 2), buffer(100, 2, 3)];
        assert_eq!(peak_live_bytes(&chain), 150);
        // A skip connection keeps `a` alive to step 3: 100 + 50 + 100 there.
        let skip = [buffer(100, 0, 3), buffer(50, 1, 2), buffer(100, 2, 3)];
        assert_eq!(peak_live_bytes(&skip), 250);
        assert_eq!(peak_live_bytes(&[]), 0);
    }

    #[test]
    fn the_seed_cnn_needs_its_planned_arena() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/seed_cnn.fxn");
        let bytes = ModelBytes::read(&path).unwrap();
        let model = bytes.model().unwrap();
        // Worked by hand from `fixnet inspect`: both convolutions are fused with their max
        // pools. Step 1 (conv1 + pool1): the 28·28 input and pool1's 13·13·32 = 5,408 bytes.
        // Step 3 (conv2 + pool2): pool1 and pool2's 5·5·64 = 1,600 bytes, the most.
        // The reshape shares pool2's bytes; the dense layers hold 128 and 10.
        let buffers = live_buffers(&model).unwrap();
        assert_eq!(
            buffers,
            [
                buffer(784, 0, 1),
                buffer(5408, 1, 3),
                buffer(1600, 3, 6),
                buffer(128, 6, 7),
                buffer(10, 7, 8),
                buffer(10, 8, 9),
            ]
        );
        assert_eq!(arena_lower_bound(&model).unwrap(), 5408 + 1600);
    }

    #[test]
    fn a_residual_block_keeps_its_input_alive_to_the_add() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/mlperf/pretrainedResnet_quant.tflite");
        let graph = crate::tflite::import(&std::fs::read(path).unwrap()).unwrap();
        let bytes = ModelBytes::new(&crate::lower::lower(&graph).unwrap());
        let model = bytes.model().unwrap();
        // ResNet-8's first block: conv0 writes a 32·32·16 map that conv1, conv2 and the ADD
        // after them read, so at conv2's step three such maps are alive (conv0's, conv1's
        // and conv2's output); nothing later is larger (16·16·32 and 8·8·64 maps are half
        // and a quarter of it).
        let map = 32 * 32 * 16;
        let buffers = live_buffers(&model).unwrap();
        assert_eq!(buffers[1], buffer(map, 1, 4));
        assert_eq!(arena_lower_bound(&model).unwrap(), 3 * map);
    }
}
