//! Reading key files: trusted public keys and decryption identities.

use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use thiserror::Error;
use tic_format::crypto::{self, Identity};
use tic_format::sign;

/// Key files are small; anything larger is not a key file.
const MAX_KEY_FILE: u64 = 1 << 20;

/// A key file that cannot be used, with what to do about it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: over 1 MiB, too large to be a key file")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path}: {source}")]
    Sign {
        path: PathBuf,
        #[source]
        source: sign::SignError,
    },
    #[error("{path}: {source}")]
    Crypto {
        path: PathBuf,
        #[source]
        source: crypto::CryptoError,
    },
    #[error("{path}: not a decryption identity: it is neither an age identity file (lines starting AGE-SECRET-KEY-1, as `age-keygen` writes) nor a symmetric key file ({source})")]
    NotAnIdentity {
        path: PathBuf,
        #[source]
        source: crypto::CryptoError,
    },
    #[error("{path}: this is a PEM key (an Ed25519 key for --sign or --trusted-key), not a decryption identity: pass the age identity file (AGE-SECRET-KEY-1...) or the 32-byte symmetric key file that the artifact was encrypted to")]
    PemKeyAsIdentity { path: PathBuf },
    #[error(
        "{path}: the directory holds no *.pub files; put trusted Ed25519 public keys (PEM) there"
    )]
    EmptyKeyDir { path: PathBuf },
    #[error("{path}: an OpenSSH public key; tic's signing keys are Ed25519 keys in PEM (`tic keygen` makes a pair; the signer's .pub file is the one to trust)")]
    SshPublicKey { path: PathBuf },
}

/// Reads a key file of at most 1 MiB (a regular file or a pipe such as
/// `<(vault read ...)`), never more than one byte past that.
pub fn read_key_file(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let too_large = |size| KeyFileError::TooLarge {
        path: path.to_path_buf(),
        size,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_KEY_FILE {
        return Err(too_large(size));
    }
    // A pipe (`--sign <(vault read ...)`, /dev/stdin) has no length: read
    // at most one byte past the cap.
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path).map_err(io)?, MAX_KEY_FILE + 1),
        &mut bytes,
    )
    .map_err(io)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Reads an Ed25519 public key (SubjectPublicKeyInfo PEM).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey, KeyFileError> {
    let bytes = read_key_file(path)?;
    if crypto::is_ssh_public_key(&bytes) {
        return Err(KeyFileError::SshPublicKey {
            path: path.to_path_buf(),
        });
    }
    let text = String::from_utf8_lossy(&bytes);
    sign::parse_public_key_pem(&text).map_err(|source| KeyFileError::Sign {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads trusted keys from files, or from every `*.pub` file of a directory.
pub fn read_trusted_keys(paths: &[PathBuf]) -> Result<Vec<VerifyingKey>, KeyFileError> {
    let mut keys = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|source| KeyFileError::Io {
                path: p.clone(),
                source,
            })?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "pub"))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(KeyFileError::EmptyKeyDir { path: p.clone() });
            }
            let before = keys.len();
            for f in files {
                // ~/.ssh-style directories hold SSH keys named *.pub too.
                if crypto::is_ssh_public_key(&read_key_file(&f)?) {
                    tracing::warn!(
                        "{}: an SSH public key, not an Ed25519 PEM key; not trusted",
                        f.display()
                    );
                    continue;
                }
                keys.push(read_public_key(&f)?);
            }
            if keys.len() == before {
                return Err(KeyFileError::EmptyKeyDir { path: p.clone() });
            }
        } else {
            keys.push(read_public_key(p)?);
        }
    }
    Ok(keys)
}

/// Reads a symmetric key file to encrypt to (32 raw bytes, 64 hex digits
/// or base64), of at most 1 MiB.
pub fn read_symmetric_key(path: &Path) -> Result<crypto::SymmetricKey, KeyFileError> {
    let bytes = read_key_file(path)?;
    crypto::read_symmetric_key_file(&bytes).map_err(|source| KeyFileError::Crypto {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a recipients file to encrypt to, as `age -R` reads one: an
/// `age1…` recipient per line, blank lines and `#` comments (at most 1 MiB).
pub fn read_recipients_file(path: &Path) -> Result<Vec<crypto::Recipient>, KeyFileError> {
    let bytes = read_key_file(path)?;
    let crypto_err = |source| KeyFileError::Crypto {
        path: path.to_path_buf(),
        source,
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        crypto_err(crypto::CryptoError::BadRecipientsFile {
            line: 0,
            reason: "it is not text (a symmetric key file goes to --encrypt-key)".to_owned(),
        })
    })?;
    crypto::parse_recipients_file(text).map_err(crypto_err)
}

/// Reads decryption identities: an age identity file (`age-keygen`
/// output), or a symmetric key file (32 raw bytes, 64 hex digits or base64).
pub fn read_identities(path: &Path) -> Result<Vec<Identity>, KeyFileError> {
    let bytes = read_key_file(path)?;
    let crypto_err = |source| KeyFileError::Crypto {
        path: path.to_path_buf(),
        source,
    };
    let text = std::str::from_utf8(&bytes).unwrap_or_default();
    if text.contains("-----BEGIN ") {
        return Err(KeyFileError::PemKeyAsIdentity {
            path: path.to_path_buf(),
        });
    }
    let is_age = text.contains("AGE-SECRET-KEY-");
    if is_age {
        crypto::parse_identity_file(std::str::from_utf8(&bytes).expect("checked"))
            .map_err(crypto_err)
    } else {
        let key = crypto::read_symmetric_key_file(&bytes).map_err(|source| {
            KeyFileError::NotAnIdentity {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(vec![Identity::Symmetric(key)])
    }
}
