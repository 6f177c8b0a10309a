//! ChaCha20-Poly1305 (RFC 8439), the STREAM-style chunk construction built on
//! it, and the split "verify the tag here, XOR the keystream elsewhere" path.

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use poly1305::universal_hash::UniversalHash;
use poly1305::Poly1305;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::{CryptoError, PayloadKey, NONCE_LEN, TAG_LEN};

/// Initial ChaCha20 block counter of the payload keystream: block 0 is spent
/// on the Poly1305 one-time key (RFC 8439 §2.8).
pub const KEYSTREAM_INITIAL_COUNTER: u32 = 1;

/// Largest plaintext ChaCha20-Poly1305 accepts: 2^38 − 64 bytes (RFC 8439).
pub const AEAD_MAX_PLAINTEXT: u64 = (1 << 38) - 64;

/// ChaCha20-Poly1305 encryption; returns ciphertext ‖ 16-byte tag.
///
/// This is the primitive the chunk functions call.
///
/// # Panics
/// If `pt` is longer than 2^38 − 64 bytes ([`AEAD_MAX_PLAINTEXT`], the
/// RFC 8439 limit). tic chunks are bounded far below that by the container.
pub fn aead_seal(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], pt: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(pt.len() + TAG_LEN);
    out.extend_from_slice(pt);
    let tag = ChaCha20Poly1305::new(key.into())
        .encrypt_in_place_detached(nonce.into(), aad, &mut out)
        .unwrap_or_else(|_| {
            panic!(
                "ChaCha20-Poly1305 plaintext of {} bytes is over the RFC 8439 limit of 2^38 - 64",
                pt.len()
            )
        });
    out.extend_from_slice(&tag);
    out
}

/// ChaCha20-Poly1305 decryption of ciphertext ‖ tag; the plaintext is only
/// returned if the tag verifies.
pub fn aead_open(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ct_tag: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let Some(ct_len) = ct_tag.len().checked_sub(TAG_LEN) else {
        return Err(CryptoError::AeadAuthFailed);
    };
    let mut out = vec![0; ct_len];
    aead_open_into(key, nonce, aad, ct_tag, &mut out)?;
    Ok(out)
}

/// [`aead_open`] into a caller's buffer of exactly `ct_tag.len() − 16`
/// bytes. The tag is verified before any plaintext is written; on failure
/// `out` is left zeroed.
pub fn aead_open_into(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ct_tag: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    let Some(ct_len) = ct_tag.len().checked_sub(TAG_LEN) else {
        return Err(CryptoError::AeadAuthFailed);
    };
    if out.len() != ct_len {
        return Err(CryptoError::OutputLength {
            expected: ct_len,
            got: out.len(),
        });
    }
    let (ct, tag) = ct_tag.split_at(ct_len);
    out.copy_from_slice(ct);
    ChaCha20Poly1305::new(key.into())
        .decrypt_in_place_detached(nonce.into(), aad, out, tag.into())
        .map_err(|_| {
            out.fill(0);
            CryptoError::AeadAuthFailed
        })
}

/// Checks the Poly1305 tag of ciphertext ‖ tag without decrypting: derives
/// the one-time key from ChaCha20 block 0 and MACs `aad` and the ciphertext
/// as RFC 8439 §2.8 does. Comparison is constant time.
pub fn aead_verify_tag(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ct_tag: &[u8],
) -> Result<(), CryptoError> {
    let Some(ct_len) = ct_tag.len().checked_sub(TAG_LEN) else {
        return Err(CryptoError::AeadAuthFailed);
    };
    let (ct, tag) = ct_tag.split_at(ct_len);

    let mut otk = [0u8; 32];
    ChaCha20::new(key.into(), nonce.into()).apply_keystream(&mut otk);
    let mut mac = Poly1305::new((&otk).into());
    otk.zeroize();
    mac.update_padded(aad);
    mac.update_padded(ct);
    let mut lengths = [0u8; 16];
    lengths[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
    lengths[8..].copy_from_slice(&(ct.len() as u64).to_le_bytes());
    mac.update(&[lengths.into()]);
    let computed = mac.finalize();
    if bool::from(computed.as_slice().ct_eq(tag)) {
        Ok(())
    } else {
        Err(CryptoError::AeadAuthFailed)
    }
}

/// XORs `data` with the ChaCha20 keystream of (`key`, `nonce`) starting at
/// block [`KEYSTREAM_INITIAL_COUNTER`]: the encryption/decryption half of
/// ChaCha20-Poly1305 without the tag. Decrypting this way is only sound after
/// [`aead_verify_tag`] succeeded on the same bytes.
pub fn aead_apply_keystream(key: &[u8; 32], nonce: &[u8; NONCE_LEN], data: &mut [u8]) {
    let mut c = ChaCha20::new(key.into(), nonce.into());
    c.seek(64 * u64::from(KEYSTREAM_INITIAL_COUNTER));
    c.apply_keystream(data);
}

/// The nonce of chunk `index`: bytes 0..11 hold `index` as an 88-bit
/// big-endian integer (bytes 0..3 zero, bytes 3..11 the u64), byte 11 is
/// 0x01 for the last chunk of the artifact and 0x00 otherwise.
pub fn chunk_nonce(index: u64, last: bool) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

/// Encrypts chunk `index` (of the artifact's global chunk table; `last` iff it
/// is the final one); returns the stored form, ciphertext ‖ 16-byte tag.
///
/// # Panics
/// As [`aead_seal`]: if `plaintext` is over 2^38 − 64 bytes.
pub fn seal_chunk(key: &PayloadKey, index: u64, last: bool, plaintext: &[u8]) -> Vec<u8> {
    aead_seal(
        key.expose_secret(),
        &chunk_nonce(index, last),
        b"",
        plaintext,
    )
}

/// Authenticates and decrypts a stored chunk.
pub fn open_chunk(
    key: &PayloadKey,
    index: u64,
    last: bool,
    stored: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let Some(len) = stored.len().checked_sub(TAG_LEN) else {
        return Err(CryptoError::ChunkTooShort {
            index,
            len: stored.len(),
        });
    };
    let mut out = vec![0; len];
    open_chunk_into(key, index, last, stored, &mut out)?;
    Ok(out)
}

/// Authenticates and decrypts a stored chunk into `out`, which must be
/// exactly `stored.len() − 16` bytes. On failure `out` holds only zeros.
pub fn open_chunk_into(
    key: &PayloadKey,
    index: u64,
    last: bool,
    stored: &[u8],
    out: &mut [u8],
) -> Result<(), CryptoError> {
    if stored.len() < TAG_LEN {
        return Err(CryptoError::ChunkTooShort {
            index,
            len: stored.len(),
        });
    }
    aead_open_into(
        key.expose_secret(),
        &chunk_nonce(index, last),
        b"",
        stored,
        out,
    )
    .map_err(|e| match e {
        CryptoError::AeadAuthFailed => CryptoError::ChunkAuthFailed { index },
        other => other,
    })
}

/// Authenticates and decrypts a stored chunk in place: on success `buf`
/// holds the plaintext (`stored.len() − 16` bytes); on failure it holds
/// only zeros. Saves the copy [`open_chunk_into`] makes.
pub fn open_chunk_in_place(
    key: &PayloadKey,
    index: u64,
    last: bool,
    buf: &mut Vec<u8>,
) -> Result<(), CryptoError> {
    let Some(ct_len) = buf.len().checked_sub(TAG_LEN) else {
        return Err(CryptoError::ChunkTooShort {
            index,
            len: buf.len(),
        });
    };
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&buf[ct_len..]);
    buf.truncate(ct_len);
    ChaCha20Poly1305::new(key.expose_secret().into())
        .decrypt_in_place_detached((&chunk_nonce(index, last)).into(), b"", buf, (&tag).into())
        .map_err(|_| {
            buf.fill(0);
            CryptoError::ChunkAuthFailed { index }
        })
}

/// The host half of the split path: checks the Poly1305 tag of a stored
/// chunk over its ciphertext (one ChaCha20 block computes the one-time key;
/// nothing is decrypted). Only after this succeeds may the ciphertext be
/// XORed with the keystream of [`keystream_params`].
pub fn verify_chunk_tag(
    key: &PayloadKey,
    index: u64,
    last: bool,
    stored: &[u8],
) -> Result<(), CryptoError> {
    if stored.len() < TAG_LEN {
        return Err(CryptoError::ChunkTooShort {
            index,
            len: stored.len(),
        });
    }
    aead_verify_tag(key.expose_secret(), &chunk_nonce(index, last), b"", stored)
        .map_err(|_| CryptoError::ChunkAuthFailed { index })
}

/// The device half of the split path: (ChaCha20 key, 12-byte nonce, initial
/// 32-bit block counter = 1). Plaintext = ciphertext XOR ChaCha20(key, nonce)
/// keystream starting at that block (RFC 8439 §2.4 layout: counter word 12,
/// nonce words 13..15).
pub fn keystream_params(
    key: &PayloadKey,
    index: u64,
    last: bool,
) -> ([u8; 32], [u8; NONCE_LEN], u32) {
    (
        *key.expose_secret(),
        chunk_nonce(index, last),
        KEYSTREAM_INITIAL_COUNTER,
    )
}

/// CPU reference of the device half: XORs `data` (a chunk's ciphertext,
/// without tag) with the chunk's keystream in place. Call only after
/// [`verify_chunk_tag`] succeeded on the same stored bytes.
pub fn apply_chunk_keystream(key: &PayloadKey, index: u64, last: bool, data: &mut [u8]) {
    aead_apply_keystream(key.expose_secret(), &chunk_nonce(index, last), data);
}
