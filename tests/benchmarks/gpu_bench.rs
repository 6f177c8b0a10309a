//! GPU load and decode timings of one tic artifact, for `bench_gpu.py`.
//!
//! - **kernels**: [`Artifact::time_gpu_decode`]: every chunk on the device
//!   once, then the decode (and decryption) kernels alone, timed with CUDA
//!   events, `--kernel-runs` times;
//! - **load**: in one process with the GPU already opened and the kernels
//!   compiled (what a serving process pays per model), the wall time of
//!   opening the artifact (signature checked) and `load_with` onto the GPU
//!   (every chunk read and checked against its signed SHA-256, encrypted
//!   chunks' tags checked, copied through pinned staging buffers and decoded),
//!   until the tensors are complete in device memory; `--load-runs` times;
//! - **load + tensor digests**: the same, plus every tensor copied back and
//!   checked against its SHA-256 from compile time (`LoadOptions::verify`).
//!
//! usage: tic-gpu-bench ARTIFACT [--trusted-key KEY.pub | --allow-unsigned]
//!        [--identity FILE] [--device cuda:N] [--kernel-runs K] [--load-runs L]
//!        [--tune WARPS:TABLES]... (also time the kernels with WARPS tiles per
//!        block and at most TABLES decode tables in shared memory)
//! prints one JSON object.

use std::path::PathBuf;
use std::time::Instant;

use tic_runtime::{
    probe_cuda, read_identities, read_trusted_keys, Artifact, Device, GpuTuning, LoadOptions,
    OpenOptions, Trust,
};

fn main() {
    if let Err(e) = run() {
        eprintln!("tic-gpu-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut it = std::env::args().skip(1);
    let (mut path, mut keys, mut ids) = (None, Vec::new(), Vec::new());
    let (mut allow_unsigned, mut ordinal, mut kernel_runs, mut load_runs) = (false, 0, 20, 5);
    let mut tunings = Vec::new();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--trusted-key" => keys.push(PathBuf::from(value()?)),
            "--allow-unsigned" => allow_unsigned = true,
            "--identity" => ids.push(PathBuf::from(value()?)),
            "--device" => match value()?.parse::<Device>()? {
                Device::Cuda(n) => ordinal = n,
                Device::Cpu => return Err("--device must be a GPU".into()),
            },
            "--kernel-runs" => kernel_runs = value()?.parse().map_err(|e| format!("{e}"))?,
            "--load-runs" => load_runs = value()?.parse().map_err(|e| format!("{e}"))?,
            "--tune" => {
                let v = value()?;
                let (w, t) = v.split_once(':').ok_or("--tune takes WARPS:TABLES")?;
                let num = |x: &str| x.parse::<u32>().map_err(|e| format!("--tune {v}: {e}"));
                tunings.push((
                    v.clone(),
                    GpuTuning {
                        warps_per_block: Some(num(w)?),
                        shared_tables: Some(num(t)?),
                    },
                ));
            }
            _ if path.is_none() && !a.starts_with('-') => path = Some(PathBuf::from(a)),
            _ => return Err(format!("unexpected argument `{a}`")),
        }
    }
    let path = path.ok_or("usage: tic-gpu-bench ARTIFACT [--trusted-key KEY.pub | --allow-unsigned] [--identity FILE] [--device cuda:N] [--kernel-runs K] [--load-runs L]")?;
    let mut identities = Vec::new();
    for f in &ids {
        identities.extend(read_identities(f).map_err(|e| e.to_string())?);
    }
    let opts = OpenOptions {
        trust: Trust {
            keys: read_trusted_keys(&keys).map_err(|e| e.to_string())?,
            allow_unsigned,
        },
        identities,
    };

    let t = Instant::now();
    let gpu = probe_cuda(ordinal)?;
    let gpu_open_s = t.elapsed().as_secs_f64();

    let open = || Artifact::open(&path, &opts).map_err(|e| e.to_string());
    let art = open()?;
    let stored: u64 = art.header().chunks.iter().map(|c| c.stored_len).sum();
    let (kernel_ms, bytes) = art
        .time_gpu_decode(None, ordinal, kernel_runs, GpuTuning::default())
        .map_err(|e| e.to_string())?;
    // Other launch shapes, for tuning: median milliseconds of each.
    let mut by_tuning = serde_json::Map::new();
    for (name, tuning) in &tunings {
        let (mut ms, _) = art
            .time_gpu_decode(None, ordinal, kernel_runs, *tuning)
            .map_err(|e| e.to_string())?;
        ms.sort_by(f32::total_cmp);
        by_tuning.insert(name.clone(), ms[ms.len() / 2].into());
    }
    drop(art);

    let mut load = LoadOptions::new(Device::Cuda(ordinal));
    load.fallback_to_cpu = false;
    let mut timed = |verify: bool| -> Result<Vec<f64>, String> {
        load.verify = verify;
        let mut secs = Vec::new();
        for _ in 0..load_runs.max(1) + 1 {
            let t = Instant::now();
            let art = open()?;
            let tensors = art.load_with(None, &load).map_err(|e| e.to_string())?;
            secs.push(t.elapsed().as_secs_f64());
            if tensors.iter().any(|t| t.device() != Device::Cuda(ordinal)) {
                return Err("a tensor did not land on the GPU".into());
            }
        }
        secs.remove(0); // the first run warms the page cache and the allocator
        Ok(secs)
    };
    let load_s = timed(false)?;
    let load_verified_s = timed(true)?;
    let out = serde_json::json!({
        "artifact": path.display().to_string(),
        "gpu": gpu,
        "decoded_bytes": bytes,
        "stored_bytes": stored,
        "gpu_open_s": gpu_open_s,
        "kernel_ms": kernel_ms,
        "kernel_median_ms_by_warps_and_shared_tables": by_tuning,
        "load_s": load_s,
        "load_verified_s": load_verified_s,
    });
    println!("{out}");
    Ok(())
}
