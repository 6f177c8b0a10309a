//! Builds tests/emu/harness.cpp (the kernel sources plus a CPU model of
//! CUDA, under AddressSanitizer and UndefinedBehaviorSanitizer) and runs
//! planned batches through it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tic_kernels::plan::{Arg, Batch, BatchBuilder, ChunkJob, Kernel, Limits, LUT_BYTES};
use tic_kernels::{Codec, Keystream, StreamError};

/// The compiled harness, or None (with a message) when no C++20 compiler
/// is available. TIC_REQUIRE_EMULATION=1 turns the skip into a failure.
pub fn harness() -> Option<&'static Path> {
    static EXE: OnceLock<Option<PathBuf>> = OnceLock::new();
    EXE.get_or_init(build).as_deref()
}

fn build() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emu");
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tic-kernels-emulator");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let status = Command::new(&cxx)
        .args([
            "-std=c++20",
            "-O1",
            "-g",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer",
            "-pthread",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wno-unknown-pragmas",
            "-Wno-unused-parameter",
        ])
        .arg(dir.join("harness.cpp"))
        .arg("-o")
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => Some(out),
        other => {
            let why = format!("cannot build the kernel emulator with {cxx:?}: {other:?}");
            if std::env::var("TIC_REQUIRE_EMULATION").as_deref() == Ok("1") {
                panic!("{why}");
            }
            eprintln!("skipped: {why}");
            None
        }
    }
}

/// One chunk to decode: what goes on the device and what should come back.
#[derive(Clone, Debug)]
pub struct TestChunk {
    pub codec: Codec,
    pub elem_size: usize,
    pub orig_len: u64,
    /// Bytes placed in the batch buffer (ciphertext without tag if encrypted).
    pub data: Vec<u8>,
    pub keystream: Option<Keystream>,
}

/// Per chunk: the output bytes and the status the kernels left.
#[derive(Debug)]
pub struct Outcome {
    pub outputs: Vec<Vec<u8>>,
    pub errors: Vec<Option<StreamError>>,
    pub batches: usize,
}

const GUARD: u64 = 64;

/// Plans `chunks` into batches under `limits` and runs each batch through
/// the emulated kernels. Checks that no byte outside the outputs changed.
pub fn run(chunks: &[TestChunk], limits: Limits) -> Outcome {
    let exe = harness().expect("emulator available");
    let mut builder = BatchBuilder::new(limits).unwrap();
    let mut outputs = vec![Vec::new(); chunks.len()];
    let mut errors = vec![None; chunks.len()];
    let mut pending: Vec<(usize, u64)> = Vec::new(); // (chunk, arena offset)
    let mut arena_len = 0u64;
    let mut batches = 0;
    let mut i = 0;
    while i < chunks.len() {
        let c = &chunks[i];
        let out_off = (arena_len + GUARD).div_ceil(256) * 256;
        let job = ChunkJob {
            tag: i as u64,
            codec: &c.codec,
            elem_size: c.elem_size,
            orig_len: c.orig_len,
            data_len: c.data.len() as u64,
            staged_len: c.data.len() as u64,
            keystream: c.keystream.clone(),
            out_ptr: out_off,
        };
        match builder.try_add(&job).unwrap() {
            Some(_) => {
                pending.push((i, out_off));
                arena_len = out_off + c.orig_len;
                i += 1;
            }
            None => {
                run_batch(
                    exe,
                    &builder.finish(),
                    chunks,
                    &pending,
                    arena_len + GUARD,
                    &mut outputs,
                    &mut errors,
                );
                batches += 1;
                pending.clear();
                arena_len = 0;
            }
        }
    }
    if !builder.is_empty() {
        run_batch(
            exe,
            &builder.finish(),
            chunks,
            &pending,
            arena_len + GUARD,
            &mut outputs,
            &mut errors,
        );
        batches += 1;
    }
    Outcome {
        outputs,
        errors,
        batches,
    }
}

fn run_batch(
    exe: &Path,
    batch: &Batch,
    chunks: &[TestChunk],
    pending: &[(usize, u64)],
    arena_len: u64,
    outputs: &mut [Vec<u8>],
    errors: &mut [Option<StreamError>],
) {
    // The staging image, as Decoder::push and submit build it.
    let mut staging = vec![0u8; batch.total_len as usize];
    for (k, &(ci, _)) in pending.iter().enumerate() {
        let (off, len) = batch.inputs[k];
        assert_eq!(len, chunks[ci].data.len() as u64);
        staging[off as usize..][..len as usize].copy_from_slice(&chunks[ci].data);
    }
    staging[batch.tables_off as usize..].copy_from_slice(&batch.tables);

    let mut file = b"TICEMU01".to_vec();
    file.extend_from_slice(&batch.total_len.to_le_bytes());
    file.extend_from_slice(&staging);
    file.extend_from_slice(&(batch.lut_slots.max(1) as u64 * LUT_BYTES).to_le_bytes());
    file.extend_from_slice(&arena_len.to_le_bytes());
    file.extend_from_slice(&batch.chunk_desc_off().to_le_bytes());
    file.extend_from_slice(&(batch.tags.len() as u32).to_le_bytes());
    file.extend_from_slice(&(batch.launches.len() as u32).to_le_bytes());
    for l in &batch.launches {
        let id = match l.kernel {
            Kernel::Chacha20Xor => 0u32,
            Kernel::CopyRaw => 1,
            Kernel::PlanesParse => 2,
            Kernel::PlanesDecode2 => 3,
            Kernel::PlanesDecode4 => 4,
            Kernel::PlanesDecode => 5,
        };
        for v in [id, l.grid, l.block, l.shared_bytes, l.args.len() as u32] {
            file.extend_from_slice(&v.to_le_bytes());
        }
        for a in &l.args {
            let (kind, value) = match *a {
                Arg::Batch(off) => (0u32, off),
                Arg::Luts => (1, 0),
                Arg::U32(v) => (2, v as u64),
                Arg::U64(v) => (3, v),
            };
            file.extend_from_slice(&kind.to_le_bytes());
            file.extend_from_slice(&value.to_le_bytes());
        }
    }
    let dir = tempfile_dir();
    let input = dir.join("in.bin");
    let output = dir.join("out.bin");
    std::fs::write(&input, &file).unwrap();
    let result = Command::new(exe)
        .arg(&input)
        .arg(&output)
        .env("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
        .output()
        .expect("run the emulator");
    assert!(
        result.status.success(),
        "emulated kernels failed ({}):\n{}",
        result.status,
        String::from_utf8_lossy(&result.stderr)
    );
    let out = std::fs::read(&output).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(out.len() as u64, batch.total_len + arena_len);
    let (after, arena) = out.split_at(batch.total_len as usize);
    // The planner's tables other than PlaneDescs and statuses are untouched.
    let t = batch.tables_off as usize;
    assert_eq!(
        &after[t..t + batch.layout.planes as usize],
        &batch.tables[..batch.layout.planes as usize]
    );
    assert_eq!(
        &after[t + batch.layout.work as usize..t + batch.layout.status as usize],
        &batch.tables[batch.layout.work as usize..batch.layout.status as usize]
    );
    let status = &after[batch.status_off() as usize..][..4 * batch.tags.len()];
    let mut written = vec![false; arena.len()];
    for (k, &(ci, off)) in pending.iter().enumerate() {
        let code = u32::from_le_bytes(status[4 * k..4 * k + 4].try_into().unwrap());
        errors[ci] = (code != 0).then(|| StreamError::from_code(code));
        let len = chunks[ci].orig_len as usize;
        outputs[ci] = arena[off as usize..][..len].to_vec();
        written[off as usize..][..len]
            .iter_mut()
            .for_each(|w| *w = true);
    }
    for (i, (&b, &w)) in arena.iter().zip(&written).enumerate() {
        assert!(
            w || b == 0xCD,
            "byte {i} of the output arena, outside every output, was written"
        );
    }
}

fn tempfile_dir() -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "emu-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
