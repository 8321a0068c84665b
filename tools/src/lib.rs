//! Host-side tooling for fixnet: model import (`.tflite`), lowering to the fixnet format,
//! and the pieces of the `fixnet` command-line tool.

pub mod cli;
pub mod eval;
pub mod fxn;
pub mod idx;
pub mod inspect;
pub mod ir;
pub mod lower;
pub mod npy;
pub mod preprocess;
pub mod runner;
pub mod tflite;
