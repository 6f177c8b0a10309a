//! Memory stays bounded whatever the model size: compile, verify (of a file
//! or a stream) and decompress hold windows of chunks, never a whole tensor or file, so a
//! model larger than RAM goes through. Shown by measuring the peak resident
//! memory of this process (a test binary of its own, with this one test)
//! on a model and on one eight times larger: the peak must not follow the
//! model's size.

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

/// Peak resident memory of this process since the last reset, in bytes
/// (`None` where /proc does not say).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets the peak to the current resident size (Linux: `5` to clear_refs).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Compiles, verifies, restores and verifies again as a stream `model`;
/// returns the peak resident memory during each step.
fn peaks(model: &Path, dir: &Path) -> [u64; 4] {
    let art_path = dir.join("m.tic");
    let out = dir.join("out");
    assert!(reset_peak());
    compile(model, &art_path, &CompileOptions::default(), &NoProgress).unwrap();
    let compiled = peak_rss().unwrap();
    assert!(reset_peak());
    let opts = OpenOptions {
        trust: Trust {
            keys: vec![],
            allow_unsigned: true,
        },
        identities: vec![],
    };
    let art = Artifact::open(&art_path, &opts).unwrap();
    art.verify_chunks(&NoProgress).unwrap();
    let verified = peak_rss().unwrap();
    assert!(reset_peak());
    art.extract(&out, false, &NoProgress).unwrap();
    let restored = peak_rss().unwrap();
    assert!(reset_peak());
    let streamed = tic_runtime::verify_stream(
        &mut std::fs::File::open(&art_path).unwrap(),
        &art_path,
        &opts.trust,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(streamed.header().chunks.len(), art.header().chunks.len());
    let verified_stream = peak_rss().unwrap();
    let restored_file = out.join(model.file_name().unwrap());
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
    [compiled, verified, restored, verified_stream]
}

#[test]
fn peak_memory_does_not_grow_with_the_model() {
    if peak_rss().is_none() || !reset_peak() {
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

    for (step, (s, l)) in ["compile", "verify", "decompress", "verify a stream"]
        .iter()
        .zip(small_peaks.iter().zip(&large_peaks))
    {
        eprintln!(
            "{step}: peak resident memory {:.1} MiB on a 32 MiB model, {:.1} MiB on a 256 MiB one",
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
