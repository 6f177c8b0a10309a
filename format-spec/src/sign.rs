//! The Ed25519 signature over the header (SPEC.md §5), and key files.
//!
//! The signed message is short and fixed-size, so that keys held in an HSM
//! or a cloud KMS can sign it: the context string, the version, and the
//! SHA-256 of the exact header bytes read from the file.

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use thiserror::Error;

use crate::wire::{Reader, Writer};

/// Domain separation: the first bytes of every signed message.
pub const SIGNATURE_CONTEXT: &[u8; 26] = b"tic artifact signature v1\0";
/// Bytes in the signed message: context, major, minor, header digest.
pub const SIGNED_MESSAGE_LEN: usize = 26 + 2 + 2 + 32;
/// Bytes in the signature section: algorithm, public key, signature.
pub const SIGNATURE_SECTION_LEN: usize = 2 + 32 + 64;
/// Algorithm number of Ed25519 in the signature section.
pub const ALG_ED25519: u16 = 1;

/// The exact bytes an Ed25519 key signs for a header.
pub fn signed_message(major: u16, minor: u16, header: &[u8]) -> [u8; SIGNED_MESSAGE_LEN] {
    let mut m = [0u8; SIGNED_MESSAGE_LEN];
    m[..26].copy_from_slice(SIGNATURE_CONTEXT);
    m[26..28].copy_from_slice(&major.to_le_bytes());
    m[28..30].copy_from_slice(&minor.to_le_bytes());
    m[30..].copy_from_slice(ring::digest::digest(&ring::digest::SHA256, header).as_ref());
    m
}

/// Errors about keys and signatures.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SignError {
    #[error("not an Ed25519 private key in PKCS#8 PEM ({0}); make one with `tic keygen` or `openssl genpkey -algorithm ed25519`")]
    BadPrivateKey(String),
    #[error("not an Ed25519 public key in SubjectPublicKeyInfo PEM ({0}); export one with `openssl pkey -in KEY -pubout` or use the .pub written by `tic keygen`")]
    BadPublicKey(String),
    #[error("this is a public key, but signing needs the private key: give the .key file that `tic keygen` wrote beside the .pub")]
    PublicKeyGivenAsPrivate,
    #[error("this is a PRIVATE key where a public key is wanted: give its public key (the .pub that `tic keygen` wrote beside it, or export one with `openssl pkey -in KEY -pubout`), and keep the private key to the signer")]
    PrivateKeyGivenAsPublic,
    #[error("the private key is encrypted with a passphrase, which tic does not read: write a decrypted copy with `openssl pkey -in KEY -out PLAIN.key` and keep it private, or sign outside tic (`tic signing-message`, then `tic attach-signature`)")]
    EncryptedPrivateKey,
    #[error("the signature section is malformed: {0}")]
    BadSection(&'static str),
    #[error("the signature by key {fingerprint} does not verify: the artifact was modified after signing (or the signature is malformed or non-canonical)")]
    BadSignature { fingerprint: String },
    #[error("an externally made Ed25519 signature must be 64 raw bytes, 128 hex digits or the base64 of 64 bytes; this one is {0} bytes and none of these (sign the 62 bytes of `tic signing-message -o FILE`, pure Ed25519)")]
    BadSignatureLength(usize),
    #[error("could not encode the key: {0}")]
    Encode(String),
    #[error("the system random number generator failed")]
    Rng,
}

/// A short, stable name for a public key: `ed25519:` and the first 8 bytes
/// of SHA-256 over the raw 32-byte key, in hex.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let hex: String = d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("ed25519:{hex}")
}

/// Makes a new signing key from the system's randomness.
pub fn generate_key() -> Result<SigningKey, SignError> {
    use ring::rand::SecureRandom;
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| SignError::Rng)?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a PKCS#8 PEM private key (as written by `tic keygen` or OpenSSL).
pub fn parse_private_key_pem(pem: &str) -> Result<SigningKey, SignError> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|e| match pem_label(pem) {
        Some("PUBLIC KEY") => SignError::PublicKeyGivenAsPrivate,
        Some("ENCRYPTED PRIVATE KEY") => SignError::EncryptedPrivateKey,
        _ => SignError::BadPrivateKey(e.to_string()),
    })
}

/// Reads a SubjectPublicKeyInfo PEM public key.
pub fn parse_public_key_pem(pem: &str) -> Result<VerifyingKey, SignError> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| match pem_label(pem) {
        Some(l) if l.ends_with("PRIVATE KEY") => SignError::PrivateKeyGivenAsPublic,
        _ => SignError::BadPublicKey(e.to_string()),
    })
}

/// Reads an externally made signature as a KMS or HSM tool writes it: 64
/// raw bytes, or 128 hex digits, or the base64 of 64 bytes (standard or
/// URL-safe alphabet, padding optional). In text, whitespace and line
/// breaks are ignored (`base64` wraps at 76 characters, `xxd -p` at 60).
pub fn read_signature_file(bytes: &[u8]) -> Result<[u8; 64], SignError> {
    let bad = || SignError::BadSignatureLength(bytes.len());
    if let Ok(raw) = <[u8; 64]>::try_from(bytes) {
        return Ok(raw);
    }
    let text: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let mut sig = [0u8; 64];
    if text.len() == 128 && text.iter().all(u8::is_ascii_hexdigit) {
        for (b, pair) in sig.iter_mut().zip(text.chunks_exact(2)) {
            let s = std::str::from_utf8(pair).map_err(|_| bad())?;
            *b = u8::from_str_radix(s, 16).map_err(|_| bad())?;
        }
        return Ok(sig);
    }
    if text.len() == 86 || text.len() == 88 {
        use base64::Engine;
        for alphabet in [&base64::alphabet::STANDARD, &base64::alphabet::URL_SAFE] {
            let engine = base64::engine::GeneralPurpose::new(
                alphabet,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            // Room for what 88 characters could hold; exactly 64 must come out.
            let mut buf = [0u8; 66];
            if let Ok(64) = engine.decode_slice(&text, &mut buf) {
                sig.copy_from_slice(&buf[..64]);
                return Ok(sig);
            }
        }
    }
    Err(bad())
}

/// The label of the text's first PEM block (`PUBLIC KEY` for
/// `-----BEGIN PUBLIC KEY-----`), to tell which kind of key was given where
/// another was wanted.
fn pem_label(text: &str) -> Option<&str> {
    let rest = &text[text.find("-----BEGIN ")? + "-----BEGIN ".len()..];
    Some(&rest[..rest.find("-----")?])
}

/// PKCS#8 v1 PEM of a private key (the form `openssl genpkey` writes).
pub fn private_key_pem(key: &SigningKey) -> Result<String, SignError> {
    // PKCS#8 v1 (no embedded public key) is what OpenSSL writes and reads everywhere.
    let der = ed25519_dalek::pkcs8::KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    }
    .to_pkcs8_der()
    .map_err(|e| SignError::Encode(e.to_string()))?;
    der.to_pem(
        "PRIVATE KEY",
        ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF,
    )
    .map(|s| s.to_string())
    .map_err(|e| SignError::Encode(e.to_string()))
}

/// SubjectPublicKeyInfo PEM of a public key.
pub fn public_key_pem(key: &VerifyingKey) -> Result<String, SignError> {
    key.to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| SignError::Encode(e.to_string()))
}

/// The signature section: who signed and the signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignatureSection {
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
}

impl SignatureSection {
    /// Signs a header with a key held in memory.
    pub fn sign(key: &SigningKey, major: u16, minor: u16, header: &[u8]) -> SignatureSection {
        let sig = key.sign(&signed_message(major, minor, header));
        SignatureSection {
            public_key: key.verifying_key().to_bytes(),
            signature: sig.to_bytes(),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u16(ALG_ED25519);
        w.bytes(&self.public_key);
        w.bytes(&self.signature);
        w.buf
    }

    pub fn parse(bytes: &[u8]) -> Result<SignatureSection, SignError> {
        let mut r = Reader::new(bytes, "signature section");
        let alg = r
            .u16("algorithm")
            .map_err(|_| SignError::BadSection("truncated"))?;
        if alg != ALG_ED25519 {
            return Err(SignError::BadSection(
                "unknown signature algorithm (only 1 = Ed25519 is defined)",
            ));
        }
        let public_key = r
            .array("public key")
            .map_err(|_| SignError::BadSection("truncated"))?;
        let signature = r
            .array("signature")
            .map_err(|_| SignError::BadSection("truncated"))?;
        r.finish()
            .map_err(|_| SignError::BadSection("trailing bytes"))?;
        Ok(SignatureSection {
            public_key,
            signature,
        })
    }

    /// The embedded key's fingerprint (informational: trust comes only from
    /// the caller's pinned keys).
    pub fn fingerprint(&self) -> String {
        match VerifyingKey::from_bytes(&self.public_key) {
            Ok(k) => fingerprint(&k),
            Err(_) => "ed25519:<invalid key>".to_string(),
        }
    }

    /// Checks the signature with `trusted`, which must be the key the
    /// section names; uses strict verification (canonical S, no small-order
    /// points).
    pub fn verify(
        &self,
        trusted: &VerifyingKey,
        major: u16,
        minor: u16,
        header: &[u8],
    ) -> Result<(), SignError> {
        let bad = || SignError::BadSignature {
            fingerprint: fingerprint(trusted),
        };
        if trusted.as_bytes() != &self.public_key {
            return Err(bad());
        }
        let sig = Signature::from_bytes(&self.signature);
        trusted
            .verify_strict(&signed_message(major, minor, header), &sig)
            .map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_and_fingerprint() {
        let k = generate_key().unwrap();
        let pem = private_key_pem(&k).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let k2 = parse_private_key_pem(&pem).unwrap();
        assert_eq!(k.to_bytes(), k2.to_bytes());
        let pubpem = public_key_pem(&k.verifying_key()).unwrap();
        let v = parse_public_key_pem(&pubpem).unwrap();
        assert_eq!(v, k.verifying_key());
        let fp = fingerprint(&v);
        assert_eq!(fp.len(), "ed25519:".len() + 16);
    }

    #[test]
    fn sign_verify_and_reject() {
        let k = generate_key().unwrap();
        let other = generate_key().unwrap();
        let s = SignatureSection::sign(&k, 1, 0, b"header");
        let s2 = SignatureSection::parse(&s.to_bytes()).unwrap();
        assert_eq!(s, s2);
        s.verify(&k.verifying_key(), 1, 0, b"header").unwrap();
        assert!(s.verify(&k.verifying_key(), 1, 0, b"headeR").is_err());
        assert!(s.verify(&k.verifying_key(), 1, 1, b"header").is_err());
        assert!(s.verify(&other.verifying_key(), 1, 0, b"header").is_err());
    }

    #[test]
    fn rejects_non_canonical_s() {
        let k = generate_key().unwrap();
        let mut s = SignatureSection::sign(&k, 1, 0, b"h");
        // Add the group order L to S: same value mod L, but non-canonical.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (b, l) in s.signature[32..].iter_mut().zip(L) {
            let v = *b as u16 + l as u16 + carry;
            *b = v as u8;
            carry = v >> 8;
        }
        assert!(s.verify(&k.verifying_key(), 1, 0, b"h").is_err());
    }

    #[test]
    fn rejects_non_ed25519_public_key() {
        // An X25519 SPKI (OID 1.3.101.110) is not an Ed25519 key.
        let x25519 = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VuAyEAu4P4q3N8dGh1QkW6fVy2E6yBvPoF2dF7s3ZQPbb8sXY=\n-----END PUBLIC KEY-----\n";
        assert!(matches!(
            parse_public_key_pem(x25519),
            Err(SignError::BadPublicKey(_))
        ));
        assert!(matches!(
            parse_private_key_pem("hello"),
            Err(SignError::BadPrivateKey(_))
        ));
    }

    #[test]
    fn signature_files_are_raw_hex_or_base64() {
        use base64::Engine;
        let sig: [u8; 64] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(sig);
        for (form, bytes) in [
            ("raw", sig.to_vec()),
            ("hex", hex.clone().into_bytes()),
            (
                "HEX with newline",
                format!("{}\n", hex.to_uppercase()).into_bytes(),
            ),
            ("base64", b64.clone().into_bytes()),
            ("base64 with CRLF", format!("{b64}\r\n").into_bytes()),
            (
                "base64 unpadded",
                b64.trim_end_matches('=').as_bytes().to_vec(),
            ),
            // As `base64` (76 a line) and `xxd -p` (60 a line) wrap them.
            (
                "base64 wrapped",
                format!("{}\n{}\n", &b64[..76], &b64[76..]).into_bytes(),
            ),
            (
                "hex wrapped",
                format!("{}\n{}\n{}\n", &hex[..60], &hex[60..120], &hex[120..]).into_bytes(),
            ),
            (
                "base64url",
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(sig)
                    .into_bytes(),
            ),
        ] {
            assert_eq!(read_signature_file(&bytes).unwrap(), sig, "{form}");
        }
        for bytes in [
            &sig[..63],
            &hex.as_bytes()[..126],
            b"not a signature".as_slice(),
            // base64 of 65 bytes.
            base64::engine::general_purpose::STANDARD
                .encode([1u8; 65])
                .as_bytes(),
            // 128 characters that are not all hex digits.
            &[b'g'; 128],
        ] {
            assert!(
                matches!(read_signature_file(bytes), Err(SignError::BadSignatureLength(n)) if n == bytes.len()),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn a_key_of_the_other_kind_is_named_as_such() {
        let k = SigningKey::from_bytes(&[7; 32]);
        let private = private_key_pem(&k).unwrap();
        let public = public_key_pem(&k.verifying_key()).unwrap();
        assert!(matches!(
            parse_private_key_pem(&public),
            Err(SignError::PublicKeyGivenAsPrivate)
        ));
        assert!(matches!(
            parse_public_key_pem(&private),
            Err(SignError::PrivateKeyGivenAsPublic)
        ));
        // What `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes (passphrase "tic").
        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAiYpuLbi4wv0QICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEAe0tLXLroR82lEs3fxEnR0EQKIS
8EbggxykyMz1XhVEBDo/R9+PgGGsJQF4IaqcAXaDk+JEbecGFMDg0xzOrodS9IAd
n2mvbWOqX0i32SMtbdk=
-----END ENCRYPTED PRIVATE KEY-----
";
        assert!(matches!(
            parse_private_key_pem(encrypted),
            Err(SignError::EncryptedPrivateKey)
        ));
        assert!(matches!(
            parse_public_key_pem(encrypted),
            Err(SignError::PrivateKeyGivenAsPublic)
        ));
        assert_eq!(pem_label("junk"), None);
        assert_eq!(pem_label("-----BEGIN X"), None);
    }
}
