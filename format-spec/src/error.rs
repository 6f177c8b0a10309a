//! Errors from parsing and checking the container.

use thiserror::Error;

/// Something in an artifact's container (preamble, header, signature
/// section) is malformed or breaks a rule of SPEC.md. Every message says
/// what is wrong; the caller adds which file it came from.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FormatError {
    #[error(
        "not a tic artifact: the first 8 bytes are not the tic magic (is this the right file?)"
    )]
    BadMagic,
    #[error("unsupported format version {major}.{minor}: this tic reads major version {supported}; upgrade tic to read it")]
    UnsupportedVersion {
        major: u16,
        minor: u16,
        supported: u16,
    },
    #[error("preamble flags are {flags:#x} but must be 0 in this version: the file is corrupt or needs a newer tic")]
    NonZeroFlags { flags: u32 },
    #[error("the {what} is truncated: field `{field}` at byte {offset} runs past its end; the artifact is damaged, fetch it again")]
    Truncated {
        what: &'static str,
        field: &'static str,
        offset: u64,
    },
    #[error("the {what} has {count} unexpected bytes after its last field; the artifact is damaged or was made by a different tool")]
    TrailingBytes { what: &'static str, count: u64 },
    #[error("{what} is {value}, over the limit of {limit}; the artifact is damaged or hostile")]
    LimitExceeded {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    #[error("the section lengths in the preamble add up to {expected} bytes, but the artifact is {actual} bytes long: it is truncated (an interrupted download or copy?) or has bytes appended; fetch it again")]
    LengthMismatch { expected: u64, actual: u64 },
    #[error("field `{field}` of the {what} at byte {offset} is not valid UTF-8")]
    BadUtf8 {
        what: &'static str,
        field: &'static str,
        offset: u64,
    },
    #[error("unknown dtype code {code} for tensor `{tensor}`; the artifact needs a newer tic")]
    UnknownDType { tensor: String, code: u8 },
    #[error("unknown {what} {value}; the artifact needs a newer tic")]
    UnknownValue { what: &'static str, value: u64 },
    #[error("unsafe path {path:?}: {why}; an artifact may only name relative paths inside the output directory")]
    UnsafePath { path: String, why: &'static str },
    #[error("the path {path:?} appears twice (or is both a file and a directory)")]
    DuplicatePath { path: String },
    #[error("the header is inconsistent: {0}; the artifact is damaged or was not made by a conforming writer")]
    Inconsistent(String),
    #[error("tensor `{tensor}`: {source}")]
    Codec {
        tensor: String,
        #[source]
        source: crate::codec::CodecError,
    },
    #[error("the header uses critical extension {kind}, which this tic does not understand; upgrade tic")]
    UnknownCriticalExtension { kind: u16 },
    #[error("the signature section is malformed: {0}")]
    BadSignatureSection(&'static str),
}
