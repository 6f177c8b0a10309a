//! # tic-compiler: write tic artifacts
//!
//! Turns a safetensors model (one file or a Hugging Face directory) into one
//! artifact: every input is checked, every tensor gets the smallest lossless
//! codec among the candidates (or, when `--lossy` rules select it, a lossy
//! codec with a guaranteed error bound, see [`lossy`]), chunks are encoded
//! in parallel and streamed into a temporary file that is renamed into place
//! only when complete, then signed and optionally encrypted. Also holds the tools that amend an
//! existing artifact's signature or recipients. The `tic` binary in this
//! package is the thin command line over this crate and `tic-runtime`.
#![forbid(unsafe_code)]

mod against;
mod amend;
mod compile;
mod error;
mod input;
pub mod lossy;

pub use against::{compare_with_model, Comparison, Difference};
pub use amend::{attach_signature, rewrap, signing_message};
pub use compile::{compile, output_dir, CompileOptions, CompileReport, DEFAULT_CHUNK_BYTES};
pub use error::{AmendError, CompileError, OutputError};
pub use input::{Exclude, Excluded};
pub use lossy::{LossyRules, RuleError, PRESETS};
