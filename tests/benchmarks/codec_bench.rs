//! In-memory codec throughput of tic on one safetensors file, for
//! `bench_lossless.py`: the work `tic compile` and `tic decompress` spend in
//! the codec (choosing each tensor's codec, encoding and decoding its chunks,
//! cut as the compiler cuts them), without the SHA-256 digests and file I/O
//! the commands add. This is the like-for-like figure next to a peer's
//! in-memory API.
//!
//! usage: tic-codec-bench FILE [--threads T] [--warmup W] [--repeat R] [--warm]
//! prints one JSON object: {"size", "compress_s": [..], "choose_s": [..],
//! "decompress_s": [..], "roundtrip"}, where "choose_s" is the part of each
//! compress spent choosing codecs (for A/B runs of the chooser and encoder
//! apart: a whole compress also varies with the allocator's state)
//! and with `--warm` also "decompress_warm_s": decoding into one buffer used
//! again (no page faults: the decoder's own cost, for A/B runs of it).

use std::time::Instant;

use rayon::prelude::*;
use tic_format::codec::{self, CodecSpec, TILE_SYMBOLS};
use tic_format::safetensors::{header_len, parse_header};

struct Args {
    file: String,
    threads: usize,
    warmup: usize,
    repeat: usize,
    warm: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        file: String::new(),
        threads: 1,
        warmup: 1,
        repeat: 3,
        warm: false,
    };
    while let Some(x) = it.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            it.next()
                .and_then(|v| v.parse().ok())
                .ok_or(format!("{name} needs a number"))
        };
        match x.as_str() {
            "--threads" => a.threads = num("--threads")?.max(1),
            "--warmup" => a.warmup = num("--warmup")?,
            "--repeat" => a.repeat = num("--repeat")?.max(1),
            "--warm" => a.warm = true,
            _ if a.file.is_empty() && !x.starts_with('-') => a.file = x,
            _ => return Err(format!("unexpected argument `{x}`")),
        }
    }
    if a.file.is_empty() {
        return Err(
            "usage: tic-codec-bench FILE [--threads T] [--warmup W] [--repeat R] [--warm]".into(),
        );
    }
    Ok(a)
}

/// One tensor: element size, float or not, byte range in the file.
struct Tensor {
    elem: usize,
    float: bool,
    begin: usize,
    end: usize,
}

/// Elements per chunk as `tic compile` cuts them by default.
fn chunk_elems(elem: usize) -> usize {
    let want = (tic_compiler::DEFAULT_CHUNK_BYTES as usize / elem).max(1);
    want.div_ceil(TILE_SYMBOLS) * TILE_SYMBOLS
}

/// Times `run` `warmup + repeat` times, the first `warmup` untimed. Each
/// run's result is freed before the next run's clock starts (as the peers'
/// harness does), so that no run pays for unmapping the last one's output.
fn timed<T: Default>(warmup: usize, repeat: usize, mut run: impl FnMut() -> T) -> (Vec<f64>, T) {
    let mut last = T::default();
    let mut times = Vec::new();
    for i in 0..warmup + repeat {
        drop(std::mem::take(&mut last));
        let t = Instant::now();
        last = run();
        if i >= warmup {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    (times, last)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("tic-codec-bench: {e}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let file = std::fs::read(&args.file).map_err(|e| format!("{}: {e}", args.file))?;
    let first8: [u8; 8] = file
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or(format!("{}: shorter than 8 bytes", args.file))?;
    let hlen = header_len(first8, file.len() as u64).map_err(|e| format!("{}: {e}", args.file))?;
    let data_at = 8 + hlen as usize;
    let parsed = parse_header(&file[8..data_at], (file.len() - data_at) as u64)
        .map_err(|e| format!("{}: {e}", args.file))?;
    let tensors: Vec<Tensor> = parsed
        .iter()
        .map(|t| Tensor {
            elem: t.dtype.size(),
            float: t.dtype.is_float(),
            begin: data_at + t.begin as usize,
            end: data_at + t.end as usize,
        })
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .map_err(|e| e.to_string())?;

    let choose_s = std::sync::Mutex::new(Vec::new());
    let compress = || -> Vec<(CodecSpec, Vec<Vec<u8>>)> {
        let t = Instant::now();
        let specs: Vec<CodecSpec> = tensors
            .par_iter()
            .map(|t| {
                codec::choose_codec(t.elem, t.float, &file[t.begin..t.end], chunk_elems(t.elem))
            })
            .collect();
        if let Ok(mut v) = choose_s.lock() {
            v.push(t.elapsed().as_secs_f64());
        }
        let jobs: Vec<(usize, &[u8])> = tensors
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                file[t.begin..t.end]
                    .chunks(chunk_elems(t.elem) * t.elem)
                    .map(move |c| (i, c))
            })
            .collect();
        let stored: Vec<Vec<u8>> = jobs
            .par_iter()
            .map(|&(i, c)| codec::encode_chunk(&specs[i], tensors[i].elem, c).expect("encodes"))
            .collect();
        let mut per_tensor: Vec<(CodecSpec, Vec<Vec<u8>>)> =
            specs.into_iter().map(|s| (s, Vec::new())).collect();
        for ((i, _), s) in jobs.iter().zip(stored) {
            per_tensor[*i].1.push(s);
        }
        per_tensor
    };
    let decompress_into = |enc: &[(CodecSpec, Vec<Vec<u8>>)], out: &mut Vec<u8>| {
        out.resize(file.len(), 0);
        out[..data_at].copy_from_slice(&file[..data_at]);
        // Tensors are contiguous and in order (the parser checks it), so
        // the output splits into one disjoint slice per chunk.
        let mut rest = &mut out[data_at..];
        let mut jobs = Vec::new();
        for (t, (spec, chunks)) in tensors.iter().zip(enc) {
            let ce = chunk_elems(t.elem) * t.elem;
            let (mut region, tail) = std::mem::take(&mut rest).split_at_mut(t.end - t.begin);
            rest = tail;
            for s in chunks {
                let (dst, more) = region.split_at_mut(ce.min(region.len()));
                region = more;
                jobs.push((spec, t.elem, s, dst));
            }
        }
        jobs.into_par_iter().for_each(|(spec, es, s, dst)| {
            codec::decode_chunk(spec, es, s, dst).expect("decodes");
        });
    };
    let decompress = |enc: &[(CodecSpec, Vec<Vec<u8>>)]| -> Vec<u8> {
        // Zeroed by the allocator (fresh pages), not by a memset.
        let mut out = vec![0u8; file.len()];
        decompress_into(enc, &mut out);
        out
    };

    let (compress_s, decompress_s, warm_s, size, roundtrip) = pool.install(|| {
        let (w, r) = (args.warmup, args.repeat);
        let (compress_s, enc) = timed(w, r, compress);
        let (decompress_s, out) = timed(w, r, || decompress(&enc));
        let mut again = Vec::new();
        let warm_s = if args.warm {
            timed(w, r, || decompress_into(&enc, &mut again)).0
        } else {
            Vec::new()
        };
        let stored: usize = enc.iter().flat_map(|(_, c)| c).map(|s| s.len()).sum();
        let roundtrip = out == file && (again.is_empty() || again == file);
        (
            compress_s,
            decompress_s,
            warm_s,
            data_at + stored,
            roundtrip,
        )
    });
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.6}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // The warm-up runs' choose times come first.
    let choose_s = choose_s.into_inner().unwrap_or_default();
    let choose_s = &choose_s[choose_s.len().saturating_sub(args.repeat)..];
    let warm = if args.warm {
        format!(", \"decompress_warm_s\": [{}]", list(&warm_s))
    } else {
        String::new()
    };
    println!(
        "{{\"size\": {size}, \"compress_s\": [{}], \"choose_s\": [{}], \"decompress_s\": [{}]{warm}, \"roundtrip\": {roundtrip}}}",
        list(&compress_s),
        list(choose_s),
        list(&decompress_s)
    );
    Ok(())
}
