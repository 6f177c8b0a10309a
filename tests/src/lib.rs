//! Shared helpers of tic's end-to-end tests: small safetensors models made
//! in a temporary directory, compiling them, opening artifacts, and taking
//! an artifact apart into its sections (and putting it back together) so a
//! test can tamper with exactly the bytes it means to.

use std::collections::BTreeMap;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use tic_compiler::{CompileOptions, CompileReport};
use tic_format::crypto::{Identity, Recipient, SymmetricKey};
use tic_format::header::{Preamble, PREAMBLE_LEN};
use tic_format::sign::SignatureSection;
use tic_format::Header;
use tic_runtime::{Artifact, OpenOptions, RuntimeError, Trust};

pub use tempfile::{tempdir, TempDir};

/// Target bytes per chunk for test compiles: small, so that a real codec
/// with its own rounding still makes one chunk per tiny tensor, and several
/// chunks for a tensor of a few hundred KB.
pub const SMALL_CHUNK_BYTES: u64 = 4096;

/// Deterministic pseudo-random bytes (SplitMix64): reproducible test data
/// without a random-number crate.
pub fn pseudo_random(seed: u64, n: usize) -> Vec<u8> {
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// Bytes from the operating system's CSPRNG (for keys).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use ring::rand::SecureRandom;
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("system RNG");
    b
}

/// A new random 32-byte symmetric key.
pub fn symmetric_key() -> SymmetricKey {
    SymmetricKey::from_bytes(&random_bytes::<32>()).expect("32 bytes")
}

/// A new Ed25519 signing key.
pub fn signing_key() -> SigningKey {
    tic_format::sign::generate_key().expect("system RNG")
}

/// One tensor of a safetensors file.
#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub dtype: &'static str,
    pub shape: Vec<u64>,
    pub data: Vec<u8>,
}

impl Tensor {
    /// A tensor whose data is `pseudo_random(seed, ...)` of the right size.
    pub fn random(name: &str, dtype: &'static str, shape: &[u64], seed: u64) -> Tensor {
        let n = tic_format::DType::from_name(dtype)
            .expect("known dtype")
            .byte_len(shape.iter().product())
            .expect("whole bytes") as usize;
        Tensor {
            name: name.to_string(),
            dtype,
            shape: shape.to_vec(),
            data: pseudo_random(seed, n),
        }
    }
}

/// The bytes of a safetensors file holding `tensors` in this order: the
/// 8-byte length, the JSON header padded with spaces to a multiple of 8
/// (as the reference writer does), then the data.
pub fn safetensors_bytes(tensors: &[Tensor]) -> Vec<u8> {
    let mut json = String::from(r#"{"__metadata__":{"format":"pt"}"#);
    let mut at = 0usize;
    for t in tensors {
        let shape: Vec<String> = t.shape.iter().map(u64::to_string).collect();
        json.push_str(&format!(
            r#","{}":{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}}"#,
            t.name,
            t.dtype,
            shape.join(","),
            at,
            at + t.data.len()
        ));
        at += t.data.len();
    }
    json.push('}');
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    for t in tensors {
        out.extend_from_slice(&t.data);
    }
    out
}

/// Writes `files` (relative path, contents) under `dir`, creating it.
pub fn write_files(dir: &Path, files: &[(&str, Vec<u8>)]) -> PathBuf {
    for (rel, bytes) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
        std::fs::write(&p, bytes).expect("write model file");
    }
    dir.to_path_buf()
}

/// Names of the tensors of [`small_model`], in file order.
pub const SMALL_TENSORS: [&str; 3] = ["embed.weight", "norm.bias", "position_ids"];

/// The tensors of [`small_model`] for a seed.
pub fn small_tensors(seed: u64) -> Vec<Tensor> {
    vec![
        Tensor::random(SMALL_TENSORS[0], "F32", &[3, 4], seed),
        Tensor::random(SMALL_TENSORS[1], "BF16", &[6], seed + 1),
        Tensor::random(SMALL_TENSORS[2], "I64", &[1, 4], seed + 2),
    ]
}

/// A tiny model directory at `dir`: `config.json` and `model.safetensors`
/// with the three [`SMALL_TENSORS`] (F32, BF16, I64), a few hundred bytes
/// in all; the artifact made from it is about 1.5 KB with four chunks.
pub fn small_model(dir: &Path, seed: u64) -> PathBuf {
    model_with(dir, &small_tensors(seed))
}

/// A model directory at `dir` with a `config.json` and one
/// `model.safetensors` holding `tensors`.
pub fn model_with(dir: &Path, tensors: &[Tensor]) -> PathBuf {
    write_files(
        dir,
        &[
            (
                "config.json",
                br#"{"architectures":["TinyModel"],"hidden_size":4}"#.to_vec(),
            ),
            ("model.safetensors", safetensors_bytes(tensors)),
        ],
    )
}

/// Compiles `input` to `output` with small chunks, signed with `key` if
/// given and encrypted to `recipients` if any.
pub fn compile(
    input: &Path,
    output: &Path,
    key: Option<&SigningKey>,
    recipients: Vec<Recipient>,
) -> CompileReport {
    tic_compiler::compile(
        input,
        output,
        &CompileOptions {
            signing_key: key.cloned(),
            recipients,
            chunk_bytes: SMALL_CHUNK_BYTES,
            ..Default::default()
        },
        &tic_runtime::NoProgress,
    )
    .unwrap_or_else(|e| panic!("compiling {}: {e}", input.display()))
}

/// `tic attach-signature` without `--force`: attaches `signature` made by
/// `key` to `input`, writing `output`.
pub fn attach_signature(
    input: &Path,
    signature: &[u8],
    key: &VerifyingKey,
    output: &Path,
) -> Result<String, tic_compiler::AmendError> {
    tic_compiler::attach_signature(
        input,
        signature,
        key,
        output,
        false,
        &tic_runtime::NoProgress,
    )
}

/// `tic rewrap` without `--force`: unwraps with `ids`, adds `add`, removes
/// the recipients labelled `remove`, writes `output`.
pub fn rewrap(
    input: &Path,
    ids: &[Identity],
    add: &[Recipient],
    remove: &[String],
    output: &Path,
) -> Result<Vec<String>, tic_compiler::AmendError> {
    tic_compiler::rewrap(
        input,
        ids,
        add,
        remove,
        output,
        false,
        &tic_runtime::NoProgress,
    )
}

/// Open options trusting exactly `keys`, with these identities.
pub fn options(keys: &[VerifyingKey], allow_unsigned: bool, ids: Vec<Identity>) -> OpenOptions {
    OpenOptions {
        trust: Trust {
            keys: keys.to_vec(),
            allow_unsigned,
        },
        identities: ids,
    }
}

/// Opens `path` trusting only `key` (no unsigned artifacts).
pub fn open_trusting(path: &Path, key: &VerifyingKey) -> Result<Artifact, RuntimeError> {
    Artifact::open(path, &options(&[*key], false, Vec::new()))
}

/// What `tic verify` does: open trusting only `key`, then check every chunk.
pub fn verify(path: &Path, key: &VerifyingKey) -> Result<Artifact, RuntimeError> {
    let art = open_trusting(path, key)?;
    art.verify_chunks(&tic_runtime::NoProgress)?;
    Ok(art)
}

/// What `tic verify -` does: verify the artifact at `path` as a stream,
/// trusting only `key`, read `step` bytes at a time at most (to try every
/// way a pipe may split it), and named by `path` so that its errors read as
/// [`verify`]'s do.
pub fn verify_streamed(
    path: &Path,
    key: &VerifyingKey,
    step: usize,
) -> Result<tic_runtime::Head, RuntimeError> {
    let mut reader = Trickle(std::fs::File::open(path).expect("open"), step);
    tic_runtime::verify_stream(
        &mut reader,
        path,
        &options(&[*key], false, Vec::new()).trust,
        &tic_runtime::NoProgress,
    )
}

/// A file read as a pipe may hand it over: at most `.1` bytes a read.
pub struct Trickle(pub std::fs::File, pub usize);

impl std::io::Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.1);
        self.0.read(&mut buf[..n])
    }
}

/// What `tic decompress -` does: restore the artifact at `path` into `out`
/// as a stream, read `step` bytes at a time at most, named by `path` so
/// that its errors read as [`Artifact::extract`]'s do.
pub fn extract_streamed(
    path: &Path,
    opts: &OpenOptions,
    out: &Path,
    force: bool,
    step: usize,
) -> Result<tic_runtime::ExtractReport, RuntimeError> {
    let mut reader = Trickle(std::fs::File::open(path).expect("open"), step);
    tic_runtime::extract_stream(
        &mut reader,
        path,
        opts,
        out,
        force,
        &tic_runtime::NoProgress,
    )
}

/// Names in `dir` left by a tic operation: its temporary files and
/// directories start with `.tic-`.
pub fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.starts_with(".tic-"))
        .collect()
}

/// SHA-256 of every file under `dir`, by `/`-separated relative path.
pub fn sha256_tree(dir: &Path) -> BTreeMap<String, [u8; 32]> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, [u8; 32]>) {
        for e in std::fs::read_dir(dir).expect("read_dir") {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).expect("under root");
                let rel = rel.to_str().expect("UTF-8 path").replace('\\', "/");
                out.insert(
                    rel,
                    tic_format::sha256(&std::fs::read(&p).expect("read file")),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// XORs the byte at `offset` of the file with `mask`, in place.
pub fn xor_byte(path: &Path, offset: u64, mask: u8) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open for tampering");
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).expect("read byte");
    b[0] ^= mask;
    f.write_all_at(&b, offset).expect("write byte");
}

/// An artifact taken apart into its sections (SPEC.md §2). `join` puts it
/// back together with a preamble whose lengths match the sections, so a
/// test can change one section and get a well-formed container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parts {
    pub major: u16,
    pub minor: u16,
    pub header: Vec<u8>,
    pub signature: Vec<u8>,
    pub recipients: Vec<u8>,
    pub payload: Vec<u8>,
}

impl Parts {
    /// Splits well-formed artifact bytes (panics on a bad preamble).
    pub fn split(bytes: &[u8]) -> Parts {
        let pre: &[u8; PREAMBLE_LEN] = bytes[..PREAMBLE_LEN].try_into().expect("48 bytes");
        let p = Preamble::parse(pre, bytes.len() as u64).expect("well-formed preamble");
        let at = |o: u64, n: u64| bytes[o as usize..(o + n) as usize].to_vec();
        Parts {
            major: p.major,
            minor: p.minor,
            header: at(p.header_offset(), p.header_len),
            signature: at(p.signature_offset(), p.signature_len),
            recipients: at(p.recipients_offset(), p.recipients_len),
            payload: at(p.payload_offset(), p.payload_len),
        }
    }

    pub fn read(path: &Path) -> Parts {
        Parts::split(&std::fs::read(path).expect("read artifact"))
    }

    pub fn preamble(&self) -> Preamble {
        Preamble {
            major: self.major,
            minor: self.minor,
            header_len: self.header.len() as u64,
            signature_len: self.signature.len() as u64,
            recipients_len: self.recipients.len() as u64,
            payload_len: self.payload.len() as u64,
        }
    }

    pub fn join(&self) -> Vec<u8> {
        let mut out = self.preamble().to_bytes().to_vec();
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&self.signature);
        out.extend_from_slice(&self.recipients);
        out.extend_from_slice(&self.payload);
        out
    }

    pub fn write(&self, path: &Path) {
        std::fs::write(path, self.join()).expect("write artifact");
    }

    /// The parsed header (panics if it does not parse).
    pub fn parsed_header(&self) -> Header {
        Header::parse(&self.header).expect("header parses")
    }

    /// Replaces the header with `h` encoded.
    pub fn set_header(&mut self, h: &Header) {
        self.header = h.to_bytes();
    }

    /// Signs the current header with `key`, replacing the signature section.
    pub fn sign(&mut self, key: &SigningKey) {
        self.signature =
            SignatureSection::sign(key, self.major, self.minor, &self.header).to_bytes();
    }

    /// File offset of each section.
    pub fn header_range(&self) -> Range<usize> {
        PREAMBLE_LEN..PREAMBLE_LEN + self.header.len()
    }
    pub fn signature_range(&self) -> Range<usize> {
        let s = self.header_range().end;
        s..s + self.signature.len()
    }
    pub fn recipients_range(&self) -> Range<usize> {
        let s = self.signature_range().end;
        s..s + self.recipients.len()
    }
    pub fn payload_range(&self) -> Range<usize> {
        let s = self.recipients_range().end;
        s..s + self.payload.len()
    }

    /// File offsets of chunk `i`, from the chunk table of the parsed header.
    pub fn chunk_range(&self, h: &Header, i: usize) -> Range<usize> {
        let c = &h.chunks[i];
        let s = self.payload_range().start + c.offset as usize;
        s..s + c.stored_len as usize
    }

    /// Payload offsets of chunk `i` (within `self.payload`).
    pub fn chunk_in_payload(&self, h: &Header, i: usize) -> Range<usize> {
        let c = &h.chunks[i];
        c.offset as usize..(c.offset + c.stored_len) as usize
    }

    /// Offsets of the chunk table within the header bytes: the table is the
    /// last structure before the extensions (SPEC.md §4.1).
    pub fn chunk_table_in_header(&self, h: &Header) -> Range<usize> {
        let ext: usize = 4 + h
            .extensions
            .iter()
            .map(|e| 2 + 1 + 4 + e.data.len())
            .sum::<usize>();
        let end = self.header.len() - ext;
        end - h.chunks.len() * tic_format::header::CHUNK_ENTRY_LEN..end
    }
}

/// For each chunk, the index of the tensor that owns it.
pub fn chunk_owners(h: &Header) -> Vec<usize> {
    let mut v = vec![usize::MAX; h.chunks.len()];
    for (ti, t) in h.tensors.iter().enumerate() {
        for (i, _) in h.tensor_chunks(t) {
            v[i as usize] = ti;
        }
    }
    v
}

/// The index of the first chunk of the tensor named `name`.
pub fn first_chunk_of(h: &Header, name: &str) -> usize {
    h.tensors
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
        .first_chunk as usize
}
