//! # tic-format: the tic v1 artifact format
//!
//! Everything that both writes and reads a `.tic` artifact lives here, so the
//! compiler and the runtime agree byte for byte:
//! - [`header`]: the preamble, the signed header and its entries, encoded and
//!   parsed against the byte tables of `format-spec/SPEC.md`, with hard limits
//!   ([`limits`]) checked before anything is allocated;
//! - [`safetensors`]: bounded, order-preserving parsing of safetensors headers;
//! - [`codec`]: the per-tensor codec bitstreams (`format-spec/CODECS.md`);
//! - [`sign`]: the Ed25519 signature construction and key files;
//! - [`crypto`]: payload encryption and recipient key wrapping
//!   (`format-spec/ENCRYPTION.md`).
//!
//! The crate does no file I/O: callers hand it bytes.
#![forbid(unsafe_code)]

pub mod codec;
pub mod crypto;
pub mod dtype;
pub mod error;
#[cfg(test)]
mod fuzz_seeds;
pub mod header;
pub mod limits;
pub mod path;
pub mod safetensors;
pub mod sign;
pub mod wire;

pub use dtype::DType;
pub use error::FormatError;
pub use header::{
    ChunkEntry, Encryption, FileEntry, FileKind, Header, LossyRecord, Preamble, TensorEntry,
};

/// SHA-256 of some bytes.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

/// Lower-case hex of some bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
