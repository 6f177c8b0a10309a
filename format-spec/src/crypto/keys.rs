//! The key schedule: file key → (payload key, key commitment), and the
//! HKDF-SHA256 every derivation in this module goes through.

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::{CryptoError, FILE_KEY_LEN, SALT_LEN};

/// HKDF `info` for the payload key.
pub const PAYLOAD_KEY_INFO: &[u8] = b"tic v1 payload key";
/// HKDF `info` for the key commitment.
pub const COMMITMENT_INFO: &[u8] = b"tic v1 key commitment";
/// Largest HKDF-SHA256 output: 255 × 32 bytes (RFC 5869).
pub const HKDF_SHA256_MAX_OUTPUT: usize = 255 * 32;

/// The random 32-byte per-artifact key that the recipients section wraps.
///
/// Zeroed on drop; `Debug` prints no key bytes.
#[derive(Clone)]
pub struct FileKey([u8; FILE_KEY_LEN]);

impl FileKey {
    /// Wraps known key bytes (test vectors, a key unwrapped elsewhere).
    /// Fresh keys come from [`random_file_key`].
    pub fn from_bytes(bytes: [u8; FILE_KEY_LEN]) -> Self {
        FileKey(bytes)
    }

    /// The key bytes. Named so that every use stands out in review.
    pub fn expose_secret(&self) -> &[u8; FILE_KEY_LEN] {
        &self.0
    }
}

impl Drop for FileKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FileKey(<redacted>)")
    }
}

/// The ChaCha20-Poly1305 key of the payload chunks, derived from a
/// [`FileKey`] and the header salt by [`derive()`].
///
/// Zeroed on drop; `Debug` prints no key bytes.
#[derive(Clone)]
pub struct PayloadKey([u8; 32]);

impl PayloadKey {
    /// The key bytes (what the GPU path uploads; see [`super::keystream_params`]).
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Drop for PayloadKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for PayloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PayloadKey(<redacted>)")
    }
}

/// Fills `out` from the operating system's CSPRNG (ring's `SystemRandom`).
pub(crate) fn fill_random(out: &mut [u8]) -> Result<(), CryptoError> {
    SystemRandom::new().fill(out).map_err(|_| CryptoError::Rng)
}

/// A fresh random file key.
pub fn random_file_key() -> Result<FileKey, CryptoError> {
    let mut key = FileKey([0; FILE_KEY_LEN]);
    fill_random(&mut key.0)?;
    Ok(key)
}

/// A fresh random 32-byte salt for the signed header.
pub fn random_salt() -> Result<[u8; SALT_LEN], CryptoError> {
    let mut salt = [0; SALT_LEN];
    fill_random(&mut salt)?;
    Ok(salt)
}

struct OutLen(usize);

impl ring::hkdf::KeyType for OutLen {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA256 (RFC 5869): Extract(`salt`, `ikm`) then Expand(`info`, `out.len()`).
///
/// An empty `salt` is the RFC's default (equivalent to 32 zero bytes).
/// Fails only when `out` is longer than 255 × 32 bytes.
pub fn hkdf_sha256(
    salt: &[u8],
    ikm: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let requested = out.len();
    let too_long = || CryptoError::HkdfOutputTooLong {
        requested,
        max: HKDF_SHA256_MAX_OUTPUT,
    };
    if out.len() > HKDF_SHA256_MAX_OUTPUT {
        return Err(too_long());
    }
    let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    let okm = prk
        .expand(&info, OutLen(out.len()))
        .map_err(|_| too_long())?;
    okm.fill(out).map_err(|_| too_long())
}

/// 32 bytes of HKDF-SHA256 output; cannot fail (32 ≤ 255 × 32).
pub(crate) fn hkdf32(salt: &[u8], ikm: &[u8], info: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    if hkdf_sha256(salt, ikm, info, &mut out).is_err() {
        unreachable!("HKDF-SHA256 always yields 32 bytes");
    }
    out
}

/// The key schedule: PRK = HKDF-Extract(salt, file key);
/// payload key = HKDF-Expand(PRK, "tic v1 payload key", 32);
/// commitment = HKDF-Expand(PRK, "tic v1 key commitment", 32).
///
/// Writers store `salt` and the commitment in the signed header.
pub fn derive(file_key: &FileKey, salt: &[u8; SALT_LEN]) -> (PayloadKey, [u8; 32]) {
    let payload = PayloadKey(hkdf32(salt, &file_key.0, PAYLOAD_KEY_INFO));
    let commitment = hkdf32(salt, &file_key.0, COMMITMENT_INFO);
    (payload, commitment)
}

/// Recomputes the commitment of `file_key` under `salt`, compares it in
/// constant time with the header's `commitment`, and only on a match returns
/// the payload key. Readers MUST call this before decrypting anything.
pub fn check_commitment(
    file_key: &FileKey,
    salt: &[u8; SALT_LEN],
    commitment: &[u8; 32],
) -> Result<PayloadKey, CryptoError> {
    let (payload, computed) = derive(file_key, salt);
    if bool::from(computed.ct_eq(commitment)) {
        Ok(payload)
    } else {
        Err(CryptoError::CommitmentMismatch)
    }
}
