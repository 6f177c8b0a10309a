//! The preamble and the signed header (SPEC.md §3 and §4).
//!
//! [`Header::to_bytes`] and [`Header::parse`] follow the byte tables of the
//! spec field by field. `parse` checks every limit before allocating and
//! every cross-reference (file → tensors → chunks → payload) before
//! returning, so a caller can index with what it returns.

use crate::codec::CodecSpec;
use crate::dtype::DType;
use crate::error::FormatError;
use crate::limits::*;
use crate::path::check_path_set;
use crate::wire::{Reader, Writer};

/// The 8 magic bytes that open every artifact.
pub const MAGIC: [u8; 8] = *b"\x89TIC\r\n\x1a\n";
/// The major version this crate reads and writes.
pub const VERSION_MAJOR: u16 = 1;
/// The minor version this crate writes.
pub const VERSION_MINOR: u16 = 0;
/// Bytes in the preamble.
pub const PREAMBLE_LEN: usize = 48;

/// The fixed-size start of every artifact: where each section is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preamble {
    pub major: u16,
    pub minor: u16,
    pub header_len: u64,
    pub signature_len: u64,
    pub recipients_len: u64,
    pub payload_len: u64,
}

impl Preamble {
    pub fn to_bytes(&self) -> [u8; PREAMBLE_LEN] {
        let mut w = Writer::default();
        w.bytes(&MAGIC);
        w.u16(self.major);
        w.u16(self.minor);
        w.u32(0);
        w.u64(self.header_len);
        w.u64(self.signature_len);
        w.u64(self.recipients_len);
        w.u64(self.payload_len);
        w.buf.try_into().expect("preamble is 48 bytes")
    }

    /// Parses and checks the preamble against the file's real length.
    pub fn parse(bytes: &[u8; PREAMBLE_LEN], file_len: u64) -> Result<Self, FormatError> {
        let p = Preamble::parse_unsized(bytes)?;
        match p.total_len() {
            Some(e) if e == file_len => Ok(p),
            Some(e) => Err(FormatError::LengthMismatch {
                expected: e,
                actual: file_len,
            }),
            None => Err(FormatError::LengthMismatch {
                expected: u64::MAX,
                actual: file_len,
            }),
        }
    }

    /// The artifact's whole length as the preamble gives it, if it fits in
    /// a `u64`.
    pub fn total_len(&self) -> Option<u64> {
        [
            self.header_len,
            self.signature_len,
            self.recipients_len,
            self.payload_len,
        ]
        .iter()
        .try_fold(PREAMBLE_LEN as u64, |a, &b| a.checked_add(b))
    }

    /// Parses the preamble and checks everything but the artifact's length,
    /// for a reader of a stream, which checks that the stream ends at
    /// [`Preamble::total_len`] itself.
    pub fn parse_unsized(bytes: &[u8; PREAMBLE_LEN]) -> Result<Self, FormatError> {
        let mut r = Reader::new(bytes, "preamble");
        if r.array::<8>("magic")? != MAGIC {
            return Err(FormatError::BadMagic);
        }
        let major = r.u16("major")?;
        let minor = r.u16("minor")?;
        if major != VERSION_MAJOR {
            return Err(FormatError::UnsupportedVersion {
                major,
                minor,
                supported: VERSION_MAJOR,
            });
        }
        let flags = r.u32("flags")?;
        if flags != 0 {
            return Err(FormatError::NonZeroFlags { flags });
        }
        let p = Preamble {
            major,
            minor,
            header_len: r.u64("header_len")?,
            signature_len: r.u64("signature_len")?,
            recipients_len: r.u64("recipients_len")?,
            payload_len: r.u64("payload_len")?,
        };
        limit("header length", p.header_len, MAX_HEADER_LEN)?;
        limit(
            "recipients section length",
            p.recipients_len,
            MAX_RECIPIENTS_LEN,
        )?;
        if p.signature_len != 0 && p.signature_len != crate::sign::SIGNATURE_SECTION_LEN as u64 {
            return Err(FormatError::BadSignatureSection(
                "its length is neither 0 (unsigned) nor 98 bytes",
            ));
        }
        Ok(p)
    }

    pub fn header_offset(&self) -> u64 {
        PREAMBLE_LEN as u64
    }
    pub fn signature_offset(&self) -> u64 {
        self.header_offset() + self.header_len
    }
    pub fn recipients_offset(&self) -> u64 {
        self.signature_offset() + self.signature_len
    }
    pub fn payload_offset(&self) -> u64 {
        self.recipients_offset() + self.recipients_len
    }
}

/// Checks that an entry's run of `count` items starts where the previous
/// entry's ended (`*next`) and stays inside a table of `total` items;
/// advances `*next` and returns the run.
fn claim_run(
    owner: &str,
    item: &str,
    first: u32,
    count: u32,
    next: &mut u64,
    total: usize,
) -> Result<std::ops::Range<usize>, FormatError> {
    if first as u64 != *next {
        return Err(FormatError::Inconsistent(format!(
            "{owner} starts at {item} {first} but {next} was expected"
        )));
    }
    *next += count as u64;
    if *next > total as u64 {
        return Err(FormatError::Inconsistent(format!(
            "{owner} claims {item}s past the end of the {item} table"
        )));
    }
    Ok(first as usize..*next as usize)
}

/// A sum of lengths from a header for a message: `None` is one that
/// passed `u64` (a damaged or forged header).
fn bytes_sum(sum: Option<u64>) -> String {
    sum.map_or("more than 2^64 bytes".into(), |n| format!("{n} bytes"))
}

fn limit(what: &'static str, value: u64, limit: u64) -> Result<(), FormatError> {
    if value > limit {
        return Err(FormatError::LimitExceeded { what, value, limit });
    }
    Ok(())
}

/// How the payload is encrypted; recorded in the signed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Encryption {
    None,
    /// ChaCha20-Poly1305 STREAM under a key derived from the file key and
    /// `salt`; `commitment` binds every recipient to the same file key.
    ChaCha20Poly1305 {
        salt: [u8; 32],
        commitment: [u8; 32],
    },
}

/// What kind of file an entry restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// Any file, kept as one `U8` entry.
    Blob,
    /// A safetensors file: its header bytes plus one entry per tensor.
    Safetensors,
}

/// One original file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Relative, `/`-separated path.
    pub path: String,
    pub kind: FileKind,
    pub size: u64,
    pub sha256: [u8; 32],
    /// For safetensors files: the first `8 + N` bytes of the file exactly
    /// (length prefix, JSON, padding). Empty for blobs.
    pub st_header: Vec<u8>,
    pub first_tensor: u32,
    pub tensor_count: u32,
}

/// The error bound a lossy tensor was coded under, and what was measured.
#[derive(Clone, Debug, PartialEq)]
pub struct LossyRecord {
    /// 1 = pointwise relative bound, 2 = absolute bound.
    pub bound_kind: u8,
    pub bound: f64,
    pub max_abs: f64,
    pub max_rel: f64,
    pub mean_rel: f64,
    pub rms_rel: f64,
}

/// One tensor (or the contents of one blob).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorEntry {
    /// The safetensors name; empty for a blob.
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub codec: CodecSpec,
    /// Bytes of the original tensor data.
    pub orig_len: u64,
    /// SHA-256 of the original tensor bytes; for a lossy tensor, of the
    /// decoded bytes (what every reader gets).
    pub sha256: [u8; 32],
    pub first_chunk: u32,
    pub chunk_count: u32,
    /// Present exactly when the codec is lossy.
    pub lossy: Option<LossyRecord>,
}

impl TensorEntry {
    /// Elements in the tensor (checked product of the shape).
    pub fn elements(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d))
    }
}

/// One stored chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkEntry {
    /// Offset from the start of the payload.
    pub offset: u64,
    pub stored_len: u64,
    /// Bytes of original tensor data this chunk decodes to.
    pub orig_len: u64,
    /// SHA-256 of the stored bytes (ciphertext and tag when encrypted).
    pub sha256: [u8; 32],
}

/// A header extension kept as bytes (minor versions add them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extension {
    pub kind: u16,
    pub critical: bool,
    pub data: Vec<u8>,
}

/// The signed header: everything a reader needs except the chunk bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub creator: String,
    pub payload_len: u64,
    pub encryption: Encryption,
    pub files: Vec<FileEntry>,
    pub tensors: Vec<TensorEntry>,
    pub chunks: Vec<ChunkEntry>,
    pub extensions: Vec<Extension>,
}

const FILE_ENTRY_MIN: usize = 2 + 1 + 8 + 32 + 4 + 4 + 4;
const TENSOR_ENTRY_MIN: usize = 2 + 1 + 1 + 2 + 2 + 8 + 32 + 4 + 4 + 1;
/// Bytes of one chunk-table entry.
pub const CHUNK_ENTRY_LEN: usize = 8 + 8 + 8 + 32;

impl Header {
    /// Encodes the header (SPEC.md §4). The result is what gets signed.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(self.creator.len() as u8);
        w.bytes(self.creator.as_bytes());
        w.u64(self.payload_len);
        match &self.encryption {
            Encryption::None => w.u8(0),
            Encryption::ChaCha20Poly1305 { salt, commitment } => {
                w.u8(1);
                w.bytes(salt);
                w.bytes(commitment);
            }
        }
        w.u32(self.files.len() as u32);
        for f in &self.files {
            w.u16(f.path.len() as u16);
            w.bytes(f.path.as_bytes());
            w.u8(match f.kind {
                FileKind::Blob => 0,
                FileKind::Safetensors => 1,
            });
            w.u64(f.size);
            w.bytes(&f.sha256);
            w.u32(f.st_header.len() as u32);
            w.bytes(&f.st_header);
            w.u32(f.first_tensor);
            w.u32(f.tensor_count);
        }
        w.u32(self.tensors.len() as u32);
        for t in &self.tensors {
            w.u16(t.name.len() as u16);
            w.bytes(t.name.as_bytes());
            w.u8(t.dtype.code());
            w.u8(t.shape.len() as u8);
            for &d in &t.shape {
                w.u64(d);
            }
            w.u16(t.codec.id);
            w.u16(t.codec.params.len() as u16);
            w.bytes(&t.codec.params);
            w.u64(t.orig_len);
            w.bytes(&t.sha256);
            w.u32(t.first_chunk);
            w.u32(t.chunk_count);
            match &t.lossy {
                None => w.u8(0),
                Some(l) => {
                    w.u8(1);
                    w.u8(l.bound_kind);
                    for v in [l.bound, l.max_abs, l.max_rel, l.mean_rel, l.rms_rel] {
                        w.f64(v);
                    }
                }
            }
        }
        w.u32(self.chunks.len() as u32);
        for c in &self.chunks {
            w.u64(c.offset);
            w.u64(c.stored_len);
            w.u64(c.orig_len);
            w.bytes(&c.sha256);
        }
        w.u32(self.extensions.len() as u32);
        for e in &self.extensions {
            w.u16(e.kind);
            w.u8(e.critical as u8);
            w.u32(e.data.len() as u32);
            w.bytes(&e.data);
        }
        w.buf
    }

    /// Parses and fully checks a header (SPEC.md §4 and §7).
    pub fn parse(bytes: &[u8]) -> Result<Header, FormatError> {
        let mut r = Reader::new(bytes, "header");
        let creator_len = r.u8("creator_len")? as usize;
        let creator = r.string(creator_len, "creator")?;
        let payload_len = r.u64("payload_len")?;
        let encryption = match r.u8("encryption")? {
            0 => Encryption::None,
            1 => Encryption::ChaCha20Poly1305 {
                salt: r.array("salt")?,
                commitment: r.array("commitment")?,
            },
            v => {
                return Err(FormatError::UnknownValue {
                    what: "encryption algorithm",
                    value: v as u64,
                })
            }
        };

        let nfiles = r.count(MAX_FILES, FILE_ENTRY_MIN, "file count")?;
        let mut files = Vec::with_capacity(nfiles);
        for _ in 0..nfiles {
            let plen = r.u16("path_len")? as usize;
            let path = r.string(plen, "path")?;
            let kind = match r.u8("file kind")? {
                0 => FileKind::Blob,
                1 => FileKind::Safetensors,
                v => {
                    return Err(FormatError::UnknownValue {
                        what: "file kind",
                        value: v as u64,
                    })
                }
            };
            let size = r.u64("file size")?;
            let sha256 = r.array("file sha256")?;
            let hlen = r.u32("st_header_len")? as usize;
            limit(
                "safetensors header length",
                hlen as u64,
                MAX_ST_HEADER_LEN + 8,
            )?;
            let st_header = r.bytes(hlen, "st_header")?.to_vec();
            files.push(FileEntry {
                path,
                kind,
                size,
                sha256,
                st_header,
                first_tensor: r.u32("first_tensor")?,
                tensor_count: r.u32("tensor_count")?,
            });
        }

        let ntensors = r.count(MAX_TENSORS, TENSOR_ENTRY_MIN, "tensor count")?;
        let mut tensors = Vec::with_capacity(ntensors);
        for _ in 0..ntensors {
            let nlen = r.u16("name_len")? as usize;
            let name = r.string(nlen, "tensor name")?;
            let code = r.u8("dtype")?;
            let dtype = DType::from_code(code).ok_or_else(|| FormatError::UnknownDType {
                tensor: name.clone(),
                code,
            })?;
            let rank = r.u8("rank")? as usize;
            limit("tensor rank", rank as u64, MAX_RANK as u64)?;
            let mut shape = Vec::with_capacity(rank);
            for _ in 0..rank {
                shape.push(r.u64("dim")?);
            }
            let id = r.u16("codec id")?;
            let plen = r.u16("codec params_len")? as usize;
            limit(
                "codec parameter length",
                plen as u64,
                MAX_CODEC_PARAMS_LEN as u64,
            )?;
            let params = r.bytes(plen, "codec params")?.to_vec();
            let orig_len = r.u64("orig_len")?;
            let sha256 = r.array("tensor sha256")?;
            let first_chunk = r.u32("first_chunk")?;
            let chunk_count = r.u32("chunk_count")?;
            let lossy = match r.u8("lossy flag")? {
                0 => None,
                1 => {
                    let bound_kind = r.u8("bound kind")?;
                    let mut v = [0f64; 5];
                    for x in &mut v {
                        *x = r.f64("lossy figure")?;
                    }
                    Some(LossyRecord {
                        bound_kind,
                        bound: v[0],
                        max_abs: v[1],
                        max_rel: v[2],
                        mean_rel: v[3],
                        rms_rel: v[4],
                    })
                }
                v => {
                    return Err(FormatError::UnknownValue {
                        what: "lossy flag",
                        value: v as u64,
                    })
                }
            };
            tensors.push(TensorEntry {
                name,
                dtype,
                shape,
                codec: CodecSpec { id, params },
                orig_len,
                sha256,
                first_chunk,
                chunk_count,
                lossy,
            });
        }

        let nchunks = r.count(MAX_CHUNKS, CHUNK_ENTRY_LEN, "chunk count")?;
        let mut chunks = Vec::with_capacity(nchunks);
        for _ in 0..nchunks {
            chunks.push(ChunkEntry {
                offset: r.u64("chunk offset")?,
                stored_len: r.u64("chunk stored_len")?,
                orig_len: r.u64("chunk orig_len")?,
                sha256: r.array("chunk sha256")?,
            });
        }

        let next = r.count(MAX_EXTENSIONS, 7, "extension count")?;
        let mut extensions = Vec::with_capacity(next);
        for _ in 0..next {
            let kind = r.u16("extension kind")?;
            let critical = match r.u8("extension flags")? {
                0 => false,
                1 => true,
                v => {
                    return Err(FormatError::UnknownValue {
                        what: "extension flags",
                        value: v as u64,
                    })
                }
            };
            let len = r.u32("extension length")? as usize;
            let data = r.bytes(len, "extension data")?.to_vec();
            if critical {
                return Err(FormatError::UnknownCriticalExtension { kind });
            }
            extensions.push(Extension {
                kind,
                critical,
                data,
            });
        }
        r.finish()?;

        let h = Header {
            creator,
            payload_len,
            encryption,
            files,
            tensors,
            chunks,
            extensions,
        };
        h.check()?;
        Ok(h)
    }

    /// The cross-reference rules of SPEC.md §7. `parse` calls it; writers
    /// call it too before they sign.
    pub fn check(&self) -> Result<(), FormatError> {
        let bad = |m: String| Err(FormatError::Inconsistent(m));
        if self.creator.len() > MAX_CREATOR_LEN {
            return bad("creator string longer than 255 bytes".into());
        }
        check_path_set(self.files.iter().map(|f| f.path.as_str()))?;

        // Files own consecutive runs of tensors, in order, covering all.
        let mut next_tensor = 0u64;
        for f in &self.files {
            let owner = format!("file {:?}", f.path);
            let run = claim_run(
                &owner,
                "tensor",
                f.first_tensor,
                f.tensor_count,
                &mut next_tensor,
                self.tensors.len(),
            )?;
            let ts = &self.tensors[run];
            // None: the lengths add up past u64 (a damaged or forged header).
            let total = ts
                .iter()
                .try_fold(f.st_header.len() as u64, |a, t| a.checked_add(t.orig_len));
            match f.kind {
                FileKind::Blob => {
                    if ts.len() != 1
                        || ts[0].dtype != DType::U8
                        || !ts[0].name.is_empty()
                        || ts[0].shape.len() != 1
                        || !f.st_header.is_empty()
                    {
                        return bad(format!(
                            "blob file {:?} must have exactly one unnamed U8 entry of shape [size] and no safetensors header",
                            f.path
                        ));
                    }
                }
                FileKind::Safetensors => {
                    let Some((prefix, json)) = f.st_header.split_first_chunk::<8>() else {
                        return bad(format!("safetensors file {:?} has no header bytes", f.path));
                    };
                    if u64::from_le_bytes(*prefix) != json.len() as u64 {
                        return bad(format!(
                            "safetensors file {:?}: its header's length prefix says {} bytes but {} follow it",
                            f.path,
                            u64::from_le_bytes(*prefix),
                            json.len()
                        ));
                    }
                    let mut names = std::collections::HashSet::new();
                    for t in ts {
                        if !names.insert(t.name.as_str()) {
                            return bad(format!(
                                "tensor name {:?} repeats in file {:?}",
                                t.name, f.path
                            ));
                        }
                    }
                }
            }
            if total != Some(f.size) {
                return bad(format!(
                    "file {:?} has size {} but its header bytes and tensors add up to {}",
                    f.path,
                    f.size,
                    bytes_sum(total)
                ));
            }
        }
        if next_tensor != self.tensors.len() as u64 {
            return bad("some tensors belong to no file".into());
        }

        // Tensors own consecutive runs of chunks, in order, covering all.
        let mut next_chunk = 0u64;
        for t in &self.tensors {
            let elems = t.elements().ok_or_else(|| {
                FormatError::Inconsistent(format!("tensor `{}`: shape product overflows", t.name))
            })?;
            if t.dtype.byte_len(elems) != Some(t.orig_len) {
                return bad(format!(
                    "tensor `{}`: shape {:?} of {} does not make {} bytes",
                    t.name, t.shape, t.dtype, t.orig_len
                ));
            }
            t.codec
                .validate(t.dtype.size())
                .map_err(|source| FormatError::Codec {
                    tensor: t.name.clone(),
                    source,
                })?;
            if let Some(d) = crate::codec::lossy_dtype(&t.codec) {
                if d != t.dtype {
                    return bad(format!(
                        "tensor `{}`: its lossy codec is for {d} but the tensor is {}",
                        t.name, t.dtype
                    ));
                }
            }
            if t.codec.is_lossless() != t.lossy.is_none() {
                return bad(format!(
                    "tensor `{}`: a lossy record must be present exactly when the codec is lossy",
                    t.name
                ));
            }
            if let Some(l) = &t.lossy {
                // The record states the bound the codec guarantees, and
                // measured figures are plain non-negative numbers.
                if crate::codec::lossy_bound(&t.codec) != Some((l.bound_kind, l.bound)) {
                    return bad(format!(
                        "tensor `{}`: its lossy record says bound kind {} bound {:e}, not what codec {} guarantees",
                        t.name,
                        l.bound_kind,
                        l.bound,
                        t.codec.name()
                    ));
                }
                let figures = [l.max_abs, l.max_rel, l.mean_rel, l.rms_rel];
                if figures.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                    return bad(format!(
                        "tensor `{}`: its lossy record holds a negative or non-finite error figure",
                        t.name
                    ));
                }
            }
            let owner = format!("tensor `{}`", t.name);
            let run = claim_run(
                &owner,
                "chunk",
                t.first_chunk,
                t.chunk_count,
                &mut next_chunk,
                self.chunks.len(),
            )?;
            let cs = &self.chunks[run];
            let mut sum = Some(0u64);
            for c in cs {
                if c.orig_len == 0 || c.orig_len % t.dtype.size() as u64 != 0 {
                    return bad(format!(
                        "tensor `{}`: a chunk of {} bytes is empty or not whole units of its dtype",
                        t.name, c.orig_len
                    ));
                }
                sum = sum.and_then(|s| s.checked_add(c.orig_len));
            }
            if sum != Some(t.orig_len) {
                return bad(format!(
                    "tensor `{}`: its chunks decode to {}, not {} bytes",
                    t.name,
                    bytes_sum(sum),
                    t.orig_len
                ));
            }
        }
        if next_chunk != self.chunks.len() as u64 {
            return bad("some chunks belong to no tensor".into());
        }

        // The payload is the chunks, back to back: no holes, no overlaps.
        let mut offset = 0u64;
        let min_stored = match self.encryption {
            Encryption::None => 0,
            Encryption::ChaCha20Poly1305 { .. } => crate::crypto::TAG_LEN as u64,
        };
        for (i, c) in self.chunks.iter().enumerate() {
            if c.offset != offset {
                return bad(format!(
                    "chunk {i} is at payload offset {} but {offset} was expected",
                    c.offset
                ));
            }
            limit("chunk original length", c.orig_len, MAX_CHUNK_ORIG_LEN)?;
            limit("chunk stored length", c.stored_len, MAX_CHUNK_STORED_LEN)?;
            if c.stored_len < min_stored {
                return bad(format!("chunk {i} is shorter than an authentication tag"));
            }
            offset += c.stored_len;
        }
        if offset != self.payload_len {
            return bad(format!(
                "the chunks fill {offset} bytes of payload but the header says {}",
                self.payload_len
            ));
        }
        Ok(())
    }

    /// The tensors of one file.
    /// (Empty for an entry that is not this header's and points past its
    /// tables.)
    pub fn file_tensors(&self, file: &FileEntry) -> &[TensorEntry] {
        let first = file.first_tensor as usize;
        first
            .checked_add(file.tensor_count as usize)
            .and_then(|end| self.tensors.get(first..end))
            .unwrap_or(&[])
    }

    /// The chunks of one tensor, with their global indices (none for an
    /// entry that is not this header's and points past its chunk table).
    pub fn tensor_chunks(&self, t: &TensorEntry) -> impl Iterator<Item = (u64, &ChunkEntry)> {
        let first = t.first_chunk as usize;
        first
            .checked_add(t.chunk_count as usize)
            .and_then(|end| self.chunks.get(first..end))
            .unwrap_or(&[])
            .iter()
            .enumerate()
            .map(move |(i, c)| ((first + i) as u64, c))
    }

    /// Names of the tensors coded lossily.
    pub fn lossy_tensor_names(&self) -> Vec<&str> {
        self.tensors
            .iter()
            .filter(|t| t.lossy.is_some())
            .map(|t| t.name.as_str())
            .collect()
    }

    /// Whether every tensor decodes bit for bit.
    pub fn all_lossless(&self) -> bool {
        self.tensors.iter().all(|t| t.lossy.is_none())
    }

    pub fn is_encrypted(&self) -> bool {
        self.encryption != Encryption::None
    }
}

#[cfg(test)]
mod tests;
