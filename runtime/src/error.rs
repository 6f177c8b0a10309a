//! Errors from opening, verifying and reading artifacts.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong reading an artifact. Variants are grouped
/// by [`RuntimeError::kind`]: the artifact failed verification, the caller
/// misused the API or gave bad arguments, or the system failed (I/O).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RuntimeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: tic_format::FormatError,
    },
    #[error("{path}: the artifact is not signed; pass --allow-unsigned (`Trust::allow_unsigned`) to accept unsigned artifacts, or sign it with `tic compile --sign`")]
    Unsigned { path: PathBuf },
    #[error("{path}: signed by {fingerprint}, which is not among the trusted keys; pass its public key with --trusted-key (`Trust::keys`) if you trust it")]
    UntrustedSigner { path: PathBuf, fingerprint: String },
    #[error("{path}: signed by {fingerprint}, but no trusted key was given; pass --trusted-key KEY.pub (`Trust::keys`), or --allow-unsigned (`Trust::allow_unsigned`) to skip the signature check")]
    NoTrustedKeys { path: PathBuf, fingerprint: String },
    #[error("{path}: {source}")]
    Signature {
        path: PathBuf,
        #[source]
        source: tic_format::sign::SignError,
    },
    #[error("{path}: chunk {chunk} of tensor {tensor} does not match its SHA-256 in the signed header: the artifact was tampered with or damaged")]
    ChunkDigest {
        path: PathBuf,
        tensor: String,
        chunk: u64,
    },
    #[error("{path}: tensor {tensor} decoded to bytes whose SHA-256 differs from the header's: the artifact is damaged or the decoder is wrong")]
    TensorDigest { path: PathBuf, tensor: String },
    #[error("{path}: restored file {file:?} does not match its SHA-256 in the header")]
    FileDigest { path: PathBuf, file: String },
    #[error("{path}: tensor {tensor}: {source}")]
    Decode {
        path: PathBuf,
        tensor: String,
        #[source]
        source: tic_format::codec::CodecError,
    },
    #[error("{path}: tensor {tensor}: chunk {chunk} failed authentication (ChaCha20-Poly1305): the ciphertext was tampered with, or the key is wrong")]
    Decrypt {
        path: PathBuf,
        tensor: String,
        chunk: u64,
    },
    #[error("{path}: {source}")]
    Crypto {
        path: PathBuf,
        #[source]
        source: tic_format::crypto::CryptoError,
    },
    #[error("{path}: the artifact is encrypted to {recipients} recipient(s); pass --identity FILE (`OpenOptions::identities`: an age identity or a 32-byte key file) to decrypt it")]
    NeedIdentity { path: PathBuf, recipients: usize },
    #[error("{path}: {what}: the preamble or the header was altered; fetch the artifact again")]
    RecipientsMismatch { path: PathBuf, what: &'static str },
    #[error("{path}: file {file:?}: its stored safetensors header does not describe its tensor entries ({why})")]
    StHeaderMismatch {
        path: PathBuf,
        file: String,
        why: String,
    },
    #[error("no tensor named {name:?} in {path}; `tic inspect {path}` lists its tensors (names are the safetensors header's, e.g. `model.layers.0.mlp.up_proj.weight`)")]
    TensorNotFound { path: PathBuf, name: String },
    #[error("{path}: tensor entry {tensor} is not one of this artifact's (taken from another artifact, or changed); look it up with `Artifact::tensor(name)`")]
    ForeignEntry { path: PathBuf, tensor: String },
    #[error("{path}: no chunk {index}; the artifact has {chunks}")]
    ChunkNotFound {
        path: PathBuf,
        index: u64,
        chunks: usize,
    },
    #[error("no file {name:?} in {path}; `tic inspect {path}` lists its files (paths relative to the model directory)")]
    FileNotFound { path: PathBuf, name: String },
    #[error("cannot decode on {device}: {why}; set `LoadOptions::fallback_to_cpu` to decode on the CPU instead")]
    DeviceUnavailable { device: String, why: String },
    #[error("{path} is a directory, not an artifact; give the .tic file itself")]
    NotAFile { path: PathBuf },
    #[error("{path} is a pipe, socket or device, not a file: tic reads an artifact at random offsets, so save it to a file first (for example `curl -o model.tic URL`); only `tic verify -` and `tic decompress -` (which check an artifact as it streams in) and `tic inspect -` (its front) read standard input")]
    NotSeekable { path: PathBuf },
    #[error("{path}: the stream goes on for more than 1 MiB past the {expected} bytes that the artifact's preamble gives: it is not one artifact, or has data appended; fetch it again")]
    StreamTooLong { path: PathBuf, expected: u64 },
    #[error("{path} already exists; pass --force to replace it")]
    OutputExists { path: PathBuf },
    #[error("{path} exists and is not a directory; the restored files go into a directory: give a new or existing directory's name (--force replaces a directory's contents, never a file)")]
    OutputNotADirectory { path: PathBuf },
    #[error("{path} was empty or absent when the restore began, but {} appeared meanwhile (another tic restoring there?); nothing was replaced: check what is there, then restore again (--force replaces it)", entry.display())]
    OutputChanged { path: PathBuf, entry: PathBuf },
    #[error(
        "{path} holds {what}, which replacing it would delete; restore into another directory"
    )]
    OutputInUse { path: PathBuf, what: String },
    #[error("the output buffer for tensor {tensor} is {got} bytes but the tensor has {want}")]
    BufferSize {
        tensor: String,
        got: usize,
        want: u64,
    },
    #[error("{path}: cannot write the restored file: {source}; nothing was restored (check the free space and permissions where it goes)")]
    WriteOutput {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: interrupted before the restore was complete; any partly restored files were removed and {path} was not touched")]
    Interrupted { path: PathBuf },
    #[error("internal error: {0} (this is a bug in tic; please report it)")]
    Internal(String),
}

/// Which kind of failure an error is; the CLI maps these to its exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The artifact is not what a trusted key signed: tampered, truncated,
    /// unsigned, untrusted, undecryptable with the given identity.
    Verification,
    /// The caller asked for something that cannot be done (missing key,
    /// existing output, unknown tensor name).
    Usage,
    /// The system failed: I/O.
    Io,
    /// The caller stopped the operation (see `Progress::cancelled`).
    Interrupted,
    /// A bug in tic.
    Internal,
}

impl RuntimeError {
    pub fn kind(&self) -> ErrorKind {
        use RuntimeError::*;
        match self {
            Io { .. } | WriteOutput { .. } => ErrorKind::Io,
            NeedIdentity { .. }
            | NoTrustedKeys { .. }
            | TensorNotFound { .. }
            | ForeignEntry { .. }
            | ChunkNotFound { .. }
            | FileNotFound { .. }
            | DeviceUnavailable { .. }
            | NotAFile { .. }
            | NotSeekable { .. }
            | OutputExists { .. }
            | OutputNotADirectory { .. }
            | OutputChanged { .. }
            | OutputInUse { .. }
            | BufferSize { .. } => ErrorKind::Usage,
            Interrupted { .. } => ErrorKind::Interrupted,
            Internal(_) => ErrorKind::Internal,
            _ => ErrorKind::Verification,
        }
    }
}
