//! Verifying an artifact as it streams in (`tic verify -`, say from
//! `curl URL | tic verify -`): its sections in file order, the signature
//! before the header is parsed, then every chunk against its signed digest
//! as it arrives, with nothing to seek in and nothing stored.

use std::io::Read;
use std::path::Path;

use rayon::prelude::*;
use tic_format::header::{Preamble, PREAMBLE_LEN};
use tic_format::FormatError;

use crate::artifact::{chunk_owners, display_name, short_preamble, Head, Trust};
use crate::error::RuntimeError;
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
    let fmt = |source| RuntimeError::Format {
        path: path.clone(),
        source,
    };
    let mut read = Counted { reader, pos: 0 };
    let (head, total) = front(&mut read, &path, trust)?;
    let short = |received: u64| {
        fmt(FormatError::LengthMismatch {
            expected: total,
            actual: received,
        })
    };
    let header = head.header();
    let chunks = &header.chunks;
    let owner = chunk_owners(header);
    progress.start("verifying", header.payload_len);
    let mut buf = Vec::new();
    let mut first = 0;
    while first < chunks.len() {
        // The chunks of this batch: at least one, at most BATCH_BYTES unless
        // one chunk is larger.
        let mut end = first + 1;
        let mut bytes = chunks[first].stored_len;
        while let Some(c) = chunks.get(end) {
            if bytes + c.stored_len > BATCH_BYTES {
                break;
            }
            bytes += c.stored_len;
            end += 1;
        }
        // At most BATCH_BYTES up front; a larger chunk grows the buffer as
        // its bytes arrive.
        buf.clear();
        buf.reserve_exact(bytes.min(BATCH_BYTES) as usize);
        if read.up_to(bytes, &mut buf, &path)? < bytes {
            progress.finish();
            return Err(short(read.pos));
        }
        let base = chunks[first].offset;
        let bad = (first..end).into_par_iter().find_first(|&k| {
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
        first = end;
    }
    progress.finish();
    // Nothing may follow the payload. A few appended bytes are counted, as
    // a file's length would show them; a stream that goes on and on (a
    // wrong input, `/dev/zero`) is not read to its end.
    let extra = std::io::copy(
        &mut (&mut read.reader).take(TRAILING_COUNTED + 1),
        &mut std::io::sink(),
    )
    .map_err(|source| RuntimeError::Io {
        path: path.clone(),
        source,
    })?;
    if extra > TRAILING_COUNTED {
        return Err(RuntimeError::StreamTooLong {
            path,
            expected: total,
        });
    }
    if extra > 0 {
        return Err(short(total + extra));
    }
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
    let total = preamble.total_len().ok_or_else(|| {
        fmt(FormatError::LengthMismatch {
            expected: u64::MAX,
            actual: read.pos,
        })
    })?;
    let head = Head::read(path.to_path_buf(), preamble, trust, |offset, len| {
        debug_assert_eq!(offset, read.pos, "sections are read in file order");
        let mut buf = Vec::new();
        if read.up_to(len, &mut buf, path)? < len {
            return Err(fmt(FormatError::LengthMismatch {
                expected: total,
                actual: read.pos,
            }));
        }
        Ok(buf)
    })?;
    Ok((head, total))
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
}
