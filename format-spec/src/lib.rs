//! # tic-format: the tic v1 artifact format
//!
//! Everything that both writes and reads a `.tic` artifact lives here, so the
//! compiler and the runtime agree byte for byte:
//! - [`header`]: the preamble, the signed header and its entries, encoded and
//!   parsed against the byte tables of `format-spec/SPEC.md`, with hard limits
//!   checked before anything is allocated;
//! - [`codec`]: the per-tensor codec bitstreams (`format-spec/CODECS.md`);
//! - [`sign`]: the Ed25519 signature construction and key files;
//! - [`crypto`]: payload encryption and recipient key wrapping.
//!
//! The crate does no file I/O of its own beyond what callers hand it.
#![forbid(unsafe_code)]

pub mod codec;
pub mod crypto;
