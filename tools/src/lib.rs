//! Host-side tooling for fixnet: model import (`.tflite`; float Keras `.keras`/`.h5` with
//! post-training quantization in [`keras`]), lowering to the fixnet format,
//! and the pieces of the `fixnet` command-line tool.

pub mod arena_bound;
pub mod cli;
pub mod device;
pub mod eval;
pub mod finetune;
pub mod fxn;
pub mod idx;
pub mod inputs;
pub mod inspect;
pub mod ir;
pub mod keras;
pub mod lower;
pub mod npy;
pub mod parallel;
pub mod picture;
pub mod preprocess;
pub mod runner;
pub mod tflite;
