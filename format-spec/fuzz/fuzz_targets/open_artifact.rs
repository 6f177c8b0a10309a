//! Opens, verifies, reads and restores whole artifacts through the runtime,
//! whose header parses and whose chunk digests match: the paths behind the
//! digest checks that the other targets cannot reach, because a mutated
//! chunk never matches its digest. An unsigned artifact's author picks its
//! digests, so those paths do meet arbitrary chunks.
//!
//! Input: a `u32` header length, the header bytes, then payload bytes. The
//! harness keeps the header only if it parses and is not encrypted, cuts
//! or zero-pads the payload to the header's `payload_len` (at most 16 MiB;
//! original files at most 64 MiB),
//! rewrites every chunk digest to match, and writes the artifact to a
//! temporary file. Errors are fine; panics are bugs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tic_format::header::{Encryption, Header, Preamble, VERSION_MAJOR, VERSION_MINOR};
use tic_runtime::{Artifact, NoProgress, OpenOptions, Trust};

const MAX_PAYLOAD: u64 = 16 << 20;
/// Original bytes restored at most: a small stored chunk may decode to
/// 64 MiB, and a header may hold thousands of chunks.
const MAX_ORIGINAL: u64 = 64 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let hl = (u32::from_le_bytes(*len) as usize).min(rest.len());
    let (header, payload) = rest.split_at(hl);
    let Ok(mut h) = Header::parse(header) else {
        return;
    };
    let original = h.files.iter().try_fold(0u64, |a, f| a.checked_add(f.size));
    if h.encryption != Encryption::None
        || h.payload_len > MAX_PAYLOAD
        || original.is_none_or(|n| n > MAX_ORIGINAL)
    {
        return;
    }
    let mut payload = payload.to_vec();
    payload.resize(h.payload_len as usize, 0);
    for c in &mut h.chunks {
        let at = c.offset as usize;
        c.sha256 = tic_format::sha256(&payload[at..at + c.stored_len as usize]);
    }
    let header = h.to_bytes();
    let pre = Preamble {
        major: VERSION_MAJOR,
        minor: VERSION_MINOR,
        header_len: header.len() as u64,
        signature_len: 0,
        recipients_len: 0,
        payload_len: h.payload_len,
    };
    let dir = std::env::temp_dir().join(format!("tic-fuzz-open-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("a.tic");
    let bytes = [&pre.to_bytes()[..], &header, &payload].concat();
    std::fs::write(&path, bytes).expect("temporary artifact");
    let opts = OpenOptions {
        trust: Trust {
            keys: Vec::new(),
            allow_unsigned: true,
        },
        ..Default::default()
    };
    let art = Artifact::open(&path, &opts).expect("an artifact built from a valid header opens");
    let _ = art.verify_chunks(&NoProgress);
    let entries: Vec<_> = art.tensors().cloned().collect();
    for t in &entries {
        let _ = art.read_entry(t);
    }
    for f in &art.header().files {
        let _ = art.read_file(&f.path);
    }
    let _ = art.extract(&dir.join("out"), true, &NoProgress);
});
