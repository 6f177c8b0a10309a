//! Attacks on signed artifacts, through the runtime API: every change an
//! attacker can make to a signed artifact, short of holding a trusted key,
//! must make opening or verifying it fail with the error that says what
//! happened. And what only a trusted key (or a writer bug) can sign: a
//! header whose digests or stored chunks do not describe the model, caught
//! by the decode and the final digests, with nothing restored.

mod support;

use std::path::Path;

use ed25519_dalek::{Signer, Verifier, VerifyingKey};
use support::assert_err;
use tic_format::header::PREAMBLE_LEN;
use tic_format::sign::{self, SignError, SignatureSection};
use tic_format::{FormatError, Header};
use tic_runtime::{Artifact, ErrorKind, RuntimeError, SignatureStatus};
use tic_tests::*;

/// Asserts that `err` is a signature that does not verify.
#[track_caller]
fn assert_bad_signature(err: &RuntimeError) {
    assert_err!(
        err,
        RuntimeError::Signature {
            source: SignError::BadSignature { .. },
            ..
        }
    );
}

/// What a change at some byte of a signed, unencrypted artifact must cause.
fn check_rejection(
    err: &RuntimeError,
    parts: &Parts,
    h: &Header,
    owners: &[usize],
    off: usize,
) -> Result<(), String> {
    use FormatError as F;
    use RuntimeError as R;
    let ok = match off {
        0..8 => matches!(
            err,
            R::Format {
                source: F::BadMagic,
                ..
            }
        ),
        8..10 => matches!(
            err,
            R::Format {
                source: F::UnsupportedVersion { .. },
                ..
            }
        ),
        // The minor version is part of the signed message.
        10..12 => matches!(
            err,
            R::Signature {
                source: SignError::BadSignature { .. },
                ..
            }
        ),
        12..16 => matches!(
            err,
            R::Format {
                source: F::NonZeroFlags { .. },
                ..
            }
        ),
        // header_len, recipients_len: wrong lengths or over the limits.
        16..24 | 32..40 => matches!(
            err,
            R::Format {
                source: F::LengthMismatch { .. } | F::LimitExceeded { .. },
                ..
            }
        ),
        24..32 => matches!(
            err,
            R::Format {
                source: F::BadSignatureSection(_) | F::LengthMismatch { .. },
                ..
            }
        ),
        40..48 => matches!(
            err,
            R::Format {
                source: F::LengthMismatch { .. },
                ..
            }
        ),
        o if parts.header_range().contains(&o) => {
            matches!(
                err,
                R::Signature {
                    source: SignError::BadSignature { .. },
                    ..
                }
            )
        }
        o if parts.signature_range().contains(&o) => {
            let rel = o - parts.signature_range().start;
            match rel {
                // The algorithm number.
                0..2 => matches!(
                    err,
                    R::Signature {
                        source: SignError::BadSection(_),
                        ..
                    }
                ),
                // The signer's public key: now a key nobody trusts.
                2..34 => matches!(err, R::UntrustedSigner { .. }),
                // R or S of the signature.
                _ => matches!(
                    err,
                    R::Signature {
                        source: SignError::BadSignature { .. },
                        ..
                    }
                ),
            }
        }
        o if parts.payload_range().contains(&o) => {
            let i = (0..h.chunks.len())
                .find(|&i| parts.chunk_range(h, i).contains(&o))
                .expect("the chunks tile the payload");
            let t = &h.tensors[owners[i]];
            match err {
                R::ChunkDigest { chunk, tensor, .. } => {
                    *chunk == i as u64
                        && if t.name.is_empty() {
                            // A blob: named as file contents, never as a tensor.
                            SMALL_TENSORS.iter().all(|n| !tensor.contains(n))
                        } else {
                            tensor.contains(&t.name)
                        }
                }
                _ => false,
            }
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("byte {off}: unexpected error {err:?}"))
    }
}

#[test]
fn every_single_byte_change_is_rejected() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let model = small_model(&dir.path().join("model"), 1);
    let path = dir.path().join("a.tic");
    compile(&model, &path, Some(&key), Vec::new());
    let original = std::fs::read(&path).unwrap();
    let parts = Parts::split(&original);
    let h = parts.parsed_header();
    let owners = chunk_owners(&h);
    assert!(
        h.chunks.len() >= 4,
        "want several chunks, got {}",
        h.chunks.len()
    );
    assert!(
        original.len() < 4096,
        "keep the artifact small: {} bytes",
        original.len()
    );
    verify(&path, &vk).expect("the untouched artifact verifies");
    for step in [1, 7, 4096] {
        verify_streamed(&path, &vk, step).expect("the untouched artifact verifies as a stream");
    }
    println!(
        "artifact: {} bytes, {} chunks, header {} bytes",
        original.len(),
        h.chunks.len(),
        parts.header.len()
    );

    // At every offset: each of the 8 one-bit changes, all bits inverted,
    // and one more pseudo-random value.
    let extra = pseudo_random(11, original.len());
    let mut failures = Vec::new();
    let mut checked = 0;
    for (off, &x) in extra.iter().enumerate() {
        let masks = [1u8, 2, 4, 8, 16, 32, 64, 128, 0xff, x.max(1)];
        for mask in masks {
            xor_byte(&path, off as u64, mask);
            match verify(&path, &vk) {
                Ok(_) => failures.push(format!("byte {off} ^ {mask:#04x}: still verifies")),
                Err(e) => {
                    if let Err(m) = check_rejection(&e, &parts, &h, &owners, off) {
                        failures.push(format!("{m} (mask {mask:#04x})"));
                    }
                    assert_eq!(e.kind(), ErrorKind::Verification, "byte {off}: {e}");
                    // Streamed, the same error; only a changed section
                    // length can fail differently (a stream is not
                    // measured first).
                    match verify_streamed(&path, &vk, 1 << 16) {
                        Ok(_) => failures.push(format!(
                            "byte {off} ^ {mask:#04x}: still verifies as a stream"
                        )),
                        Err(s)
                            if !(16..48).contains(&off) && format!("{s:?}") != format!("{e:?}") =>
                        {
                            failures.push(format!(
                                "byte {off} ^ {mask:#04x}: streamed {s:?}, not {e:?}"
                            ))
                        }
                        Err(s) => assert_eq!(s.kind(), ErrorKind::Verification, "byte {off}: {s}"),
                    }
                }
            }
            xor_byte(&path, off as u64, mask);
            checked += 1;
        }
    }
    assert_eq!(std::fs::read(&path).unwrap(), original, "restored");
    assert_eq!(checked, original.len() * 10);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn truncation_and_appended_bytes_are_rejected() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let big = Tensor::random("big", "U8", &[300_000], 7);
    let mut tensors = small_tensors(2);
    tensors.push(big);
    let model = model_with(&dir.path().join("model"), &tensors);
    let path = dir.path().join("a.tic");
    compile(&model, &path, Some(&key), Vec::new());
    let original = std::fs::read(&path).unwrap();
    let parts = Parts::split(&original);
    let h = parts.parsed_header();
    let big_first = first_chunk_of(&h, "big");
    let big_chunks = h
        .tensors
        .iter()
        .find(|t| t.name == "big")
        .unwrap()
        .chunk_count;
    assert!(big_chunks >= 2, "the big tensor should span several chunks");

    // Every chunk start, the middle of every chunk, the end of each front
    // section, and a few bytes short of the end.
    let mut cuts = vec![
        0,
        7,
        PREAMBLE_LEN - 1,
        PREAMBLE_LEN,
        parts.header_range().end,
        parts.signature_range().end,
        original.len() - 1,
    ];
    for i in 0..h.chunks.len() {
        let r = parts.chunk_range(&h, i);
        cuts.push(r.start);
        cuts.push(r.start + r.len() / 2);
    }
    let cut_path = dir.path().join("cut.tic");
    for &cut in &cuts {
        std::fs::write(&cut_path, &original[..cut]).unwrap();
        let err = verify(&cut_path, &vk).expect_err("a truncated artifact must not verify");
        let streamed = verify_streamed(&cut_path, &vk, 1000).err();
        assert_eq!(
            streamed.map(|e| format!("{e:?}")),
            Some(format!("{err:?}")),
            "cut at {cut}, streamed"
        );
        assert!(
            matches!(
                &err,
                RuntimeError::Format {
                    source: FormatError::LengthMismatch { .. } | FormatError::Truncated { .. },
                    ..
                }
            ) || (cut < 8 && matches!(&err, RuntimeError::Format { .. })),
            "cut at {cut}: {err:?}"
        );
        if let RuntimeError::Format {
            source: FormatError::LengthMismatch { .. },
            ..
        } = &err
        {
            // Said of a file and of a stream alike: no "file" in it.
            let want = format!(
                "add up to {} bytes, but the artifact is {cut} bytes long: it is truncated",
                original.len()
            );
            assert!(err.to_string().contains(&want), "{err}");
        }
    }

    // Bytes appended at the end.
    for extra in [&b"\0"[..], b"x", &[0u8; 4096]] {
        let mut b = original.clone();
        b.extend_from_slice(extra);
        std::fs::write(&cut_path, &b).unwrap();
        let err = verify(&cut_path, &vk).expect_err("appended bytes must not verify");
        let streamed = verify_streamed(&cut_path, &vk, 1000).err();
        assert_eq!(
            streamed.map(|e| format!("{e:?}")),
            Some(format!("{err:?}")),
            "{} bytes appended, streamed",
            extra.len()
        );
        assert_err!(
            err,
            RuntimeError::Format {
                source: FormatError::LengthMismatch { .. },
                ..
            }
        );
    }

    // Truncation that fixes up the (unsigned) preamble so the lengths add
    // up: the signed header still says how long the payload is.
    for i in [h.chunks.len() - 1, big_first + 1] {
        for keep in [
            parts.chunk_range(&h, i).start,
            parts.chunk_range(&h, i).start + 5,
        ] {
            let mut p = parts.clone();
            p.payload.truncate(keep - parts.payload_range().start);
            p.write(&cut_path);
            let err =
                verify(&cut_path, &vk).expect_err("a consistent-looking truncation must fail");
            let streamed = verify_streamed(&cut_path, &vk, 1000).err();
            assert_eq!(streamed.map(|e| format!("{e:?}")), Some(format!("{err:?}")));
            assert_err!(err, RuntimeError::Format { source: FormatError::Inconsistent(m), .. } if m.contains("payload"), "chunk {i}, kept {keep}");
        }
    }
}

/// Two models that differ only in the order of the elements of `embed.weight`,
/// so its chunks differ but have the same stored length under any codec
/// that codes a chunk's element histogram.
fn two_signed_artifacts(dir: &Path, key: &ed25519_dalek::SigningKey) -> (Parts, Parts) {
    let a_tensors = small_tensors(3);
    let mut b_tensors = a_tensors.clone();
    let t = &mut b_tensors[0];
    let elems: Vec<&[u8]> = t.data.chunks(4).rev().collect();
    t.data = elems.concat();
    assert_ne!(a_tensors[0].data, b_tensors[0].data);
    let a_model = model_with(&dir.join("a-model"), &a_tensors);
    let b_model = model_with(&dir.join("b-model"), &b_tensors);
    compile(&a_model, &dir.join("a.tic"), Some(key), Vec::new());
    compile(&b_model, &dir.join("b.tic"), Some(key), Vec::new());
    (
        Parts::read(&dir.join("a.tic")),
        Parts::read(&dir.join("b.tic")),
    )
}

#[test]
fn chunk_swapped_between_two_artifacts_of_one_signer_is_rejected() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let (a, b) = two_signed_artifacts(dir.path(), &key);
    verify(&dir.path().join("a.tic"), &vk).unwrap();
    verify(&dir.path().join("b.tic"), &vk).unwrap();
    let (ha, hb) = (a.parsed_header(), b.parsed_header());
    let j = first_chunk_of(&ha, "embed.weight");
    assert_eq!(j, first_chunk_of(&hb, "embed.weight"));
    let (ra, rb) = (a.chunk_in_payload(&ha, j), b.chunk_in_payload(&hb, j));
    assert_eq!(
        ra, rb,
        "chunk {j} must have the same place and length in both"
    );
    assert_ne!(a.payload[ra.clone()], b.payload[rb.clone()]);

    for (victim, donor, h) in [(&a, &b, &ha), (&b, &a, &hb)] {
        let mut p = victim.clone();
        p.payload[ra.clone()].copy_from_slice(&donor.payload[rb.clone()]);
        let path = dir.path().join("swapped.tic");
        p.write(&path);
        // The signature still verifies: only the payload changed.
        let art = open_trusting(&path, &vk).expect("the header is untouched");
        let err = art.verify_chunks(&tic_runtime::NoProgress).unwrap_err();
        assert_err!(err, RuntimeError::ChunkDigest { chunk, tensor, .. } if *chunk == j as u64 && tensor.contains("embed.weight"));
        let err = art.read_tensor("embed.weight").unwrap_err();
        assert_err!(err, RuntimeError::ChunkDigest { chunk, .. } if *chunk == j as u64);
        // The other tensors, whose chunks were not touched, still read.
        let other = art.read_tensor("norm.bias").unwrap();
        assert_eq!(
            other.len() as u64,
            h.tensors
                .iter()
                .find(|t| t.name == "norm.bias")
                .unwrap()
                .orig_len
        );
    }
}

#[test]
fn chunk_tables_swapped_between_two_artifacts_are_rejected() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let (a, b) = two_signed_artifacts(dir.path(), &key);
    let (ha, hb) = (a.parsed_header(), b.parsed_header());
    let (ta, tb) = (a.chunk_table_in_header(&ha), b.chunk_table_in_header(&hb));
    assert_eq!(ta.len(), tb.len());
    assert_ne!(
        a.header[ta.clone()],
        b.header[tb.clone()],
        "the tables differ"
    );
    let path = dir.path().join("swapped.tic");

    // A's header with B's chunk table (and A's payload, or B's).
    for payload in [&a.payload, &b.payload] {
        let mut p = a.clone();
        p.header[ta.clone()].copy_from_slice(&b.header[tb.clone()]);
        p.payload = payload.clone();
        assert_eq!(
            Header::parse(&p.header).unwrap().chunks,
            hb.chunks,
            "the table was swapped"
        );
        p.write(&path);
        let err = verify(&path, &vk).err().unwrap();
        assert_bad_signature(&err);
    }

    // B's whole signed header and signature (so B's chunk table) over A's
    // payload: the signature verifies, the chunk digests do not.
    let mut p = b.clone();
    p.payload = a.payload.clone();
    p.write(&path);
    let art = open_trusting(&path, &vk).expect("B's header and signature are intact");
    let err = art.verify_chunks(&tic_runtime::NoProgress).unwrap_err();
    let j = first_chunk_of(&hb, "embed.weight") as u64;
    assert_err!(err, RuntimeError::ChunkDigest { chunk, .. } if *chunk == j);
}

#[test]
fn valid_signature_by_an_untrusted_key_is_rejected() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let other = signing_key();
    let model = small_model(&dir.path().join("model"), 4);
    let path = dir.path().join("a.tic");
    compile(&model, &path, Some(&key), Vec::new());
    let fp = sign::fingerprint(&key.verifying_key());

    let err = verify(&path, &other.verifying_key()).err().unwrap();
    assert_err!(err, RuntimeError::UntrustedSigner { fingerprint, .. } if *fingerprint == fp);
    assert_eq!(err.kind(), ErrorKind::Verification);
    assert!(
        err.to_string().contains(&fp) && err.to_string().contains("--trusted-key"),
        "{err}"
    );

    // Trusting several keys: the signer's is found wherever it is.
    let art = Artifact::open(
        &path,
        &options(
            &[other.verifying_key(), key.verifying_key()],
            false,
            Vec::new(),
        ),
    )
    .unwrap();
    assert_eq!(
        art.signature(),
        &SignatureStatus::Verified {
            fingerprint: fp.clone()
        }
    );

    // No trusted key at all, unsigned not allowed: a usage error, not a pass.
    let err = Artifact::open(&path, &options(&[], false, Vec::new()))
        .err()
        .unwrap();
    assert_err!(err, RuntimeError::NoTrustedKeys { fingerprint, .. } if *fingerprint == fp);
    assert_eq!(err.kind(), ErrorKind::Usage);

    // No trusted key with unsigned allowed: readable, but never "verified".
    let art = Artifact::open(&path, &options(&[], true, Vec::new())).unwrap();
    assert_eq!(
        art.signature(),
        &SignatureStatus::NotChecked { fingerprint: fp }
    );
}

#[test]
fn artifact_re_signed_by_an_attacker_is_rejected() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let attacker = signing_key();
    let model = small_model(&dir.path().join("model"), 5);
    let path = dir.path().join("a.tic");
    compile(&model, &path, Some(&key), Vec::new());

    // Re-signed through the external-signing tools, payload untouched.
    let m = tic_compiler::signing_message(&path).unwrap();
    let sig = attacker.sign(&m).to_bytes();
    let resigned = dir.path().join("resigned.tic");
    attach_signature(&path, &sig, &attacker.verifying_key(), &resigned).unwrap();
    assert!(
        verify(&resigned, &attacker.verifying_key()).is_ok(),
        "a valid signature, by the attacker"
    );
    let err = verify(&resigned, &vk).err().unwrap();
    let afp = sign::fingerprint(&attacker.verifying_key());
    assert_err!(err, RuntimeError::UntrustedSigner { fingerprint, .. } if *fingerprint == afp);

    // Tampered payload, chunk digest fixed in the header, re-signed.
    let mut p = Parts::read(&path);
    let mut h = p.parsed_header();
    let j = first_chunk_of(&h, "norm.bias");
    let r = p.chunk_in_payload(&h, j);
    p.payload[r.start] ^= 0x40;
    h.chunks[j].sha256 = tic_format::sha256(&p.payload[r]);
    p.set_header(&h);
    p.sign(&attacker);
    p.write(&resigned);
    let err = verify(&resigned, &vk).err().unwrap();
    assert_err!(err, RuntimeError::UntrustedSigner { .. });

    // The same, but claiming the trusted signer's public key.
    let mut section = SignatureSection::parse(&p.signature).unwrap();
    section.public_key = vk.to_bytes();
    p.signature = section.to_bytes();
    p.write(&resigned);
    let err = verify(&resigned, &vk).err().unwrap();
    assert_bad_signature(&err);
}

#[test]
fn removed_signature_section_is_rejected_as_unsigned() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let model = small_model(&dir.path().join("model"), 6);
    let path = dir.path().join("a.tic");
    compile(&model, &path, Some(&key), Vec::new());
    let mut p = Parts::read(&path);
    p.signature.clear();
    let stripped = dir.path().join("stripped.tic");
    p.write(&stripped);

    let err = verify(&stripped, &vk).err().unwrap();
    assert_err!(err, RuntimeError::Unsigned { .. });
    assert_eq!(err.kind(), ErrorKind::Verification);
    assert!(err.to_string().contains("--allow-unsigned"), "{err}");

    // Even where unsigned artifacts are allowed, it is never reported as
    // verified by the trusted key.
    let art = Artifact::open(&stripped, &options(&[vk], true, Vec::new())).unwrap();
    assert_eq!(art.signature(), &SignatureStatus::Unsigned);
}

/// The group order L of Ed25519, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn add_l(s: &mut [u8]) {
    let mut carry = 0u16;
    for i in 0..32 {
        let v = s[i] as u16 + L[i] as u16 + carry;
        s[i] = v as u8;
        carry = v >> 8;
    }
    assert_eq!(carry, 0);
}

#[test]
fn malformed_and_non_canonical_signatures_are_rejected() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let model = small_model(&dir.path().join("model"), 8);
    let path = dir.path().join("a.tic");
    compile(&model, &path, Some(&key), Vec::new());
    let good = Parts::read(&path);
    let bad_path = dir.path().join("bad.tic");
    let bad_sig = |p: &Parts| {
        p.write(&bad_path);
        verify(&bad_path, &vk).err().unwrap()
    };

    // S + L: the same scalar mod L, so a lax verifier would accept it.
    let mut p = good.clone();
    add_l(&mut p.signature[34 + 32..]);
    let err = bad_sig(&p);
    assert_bad_signature(&err);

    // Unknown algorithm number.
    let mut p = good.clone();
    p.signature[..2].copy_from_slice(&2u16.to_le_bytes());
    let err = bad_sig(&p);
    assert_err!(
        err,
        RuntimeError::Signature {
            source: SignError::BadSection(_),
            ..
        }
    );

    // All-zero signature; R replaced by the identity point (small order).
    for r in [[0u8; 32], {
        let mut id = [0u8; 32];
        id[0] = 1;
        id
    }] {
        let mut p = good.clone();
        p.signature[34..66].copy_from_slice(&r);
        let err = bad_sig(&p);
        assert_bad_signature(&err);
    }

    // A signature section of the wrong length.
    for len in [97usize, 99, 1] {
        let mut p = good.clone();
        p.signature.resize(len, 0);
        let err = bad_sig(&p);
        assert_err!(
            err,
            RuntimeError::Format {
                source: FormatError::BadSignatureSection(_),
                ..
            },
            "{len}"
        );
    }

    // A small-order (weak) public key that a user was tricked into
    // trusting: R = identity, S = 0 passes the lax check for any message,
    // and strict verification must refuse it.
    let mut weak = [0u8; 32];
    weak[0] = 1;
    let weak_vk = VerifyingKey::from_bytes(&weak).expect("the identity point decodes");
    let mut sig = [0u8; 64];
    sig[0] = 1;
    let m = tic_compiler::signing_message(&path).unwrap();
    assert!(
        weak_vk
            .verify(&m, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok(),
        "the lax check accepts the forgery, so this test means something"
    );
    let mut p = good.clone();
    p.signature = SignatureSection {
        public_key: weak,
        signature: sig,
    }
    .to_bytes();
    p.write(&bad_path);
    let err = verify(&bad_path, &weak_vk).err().unwrap();
    assert_bad_signature(&err);
}

const X25519_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VuAyEACBwjMoxEOgz61qJf0YzVE5KCG9KHfSWx12on+eo85zc=
-----END PUBLIC KEY-----
";
const RSA_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCX2FN+MH/R993TvbFSMzw+I3Xi
waR9WTTUtwK3YavOUh0dkSdhiSJx7hBGPITqbl4EIQ3PcDc4YUOw8zfcuqDBpBHG
YZCqcQXab8gUT1rJnXhPqdB6481MQauDLAnhBNqPeX3di9sb/b4K1DzSQMjXokgJ
HQuuJ22bMLCasb+L2wIDAQAB
-----END PUBLIC KEY-----
";
const P256_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEo8snHFMkw27Y8YL+TG3TWAEbOSFo
hlIUjmaGS069kcUH1h6L6wLoSFRN5588pu6toxRaiF8/XRazZThh1HgXuA==
-----END PUBLIC KEY-----
";

#[test]
fn public_key_files_that_are_not_ed25519_are_refused() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let private_pem = sign::private_key_pem(&key).unwrap();
    let cases: [(&str, &[u8]); 5] = [
        ("x25519.pub", X25519_SPKI.as_bytes()),
        ("rsa.pub", RSA_SPKI.as_bytes()),
        ("p256.pub", P256_SPKI.as_bytes()),
        ("raw32.pub", &key.verifying_key().to_bytes()),
        ("empty.pub", b""),
    ];
    for (name, bytes) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let err = tic_runtime::read_public_key(&p).unwrap_err();
        assert_err!(err, tic_runtime::KeyFileError::Sign { path, source: SignError::BadPublicKey(_) } if path == &p, "{name}");
        let msg = err.to_string();
        assert!(
            msg.contains(p.to_str().unwrap()),
            "{name}: the message names the file: {msg}"
        );
        assert!(
            msg.contains("Ed25519") && msg.contains("openssl pkey") && msg.contains("tic keygen"),
            "{name}: the message says what to do: {msg}"
        );
        // The same through a directory of trusted keys.
        let kd = dir.path().join(format!("dir-{name}"));
        std::fs::create_dir(&kd).unwrap();
        std::fs::write(kd.join("bad.pub"), bytes).unwrap();
        let err = tic_runtime::read_trusted_keys(std::slice::from_ref(&kd)).unwrap_err();
        assert!(err.to_string().contains("bad.pub"), "{err}");
    }

    // The private key given as the public one is called what it is.
    let p = dir.path().join("private-key-given-as-public.pub");
    std::fs::write(&p, &private_pem).unwrap();
    let err = tic_runtime::read_public_key(&p).unwrap_err();
    assert_err!(err, tic_runtime::KeyFileError::Sign { path, source: SignError::PrivateKeyGivenAsPublic } if path == &p);
    let msg = err.to_string();
    assert!(
        msg.contains(p.to_str().unwrap()) && msg.contains("PRIVATE key") && msg.contains("-pubout"),
        "{msg}"
    );

    // The real public key of the same pair is accepted.
    let good = dir.path().join("good.pub");
    std::fs::write(&good, sign::public_key_pem(&key.verifying_key()).unwrap()).unwrap();
    assert_eq!(
        tic_runtime::read_public_key(&good).unwrap(),
        key.verifying_key()
    );

    // A missing file, and a directory with no keys, are named too.
    let missing = dir.path().join("missing.pub");
    let err = tic_runtime::read_public_key(&missing).unwrap_err();
    assert!(
        matches!(&err, tic_runtime::KeyFileError::Io { .. })
            && err.to_string().contains("missing.pub"),
        "{err}"
    );
    let empty = dir.path().join("no-keys");
    std::fs::create_dir(&empty).unwrap();
    let err = tic_runtime::read_trusted_keys(&[empty]).unwrap_err();
    assert!(
        matches!(&err, tic_runtime::KeyFileError::EmptyKeyDir { .. })
            && err.to_string().contains("no-keys"),
        "{err}"
    );
}

#[test]
fn tampered_chunk_fails_its_tensor_only() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let tensors = small_tensors(9);
    let model = small_model(&dir.path().join("model"), 9);
    let path = dir.path().join("a.tic");
    compile(&model, &path, Some(&key), Vec::new());
    let p = Parts::read(&path);
    let h = p.parsed_header();

    // Before: every tensor reads back exactly.
    let art = open_trusting(&path, &vk).unwrap();
    for t in &tensors {
        assert_eq!(art.read_tensor(&t.name).unwrap(), t.data, "{}", t.name);
    }
    drop(art);

    for (victim, t) in tensors.iter().enumerate() {
        let j = first_chunk_of(&h, &t.name);
        let r = p.chunk_range(&h, j);
        let at = r.start + r.len() / 2;
        xor_byte(&path, at as u64, 0x10);
        // Opening checks the signature only; no chunk is read.
        let art = open_trusting(&path, &vk).expect("the header is intact");
        let err = art.read_tensor(&t.name).unwrap_err();
        assert!(
            matches!(&err, RuntimeError::ChunkDigest { chunk, tensor, .. } if *chunk == j as u64 && tensor.contains(&t.name)),
            "{}: {err:?}",
            t.name
        );
        assert!(
            err.to_string().contains(&t.name),
            "the message names the tensor: {err}"
        );
        // The other tensors still read, bit for bit: reading one tensor
        // reads and checks its own chunks, not the whole file.
        for (k, other) in tensors.iter().enumerate() {
            if k != victim {
                assert_eq!(
                    art.read_tensor(&other.name).unwrap(),
                    other.data,
                    "{}",
                    other.name
                );
            }
        }
        // Restoring the files fails and leaves nothing at the output.
        let out_root = dir.path().join(format!("out{victim}"));
        std::fs::create_dir(&out_root).unwrap();
        let err = art
            .extract(&out_root.join("model"), false, &tic_runtime::NoProgress)
            .unwrap_err();
        assert_err!(err, RuntimeError::ChunkDigest { .. });
        assert_eq!(
            std::fs::read_dir(&out_root).unwrap().count(),
            0,
            "nothing written"
        );
        xor_byte(&path, at as u64, 0x10);
    }
    verify(&path, &vk).expect("restored");
}

#[test]
fn external_signing_is_byte_identical_to_compile_sign() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let model = small_model(&dir.path().join("model"), 10);
    let unsigned = dir.path().join("unsigned.tic");
    let direct = dir.path().join("direct.tic");
    compile(&model, &unsigned, None, Vec::new());
    compile(&model, &direct, Some(&key), Vec::new());

    // The message is the spec's 62 bytes, built here independently.
    let m = tic_compiler::signing_message(&unsigned).unwrap();
    let p = Parts::read(&unsigned);
    let mut want = b"tic artifact signature v1\0".to_vec();
    want.extend_from_slice(&1u16.to_le_bytes());
    want.extend_from_slice(&0u16.to_le_bytes());
    want.extend_from_slice(&tic_format::sha256(&p.header));
    assert_eq!(m.to_vec(), want);

    // Signed outside tic, attached: the same bytes as `compile --sign`.
    let sig = key.sign(&m).to_bytes();
    let attached = dir.path().join("attached.tic");
    let fp = attach_signature(&unsigned, &sig, &vk, &attached).unwrap();
    assert_eq!(fp, sign::fingerprint(&vk));
    assert_eq!(
        std::fs::read(&attached).unwrap(),
        std::fs::read(&direct).unwrap()
    );
    verify(&attached, &vk).unwrap();

    // A signature that does not verify is refused, and nothing is written.
    let other = signing_key();
    let refused = dir.path().join("refused.tic");
    for (sig, claimed) in [
        (other.sign(&m).to_bytes().to_vec(), vk),
        (key.sign(b"some other message").to_bytes().to_vec(), vk),
        (sig.to_vec(), other.verifying_key()),
    ] {
        let err = attach_signature(&unsigned, &sig, &claimed, &refused).unwrap_err();
        assert_err!(
            err,
            tic_compiler::AmendError::Sign(SignError::BadSignature { .. })
        );
        assert!(!refused.exists());
    }
    let err = attach_signature(&unsigned, &sig[..63], &vk, &refused).unwrap_err();
    assert_err!(
        err,
        tic_compiler::AmendError::Sign(SignError::BadSignatureLength(63))
    );
    assert!(!refused.exists());
}

#[test]
fn extraction_in_order_and_all_or_nothing_on_one_and_many_threads() {
    // Several 1 MiB extraction windows in one file (BF16 weights that code,
    // bytes that do not), restored with one thread (decode beside the
    // writer) and with several (a window pipeline feeding a writer thread).
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let bf16: Vec<u8> = pseudo_random(5, 3 << 20)
        .chunks_exact(2)
        .flat_map(|p| [p[0], 0x3c | (p[1] & 0x81)])
        .collect();
    let tensors = vec![
        Tensor::random("a.bytes", "U8", &[3 << 20], 1),
        Tensor {
            name: "b.weight".into(),
            dtype: "BF16",
            shape: vec![3 << 19],
            data: bf16,
        },
        Tensor::random("c.bytes", "U8", &[1 << 20], 2),
    ];
    let model = model_with(&dir.path().join("model"), &tensors);
    let path = dir.path().join("a.tic");
    compile(&model, &path, Some(&key), Vec::new());
    let want = sha256_tree(&model);
    let pool = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let extract = |threads: usize, out: &Path| {
        let art = open_trusting(&path, &vk).unwrap();
        pool(threads).install(|| art.extract(out, false, &tic_runtime::NoProgress))
    };
    for threads in [1, 2, 5] {
        let out = dir.path().join(format!("ok{threads}"));
        extract(threads, &out).unwrap();
        assert_eq!(sha256_tree(&out), want, "{threads} threads");
    }

    // A damaged chunk late in the file: no output at all, whichever path.
    let p = Parts::read(&path);
    let h = p.parsed_header();
    let r = p.chunk_range(&h, h.chunks.len() - 3);
    xor_byte(&path, (r.start + r.len() / 2) as u64, 0x01);
    for threads in [1, 2, 5] {
        let root = dir.path().join(format!("bad{threads}"));
        std::fs::create_dir(&root).unwrap();
        let err = extract(threads, &root.join("model")).unwrap_err();
        assert_err!(err, RuntimeError::ChunkDigest { .. });
        assert_eq!(
            std::fs::read_dir(&root).unwrap().count(),
            0,
            "nothing written"
        );
    }
}

#[test]
fn files_restored_side_by_side_fail_on_the_first_damaged_file_in_order() {
    // Five shards and a config, restored by pools of one, three and six
    // threads: several files at once, each written and hashed in order.
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let names: Vec<String> = (1..=5)
        .map(|k| format!("model-0000{k}-of-00005.safetensors"))
        .collect();
    let mut files: Vec<(&str, Vec<u8>)> = names
        .iter()
        .zip(1u64..)
        .map(|(n, k)| {
            // Shard 2 takes many windows to restore, the others one.
            let len = if k == 2 { 1_500_000 } else { 100_000 };
            let t = Tensor::random(&format!("layer{k}.weight"), "BF16", &[len], k);
            (n.as_str(), safetensors_bytes(&[t]))
        })
        .collect();
    files.push(("config.json", br#"{"hidden_size":4}"#.to_vec()));
    let model = write_files(&dir.path().join("model"), &files);
    let path = dir.path().join("a.tic");
    compile(&model, &path, Some(&key), Vec::new());
    let want = sha256_tree(&model);
    // (0: called from outside any pool, as the CLI does, on the global one.)
    let extract = |threads: usize, out: &Path| {
        let art = open_trusting(&path, &vk).unwrap();
        if threads == 0 {
            return art.extract(out, false, &tic_runtime::NoProgress);
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| art.extract(out, false, &tic_runtime::NoProgress))
    };
    for threads in [0, 1, 3, 6] {
        let out = dir.path().join(format!("ok{threads}"));
        let report = extract(threads, &out).unwrap();
        assert_eq!(sha256_tree(&out), want, "{threads} threads");
        let listed: Vec<_> = report
            .files
            .iter()
            .map(|f| f.strip_prefix(&out).unwrap())
            .collect();
        let mut in_order: Vec<_> = files.iter().map(|(n, _)| Path::new(*n)).collect();
        in_order.sort();
        assert_eq!(
            listed, in_order,
            "the report lists the files in artifact order"
        );
    }

    // Damage the last chunk of the long shard 2 and the first of shard 4:
    // with more than one thread shard 4 starts while shard 2 is restored
    // and fails first, yet the error is shard 2's, as restoring the files
    // one by one would find it.
    let p = Parts::read(&path);
    let h = p.parsed_header();
    let chunks_of = |tensor: &str| -> Vec<usize> {
        let t = h.tensors.iter().find(|t| t.name == tensor).unwrap();
        h.tensor_chunks(t).map(|(i, _)| i as usize).collect()
    };
    let (second, fourth) = (chunks_of("layer2.weight"), chunks_of("layer4.weight"));
    assert!(second.len() > 2, "shard 2 spans several chunks");
    for i in [*second.last().unwrap(), fourth[0]] {
        let r = p.chunk_range(&h, i);
        xor_byte(&path, (r.start + r.len() / 2) as u64, 0x01);
    }
    for threads in [0, 1, 3, 6] {
        for round in 0..3 {
            let root = dir.path().join(format!("bad{threads}-{round}"));
            std::fs::create_dir(&root).unwrap();
            let err = extract(threads, &root.join("model")).unwrap_err();
            match &err {
                RuntimeError::ChunkDigest { tensor, chunk, .. } => {
                    assert_eq!(tensor, "`layer2.weight`", "{threads} threads: {err}");
                    assert_eq!(*chunk as usize, *second.last().unwrap());
                }
                e => panic!("{threads} threads: want shard 2's chunk digest error, got {e}"),
            }
            assert_eq!(
                std::fs::read_dir(&root).unwrap().count(),
                0,
                "nothing written"
            );
        }
    }
}

/// Extracts `art` into a new folder under `root` (created empty), which
/// must fail; returns the error after checking that nothing was written.
fn failed_extraction(art: &Artifact, root: &Path) -> RuntimeError {
    std::fs::create_dir(root).unwrap();
    let err = art
        .extract(&root.join("model"), false, &tic_runtime::NoProgress)
        .unwrap_err();
    assert_eq!(
        std::fs::read_dir(root).unwrap().count(),
        0,
        "nothing written: {err}"
    );
    err
}

#[test]
fn a_signer_whose_digests_or_chunks_lie_is_caught_after_decoding() {
    // What only the holder of a trusted key (or a writer bug) can do: sign
    // a header whose stored safetensors header, tensor or file digest, or
    // chunk bytes (with a matching chunk digest) do not describe the model.
    // The chunk digests pass, so the st_header check, the decode and the
    // final digests are what catch it.
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let mut tensors = small_tensors(9);
    tensors.push(Tensor {
        name: "ones".into(),
        dtype: "BF16",
        shape: vec![4096],
        data: [0x80, 0x3f].repeat(4096),
    });
    let model = model_with(&dir.path().join("model"), &tensors);
    let good = dir.path().join("good.tic");
    compile(&model, &good, Some(&key), Vec::new());
    let resign = |name: &str, change: &dyn Fn(&mut Parts, &mut Header)| {
        let mut p = Parts::read(&good);
        let mut h = p.parsed_header();
        change(&mut p, &mut h);
        p.set_header(&h);
        p.sign(&key);
        let path = dir.path().join(name);
        p.write(&path);
        let art = open_trusting(&path, &vk).unwrap();
        art.verify_chunks(&tic_runtime::NoProgress).unwrap();
        art
    };

    let art = resign("tensor-digest.tic", &|_, h| {
        let t = h
            .tensors
            .iter_mut()
            .find(|t| t.name == "norm.bias")
            .unwrap();
        t.sha256[0] ^= 1;
    });
    let err = art.read_tensor("norm.bias").unwrap_err();
    assert_err!(err, RuntimeError::TensorDigest { tensor, .. } if tensor.contains("norm.bias"));
    assert_eq!(err.kind(), ErrorKind::Verification);
    assert!(
        art.read_tensor("embed.weight").is_ok(),
        "other tensors still read"
    );

    let art = resign("file-digest.tic", &|_, h| {
        let f = h
            .files
            .iter_mut()
            .find(|f| f.path == "config.json")
            .unwrap();
        f.sha256[0] ^= 1;
    });
    let err = failed_extraction(&art, &dir.path().join("out-file"));
    assert_err!(err, RuntimeError::FileDigest { file, .. } if file == "config.json");

    // The st_header's JSON gives a tensor another dtype than its entry
    // (same length, so the header itself is well formed).
    let art = resign("st-header.tic", &|_, h| {
        let f = h
            .files
            .iter_mut()
            .find(|f| f.path == "model.safetensors")
            .unwrap();
        let json = String::from_utf8(f.st_header[8..].to_vec()).unwrap();
        assert!(json.contains(r#""dtype":"F32""#), "{json}");
        let json = json.replacen(r#""dtype":"F32""#, r#""dtype":"I32""#, 1);
        f.st_header.truncate(8);
        f.st_header.extend_from_slice(json.as_bytes());
    });
    let err = failed_extraction(&art, &dir.path().join("out-st-header"));
    assert_err!(err, RuntimeError::StHeaderMismatch { file, why, .. } if file == "model.safetensors" && why.contains("embed.weight"));
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    // The planes chunk of `ones` changed so that it does not decode (its
    // first plane section claims more bytes than there are), digest fixed.
    let art = resign("bad-chunk.tic", &|p, h| {
        let j = first_chunk_of(h, "ones");
        let r = p.chunk_in_payload(h, j);
        p.payload[r.start..r.start + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        h.chunks[j].sha256 = tic_format::sha256(&p.payload[r]);
    });
    let t = art.tensor("ones").unwrap();
    assert!(t.codec.name().starts_with("planes"), "{}", t.codec.name());
    let err = art.read_tensor("ones").unwrap_err();
    assert_err!(err, RuntimeError::Decode { tensor, .. } if tensor.contains("ones"));
    assert_eq!(err.kind(), ErrorKind::Verification);

    // Misuse, not bad input: a wrong name, a wrong buffer size, an output
    // that exists.
    let art = open_trusting(&good, &vk).unwrap();
    let err = art.read_tensor("no.such.tensor").unwrap_err();
    assert_err!(err, RuntimeError::TensorNotFound { name, .. } if name == "no.such.tensor");
    assert_eq!(err.kind(), ErrorKind::Usage);
    let t = art.tensor("embed.weight").unwrap();
    let mut short = vec![0u8; t.orig_len as usize - 1];
    let err = art.read_tensor_into(t, &mut short).unwrap_err();
    assert_err!(err, RuntimeError::BufferSize { got, .. } if *got == short.len());
    assert_eq!(err.kind(), ErrorKind::Usage);
    let err = art
        .extract(dir.path(), false, &tic_runtime::NoProgress)
        .unwrap_err();
    assert_err!(err, RuntimeError::OutputExists { .. });
    assert_eq!(err.kind(), ErrorKind::Usage);
}
