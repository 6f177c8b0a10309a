//! Verifying an artifact as it streams in (`tic verify -`, say from
//! `curl URL | tic verify -`): its sections in file order, the signature
//! before the header is parsed, then every chunk against its signed digest
//! as it arrives, with nothing to seek in and nothing stored.

use std::io::Read;
use std::path::Path;

use rayon::prelude::*;
use tic_format::header::{Preamble, PREAMBLE_LEN};
use tic_format::FormatError;

use tic_format::crypto::PayloadKey;
use tic_format::{ChunkEntry, FileEntry, FileKind};

use crate::artifact::{
    chunk_owners, decode_stored, display_name, log_opened, need_key, short_preamble, unwrap_key,
    Head, OpenOptions, Trust,
};
use crate::buffers::BufferPool;
use crate::error::RuntimeError;
use crate::extract::{check_st_header, named_for_output, ExtractReport, FileOut, Staged};
use crate::Progress;

/// Payload bytes read before their chunks are hashed, in parallel: the
/// memory a streamed verify holds (one larger chunk is read whole). Sixteen
/// default chunks, hashed at over 1 GB/s each: more than a network gives.
const BATCH_BYTES: u64 = 16 << 20;

/// Bytes after the artifact's end that a streamed verify counts, to report
/// the stream's length; past them it stops reading.
const TRAILING_COUNTED: u64 = 1 << 20;

/// Verifies the artifact that `reader` yields, named `name` in messages:
/// the same checks as [`crate::Artifact::open`] followed by
/// [`crate::Artifact::verify_chunks`], and that the stream ends where the
/// preamble says the artifact does. Returns the checked front of the
/// artifact for reports. Memory stays bounded by the header and
/// 16 MiB of payload, whatever the artifact claims.
pub fn verify_stream(
    reader: &mut dyn Read,
    name: &Path,
    trust: &Trust,
    progress: &dyn Progress,
) -> Result<Head, RuntimeError> {
    let path = name.to_path_buf();
    let mut read = Counted { reader, pos: 0 };
    let (head, total) = front(&mut read, &path, trust)?;
    let header = head.header();
    let chunks = &header.chunks;
    let owner = chunk_owners(header);
    progress.start("verifying", header.payload_len);
    let mut buf = Vec::new();
    // Batches of at most BATCH_BYTES stored, unless one chunk is larger.
    for batch in windows(chunks, 0..chunks.len(), u64::MAX, BATCH_BYTES) {
        let bytes: u64 = chunks[batch.clone()].iter().map(|c| c.stored_len).sum();
        // At most BATCH_BYTES up front; a larger chunk grows the buffer as
        // its bytes arrive.
        buf.clear();
        buf.reserve_exact(bytes.min(BATCH_BYTES) as usize);
        if let Err(e) = read.exactly(bytes, &mut buf, &path, total) {
            progress.finish();
            return Err(e);
        }
        let base = chunks[batch.start].offset;
        let bad = batch.into_par_iter().find_first(|&k| {
            let c = &chunks[k];
            let at = (c.offset - base) as usize;
            tic_format::sha256(&buf[at..at + c.stored_len as usize]) != c.sha256
        });
        if let Some(k) = bad {
            progress.finish();
            return Err(RuntimeError::ChunkDigest {
                path,
                tensor: display_name(&header.tensors[owner[k]]),
                chunk: k as u64,
            });
        }
        progress.advance(bytes);
    }
    progress.finish();
    read.end(&path, total)?;
    tracing::info!(
        "checked the digests of {} chunks ({} bytes) from {} as they streamed in",
        chunks.len(),
        header.payload_len,
        path.display()
    );
    Ok(head)
}

/// Reads the front of the artifact that `reader` yields (preamble, header,
/// signature and recipients sections), named `name` in messages, with the
/// checks of [`crate::Artifact::open`] but one: the payload is not read, so
/// neither its digests nor the artifact's length are checked (what
/// [`verify_stream`] adds). For `tic inspect -`: the reader may be left
/// anywhere after the front.
pub fn read_head(reader: &mut dyn Read, name: &Path, trust: &Trust) -> Result<Head, RuntimeError> {
    let path = name.to_path_buf();
    front(&mut Counted { reader, pos: 0 }, &path, trust).map(|(head, _)| head)
}

/// Reads and checks the sections before the payload; returns them and the
/// artifact's length as the preamble gives it.
fn front(read: &mut Counted, path: &Path, trust: &Trust) -> Result<(Head, u64), RuntimeError> {
    let fmt = |source| RuntimeError::Format {
        path: path.to_path_buf(),
        source,
    };
    let mut pre = Vec::with_capacity(PREAMBLE_LEN);
    read.up_to(PREAMBLE_LEN as u64, &mut pre, path)?;
    let Ok(pre) = <[u8; PREAMBLE_LEN]>::try_from(pre.as_slice()) else {
        return Err(fmt(short_preamble(&pre)));
    };
    let preamble = Preamble::parse_unsized(&pre).map_err(fmt)?;
    let total = preamble
        .total_len()
        .ok_or_else(|| length_mismatch(path, u64::MAX, read.pos))?;
    let head = Head::read(path.to_path_buf(), preamble, trust, |offset, len| {
        debug_assert_eq!(offset, read.pos, "sections are read in file order");
        let mut buf = Vec::new();
        read.exactly(len, &mut buf, path, total)?;
        Ok(buf)
    })?;
    Ok((head, total))
}

/// Restores the files of the artifact that `reader` yields, named `name`
/// in messages, under `out_dir` (`curl -sS URL | tic decompress - -o DIR`),
/// as [`crate::Artifact::extract`] restores them from a file, with
/// nothing to seek in and nothing stored but the output: the checks of
/// [`crate::Artifact::open`] on the front, each file's stored safetensors
/// header against its tensor entries, every chunk against its signed digest
/// before it is decrypted or decoded, every file against its digest, and
/// that the stream ends where the preamble says the artifact does; errors
/// are those `extract` gives for the same artifact, in the same order. The
/// files are put in place only once all of that passed; until then they
/// are staged as `extract` stages them, and a failure leaves `out_dir` as
/// it was. Memory stays bounded by the header
/// and a few windows of payload, whatever the artifact claims.
///
/// A reader may fail once `progress` says to stop (the CLI's does, rather
/// than wait on a stalled stream): any failure after that is reported as
/// [`RuntimeError::Interrupted`], the stop it is.
pub fn extract_stream(
    reader: &mut dyn Read,
    name: &Path,
    opts: &OpenOptions,
    out_dir: &Path,
    force: bool,
    progress: &dyn Progress,
) -> Result<ExtractReport, RuntimeError> {
    let mut restore = || -> Result<ExtractReport, RuntimeError> {
        let path = name.to_path_buf();
        let mut read = Counted { reader, pos: 0 };
        let (head, total) = front(&mut read, &path, &opts.trust)?;
        let key = unwrap_key(&head, &opts.identities)?;
        log_opened(&head, key.is_some());
        let h = head.header();
        need_key(&head, key.as_ref())?;
        // `name` is a path when a caller streams a file: the output may not
        // hold it.
        let staged = Staged::new(out_dir, force, Some(name))?;
        progress.start("restoring", h.files.iter().map(|f| f.size).sum());
        let restored = Restore {
            head: &head,
            key: key.as_ref(),
            owner: chunk_owners(h),
            total,
            spare: BufferPool::default(),
            stored: BufferPool::default(),
        }
        .files(&mut read, staged.staging.path(), out_dir, progress);
        progress.finish();
        let report = restored?;
        read.end(&path, total)?;
        // The last chance to stop with nothing changed at `out_dir`.
        if progress.cancelled() {
            return Err(RuntimeError::Interrupted {
                path: out_dir.to_path_buf(),
            });
        }
        staged.put_in_place(out_dir)?;
        tracing::info!(
            "restored {} files from {} as it streamed in",
            report.files.len(),
            path.display()
        );
        Ok(report)
    };
    restore().map_err(|e| {
        if progress.cancelled() {
            RuntimeError::Interrupted {
                path: out_dir.to_path_buf(),
            }
        } else {
            e
        }
    })
}

/// Bytes of payload, stored and original, decoded together by a streamed
/// restore while the next window is read and the last one written.
/// Windows end at file ends, and hold at least one chunk (which may be
/// larger).
const RESTORE_WINDOW: u64 = 4 << 20;

/// Cuts the chunks `range` of `chunks` into consecutive windows of at most
/// `orig_limit` original and at most `stored_limit` stored bytes, unless
/// one chunk is larger (it is a window of its own). Both lengths bound a
/// window: stored bytes are held before their digests are checked, so an
/// artifact whose chunks claim far more stored than original bytes is read
/// no further ahead. (Stored chunks may be a little longer than their
/// original bytes: incompressible ones, encrypted, carry a tag.)
fn windows(
    chunks: &[ChunkEntry],
    range: std::ops::Range<usize>,
    orig_limit: u64,
    stored_limit: u64,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut at = range.start;
    while let Some(c) = chunks.get(at).filter(|_| at < range.end) {
        let (mut orig, mut stored) = (c.orig_len, c.stored_len);
        let mut stop = at + 1;
        while let Some(c) = chunks.get(stop).filter(|_| stop < range.end) {
            if orig + c.orig_len > orig_limit || stored + c.stored_len > stored_limit {
                break;
            }
            orig += c.orig_len;
            stored += c.stored_len;
            stop += 1;
        }
        out.push(at..stop);
        at = stop;
    }
    out
}

/// What a streamed restore works with.
struct Restore<'a> {
    head: &'a Head,
    key: Option<&'a PayloadKey>,
    /// For each chunk, the index of its tensor.
    owner: Vec<usize>,
    /// The artifact's length, as its preamble gives it.
    total: u64,
    /// Decoded windows' buffers, and stored chunks' buffers, for later ones.
    spare: BufferPool,
    stored: BufferPool,
}

impl Restore<'_> {
    /// Restores every file, in payload order, into `staging`.
    fn files(
        &self,
        read: &mut Counted,
        staging: &Path,
        out_dir: &Path,
        progress: &dyn Progress,
    ) -> Result<ExtractReport, RuntimeError> {
        let h = self.head.header();
        let mut report = ExtractReport::new(h);
        for f in &h.files {
            let dest = staging.join(&f.path);
            self.file(read, f, &dest, out_dir, progress)
                .map_err(|e| named_for_output(e, out_dir, f))?;
            report.files.push(out_dir.join(&f.path));
            report.bytes += f.size;
        }
        Ok(report)
    }

    /// Restores file `f` at `dest` from its chunks, which come next in
    /// the stream: window by window, each decoded while the next is read
    /// and the one before is written.
    fn file(
        &self,
        read: &mut Counted,
        f: &FileEntry,
        dest: &Path,
        out_dir: &Path,
        progress: &dyn Progress,
    ) -> Result<(), RuntimeError> {
        let started = std::time::Instant::now();
        let h = self.head.header();
        let tensors = h.file_tensors(f);
        if f.kind == FileKind::Safetensors {
            check_st_header(self.head.path(), f, tensors)?;
        }
        let mut out = FileOut::create(dest, &f.st_header)?;
        progress.advance(f.st_header.len() as u64);
        // The file's chunks, cut into windows.
        let first = tensors.first().map_or(0, |t| t.first_chunk as usize);
        let end = tensors
            .last()
            .map_or(0, |t| t.first_chunk as usize + t.chunk_count as usize);
        let parts = windows(&h.chunks, first..end, RESTORE_WINDOW, 2 * RESTORE_WINDOW);
        let mut stored = match parts.first() {
            Some(w) => self.read_window(read, w.clone())?,
            None => Vec::new(),
        };
        // Decoded, not yet written.
        let mut pending: Option<(Vec<u8>, usize)> = None;
        for (i, w) in parts.iter().enumerate() {
            if progress.cancelled() {
                return Err(RuntimeError::Interrupted {
                    path: out_dir.to_path_buf(),
                });
            }
            // The stream is read on this thread (a reader need not be
            // Send), while the pool decodes and writes.
            let mut done = None;
            let mut next = Ok(None);
            rayon::in_place_scope(|s| {
                s.spawn(|_| {
                    done = Some(rayon::join(
                        || self.decode_window(w.clone(), &mut stored),
                        || self.write(&mut out, pending.take(), progress),
                    ));
                });
                if let Some(n) = parts.get(i + 1) {
                    next = self.read_window(read, n.clone()).map(Some);
                }
            });
            let Some((decoded, written)) = done else {
                return Err(RuntimeError::Internal("a window was not decoded".into()));
            };
            // Errors in stream order: what was written, what was decoded,
            // then what was read after it.
            written?;
            pending = Some(decoded?);
            stored = next?.unwrap_or_default();
        }
        self.write(&mut out, pending, progress)?;
        out.finish(self.head.path(), f, tensors.len(), started)
    }

    /// Reads the stored bytes of chunks `w` from the stream, one buffer
    /// each, growing as bytes arrive.
    fn read_window(
        &self,
        read: &mut Counted,
        w: std::ops::Range<usize>,
    ) -> Result<Vec<Vec<u8>>, RuntimeError> {
        let path = self.head.path();
        let mut bufs = Vec::with_capacity(w.len());
        for c in &self.head.header().chunks[w] {
            let mut buf = self.stored.take();
            buf.clear();
            read.exactly(c.stored_len, &mut buf, path, self.total)?;
            bufs.push(buf);
        }
        Ok(bufs)
    }

    /// Checks, decrypts and decodes the chunks `w`, whose stored bytes are
    /// `stored`, in parallel; returns their original bytes (a buffer and
    /// how much of it is used). The first bad chunk in order is reported.
    fn decode_window(
        &self,
        w: std::ops::Range<usize>,
        stored: &mut [Vec<u8>],
    ) -> Result<(Vec<u8>, usize), RuntimeError> {
        let h = self.head.header();
        let chunks = &h.chunks[w.clone()];
        let len = chunks.iter().map(|c| c.orig_len as usize).sum();
        let mut out = self.spare.take_at_least(len);
        let mut slices = Vec::with_capacity(chunks.len());
        let mut rest = &mut out[..len];
        for c in chunks {
            let (this, tail) = rest.split_at_mut(c.orig_len as usize);
            slices.push(this);
            rest = tail;
        }
        let results: Vec<Result<(), RuntimeError>> = slices
            .into_par_iter()
            .zip(stored.par_iter_mut())
            .zip(w.into_par_iter())
            .with_max_len(1)
            .map(|((out, stored), k)| {
                let tensor = &h.tensors[self.owner[k]];
                if tic_format::sha256(stored) != h.chunks[k].sha256 {
                    return Err(RuntimeError::ChunkDigest {
                        path: self.head.path().to_path_buf(),
                        tensor: display_name(tensor),
                        chunk: k as u64,
                    });
                }
                decode_stored(self.head, self.key, k as u64, stored, tensor, out)
            })
            .collect();
        results.into_iter().collect::<Result<(), _>>()?;
        self.stored.give(stored.iter_mut().map(std::mem::take));
        Ok((out, len))
    }

    /// Writes a decoded window, if any, and gives its buffer back.
    fn write(
        &self,
        out: &mut FileOut,
        decoded: Option<(Vec<u8>, usize)>,
        progress: &dyn Progress,
    ) -> Result<(), RuntimeError> {
        if let Some((buf, len)) = decoded {
            out.write(&buf[..len])?;
            progress.advance(len as u64);
            self.spare.give([buf]);
        }
        Ok(())
    }
}

/// A reader that counts the bytes read from it.
struct Counted<'a> {
    reader: &'a mut dyn Read,
    pos: u64,
}

impl Counted<'_> {
    /// Appends up to `len` bytes to `buf`, fewer only at the end of the
    /// stream; returns how many. `buf` grows with what arrives, never to a
    /// length merely claimed.
    fn up_to(&mut self, len: u64, buf: &mut Vec<u8>, path: &Path) -> Result<u64, RuntimeError> {
        let got = (&mut self.reader)
            .take(len)
            .read_to_end(buf)
            .map_err(|source| RuntimeError::Io {
                path: path.to_path_buf(),
                source,
            })? as u64;
        self.pos += got;
        Ok(got)
    }

    /// Checks that the stream ends here, at the artifact's end `total`
    /// (the reader of `path` has read it all). A few appended bytes are
    /// counted, as a file's length would show them; a stream that goes on
    /// and on (a wrong input, `/dev/zero`) is not read to its end.
    fn end(&mut self, path: &Path, total: u64) -> Result<(), RuntimeError> {
        let extra = std::io::copy(
            &mut (&mut self.reader).take(TRAILING_COUNTED + 1),
            &mut std::io::sink(),
        )
        .map_err(|source| RuntimeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if extra > TRAILING_COUNTED {
            return Err(RuntimeError::StreamTooLong {
                path: path.to_path_buf(),
                expected: total,
            });
        }
        if extra > 0 {
            return Err(length_mismatch(path, total, total + extra));
        }
        Ok(())
    }

    /// Appends exactly `len` bytes to `buf` (see [`Self::up_to`]); a
    /// stream that ends first is one shorter than the artifact's `total`.
    fn exactly(
        &mut self,
        len: u64,
        buf: &mut Vec<u8>,
        path: &Path,
        total: u64,
    ) -> Result<(), RuntimeError> {
        if self.up_to(len, buf, path)? < len {
            return Err(length_mismatch(path, total, self.pos));
        }
        Ok(())
    }
}

/// The artifact at `path` is `actual` bytes long where its preamble
/// gives `expected`.
fn length_mismatch(path: &Path, expected: u64, actual: u64) -> RuntimeError {
    RuntimeError::Format {
        path: path.to_path_buf(),
        source: FormatError::LengthMismatch { expected, actual },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(orig_len: u64, stored_len: u64) -> ChunkEntry {
        ChunkEntry {
            offset: 0,
            stored_len,
            orig_len,
            sha256: [0; 32],
        }
    }

    #[test]
    fn windows_are_bounded_by_original_and_stored_bytes() {
        // Honest chunks: four of 3 original bytes fill windows of 10 by 3.
        let honest = vec![chunk(3, 2); 4];
        assert_eq!(windows(&honest, 0..4, 10, 10), vec![0..3, 3..4]);
        assert_eq!(windows(&honest, 1..3, 10, 10), vec![1..3]);
        assert_eq!(
            windows(&honest, 2..2, 10, 10),
            Vec::<std::ops::Range<usize>>::new()
        );
        // Stored a little longer than original (a tag each): the stored
        // limit, not the original one, decides.
        let tagged = vec![chunk(4, 5); 4];
        assert_eq!(windows(&tagged, 0..4, 16, 16), vec![0..3, 3..4]);
        assert_eq!(windows(&tagged, 0..4, 16, 32), vec![0..4]);
        // Chunks that claim 1 original byte and 8 stored: two a window,
        // not ten, so no more than the limit is read ahead of its digests.
        let inflated = vec![chunk(1, 8); 10];
        let w = windows(&inflated, 0..10, 16, 16);
        assert_eq!(w.len(), 5);
        assert!(w.iter().all(|r| r.len() == 2), "{w:?}");
        // A chunk larger than the limit is a window of its own.
        let mixed = [chunk(1, 1), chunk(50, 50), chunk(1, 1), chunk(1, 1)];
        assert_eq!(windows(&mixed, 0..4, 10, 10), vec![0..1, 1..2, 2..4]);
        // A range past the table's end stops at the end.
        assert_eq!(windows(&mixed, 3..9, 10, 10), vec![3..4]);
    }
}
