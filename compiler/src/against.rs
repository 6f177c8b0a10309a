//! Checking an artifact against a model on disk (`tic verify --against`):
//! whether the files it restores are exactly those of the model, compared
//! by size and SHA-256 with the signed header's file entries, without
//! decrypting or decoding anything. This is how an audit shows that what
//! ships is what was validated.

use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use tic_format::Header;

use crate::error::{io, CompileError};
use crate::input::{model_files, Exclude};

/// A file whose contents differ between the artifact and the model.
#[derive(Clone, Debug)]
pub struct Difference {
    /// Its path relative to the model.
    pub path: String,
    /// Sizes in the artifact and on disk.
    pub artifact_size: u64,
    pub model_size: u64,
    /// It holds lossy tensors: the artifact records the file as restored,
    /// which by design differs from the original.
    pub lossy: bool,
}

/// How an artifact's files compare with a model's.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    /// Files with the same size and SHA-256 in both.
    pub matched: Vec<String>,
    pub different: Vec<Difference>,
    /// In the artifact, not in the model.
    pub missing: Vec<String>,
    /// In the model, not in the artifact.
    pub extra: Vec<String>,
}

impl Comparison {
    /// Every file of each is in the other, with the same contents.
    pub fn is_match(&self) -> bool {
        self.different.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

/// Compares the files `header` describes with those of the model at
/// `model` (a directory, walked as a compile walks it, less what `exclude`
/// matches and the `artifact` file itself if it is inside, or one file).
/// Local files are hashed in parallel; one whose size already differs is
/// not read.
pub fn compare_with_model(
    header: &Header,
    model: &Path,
    exclude: &[Exclude],
    artifact: Option<&Path>,
) -> Result<Comparison, CompileError> {
    let local = model_files(model, exclude, artifact)?;
    let by_rel: std::collections::HashMap<&str, &PathBuf> =
        local.iter().map(|(p, r)| (r.as_str(), p)).collect();
    let in_artifact: std::collections::HashSet<&str> =
        header.files.iter().map(|f| f.path.as_str()).collect();
    let checked: Vec<Result<Option<Difference>, CompileError>> = header
        .files
        .par_iter()
        .filter_map(|f| by_rel.get(f.path.as_str()).map(|p| (f, *p)))
        .map(|(f, path)| {
            let size = std::fs::metadata(path).map_err(io(path))?.len();
            let same = size == f.size && sha256_file(path)? == f.sha256;
            Ok((!same).then(|| Difference {
                path: f.path.clone(),
                artifact_size: f.size,
                model_size: size,
                lossy: header.file_tensors(f).iter().any(|t| t.lossy.is_some()),
            }))
        })
        .collect();
    let mut cmp = Comparison::default();
    for r in checked {
        if let Some(d) = r? {
            cmp.different.push(d);
        }
    }
    for f in &header.files {
        if !by_rel.contains_key(f.path.as_str()) {
            cmp.missing.push(f.path.clone());
        } else if !cmp.different.iter().any(|d| d.path == f.path) {
            cmp.matched.push(f.path.clone());
        }
    }
    cmp.extra = local
        .iter()
        .filter(|(_, r)| !in_artifact.contains(r.as_str()))
        .map(|(_, r)| r.clone())
        .collect();
    Ok(cmp)
}

/// SHA-256 of a file, read 1 MiB at a time.
fn sha256_file(path: &Path) -> Result<[u8; 32], CompileError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(path)(e)),
        };
        ctx.update(&buf[..n]);
    }
    Ok(crate::compile::digest32(ctx))
}
