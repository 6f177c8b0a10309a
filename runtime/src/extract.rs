//! Restoring an artifact's original files, byte for byte.
//!
//! Files are written into a staging directory and moved into place only
//! when every file has been restored and matches its digest, so a failure
//! or a crash never leaves a half-written model. A new output directory is
//! staged in the nearest existing directory of its path and renamed into
//! place whole; the missing directories between are made only then, so a
//! failed restore leaves none behind. An existing directory (a
//! mounted volume, say, which cannot be renamed) is staged inside itself,
//! on its own file system, and filled by moving the staged entries in.

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use tic_format::{FileEntry, FileKind, TensorEntry};

use crate::artifact::Artifact;
use crate::buffers::BufferPool;
use crate::error::RuntimeError;
use crate::Progress;

/// Original bytes decoded per window: the unit of decoding tasks and of
/// writing.
const WINDOW_BYTES: u64 = 1 << 20;

/// Runs of chunks (tensor, (global index, chunk)) decoded together.
type Window<'a> = Vec<(&'a TensorEntry, Vec<(u64, &'a tic_format::ChunkEntry)>)>;

/// Whether `name` is one of the temporaries tic writes beside or inside
/// an output (`.tic-*.partial` artifacts, `.tic-extract-*` and `.tic-old-*`
/// directories, `.tic-key-*` files of `keygen`): one found later was left
/// by an interrupted tic.
pub fn is_tic_temporary(name: &str) -> bool {
    name.starts_with(".tic-")
        && (name.ends_with(".partial")
            || name.starts_with(".tic-extract-")
            || name.starts_with(".tic-old-")
            || name.starts_with(".tic-key-"))
}

/// What the files restored side by side share: the budget of windows in
/// flight, and the buffers of finished windows for later ones (written
/// buffers and read buffers). Buffers used again are neither faulted in nor
/// zeroed by the kernel, as fresh ones would be; the pools hold at most what
/// the permits let be in use at once, and go when the restore is done.
struct Shared {
    permits: crate::ordered::Permits,
    spare: BufferPool,
    stored: BufferPool,
}

/// What `extract` wrote.
#[derive(Clone, Debug)]
pub struct ExtractReport {
    /// The files restored, under the output directory.
    pub files: Vec<PathBuf>,
    /// Their bytes.
    pub bytes: u64,
    /// The lossy-coded tensors, whose bytes are within their recorded
    /// bounds rather than identical (empty when the restore is exact).
    pub lossy_tensors: Vec<String>,
}

impl ExtractReport {
    /// An empty report for the artifact of header `h`.
    pub(crate) fn new(h: &tic_format::Header) -> Self {
        ExtractReport {
            files: Vec::new(),
            bytes: 0,
            lossy_tensors: h
                .lossy_tensor_names()
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }
}

impl Artifact {
    /// Restores every original file under `out_dir`, which must not exist
    /// or be an empty directory, unless `force` is set: its contents are
    /// then replaced, only after success, and it may not hold the artifact
    /// or the current directory. Stops with [`RuntimeError::Interrupted`],
    /// `out_dir` untouched, once `progress.cancelled()` says so.
    pub fn extract(
        &self,
        out_dir: &Path,
        force: bool,
        progress: &dyn Progress,
    ) -> Result<ExtractReport, RuntimeError> {
        // Without the key nothing can be restored: said before anything
        // is staged, as a streamed restore says it.
        self.need_key()?;
        let staged = Staged::new(out_dir, force, Some(self.path()))?;
        let staging = &staged.staging;
        let h = self.header();
        progress.start("restoring", h.files.iter().map(|f| f.size).sum());
        let mut report = ExtractReport::new(h);
        let interrupted = || RuntimeError::Interrupted {
            path: out_dir.to_path_buf(),
        };
        // Files are restored side by side, as many at once as there are
        // workers: each file's SHA-256 is one serial chain (about 1.2 GB/s
        // on a core), so one file at a time would cap a restore of many
        // shards at that speed whatever the cores. Their windows in flight
        // and buffers are shared, so memory stays bounded by the thread
        // count. Files are taken in order; once one fails, no later one
        // starts and those under way stop, so an error in the artifact is
        // reported for the first damaged file, as restoring the files one
        // by one would report it (an output error such as a full disk may
        // strike another of the files being written).
        let threads = rayon::current_num_threads();
        let side = h.files.len().clamp(1, threads);
        let shared = Shared {
            permits: crate::ordered::Permits::new(threads + 2 + side),
            spare: BufferPool::default(),
            stored: BufferPool::default(),
        };
        let next = AtomicUsize::new(0);
        let first_failed = AtomicUsize::new(usize::MAX);
        let results: Vec<Mutex<Option<Result<(), RuntimeError>>>> =
            h.files.iter().map(|_| Mutex::new(None)).collect();
        let restore_next = || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(f) = h.files.get(i) else {
                return;
            };
            if first_failed.load(Ordering::Relaxed) < i {
                return;
            }
            let give_up = || progress.cancelled() || first_failed.load(Ordering::Relaxed) < i;
            let dest = staging.path().join(&f.path);
            let r = if give_up() {
                Err(interrupted())
            } else {
                self.restore_file(f, &dest, progress, &shared, &give_up)
            };
            let r = r.map_err(|e| named_for_output(e, out_dir, f));
            if r.is_err() {
                first_failed.fetch_min(i, Ordering::Relaxed);
            }
            *results[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
        };
        if rayon::current_thread_index().is_some() {
            // Called inside a pool (`ThreadPool::install`): the files are
            // tasks of that pool, so its size decides where the work runs.
            rayon::in_place_scope(|s| {
                for _ in 1..side {
                    s.spawn(move |_| restore_next());
                }
                restore_next();
            });
        } else {
            // Called from outside (the CLI): threads that only hand windows
            // to the global pool and wait, leaving its workers to decoding;
            // a little faster than running the files as pool tasks. Should
            // a thread not start, the others restore its share.
            std::thread::scope(|s| {
                for _ in 1..side {
                    let _ = std::thread::Builder::new()
                        .name("tic-restore".into())
                        .spawn_scoped(s, restore_next);
                }
                restore_next();
            });
        }
        for (f, r) in h.files.iter().zip(results) {
            match r.into_inner().unwrap_or_else(PoisonError::into_inner) {
                Some(Ok(())) => {
                    report.files.push(out_dir.join(&f.path));
                    report.bytes += f.size;
                }
                Some(Err(e)) => return Err(e),
                // Not started: an earlier file failed.
                None => {}
            }
        }
        progress.finish();
        // The last chance to stop with nothing changed at `out_dir`.
        if progress.cancelled() {
            return Err(interrupted());
        }

        staged.put_in_place(out_dir)?;
        Ok(report)
    }

    /// Restores one file at `dest`, its windows in flight counted against
    /// `shared.permits`; stops with [`RuntimeError::Interrupted`] once
    /// `give_up` says so.
    fn restore_file(
        &self,
        f: &FileEntry,
        dest: &Path,
        progress: &dyn Progress,
        shared: &Shared,
        give_up: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), RuntimeError> {
        let started = std::time::Instant::now();
        let h = self.header();
        let tensors = h.file_tensors(f);
        if f.kind == FileKind::Safetensors {
            check_st_header(self.path(), f, tensors)?;
        }
        let mut out = FileOut::create(dest, &f.st_header)?;
        progress.advance(f.st_header.len() as u64);

        // Windows of chunks across the file's tensors, each decoded by one
        // pool task, its chunks one after the other. Windows in parallel
        // are enough: chunks as tasks of their own (rayon's nested join)
        // let a worker waiting on a stolen chunk of window 0 take up
        // windows 1, 2, ... meanwhile, so window 0, which the serial write
        // and digest wait for, came last (two threads restored a 4.5 MB
        // shard in 10.5-12 ms with them, 8 ms without).
        let mut windows: Vec<Window> = Vec::new();
        let mut cur: Window = Vec::new();
        let mut cur_bytes = 0u64;
        for t in tensors {
            for (i, c) in h.tensor_chunks(t) {
                if cur_bytes >= WINDOW_BYTES {
                    windows.push(std::mem::take(&mut cur));
                    cur_bytes = 0;
                }
                match cur.last_mut() {
                    Some((lt, v)) if std::ptr::eq(*lt, t) => v.push((i, c)),
                    _ => cur.push((t, vec![(i, c)])),
                }
                cur_bytes += c.orig_len;
            }
        }
        if !cur.is_empty() {
            windows.push(cur);
        }
        let Shared {
            permits,
            spare,
            stored,
        } = shared;
        // A decoded run of chunks: its buffer and how much of it is used.
        type Decoded = (Vec<u8>, usize);
        let decode = |w: &Window| -> Result<Vec<Decoded>, RuntimeError> {
            w.iter()
                .map(|(t, chunks)| {
                    let len: u64 = chunks.iter().map(|(_, c)| c.orig_len).sum();
                    let len = len as usize;
                    let mut buf = spare.take_at_least(len);
                    self.decode_chunks_into(t, chunks, &mut buf[..len], stored, false)?;
                    Ok((buf, len))
                })
                .collect()
        };
        // Windows are decoded in parallel and written and hashed in order
        // (see `crate::ordered`).
        crate::ordered::for_each_ordered_sharing(
            &windows,
            permits,
            decode,
            |bufs: Vec<Decoded>| -> Result<(), RuntimeError> {
                if give_up() {
                    return Err(RuntimeError::Interrupted {
                        path: dest.to_path_buf(),
                    });
                }
                for (b, len) in &bufs {
                    out.write(&b[..*len])?;
                    progress.advance(*len as u64);
                }
                spare.give(bufs.into_iter().map(|(b, _)| b));
                Ok(())
            },
        )?;
        out.finish(self.path(), f, tensors.len(), started)
    }
}

/// Whether directory `dir` holds `path` (is it or one of its ancestors),
/// compared by device and inode, so that another name of the same
/// directory (a symbolic link, a bind mount) is seen through. False when
/// either cannot be looked at.
pub(crate) fn holds(dir: &Path, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(d), Ok(p)) = (fs::metadata(dir), path.canonicalize()) else {
        return false;
    };
    p.ancestors()
        .any(|a| fs::metadata(a).is_ok_and(|m| (m.dev(), m.ino()) == (d.dev(), d.ino())))
}

/// An error of restoring file `f`, as the caller sees it: an output error
/// names the path the file was to have under `out_dir`, not the staging
/// one, and an interruption names `out_dir`.
pub(crate) fn named_for_output(e: RuntimeError, out_dir: &Path, f: &FileEntry) -> RuntimeError {
    match e {
        RuntimeError::Interrupted { .. } => RuntimeError::Interrupted {
            path: out_dir.to_path_buf(),
        },
        RuntimeError::WriteOutput { source, .. } => RuntimeError::WriteOutput {
            path: out_dir.join(&f.path),
            source,
        },
        e => e,
    }
}

/// The error of writing the restored file at `dest`.
fn write_error(dest: &Path) -> impl Fn(std::io::Error) -> RuntimeError + '_ {
    move |source| RuntimeError::WriteOutput {
        path: dest.to_path_buf(),
        source,
    }
}

/// A restored file being written at `dest`: its bytes go to the file and
/// into its SHA-256.
pub(crate) struct FileOut<'a> {
    dest: &'a Path,
    early: crate::writeback::EarlyWriteback,
    // Small tensors are gathered; runs at least this long go straight to
    // the file without a copy.
    out: std::io::BufWriter<fs::File>,
    digest: ring::digest::Context,
}

impl<'a> FileOut<'a> {
    /// Creates the file (and the directories it is in) and writes
    /// `st_header` (the stored safetensors header; empty for other files).
    pub(crate) fn create(dest: &'a Path, st_header: &[u8]) -> Result<Self, RuntimeError> {
        if let Some(d) = dest.parent() {
            fs::create_dir_all(d).map_err(|source| RuntimeError::Io {
                path: d.to_path_buf(),
                source,
            })?;
        }
        let file = fs::File::create(dest).map_err(write_error(dest))?;
        let mut out = FileOut {
            dest,
            early: crate::writeback::EarlyWriteback::new(&file),
            out: std::io::BufWriter::with_capacity(64 << 10, file),
            digest: ring::digest::Context::new(&ring::digest::SHA256),
        };
        out.write(st_header)?;
        Ok(out)
    }

    /// Appends `b`.
    pub(crate) fn write(&mut self, b: &[u8]) -> Result<(), RuntimeError> {
        self.out.write_all(b).map_err(write_error(self.dest))?;
        self.digest.update(b);
        self.early.wrote(b.len() as u64);
        Ok(())
    }

    /// Flushes the file to disk and checks its digest against the entry
    /// `f` of the artifact at `artifact` (`tensors` of them, restored since
    /// `started`, for the log).
    pub(crate) fn finish(
        mut self,
        artifact: &Path,
        f: &FileEntry,
        tensors: usize,
        started: std::time::Instant,
    ) -> Result<(), RuntimeError> {
        let io = write_error(self.dest);
        self.out.flush().map_err(&io)?;
        self.early.finish();
        let file = self.out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(&io)?;
        if self.digest.finish().as_ref() != f.sha256 {
            return Err(RuntimeError::FileDigest {
                path: artifact.to_path_buf(),
                file: f.path.clone(),
            });
        }
        let what = match f.kind {
            FileKind::Safetensors => format!("{} bytes, {tensors} tensors", f.size),
            _ => format!("{} bytes", f.size),
        };
        tracing::info!(
            "restored {} ({what}) in {:.1?}; its SHA-256 matches",
            f.path,
            started.elapsed()
        );
        Ok(())
    }
}

/// A restore's staging directory, made by [`Staged::new`] after the
/// checks on the output, and how its files are put in place.
pub(crate) struct Staged {
    /// Where the files are restored (removed when dropped).
    pub(crate) staging: tempfile::TempDir,
    /// The output directory exists and is filled in place.
    in_place: bool,
    /// What is in the output directory is replaced (--force).
    replacing: bool,
    /// The output directory's parent.
    parent: PathBuf,
}

impl Staged {
    /// Checks `out_dir` (new, empty, or with `force` a directory whose
    /// contents are replaced, which may not hold `artifact` or the current
    /// directory) and makes the staging directory for it.
    pub(crate) fn new(
        out_dir: &Path,
        force: bool,
        artifact: Option<&Path>,
    ) -> Result<Staged, RuntimeError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RuntimeError::Io { path, source }
        };
        // An existing directory (or a link to one) is filled in place.
        let in_place = fs::metadata(out_dir).is_ok_and(|m| m.is_dir());
        // Empty but for what an interrupted restore left (moved aside and
        // deleted with the old contents).
        let mut empty = in_place;
        if in_place {
            for e in fs::read_dir(out_dir).map_err(io(out_dir))? {
                let name = e.map_err(io(out_dir))?.file_name();
                empty &= name.to_str().is_some_and(is_tic_temporary);
            }
        }
        let replacing = out_dir.symlink_metadata().is_ok() && !empty;
        // --force replaces a directory's contents, never a file (a key, an
        // artifact given as -o by mistake).
        if replacing && !in_place {
            return Err(RuntimeError::OutputNotADirectory {
                path: out_dir.to_path_buf(),
            });
        }
        if replacing && !force {
            return Err(RuntimeError::OutputExists {
                path: out_dir.to_path_buf(),
            });
        }
        // Replacing a directory deletes what is in it: not the artifact
        // being read, and not the directory the command runs in.
        if replacing {
            let in_use = |what: &str| RuntimeError::OutputInUse {
                path: out_dir.to_path_buf(),
                what: what.to_string(),
            };
            if artifact.is_some_and(|a| holds(out_dir, a)) {
                return Err(in_use("the artifact being restored"));
            }
            // (`cd ~; tic decompress ... -o . --force` would empty it.)
            if std::env::current_dir().is_ok_and(|c| holds(out_dir, &c)) {
                return Err(in_use("the current directory"));
            }
        }
        let parent = match out_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let staging_in = if in_place {
            out_dir.to_path_buf()
        } else {
            // Staged in the nearest directory of the path that exists: the
            // missing ones are made only when the restore is put in place,
            // so a failed one leaves none behind (`-o new/a/b/model`).
            let nearest = parent
                .ancestors()
                .find(|a| a.symlink_metadata().is_ok())
                .unwrap_or(Path::new("."));
            // A file where a directory of the path should be (`-o key.pub/x`).
            if !nearest.is_dir() {
                return Err(RuntimeError::OutputNotADirectory {
                    path: nearest.to_path_buf(),
                });
            }
            // Ancestors are taken from the path's text, but the system
            // resolves `..` for real: after a missing directory it may
            // lead elsewhere (another file system, where the final rename
            // would fail), so such a path is made first, as it must be.
            let climbs = parent.strip_prefix(nearest).map_or(true, |rest| {
                rest.components().any(|c| c == Component::ParentDir)
            });
            if climbs {
                fs::create_dir_all(&parent).map_err(io(&parent))?;
                parent.clone()
            } else {
                nearest.to_path_buf()
            }
        };
        let staging = tempfile::Builder::new()
            .prefix(".tic-extract-")
            .tempdir_in(&staging_in)
            .map_err(io(&staging_in))?;
        Ok(Staged {
            staging,
            in_place,
            replacing,
            parent,
        })
    }

    /// Puts the restored files in place at `out_dir`.
    pub(crate) fn put_in_place(self, out_dir: &Path) -> Result<(), RuntimeError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RuntimeError::Io { path, source }
        };
        let Staged {
            staging,
            in_place,
            replacing,
            parent,
        } = self;
        if in_place {
            return fill_in_place(out_dir, staging.path(), replacing);
        }
        // A temporary directory is private (0700); the restored model is not.
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755))
                .map_err(io(staging.path()))?;
        }
        // Swap into place: move any old output aside, rename, then delete
        // it. Should a rename fail, the old output is put back and the
        // temporary directories go (dropped).
        if out_dir.symlink_metadata().is_ok() {
            // Something there now that was not there at the start (another
            // tic restoring to the same place) is kept, unless --force.
            if !replacing {
                return Err(RuntimeError::OutputChanged {
                    path: out_dir.to_path_buf(),
                    entry: out_dir.to_path_buf(),
                });
            }
            let old = tempfile::Builder::new()
                .prefix(".tic-old-")
                .tempdir_in(&parent)
                .map_err(io(&parent))?;
            let aside = old.path().join("old");
            fs::rename(out_dir, &aside).map_err(io(out_dir))?;
            if let Err(e) = fs::rename(staging.path(), out_dir) {
                let _ = fs::rename(&aside, out_dir);
                return Err(io(out_dir)(e));
            }
        } else {
            fs::create_dir_all(&parent).map_err(io(&parent))?;
            fs::rename(staging.path(), out_dir).map_err(io(out_dir))?;
        }
        // Moved away: nothing is left to delete.
        let _ = staging.keep();
        Ok(())
    }
}

/// Moves what `out_dir` holds (but `staging`, inside it) aside, then every
/// entry of `staging` into `out_dir`; all renames within one file system.
/// Should one fail, what was moved goes back where it was. The old entries
/// are deleted at the end; `staging`, empty by then, goes with its guard.
/// Unless `replacing` (--force on a directory that had contents), only
/// the leftovers of interrupted runs may be there to move aside: anything
/// else appeared during the restore (another tic restoring there, a user)
/// and is kept, the restore refused.
fn fill_in_place(out_dir: &Path, staging: &Path, replacing: bool) -> Result<(), RuntimeError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| RuntimeError::Io { path, source }
    };
    // The entries of `dir` but those named like the `skip` paths (compared
    // by name: a temporary directory's path is made absolute).
    let entries = |dir: &Path, skip: &[&Path]| -> Result<Vec<PathBuf>, RuntimeError> {
        let skip: Vec<_> = skip.iter().filter_map(|p| p.file_name()).collect();
        let mut v = Vec::new();
        for e in fs::read_dir(dir).map_err(io(dir))? {
            let e = e.map_err(io(dir))?;
            if !skip.contains(&e.file_name().as_os_str()) {
                v.push(e.path());
            }
        }
        Ok(v)
    };
    // Renames every (from, to), undoing the done ones on a failure.
    let move_all = |moves: &[(PathBuf, PathBuf)]| -> Result<(), RuntimeError> {
        for (i, (from, to)) in moves.iter().enumerate() {
            if let Err(e) = fs::rename(from, to) {
                for (from, to) in moves[..i].iter().rev() {
                    let _ = fs::rename(to, from);
                }
                return Err(io(to)(e));
            }
        }
        Ok(())
    };
    let old = tempfile::Builder::new()
        .prefix(".tic-old-")
        .tempdir_in(out_dir)
        .map_err(io(out_dir))?;
    let found = entries(out_dir, &[staging, old.path()])?;
    if !replacing {
        let temporary = |p: &PathBuf| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(is_tic_temporary)
        };
        if let Some(p) = found.iter().find(|p| !temporary(p)) {
            return Err(RuntimeError::OutputChanged {
                path: out_dir.to_path_buf(),
                entry: p.clone(),
            });
        }
    }
    let aside: Vec<(PathBuf, PathBuf)> = found
        .into_iter()
        .map(|p| {
            let to = old.path().join(p.file_name().unwrap_or_default());
            (p, to)
        })
        .collect();
    move_all(&aside)?;
    let new: Vec<(PathBuf, PathBuf)> = entries(staging, &[])?
        .into_iter()
        .map(|p| {
            let to = out_dir.join(p.file_name().unwrap_or_default());
            (p, to)
        })
        .collect();
    if let Err(e) = move_all(&new) {
        for (from, to) in aside.iter().rev() {
            let _ = fs::rename(to, from);
        }
        return Err(e);
    }
    Ok(())
}

/// Checks that a stored safetensors header describes exactly the tensor
/// entries that follow it (names, dtypes, shapes, offsets).
pub(crate) fn check_st_header(
    artifact: &Path,
    f: &FileEntry,
    tensors: &[TensorEntry],
) -> Result<(), RuntimeError> {
    let bad = |why: String| RuntimeError::StHeaderMismatch {
        path: artifact.to_path_buf(),
        file: f.path.clone(),
        why,
    };
    // Header::parse checked that st_header is its 8-byte length prefix and
    // that many bytes of JSON.
    let data_len = f.size - f.st_header.len() as u64;
    let st =
        tic_format::safetensors::parse_header(f.st_header.get(8..).unwrap_or_default(), data_len)
            .map_err(|e| bad(e.to_string()))?;
    if st.len() != tensors.len() {
        return Err(bad(format!(
            "{} tensors in the JSON, {} entries",
            st.len(),
            tensors.len()
        )));
    }
    for (s, t) in st.iter().zip(tensors) {
        if s.name != t.name
            || s.dtype != t.dtype
            || s.shape != t.shape
            || s.end - s.begin != t.orig_len
        {
            return Err(bad(format!(
                "entry `{}` differs from the JSON's `{}`",
                t.name, s.name
            )));
        }
    }
    Ok(())
}
