//! Compiling input files into an artifact.
//!
//! Planning reads only headers and a few sample chunks per tensor. Then
//! windows of chunks are read, encoded, encrypted and hashed in parallel
//! while the previous window is written, straight into a temporary file at
//! offsets known in advance (every header field has a size known before
//! encoding). The header, signature and recipients go in last, and the
//! temporary file is renamed onto the output.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use rayon::prelude::*;
use tic_format::codec::{self, CodecSpec, TILE_SYMBOLS};
use tic_format::crypto::{self, PayloadKey, Recipient, RecipientsSection};
use tic_format::header::{Preamble, VERSION_MAJOR, VERSION_MINOR};
use tic_format::sign::{SignatureSection, SIGNATURE_SECTION_LEN};
use tic_format::{ChunkEntry, DType, Encryption, FileEntry, FileKind, Header, TensorEntry};
use tic_runtime::Progress;

use crate::error::CompileError;
use crate::input::{discover, InputFile, InputKind};

/// Original bytes per chunk unless told otherwise.
pub const DEFAULT_CHUNK_BYTES: u64 = 1 << 20;
/// Original bytes encoded per window: small enough that hashing and
/// writing one window overlaps encoding the next, and bounds memory.
const WINDOW_BYTES: u64 = 8 << 20;
/// One-tile slices sampled per tensor to choose its codec.
const SAMPLE_SLICES: u64 = 4;

/// How to compile.
pub struct CompileOptions {
    /// Sign with this key; `None` leaves the artifact unsigned.
    pub signing_key: Option<SigningKey>,
    /// Encrypt to these recipients; empty leaves the payload in the clear.
    pub recipients: Vec<Recipient>,
    /// Target original bytes per chunk (rounded to whole tiles).
    pub chunk_bytes: u64,
    /// Replace an existing output.
    pub force: bool,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            signing_key: None,
            recipients: Vec::new(),
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            force: false,
        }
    }
}

/// What a compile produced.
#[derive(Clone, Debug)]
pub struct CompileReport {
    pub output: PathBuf,
    pub files: usize,
    pub tensors: usize,
    pub chunks: usize,
    pub original_bytes: u64,
    pub artifact_bytes: u64,
    /// Fingerprint of the signing key, if signed.
    pub signer: Option<String>,
    pub recipients: usize,
}

struct PlannedTensor {
    file: usize,
    name: String,
    dtype: DType,
    shape: Vec<u64>,
    /// Absolute offset of the tensor's data in its file.
    offset: u64,
    len: u64,
    codec: CodecSpec,
    /// (absolute offset, length) of each chunk.
    chunks: Vec<(u64, u64)>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CompileError + '_ {
    move |source| CompileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn chunk_elems(elem: usize, chunk_bytes: u64) -> u64 {
    let want = (chunk_bytes / elem as u64).max(1);
    let tile = TILE_SYMBOLS as u64;
    want.div_ceil(tile) * tile
}

/// Compiles `input` (a file or a model directory) into the artifact `output`.
pub fn compile(
    input: &Path,
    output: &Path,
    opts: &CompileOptions,
    progress: &dyn Progress,
) -> Result<CompileReport, CompileError> {
    if output.symlink_metadata().is_ok() && !opts.force {
        return Err(CompileError::OutputExists {
            path: output.to_path_buf(),
        });
    }
    let inputs = discover(input)?;
    if inputs.len() > tic_format::limits::MAX_FILES as usize {
        return Err(CompileError::Unsupported {
            path: input.to_path_buf(),
            what: format!("{} files, over the limit of 65536", inputs.len()),
        });
    }
    let handles: Vec<File> = inputs
        .iter()
        .map(|f| File::open(&f.path).map_err(io(&f.path)))
        .collect::<Result<_, _>>()?;
    let plan = plan_tensors(&inputs, &handles, opts.chunk_bytes)?;

    // Encryption is set up before encoding so every length is known.
    let (encryption, key, recipients_bytes) = if opts.recipients.is_empty() {
        (Encryption::None, None, Vec::new())
    } else {
        let file_key = crypto::random_file_key()?;
        let salt = crypto::random_salt()?;
        let (key, commitment) = crypto::derive(&file_key, &salt);
        let section = RecipientsSection::wrap(&file_key, &opts.recipients)?;
        (
            Encryption::ChaCha20Poly1305 { salt, commitment },
            Some(key),
            section.to_bytes(),
        )
    };

    let mut header = skeleton_header(&inputs, &plan, encryption);
    let header_len = header.to_bytes().len() as u64;
    let sig_len = if opts.signing_key.is_some() {
        SIGNATURE_SECTION_LEN as u64
    } else {
        0
    };
    let payload_offset = tic_format::header::PREAMBLE_LEN as u64
        + header_len
        + sig_len
        + recipients_bytes.len() as u64;

    let out_dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".tic-")
        .suffix(".partial")
        .permissions(artifact_permissions())
        .tempfile_in(&out_dir)
        .map_err(io(&out_dir))?;

    let total: u64 = inputs.iter().map(|f| f.size).sum();
    progress.start("compiling", total);
    let (chunks, file_hashes, tensor_hashes) = encode_payload(
        &inputs,
        &handles,
        &plan,
        key.as_ref(),
        tmp.as_file(),
        payload_offset,
        progress,
    )?;

    // Fill in what encoding and hashing found.
    for (f, h) in header.files.iter_mut().zip(&file_hashes) {
        f.sha256 = *h;
    }
    for (t, h) in header.tensors.iter_mut().zip(&tensor_hashes) {
        t.sha256 = *h;
    }
    header.payload_len = chunks.iter().map(|c| c.stored_len).sum();
    header.chunks = chunks;
    header
        .check()
        .map_err(|e| CompileError::Internal(format!("the header we wrote does not check: {e}")))?;
    let header_bytes = header.to_bytes();
    if header_bytes.len() as u64 != header_len {
        return Err(CompileError::Internal(
            "header length changed after encoding".into(),
        ));
    }
    let preamble = Preamble {
        major: VERSION_MAJOR,
        minor: VERSION_MINOR,
        header_len,
        signature_len: sig_len,
        recipients_len: recipients_bytes.len() as u64,
        payload_len: header.payload_len,
    };
    let signature = opts
        .signing_key
        .as_ref()
        .map(|k| SignatureSection::sign(k, VERSION_MAJOR, VERSION_MINOR, &header_bytes));
    let mut front = preamble.to_bytes().to_vec();
    front.extend_from_slice(&header_bytes);
    if let Some(s) = &signature {
        front.extend_from_slice(&s.to_bytes());
    }
    front.extend_from_slice(&recipients_bytes);
    let tmp_path = tmp.path().to_path_buf();
    tmp.as_file()
        .write_all_at(&front, 0)
        .map_err(io(&tmp_path))?;
    tmp.as_file().sync_all().map_err(io(&tmp_path))?;
    let artifact_bytes = payload_offset + header.payload_len;

    persist(tmp, output, opts.force)?;
    Ok(CompileReport {
        output: output.to_path_buf(),
        files: header.files.len(),
        tensors: header.tensors.iter().filter(|t| !t.name.is_empty()).count(),
        chunks: header.chunks.len(),
        original_bytes: total,
        artifact_bytes,
        signer: signature.map(|s| s.fingerprint()),
        recipients: opts.recipients.len(),
    })
}

/// Artifacts are not secret (encrypted ones are safe to share): readable by
/// all, like any file a compiler writes (temporary files default to 0600).
pub(crate) fn artifact_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o644)
}

/// Renames a finished temporary file onto `output`.
pub(crate) fn persist(
    tmp: tempfile::NamedTempFile,
    output: &Path,
    force: bool,
) -> Result<(), CompileError> {
    let r = if force {
        tmp.persist(output)
    } else {
        tmp.persist_noclobber(output)
    };
    r.map(|_| ()).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            CompileError::OutputExists {
                path: output.to_path_buf(),
            }
        } else {
            CompileError::Io {
                path: output.to_path_buf(),
                source: e.error,
            }
        }
    })
}

fn plan_tensors(
    inputs: &[InputFile],
    handles: &[File],
    chunk_bytes: u64,
) -> Result<Vec<PlannedTensor>, CompileError> {
    let mut plan = Vec::new();
    for (fi, f) in inputs.iter().enumerate() {
        match &f.kind {
            InputKind::Blob => plan.push(PlannedTensor {
                file: fi,
                name: String::new(),
                dtype: DType::U8,
                shape: vec![f.size],
                offset: 0,
                len: f.size,
                codec: CodecSpec::raw(),
                chunks: Vec::new(),
            }),
            InputKind::Safetensors { st_header, tensors } => {
                for t in tensors {
                    plan.push(PlannedTensor {
                        file: fi,
                        name: t.name.clone(),
                        dtype: t.dtype,
                        shape: t.shape.clone(),
                        offset: st_header.len() as u64 + t.begin,
                        len: t.end - t.begin,
                        codec: CodecSpec::raw(),
                        chunks: Vec::new(),
                    })
                }
            }
        }
    }
    if plan.len() > tic_format::limits::MAX_TENSORS as usize {
        return Err(CompileError::Unsupported {
            path: inputs[0].path.clone(),
            what: format!(
                "{} tensors, over the limit of {}",
                plan.len(),
                tic_format::limits::MAX_TENSORS
            ),
        });
    }
    plan.par_iter_mut().try_for_each(|t| {
        let elem = t.dtype.size();
        let step = chunk_elems(elem, chunk_bytes) * elem as u64;
        let mut at = 0;
        while at < t.len {
            let n = step.min(t.len - at);
            t.chunks.push((t.offset + at, n));
            at += n;
        }
        if t.chunks.is_empty() {
            return Ok::<(), CompileError>(());
        }
        // Choose the codec on a sample: a few one-tile slices spread over
        // the tensor (a histogram of 256Ki elements predicts the coded size
        // of the whole as well as the whole does, at a fraction of the cost).
        let slice = (TILE_SYMBOLS * elem) as u64;
        let picks: Vec<u64> = if t.len <= slice * SAMPLE_SLICES {
            vec![t.offset]
        } else {
            (0..SAMPLE_SLICES)
                .map(|i| {
                    t.offset
                        + (i * (t.len - slice) / (SAMPLE_SLICES - 1)) / elem as u64 * elem as u64
                })
                .collect()
        };
        let per = if picks.len() == 1 { t.len } else { slice };
        let mut sample = vec![0u8; (per * picks.len() as u64) as usize];
        for (k, off) in picks.iter().enumerate() {
            let at = k * per as usize;
            handles[t.file]
                .read_exact_at(&mut sample[at..at + per as usize], *off)
                .map_err(io(&inputs[t.file].path))?;
        }
        t.codec = codec::choose_codec(
            elem,
            t.dtype.is_float(),
            &sample,
            chunk_elems(elem, chunk_bytes) as usize,
        );
        Ok(())
    })?;
    let nchunks: usize = plan.iter().map(|t| t.chunks.len()).sum();
    if nchunks > tic_format::limits::MAX_CHUNKS as usize {
        return Err(CompileError::Unsupported {
            path: inputs[0].path.clone(),
            what: format!("{nchunks} chunks, over the limit; use a larger --chunk-size"),
        });
    }
    Ok(plan)
}

/// A header with every entry in place and the digests and chunk lengths
/// still zero: it has the final length already.
fn skeleton_header(inputs: &[InputFile], plan: &[PlannedTensor], encryption: Encryption) -> Header {
    let mut files = Vec::with_capacity(inputs.len());
    let mut tensors = Vec::with_capacity(plan.len());
    let mut chunks = Vec::new();
    let mut ti = 0usize;
    for (fi, f) in inputs.iter().enumerate() {
        let first_tensor = ti as u32;
        while ti < plan.len() && plan[ti].file == fi {
            let t = &plan[ti];
            tensors.push(TensorEntry {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                codec: t.codec.clone(),
                orig_len: t.len,
                sha256: [0; 32],
                first_chunk: chunks.len() as u32,
                chunk_count: t.chunks.len() as u32,
                lossy: None,
            });
            for &(_, n) in &t.chunks {
                chunks.push(ChunkEntry {
                    offset: 0,
                    stored_len: 0,
                    orig_len: n,
                    sha256: [0; 32],
                });
            }
            ti += 1;
        }
        let (kind, st_header) = match &f.kind {
            InputKind::Blob => (FileKind::Blob, Vec::new()),
            InputKind::Safetensors { st_header, .. } => (FileKind::Safetensors, st_header.clone()),
        };
        files.push(FileEntry {
            path: f.rel.clone(),
            kind,
            size: f.size,
            sha256: [0; 32],
            st_header,
            first_tensor,
            tensor_count: ti as u32 - first_tensor,
        });
    }
    Header {
        creator: format!("tic {}", env!("CARGO_PKG_VERSION")),
        payload_len: 0,
        encryption,
        files,
        tensors,
        chunks,
        extensions: Vec::new(),
    }
}

/// Encodes (and encrypts) every chunk, writing the payload at
/// `payload_offset` of `out`. Windows of chunks are read, encoded and
/// hashed in parallel while the previous window is written in order; the
/// writer also feeds each chunk's original bytes to its file's and its
/// tensor's SHA-256, so every input byte is read once. Returns the chunk
/// table and the digests of the files and tensors.
#[allow(clippy::type_complexity)]
fn encode_payload(
    inputs: &[InputFile],
    handles: &[File],
    plan: &[PlannedTensor],
    key: Option<&PayloadKey>,
    out: &File,
    payload_offset: u64,
    progress: &dyn Progress,
) -> Result<(Vec<ChunkEntry>, Vec<[u8; 32]>, Vec<[u8; 32]>), CompileError> {
    use ring::digest::{Context, SHA256};
    struct Job<'a> {
        tensor: &'a PlannedTensor,
        /// Index of the tensor in `plan`.
        t: usize,
        offset: u64,
        len: u64,
        index: u64,
    }
    let jobs: Vec<Job> = plan
        .iter()
        .enumerate()
        .flat_map(|(ti, t)| {
            t.chunks
                .iter()
                .map(move |&(offset, len)| (ti, t, offset, len))
        })
        .enumerate()
        .map(|(i, (t, tensor, offset, len))| Job {
            tensor,
            t,
            offset,
            len,
            index: i as u64,
        })
        .collect();
    let total = jobs.len() as u64;
    // Every file's digest starts with its safetensors header bytes; its
    // tensors follow in data order, which is chunk order.
    let mut file_ctx: Vec<Context> = inputs
        .iter()
        .map(|f| {
            let mut c = Context::new(&SHA256);
            if let InputKind::Safetensors { st_header, .. } = &f.kind {
                c.update(st_header);
            }
            c
        })
        .collect();
    let mut tensor_ctx: Vec<Context> = plan.iter().map(|_| Context::new(&SHA256)).collect();
    let mut windows: Vec<&[Job]> = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, j) in jobs.iter().enumerate() {
        if bytes >= WINDOW_BYTES {
            windows.push(&jobs[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += j.len;
    }
    if start < jobs.len() {
        windows.push(&jobs[start..]);
    }

    // (stored bytes, their SHA-256, original bytes) per chunk.
    type Encoded = (Vec<u8>, [u8; 32], Vec<u8>);
    let encode = |w: &[Job]| -> Result<Vec<Encoded>, CompileError> {
        w.par_iter()
            .map(|j| {
                let path = &inputs[j.tensor.file].path;
                let mut orig = vec![0u8; j.len as usize];
                handles[j.tensor.file]
                    .read_exact_at(&mut orig, j.offset)
                    .map_err(io(path))?;
                let coded = codec::encode_chunk(&j.tensor.codec, j.tensor.dtype.size(), &orig)
                    .map_err(|source| CompileError::Codec {
                        path: path.clone(),
                        tensor: j.tensor.name.clone(),
                        source,
                    })?;
                let stored = match key {
                    Some(k) => crypto::seal_chunk(k, j.index, j.index + 1 == total, &coded),
                    None => coded,
                };
                let digest = tic_format::sha256(&stored);
                progress.advance(j.len);
                Ok((stored, digest, orig))
            })
            .collect()
    };

    let path = Path::new("(temporary artifact)");
    let mut writer = std::io::BufWriter::with_capacity(4 << 20, out);
    writer
        .seek(SeekFrom::Start(payload_offset))
        .map_err(io(path))?;
    let mut table = Vec::with_capacity(jobs.len());
    let mut offset = 0u64;
    let mut pending = match windows.first() {
        Some(w) => Some(encode(w)?),
        None => None,
    };
    for k in 0..windows.len() {
        let done = pending.take().expect("window encoded");
        let (written, next) = rayon::join(
            || -> Result<Vec<ChunkEntry>, CompileError> {
                let mut entries = Vec::with_capacity(done.len());
                let mut at = offset;
                for ((stored, sha256, orig), j) in done.iter().zip(windows[k]) {
                    writer.write_all(stored).map_err(io(path))?;
                    file_ctx[j.tensor.file].update(orig);
                    tensor_ctx[j.t].update(orig);
                    entries.push(ChunkEntry {
                        offset: at,
                        stored_len: stored.len() as u64,
                        orig_len: orig.len() as u64,
                        sha256: *sha256,
                    });
                    at += stored.len() as u64;
                }
                Ok(entries)
            },
            || windows.get(k + 1).map(|w| encode(w)),
        );
        let entries = written?;
        offset += entries.iter().map(|e| e.stored_len).sum::<u64>();
        table.extend(entries);
        pending = next.transpose()?;
    }
    writer.flush().map_err(io(path))?;
    let digest = |c: Context| -> [u8; 32] { c.finish().as_ref().try_into().expect("32 bytes") };
    Ok((
        table,
        file_ctx.into_iter().map(digest).collect(),
        tensor_ctx.into_iter().map(digest).collect(),
    ))
}
