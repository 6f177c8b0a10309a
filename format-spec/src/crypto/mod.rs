//! Encryption constructions (see format-spec/ENCRYPTION.md). Placeholder with
//! the agreed signatures until the crypto branch lands; every function fails.
use thiserror::Error;
pub const FILE_KEY_LEN: usize = 32;
pub const SALT_LEN: usize = 32;
pub const TAG_LEN: usize = 16;
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CryptoError {
    #[error("encryption is not available in this build")]
    Unavailable,
}
pub struct FileKey([u8; 32]);
pub struct PayloadKey([u8; 32]);
pub struct SymmetricKey([u8; 32]);
pub enum Recipient {
    Symmetric(SymmetricKey),
}
pub enum Identity {
    Symmetric(SymmetricKey),
}
pub struct RecipientEntry {
    pub kind: u8,
    pub label: String,
    pub body: Vec<u8>,
}
pub struct RecipientsSection {
    pub entries: Vec<RecipientEntry>,
}
pub fn random_file_key() -> Result<FileKey, CryptoError> {
    Err(CryptoError::Unavailable)
}
pub fn random_salt() -> Result<[u8; 32], CryptoError> {
    Err(CryptoError::Unavailable)
}
pub fn derive(_f: &FileKey, _s: &[u8; 32]) -> (PayloadKey, [u8; 32]) {
    (PayloadKey([0; 32]), [0; 32])
}
pub fn check_commitment(
    _f: &FileKey,
    _s: &[u8; 32],
    _c: &[u8; 32],
) -> Result<PayloadKey, CryptoError> {
    Err(CryptoError::Unavailable)
}
pub fn seal_chunk(_k: &PayloadKey, _i: u64, _l: bool, p: &[u8]) -> Vec<u8> {
    p.to_vec()
}
pub fn open_chunk_into(
    _k: &PayloadKey,
    _i: u64,
    _l: bool,
    _s: &[u8],
    _o: &mut [u8],
) -> Result<(), CryptoError> {
    Err(CryptoError::Unavailable)
}
impl RecipientsSection {
    pub fn parse(_b: &[u8]) -> Result<Self, CryptoError> {
        Err(CryptoError::Unavailable)
    }
    pub fn to_bytes(&self) -> Vec<u8> {
        vec![]
    }
    pub fn wrap(_f: &FileKey, _r: &[Recipient]) -> Result<Self, CryptoError> {
        Err(CryptoError::Unavailable)
    }
    pub fn unwrap(&self, _i: &[Identity]) -> Result<FileKey, CryptoError> {
        Err(CryptoError::Unavailable)
    }
}
pub fn parse_identity_file(_t: &str) -> Result<Vec<Identity>, CryptoError> {
    Err(CryptoError::Unavailable)
}
pub fn read_symmetric_key_file(_b: &[u8]) -> Result<SymmetricKey, CryptoError> {
    Err(CryptoError::Unavailable)
}
pub fn parse_recipient(_s: &str) -> Result<Recipient, CryptoError> {
    Err(CryptoError::Unavailable)
}
