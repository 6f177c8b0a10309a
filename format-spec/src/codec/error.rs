//! Errors of the codec layer. Every decoder check of `CODECS.md` maps to one
//! variant, so callers (and tests) can tell exactly which rule a stream broke.

use thiserror::Error;

/// Why a Huffman table in a `planes` section was rejected.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TableFault {
    /// A code length nibble is above [`MAX_CODE_LEN`](super::MAX_CODE_LEN).
    #[error("symbol {symbol} has code length {len}, above the maximum of 12")]
    CodeTooLong {
        /// Symbol value (the escape symbol is `2^w`).
        symbol: u32,
        /// The offending length.
        len: u8,
    },
    /// The code lengths oversubscribe the code space (Kraft sum above 1).
    #[error("code lengths oversubscribe the code space (Kraft sum > 1)")]
    KraftOverflow,
    /// No symbol (escape included) has a nonzero length.
    #[error("the code is empty (every length is 0)")]
    EmptyCode,
    /// `first + count` exceeds the plane alphabet `2^w`.
    #[error(
        "symbol range first={first} count={count} exceeds the plane alphabet of {alphabet} symbols"
    )]
    RangeOutsideAlphabet {
        /// `first` field.
        first: u16,
        /// `count` field.
        count: u16,
        /// `2^w`.
        alphabet: u32,
    },
    /// The unused high nibble of the last length byte is not zero.
    #[error("the unused high nibble of the last code-length byte is not zero")]
    NonzeroPadding,
}

/// Everything that can go wrong while validating, encoding or decoding a chunk.
///
/// Decoding errors mean the stored bytes do not follow `format-spec/CODECS.md`:
/// the artifact is damaged, truncated, or was written by an incompatible or
/// buggy encoder. Since artifacts are signed, a decode error after a good
/// signature check points at an encoder bug; report it with the artifact.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The codec id is not one of the v1 codecs.
    #[error("unknown codec id {id}: this build only knows codecs 0 (raw), 1 (planes), 2 (mantissa) and 3 (quant); upgrade tic or recompile the artifact with this version")]
    UnknownCodec {
        /// The codec id found.
        id: u16,
    },
    /// The codec parameters are malformed or do not fit the element size.
    #[error("invalid parameters for codec {id} with {elem_size}-byte elements: {reason}; recompile the artifact")]
    BadParams {
        /// Codec id.
        id: u16,
        /// Element size in bytes the parameters were checked against.
        elem_size: usize,
        /// What is wrong.
        reason: String,
    },
    /// A chunk length is not a whole number of elements.
    #[error("chunk of {len} bytes is not a whole number of {elem_size}-byte elements; chunks must be cut on element boundaries")]
    BadLength {
        /// Length in bytes.
        len: usize,
        /// Element size in bytes.
        elem_size: usize,
    },
    /// The stored chunk ends before a structure it announces.
    #[error("stored chunk truncated: {what} needs {need} bytes at offset {offset} but only {have} remain; the artifact is damaged or cut short")]
    Truncated {
        /// Which structure was being read.
        what: &'static str,
        /// Byte offset in the stored chunk.
        offset: usize,
        /// Bytes needed.
        need: usize,
        /// Bytes available from `offset`.
        have: usize,
    },
    /// Bytes remain after the last structure of the stored chunk.
    #[error("{extra} unexpected bytes after the end of the stored chunk's data; the artifact is damaged or was written by an incompatible encoder")]
    TrailingBytes {
        /// Number of extra bytes.
        extra: usize,
    },
    /// A plane section has an unknown mode byte.
    #[error("plane {plane}: unknown section mode {mode} (0 raw, 1 const, 2 huffman are defined); the artifact is damaged or needs a newer tic")]
    BadMode {
        /// Plane index.
        plane: usize,
        /// Mode byte found.
        mode: u8,
    },
    /// Huffman mode was used on a plane wider than 10 bits.
    #[error("plane {plane}: huffman mode is only defined for planes up to 10 bits wide, this plane is {width} bits; the artifact is damaged")]
    HuffmanTooWide {
        /// Plane index.
        plane: usize,
        /// Plane width in bits.
        width: u8,
    },
    /// A section's length does not match what its mode requires.
    #[error("plane {plane}: section body is {got} bytes but its mode requires {expected}; the artifact is damaged")]
    BadSectionLength {
        /// Plane index.
        plane: usize,
        /// Bytes the mode requires.
        expected: usize,
        /// Bytes found.
        got: usize,
    },
    /// A const section's value does not fit the plane width.
    #[error(
        "plane {plane}: constant {value} does not fit in {width} bits; the artifact is damaged"
    )]
    BadConst {
        /// Plane index.
        plane: usize,
        /// The value found.
        value: u16,
        /// Plane width in bits.
        width: u8,
    },
    /// The padding bits after a raw plane's last symbol are not zero.
    #[error("plane {plane}: padding bits after the last raw symbol are not zero; the artifact is damaged")]
    RawPadding {
        /// Plane index.
        plane: usize,
    },
    /// A Huffman table is invalid.
    #[error("plane {plane}: invalid Huffman table: {fault}; the artifact is damaged")]
    BadTable {
        /// Plane index.
        plane: usize,
        /// What is wrong with it.
        fault: TableFault,
    },
    /// A tile offset is not the sum of the earlier lane lengths.
    #[error("plane {plane}, tile {tile}: tile offset is {got} but the earlier lanes add up to {expected}; the artifact is damaged")]
    BadTileOffset {
        /// Plane index.
        plane: usize,
        /// Tile index.
        tile: usize,
        /// Sum of the earlier lane lengths.
        expected: u64,
        /// Offset found.
        got: u32,
    },
    /// The lane data area does not end exactly at the end of the section.
    #[error("plane {plane}: the tile directory describes {expected} bytes of lane data but the section holds {got}; the artifact is damaged")]
    LaneAreaLength {
        /// Plane index.
        plane: usize,
        /// Sum of all lane lengths.
        expected: u64,
        /// Bytes left in the section for lane data.
        got: usize,
    },
    /// A lane holds a bit pattern that no code is assigned to.
    #[error("plane {plane}, tile {tile}, lane {lane}: bit pattern matches no code; the artifact is damaged")]
    InvalidCode {
        /// Plane index.
        plane: usize,
        /// Tile index.
        tile: usize,
        /// Lane index.
        lane: usize,
    },
    /// Decoding a lane's symbols needs more bits than the lane holds.
    #[error("plane {plane}, tile {tile}, lane {lane}: decoding the lane's symbols runs past its end; the artifact is damaged")]
    LaneOverrun {
        /// Plane index.
        plane: usize,
        /// Tile index.
        tile: usize,
        /// Lane index.
        lane: usize,
    },
    /// A lane is longer than the bits its symbols use, rounded up to a byte.
    #[error("plane {plane}, tile {tile}, lane {lane}: lane is {got} bytes but its symbols use {expected}; the artifact is damaged")]
    LaneLength {
        /// Plane index.
        plane: usize,
        /// Tile index.
        tile: usize,
        /// Lane index.
        lane: usize,
        /// `ceil(bits used / 8)`.
        expected: usize,
        /// `lane_len` found.
        got: usize,
    },
    /// The padding bits at the end of a lane are not zero.
    #[error("plane {plane}, tile {tile}, lane {lane}: padding bits after the last symbol are not zero; the artifact is damaged")]
    NonzeroPadding {
        /// Plane index.
        plane: usize,
        /// Tile index.
        tile: usize,
        /// Lane index.
        lane: usize,
    },
    /// The chunk is too large for a v1 structure (a u32 section length or tile offset).
    #[error("chunk too large for the v1 bitstream: {what}; use a smaller chunk size")]
    TooLarge {
        /// Which limit was hit.
        what: &'static str,
    },
    /// A lossy (codec 2 or 3) chunk breaks a rule of `LOSSY.md`: a code
    /// too wide or not defined, or a bad exception list.
    #[error(
        "lossy chunk: {reason}; the artifact is damaged or was written by an incompatible encoder"
    )]
    BadLossyChunk {
        /// What is wrong.
        reason: String,
    },
}
