//! Lossless per-chunk codecs (normative description: `format-spec/CODECS.md`).
//!
//! A tensor is cut by the compiler into chunks (contiguous element ranges);
//! each chunk is encoded on its own with the tensor's [`CodecSpec`]:
//! - codec 0 `raw`: the bytes as they are;
//! - codec 1 `planes`: each element (optionally rotated left by one bit) is
//!   split into bit planes, and each plane is stored raw, as a constant, or
//!   with a length-limited canonical Huffman code laid out for GPU decoding
//!   (65536-symbol tiles of 32 interleaved lanes, 12-bit maximum code length,
//!   an escape symbol for rare values).
//!
//! All functions here are pure and `Send`; callers parallelize across chunks.
//! Decoding never panics, whatever the input.

mod bits;
mod choose;
mod dispatch;
mod error;
mod huffman;
mod lossy;
mod planes;

#[cfg(test)]
mod measure;
#[cfg(test)]
mod tests;

pub use choose::{candidates, choose_codec, SAMPLE_CHUNKS};
pub use error::{CodecError, TableFault};
pub use lossy::{
    check_and_measure, lossy_bound, lossy_dtype, lossy_dtype_supported, plan_lossy, ErrorStats,
    LossySetting, BOUND_ABSOLUTE, BOUND_RELATIVE, CODEC_MANTISSA, CODEC_QUANT,
};
pub use planes::{PlanesParams, MAX_PLANES, MAX_PLANE_WIDTH};

/// Codec 0: stored chunk = original bytes.
pub const CODEC_RAW: u16 = 0;
/// Codec 1: bit planes, each raw, constant or Huffman coded.
pub const CODEC_PLANES: u16 = 1;
/// Symbols per Huffman tile.
pub const TILE_SYMBOLS: usize = 65536;
/// Interleaved lanes per tile.
pub const LANES: usize = 32;
/// Longest Huffman code, in bits.
pub const MAX_CODE_LEN: u32 = 12;
/// Entries of the single-lookup decode table (`2^MAX_CODE_LEN`).
pub const TABLE_SIZE: usize = 1 << MAX_CODE_LEN;
/// Widest plane that may use Huffman mode, in bits.
pub const MAX_HUFFMAN_WIDTH: u32 = 10;
/// Longest params field of any codec, in bytes.
pub const MAX_PARAMS_LEN: usize = 64;

/// How a tensor is coded: stored in the artifact header per tensor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CodecSpec {
    /// Codec id ([`CODEC_RAW`] or [`CODEC_PLANES`] in v1).
    pub id: u16,
    /// Codec parameters (empty for raw; see [`PlanesParams`]).
    pub params: Vec<u8>,
}

impl CodecSpec {
    /// The `raw` codec.
    pub fn raw() -> Self {
        CodecSpec {
            id: CODEC_RAW,
            params: Vec::new(),
        }
    }

    /// Checks that the id is known and the params are valid for elements of
    /// `elem_size` bytes. Unknown ids give [`CodecError::UnknownCodec`].
    pub fn validate(&self, elem_size: usize) -> Result<(), CodecError> {
        if matches!(self.id, CODEC_MANTISSA | CODEC_QUANT) {
            return lossy::LossyParams::parse(self, elem_size).map(|_| ());
        }
        self.parsed(elem_size).map(|_| ())
    }

    fn parsed(&self, elem_size: usize) -> Result<Option<PlanesParams>, CodecError> {
        if self.params.len() > MAX_PARAMS_LEN {
            return Err(CodecError::BadParams {
                id: self.id,
                elem_size,
                reason: format!(
                    "params are {} bytes, at most {MAX_PARAMS_LEN} are allowed",
                    self.params.len()
                ),
            });
        }
        match self.id {
            CODEC_RAW => {
                if elem_size == 0 {
                    Err(CodecError::BadParams {
                        id: self.id,
                        elem_size,
                        reason: "element size is 0".into(),
                    })
                } else if !self.params.is_empty() {
                    Err(CodecError::BadParams {
                        id: self.id,
                        elem_size,
                        reason: format!("raw takes no params, got {} bytes", self.params.len()),
                    })
                } else {
                    Ok(None)
                }
            }
            CODEC_PLANES => PlanesParams::from_bytes(&self.params, elem_size).map(Some),
            id => Err(CodecError::UnknownCodec { id }),
        }
    }

    /// Short human name for `tic inspect`: `raw`, `planes(rot,10+6)`, ...
    /// Malformed specs are shown as `codec<id>(<hex params>)`.
    pub fn name(&self) -> String {
        match self.id {
            CODEC_RAW if self.params.is_empty() => "raw".into(),
            CODEC_PLANES => match self.params.as_slice() {
                [r @ (0 | 1), p, w @ ..] if usize::from(*p) == w.len() => PlanesParams {
                    rotate: *r == 1,
                    widths: w.to_vec(),
                }
                .name(),
                _ => self.fallback_name(),
            },
            CODEC_MANTISSA | CODEC_QUANT => {
                lossy::name(self).unwrap_or_else(|| self.fallback_name())
            }
            _ => self.fallback_name(),
        }
    }

    fn fallback_name(&self) -> String {
        let hex: String = self.params.iter().map(|b| format!("{b:02x}")).collect();
        format!("codec{}({hex})", self.id)
    }

    /// Whether decoding reproduces the original bytes exactly (true for
    /// codecs 0 and 1, false for the lossy codecs 2 and 3).
    pub fn is_lossless(&self) -> bool {
        matches!(self.id, CODEC_RAW | CODEC_PLANES)
    }
}

fn check_len(len: usize, elem_size: usize) -> Result<(), CodecError> {
    if elem_size == 0 || !len.is_multiple_of(elem_size) {
        Err(CodecError::BadLength { len, elem_size })
    } else {
        Ok(())
    }
}

/// Encodes one chunk (`data.len()` must be a multiple of `elem_size`).
pub fn encode_chunk(
    spec: &CodecSpec,
    elem_size: usize,
    data: &[u8],
) -> Result<Vec<u8>, CodecError> {
    if matches!(spec.id, CODEC_MANTISSA | CODEC_QUANT) {
        let lp = lossy::LossyParams::parse(spec, elem_size)?;
        check_len(data.len(), elem_size)?;
        return lossy::encode(&lp, data);
    }
    let pp = spec.parsed(elem_size)?;
    check_len(data.len(), elem_size)?;
    match pp {
        None => Ok(data.to_vec()),
        Some(pp) => planes::encode(&pp, elem_size, data),
    }
}

/// Decodes one chunk into `out`, whose length is the chunk's original length.
/// Never panics; on error the content of `out` is unspecified.
pub fn decode_chunk(
    spec: &CodecSpec,
    elem_size: usize,
    stored: &[u8],
    out: &mut [u8],
) -> Result<(), CodecError> {
    if matches!(spec.id, CODEC_MANTISSA | CODEC_QUANT) {
        let lp = lossy::LossyParams::parse(spec, elem_size)?;
        check_len(out.len(), elem_size)?;
        return lossy::decode(&lp, stored, out);
    }
    let pp = spec.parsed(elem_size)?;
    check_len(out.len(), elem_size)?;
    match pp {
        None => {
            if stored.len() < out.len() {
                Err(CodecError::Truncated {
                    what: "raw chunk",
                    offset: 0,
                    need: out.len(),
                    have: stored.len(),
                })
            } else if stored.len() > out.len() {
                Err(CodecError::TrailingBytes {
                    extra: stored.len() - out.len(),
                })
            } else {
                out.copy_from_slice(stored);
                Ok(())
            }
        }
        Some(pp) => planes::decode(&pp, elem_size, stored, out),
    }
}
