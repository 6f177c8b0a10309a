//! Opening an artifact: the signature first, then the header, then chunks
//! on demand, each checked against its digest before it is decrypted or
//! decoded.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use rayon::prelude::*;
use tic_format::crypto::{self, Identity, PayloadKey, RecipientsSection};
use tic_format::header::{Preamble, PREAMBLE_LEN};
use tic_format::sign::SignatureSection;
use tic_format::{codec, ChunkEntry, Encryption, FormatError, Header, TensorEntry};

use crate::buffers::BufferPool;
use crate::error::RuntimeError;

/// Which keys the caller trusts, and whether unsigned artifacts may be read.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// Pinned signer keys. The artifact's signature must be by one of them.
    pub keys: Vec<VerifyingKey>,
    /// Accept an artifact without a signature (or, when `keys` is empty,
    /// without checking its signature). Chunk digests are still checked.
    pub allow_unsigned: bool,
}

/// How to open an artifact.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    pub trust: Trust,
    /// Identities to decrypt with (age identities or symmetric keys). Not
    /// needed to verify, only to read tensors of an encrypted artifact.
    pub identities: Vec<Identity>,
}

/// What the signature check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureStatus {
    /// Signed by this trusted key, and the signature verified.
    Verified { fingerprint: String },
    /// Signed, but not checked: no trusted keys were given and unsigned
    /// reading was allowed.
    NotChecked { fingerprint: String },
    /// Not signed; reading was allowed.
    Unsigned,
}

/// The front of an artifact, checked: its preamble, the header (parsed
/// only after its signature was checked against the trusted keys), what
/// that check found, and the recipients section. This is all that `verify`
/// and `inspect` need besides the payload.
pub struct Head {
    path: PathBuf,
    preamble: Preamble,
    header: Header,
    signature: SignatureStatus,
    recipients: Option<RecipientsSection>,
}

/// An open artifact. Reads go straight to the file with positioned reads,
/// so it can be shared across threads; nothing is read until asked for.
pub struct Artifact {
    head: Head,
    file: File,
    key: Option<PayloadKey>,
}

fn read_at(file: &File, path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, RuntimeError> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(|source| RuntimeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(buf)
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("path", &self.path)
            .field("version", &(self.preamble.major, self.preamble.minor))
            .field("files", &self.header.files.len())
            .field("tensors", &self.header.tensors.len())
            .field("chunks", &self.header.chunks.len())
            .field("signature", &self.signature)
            .field("encrypted", &self.recipients.is_some())
            .finish()
    }
}

impl std::fmt::Debug for Artifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Artifact")
            .field("head", &self.head)
            .field("can_decrypt", &self.can_decrypt())
            .finish_non_exhaustive()
    }
}

impl Head {
    /// Reads and checks the sections after the `preamble` of the artifact
    /// at `path`: the header's raw bytes, the signature over them (against
    /// `trust`), then the parsed header and the recipients section.
    /// `read(offset, len)` gives a section's bytes; sections are asked for
    /// in file order, so a stream can serve them.
    pub(crate) fn read(
        path: PathBuf,
        preamble: Preamble,
        trust: &Trust,
        mut read: impl FnMut(u64, u64) -> Result<Vec<u8>, RuntimeError>,
    ) -> Result<Head, RuntimeError> {
        let fmt = |source| RuntimeError::Format {
            path: path.clone(),
            source,
        };
        let header_bytes = read(preamble.header_offset(), preamble.header_len)?;
        let sig_bytes = read(preamble.signature_offset(), preamble.signature_len)?;
        let signature = check_signature(&path, &preamble, &header_bytes, &sig_bytes, trust)?;

        let header = Header::parse(&header_bytes).map_err(fmt)?;
        if header.payload_len != preamble.payload_len {
            return Err(fmt(FormatError::Inconsistent(format!(
                "the preamble says the payload is {} bytes but the signed header says {}",
                preamble.payload_len, header.payload_len
            ))));
        }
        let recipients = match (&header.encryption, preamble.recipients_len) {
            (Encryption::None, 0) => None,
            (Encryption::None, _) => {
                return Err(RuntimeError::RecipientsMismatch {
                    path,
                    what: "the signed header says the payload is not encrypted, yet the preamble gives a recipients section",
                })
            }
            (Encryption::ChaCha20Poly1305 { .. }, 0) => {
                return Err(RuntimeError::RecipientsMismatch {
                    path,
                    what: "the signed header says the payload is encrypted, yet the preamble gives no recipients section",
                })
            }
            (Encryption::ChaCha20Poly1305 { .. }, n) => {
                let bytes = read(preamble.recipients_offset(), n)?;
                Some(
                    RecipientsSection::parse(&bytes).map_err(|source| RuntimeError::Crypto {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
        };
        Ok(Head {
            path,
            preamble,
            header,
            signature,
            recipients,
        })
    }

    /// Where the artifact was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn header(&self) -> &Header {
        &self.header
    }
    pub fn preamble(&self) -> &Preamble {
        &self.preamble
    }
    pub fn signature(&self) -> &SignatureStatus {
        &self.signature
    }
    /// The recipients section of an encrypted artifact.
    pub fn recipients(&self) -> Option<&RecipientsSection> {
        self.recipients.as_ref()
    }
}

impl Artifact {
    /// Opens `path`: checks the preamble against the file's length, checks
    /// the signature over the raw header bytes against the trusted keys,
    /// and only then parses the header. With identities given, unwraps the
    /// file key and checks its commitment.
    pub fn open(path: impl AsRef<Path>, opts: &OpenOptions) -> Result<Artifact, RuntimeError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| RuntimeError::Io {
            path: path.clone(),
            source,
        };
        let fmt = |source| RuntimeError::Format {
            path: path.clone(),
            source,
        };
        if path == Path::new("-") && !path.exists() {
            // `-` names standard input only for `tic verify -`,
            // `tic decompress -` and `tic inspect -`, which read streams.
            return Err(RuntimeError::NotSeekable {
                path: PathBuf::from("standard input (-)"),
            });
        }
        let file = File::open(&path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if meta.is_dir() {
            return Err(RuntimeError::NotAFile { path });
        }
        if !meta.is_file() {
            return Err(RuntimeError::NotSeekable { path });
        }
        let file_len = meta.len();
        if file_len < PREAMBLE_LEN as u64 {
            return Err(fmt(short_preamble(&read_at(&file, &path, 0, file_len)?)));
        }
        let mut pre = [0u8; PREAMBLE_LEN];
        file.read_exact_at(&mut pre, 0).map_err(io)?;
        let preamble = Preamble::parse(&pre, file_len).map_err(fmt)?;
        // Lengths are now bounded by the limits and by the real file size.
        let head = Head::read(path.clone(), preamble, &opts.trust, |offset, len| {
            read_at(&file, &path, offset, len)
        })?;
        let key = unwrap_key(&head, &opts.identities)?;
        log_opened(&head, key.is_some());
        Ok(Artifact { head, file, key })
    }

    /// The checked front of the artifact (what `verify` and `inspect` show).
    pub fn head(&self) -> &Head {
        &self.head
    }
    pub fn path(&self) -> &Path {
        self.head.path()
    }
    pub fn header(&self) -> &Header {
        self.head.header()
    }
    pub fn preamble(&self) -> &Preamble {
        self.head.preamble()
    }
    pub fn signature(&self) -> &SignatureStatus {
        self.head.signature()
    }
    /// The recipients section of an encrypted artifact.
    pub fn recipients(&self) -> Option<&RecipientsSection> {
        self.head.recipients()
    }
    /// The payload key, when the artifact is encrypted and was opened with a
    /// matching identity (the GPU path decrypts with it on the device).
    #[cfg(feature = "cuda")]
    pub(crate) fn payload_key(&self) -> Option<&PayloadKey> {
        self.key.as_ref()
    }

    /// Whether tensors can be read: not encrypted, or a matching identity was given.
    pub fn can_decrypt(&self) -> bool {
        !self.head.header.is_encrypted() || self.key.is_some()
    }

    /// The first tensor with this name (blobs have no name).
    pub fn tensor(&self, name: &str) -> Result<&TensorEntry, RuntimeError> {
        self.head
            .header
            .tensors
            .iter()
            .find(|t| !t.name.is_empty() && t.name == name)
            .ok_or_else(|| RuntimeError::TensorNotFound {
                path: self.head.path.clone(),
                name: name.to_string(),
            })
    }

    /// Reads a chunk's stored bytes and checks them against the signed
    /// digest. Nothing unchecked leaves this function.
    pub fn read_stored_chunk(
        &self,
        index: u64,
        tensor: &TensorEntry,
    ) -> Result<Vec<u8>, RuntimeError> {
        self.own_entry(tensor)?;
        let chunks = &self.head.header.chunks;
        let c = usize::try_from(index)
            .ok()
            .and_then(|i| chunks.get(i))
            .ok_or_else(|| RuntimeError::ChunkNotFound {
                path: self.head.path.clone(),
                index,
                chunks: chunks.len(),
            })?;
        let mut buf = Vec::new();
        self.read_stored_chunk_into(index, c, tensor, &mut buf)?;
        Ok(buf)
    }

    fn read_stored_chunk_into(
        &self,
        index: u64,
        c: &ChunkEntry,
        tensor: &TensorEntry,
        buf: &mut Vec<u8>,
    ) -> Result<(), RuntimeError> {
        buf.resize(c.stored_len as usize, 0);
        self.read_checked(index, c, tensor, buf)
    }

    /// Reads chunk `index` (entry `c`, of `tensor`) into `buf`, exactly
    /// `c.stored_len` bytes, and checks them against the signed digest.
    pub(crate) fn read_checked(
        &self,
        index: u64,
        c: &ChunkEntry,
        tensor: &TensorEntry,
        buf: &mut [u8],
    ) -> Result<(), RuntimeError> {
        self.file
            .read_exact_at(buf, self.head.preamble.payload_offset() + c.offset)
            .map_err(|source| RuntimeError::Io {
                path: self.head.path.clone(),
                source,
            })?;
        if tic_format::sha256(buf) != c.sha256 {
            return Err(RuntimeError::ChunkDigest {
                path: self.head.path.clone(),
                tensor: display_name(tensor),
                chunk: index,
            });
        }
        Ok(())
    }

    /// [`need_key`] for this artifact: fails unless its payload can be
    /// read (not encrypted, or opened with an identity).
    pub(crate) fn need_key(&self) -> Result<(), RuntimeError> {
        need_key(&self.head, self.key.as_ref())
    }

    /// Turns checked stored bytes into the chunk's original bytes in `out`
    /// (see [`decode_stored`]).
    fn decode_chunk(
        &self,
        index: u64,
        stored: &mut Vec<u8>,
        tensor: &TensorEntry,
        out: &mut [u8],
    ) -> Result<(), RuntimeError> {
        decode_stored(&self.head, self.key.as_ref(), index, stored, tensor, out)
    }

    /// Decodes a run of chunks of one tensor into `out` (their concatenated
    /// original bytes), reading stored chunks into buffers of `stored_bufs`
    /// (the caller decides how long they are kept). The chunks are pool
    /// tasks when `parallel`, else decoded one after the other by the
    /// caller (a restore's windows: see `restore_file`).
    pub(crate) fn decode_chunks_into(
        &self,
        tensor: &TensorEntry,
        chunks: &[(u64, &ChunkEntry)],
        out: &mut [u8],
        stored_bufs: &BufferPool,
        parallel: bool,
    ) -> Result<(), RuntimeError> {
        let mut slices = Vec::with_capacity(chunks.len());
        let mut rest = out;
        for (i, c) in chunks {
            let (head, tail) = rest.split_at_mut(c.orig_len as usize);
            slices.push((*i, *c, head));
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(RuntimeError::Internal(
                "chunk lengths do not fill the output".into(),
            ));
        }
        let one = |(i, c, out): (u64, &ChunkEntry, &mut [u8])| {
            let mut stored = stored_bufs.take();
            self.read_stored_chunk_into(i, c, tensor, &mut stored)?;
            self.decode_chunk(i, &mut stored, tensor, out)?;
            stored_bufs.give([stored]);
            Ok(())
        };
        if parallel {
            slices.into_par_iter().with_max_len(1).try_for_each(one)
        } else {
            slices.into_iter().try_for_each(one)
        }
    }

    /// Reads one tensor into `out` (exactly its original length): every
    /// chunk is checked, decrypted and decoded, then the whole tensor is
    /// checked against its digest. On error `out` is zeroed.
    pub fn read_tensor_into(
        &self,
        tensor: &TensorEntry,
        out: &mut [u8],
    ) -> Result<(), RuntimeError> {
        self.own_entry(tensor)?;
        if out.len() as u64 != tensor.orig_len {
            return Err(RuntimeError::BufferSize {
                tensor: display_name(tensor),
                got: out.len(),
                want: tensor.orig_len,
            });
        }
        let chunks: Vec<_> = self.head.header.tensor_chunks(tensor).collect();
        let stored = BufferPool::default();
        let r = self
            .decode_chunks_into(tensor, &chunks, out, &stored, true)
            .and_then(|_| {
                if tic_format::sha256(out) != tensor.sha256 {
                    return Err(RuntimeError::TensorDigest {
                        path: self.head.path.clone(),
                        tensor: display_name(tensor),
                    });
                }
                Ok(())
            });
        if r.is_err() {
            out.fill(0);
        }
        r
    }

    /// Checks that `t` is one of this artifact's tensor entries (or an
    /// unchanged copy of one), so that an entry kept from another artifact
    /// is refused instead of read with this one's chunks.
    fn own_entry(&self, t: &TensorEntry) -> Result<(), RuntimeError> {
        let tensors = &self.head.header.tensors;
        let inside = tensors.as_ptr_range().contains(&(t as *const TensorEntry));
        if inside || tensors.iter().any(|x| x == t) {
            Ok(())
        } else {
            Err(RuntimeError::ForeignEntry {
                path: self.head.path.clone(),
                tensor: display_name(t),
            })
        }
    }

    /// The tensors, in table order, without the entries that hold the
    /// contents of plain files (which have no name; see
    /// [`Artifact::read_file`]).
    pub fn tensors(&self) -> impl Iterator<Item = &TensorEntry> {
        self.head
            .header
            .tensors
            .iter()
            .filter(|t| !t.name.is_empty())
    }

    /// Reads the original bytes of a file that is not safetensors
    /// (`config.json`, a tokenizer), by its path in the artifact.
    /// Safetensors files are restored whole by [`Artifact::extract`].
    pub fn read_file(&self, name: &str) -> Result<Vec<u8>, RuntimeError> {
        let h = &self.head.header;
        let file = h
            .files
            .iter()
            .find(|f| f.path == name && f.kind == tic_format::FileKind::Blob)
            .ok_or_else(|| RuntimeError::FileNotFound {
                path: self.head.path.clone(),
                name: name.to_string(),
            })?;
        match h.file_tensors(file) {
            [entry] => self.read_entry(entry),
            _ => Err(RuntimeError::Internal(format!(
                "file {name:?} has no single entry in a header that parsed"
            ))),
        }
    }

    /// Reads one tensor by name into a new buffer.
    pub fn read_tensor(&self, name: &str) -> Result<Vec<u8>, RuntimeError> {
        self.read_entry(self.tensor(name)?)
    }

    /// Reads one tensor entry into a new buffer.
    pub fn read_entry(&self, t: &TensorEntry) -> Result<Vec<u8>, RuntimeError> {
        let mut out = Vec::new();
        out.try_reserve_exact(t.orig_len as usize).map_err(|_| {
            RuntimeError::Internal(format!(
                "cannot allocate {} bytes for tensor {}",
                t.orig_len, t.name
            ))
        })?;
        out.resize(t.orig_len as usize, 0);
        self.read_tensor_into(t, &mut out)?;
        Ok(out)
    }

    /// Checks every stored chunk against its digest, in parallel, without
    /// decrypting or decoding. With a verified signature this proves every
    /// byte of the artifact is what the signer made.
    pub fn verify_chunks(&self, progress: &dyn crate::Progress) -> Result<(), RuntimeError> {
        let started = std::time::Instant::now();
        let owner = chunk_owners(&self.head.header);
        progress.start("verifying", self.head.header.payload_len);
        let r = self
            .head
            .header
            .chunks
            .par_iter()
            .enumerate()
            .try_for_each_init(Vec::new, |buf, (i, c)| {
                let t = &self.head.header.tensors[owner[i]];
                self.read_stored_chunk_into(i as u64, c, t, buf)?;
                progress.advance(c.stored_len);
                Ok(())
            });
        progress.finish();
        if r.is_ok() {
            tracing::info!(
                "checked the digests of {} chunks ({} bytes) in {:.1?}",
                self.head.header.chunks.len(),
                self.head.header.payload_len,
                started.elapsed()
            );
        }
        r
    }
}

/// With `identities` given, unwraps the file key of an encrypted
/// artifact from its recipients section and checks it against the key
/// commitment in the signed header; `None` when not encrypted or no
/// identity is given.
pub(crate) fn unwrap_key(
    head: &Head,
    identities: &[Identity],
) -> Result<Option<PayloadKey>, RuntimeError> {
    match (&head.header.encryption, &head.recipients) {
        (Encryption::ChaCha20Poly1305 { salt, commitment }, Some(r)) if !identities.is_empty() => {
            let (_, key) = r
                .unwrap_checked(identities, salt, commitment)
                .map_err(|source| RuntimeError::Crypto {
                    path: head.path.clone(),
                    source,
                })?;
            Ok(Some(key))
        }
        _ => Ok(None),
    }
}

/// Logs what an opened artifact is: format, size, signature, encryption.
pub(crate) fn log_opened(head: &Head, key_unwrapped: bool) {
    let Head {
        path,
        preamble,
        header,
        signature,
        recipients,
    } = head;
    tracing::info!(
        "opened {}: format {}.{}, {} files, {} tensors, {} chunks, {} payload bytes; {}; {}",
        path.display(),
        preamble.major,
        preamble.minor,
        header.files.len(),
        header.tensors.iter().filter(|t| !t.name.is_empty()).count(),
        header.chunks.len(),
        header.payload_len,
        match signature {
            SignatureStatus::Verified { fingerprint } =>
                format!("signed by {fingerprint}, verified"),
            SignatureStatus::NotChecked { fingerprint } =>
                format!("signed by {fingerprint}, not checked"),
            SignatureStatus::Unsigned => "unsigned".to_string(),
        },
        match (recipients, key_unwrapped) {
            (None, _) => "not encrypted".to_string(),
            (Some(r), true) => format!(
                "encrypted to {} recipients, file key unwrapped",
                r.entries.len()
            ),
            (Some(r), false) => format!(
                "encrypted to {} recipients, no identity given",
                r.entries.len()
            ),
        }
    );
}

/// Fails with [`RuntimeError::NeedIdentity`] when the artifact of `head`
/// is encrypted and there is no `key` to open it.
pub(crate) fn need_key(head: &Head, key: Option<&PayloadKey>) -> Result<(), RuntimeError> {
    if key.is_none() && head.header.is_encrypted() {
        return Err(RuntimeError::NeedIdentity {
            path: head.path.clone(),
            recipients: head.recipients.as_ref().map_or(0, |r| r.entries.len()),
        });
    }
    Ok(())
}

/// Turns the stored bytes of chunk `index` (of `tensor`), already checked
/// against their digest, into the chunk's original bytes in `out`: they
/// are decrypted in place with `key` when the artifact is encrypted, then
/// decoded.
pub(crate) fn decode_stored(
    head: &Head,
    key: Option<&PayloadKey>,
    index: u64,
    stored: &mut Vec<u8>,
    tensor: &TensorEntry,
    out: &mut [u8],
) -> Result<(), RuntimeError> {
    need_key(head, key)?;
    if let Some(key) = key {
        let last = index + 1 == head.header.chunks.len() as u64;
        crypto::open_chunk_in_place(key, index, last, stored).map_err(|_| {
            RuntimeError::Decrypt {
                path: head.path.clone(),
                tensor: display_name(tensor),
                chunk: index,
            }
        })?;
    }
    let plain: &[u8] = stored;
    codec::decode_chunk(&tensor.codec, tensor.dtype.size(), plain, out).map_err(|source| {
        RuntimeError::Decode {
            path: head.path.clone(),
            tensor: display_name(tensor),
            source,
        }
    })
}

/// What is wrong with an artifact (file or stream) that ends before its
/// preamble does, given the bytes it has: not a tic artifact at all, or a
/// truncated one.
pub(crate) fn short_preamble(start: &[u8]) -> FormatError {
    if start.len() >= 8 && start[..8] != tic_format::header::MAGIC {
        FormatError::BadMagic
    } else {
        FormatError::Truncated {
            what: "preamble",
            field: "preamble",
            offset: start.len() as u64,
        }
    }
}

/// For each chunk, the index of the tensor that owns it.
pub(crate) fn chunk_owners(h: &Header) -> Vec<usize> {
    let mut v = Vec::with_capacity(h.chunks.len());
    for (ti, t) in h.tensors.iter().enumerate() {
        v.extend(std::iter::repeat_n(ti, t.chunk_count as usize));
    }
    v
}

/// A tensor's name for messages; a blob is named by its file.
pub(crate) fn display_name(t: &TensorEntry) -> String {
    if t.name.is_empty() {
        "(file contents)".to_string()
    } else {
        format!("`{}`", t.name)
    }
}

fn check_signature(
    path: &Path,
    pre: &Preamble,
    header: &[u8],
    sig: &[u8],
    trust: &Trust,
) -> Result<SignatureStatus, RuntimeError> {
    let path = path.to_path_buf();
    if sig.is_empty() {
        return if trust.allow_unsigned {
            Ok(SignatureStatus::Unsigned)
        } else {
            Err(RuntimeError::Unsigned { path })
        };
    }
    let section = SignatureSection::parse(sig).map_err(|source| RuntimeError::Signature {
        path: path.clone(),
        source,
    })?;
    let fingerprint = section.fingerprint();
    if trust.keys.is_empty() {
        return if trust.allow_unsigned {
            Ok(SignatureStatus::NotChecked { fingerprint })
        } else {
            Err(RuntimeError::NoTrustedKeys { path, fingerprint })
        };
    }
    let key = trust
        .keys
        .iter()
        .find(|k| k.as_bytes() == &section.public_key)
        .ok_or_else(|| RuntimeError::UntrustedSigner {
            path: path.clone(),
            fingerprint: fingerprint.clone(),
        })?;
    section
        .verify(key, pre.major, pre.minor, header)
        .map_err(|source| RuntimeError::Signature { path, source })?;
    Ok(SignatureStatus::Verified { fingerprint })
}
