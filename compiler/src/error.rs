//! Errors from compiling a model into an artifact.

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong writing an artifact, the same for every command that
/// writes one (compile, rewrap, attach-signature); nothing is left at the
/// output path or beside it.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum OutputError {
    #[error("{path} already exists; pass --force to replace it")]
    Exists { path: PathBuf },
    #[error(
        "cannot write {path}: {dir} is not an existing directory; create it first (`mkdir -p {dir}`)"
    )]
    DirMissing { path: PathBuf, dir: PathBuf },
    #[error("{path}: cannot write the artifact: {source}; nothing was left at {path} (check the free space and permissions where it goes)")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: interrupted before the artifact was complete; the partial artifact was removed and {path} was not touched")]
    Interrupted { path: PathBuf },
}

/// Why a compile failed. Input problems name the file (and the tensor where
/// there is one) and say what to do; nothing is left at the output path.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CompileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}; the file is not a valid safetensors file (re-export it, or check that it was fully downloaded)")]
    BadSafetensors {
        path: PathBuf,
        #[source]
        source: tic_format::safetensors::StError,
    },
    #[error("{path}: a Git LFS pointer ({size}-byte text standing in for the weights), not the weights themselves: the repository was cloned without git-lfs; run `git lfs install && git lfs pull` in it (or download the model with `huggingface-cli download`), then compile again")]
    LfsPointer { path: PathBuf, size: u64 },
    #[error("{path}: begins with text ({start:?}), not a safetensors header: it is probably a web page or an error message saved in place of the weights (a Hugging Face link must use /resolve/, not /blob/; a gated model needs a token); download it again")]
    TextNotSafetensors { path: PathBuf, start: String },
    #[error("{path}: not a regular file or directory (a socket, device or FIFO); remove it from the model directory")]
    NotARegularFile { path: PathBuf },
    #[error("{path}: not a file or directory but a pipe, socket or device; tic reads its input at random offsets, so save the model to a file first")]
    InputNotAFile { path: PathBuf },
    #[error("{}: symbolic links to directories are not followed; copy the directory's contents in instead, or leave it out with --exclude {rel}/", path.display())]
    SymlinkedDirectory { path: PathBuf, rel: String },
    #[error("{}: a symbolic link to a file that is not there (a download that did not finish?); fetch the file again, or leave the link out with --exclude {rel}", path.display())]
    DanglingLink { path: PathBuf, rel: String },
    #[error("{}: a symbolic link that leads back to itself (a loop of links, too many levels to follow); point it at the file it stands for, or leave it out with --exclude {rel}", path.display())]
    LinkLoop { path: PathBuf, rel: String },
    #[error("{path} is a Hugging Face cache folder (blobs/, snapshots/), which keeps every downloaded revision and each weight file twice; compile one revision's snapshot instead: {}", snapshots.iter().map(|s| path.join("snapshots").join(s).display().to_string()).collect::<Vec<_>>().join(" or "))]
    HfCacheFolder {
        path: PathBuf,
        snapshots: Vec<String>,
    },
    #[error("{index} places {tensors} tensor(s) in {shard}, which is not in the model directory: the download is incomplete; fetch the missing shard, then compile again")]
    MissingShard {
        index: PathBuf,
        shard: String,
        tensors: usize,
    },
    #[error("{path} is already a tic artifact: `tic inspect` shows what it holds and `tic rewrap` changes its recipients; to compile it again, `tic decompress` it first")]
    InputIsArtifact { path: PathBuf },
    #[error("{path}: contains no files to compile{}", if *excluded > 0 { format!(" ({excluded} left out by --exclude; narrow the patterns)") } else { String::new() })]
    EmptyInput { path: PathBuf, excluded: usize },
    #[error("--exclude {pattern:?}: {why}")]
    BadExclude { pattern: String, why: String },
    #[error("{index} places tensors in {shard}, which --exclude {pattern:?} leaves out: the restored model would not load; narrow the pattern so that it spares the shards")]
    ShardExcluded {
        index: PathBuf,
        shard: String,
        pattern: String,
    },
    #[error("{path}: {what}")]
    Unsupported { path: PathBuf, what: String },
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error("{path}: cannot open it: too many files open at once (the model has {files} files and each stays open while it is compiled); raise the limit, e.g. `ulimit -n {}`, and compile again", files + 64)]
    TooManyOpenFiles { path: PathBuf, files: usize },
    #[error("{path} is one of the files being compiled, not an artifact: writing over it would destroy it, --force or not; choose another output, such as model.tic")]
    OutputIsInput { path: PathBuf },
    #[error("{path} names a directory; give the artifact's file name, such as {}", path.join("model.tic").display())]
    OutputIsDirectory { path: PathBuf },
    #[error("{path}: tensor `{tensor}`: {source}")]
    Codec {
        path: PathBuf,
        tensor: String,
        #[source]
        source: tic_format::codec::CodecError,
    },
    #[error("{0}")]
    Crypto(#[from] tic_format::crypto::CryptoError),
    #[error("{path}: the file changed while it was being compiled (its length, modification time or identity moved); wait until whatever writes it is done, or compile again from a stable copy")]
    InputChanged { path: PathBuf },
    #[error("internal error: {0} (this is a bug in tic; please report it)")]
    Internal(String),
}

/// The [`CompileError::Io`] of an I/O failure on `path`.
pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CompileError + '_ {
    move |source| CompileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Errors of the tools that change an existing artifact's signature or
/// recipients.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AmendError {
    #[error(transparent)]
    Runtime(#[from] tic_runtime::RuntimeError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Sign(#[from] tic_format::sign::SignError),
    #[error("{0}")]
    Crypto(#[from] tic_format::crypto::CryptoError),
    #[error("{path}: {what}")]
    Usage { path: PathBuf, what: String },
    #[error(transparent)]
    Output(#[from] OutputError),
}
