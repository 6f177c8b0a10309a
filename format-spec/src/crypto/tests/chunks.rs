//! Key schedule and chunk AEAD.

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;

use crate::crypto::*;

fn key(seed: u8) -> (FileKey, [u8; 32], PayloadKey, [u8; 32]) {
    let fk = FileKey::from_bytes([seed; 32]);
    let salt = [seed.wrapping_add(1); 32];
    let (pk, c) = derive(&fk, &salt);
    (fk, salt, pk, c)
}

fn text(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn nonce_layout() {
    assert_eq!(chunk_nonce(0, false), [0; 12]);
    assert_eq!(chunk_nonce(0, true), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(
        chunk_nonce(0x0102_0304_0506_0708, true),
        [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1]
    );
    assert_eq!(
        chunk_nonce(u64::MAX, false),
        [0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]
    );
}

#[test]
fn key_schedule_is_hkdf_with_distinct_outputs() {
    let (fk, salt, pk, c) = key(7);
    // Recompute by hand through the same HKDF.
    let mut p = [0u8; 32];
    hkdf_sha256(&salt, fk.expose_secret(), b"tic v1 payload key", &mut p).unwrap();
    let mut cc = [0u8; 32];
    hkdf_sha256(&salt, fk.expose_secret(), b"tic v1 key commitment", &mut cc).unwrap();
    assert_eq!(pk.expose_secret(), &p);
    assert_eq!(c, cc);
    assert_ne!(p, cc);

    assert_eq!(
        check_commitment(&fk, &salt, &c).unwrap().expose_secret(),
        &p
    );
    let other_salt = [9u8; 32];
    assert!(matches!(
        check_commitment(&fk, &other_salt, &c),
        Err(CryptoError::CommitmentMismatch)
    ));
    let other_key = FileKey::from_bytes([8; 32]);
    assert!(matches!(
        check_commitment(&other_key, &salt, &c),
        Err(CryptoError::CommitmentMismatch)
    ));
}

#[test]
fn random_keys_and_salts_differ() {
    let a = random_file_key().unwrap();
    let b = random_file_key().unwrap();
    assert_ne!(a.expose_secret(), b.expose_secret());
    assert_ne!(random_salt().unwrap(), random_salt().unwrap());
}

#[test]
fn debug_prints_no_key_material() {
    let (fk, _, pk, _) = key(0xab);
    let d = format!("{fk:?} {pk:?}");
    assert!(
        !d.contains("171") && !d.to_lowercase().contains("abab"),
        "{d}"
    );
    assert!(d.contains("redacted"));
}

#[test]
fn seal_open_round_trip() {
    let (_, _, pk, _) = key(1);
    for len in [0, 1, 15, 16, 63, 64, 65, 1000, 70_000] {
        let pt = text(len);
        for (index, last) in [(0, false), (0, true), (5, false), (u64::MAX, true)] {
            let stored = seal_chunk(&pk, index, last, &pt);
            assert_eq!(stored.len(), len + TAG_LEN);
            if len > 0 {
                assert_ne!(&stored[..len], &pt[..], "len {len} not encrypted");
            }
            assert_eq!(open_chunk(&pk, index, last, &stored).unwrap(), pt);
            let mut out = vec![0xee; len];
            open_chunk_into(&pk, index, last, &stored, &mut out).unwrap();
            assert_eq!(out, pt);
        }
    }
}

#[test]
fn wrong_index_flag_or_key_fails() {
    let (_, _, pk, _) = key(1);
    let (_, _, other, _) = key(2);
    let pt = text(100);
    let stored = seal_chunk(&pk, 3, false, &pt);
    for (k, i, l) in [
        (&pk, 4, false),
        (&pk, 2, false),
        (&pk, 3, true),
        (&other, 3, false),
    ] {
        match open_chunk(k, i, l, &stored) {
            Err(CryptoError::ChunkAuthFailed { index }) => assert_eq!(index, i),
            r => panic!("expected ChunkAuthFailed, got {r:?}"),
        }
        assert!(verify_chunk_tag(k, i, l, &stored).is_err());
    }
    // Chunks of one artifact cannot be swapped: same plaintext, different ciphertext.
    assert_ne!(
        seal_chunk(&pk, 0, false, &pt),
        seal_chunk(&pk, 1, false, &pt)
    );
    assert_ne!(
        seal_chunk(&pk, 1, false, &pt),
        seal_chunk(&pk, 1, true, &pt)
    );
}

#[test]
fn every_flipped_bit_of_ct_or_tag_is_caught() {
    let (_, _, pk, _) = key(3);
    let pt = text(40);
    let stored = seal_chunk(&pk, 9, true, &pt);
    for i in 0..stored.len() {
        for bit in [0x01u8, 0x80] {
            let mut t = stored.clone();
            t[i] ^= bit;
            assert!(
                matches!(
                    open_chunk(&pk, 9, true, &t),
                    Err(CryptoError::ChunkAuthFailed { index: 9 })
                ),
                "byte {i}"
            );
            let mut out = vec![0x55; pt.len()];
            assert!(open_chunk_into(&pk, 9, true, &t, &mut out).is_err());
            assert!(out.iter().all(|&b| b == 0), "no output on failure");
            assert!(verify_chunk_tag(&pk, 9, true, &t).is_err(), "byte {i}");
        }
    }
    // Truncation and extension.
    assert!(open_chunk(&pk, 9, true, &stored[..stored.len() - 1]).is_err());
    let mut longer = stored.clone();
    longer.push(0);
    assert!(open_chunk(&pk, 9, true, &longer).is_err());
}

#[test]
fn short_chunks_and_bad_buffers_are_errors() {
    let (_, _, pk, _) = key(4);
    for n in 0..TAG_LEN {
        let s = vec![0u8; n];
        assert!(matches!(
            open_chunk(&pk, 1, false, &s),
            Err(CryptoError::ChunkTooShort { index: 1, len }) if len == n
        ));
        assert!(matches!(
            verify_chunk_tag(&pk, 1, false, &s),
            Err(CryptoError::ChunkTooShort { .. })
        ));
        assert!(aead_open(&[0; 32], &[0; 12], b"", &s).is_err());
        assert!(aead_verify_tag(&[0; 32], &[0; 12], b"", &s).is_err());
    }
    let stored = seal_chunk(&pk, 1, false, &text(10));
    let mut out = vec![0; 11];
    assert!(matches!(
        open_chunk_into(&pk, 1, false, &stored, &mut out),
        Err(CryptoError::OutputLength {
            expected: 10,
            got: 11
        })
    ));
    // An empty plaintext chunk is just a tag.
    let empty = seal_chunk(&pk, 0, true, b"");
    assert_eq!(empty.len(), TAG_LEN);
    assert_eq!(open_chunk(&pk, 0, true, &empty).unwrap(), b"");
    verify_chunk_tag(&pk, 0, true, &empty).unwrap();
}

#[test]
fn split_path_matches_open() {
    let (_, _, pk, _) = key(5);
    for len in [0, 1, 64, 65, 200, 4097] {
        let pt = text(len);
        for (index, last) in [(0u64, false), (1, true), (1 << 40, false)] {
            let stored = seal_chunk(&pk, index, last, &pt);
            let mut via_into = vec![0; len];
            open_chunk_into(&pk, index, last, &stored, &mut via_into).unwrap();

            // Host half.
            verify_chunk_tag(&pk, index, last, &stored).unwrap();
            // Device half, done here with the chacha20 crate directly.
            let (k, n, counter) = keystream_params(&pk, index, last);
            assert_eq!(counter, 1);
            assert_eq!(&k, pk.expose_secret());
            assert_eq!(n, chunk_nonce(index, last));
            let mut xored = stored[..len].to_vec();
            let mut c = ChaCha20::new((&k).into(), (&n).into());
            c.seek(u64::from(counter) * 64);
            c.apply_keystream(&mut xored);

            let mut via_helper = stored[..len].to_vec();
            apply_chunk_keystream(&pk, index, last, &mut via_helper);

            assert_eq!(via_into, pt);
            assert_eq!(xored, pt);
            assert_eq!(via_helper, pt);
        }
    }
}

#[test]
fn hkdf_limits() {
    let mut ok = vec![0u8; HKDF_SHA256_MAX_OUTPUT];
    hkdf_sha256(b"", b"ikm", b"", &mut ok).unwrap();
    let mut too_long = vec![0u8; HKDF_SHA256_MAX_OUTPUT + 1];
    assert!(matches!(
        hkdf_sha256(b"", b"ikm", b"", &mut too_long),
        Err(CryptoError::HkdfOutputTooLong {
            requested: 8161,
            max: 8160
        })
    ));
    // Empty salt is RFC 5869's default: HashLen zero bytes.
    let mut a = [0u8; 42];
    let mut b = [0u8; 42];
    hkdf_sha256(b"", b"ikm", b"info", &mut a).unwrap();
    hkdf_sha256(&[0; 32], b"ikm", b"info", &mut b).unwrap();
    assert_eq!(a, b);
}

#[test]
fn open_in_place_matches_open_and_zeroes_on_tamper() {
    let key = crate::crypto::derive(&crate::crypto::FileKey::from_bytes([7; 32]), &[9; 32]).0;
    for len in [0usize, 1, 63, 64, 65, 4096] {
        let pt: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let sealed = crate::crypto::seal_chunk(&key, 5, true, &pt);
        let mut buf = sealed.clone();
        crate::crypto::open_chunk_in_place(&key, 5, true, &mut buf).unwrap();
        assert_eq!(buf, pt);
        // Wrong position or any flipped byte fails and leaves only zeros.
        let mut buf = sealed.clone();
        assert!(crate::crypto::open_chunk_in_place(&key, 6, true, &mut buf).is_err());
        assert!(buf.iter().all(|&b| b == 0));
        for at in [0, sealed.len() / 2, sealed.len() - 1] {
            let mut buf = sealed.clone();
            buf[at] ^= 0x40;
            assert!(matches!(
                crate::crypto::open_chunk_in_place(&key, 5, true, &mut buf),
                Err(crate::crypto::CryptoError::ChunkAuthFailed { index: 5 })
            ));
            assert!(buf.iter().all(|&b| b == 0));
        }
    }
    let mut short = vec![1u8; 15];
    assert!(crate::crypto::open_chunk_in_place(&key, 0, false, &mut short).is_err());
}
