//! Memory stays bounded whatever the model size: compile, verify and
//! decompress (of a file or a stream) hold windows of chunks, never a whole
//! tensor or file, so a model larger than RAM goes through. Shown by
//! measuring how far the resident memory of this process (a test binary of
//! its own, with this one test) rises during each step, on a model and on
//! one eight times larger: the rise must not follow the model's size.

mod support;

use std::io::Write;
use std::path::Path;

use support::Rng;
use tic_compiler::{compile, CompileOptions};
use tic_runtime::{Artifact, NoProgress, OpenOptions, Trust};

const MIB: u64 = 1 << 20;

/// Writes a BF16 safetensors file of `tensors` tensors of `each` bytes, one
/// block at a time (the test must not hold the model in memory itself).
/// Values look like trained weights: random sign and mantissa, exponents
/// falling off geometrically below 2^-6.
fn write_model(path: &Path, tensors: usize, each: u64) {
    let mut meta = Vec::new();
    for i in 0..tensors {
        let (b, e) = (i as u64 * each, (i as u64 + 1) * each);
        meta.push(format!(
            "\"layer.{i}.weight\":{{\"dtype\":\"BF16\",\"shape\":[{},1024],\"data_offsets\":[{b},{e}]}}",
            each / 2048
        ));
    }
    let mut json = format!("{{{}}}", meta.join(","));
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let f = std::fs::File::create(path).unwrap();
    let mut w = std::io::BufWriter::new(f);
    w.write_all(&(json.len() as u64).to_le_bytes()).unwrap();
    w.write_all(json.as_bytes()).unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut block = vec![0u8; MIB as usize];
    for _ in 0..(tensors as u64 * each / MIB) {
        for v in block.chunks_exact_mut(2) {
            let r = rng.next();
            let exp = 120 - (r >> 16).trailing_zeros().min(24) as u16;
            let x = ((r as u16 & 1) << 15) | (exp << 7) | ((r >> 1) as u16 & 0x7f);
            v.copy_from_slice(&x.to_le_bytes());
        }
        w.write_all(&block).unwrap();
    }
    w.into_inner().unwrap().sync_all().unwrap();
}

/// A field of /proc/self/status in bytes (`None` where /proc does not say).
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the peak resident memory to the current resident size (Linux:
/// `5` to clear_refs) and returns that size.
fn reset_peak() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_bytes("VmRSS:")
}

/// How far the resident memory rose above `base` (from [`reset_peak`]) at
/// its peak since. Memory an earlier step freed but the allocator kept is
/// in `base`, and a later step reuses it rather than growing.
fn growth(base: u64) -> u64 {
    status_bytes("VmHWM:")
        .expect("VmHWM was there at the start")
        .saturating_sub(base)
}

/// Compiles, verifies, restores, then verifies and restores as a stream
/// `model`; returns how far the resident memory rose during each step.
fn peaks(model: &Path, dir: &Path) -> [u64; 5] {
    let art_path = dir.join("m.tic");
    let out = dir.join("out");
    let base = reset_peak().unwrap();
    compile(model, &art_path, &CompileOptions::default(), &NoProgress).unwrap();
    let compiled = growth(base);
    let base = reset_peak().unwrap();
    let opts = OpenOptions {
        trust: Trust {
            keys: vec![],
            allow_unsigned: true,
        },
        identities: vec![],
    };
    let art = Artifact::open(&art_path, &opts).unwrap();
    art.verify_chunks(&NoProgress).unwrap();
    let verified = growth(base);
    let base = reset_peak().unwrap();
    art.extract(&out, false, &NoProgress).unwrap();
    let restored = growth(base);
    let base = reset_peak().unwrap();
    let streamed = tic_runtime::verify_stream(
        &mut std::fs::File::open(&art_path).unwrap(),
        &art_path,
        &opts.trust,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(streamed.header().chunks.len(), art.header().chunks.len());
    let verified_stream = growth(base);
    let restored_file = out.join(model.file_name().unwrap());
    let streamed_out = dir.join("streamed");
    let base = reset_peak().unwrap();
    tic_runtime::extract_stream(
        &mut std::fs::File::open(&art_path).unwrap(),
        &art_path,
        &opts,
        &streamed_out,
        false,
        &NoProgress,
    )
    .unwrap();
    let restored_stream = growth(base);
    assert_eq!(
        support::digests(&streamed_out.join(model.file_name().unwrap())),
        support::digests(model),
        "model restored from a stream differs"
    );
    std::fs::remove_dir_all(&streamed_out).unwrap();
    assert_eq!(
        std::fs::metadata(&restored_file).unwrap().len(),
        std::fs::metadata(model).unwrap().len()
    );
    assert_eq!(
        support::digests(model).into_values().collect::<Vec<_>>(),
        support::digests(&restored_file)
            .into_values()
            .collect::<Vec<_>>(),
        "restored model differs"
    );
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_file(&art_path).unwrap();
    [
        compiled,
        verified,
        restored,
        verified_stream,
        restored_stream,
    ]
}

#[test]
fn peak_memory_does_not_grow_with_the_model() {
    if status_bytes("VmHWM:").is_none() || reset_peak().is_none() {
        eprintln!(
            "SKIPPED: this system has no /proc/self VmHWM and clear_refs to measure peak memory"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // 32 MiB in four tensors, then 256 MiB in four (64 MiB each: a tensor
    // far larger than any window or buffer).
    let small = dir.path().join("small.safetensors");
    write_model(&small, 4, 8 * MIB);
    let small_peaks = peaks(&small, dir.path());
    std::fs::remove_file(&small).unwrap();
    let large = dir.path().join("large.safetensors");
    let large_size = 4 * 64 * MIB;
    write_model(&large, 4, 64 * MIB);
    let large_peaks = peaks(&large, dir.path());

    for (step, (s, l)) in [
        "compile",
        "verify",
        "decompress",
        "verify a stream",
        "decompress a stream",
    ]
    .iter()
    .zip(small_peaks.iter().zip(&large_peaks))
    {
        eprintln!(
            "{step}: resident memory rose by {:.1} MiB at its peak on a 32 MiB model, by {:.1} MiB on a 256 MiB one",
            *s as f64 / MIB as f64,
            *l as f64 / MIB as f64
        );
        // Eight times the model, at most a few more buffers: the peak holds
        // windows of chunks, not the model.
        assert!(
            *l < *s + 24 * MIB,
            "{step}: peak memory grew from {:.1} to {:.1} MiB with an 8x larger model",
            *s as f64 / MIB as f64,
            *l as f64 / MIB as f64
        );
        assert!(
            *l < large_size / 4,
            "{step}: peak memory {:.1} MiB is not small next to a 256 MiB model",
            *l as f64 / MIB as f64
        );
    }
}
