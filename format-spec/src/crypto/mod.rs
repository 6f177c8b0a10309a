//! Encryption constructions of tic v1 (normative text: `format-spec/ENCRYPTION.md`).
//!
//! - [`derive()`] / [`check_commitment`]: the key schedule. A random
//!   [`FileKey`] per artifact and a random salt give the [`PayloadKey`] and a
//!   key commitment; salt and commitment go into the signed header.
//! - [`seal_chunk`] / [`open_chunk`]: each payload chunk is ChaCha20-Poly1305
//!   under the payload key with a STREAM nonce ([`chunk_nonce`]); the stored
//!   chunk is ciphertext ‖ tag, and the container's signed digests are over it.
//! - [`verify_chunk_tag`] + [`keystream_params`]: the same decryption split in
//!   two halves, for a reader that checks tags on the host and XORs the
//!   keystream elsewhere (the GPU path).
//! - [`RecipientsSection`]: the file key wrapped to age X25519 recipients and
//!   raw symmetric keys, outside the signature.
//!
//! Readers MUST check the commitment before decrypting anything
//! ([`check_commitment`], or [`RecipientsSection::unwrap_checked`]).

mod aead;
mod error;
mod keys;
mod recipients;

#[cfg(test)]
mod tests;

pub use aead::{
    aead_apply_keystream, aead_open, aead_open_into, aead_seal, aead_verify_tag,
    apply_chunk_keystream, chunk_nonce, keystream_params, open_chunk, open_chunk_in_place,
    open_chunk_into, seal_chunk, verify_chunk_tag, AEAD_MAX_PLAINTEXT, KEYSTREAM_INITIAL_COUNTER,
};
pub use error::CryptoError;
pub use keys::{
    check_commitment, derive, hkdf_sha256, random_file_key, random_salt, FileKey, PayloadKey,
    COMMITMENT_INFO, HKDF_SHA256_MAX_OUTPUT, PAYLOAD_KEY_INFO,
};
pub use recipients::{
    is_ssh_public_key, parse_identity_file, parse_recipient, parse_recipients_file,
    read_symmetric_key_file, Identity, Recipient, RecipientEntry, RecipientsSection, SymmetricKey,
    KIND_AGE, KIND_SYMMETRIC, MAX_BODY_LEN, MAX_LABEL_LEN, MAX_RECIPIENTS, MAX_SECTION_LEN,
    RECIPIENTS_MAGIC, SYMMETRIC_BODY_LEN, SYMMETRIC_KEY_ID_INFO, SYMMETRIC_LABEL_PREFIX,
    SYMMETRIC_WRAP_AAD, SYMMETRIC_WRAP_INFO,
};

/// Length of a [`FileKey`].
pub const FILE_KEY_LEN: usize = 32;
/// Length of the header salt.
pub const SALT_LEN: usize = 32;
/// Length of a Poly1305 tag; every stored chunk ends with one.
pub const TAG_LEN: usize = 16;
/// Length of a ChaCha20-Poly1305 nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the key commitment.
pub const COMMITMENT_LEN: usize = 32;
