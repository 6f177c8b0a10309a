//! The spec's artifact test vectors (format-spec/test-vectors/artifacts):
//! checked-in artifacts that this suite must verify and decode to the
//! checked-in inputs. `cargo test -p tic-tests --test spec_vectors --
//! --ignored regenerate` rewrites them (only when the format changes).

mod support;

use std::path::PathBuf;

use serde_json::{json, Value};
use support::*;
use tic_runtime::{Artifact, NoProgress, OpenOptions, SignatureStatus, Trust};

fn vectors() -> PathBuf {
    repo_root().join("format-spec/test-vectors/artifacts")
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(vectors().join("expected.json")).unwrap()).unwrap()
}

fn open(name: &str, identity: Option<&str>) -> Artifact {
    let v = vectors();
    let key = tic_runtime::read_public_key(&v.join("signing.pub")).unwrap();
    let identities = match identity {
        Some(f) => tic_runtime::read_identities(&v.join(f)).unwrap(),
        None => vec![],
    };
    Artifact::open(
        v.join(name),
        &OpenOptions {
            trust: Trust {
                keys: vec![key],
                allow_unsigned: false,
            },
            identities,
        },
    )
    .unwrap()
}

fn check_against_expected(art: &Artifact, exp: &Value) {
    let h = art.header();
    match art.signature() {
        SignatureStatus::Verified { fingerprint } => {
            assert_eq!(fingerprint, exp["signer"].as_str().unwrap())
        }
        other => panic!("not verified: {other:?}"),
    }
    let files: Vec<Value> = h
        .files
        .iter()
        .map(|f| json!({"path": f.path, "size": f.size, "sha256": tic_format::hex(&f.sha256)}))
        .collect();
    assert_eq!(Value::Array(files), exp["files"]);
    let tensors: Vec<Value> = h
        .tensors
        .iter()
        .filter(|t| !t.name.is_empty())
        .map(|t| json!({"name": t.name, "dtype": t.dtype.name(), "shape": t.shape, "codec": t.codec.name(), "sha256": tic_format::hex(&t.sha256)}))
        .collect();
    assert_eq!(Value::Array(tensors), exp["tensors"]);
    let p = art.preamble();
    let header = std::fs::read(art.path()).unwrap()[48..48 + p.header_len as usize].to_vec();
    let m = tic_format::sign::signed_message(p.major, p.minor, &header);
    assert_eq!(tic_format::hex(&m), exp["signed_message"].as_str().unwrap());
    art.verify_chunks(&NoProgress).unwrap();
}

/// Restores `art` and asserts that it gives back `model` (a folder beside
/// the vectors) byte for byte; `ctx` says which run failed.
fn assert_restores(art: &Artifact, model: &str, ctx: &str) {
    let out = tempfile::tempdir().unwrap();
    art.extract(&out.path().join("o"), false, &NoProgress)
        .unwrap();
    assert_eq!(
        digests(&vectors().join(model)),
        digests(&out.path().join("o")),
        "{ctx}"
    );
}

#[test]
fn signed_vector_verifies_and_restores_the_input() {
    let exp = expected();
    let art = open("small-signed.tic", None);
    check_against_expected(&art, &exp["small-signed.tic"]);
    assert_restores(&art, "small-model", "small-signed.tic");
}

#[test]
fn encrypted_vector_verifies_without_a_key_and_decrypts_with_each_identity() {
    let exp = expected();
    let art = open("small-encrypted.tic", None);
    check_against_expected(&art, &exp["small-encrypted.tic"]);
    assert_eq!(
        art.recipients().unwrap().entries.len() as u64,
        exp["small-encrypted.tic"]["recipients"].as_u64().unwrap()
    );
    assert!(!art.can_decrypt());
    for id in ["recipient.agekey", "recipient.symkey"] {
        let art = open("small-encrypted.tic", Some(id));
        assert_restores(&art, "small-model", &format!("with {id}"));
    }
}

/// The packed sub-byte and FNUZ dtypes (SPEC.md §4.6 codes 17-21): the
/// artifact verifies, lists them with their shapes, and restores
/// `packed-model/` byte for byte, a chunk that ends inside an F6 element
/// included.
#[test]
fn packed_dtypes_vector_verifies_and_restores_the_input() {
    let exp = expected();
    let art = open("packed-signed.tic", None);
    check_against_expected(&art, &exp["packed-signed.tic"]);
    let h = art.header();
    let dtypes: Vec<&str> = h.tensors.iter().map(|t| t.dtype.name()).collect();
    for d in ["F4", "F6_E2M3", "F6_E3M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ"] {
        assert!(dtypes.contains(&d), "{d} missing from {dtypes:?}");
    }
    let f6 = h
        .tensors
        .iter()
        .find(|t| t.name == "f6_e2m3.two_chunks")
        .unwrap();
    let first = &h.chunks[f6.first_chunk as usize];
    assert!(f6.chunk_count == 2 && !first.orig_len.is_multiple_of(3));
    assert_restores(&art, "packed-model", "packed-signed.tic");
}

/// Writes the vectors that are missing: the models, keys and artifacts
/// (delete one to have it made again), then `expected.json` from every
/// artifact there. Artifacts already there are kept: encrypting again
/// would change their bytes.
#[test]
#[ignore]
fn regenerate() {
    use tic_compiler::{compile, CompileOptions};
    let v = vectors();
    let packed = v.join("packed-model");
    if !packed.exists() {
        std::fs::create_dir_all(&packed).unwrap();
        let mut rng = Rng(11);
        // Mostly small codes: the planes codec takes them.
        let mut skewed = |n: usize| -> Vec<u8> {
            (0..n)
                .map(|i| match i % 7 {
                    0 => rng.next() as u8,
                    _ => (rng.next() % 4) as u8 * 0x11,
                })
                .collect()
        };
        write_safetensors(
            &packed.join("model.safetensors"),
            &[
                ("f4.weight", "F4", vec![160, 500], skewed(40_000)),
                // 65538 bytes over two one-tile chunks: the first, 65536
                // bytes, ends a third of the way into an element.
                (
                    "f6_e2m3.two_chunks",
                    "F6_E2M3",
                    vec![4, 21_846],
                    skewed(65_538),
                ),
                ("f6_e3m2.small", "F6_E3M2", vec![8], skewed(6)),
                (
                    "f8_e4m3fnuz.all",
                    "F8_E4M3FNUZ",
                    vec![16, 16],
                    (0..=255u8).collect(),
                ),
                (
                    "f8_e5m2fnuz.weight",
                    "F8_E5M2FNUZ",
                    vec![16, 64],
                    skewed(1024),
                ),
            ],
        );
    }
    let model = v.join("small-model");
    if !model.exists() {
        std::fs::create_dir_all(&model).unwrap();
        let mut rng = Rng(7);
        let w: Vec<u8> = (0..256 * 320)
            .flat_map(|_| {
                half::bf16::from_f64(rng.normal(0.03))
                    .to_bits()
                    .to_le_bytes()
            })
            .collect();
        let b: Vec<u8> = (0..8)
            .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
            .collect();
        let pos: Vec<u8> = (0..16i64).flat_map(|i| i.to_le_bytes()).collect();
        write_safetensors(
            &model.join("model.safetensors"),
            &[
                ("layer.weight", "BF16", vec![256, 320], w),
                ("layer.bias", "F32", vec![8], b),
                ("position_ids", "I64", vec![1, 16], pos),
            ],
        );
        std::fs::write(
            model.join("config.json"),
            b"{\"model_type\": \"tic-test-vector\"}\n",
        )
        .unwrap();
    }
    let key_path = v.join("signing.key");
    if !key_path.exists() {
        let k = tic_format::sign::generate_key().unwrap();
        std::fs::write(&key_path, tic_format::sign::private_key_pem(&k).unwrap()).unwrap();
        std::fs::write(
            v.join("signing.pub"),
            tic_format::sign::public_key_pem(&k.verifying_key()).unwrap(),
        )
        .unwrap();
    }
    let key = tic_format::sign::parse_private_key_pem(&std::fs::read_to_string(&key_path).unwrap())
        .unwrap();
    let age_path = v.join("recipient.agekey");
    if !age_path.exists() {
        use age::secrecy::ExposeSecret;
        let id = age::x25519::Identity::generate();
        std::fs::write(
            &age_path,
            format!(
                "# public key: {}\n{}\n",
                id.to_public(),
                id.to_string().expose_secret()
            ),
        )
        .unwrap();
    }
    let sym_path = v.join("recipient.symkey");
    if !sym_path.exists() {
        let mut k = [0u8; 32];
        let mut rng = Rng(99);
        k.iter_mut().for_each(|b| *b = rng.next() as u8);
        std::fs::write(&sym_path, tic_format::hex(&k) + "\n").unwrap();
    }
    let age_text = std::fs::read_to_string(&age_path).unwrap();
    let recipient = age_text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap();
    let sym =
        tic_format::crypto::read_symmetric_key_file(&std::fs::read(&sym_path).unwrap()).unwrap();
    let mut exp = serde_json::Map::new();
    for (name, input, recipients) in [
        ("small-signed.tic", &model, vec![]),
        (
            "small-encrypted.tic",
            &model,
            vec![
                tic_format::crypto::parse_recipient(recipient).unwrap(),
                tic_format::crypto::Recipient::Symmetric(sym),
            ],
        ),
        ("packed-signed.tic", &packed, vec![]),
    ] {
        if !v.join(name).exists() {
            let opts = CompileOptions {
                signing_key: Some(key.clone()),
                recipients,
                chunk_bytes: 1,
                ..CompileOptions::default()
            };
            compile(input, &v.join(name), &opts, &NoProgress).unwrap();
        }
        let art = open(name, None);
        let h = art.header();
        let p = art.preamble();
        let header = std::fs::read(art.path()).unwrap()[48..48 + p.header_len as usize].to_vec();
        let SignatureStatus::Verified { fingerprint } = art.signature() else {
            panic!()
        };
        exp.insert(
            name.into(),
            json!({
                "signer": fingerprint,
                "signed_message": tic_format::hex(&tic_format::sign::signed_message(p.major, p.minor, &header)),
                "recipients": art.recipients().map_or(0, |r| r.entries.len()),
                "files": h.files.iter().map(|f| json!({"path": f.path, "size": f.size, "sha256": tic_format::hex(&f.sha256)})).collect::<Vec<_>>(),
                "tensors": h.tensors.iter().filter(|t| !t.name.is_empty()).map(|t| json!({"name": t.name, "dtype": t.dtype.name(), "shape": t.shape, "codec": t.codec.name(), "sha256": tic_format::hex(&t.sha256)})).collect::<Vec<_>>(),
            }),
        );
    }
    std::fs::write(
        v.join("expected.json"),
        serde_json::to_string_pretty(&Value::Object(exp)).unwrap() + "\n",
    )
    .unwrap();
}
