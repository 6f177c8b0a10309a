//! Codec bitstreams (see format-spec/CODECS.md). Placeholder until the codec lands.
use thiserror::Error;
pub const CODEC_RAW: u16 = 0;
pub const CODEC_PLANES: u16 = 1;
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecSpec {
    pub id: u16,
    pub params: Vec<u8>,
}
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CodecError {
    #[error("unknown codec {id}")]
    UnknownCodec { id: u16 },
}
impl CodecSpec {
    pub fn raw() -> Self {
        CodecSpec {
            id: CODEC_RAW,
            params: vec![],
        }
    }
    pub fn validate(&self, _elem_size: usize) -> Result<(), CodecError> {
        if self.id == CODEC_RAW {
            Ok(())
        } else {
            Err(CodecError::UnknownCodec { id: self.id })
        }
    }
    pub fn name(&self) -> String {
        "raw".into()
    }
    pub fn is_lossless(&self) -> bool {
        true
    }
}
pub fn encode_chunk(_s: &CodecSpec, _e: usize, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    Ok(data.to_vec())
}
pub fn decode_chunk(
    _s: &CodecSpec,
    _e: usize,
    stored: &[u8],
    out: &mut [u8],
) -> Result<(), CodecError> {
    out.copy_from_slice(stored);
    Ok(())
}
pub fn choose_codec(_e: usize, _f: bool, _d: &[u8], _c: usize) -> CodecSpec {
    CodecSpec::raw()
}
pub const TILE_SYMBOLS: usize = 65536;
