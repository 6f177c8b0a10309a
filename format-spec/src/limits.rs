//! Hard limits a reader checks before it allocates or trusts a length.
//!
//! These are the numbers of SPEC.md §"Limits". A writer never produces an
//! artifact beyond them, so a reader can refuse anything larger outright.

/// Largest signed header, in bytes.
pub const MAX_HEADER_LEN: u64 = 256 << 20;
/// Largest recipients section, in bytes.
pub const MAX_RECIPIENTS_LEN: u64 = 1 << 20;
/// Number of files in one artifact.
pub const MAX_FILES: u32 = 1 << 16;
/// Number of tensor (and blob) entries in one artifact.
pub const MAX_TENSORS: u32 = 1 << 22;
/// Number of chunks in one artifact.
pub const MAX_CHUNKS: u32 = 1 << 26;
/// Original (decoded) bytes in one chunk.
pub const MAX_CHUNK_ORIG_LEN: u64 = 64 << 20;
/// Stored bytes in one chunk (codec overhead and the AEAD tag included).
pub const MAX_CHUNK_STORED_LEN: u64 = 2 * MAX_CHUNK_ORIG_LEN + (1 << 20);
/// Length of a relative file path, in bytes.
pub const MAX_PATH_LEN: usize = 4096;
/// Length of a tensor name, in bytes.
pub const MAX_NAME_LEN: usize = 65535;
/// Tensor rank.
pub const MAX_RANK: usize = 16;
/// Codec parameter bytes per tensor.
pub const MAX_CODEC_PARAMS_LEN: usize = 4096;
/// A safetensors file's JSON header (the reference implementation's own cap).
pub const MAX_ST_HEADER_LEN: u64 = 100_000_000;
/// Length of the creator string.
pub const MAX_CREATOR_LEN: usize = 255;
/// Number of header extensions.
pub const MAX_EXTENSIONS: u32 = 1024;
