//! Finding and checking a model's input files.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use tic_format::safetensors::{self, StTensor};

use crate::error::{io, CompileError};

/// Why a file whose name is not UTF-8 is refused.
const NOT_UTF8: &str = "the file name is not valid UTF-8, and an artifact records paths as UTF-8; \
                        rename the file (for example with `convmv`) and compile again";

/// The file name of a model given as one file, as an artifact records it.
fn utf8_file_name(input: &Path) -> Result<&str, CompileError> {
    input
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| CompileError::Unsupported {
            path: input.to_path_buf(),
            what: NOT_UTF8.into(),
        })
}

/// One input file, checked and ready to plan.
pub struct InputFile {
    /// Where it is on disk.
    pub path: PathBuf,
    /// The path recorded in the artifact (relative, `/`-separated).
    pub rel: String,
    pub size: u64,
    pub kind: InputKind,
    /// What the file looked like when it was checked.
    stamp: Stamp,
}

/// A file's identity and last change, to notice it changing under us.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

impl InputFile {
    /// Checks that `handle` (opened on this file for reading) is still the
    /// file that was checked, unchanged: same file, length and modification
    /// time. A compile calls this after reading everything, so that a file
    /// rewritten meanwhile (a download still running, a training job saving
    /// over it) fails the compile instead of giving an artifact whose
    /// digests disagree with its payload.
    pub fn check_unchanged(&self, handle: &File) -> Result<(), CompileError> {
        let now = handle.metadata().map_err(io(&self.path))?;
        if Stamp::of(&now) != self.stamp {
            return Err(CompileError::InputChanged {
                path: self.path.clone(),
            });
        }
        Ok(())
    }
}

pub enum InputKind {
    Blob,
    /// The first `8 + N` bytes, and the tensors sorted by data offset.
    Safetensors {
        st_header: Vec<u8>,
        tensors: Vec<StTensor>,
    },
}

/// Lists a model: a single file, or every file under a directory (sorted,
/// recursively; symbolic links to files are followed, as in a Hugging Face
/// cache snapshot). A directory's listing leaves out `output` (an artifact
/// being replaced inside the model it was made from would otherwise be
/// packed into the new one), what an interrupted tic left behind
/// (`.tic-*.partial`, `.tic-extract-*`, `.tic-old-*`), a `.git` directory
/// (a cloned Hugging Face repository) and huggingface_hub's
/// `.cache/huggingface` (a `--local-dir` download), each with a warning.
/// An existing `output` that is one of the input files and not an artifact
/// is refused ([`CompileError::OutputIsInput`]). Files and folders that an
/// `exclude` pattern matches (see [`Exclude`]) are left out too, and
/// returned beside the files kept.
pub fn discover(
    input: &Path,
    output: &Path,
    exclude: &[Exclude],
) -> Result<(Vec<InputFile>, Vec<Excluded>), CompileError> {
    let meta = std::fs::metadata(input).map_err(io(input))?;
    // The output, if it exists: (device, inode), and whether it is an
    // artifact (to be replaced) rather than a model file (never replaced).
    let out = std::fs::metadata(output)
        .ok()
        .map(|m| ((m.dev(), m.ino()), m.is_file() && starts_with_magic(output)));
    let output_is_input = || CompileError::OutputIsInput {
        path: output.to_path_buf(),
    };
    let mut found = Vec::new();
    let mut excluded = Vec::new();
    if meta.is_file() {
        if !exclude.is_empty() {
            tracing::warn!(
                "--exclude is for model directories; {} is a single file, compiled whole",
                input.display()
            );
        }
        if out.is_some_and(|(id, _)| id == (meta.dev(), meta.ino())) {
            return Err(output_is_input());
        }
        if starts_with_magic(input) {
            return Err(CompileError::InputIsArtifact {
                path: input.to_path_buf(),
            });
        }
        let name = utf8_file_name(input)?;
        found.push((input.to_path_buf(), name.to_string()));
    } else if meta.is_dir() {
        refuse_hf_cache_folder(input)?;
        let clash = std::cell::Cell::new(false);
        let dropped = std::cell::RefCell::new(Vec::new());
        let used = std::cell::RefCell::new(vec![false; exclude.len()]);
        let skip = |path: &Path, name: &str, rel: &str, meta: &std::fs::Metadata| {
            if out.is_some_and(|(id, artifact)| id == (meta.dev(), meta.ino()) && !artifact) {
                clash.set(true);
                return true;
            }
            let why = left_out(path, name, meta, out.map(|(id, _)| id));
            if let Some(why) = why {
                tracing::warn!("leaving out {}: {why}", path.display());
                return true;
            }
            let dir = meta.is_dir();
            let Some(first) = mark_matches(exclude, rel, dir, &mut used.borrow_mut()) else {
                return false;
            };
            tracing::info!(
                "leaving out {} (--exclude {:?})",
                path.display(),
                exclude[first].given
            );
            let (files, size) = if dir {
                tally(path, rel, exclude, &mut used.borrow_mut())
            } else if meta.file_type().is_symlink() {
                (1, 0) // a link to nothing
            } else {
                (1, meta.len())
            };
            dropped.borrow_mut().push(Excluded {
                rel: rel.to_string(),
                dir,
                files,
                size,
                pattern: exclude[first].given.clone(),
            });
            true
        };
        walk(input, "", &mut found, &skip)?;
        if clash.get() {
            return Err(output_is_input());
        }
        excluded = dropped.into_inner();
        for (p, used) in exclude.iter().zip(used.into_inner()) {
            if !used {
                tracing::warn!(
                    "--exclude {:?} matched nothing in {} (patterns match paths relative to it, \
                     such as `*.bin` or `onnx/`)",
                    p.given,
                    input.display()
                );
            }
        }
        if found.is_empty() {
            return Err(CompileError::EmptyInput {
                path: input.to_path_buf(),
                excluded: excluded.len(),
            });
        }
    } else {
        return Err(CompileError::InputNotAFile {
            path: input.to_path_buf(),
        });
    }
    let files = found
        .into_iter()
        .map(|(path, rel)| check_file(path, rel))
        .collect::<Result<Vec<_>, _>>()?;
    warn_other_formats(input, &files);
    Ok((files, excluded))
}

/// One `--exclude` pattern: a glob (`*` any characters, `/` included; `?`
/// one) matched against the whole path of each file and folder relative to
/// the model directory, `/`-separated, as `huggingface-cli download
/// --exclude` matches them. A folder that matches is left out with
/// everything in it; a pattern ending in `/` matches folders only.
#[derive(Clone, Debug)]
pub struct Exclude {
    /// The pattern as given (for messages).
    given: String,
    glob: String,
    dirs_only: bool,
}

impl Exclude {
    /// Checks one pattern: it must be relative and not empty.
    pub fn parse(given: &str) -> Result<Exclude, CompileError> {
        let bad = |why: &str| CompileError::BadExclude {
            pattern: given.to_string(),
            why: why.to_string(),
        };
        let mut glob = given;
        while let Some(rest) = glob.strip_prefix("./") {
            glob = rest;
        }
        let dirs_only = glob.ends_with('/');
        let glob = glob.trim_end_matches('/');
        if given.starts_with('/') || glob.starts_with('/') {
            return Err(bad(
                "patterns are relative to the model directory; drop the leading `/`",
            ));
        }
        if glob.is_empty() {
            return Err(bad(
                "the pattern is empty; give a file or folder name or a glob such as `*.bin`",
            ));
        }
        Ok(Exclude {
            given: given.to_string(),
            glob: glob.to_string(),
            dirs_only,
        })
    }

    /// [`Exclude::parse`] of each of `given`, as `--exclude` repeats.
    pub fn parse_all(given: &[String]) -> Result<Vec<Exclude>, CompileError> {
        given.iter().map(|p| Exclude::parse(p)).collect()
    }

    fn matches(&self, rel: &str, is_dir: bool) -> bool {
        (is_dir || !self.dirs_only) && crate::lossy::glob(&self.glob, rel)
    }
}

/// A file or folder that an `--exclude` pattern left out.
#[derive(Clone, Debug)]
pub struct Excluded {
    /// Its path relative to the model directory.
    pub rel: String,
    /// A folder, left out with everything in it.
    pub dir: bool,
    /// The files it holds (1 for a file) and their bytes.
    pub files: u64,
    pub size: u64,
    /// The pattern that matched, as given.
    pub pattern: String,
}

/// Extensions of weights and checkpoints in formats other than safetensors
/// (PyTorch pickles, TensorFlow, Flax, rust-bert, ONNX, GGUF, ...).
const OTHER_FORMATS: &[&str] = &[
    "bin",
    "pt",
    "pth",
    "ckpt",
    "h5",
    "keras",
    "msgpack",
    "ot",
    "onnx",
    "onnx_data",
    "gguf",
    "ggml",
    "tflite",
    "npz",
    "pkl",
    "pickle",
    "mlmodel",
];

/// Smallest file of [`OTHER_FORMATS`] the warning names: smaller ones are
/// settings (`training_args.bin`), not weights.
const OTHER_FORMAT_MIN: u64 = 1 << 20;

/// Warns when a model that has safetensors weights also holds large files
/// in other weight formats, as a full Hugging Face download does (the same
/// weights as `pytorch_model.bin`, `tf_model.h5`, `onnx/model.onnx`, ...):
/// they are packed as plain files and can make the artifact several times
/// larger than the model the user means to ship.
fn warn_other_formats(input: &Path, files: &[InputFile]) {
    if !files
        .iter()
        .any(|f| matches!(f.kind, InputKind::Safetensors { .. }))
    {
        return;
    }
    // As written (patterns are case-sensitive); compared in lower case.
    let ext = |f: &InputFile| f.rel.rsplit_once('.').map(|(_, e)| e.to_string());
    let others: Vec<&InputFile> = files
        .iter()
        .filter(|f| {
            f.size >= OTHER_FORMAT_MIN
                && ext(f).is_some_and(|e| OTHER_FORMATS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .collect();
    if others.is_empty() {
        return;
    }
    let total: u64 = others.iter().map(|f| f.size).sum();
    let all: u64 = files.iter().map(|f| f.size).sum();
    let mut exts: Vec<String> = others.iter().filter_map(|f| ext(f)).collect();
    exts.sort();
    exts.dedup();
    let named = others
        .iter()
        .take(4)
        .map(|f| format!("{} ({:.1} MB)", f.rel, f.size as f64 / 1e6))
        .collect::<Vec<_>>()
        .join(", ");
    let more = match others.len() {
        n if n > 4 => format!(" and {} more", n - 4),
        _ => String::new(),
    };
    let flags = exts
        .iter()
        .map(|e| format!("--exclude '*.{e}'"))
        .collect::<Vec<_>>()
        .join(" ");
    tracing::warn!(
        "{} holds weights in formats other than safetensors: {named}{more}; {:.1} MB, {:.0}% of the input, \
         packed as plain files beside the safetensors weights; if the safetensors files are what you ship, \
         leave the others out: {flags}",
        input.display(),
        total as f64 / 1e6,
        100.0 * total as f64 / all.max(1) as f64,
    );
}

/// The files of the model at `input` as a compile would take them (the
/// same walk and leave-outs, `exclude` applied), without reading them:
/// (path on disk, path recorded in an artifact). For `tic verify --against`.
pub fn model_files(
    input: &Path,
    exclude: &[Exclude],
    artifact: Option<&Path>,
) -> Result<Vec<(PathBuf, String)>, CompileError> {
    let meta = std::fs::metadata(input).map_err(io(input))?;
    if meta.is_file() {
        if !exclude.is_empty() {
            tracing::warn!(
                "--exclude is for model directories; {} is a single file, compared whole",
                input.display()
            );
        }
        let name = utf8_file_name(input)?;
        return Ok(vec![(input.to_path_buf(), name.to_string())]);
    }
    if !meta.is_dir() {
        return Err(CompileError::Unsupported {
            path: input.to_path_buf(),
            what: "not a model directory or file".into(),
        });
    }
    refuse_hf_cache_folder(input)?;
    // The artifact being checked, when it sits inside the model.
    let own = artifact
        .and_then(|a| std::fs::metadata(a).ok())
        .map(|m| (m.dev(), m.ino()));
    let skip = |path: &Path, name: &str, rel: &str, meta: &std::fs::Metadata| {
        if own == Some((meta.dev(), meta.ino())) {
            return true;
        }
        if let Some(why) = left_out(path, name, meta, None) {
            tracing::info!("leaving out {}: {why}", path.display());
            return true;
        }
        exclude.iter().any(|p| p.matches(rel, meta.is_dir()))
    };
    let mut found = Vec::new();
    walk(input, "", &mut found, &skip)?;
    Ok(found)
}

/// Refuses huggingface_hub's cache folder (`models--org--name`: blobs/
/// holds the files, snapshots/REV/ links to them by name), naming its
/// snapshots.
fn refuse_hf_cache_folder(input: &Path) -> Result<(), CompileError> {
    if !(input.join("blobs").is_dir() && input.join("snapshots").is_dir()) {
        return Ok(());
    }
    let snaps = input.join("snapshots");
    let mut snapshots = Vec::new();
    for e in std::fs::read_dir(&snaps).map_err(io(&snaps))? {
        let e = e.map_err(io(&snaps))?;
        snapshots.push(e.file_name().to_string_lossy().into_owned());
    }
    snapshots.sort();
    Err(CompileError::HfCacheFolder {
        path: input.to_path_buf(),
        snapshots,
    })
}

/// The first of `exclude` that matches `rel`, marking in `used` every one
/// that does.
fn mark_matches(exclude: &[Exclude], rel: &str, dir: bool, used: &mut [bool]) -> Option<usize> {
    let mut first = None;
    for (i, p) in exclude.iter().enumerate() {
        if p.matches(rel, dir) {
            used[i] = true;
            first.get_or_insert(i);
        }
    }
    first
}

/// The files under a folder that `--exclude` leaves out, and their bytes,
/// for the report; marks in `used` the patterns that match anything in it.
/// Best effort: what cannot be read is not counted, and nothing fails.
fn tally(dir: &Path, rel: &str, exclude: &[Exclude], used: &mut [bool]) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let inner = format!("{rel}/{name}");
        // Symbolic links are followed to files, not to folders.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
        mark_matches(exclude, &inner, meta.is_dir(), used);
        if meta.is_dir() && !is_link {
            let (f, b) = tally(&path, &inner, exclude, used);
            files += f;
            bytes += b;
        } else if meta.is_file() {
            files += 1;
            bytes += meta.len();
        }
    }
    (files, bytes)
}

/// Whether `e` is ELOOP, too many levels of symbolic links (`ErrorKind`
/// names it only on nightly).
fn is_link_loop(e: &std::io::Error) -> bool {
    let eloop = if cfg!(any(target_os = "linux", target_os = "android")) {
        40
    } else if cfg!(any(
        target_vendor = "apple",
        target_os = "freebsd",
        target_os = "openbsd"
    )) {
        62
    } else {
        return false;
    };
    e.raw_os_error() == Some(eloop)
}

/// Whether the file at `path` begins with the tic magic (an artifact).
fn starts_with_magic(path: &Path) -> bool {
    let mut first = [0u8; 8];
    File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut first))
        .is_ok_and(|()| first == tic_format::header::MAGIC)
}

/// Why an entry of a model directory is left out, if it is: `output`, the
/// (device, inode) of the artifact being replaced, if it exists.
fn left_out(
    path: &Path,
    name: &str,
    meta: &std::fs::Metadata,
    output: Option<(u64, u64)>,
) -> Option<&'static str> {
    if output == Some((meta.dev(), meta.ino())) {
        return Some("it is the artifact this compile replaces");
    }
    if tic_runtime::is_tic_temporary(name) {
        return Some("a temporary that an interrupted tic left behind; delete it");
    }
    if meta.is_dir() && name == ".git" {
        return Some(
            "a git repository's own data, not a model file (with git-lfs it holds a \
             second copy of every weight file)",
        );
    }
    let in_cache = path.parent().and_then(|p| p.file_name()) == Some(".cache".as_ref());
    if meta.is_dir() && name == "huggingface" && in_cache {
        return Some("huggingface_hub's download bookkeeping, not a model file");
    }
    None
}

/// What [`walk`] leaves out: (path, file name, path relative to the model
/// directory, metadata) -> whether to.
type Skip<'a> = dyn Fn(&Path, &str, &str, &std::fs::Metadata) -> bool + 'a;

fn walk(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<(PathBuf, String)>,
    skip: &Skip,
) -> Result<(), CompileError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e
            .file_name()
            .into_string()
            .map_err(|_| CompileError::Unsupported {
                path: path.clone(),
                what: NOT_UTF8.into(),
            })?;
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        // A symbolic link is judged by what it points to (a snapshot's
        // links to blobs, a linked folder that a pattern leaves out).
        let ft = e.file_type().map_err(io(&path))?;
        // A link to nothing is judged by itself, so that --exclude can
        // leave it out.
        let target = ft.is_symlink().then(|| std::fs::metadata(&path));
        let meta = match &target {
            Some(Ok(m)) => m.clone(),
            _ => e.metadata().map_err(io(&path))?,
        };
        if skip(&path, &name, &rel, &meta) {
            continue;
        }
        if let Some(target) = target {
            let target = target.map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => CompileError::DanglingLink {
                    path: path.clone(),
                    rel: rel.clone(),
                },
                _ if is_link_loop(&source) => CompileError::LinkLoop {
                    path: path.clone(),
                    rel: rel.clone(),
                },
                _ => io(&path)(source),
            })?;
            if target.is_dir() {
                return Err(CompileError::SymlinkedDirectory { path, rel });
            } else if !target.is_file() {
                return Err(CompileError::NotARegularFile { path });
            }
            out.push((path, rel));
        } else if ft.is_dir() {
            walk(&path, &rel, out, skip)?;
        } else if ft.is_file() {
            out.push((path, rel));
        } else {
            return Err(CompileError::NotARegularFile { path });
        }
    }
    Ok(())
}

fn check_file(path: PathBuf, rel: String) -> Result<InputFile, CompileError> {
    tic_format::path::check_relative_path(&rel).map_err(|e| CompileError::Unsupported {
        path: path.clone(),
        what: e.to_string(),
    })?;
    let f = File::open(&path).map_err(io(&path))?;
    let meta = f.metadata().map_err(io(&path))?;
    let size = meta.len();
    let kind = if rel.ends_with(".safetensors") {
        read_safetensors_header(&f, &path, size)?
    } else {
        let mut first = [0u8; 8];
        if f.read_exact_at(&mut first, 0).is_ok() && first == tic_format::header::MAGIC {
            tracing::warn!(
                "{}: a tic artifact, packed into this one as a plain file (an earlier \
                 compile's output left in the model directory?)",
                path.display()
            );
        }
        InputKind::Blob
    };
    Ok(InputFile {
        path,
        rel,
        size,
        kind,
        stamp: Stamp::of(&meta),
    })
}

fn read_safetensors_header(f: &File, path: &Path, size: u64) -> Result<InputKind, CompileError> {
    let bad = |source: safetensors::StError| {
        if source.is_tic_limit() {
            CompileError::Unsupported {
                path: path.to_path_buf(),
                what: source.to_string(),
            }
        } else {
            CompileError::BadSafetensors {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let mut first8 = [0u8; 8];
    if size >= 8 {
        f.read_exact_at(&mut first8, 0).map_err(io(path))?;
    }
    // A repository cloned without git-lfs holds small text stand-ins.
    const LFS_POINTER: &[u8] = b"version https://git-lfs.github.com/spec/v1\n";
    if size < 1024 && first8 == LFS_POINTER[..8] {
        let mut text = vec![0u8; size as usize];
        f.read_exact_at(&mut text, 0).map_err(io(path))?;
        if text.starts_with(LFS_POINTER) {
            return Err(CompileError::LfsPointer {
                path: path.to_path_buf(),
                size,
            });
        }
    }
    // A valid header length has zero high bytes; eight bytes of text are a
    // web page or an error message saved under the weights' name.
    if size >= 8
        && first8
            .iter()
            .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
    {
        return Err(CompileError::TextNotSafetensors {
            path: path.to_path_buf(),
            start: String::from_utf8_lossy(&first8).into_owned(),
        });
    }
    let n = safetensors::header_len(first8, size).map_err(bad)?;
    // `n` is now at most the cap and at most the file's real length.
    let mut st_header = vec![0u8; 8 + n as usize];
    f.read_exact_at(&mut st_header, 0).map_err(io(path))?;
    let tensors = safetensors::parse_header(&st_header[8..], size - 8 - n).map_err(bad)?;
    for t in &tensors {
        let limit = tic_format::limits::MAX_NAME_LEN;
        let what = if t.name.is_empty() {
            "a tensor with an empty name; safetensors allows it, but a tic artifact keeps \
             the empty name for whole non-weight files (SPEC.md §4.2): rename the tensor"
                .to_string()
        } else if t.name.len() > limit {
            let start: String = t.name.chars().take(40).collect();
            format!(
                "a tensor name of {} bytes (`{start}...`); safetensors allows it, but a tic \
                 artifact holds names of at most {limit} bytes (SPEC.md §10): rename the tensor",
                t.name.len()
            )
        } else {
            continue;
        };
        return Err(CompileError::Unsupported {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(InputKind::Safetensors { st_header, tensors })
}

/// Largest `*.safetensors.index.json` read to check it (a model of a
/// million tensors has an index of some 60 MB).
const MAX_INDEX_BYTES: u64 = 256 << 20;

/// Checks each sharded checkpoint's index (`*.safetensors.index.json`)
/// against the files found: a shard it names that is missing means the
/// download is incomplete, and the artifact would restore a model that
/// cannot load. A tensor the index places in a shard that does not hold it
/// gets a warning; so does an index that cannot be read as one. A shard
/// that an `--exclude` pattern left out is named as such.
pub fn check_shard_indexes(
    inputs: &[InputFile],
    excluded: &[Excluded],
) -> Result<(), CompileError> {
    let by_rel: std::collections::HashMap<&str, &InputFile> =
        inputs.iter().map(|f| (f.rel.as_str(), f)).collect();
    for index in inputs
        .iter()
        .filter(|f| f.rel.ends_with(".safetensors.index.json"))
    {
        let map = match read_weight_map(index) {
            Ok(m) => m,
            Err(why) => {
                tracing::warn!(
                    "{}: not checked against the shards: {why}",
                    index.path.display()
                );
                continue;
            }
        };
        let dir = index.rel.rfind('/').map_or("", |i| &index.rel[..=i]);
        let mut misplaced = Vec::new();
        let mut shards: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (tensor, shard) in &map {
            shards.entry(shard.as_str()).or_default().push(tensor);
        }
        for (shard, tensors) in shards {
            let rel = format!("{dir}{shard}");
            let Some(f) = by_rel.get(rel.as_str()) else {
                let within = |e: &&Excluded| {
                    e.rel == rel
                        || (e.dir && rel.strip_prefix(&e.rel).is_some_and(|r| r.starts_with('/')))
                };
                if let Some(e) = excluded.iter().find(within) {
                    return Err(CompileError::ShardExcluded {
                        index: index.path.clone(),
                        shard: shard.to_string(),
                        pattern: e.pattern.clone(),
                    });
                }
                return Err(CompileError::MissingShard {
                    index: index.path.clone(),
                    shard: shard.to_string(),
                    tensors: tensors.len(),
                });
            };
            if let InputKind::Safetensors { tensors: held, .. } = &f.kind {
                let held: std::collections::HashSet<&str> =
                    held.iter().map(|t| t.name.as_str()).collect();
                misplaced.extend(
                    tensors
                        .iter()
                        .filter(|t| !held.contains(**t))
                        .map(|t| (*t, shard)),
                );
            }
        }
        if let Some((tensor, shard)) = misplaced.first() {
            tracing::warn!(
                "{}: places {} tensor(s) in shards that do not hold them, such as `{tensor}` in {shard}; \
                 the index may be stale (the files are packed as they are)",
                index.path.display(),
                misplaced.len()
            );
        }
    }
    Ok(())
}

/// The `weight_map` of a sharded checkpoint's index: tensor -> shard file.
fn read_weight_map(index: &InputFile) -> Result<Vec<(String, String)>, String> {
    if index.size > MAX_INDEX_BYTES {
        return Err(format!(
            "{} bytes, over the {MAX_INDEX_BYTES}-byte cap",
            index.size
        ));
    }
    let text = std::fs::read(&index.path).map_err(|e| e.to_string())?;
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: std::collections::BTreeMap<String, String>,
    }
    let parsed: Index =
        serde_json::from_slice(&text).map_err(|e| format!("not a weight_map index ({e})"))?;
    let map: Vec<(String, String)> = parsed.weight_map.into_iter().collect();
    // A shard is a file name beside the index, never a path elsewhere.
    if let Some((_, bad)) = map
        .iter()
        .find(|(_, s)| s.is_empty() || s.contains(['/', '\\']) || s == "." || s == "..")
    {
        return Err(format!("it names {bad:?}, which is not a file name"));
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_patterns_match_paths_as_huggingface_cli_does() {
        let p = |s: &str| Exclude::parse(s).unwrap();
        // `*` crosses `/`, as in fnmatch.
        assert!(p("*.bin").matches("pytorch_model.bin", false));
        assert!(p("*.bin").matches("openvino/openvino_model.bin", false));
        assert!(!p("*.bin").matches("model.safetensors", false));
        // A name matches that path only, a file or a folder.
        assert!(p("onnx").matches("onnx", true));
        assert!(!p("onnx").matches("sub/onnx", true));
        // A trailing `/` matches folders only; `./` in front is dropped.
        assert!(p("onnx/").matches("onnx", true));
        assert!(!p("onnx/").matches("onnx", false));
        assert!(p("./1_Pooling/").matches("1_Pooling", true));
        assert!(p("model-0000?-of-00002.safetensors")
            .matches("model-00001-of-00002.safetensors", false));
        for bad in ["", "/", "./", "/onnx"] {
            assert!(
                matches!(Exclude::parse(bad), Err(CompileError::BadExclude { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_file_rewritten_after_its_check_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, b"{\"a\": 1}").unwrap();
        let checked = discover(&path, Path::new("out.tic"), &[])
            .unwrap()
            .0
            .remove(0);
        let handle = File::open(&path).unwrap();
        checked.check_unchanged(&handle).unwrap();

        // Same length, new contents, as a writer in place leaves it.
        std::fs::write(&path, b"{\"a\": 2}").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let e = checked.check_unchanged(&handle).unwrap_err();
        assert!(matches!(e, CompileError::InputChanged { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("config.json") && msg.contains("changed"),
            "{msg}"
        );
        assert!(msg.contains("compile again"), "{msg}");

        // Replaced by another file under the same name: the handle opened
        // after the check reads the new one.
        let fresh = discover(&path, Path::new("out.tic"), &[])
            .unwrap()
            .0
            .remove(0);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"{\"a\": 2}").unwrap();
        let reopened = File::open(&path).unwrap();
        assert!(fresh.check_unchanged(&reopened).is_err());
    }
}
