//! Compiling input files into an artifact.
//!
//! Planning reads only headers and a few sample chunks per tensor. Then
//! windows of chunks are read, encoded, encrypted and hashed in parallel
//! while the previous window is written, straight into a temporary file at
//! offsets known in advance (every header field has a size known before
//! encoding). The digests of the input files and tensors need no codec:
//! they are taken from the start, beside planning and encoding. The header,
//! signature and recipients go in last, once the inputs are known not to
//! have changed meanwhile, and the temporary file is renamed onto the
//! output.
//!
//! Tensors that a `--lossy` rule selects get codec 2 or 3. Their chunks are
//! decoded again right after encoding: every element is checked against its
//! bound (a violation is an internal error, never written), the errors are
//! measured for the header's lossy record, and the tensor's SHA-256 and the
//! SHA-256 of each file holding a lossy tensor are taken over the decoded
//! bytes, i.e. over what a reader restores.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ed25519_dalek::SigningKey;
use rayon::prelude::*;
use tic_format::codec::{self, CodecSpec, ErrorStats, TILE_SYMBOLS};
use tic_format::crypto::{self, PayloadKey, Recipient, RecipientsSection};
use tic_format::header::{Preamble, VERSION_MAJOR, VERSION_MINOR};
use tic_format::sign::{SignatureSection, SIGNATURE_SECTION_LEN};
use tic_format::{
    ChunkEntry, DType, Encryption, FileEntry, FileKind, Header, LossyRecord, TensorEntry,
};
use tic_runtime::buffers::BufferPool;
use tic_runtime::Progress;

use crate::error::{io, CompileError, OutputError};
use crate::input::{check_shard_indexes, discover, Exclude, Excluded, InputFile, InputKind};
use crate::lossy::LossyRules;

/// Original bytes per chunk unless told otherwise.
pub const DEFAULT_CHUNK_BYTES: u64 = 1 << 20;
/// Original bytes encoded per window (bounds memory).
const WINDOW_BYTES: u64 = 2 << 20;
/// Chunks sampled per tensor to choose its codec.
const SAMPLE_CHUNKS: u64 = 4;

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
    /// Lossy rules (`--lossy`); `None` keeps every tensor lossless.
    pub lossy: Option<LossyRules>,
    /// Files and folders of a model directory to leave out (`--exclude`).
    pub exclude: Vec<Exclude>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            signing_key: None,
            recipients: Vec::new(),
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            force: false,
            lossy: None,
            exclude: Vec::new(),
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
    /// Lossy-coded tensors: name, codec name and lossy record.
    pub lossy: Vec<(String, String, LossyRecord)>,
    /// What `--exclude` left out of the model directory.
    pub excluded: Vec<Excluded>,
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

/// `errno` for "too many open files" (the same on Linux and macOS).
const EMFILE: i32 = 24;

/// The caller's request to stop (see [`Progress::cancelled`]), asked
/// between chunks, as the error that reports it.
struct Stop<'a> {
    progress: &'a dyn Progress,
    output: &'a Path,
}

impl Stop<'_> {
    fn check(&self) -> Result<(), CompileError> {
        if self.progress.cancelled() {
            return Err(OutputError::Interrupted {
                path: self.output.to_path_buf(),
            }
            .into());
        }
        Ok(())
    }
}

/// A failed write of the artifact being made for `output`.
pub(crate) fn write_err(output: &Path) -> impl Fn(std::io::Error) -> OutputError + Copy + '_ {
    move |source| OutputError::Write {
        path: output.to_path_buf(),
        source,
    }
}

fn chunk_elems(elem: usize, chunk_bytes: u64) -> u64 {
    let want = (chunk_bytes / elem as u64).max(1);
    let tile = TILE_SYMBOLS as u64;
    want.div_ceil(tile) * tile
}

/// Compiles `input` (a file or a model directory) into the artifact `output`
/// (a directory gives every file under it, less a `.git`, huggingface_hub's
/// `.cache/huggingface`, `output` itself, tic's temporaries and what
/// `opts.exclude` matches). It is
/// written beside `output` and renamed into place when complete; once
/// `progress.cancelled()` says so, the compile stops with
/// [`OutputError::Interrupted`] and leaves nothing behind.
pub fn compile(
    input: &Path,
    output: &Path,
    opts: &CompileOptions,
    progress: &dyn Progress,
) -> Result<CompileReport, CompileError> {
    // An existing directory, or a name ending in `/` (or `/.`, `/..`).
    let names_dir =
        output.as_os_str().as_encoded_bytes().ends_with(b"/") || output.file_name().is_none();
    if output.is_dir() || names_dir {
        return Err(CompileError::OutputIsDirectory {
            path: output.to_path_buf(),
        });
    }
    if output.symlink_metadata().is_ok() && !opts.force {
        return Err(OutputError::Exists {
            path: output.to_path_buf(),
        }
        .into());
    }
    // Checked before the work, not found when the output is written.
    output_dir(output)?;
    let started = Instant::now();
    let (inputs, excluded) = discover(input, output, &opts.exclude)?;
    check_shard_indexes(&inputs, &excluded)?;
    if inputs.len() > tic_format::limits::MAX_FILES as usize {
        return Err(CompileError::Unsupported {
            path: input.to_path_buf(),
            what: format!("{} files, over the limit of 65536", inputs.len()),
        });
    }
    // Every input stays open until the end, so that a file changed or
    // replaced meanwhile is noticed (`check_unchanged`).
    let handles: Vec<File> = inputs
        .iter()
        .map(|f| {
            File::open(&f.path).map_err(|source| {
                if source.raw_os_error() == Some(EMFILE) {
                    CompileError::TooManyOpenFiles {
                        path: f.path.clone(),
                        files: inputs.len(),
                    }
                } else {
                    io(&f.path)(source)
                }
            })
        })
        .collect::<Result<_, _>>()?;
    let mut plan = lay_out_tensors(&inputs, opts.chunk_bytes)?;
    let spans: Vec<Span> = plan
        .iter()
        .map(|t| Span {
            file: t.file,
            offset: t.offset,
            len: t.len,
        })
        .collect();
    let total: u64 = inputs.iter().map(|f| f.size).sum();
    let named = plan.iter().filter(|t| !t.name.is_empty()).count();
    tracing::info!(
        "{}: {} files ({} safetensors), {named} tensors in {} chunks, {total} bytes",
        input.display(),
        inputs.len(),
        inputs
            .iter()
            .filter(|f| matches!(f.kind, InputKind::Safetensors { .. }))
            .count(),
        plan.iter().map(|t| t.chunks.len()).sum::<usize>(),
    );
    if !inputs
        .iter()
        .any(|f| matches!(f.kind, InputKind::Safetensors { .. }))
    {
        tracing::warn!(
            "{}: no *.safetensors file in it, so no tensors: its {} file(s) are stored \
             as plain files (is this the model's directory?)",
            input.display(),
            inputs.len()
        );
    }
    progress.start("compiling", total);
    let stop = Stop { progress, output };
    // The digests of the inputs need no codec: they are taken while the
    // codecs are chosen and the payload is encoded, so that a second core
    // is busy from the start. A failure there stops the hashing early.
    let failed = AtomicBool::new(false);
    let (hashes, encoded) = rayon::join(
        || {
            let t = Instant::now();
            let r = hash_inputs(&inputs, &handles, &spans, &failed, &stop);
            if r.is_ok() {
                tracing::info!(
                    "hashed {} files and {named} tensors in {:.1?}",
                    inputs.len(),
                    t.elapsed()
                );
            }
            r
        },
        || {
            let t = Instant::now();
            let r = choose_codecs(
                &mut plan,
                &inputs,
                &handles,
                opts.chunk_bytes,
                opts.lossy.as_ref(),
                &stop,
            )
            .and_then(|()| {
                log_codecs(&inputs, &plan, named, t.elapsed());
                let t = Instant::now();
                let r = encode_to_temporary(&inputs, &handles, &plan, opts, &stop);
                if let Ok(s) = &r {
                    let stored: u64 = s.encoded.chunks.iter().map(|c| c.stored_len).sum();
                    tracing::info!(
                        "encoded {} chunks, {} -> {} bytes, in {:.1?}",
                        s.encoded.chunks.len(),
                        total,
                        stored,
                        t.elapsed()
                    );
                }
                r
            });
            if r.is_err() {
                failed.store(true, Ordering::Relaxed);
            }
            r
        },
    );
    progress.finish();
    let Staged {
        mut header,
        header_len,
        sig_len,
        payload_offset,
        recipients_bytes,
        tmp,
        encoded,
    } = encoded?;
    let (file_hashes, tensor_hashes) = hashes?;
    // The inputs were read more than once (samples, digests, chunks): all
    // of it describes one state of each file only if none changed.
    for (f, h) in inputs.iter().zip(&handles) {
        f.check_unchanged(h)?;
    }
    let Encoded {
        chunks,
        restored_files,
        lossy_tensors,
    } = encoded;

    // Fill in what encoding and hashing found. Files holding lossy tensors
    // and lossy tensors themselves get the digests of what decoding gives.
    for (f, h) in header.files.iter_mut().zip(&file_hashes) {
        f.sha256 = *h;
    }
    for (t, h) in header.tensors.iter_mut().zip(&tensor_hashes) {
        t.sha256 = *h;
    }
    for (fi, h) in restored_files {
        header.files[fi].sha256 = h;
    }
    let mut lossy_report = Vec::new();
    for (ti, h, stats) in lossy_tensors {
        let t = &mut header.tensors[ti];
        t.sha256 = h;
        let (bound_kind, bound) = codec::lossy_bound(&t.codec).ok_or_else(|| {
            CompileError::Internal(format!("tensor `{}` has no lossy bound", t.name))
        })?;
        let record = LossyRecord {
            bound_kind,
            bound,
            max_abs: stats.max_abs,
            max_rel: stats.max_rel,
            mean_rel: stats.mean_rel(),
            rms_rel: stats.rms_rel(),
        };
        lossy_report.push((t.name.clone(), t.codec.name(), record.clone()));
        t.lossy = Some(record);
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
    tmp.as_file()
        .write_all_at(&front, 0)
        .map_err(write_err(output))?;
    tmp.as_file().sync_all().map_err(write_err(output))?;
    let artifact_bytes = payload_offset + header.payload_len;
    // The last chance to stop with nothing at `output`.
    stop.check()?;

    persist(tmp, output, opts.force)?;
    tracing::info!(
        "wrote {} ({} bytes: {} before the payload, {} of payload) in {:.1?} in all",
        output.display(),
        artifact_bytes,
        payload_offset,
        header.payload_len,
        started.elapsed()
    );
    Ok(CompileReport {
        output: output.to_path_buf(),
        files: header.files.len(),
        tensors: header.tensors.iter().filter(|t| !t.name.is_empty()).count(),
        chunks: header.chunks.len(),
        original_bytes: total,
        artifact_bytes,
        signer: signature.map(|s| s.fingerprint()),
        recipients: opts.recipients.len(),
        lossy: lossy_report,
        excluded,
    })
}

/// A payload written into a temporary file, with what the front of the
/// artifact needs.
struct Staged {
    /// The header, digests and chunk lengths still zero.
    header: Header,
    header_len: u64,
    sig_len: u64,
    payload_offset: u64,
    recipients_bytes: Vec<u8>,
    tmp: tempfile::NamedTempFile,
    encoded: Encoded,
}

/// Sets up encryption and the header's layout (every length is known before
/// encoding), then encodes the payload into a temporary file beside the
/// output (`stop.output`).
fn encode_to_temporary(
    inputs: &[InputFile],
    handles: &[File],
    plan: &[PlannedTensor],
    opts: &CompileOptions,
    stop: &Stop,
) -> Result<Staged, CompileError> {
    let output = stop.output;
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

    let header = skeleton_header(inputs, plan, encryption);
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

    let out_dir = output_dir(output)?;
    let tmp = tempfile::Builder::new()
        .prefix(".tic-")
        .suffix(".partial")
        .permissions(artifact_permissions())
        .tempfile_in(&out_dir)
        .map_err(io(&out_dir))?;
    let encoded = encode_payload(
        inputs,
        handles,
        plan,
        key.as_ref(),
        tmp.as_file(),
        payload_offset,
        stop,
    )?;
    Ok(Staged {
        header,
        header_len,
        sig_len,
        payload_offset,
        recipients_bytes,
        tmp,
        encoded,
    })
}

/// Artifacts are not secret (encrypted ones are safe to share): readable by
/// all, like any file a compiler writes (temporary files default to 0600).
pub(crate) fn artifact_permissions() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o644)
}

/// The directory `output` goes in (`.` for a bare file name), which must
/// exist: its temporary is written there and renamed onto it.
pub fn output_dir(output: &Path) -> Result<PathBuf, OutputError> {
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(OutputError::DirMissing {
            path: output.to_path_buf(),
            dir,
        })
    }
}

/// Renames a finished temporary file onto `output`.
pub(crate) fn persist(
    tmp: tempfile::NamedTempFile,
    output: &Path,
    force: bool,
) -> Result<(), OutputError> {
    let r = if force {
        tmp.persist(output)
    } else {
        tmp.persist_noclobber(output)
    };
    r.map(|_| ()).map_err(|e| {
        if e.error.kind() == std::io::ErrorKind::AlreadyExists {
            OutputError::Exists {
                path: output.to_path_buf(),
            }
        } else {
            write_err(output)(e.error)
        }
    })
}

/// Every tensor of every input (a non-safetensors file is one unnamed raw
/// tensor) cut into chunks; codecs are still `raw`.
fn lay_out_tensors(
    inputs: &[InputFile],
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
    for t in &mut plan {
        let elem = t.dtype.size();
        let step = chunk_elems(elem, chunk_bytes) * elem as u64;
        let mut at = 0;
        while at < t.len {
            let n = step.min(t.len - at);
            t.chunks.push((t.offset + at, n));
            at += n;
        }
    }
    let nchunks: usize = plan.iter().map(|t| t.chunks.len()).sum();
    if nchunks > tic_format::limits::MAX_CHUNKS as usize {
        return Err(CompileError::Unsupported {
            path: inputs[0].path.clone(),
            what: format!("{nchunks} chunks, over the limit; use a larger --chunk-size"),
        });
    }
    Ok(plan)
}

/// Chooses each tensor's codec from a few sample chunks (or applies the
/// `--lossy` rule that selects it).
fn choose_codecs(
    plan: &mut [PlannedTensor],
    inputs: &[InputFile],
    handles: &[File],
    chunk_bytes: u64,
    lossy: Option<&LossyRules>,
    stop: &Stop,
) -> Result<(), CompileError> {
    let samples = BufferPool::default();
    plan.par_iter_mut().with_max_len(1).try_for_each(|t| {
        stop.check()?;
        let elem = t.dtype.size();
        if t.chunks.is_empty() {
            return Ok::<(), CompileError>(());
        }
        // Sample a few chunks spread over the tensor to choose the codec.
        let k = t.chunks.len() as u64;
        let picks: Vec<u64> = if k <= SAMPLE_CHUNKS {
            (0..k).collect()
        } else {
            (0..SAMPLE_CHUNKS)
                .map(|i| i * (k - 1) / (SAMPLE_CHUNKS - 1))
                .collect()
        };
        let total: u64 = picks.iter().map(|&p| t.chunks[p as usize].1).sum();
        let mut buf = samples.take_at_least(total as usize);
        let sample = &mut buf[..total as usize];
        let mut start = 0;
        for p in picks {
            let (off, n) = t.chunks[p as usize];
            handles[t.file]
                .read_exact_at(&mut sample[start..start + n as usize], off)
                .map_err(io(&inputs[t.file].path))?;
            start += n as usize;
        }
        let sample = &*sample;
        let ce = chunk_elems(elem, chunk_bytes) as usize;
        if let Some(setting) = lossy.and_then(|r| r.setting_for(&t.name, t.dtype)) {
            let spec = codec::plan_lossy(t.dtype, setting, sample, ce).map_err(|source| {
                CompileError::Codec {
                    path: inputs[t.file].path.clone(),
                    tensor: t.name.clone(),
                    source,
                }
            })?;
            if let Some(spec) = spec {
                t.codec = spec;
                samples.give([buf]);
                return Ok(());
            }
        }
        t.codec = codec::choose_codec(elem, t.dtype.is_float(), sample, ce);
        samples.give([buf]);
        Ok(())
    })?;
    if let Some(rules) = lossy {
        let mut used = vec![false; rules.rules.len()];
        for t in plan.iter().filter(|t| !t.name.is_empty()) {
            if let Some((i, _)) = rules.lookup(&t.name) {
                used[i] = true;
            }
        }
        for (r, _) in rules
            .rules
            .iter()
            .zip(&used)
            .filter(|(r, &u)| !u && !r.from_preset)
        {
            tracing::warn!(
                "--lossy rule `{}={}` matches no tensor (an earlier rule may take them all)",
                r.pattern,
                r.action
            );
        }
    }
    Ok(())
}

/// Logs how long choosing took and, at debug level, each tensor's codec.
/// (`named` of the `plan`'s entries are tensors, the others whole files.)
fn log_codecs(
    inputs: &[InputFile],
    plan: &[PlannedTensor],
    named: usize,
    took: std::time::Duration,
) {
    tracing::info!(
        "chose the codecs of {named} tensors and {} whole files in {took:.1?}",
        plan.len() - named
    );
    if tracing::enabled!(tracing::Level::DEBUG) {
        for t in plan {
            let what = if t.name.is_empty() {
                "whole file".to_string()
            } else {
                format!("tensor `{}`", t.name)
            };
            tracing::debug!(
                "{} {what}: {} {:?}, {} bytes in {} chunks -> {}",
                inputs[t.file].rel,
                t.dtype,
                t.shape,
                t.len,
                t.chunks.len(),
                t.codec.name()
            );
        }
    }
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
                // Placeholder figures (same length); filled in after encoding.
                lossy: codec::lossy_bound(&t.codec).map(|(bound_kind, bound)| LossyRecord {
                    bound_kind,
                    bound,
                    max_abs: 0.0,
                    max_rel: 0.0,
                    mean_rel: 0.0,
                    rms_rel: 0.0,
                }),
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

/// Where a tensor's original bytes lie: file index, absolute offset, length.
struct Span {
    file: usize,
    offset: u64,
    len: u64,
}

/// SHA-256 of every input file and of every tensor's original bytes (the
/// tensors' `spans`, in order), one sequential read per file (files in
/// parallel). Gives up once `failed` is set: the rest of the compile has
/// failed and reports why (this function's error is then never shown).
#[allow(clippy::type_complexity)]
fn hash_inputs(
    inputs: &[InputFile],
    handles: &[File],
    spans: &[Span],
    failed: &AtomicBool,
    stop: &Stop,
) -> Result<(Vec<[u8; 32]>, Vec<[u8; 32]>), CompileError> {
    use ring::digest::{Context, SHA256};
    const BLOCK: u64 = 256 << 10;
    let per_file: Vec<([u8; 32], Vec<[u8; 32]>)> = inputs
        .par_iter()
        .with_max_len(1)
        .enumerate()
        .map(|(fi, f)| {
            let tensors: Vec<&Span> = spans.iter().filter(|t| t.file == fi).collect();
            let mut ctxs: Vec<Context> = tensors.iter().map(|_| Context::new(&SHA256)).collect();
            let mut file_ctx = Context::new(&SHA256);
            let mut buf = vec![0u8; BLOCK.min(f.size) as usize];
            let mut pos = 0u64;
            let mut k = 0usize;
            while pos < f.size {
                stop.check()?;
                if failed.load(Ordering::Relaxed) {
                    return Err(CompileError::Internal(
                        "hashing stopped by another failure".into(),
                    ));
                }
                let n = BLOCK.min(f.size - pos) as usize;
                handles[fi]
                    .read_exact_at(&mut buf[..n], pos)
                    .map_err(io(&f.path))?;
                let block = &buf[..n];
                file_ctx.update(block);
                let end = pos + n as u64;
                while k < tensors.len() {
                    let t = tensors[k];
                    let (s, e) = (t.offset.max(pos), (t.offset + t.len).min(end));
                    if s < e {
                        ctxs[k].update(&block[(s - pos) as usize..(e - pos) as usize]);
                    }
                    if t.offset + t.len <= end {
                        k += 1;
                    } else {
                        break;
                    }
                }
                pos = end;
            }
            let digest =
                |c: Context| -> [u8; 32] { c.finish().as_ref().try_into().expect("32 bytes") };
            Ok((digest(file_ctx), ctxs.into_iter().map(digest).collect()))
        })
        .collect::<Result<_, CompileError>>()?;
    let mut files = Vec::new();
    let mut tensors = Vec::new();
    for (f, t) in per_file {
        files.push(f);
        tensors.extend(t);
    }
    Ok((files, tensors))
}

/// What encoding found besides the payload.
struct Encoded {
    /// The chunk table.
    chunks: Vec<ChunkEntry>,
    /// (file index, SHA-256 of the file as restored) for each file that
    /// holds a lossy tensor.
    restored_files: Vec<(usize, [u8; 32])>,
    /// (tensor index, SHA-256 of the decoded tensor, its errors) for each
    /// lossy tensor.
    lossy_tensors: Vec<(usize, [u8; 32], ErrorStats)>,
}

/// One encoded chunk on its way to the writer.
struct EncodedChunk {
    stored: Vec<u8>,
    sha256: [u8; 32],
    orig_len: u64,
    file: usize,
    tensor: usize,
    /// The bytes a reader restores, for chunks of files holding a lossy
    /// tensor (decoded for lossy tensors, the original bytes otherwise).
    restored: Option<Vec<u8>>,
    /// Errors of a lossy chunk.
    stats: Option<ErrorStats>,
}

/// Running digests of restored bytes, fed in payload order.
#[derive(Default)]
struct Restoring {
    file: Option<(usize, ring::digest::Context)>,
    tensor: Option<(usize, ring::digest::Context, ErrorStats)>,
    files_done: Vec<(usize, [u8; 32])>,
    tensors_done: Vec<(usize, [u8; 32], ErrorStats)>,
}

pub(crate) fn digest32(c: ring::digest::Context) -> [u8; 32] {
    c.finish().as_ref().try_into().expect("32 bytes")
}

impl Restoring {
    fn feed(&mut self, inputs: &[InputFile], c: &EncodedChunk) {
        let Some(bytes) = &c.restored else {
            return;
        };
        if self.file.as_ref().is_none_or(|(f, _)| *f != c.file) {
            self.finish_file();
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            if let InputKind::Safetensors { st_header, .. } = &inputs[c.file].kind {
                ctx.update(st_header);
            }
            self.file = Some((c.file, ctx));
        }
        if let Some((_, ctx)) = &mut self.file {
            ctx.update(bytes);
        }
        if let Some(stats) = &c.stats {
            if self.tensor.as_ref().is_none_or(|(t, _, _)| *t != c.tensor) {
                self.finish_tensor();
                let ctx = ring::digest::Context::new(&ring::digest::SHA256);
                self.tensor = Some((c.tensor, ctx, ErrorStats::default()));
            }
            if let Some((_, ctx, st)) = &mut self.tensor {
                ctx.update(bytes);
                st.merge(stats);
            }
        }
    }
    fn finish_file(&mut self) {
        if let Some((f, ctx)) = self.file.take() {
            self.files_done.push((f, digest32(ctx)));
        }
    }
    fn finish_tensor(&mut self) {
        if let Some((t, ctx, st)) = self.tensor.take() {
            self.tensors_done.push((t, digest32(ctx), st));
        }
    }
}

/// Encodes (and encrypts) every chunk, writing the payload at
/// `payload_offset` of `out`. Lossy chunks are decoded again, checked
/// against their bound and measured.
fn encode_payload(
    inputs: &[InputFile],
    handles: &[File],
    plan: &[PlannedTensor],
    key: Option<&PayloadKey>,
    out: &File,
    payload_offset: u64,
    stop: &Stop,
) -> Result<Encoded, CompileError> {
    struct Job<'a> {
        tensor: &'a PlannedTensor,
        tindex: usize,
        offset: u64,
        len: u64,
        index: u64,
    }
    let mut lossy_files = vec![false; inputs.len()];
    for t in plan.iter().filter(|t| !t.codec.is_lossless()) {
        lossy_files[t.file] = true;
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
        .map(|(i, (tindex, tensor, offset, len))| Job {
            tensor,
            tindex,
            offset,
            len,
            index: i as u64,
        })
        .collect();
    let total = jobs.len() as u64;
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

    // Read buffers for the chunks' original bytes.
    let originals = BufferPool::default();
    let encode = |w: &[Job]| -> Result<Vec<EncodedChunk>, CompileError> {
        w.par_iter()
            .with_max_len(1)
            .map(|j| {
                stop.check()?;
                let t = j.tensor;
                let path = &inputs[t.file].path;
                let mut buf = originals.take_at_least(j.len as usize);
                let orig = &mut buf[..j.len as usize];
                handles[t.file]
                    .read_exact_at(orig, j.offset)
                    .map_err(io(path))?;
                let orig = &*orig;
                let codec_err = |source| CompileError::Codec {
                    path: path.clone(),
                    tensor: t.name.clone(),
                    source,
                };
                let es = t.dtype.size();
                let coded = codec::encode_chunk(&t.codec, es, orig).map_err(codec_err)?;
                let (restored, stats) = if t.codec.is_lossless() {
                    (lossy_files[t.file].then(|| orig.to_vec()), None)
                } else {
                    let mut decoded = vec![0u8; orig.len()];
                    codec::decode_chunk(&t.codec, es, &coded, &mut decoded).map_err(codec_err)?;
                    let stats =
                        codec::check_and_measure(&t.codec, orig, &decoded).map_err(|e| {
                            CompileError::Internal(format!(
                                "tensor `{}` ({}): a decoded chunk breaks its bound: {e}",
                                t.name,
                                t.codec.name()
                            ))
                        })?;
                    (Some(decoded), Some(stats))
                };
                let stored = match key {
                    Some(k) => crypto::seal_chunk(k, j.index, j.index + 1 == total, &coded),
                    None => coded,
                };
                let sha256 = tic_format::sha256(&stored);
                originals.give([buf]);
                stop.progress.advance(j.len);
                Ok(EncodedChunk {
                    stored,
                    sha256,
                    orig_len: j.len,
                    file: t.file,
                    tensor: j.tindex,
                    restored,
                    stats,
                })
            })
            .collect()
    };

    let output = stop.output;
    // A small buffer: it gathers the stored chunks of small tensors, while
    // chunks at least this long go straight to the file without a copy.
    let mut writer = std::io::BufWriter::with_capacity(64 << 10, out);
    let mut early = tic_runtime::writeback::EarlyWriteback::new(out);
    writer
        .seek(SeekFrom::Start(payload_offset))
        .map_err(write_err(output))?;
    let mut table = Vec::with_capacity(jobs.len());
    let mut restoring = Restoring::default();
    let mut offset = 0u64;
    // Windows are encoded in parallel and written in order (see
    // `tic_runtime::ordered`): no thread waits for a window's last chunk
    // before the next window starts, and at most threads + 2 windows are
    // in memory.
    tic_runtime::ordered::for_each_ordered(
        &windows,
        rayon::current_num_threads() + 2,
        |w| encode(w),
        |done: Vec<EncodedChunk>| -> Result<(), CompileError> {
            for c in &done {
                writer.write_all(&c.stored).map_err(write_err(output))?;
                early.wrote(c.stored.len() as u64);
                restoring.feed(inputs, c);
                table.push(ChunkEntry {
                    offset,
                    stored_len: c.stored.len() as u64,
                    orig_len: c.orig_len,
                    sha256: c.sha256,
                });
                offset += c.stored.len() as u64;
            }
            Ok(())
        },
    )?;
    writer.flush().map_err(write_err(output))?;
    early.finish();
    restoring.finish_file();
    restoring.finish_tensor();
    Ok(Encoded {
        chunks: table,
        restored_files: restoring.files_done,
        lossy_tensors: restoring.tensors_done,
    })
}
