//! Every vector of the checked-in Wycheproof files, through the code tic uses.

use serde_json::Value;

use super::{hex, test_vectors_dir, unhex};
use crate::crypto::*;

fn load(name: &str) -> Value {
    let path = test_vectors_dir().join("wycheproof").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// (group, test) pairs, checking the declared test count.
fn tests(v: &Value) -> Vec<(&Value, &Value)> {
    let out: Vec<_> = v["testGroups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["tests"].as_array().unwrap().iter().map(move |t| (g, t)))
        .collect();
    assert_eq!(out.len() as u64, v["numberOfTests"].as_u64().unwrap());
    out
}

fn field(t: &Value, k: &str) -> Vec<u8> {
    unhex(t[k].as_str().unwrap_or_else(|| panic!("missing {k}")))
}

fn id(t: &Value) -> u64 {
    t["tcId"].as_u64().unwrap()
}

#[test]
fn chacha20_poly1305() {
    let v = load("chacha20_poly1305_test.json");
    assert_eq!(v["algorithm"], "CHACHA20-POLY1305");
    let (mut ran, mut skipped, mut valid, mut invalid) = (0, 0, 0, 0);
    for (_, t) in tests(&v) {
        let (key, iv, aad, msg, ct, tag) = (
            field(t, "key"),
            field(t, "iv"),
            field(t, "aad"),
            field(t, "msg"),
            field(t, "ct"),
            field(t, "tag"),
        );
        let Ok(nonce) = <[u8; 12]>::try_from(&iv[..]) else {
            // Not expressible through a 12-byte nonce API; all such vectors are invalid.
            assert_eq!(t["result"], "invalid", "tc {}", id(t));
            skipped += 1;
            continue;
        };
        let key: [u8; 32] = key.try_into().unwrap();
        let mut ct_tag = ct.clone();
        ct_tag.extend_from_slice(&tag);
        let seal = aead_seal(&key, &nonce, &aad, &msg);
        let open = aead_open(&key, &nonce, &aad, &ct_tag);
        let verify = aead_verify_tag(&key, &nonce, &aad, &ct_tag);
        match t["result"].as_str().unwrap() {
            "valid" => {
                valid += 1;
                assert_eq!(hex(&seal), hex(&ct_tag), "seal tc {}", id(t));
                assert_eq!(open.unwrap(), msg, "open tc {}", id(t));
                verify.unwrap_or_else(|e| panic!("verify tc {}: {e}", id(t)));
                let mut xored = ct.clone();
                aead_apply_keystream(&key, &nonce, &mut xored);
                assert_eq!(xored, msg, "keystream tc {}", id(t));
                let mut out = vec![0; ct.len()];
                aead_open_into(&key, &nonce, &aad, &ct_tag, &mut out).unwrap();
                assert_eq!(out, msg);
            }
            "invalid" => {
                invalid += 1;
                assert!(open.is_err(), "open accepted invalid tc {}", id(t));
                assert!(verify.is_err(), "verify accepted invalid tc {}", id(t));
                assert_ne!(seal, ct_tag, "seal produced invalid tc {}", id(t));
            }
            r => panic!("unexpected result {r} in tc {}", id(t)),
        }
        ran += 1;
    }
    assert_eq!((ran, skipped), (316, 9));
    assert_eq!((valid, invalid), (256, 60));
}

#[test]
fn hkdf_sha256_vectors() {
    let v = load("hkdf_sha256_test.json");
    assert_eq!(v["algorithm"], "HKDF-SHA-256");
    let (mut valid, mut invalid) = (0, 0);
    for (_, t) in tests(&v) {
        let size = t["size"].as_u64().unwrap() as usize;
        let mut out = vec![0u8; size];
        let r = hkdf_sha256(
            &field(t, "salt"),
            &field(t, "ikm"),
            &field(t, "info"),
            &mut out,
        );
        match t["result"].as_str().unwrap() {
            "valid" => {
                valid += 1;
                r.unwrap_or_else(|e| panic!("tc {}: {e}", id(t)));
                assert_eq!(hex(&out), t["okm"].as_str().unwrap(), "tc {}", id(t));
            }
            "invalid" => {
                invalid += 1;
                assert!(
                    matches!(r, Err(CryptoError::HkdfOutputTooLong { .. })),
                    "tc {} ({:?}) should fail",
                    id(t),
                    t["flags"]
                );
            }
            other => panic!("unexpected result {other} in tc {}", id(t)),
        }
    }
    assert_eq!((valid, invalid), (83, 3));
}

#[test]
fn x25519() {
    use x25519_dalek::{PublicKey, StaticSecret};
    let v = load("x25519_test.json");
    assert_eq!(v["algorithm"], "XDH");
    let (mut valid, mut acceptable, mut zero) = (0, 0, 0);
    for (g, t) in tests(&v) {
        assert_eq!(g["curve"], "curve25519");
        let private: [u8; 32] = field(t, "private").try_into().unwrap();
        let public: [u8; 32] = field(t, "public").try_into().unwrap();
        let shared = field(t, "shared");
        // Exactly what age's X25519 identity does to unwrap a stanza.
        let ss = StaticSecret::from(private).diffie_hellman(&PublicKey::from(public));
        assert_eq!(hex(ss.as_bytes()), hex(&shared), "tc {}", id(t));
        assert_eq!(
            x25519_dalek::x25519(private, public).as_slice(),
            &shared[..],
            "tc {}",
            id(t)
        );
        // age refuses all-zero shared secrets (low-order points).
        if shared.iter().all(|&b| b == 0) {
            zero += 1;
            assert!(!ss.was_contributory(), "tc {}", id(t));
        }
        match t["result"].as_str().unwrap() {
            "valid" => valid += 1,
            // "acceptable": the RFC 7748 result, which x25519-dalek computes;
            // zero results among them are rejected by age as checked above.
            "acceptable" => acceptable += 1,
            r => panic!("unexpected result {r} in tc {}", id(t)),
        }
    }
    assert_eq!((valid, acceptable), (264, 254));
    assert!(zero > 0);
}
