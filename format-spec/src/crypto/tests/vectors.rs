//! The spec's test vector, `test-vectors/encryption/tic-v1-encryption.json`.
//!
//! `check_encryption_vector` recomputes every deterministic value and checks
//! that the (randomized) recipients section unwraps to the file key.
//! `regenerate_encryption_vector` (ignored; run it by name with `--ignored`)
//! rewrites the file with a fresh age identity and fresh wrapping randomness;
//! the deterministic values come out the same.

use std::str::FromStr;

use age::secrecy::ExposeSecret;
use serde_json::{json, Value};

use super::{hex, test_vectors_dir, unhex};
use crate::crypto::*;

const FILE: &str = "tic-v1-encryption.json";

fn path() -> std::path::PathBuf {
    test_vectors_dir().join("encryption").join(FILE)
}

/// The fixed inputs.
fn file_key() -> FileKey {
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = i as u8;
    }
    FileKey::from_bytes(k)
}

fn salt() -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = 0xa0 + i as u8;
    }
    s
}

fn chunk_plaintexts() -> [&'static [u8]; 2] {
    [
        b"tic v1 test vector, chunk 0 of 2. This chunk is 79 bytes long: over one block. ",
        b"Chunk 1 is the last chunk.\n",
    ]
}

fn symmetric_raw() -> [u8; 32] {
    [0x5a; 32]
}

fn arr32(v: &[u8]) -> [u8; 32] {
    v.try_into().unwrap()
}

#[test]
fn check_encryption_vector() {
    let text = std::fs::read_to_string(path()).expect("read test vector");
    let v: Value = serde_json::from_str(&text).unwrap();
    let s = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("missing {k}"));

    // Key schedule.
    let fk = FileKey::from_bytes(arr32(&unhex(s("file_key"))));
    assert_eq!(fk.expose_secret(), file_key().expose_secret());
    let salt = arr32(&unhex(s("salt")));
    assert_eq!(salt, self::salt());
    let (pk, commitment) = derive(&fk, &salt);
    assert_eq!(hex(pk.expose_secret()), s("payload_key"));
    assert_eq!(hex(&commitment), s("commitment"));
    let commitment_in_file = arr32(&unhex(s("commitment")));
    check_commitment(&fk, &salt, &commitment_in_file).unwrap();

    // Chunks.
    let chunks = v["chunks"].as_array().unwrap();
    assert_eq!(chunks.len(), 2);
    let n = chunks.len() as u64;
    for (i, c) in chunks.iter().enumerate() {
        let index = c["index"].as_u64().unwrap();
        let last = c["last"].as_bool().unwrap();
        assert_eq!(index, i as u64);
        assert_eq!(last, index == n - 1);
        let pt = unhex(c["plaintext"].as_str().unwrap());
        assert_eq!(pt, chunk_plaintexts()[i]);
        assert_eq!(hex(&chunk_nonce(index, last)), c["nonce"].as_str().unwrap());
        let stored = unhex(c["stored"].as_str().unwrap());
        assert_eq!(hex(&seal_chunk(&pk, index, last, &pt)), hex(&stored));
        assert_eq!(open_chunk(&pk, index, last, &stored).unwrap(), pt);
        verify_chunk_tag(&pk, index, last, &stored).unwrap();
        let (k, nonce, counter) = keystream_params(&pk, index, last);
        assert_eq!(hex(&k), s("payload_key"));
        assert_eq!(hex(&nonce), c["nonce"].as_str().unwrap());
        assert_eq!(
            u64::from(counter),
            c["initial_block_counter"].as_u64().unwrap()
        );
    }

    // Symmetric recipient: deterministic parts.
    let sym = SymmetricKey::from_bytes(&unhex(s("symmetric_key"))).unwrap();
    assert_eq!(unhex(s("symmetric_key")), symmetric_raw());
    assert_eq!(sym.key_id_label(), s("symmetric_label"));
    let mut kek = [0u8; 32];
    hkdf_sha256(b"", &symmetric_raw(), SYMMETRIC_WRAP_INFO, &mut kek).unwrap();
    assert_eq!(hex(&kek), s("symmetric_kek"));

    // Recipients section: parses, has the expected entries, and unwraps.
    let section = RecipientsSection::parse(&unhex(s("recipients_section"))).unwrap();
    let age_id = age::x25519::Identity::from_str(s("age_identity")).unwrap();
    assert_eq!(age_id.to_public().to_string(), s("age_recipient"));
    assert_eq!(
        section.labels(),
        vec![
            s("age_recipient").to_owned(),
            s("symmetric_label").to_owned()
        ]
    );
    let sym_entry = &section.entries[1];
    assert_eq!(sym_entry.kind, KIND_SYMMETRIC);
    let nonce: [u8; 12] = sym_entry.body[..12].try_into().unwrap();
    assert_eq!(
        hex(&aead_seal(
            &kek,
            &nonce,
            SYMMETRIC_WRAP_AAD,
            fk.expose_secret()
        )),
        hex(&sym_entry.body[12..])
    );
    for id in [Identity::Age(age_id), Identity::Symmetric(sym)] {
        let got = section.unwrap(std::slice::from_ref(&id)).unwrap();
        assert_eq!(got.expose_secret(), fk.expose_secret());
        let (_, p) = section
            .unwrap_checked(std::slice::from_ref(&id), &salt, &commitment_in_file)
            .unwrap();
        assert_eq!(p.expose_secret(), pk.expose_secret());
    }
}

#[test]
#[ignore = "rewrites test-vectors/encryption/tic-v1-encryption.json"]
fn regenerate_encryption_vector() {
    let fk = file_key();
    let salt = salt();
    let (pk, commitment) = derive(&fk, &salt);
    let n = chunk_plaintexts().len() as u64;
    let chunks: Vec<Value> = chunk_plaintexts()
        .iter()
        .enumerate()
        .map(|(i, pt)| {
            let index = i as u64;
            let last = index == n - 1;
            let (_, nonce, counter) = keystream_params(&pk, index, last);
            json!({
                "index": index,
                "last": last,
                "nonce": hex(&nonce),
                "initial_block_counter": counter,
                "plaintext": hex(pt),
                "stored": hex(&seal_chunk(&pk, index, last, pt)),
            })
        })
        .collect();
    let id = age::x25519::Identity::generate();
    let sym = SymmetricKey::from_bytes(&symmetric_raw()).unwrap();
    let mut kek = [0u8; 32];
    hkdf_sha256(b"", &symmetric_raw(), SYMMETRIC_WRAP_INFO, &mut kek).unwrap();
    let section = RecipientsSection::wrap(
        &fk,
        &[
            Recipient::Age(id.to_public()),
            Recipient::Symmetric(sym.clone()),
        ],
    )
    .unwrap();
    let v = json!({
        "description": "tic v1 encryption test vector (format-spec/ENCRYPTION.md). All byte \
            strings are lowercase hex. Deterministic: payload_key, commitment, chunk nonces and \
            stored chunks, symmetric_label, symmetric_kek. Randomized: recipients_section (age \
            ephemeral keys and nonces, the symmetric wrap nonce); check that it unwraps to \
            file_key. These keys are public test keys: never use them for anything else.",
        "file_key": hex(fk.expose_secret()),
        "salt": hex(&salt),
        "payload_key": hex(pk.expose_secret()),
        "commitment": hex(&commitment),
        "chunk_count": n,
        "chunks": chunks,
        "age_identity": id.to_string().expose_secret(),
        "age_recipient": id.to_public().to_string(),
        "symmetric_key": hex(&symmetric_raw()),
        "symmetric_label": sym.key_id_label(),
        "symmetric_kek": hex(&kek),
        "recipients_section": hex(&section.to_bytes()),
    });
    let mut text = serde_json::to_string_pretty(&v).unwrap();
    text.push('\n');
    std::fs::create_dir_all(path().parent().unwrap()).unwrap();
    std::fs::write(path(), text).unwrap();
}
