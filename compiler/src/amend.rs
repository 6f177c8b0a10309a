//! Changing an existing artifact's signature section: the message to sign
//! for keys held in an HSM or KMS, and attaching a signature made there.
//! (Changing the recipients lives in `rewrap`.)

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use ed25519_dalek::VerifyingKey;
use tic_format::crypto::{Identity, Recipient};
use tic_format::header::Preamble;
use tic_format::sign::{self, SignatureSection, SIGNED_MESSAGE_LEN};
use tic_format::Encryption;
use tic_runtime::{Artifact, OpenOptions, Progress, Trust};

use crate::error::{AmendError, OutputError};

/// Bytes of the payload copied at a time.
const COPY_BLOCK: u64 = 8 << 20;

/// The raw pieces of an artifact: preamble, header, signature, recipients
/// bytes, and where the payload starts.
pub(crate) struct Raw {
    pub preamble: Preamble,
    pub header: Vec<u8>,
    pub signature: Option<SignatureSection>,
    pub recipients: Vec<u8>,
}

/// Reads an artifact's front sections after checking it opens (structure
/// and, unless it is unsigned, nothing else: callers decide trust).
pub(crate) fn read_raw(path: &Path) -> Result<(Artifact, Raw), AmendError> {
    let art = Artifact::open(
        path,
        &OpenOptions {
            trust: Trust {
                keys: Vec::new(),
                allow_unsigned: true,
            },
            identities: Vec::new(),
        },
    )?;
    let p = *art.preamble();
    let f = File::open(path).map_err(|source| AmendError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let read = |off: u64, len: u64| -> Result<Vec<u8>, AmendError> {
        let mut b = vec![0u8; len as usize];
        f.read_exact_at(&mut b, off)
            .map_err(|source| AmendError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(b)
    };
    let sig = read(p.signature_offset(), p.signature_len)?;
    let raw = Raw {
        preamble: p,
        header: read(p.header_offset(), p.header_len)?,
        signature: if sig.is_empty() {
            None
        } else {
            Some(SignatureSection::parse(&sig)?)
        },
        recipients: read(p.recipients_offset(), p.recipients_len)?,
    };
    Ok((art, raw))
}

/// The exact 62 bytes an Ed25519 key must sign for this artifact.
pub fn signing_message(path: &Path) -> Result<[u8; SIGNED_MESSAGE_LEN], AmendError> {
    let (_, raw) = read_raw(path)?;
    Ok(sign::signed_message(
        raw.preamble.major,
        raw.preamble.minor,
        &raw.header,
    ))
}

/// Writes `output`: the artifact `input` with the given front sections and
/// its payload copied unchanged. Temporary file, then rename; stops with
/// [`OutputError::Interrupted`], nothing written, once `progress.cancelled()`
/// says so.
pub(crate) fn rewrite(
    input: &Path,
    raw: &Raw,
    signature: Option<&SignatureSection>,
    recipients: &[u8],
    output: &Path,
    force: bool,
    progress: &dyn Progress,
) -> Result<(), AmendError> {
    let same = output.canonicalize().ok() == input.canonicalize().ok();
    if output.symlink_metadata().is_ok() && !force && !same {
        return Err(OutputError::Exists {
            path: output.to_path_buf(),
        }
        .into());
    }
    let ioe = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AmendError::Io { path, source }
    };
    let sig = signature.map(|s| s.to_bytes()).unwrap_or_default();
    let preamble = Preamble {
        signature_len: sig.len() as u64,
        recipients_len: recipients.len() as u64,
        ..raw.preamble
    };
    let dir = crate::compile::output_dir(output)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tic-")
        .suffix(".partial")
        .permissions(crate::compile::artifact_permissions())
        .tempfile_in(&dir)
        .map_err(ioe(&dir))?;
    let write_err = crate::compile::write_err(output);
    tmp.write_all(&preamble.to_bytes()).map_err(write_err)?;
    tmp.write_all(&raw.header).map_err(write_err)?;
    tmp.write_all(&sig).map_err(write_err)?;
    tmp.write_all(recipients).map_err(write_err)?;
    let mut src = File::open(input).map_err(ioe(input))?;
    src.seek(SeekFrom::Start(raw.preamble.payload_offset()))
        .map_err(ioe(input))?;
    let mut src = src.take(raw.preamble.payload_len);
    let interrupted = || OutputError::Interrupted {
        path: output.to_path_buf(),
    };
    // The payload is copied in blocks, so that a long copy shows progress
    // and stops when asked to (the temporary file is then removed).
    progress.start("copying", raw.preamble.payload_len);
    let mut buf = vec![0u8; COPY_BLOCK.min(raw.preamble.payload_len) as usize];
    let mut copied = 0u64;
    loop {
        if progress.cancelled() {
            return Err(interrupted().into());
        }
        let n = src.read(&mut buf).map_err(ioe(input))?;
        if n == 0 {
            break;
        }
        tmp.write_all(&buf[..n]).map_err(write_err)?;
        copied += n as u64;
        progress.advance(n as u64);
    }
    progress.finish();
    if copied != raw.preamble.payload_len {
        return Err(AmendError::Usage {
            path: input.to_path_buf(),
            what: "the payload is shorter than the preamble says".into(),
        });
    }
    tmp.as_file().sync_all().map_err(write_err)?;
    if progress.cancelled() {
        return Err(interrupted().into());
    }
    Ok(crate::compile::persist(tmp, output, true)?)
}

/// Attaches an Ed25519 signature made elsewhere by `key` (`signature`: a
/// signature file's bytes, as [`sign::read_signature_file`] reads them),
/// after checking it verifies; the result is byte-identical to signing
/// with `tic compile --sign`.
pub fn attach_signature(
    input: &Path,
    signature: &[u8],
    key: &VerifyingKey,
    output: &Path,
    force: bool,
    progress: &dyn Progress,
) -> Result<String, AmendError> {
    let (_, raw) = read_raw(input)?;
    let signature = sign::read_signature_file(signature)?;
    let section = SignatureSection {
        public_key: key.to_bytes(),
        signature,
    };
    section.verify(key, raw.preamble.major, raw.preamble.minor, &raw.header)?;
    // Signing an artifact someone else signed takes their signature off:
    // said, since those who trust only the old signer will now refuse it.
    if let Some(old) = raw
        .signature
        .as_ref()
        .filter(|o| o.public_key != section.public_key)
    {
        tracing::warn!(
            "{}: replacing the signature by {} with one by {}; those who trust only {} will \
             refuse the new artifact",
            input.display(),
            old.fingerprint(),
            section.fingerprint(),
            old.fingerprint()
        );
    }
    rewrite(
        input,
        &raw,
        Some(&section),
        &raw.recipients,
        output,
        force,
        progress,
    )?;
    Ok(section.fingerprint())
}

/// Adds and removes recipients of an encrypted artifact without touching
/// its payload or its signature: the file key is unwrapped with
/// `identities` (and checked against the signed commitment), then wrapped
/// again for the new recipients. Returns the labels of the recipients after
/// the change.
pub fn rewrap(
    input: &Path,
    identities: &[Identity],
    add: &[Recipient],
    remove: &[String],
    output: &Path,
    force: bool,
    progress: &dyn Progress,
) -> Result<Vec<String>, AmendError> {
    let (art, raw) = read_raw(input)?;
    let (salt, commitment) = match &art.header().encryption {
        Encryption::ChaCha20Poly1305 { salt, commitment } => (salt, commitment),
        Encryption::None => {
            return Err(AmendError::Usage {
                path: input.to_path_buf(),
                what: "the artifact is not encrypted; compile it with --encrypt-to to encrypt it"
                    .into(),
            })
        }
    };
    let mut section = art
        .recipients()
        .expect("encrypted artifacts have recipients")
        .clone();
    // A wrong identity fails as it does when reading: a verification
    // failure (exit 1) that names the artifact.
    let (file_key, _) = section
        .unwrap_checked(identities, salt, commitment)
        .map_err(|source| {
            AmendError::Runtime(tic_runtime::RuntimeError::Crypto {
                path: input.to_path_buf(),
                source,
            })
        })?;
    if !add.is_empty() {
        section.add(&file_key, add)?;
    }
    for label in remove {
        section.remove(label)?;
    }
    let labels = section.labels();
    rewrite(
        input,
        &raw,
        raw.signature.as_ref(),
        &section.to_bytes(),
        output,
        force,
        progress,
    )?;
    Ok(labels)
}
