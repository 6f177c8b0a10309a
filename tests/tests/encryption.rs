//! Encrypted artifacts: round trips to age recipients and symmetric keys,
//! recipients changed by `rewrap`, and tampering with the ciphertext, the
//! chunk order, the last chunk and the wrapped keys, each caught with the
//! error that names it (the chunk digest first, and the AEAD itself where
//! an attacker could make the digests match).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use support::assert_err;
use tic_format::crypto::{self, CryptoError, Identity, Recipient, RecipientsSection};
use tic_format::{Encryption, FormatError, Header};
use tic_runtime::{Artifact, ErrorKind, RuntimeError};
use tic_tests::*;

fn age_pair() -> (Identity, Recipient) {
    let id = age::x25519::Identity::generate();
    let r = Recipient::Age(id.to_public());
    (Identity::Age(id), r)
}

fn sym_pair() -> (Identity, Recipient) {
    let k = symmetric_key();
    (Identity::Symmetric(k.clone()), Recipient::Symmetric(k))
}

/// The small model plus a 150 KB tensor that spans several chunks.
fn enc_model(dir: &Path, seed: u64) -> PathBuf {
    let mut tensors = small_tensors(seed);
    tensors.push(Tensor::random("big", "U8", &[150_000], seed + 10));
    model_with(dir, &tensors)
}

/// A signed artifact `enc.tic` of a model in a temporary directory,
/// encrypted to one new symmetric key.
struct SymEncrypted {
    dir: TempDir,
    key: SigningKey,
    vk: VerifyingKey,
    model: PathBuf,
    path: PathBuf,
    id: Identity,
}

/// Makes the model with `make_model` (`small_model` or `enc_model`) and
/// `seed`, and compiles it into a [`SymEncrypted`].
fn sym_encrypted(make_model: fn(&Path, u64) -> PathBuf, seed: u64) -> SymEncrypted {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let model = make_model(&dir.path().join("model"), seed);
    let path = dir.path().join("enc.tic");
    let (id, r) = sym_pair();
    compile(&model, &path, Some(&key), vec![r]);
    SymEncrypted {
        dir,
        vk: key.verifying_key(),
        key,
        model,
        path,
        id,
    }
}

/// Opens with these options and restores every file; the SHA-256 of each.
fn extract_tree(
    path: &Path,
    key: Option<&SigningKey>,
    ids: Vec<Identity>,
) -> Result<BTreeMap<String, [u8; 32]>, RuntimeError> {
    let keys: Vec<_> = key.iter().map(|k| k.verifying_key()).collect();
    let art = Artifact::open(path, &options(&keys, key.is_none(), ids))?;
    let out = tempdir().unwrap();
    let dest = out.path().join("restored");
    art.extract(&dest, false, &tic_runtime::NoProgress)?;
    Ok(sha256_tree(&dest))
}

fn round_trip(recipients: Vec<Recipient>, identities: Vec<Identity>) {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let model = enc_model(&dir.path().join("model"), 20);
    let want = sha256_tree(&model);
    assert_eq!(want.len(), 2);
    let path = dir.path().join("enc.tic");
    let n = recipients.len();
    let report = compile(&model, &path, Some(&key), recipients);
    assert_eq!(report.recipients, n);

    // The payload is not in the clear.
    let bytes = std::fs::read(&path).unwrap();
    let big = Tensor::random("big", "U8", &[150_000], 30).data;
    let needle = &big[big.len() - 64..];
    assert!(
        !bytes.windows(64).any(|w| w == needle),
        "plaintext found in the artifact"
    );

    let art = verify(&path, &key.verifying_key()).unwrap();
    assert!(art.header().is_encrypted());
    assert_eq!(art.recipients().unwrap().entries.len(), n);
    // Each identity alone decrypts everything, bit for bit.
    for id in identities {
        let label = id.public_label();
        let got = extract_tree(&path, Some(&key), vec![id]).unwrap();
        assert_eq!(got, want, "identity {label}");
    }
}

#[test]
fn round_trip_one_age_recipient() {
    let (id, r) = age_pair();
    round_trip(vec![r], vec![id]);
}

#[test]
fn round_trip_three_age_recipients() {
    let pairs = [age_pair(), age_pair(), age_pair()];
    round_trip(
        pairs.iter().map(|p| p.1.clone()).collect(),
        pairs.iter().map(|p| p.0.clone()).collect(),
    );
}

#[test]
fn round_trip_symmetric_key() {
    let (id, r) = sym_pair();
    round_trip(vec![r], vec![id]);
}

#[test]
fn wrong_identity_finds_no_matching_entry() {
    let dir = tempdir().unwrap();
    let model = small_model(&dir.path().join("model"), 21);
    let path = dir.path().join("enc.tic");
    let (_, r1) = age_pair();
    let (_, r2) = sym_pair();
    let labels = vec![r1.label(), r2.label()];
    compile(&model, &path, None, vec![r1, r2]);

    let (wrong_age, _) = age_pair();
    let (wrong_sym, _) = sym_pair();
    for ids in [
        vec![wrong_age.clone()],
        vec![wrong_sym.clone()],
        vec![wrong_age, wrong_sym],
    ] {
        let tried: Vec<String> = ids.iter().map(Identity::public_label).collect();
        let err = Artifact::open(&path, &options(&[], true, ids))
            .err()
            .unwrap();
        match &err {
            RuntimeError::Crypto {
                source:
                    CryptoError::NoMatchingIdentity {
                        count,
                        labels: l,
                        identity,
                    },
                ..
            } => {
                assert_eq!(*count, 2);
                assert_eq!(l, &labels);
                for t in &tried {
                    assert!(identity.contains(t.as_str()), "{identity} names {t}");
                }
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(err.kind(), ErrorKind::Verification);
        let msg = err.to_string();
        assert!(
            msg.contains("2 recipient(s)") && msg.contains(&labels[0]),
            "{msg}"
        );
        assert!(
            !msg.contains("AGE-SECRET-KEY"),
            "no secret in the message: {msg}"
        );
    }
}

#[test]
fn rewrap_removes_a_recipient_and_keeps_the_signature() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let model = enc_model(&dir.path().join("model"), 22);
    let want = sha256_tree(&model);
    let path = dir.path().join("enc.tic");
    let (keep_id, keep_r) = age_pair();
    let (gone_id, gone_r) = age_pair();
    compile(
        &model,
        &path,
        Some(&key),
        vec![keep_r.clone(), gone_r.clone()],
    );
    assert_eq!(
        extract_tree(&path, Some(&key), vec![gone_id.clone()]).unwrap(),
        want
    );

    // The recipient being removed can do the rewrap itself; so can the other.
    let out = dir.path().join("rewrapped.tic");
    let labels = rewrap(
        &path,
        std::slice::from_ref(&gone_id),
        &[],
        &[gone_r.label()],
        &out,
    )
    .unwrap();
    assert_eq!(labels, vec![keep_r.label()]);

    let err = Artifact::open(&out, &options(&[vk], false, vec![gone_id.clone()]))
        .err()
        .unwrap();
    assert_err!(
        err,
        RuntimeError::Crypto {
            source: CryptoError::NoMatchingIdentity { count: 1, .. },
            ..
        }
    );
    assert_eq!(
        extract_tree(&out, Some(&key), vec![keep_id.clone()]).unwrap(),
        want
    );
    verify(&out, &vk).expect("the signature still verifies after rewrap");

    // Only the recipients section changed.
    let (a, b) = (Parts::read(&path), Parts::read(&out));
    assert_eq!(
        (&a.header, &a.signature, &a.payload),
        (&b.header, &b.signature, &b.payload)
    );
    assert_ne!(a.recipients, b.recipients);

    // Adding a symmetric key: it decrypts too; the removed one still cannot.
    let (sym_id, sym_r) = sym_pair();
    let out2 = dir.path().join("rewrapped2.tic");
    let labels = rewrap(&out, &[keep_id], std::slice::from_ref(&sym_r), &[], &out2).unwrap();
    assert_eq!(labels, vec![keep_r.label(), sym_r.label()]);
    assert_eq!(extract_tree(&out2, Some(&key), vec![sym_id]).unwrap(), want);
    verify(&out2, &vk).unwrap();
    let err = Artifact::open(&out2, &options(&[vk], false, vec![gone_id.clone()]))
        .err()
        .unwrap();
    assert_err!(
        err,
        RuntimeError::Crypto {
            source: CryptoError::NoMatchingIdentity { count: 2, .. },
            ..
        }
    );

    // Someone who is not a recipient cannot rewrap (nor re-add themselves).
    let out3 = dir.path().join("rewrapped3.tic");
    let err = rewrap(&out, &[gone_id], &[gone_r], &[], &out3).unwrap_err();
    // (As reading fails: a verification failure naming the artifact.)
    assert_err!(
        err,
        tic_compiler::AmendError::Runtime(RuntimeError::Crypto {
            source: CryptoError::NoMatchingIdentity { .. },
            ..
        })
    );
    assert!(!out3.exists());
}

/// Reads the data of chunk `j` the way a user would: its tensor by name,
/// or, for a blob, by restoring the files.
fn read_chunk_owner(art: &Artifact, h: &Header, j: usize) -> Result<(), RuntimeError> {
    let t = &h.tensors[chunk_owners(h)[j]];
    if t.name.is_empty() {
        let out = tempdir().unwrap();
        let dest = out.path().join("x");
        let r = art
            .extract(&dest, false, &tic_runtime::NoProgress)
            .map(|_| ());
        assert!(
            r.is_ok() || !dest.exists(),
            "a failed restore leaves nothing"
        );
        r
    } else {
        art.read_tensor(&t.name).map(|_| ())
    }
}

fn tensor_matches(err_tensor: &str, h: &Header, j: usize) -> bool {
    let t = &h.tensors[chunk_owners(h)[j]];
    t.name.is_empty() || err_tensor.contains(&t.name)
}

#[test]
fn any_ciphertext_byte_changed_is_caught_by_the_signed_digest() {
    // `_dir` keeps the temporary directory until the end of the test.
    let SymEncrypted {
        dir: _dir,
        vk,
        path,
        id,
        ..
    } = sym_encrypted(small_model, 23);
    let p = Parts::read(&path);
    let h = p.parsed_header();
    let art = Artifact::open(&path, &options(&[vk], false, vec![id])).unwrap();
    for j in 0..h.chunks.len() {
        read_chunk_owner(&art, &h, j).unwrap();
    }
    let mut failures = Vec::new();
    for j in 0..h.chunks.len() {
        for off in p.chunk_range(&h, j) {
            xor_byte(&path, off as u64, 0x01);
            match read_chunk_owner(&art, &h, j) {
                Err(RuntimeError::ChunkDigest { chunk, tensor, .. })
                    if chunk == j as u64 && tensor_matches(&tensor, &h, j) => {}
                other => failures.push(format!("byte {off} of chunk {j}: {other:?}")),
            }
            // And without any identity, `verify` sees it too.
            match verify(&path, &vk) {
                Err(RuntimeError::ChunkDigest { chunk, .. }) if chunk == j as u64 => {}
                other => failures.push(format!("verify, byte {off}: {:?}", other.err())),
            }
            xor_byte(&path, off as u64, 0x01);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn any_ciphertext_byte_changed_is_caught_by_the_aead() {
    // The attacker here can also make the chunk digests match: a signer the
    // reader trusts re-signs, or the reader allows unsigned artifacts.
    let SymEncrypted {
        dir,
        key,
        vk,
        model,
        path,
        id,
    } = sym_encrypted(small_model, 24);
    let good = Parts::read(&path);
    let h = good.parsed_header();
    let bad = dir.path().join("bad.tic");
    let mut failures = Vec::new();
    let mut n = 0;
    for j in 0..h.chunks.len() {
        let range = good.chunk_in_payload(&h, j);
        for off in range.clone() {
            let mut p = good.clone();
            p.payload[off] ^= 0x01;
            let mut h2 = h.clone();
            h2.chunks[j].sha256 = tic_format::sha256(&p.payload[range.clone()]);
            p.set_header(&h2);
            p.sign(&key);
            p.write(&bad);
            let art = Artifact::open(&bad, &options(&[vk], false, vec![id.clone()])).unwrap();
            art.verify_chunks(&tic_runtime::NoProgress)
                .expect("the digests were fixed");
            match read_chunk_owner(&art, &h, j) {
                Err(RuntimeError::Decrypt { chunk, tensor, .. })
                    if chunk == j as u64 && tensor_matches(&tensor, &h, j) => {}
                other => failures.push(format!("byte {off} of chunk {j}: {other:?}")),
            }
            n += 1;
        }
    }
    assert_eq!(n, good.payload.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Unsigned, read with --allow-unsigned, digest patched in the header.
    let unsigned = dir.path().join("unsigned.tic");
    let (id2, r2) = age_pair();
    compile(&model, &unsigned, None, vec![r2]);
    let mut p = Parts::read(&unsigned);
    let mut h2 = p.parsed_header();
    let j = first_chunk_of(&h2, "embed.weight");
    let range = p.chunk_in_payload(&h2, j);
    p.payload[range.start + 3] ^= 0x80;
    h2.chunks[j].sha256 = tic_format::sha256(&p.payload[range]);
    p.set_header(&h2);
    p.write(&bad);
    let art = Artifact::open(&bad, &options(&[], true, vec![id2])).unwrap();
    let err = art.read_tensor("embed.weight").unwrap_err();
    assert_err!(err, RuntimeError::Decrypt { chunk, tensor, .. } if *chunk == j as u64 && tensor.contains("embed.weight"));
    assert_eq!(
        art.read_tensor("norm.bias").unwrap(),
        small_tensors(24)[1].data
    );
}

#[test]
fn swapped_chunks_are_rejected() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    // Two tensors of the same size, and a tensor of several equal chunks.
    let tensors = vec![
        Tensor::random("a", "F32", &[4, 4], 40),
        Tensor::random("b", "F32", &[4, 4], 41),
        Tensor::random("big", "U8", &[150_000], 42),
    ];
    let model = model_with(&dir.path().join("model"), &tensors);
    let path = dir.path().join("enc.tic");
    let (id, r) = age_pair();
    compile(&model, &path, Some(&key), vec![r]);
    let good = Parts::read(&path);
    let h = good.parsed_header();
    let big0 = first_chunk_of(&h, "big");
    let bad = dir.path().join("bad.tic");

    for (x, y) in [
        (first_chunk_of(&h, "a"), first_chunk_of(&h, "b")),
        (big0, big0 + 1),
    ] {
        let (rx, ry) = (good.chunk_in_payload(&h, x), good.chunk_in_payload(&h, y));
        assert_eq!(
            rx.len(),
            ry.len(),
            "chunks {x} and {y} must have one length to swap"
        );
        let mut p = good.clone();
        let cx = good.payload[rx.clone()].to_vec();
        p.payload[rx.clone()].copy_from_slice(&good.payload[ry.clone()]);
        p.payload[ry.clone()].copy_from_slice(&cx);

        // Signed header untouched: the digests catch it, no key needed.
        // (Chunks are checked in parallel: either one may be reported.)
        let either = |c: u64| c == x as u64 || c == y as u64;
        p.write(&bad);
        let err = verify(&bad, &vk).err().unwrap();
        assert_err!(err, RuntimeError::ChunkDigest { chunk, .. } if either(*chunk));

        // Digests swapped too and re-signed by a trusted key: each chunk now
        // matches its table entry, but its nonce holds its old index.
        let mut h2 = h.clone();
        h2.chunks.swap(x, y);
        h2.chunks[x].offset = h.chunks[x].offset;
        h2.chunks[y].offset = h.chunks[y].offset;
        p.set_header(&h2);
        p.sign(&key);
        p.write(&bad);
        let art = Artifact::open(&bad, &options(&[vk], false, vec![id.clone()])).unwrap();
        art.verify_chunks(&tic_runtime::NoProgress)
            .expect("digests match the re-signed table");
        let owners = chunk_owners(&h);
        for c in [x, y] {
            let name = &h.tensors[owners[c]].name;
            let err = art.read_tensor(name).unwrap_err();
            // The failing chunk is one of the swapped ones of this tensor.
            assert_err!(err, RuntimeError::Decrypt { chunk, tensor, .. } if either(*chunk) && owners[*chunk as usize] == owners[c] && tensor.contains(name.as_str()), "{name}");
        }
    }
}

#[test]
fn truncated_last_chunk_is_rejected() {
    let SymEncrypted {
        dir,
        key,
        vk,
        path,
        id,
        ..
    } = sym_encrypted(enc_model, 25);
    let good = Parts::read(&path);
    let h = good.parsed_header();
    let last = h.chunks.len() - 1;
    let last_name = h.tensors[chunk_owners(&h)[last]].name.clone();
    assert_eq!(last_name, "big");
    let stored = h.chunks[last].stored_len as usize;
    let bad = dir.path().join("bad.tic");

    for cut in [1usize, 15, 16, stored - 16] {
        // The file alone cut short.
        let b = good.join();
        std::fs::write(&bad, &b[..b.len() - cut]).unwrap();
        let err = verify(&bad, &vk).err().unwrap();
        assert_err!(
            err,
            RuntimeError::Format {
                source: FormatError::LengthMismatch { .. },
                ..
            }
        );

        // The preamble fixed up: the signed header disagrees.
        let mut p = good.clone();
        p.payload.truncate(p.payload.len() - cut);
        p.write(&bad);
        let err = verify(&bad, &vk).err().unwrap();
        assert_err!(
            err,
            RuntimeError::Format {
                source: FormatError::Inconsistent(_),
                ..
            }
        );

        // The header fixed up and re-signed by a trusted key: the tag fails.
        let mut h2 = h.clone();
        h2.chunks[last].stored_len -= cut as u64;
        h2.payload_len -= cut as u64;
        h2.chunks[last].sha256 =
            tic_format::sha256(&p.payload[good.chunk_in_payload(&h, last).start..]);
        p.set_header(&h2);
        p.sign(&key);
        p.write(&bad);
        let art = Artifact::open(&bad, &options(&[vk], false, vec![id.clone()])).unwrap();
        art.verify_chunks(&tic_runtime::NoProgress).unwrap();
        let err = art.read_tensor("big").unwrap_err();
        assert_err!(err, RuntimeError::Decrypt { chunk, .. } if *chunk == last as u64, "cut {cut}");
    }
}

#[test]
fn wrapped_keys_for_another_file_key_are_rejected() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let model = small_model(&dir.path().join("model"), 26);
    let (age_id, age_r) = age_pair();
    let (sym_id, sym_r) = sym_pair();
    let x = dir.path().join("x.tic");
    let y = dir.path().join("y.tic");
    compile(&model, &x, Some(&key), vec![age_r.clone(), sym_r.clone()]);
    compile(&model, &y, Some(&key), vec![age_r.clone(), sym_r.clone()]);
    let (px, py) = (Parts::read(&x), Parts::read(&y));
    assert_ne!(px.recipients, py.recipients);
    let bad = dir.path().join("bad.tic");

    // Y's recipients section (same recipients, Y's file key) in X.
    let mut p = px.clone();
    p.recipients = py.recipients.clone();
    p.write(&bad);
    // The section is unsigned: integrity checks pass without a key...
    verify(&bad, &vk).unwrap();
    // ...but the unwrapped key fails the signed commitment.
    for ids in [
        vec![age_id.clone()],
        vec![sym_id.clone()],
        vec![age_id.clone(), sym_id.clone()],
    ] {
        let err = Artifact::open(&bad, &options(&[vk], false, ids))
            .err()
            .unwrap();
        assert_err!(
            err,
            RuntimeError::Crypto {
                source: CryptoError::CommitmentMismatch,
                ..
            }
        );
        assert!(err.to_string().contains("replaced or corrupted"), "{err}");
    }

    // A section made from scratch for a key of the attacker's choosing.
    let fk = crypto::random_file_key().unwrap();
    let forged = RecipientsSection::wrap(&fk, &[age_r.clone(), sym_r.clone()]).unwrap();
    let mut p = px.clone();
    p.recipients = forged.to_bytes();
    p.write(&bad);
    let err = Artifact::open(&bad, &options(&[vk], false, vec![age_id.clone()]))
        .err()
        .unwrap();
    assert_err!(
        err,
        RuntimeError::Crypto {
            source: CryptoError::CommitmentMismatch,
            ..
        }
    );

    // One entry replaced, one intact: the reader goes on to the good one.
    let sx = RecipientsSection::parse(&px.recipients).unwrap();
    let mixed = RecipientsSection {
        entries: vec![forged.entries[0].clone(), sx.entries[1].clone()],
    };
    let mut p = px.clone();
    p.recipients = mixed.to_bytes();
    p.write(&bad);
    let art = Artifact::open(&bad, &options(&[vk], false, vec![age_id, sym_id.clone()])).unwrap();
    assert_eq!(
        art.read_tensor("norm.bias").unwrap(),
        small_tensors(26)[1].data
    );

    // A corrupted symmetric entry for the very key given is reported so.
    let mut sx2 = sx.clone();
    let last = sx2.entries[1].body.len() - 1;
    sx2.entries[1].body[last] ^= 1;
    let mut p = px.clone();
    p.recipients = sx2.to_bytes();
    p.write(&bad);
    let err = Artifact::open(&bad, &options(&[vk], false, vec![sym_id]))
        .err()
        .unwrap();
    assert_err!(err, RuntimeError::Crypto { source: CryptoError::RecipientEntryCorrupt { label, .. }, .. } if *label == sym_r.label());

    // Recipients present on an artifact whose signed header says it is not
    // encrypted, or missing from one that is.
    let plain = dir.path().join("plain.tic");
    compile(&model, &plain, Some(&key), Vec::new());
    let mut p = Parts::read(&plain);
    assert_eq!(p.parsed_header().encryption, Encryption::None);
    p.recipients = px.recipients.clone();
    p.write(&bad);
    let err = verify(&bad, &vk).err().unwrap();
    assert_err!(err, RuntimeError::RecipientsMismatch { .. });
    assert!(
        err.to_string()
            .contains("the payload is not encrypted, yet the preamble gives a recipients section"),
        "{err}"
    );
    let mut p = px.clone();
    p.recipients.clear();
    p.write(&bad);
    let err = verify(&bad, &vk).err().unwrap();
    assert_err!(err, RuntimeError::RecipientsMismatch { .. });
    assert!(
        err.to_string()
            .contains("the payload is encrypted, yet the preamble gives no recipients section"),
        "{err}"
    );
}

#[test]
fn verify_needs_no_identity_and_reports_recipients() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let model = small_model(&dir.path().join("model"), 27);
    let path = dir.path().join("enc.tic");
    let rs = vec![age_pair().1, age_pair().1, sym_pair().1];
    let labels: Vec<String> = rs.iter().map(Recipient::label).collect();
    compile(&model, &path, Some(&key), rs);

    let art = verify(&path, &vk).expect("verifies with no identity");
    let r = art.recipients().expect("encrypted");
    assert_eq!(r.entries.len(), 3);
    assert_eq!(r.labels(), labels);
    assert!(!art.can_decrypt());
    let err = art.read_tensor("norm.bias").unwrap_err();
    assert_err!(err, RuntimeError::NeedIdentity { recipients: 3, .. });
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert!(err.to_string().contains("--identity"), "{err}");
}

#[test]
fn external_signature_on_an_encrypted_artifact_keeps_its_recipients() {
    use ed25519_dalek::Signer;
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    let model = enc_model(&dir.path().join("model"), 28);
    let want = sha256_tree(&model);
    let unsigned = dir.path().join("unsigned.tic");
    let (id, r) = age_pair();
    compile(&model, &unsigned, None, vec![r]);
    let err = verify(&unsigned, &vk).err().unwrap();
    assert_err!(err, RuntimeError::Unsigned { .. });

    let m = tic_compiler::signing_message(&unsigned).unwrap();
    let signed = dir.path().join("signed.tic");
    attach_signature(&unsigned, &key.sign(&m).to_bytes(), &vk, &signed).unwrap();
    verify(&signed, &vk).unwrap();
    let (a, b) = (Parts::read(&unsigned), Parts::read(&signed));
    assert_eq!(
        (&a.header, &a.recipients, &a.payload),
        (&b.header, &b.recipients, &b.payload)
    );
    assert!(a.signature.is_empty() && b.signature.len() == 98);
    assert_eq!(extract_tree(&signed, Some(&key), vec![id]).unwrap(), want);
}
