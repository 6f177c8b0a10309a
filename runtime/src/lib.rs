//! # tic-runtime: load tic artifacts
//!
//! Opens an artifact inside the customer's environment and hands out its
//! tensors: the signature is checked against pinned keys before anything in
//! the header is trusted, each chunk is checked against its signed digest
//! before it is decrypted or decoded, and every tensor is checked against
//! the digest of its original bytes. Never depends on the compiler.
//!
//! ```no_run
//! use tic_runtime::{Artifact, OpenOptions, Trust};
//! let key = tic_runtime::read_public_key("signing.pub".as_ref())?;
//! let opts = OpenOptions { trust: Trust { keys: vec![key], allow_unsigned: false }, ..Default::default() };
//! let art = Artifact::open("model.tic", &opts)?;
//! let bytes = art.read_tensor("embeddings.word_embeddings.weight")?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod artifact;
// `buffers`, `ordered` and `writeback` are shared with tic-compiler, not
// part of the API: hidden from the docs, and they may change.
#[doc(hidden)]
pub mod buffers;
pub mod device;
mod error;
mod extract;
mod keys;
#[doc(hidden)]
pub mod ordered;
mod stream;
#[doc(hidden)]
pub mod writeback;

pub use artifact::{Artifact, Head, OpenOptions, SignatureStatus, Trust};
pub use device::{probe_cuda, Device, DeviceTensor, GpuTuning, LoadOptions, TensorBuffer};
pub use error::{ErrorKind, RuntimeError};
pub use extract::{is_tic_temporary, ExtractReport};
pub use keys::{
    read_identities, read_key_file, read_public_key, read_recipients_file, read_symmetric_key,
    read_trusted_keys, KeyFileError,
};
pub use stream::{extract_stream, read_head, verify_stream};
pub use tic_format;

/// Reports progress of long operations (the CLI draws a bar with it), and
/// lets their caller stop those that write output.
pub trait Progress: Sync {
    fn start(&self, _what: &str, _total: u64) {}
    fn advance(&self, _n: u64) {}
    fn finish(&self) {}
    /// Asked between chunks by operations that write output (compile,
    /// extract, rewrap): once it returns true they stop, remove what they
    /// had written and return an `Interrupted` error. The CLI answers true
    /// after Ctrl-C, SIGTERM or SIGHUP.
    fn cancelled(&self) -> bool {
        false
    }
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}
