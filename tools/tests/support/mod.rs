//! Test support: a minimal `.tflite` writer (flatbuffers builder) for crafting small models,
//! and helpers to run the `fixnet` binary.
#![allow(dead_code)]

use flatbuffers::{FlatBufferBuilder, WIPOffset};
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fixnet-tools-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Output of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn fixnet(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_fixnet"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run fixnet");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts a failed run that explained itself in exactly one `error: …` line.
pub fn assert_one_line_error(run: &Run, needle: &str) {
    assert_ne!(run.code, 0, "expected failure, stdout: {}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr must be one line: {:?}", run.stderr);
    assert!(lines[0].starts_with("error: "), "{:?}", lines[0]);
    assert!(!run.stderr.contains("panicked"), "{:?}", run.stderr);
    assert!(
        lines[0].to_lowercase().contains(&needle.to_lowercase()),
        "{:?} should mention {needle:?}",
        lines[0]
    );
}

pub const INT8: i8 = 9;
pub const INT32: i8 = 2;
pub const FLOAT32: i8 = 0;

pub struct T {
    pub name: &'static str,
    pub shape: Vec<i32>,
    pub dtype: i8,
    /// Constant data (little-endian bytes), if any.
    pub data: Option<Vec<u8>>,
    pub scales: Vec<f32>,
    pub zero_points: Vec<i64>,
    pub quantized_dimension: i32,
}

impl T {
    pub fn act(name: &'static str, shape: &[i32], scale: f32, zero_point: i64) -> Self {
        T {
            name,
            shape: shape.to_vec(),
            dtype: INT8,
            data: None,
            scales: vec![scale],
            zero_points: vec![zero_point],
            quantized_dimension: 0,
        }
    }

    pub fn weights(
        name: &'static str,
        shape: &[i32],
        values: &[i8],
        scales: &[f32],
        dim: i32,
    ) -> Self {
        T {
            name,
            shape: shape.to_vec(),
            dtype: INT8,
            data: Some(values.iter().map(|&v| v as u8).collect()),
            scales: scales.to_vec(),
            zero_points: vec![0; scales.len()],
            quantized_dimension: dim,
        }
    }

    pub fn int32(name: &'static str, values: &[i32]) -> Self {
        T {
            name,
            shape: vec![values.len() as i32],
            dtype: INT32,
            data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            scales: vec![],
            zero_points: vec![],
            quantized_dimension: 0,
        }
    }
}

pub enum F {
    I8(u16, i8),
    I32(u16, i32),
    F32(u16, f32),
}

pub struct O {
    pub code: i32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    /// `BuiltinOptions` union tag and (field id, value) pairs.
    pub options: Option<(u8, Vec<F>)>,
}

const fn slot(id: u16) -> u16 {
    4 + 2 * id
}

/// Writes a single-subgraph TFLite model.
pub fn tflite(tensors: &[T], ops: &[O], input: i32, output: i32) -> Vec<u8> {
    let mut b = FlatBufferBuilder::new();
    // Buffer 0 is the conventional empty buffer.
    let mut buffers = Vec::new();
    let empty = b.start_table();
    buffers.push(b.end_table(empty));
    let mut buffer_of = Vec::new();
    for t in tensors {
        match &t.data {
            Some(d) => {
                let v = b.create_vector(d);
                let s = b.start_table();
                b.push_slot_always(slot(0), v);
                buffers.push(b.end_table(s));
                buffer_of.push(buffers.len() as u32 - 1);
            }
            None => buffer_of.push(0),
        }
    }
    let mut tensor_offsets = Vec::new();
    for (t, &buf) in tensors.iter().zip(&buffer_of) {
        let shape = b.create_vector(&t.shape);
        let name = b.create_string(t.name);
        let scales = b.create_vector(&t.scales);
        let zps = b.create_vector(&t.zero_points);
        let q = b.start_table();
        b.push_slot_always(slot(2), scales);
        b.push_slot_always(slot(3), zps);
        b.push_slot(slot(6), t.quantized_dimension, 0);
        let q = b.end_table(q);
        let s = b.start_table();
        b.push_slot_always(slot(0), shape);
        b.push_slot(slot(1), t.dtype, 0);
        b.push_slot(slot(2), buf, 0);
        b.push_slot_always(slot(3), name);
        b.push_slot_always(slot(4), q);
        tensor_offsets.push(b.end_table(s));
    }
    let mut codes: Vec<i32> = Vec::new();
    let mut op_offsets = Vec::new();
    for o in ops {
        let index = codes.iter().position(|&c| c == o.code).unwrap_or_else(|| {
            codes.push(o.code);
            codes.len() - 1
        }) as u32;
        let inputs = b.create_vector(&o.inputs);
        let outputs = b.create_vector(&o.outputs);
        let options = o.options.as_ref().map(|(tag, fields)| {
            let s = b.start_table();
            for f in fields {
                match *f {
                    F::I8(id, v) => b.push_slot_always(slot(id), v),
                    F::I32(id, v) => b.push_slot_always(slot(id), v),
                    F::F32(id, v) => b.push_slot_always(slot(id), v),
                }
            }
            (*tag, b.end_table(s))
        });
        let s = b.start_table();
        b.push_slot(slot(0), index, 0);
        b.push_slot_always(slot(1), inputs);
        b.push_slot_always(slot(2), outputs);
        if let Some((tag, table)) = options {
            b.push_slot(slot(3), tag, 0);
            b.push_slot_always(slot(4), table);
        }
        op_offsets.push(b.end_table(s));
    }
    let code_offsets: Vec<WIPOffset<_>> = codes
        .iter()
        .map(|&c| {
            let s = b.start_table();
            b.push_slot(slot(0), c.min(127) as i8, 0);
            b.push_slot(slot(2), 1i32, 1);
            b.push_slot(slot(3), c, 0);
            b.end_table(s)
        })
        .collect();
    let tensors_v = b.create_vector(&tensor_offsets);
    let inputs = b.create_vector(&[input]);
    let outputs = b.create_vector(&[output]);
    let ops_v = b.create_vector(&op_offsets);
    let sg = b.start_table();
    b.push_slot_always(slot(0), tensors_v);
    b.push_slot_always(slot(1), inputs);
    b.push_slot_always(slot(2), outputs);
    b.push_slot_always(slot(3), ops_v);
    let sg = b.end_table(sg);
    let subgraphs = b.create_vector(&[sg]);
    let codes_v = b.create_vector(&code_offsets);
    let buffers_v = b.create_vector(&buffers);
    let m = b.start_table();
    b.push_slot(slot(0), 3u32, 0);
    b.push_slot_always(slot(1), codes_v);
    b.push_slot_always(slot(2), subgraphs);
    b.push_slot_always(slot(4), buffers_v);
    let m = b.end_table(m);
    b.finish(m, Some("TFL3"));
    b.finished_data().to_vec()
}

/// A small valid model: conv 3x3 (per-channel, RELU) → max pool → reshape → FC
/// (per-tensor) → softmax, on a 6x6x1 input.
pub fn small_model() -> Vec<u8> {
    let conv_w: Vec<i8> = (0..2 * 9).map(|i| (i * 7 % 11) as i8 - 5).collect();
    let fc_w: Vec<i8> = (0..3 * 8).map(|i| (i * 5 % 13) as i8 - 6).collect();
    let tensors = vec![
        T::act("in", &[1, 6, 6, 1], 1.0 / 255.0, -128),
        T::weights("conv_w", &[2, 3, 3, 1], &conv_w, &[0.01, 0.02], 0),
        T::int32("conv_b", &[100, -50]),
        T::act("conv_out", &[1, 4, 4, 2], 0.05, -128),
        T::act("pool_out", &[1, 2, 2, 2], 0.05, -128),
        T::int32("shape", &[-1, 8]),
        T::act("flat", &[1, 8], 0.05, -128),
        T::weights("fc_w", &[3, 8], &fc_w, &[0.03], 0),
        T::int32("fc_b", &[10, 0, -10]),
        T::act("logits", &[1, 3], 0.1, 3),
        T::act("probs", &[1, 3], 1.0 / 256.0, -128),
    ];
    let ops = vec![
        O {
            code: 3,
            inputs: vec![0, 1, 2],
            outputs: vec![3],
            options: Some((
                1,
                vec![F::I8(0, 1), F::I32(1, 1), F::I32(2, 1), F::I8(3, 1)],
            )),
        },
        O {
            code: 17,
            inputs: vec![3],
            outputs: vec![4],
            options: Some((
                5,
                vec![
                    F::I8(0, 1),
                    F::I32(1, 2),
                    F::I32(2, 2),
                    F::I32(3, 2),
                    F::I32(4, 2),
                ],
            )),
        },
        O {
            code: 22,
            inputs: vec![4, 5],
            outputs: vec![6],
            options: None,
        },
        O {
            code: 9,
            inputs: vec![6, 7, 8],
            outputs: vec![9],
            options: Some((8, vec![F::I8(0, 0)])),
        },
        O {
            code: 25,
            inputs: vec![9],
            outputs: vec![10],
            options: Some((9, vec![F::F32(0, 1.0)])),
        },
    ];
    tflite(&tensors, &ops, 0, 10)
}

/// A model whose only op is EXP (unsupported).
pub fn exp_model() -> Vec<u8> {
    let tensors = vec![
        T::act("x", &[1, 4], 0.1, 0),
        T::act("y", &[1, 4], 1.0 / 128.0, 0),
    ];
    let ops = vec![O {
        code: 47,
        inputs: vec![0],
        outputs: vec![1],
        options: None,
    }];
    tflite(&tensors, &ops, 0, 1)
}
