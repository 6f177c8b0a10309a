//! Restoring an artifact's original files, byte for byte.
//!
//! Files are written into a staging directory beside the output and renamed
//! into place only when every file has been restored and matches its
//! digest, so a failure or a crash never leaves a half-written model.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use tic_format::{FileEntry, FileKind, TensorEntry};

use crate::artifact::Artifact;
use crate::error::RuntimeError;
use crate::Progress;

/// Original bytes decoded per window: the unit of decoding tasks and of
/// writing.
const WINDOW_BYTES: u64 = 1 << 20;

/// Runs of chunks (tensor, (global index, chunk)) decoded together.
type Window<'a> = Vec<(&'a TensorEntry, Vec<(u64, &'a tic_format::ChunkEntry)>)>;

/// What `extract` wrote.
#[derive(Clone, Debug)]
pub struct ExtractReport {
    pub files: Vec<PathBuf>,
    pub bytes: u64,
}

impl Artifact {
    /// Restores every original file under `out_dir`, which must not exist
    /// unless `force` is set (it is then replaced, only after success).
    pub fn extract(
        &self,
        out_dir: &Path,
        force: bool,
        progress: &dyn Progress,
    ) -> Result<ExtractReport, RuntimeError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| RuntimeError::Io { path, source }
        };
        if out_dir.symlink_metadata().is_ok() && !force {
            return Err(RuntimeError::OutputExists {
                path: out_dir.to_path_buf(),
            });
        }
        let parent = match out_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(io(&parent))?;
        let staging = tempfile::Builder::new()
            .prefix(".tic-extract-")
            .tempdir_in(&parent)
            .map_err(io(&parent))?;

        let h = self.header();
        progress.start("restoring", h.files.iter().map(|f| f.size).sum());
        let mut report = ExtractReport {
            files: Vec::new(),
            bytes: 0,
        };
        for f in &h.files {
            let dest = staging.path().join(&f.path);
            if let Some(d) = dest.parent() {
                fs::create_dir_all(d).map_err(io(d))?;
            }
            self.restore_file(f, &dest, progress)?;
            report.files.push(out_dir.join(&f.path));
            report.bytes += f.size;
        }
        progress.finish();

        // A temporary directory is private (0700); the restored model is not.
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o755))
                .map_err(io(staging.path()))?;
        }
        // Swap into place: move any old output aside, rename, then delete it.
        let staged = staging.keep();
        if out_dir.symlink_metadata().is_ok() {
            let old = tempfile::Builder::new()
                .prefix(".tic-old-")
                .tempdir_in(&parent)
                .map_err(io(&parent))?
                .keep();
            let aside = old.join("old");
            fs::rename(out_dir, &aside).map_err(io(out_dir))?;
            fs::rename(&staged, out_dir).map_err(io(out_dir))?;
            let _ = fs::remove_dir_all(&old);
        } else {
            fs::rename(&staged, out_dir).map_err(io(out_dir))?;
        }
        Ok(report)
    }

    fn restore_file(
        &self,
        f: &FileEntry,
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<(), RuntimeError> {
        let h = self.header();
        let tensors = h.file_tensors(f);
        if f.kind == FileKind::Safetensors {
            check_st_header(self.path(), f, tensors)?;
        }
        let io = |source| RuntimeError::Io {
            path: dest.to_path_buf(),
            source,
        };
        let file = fs::File::create(dest).map_err(io)?;
        let early = crate::writeback::EarlyWriteback::new(&file);
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        out.write_all(&f.st_header).map_err(io)?;
        digest.update(&f.st_header);
        progress.advance(f.st_header.len() as u64);

        // Windows of chunks across the file's tensors, each decoded by one
        // pool task (its tensors' chunks in parallel).
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
        // Written buffers are used again for later windows: fresh ones would
        // be faulted in and zeroed by the kernel for every window.
        let spare = std::sync::Mutex::new(Vec::<Vec<u8>>::new());
        let decode = |w: &Window| -> Result<Vec<Vec<u8>>, RuntimeError> {
            use rayon::prelude::*;
            w.par_iter()
                .map(|(t, chunks)| {
                    let len: u64 = chunks.iter().map(|(_, c)| c.orig_len).sum();
                    let mut buf = spare
                        .lock()
                        .ok()
                        .and_then(|mut s| s.pop())
                        .unwrap_or_default();
                    buf.resize(len as usize, 0);
                    self.decode_chunks_into(t, chunks, &mut buf)?;
                    Ok(buf)
                })
                .collect()
        };
        // The file's bytes go out in order through one sink (write, digest),
        // the only serial chain. Whichever task completes the next window in
        // order drains every window then ready into the sink; other tasks
        // leave their window and go back to decoding, so no thread waits on
        // the chain and no extra thread competes for the cores. At most
        // threads + 2 windows are decoded and not yet written.
        struct Sink<W> {
            out: W,
            digest: ring::digest::Context,
            early: crate::writeback::EarlyWriteback,
            next: usize,
            failed: Option<RuntimeError>,
        }
        type Decoded = Result<Vec<Vec<u8>>, RuntimeError>;
        let sink = std::sync::Mutex::new(Sink {
            out,
            digest,
            early,
            next: 0,
            failed: None,
        });
        let ready = std::sync::Mutex::new(std::collections::BTreeMap::<usize, Decoded>::new());
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (permit_tx, permit_rx) = std::sync::mpsc::channel::<()>();
        for _ in 0..rayon::current_num_threads() + 2 {
            let _ = permit_tx.send(());
        }
        let drain = |permit: &std::sync::mpsc::Sender<()>| loop {
            let Ok(mut sk) = sink.try_lock() else {
                return; // the task holding the sink drains what follows
            };
            // (The closure takes the guard: the map is unlocked while the
            // window is written.)
            while let Some(r) = ready.lock().ok().and_then(|mut m| m.remove(&sk.next)) {
                let sk = &mut *sk;
                match r {
                    Ok(bufs) if sk.failed.is_none() => {
                        for b in &bufs {
                            if let Err(e) = sk.out.write_all(b) {
                                sk.failed = Some(io(e));
                                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                                break;
                            }
                            sk.digest.update(b);
                            progress.advance(b.len() as u64);
                            sk.early.wrote(b.len() as u64);
                        }
                        if let Ok(mut s) = spare.lock() {
                            s.extend(bufs);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        sk.failed.get_or_insert(e);
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                sk.next += 1;
                let _ = permit.send(());
            }
            let next = sk.next;
            drop(sk);
            // A window may have become ready after the last look and before
            // the sink was released: look again, or leave.
            if !ready.lock().is_ok_and(|m| m.contains_key(&next)) {
                return;
            }
        };
        rayon::in_place_scope(|sc| {
            for (k, w) in windows.iter().enumerate() {
                if !acquire(&permit_rx) || stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let (decode, drain, ready, permit) = (&decode, &drain, &ready, permit_tx.clone());
                sc.spawn(move |_| {
                    let r = decode(w);
                    if let Ok(mut m) = ready.lock() {
                        m.insert(k, r);
                    }
                    drain(&permit);
                });
            }
        });
        let Sink {
            mut out,
            digest,
            early,
            next,
            failed,
        } = sink
            .into_inner()
            .map_err(|_| RuntimeError::Internal("a decoding task panicked".into()))?;
        if let Some(e) = failed {
            return Err(e);
        }
        if next != windows.len() {
            return Err(RuntimeError::Internal("windows were left unwritten".into()));
        }
        out.flush().map_err(io)?;
        early.finish();
        out.into_inner()
            .map_err(|e| io(e.into_error()))?
            .sync_all()
            .map_err(io)?;
        if digest.finish().as_ref() != f.sha256 {
            return Err(RuntimeError::FileDigest {
                path: self.path().to_path_buf(),
                file: f.path.clone(),
            });
        }
        Ok(())
    }
}

/// Takes a permit; false once no more can come. A pool worker (extraction
/// called from inside a rayon pool) runs pending tasks while it waits, so a
/// one-thread pool cannot deadlock; other threads simply block.
fn acquire(permits: &std::sync::mpsc::Receiver<()>) -> bool {
    use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
    loop {
        match permits.try_recv() {
            Ok(()) => return true,
            Err(TryRecvError::Disconnected) => return false,
            Err(TryRecvError::Empty) => {}
        }
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => {}
            Some(rayon::Yield::Idle) => {
                match permits.recv_timeout(std::time::Duration::from_millis(1)) {
                    Ok(()) => return true,
                    Err(RecvTimeoutError::Disconnected) => return false,
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
            None => return permits.recv().is_ok(),
        }
    }
}

/// Checks that a stored safetensors header describes exactly the tensor
/// entries that follow it (names, dtypes, shapes, offsets).
fn check_st_header(
    artifact: &Path,
    f: &FileEntry,
    tensors: &[TensorEntry],
) -> Result<(), RuntimeError> {
    let bad = |why: String| RuntimeError::StHeaderMismatch {
        path: artifact.to_path_buf(),
        file: f.path.clone(),
        why,
    };
    let n = u64::from_le_bytes(f.st_header[..8].try_into().expect("checked length"));
    if n != f.st_header.len() as u64 - 8 {
        return Err(bad(format!("its length prefix says {n} bytes")));
    }
    let data_len = f.size - f.st_header.len() as u64;
    let st = tic_format::safetensors::parse_header(&f.st_header[8..], data_len)
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
