//! Ignored measurement tests (throughput, ratios on real checkpoints). Run with
//! `cargo test -p tic-format --release -- --ignored --nocapture --test-threads=1 measure_`.

use super::tests::{bf16_bytes, section_summary, Rng};
use super::*;
use std::collections::BTreeMap;
use std::time::Instant;

const MIB: f64 = 1024.0 * 1024.0;

/// Single-thread encode/decode throughput of one dtype's data.
fn throughput(label: &str, es: usize, data: &[u8]) {
    let chunk_elems = 512 << 10;
    let t = Instant::now();
    let spec = choose_codec(es, true, data, chunk_elems);
    let t_choose = t.elapsed().as_secs_f64();
    let chunk_bytes = chunk_elems * es;
    let mb = data.len() as f64 / MIB;
    // Every chunk is timed several times and its fastest run kept, which
    // filters out preemption on a shared machine.
    const REPS: usize = 7;
    let mut stored: Vec<Vec<u8>> = Vec::new();
    let mut enc_wall = 0.0;
    for c in data.chunks(chunk_bytes) {
        let mut bw = f64::MAX;
        let mut s = Vec::new();
        for _ in 0..REPS {
            let t = Instant::now();
            s = encode_chunk(&spec, es, c).unwrap();
            bw = bw.min(t.elapsed().as_secs_f64());
        }
        enc_wall += bw;
        stored.push(s);
    }
    let total: usize = stored.iter().map(|s| s.len()).sum();
    let mut out = vec![0u8; data.len()];
    let mut dec_wall = 0.0;
    for (s, o) in stored.iter().zip(out.chunks_mut(chunk_bytes)) {
        let mut bw = f64::MAX;
        for _ in 0..REPS {
            let t = Instant::now();
            decode_chunk(&spec, es, s, o).unwrap();
            bw = bw.min(t.elapsed().as_secs_f64());
        }
        dec_wall += bw;
    }
    assert!(out == data);
    println!(
        "{label}: {} on {} MiB, {}Ki-element chunks: ratio {:.4}%, choose {:.1} ms; \
         best of {REPS} per chunk, single thread: encode {:.0} MiB/s, decode {:.0} MiB/s",
        spec.name(),
        data.len() >> 20,
        chunk_elems >> 10,
        100.0 * total as f64 / data.len() as f64,
        t_choose * 1e3,
        mb / enc_wall,
        mb / dec_wall,
    );
}

/// Single-thread throughput on 64 MiB of BF16 and of F32, values ~ N(0, 0.02).
#[test]
#[ignore = "measurement; run in release"]
fn measure_throughput() {
    let mut rng = Rng::new(42);
    let vals: Vec<f32> = (0..32 << 20)
        .map(|_| (rng.normal() * 0.02) as f32)
        .collect();
    throughput("BF16", 2, &bf16_bytes(vals.iter().copied()));
    let f32s: Vec<u8> = vals[..16 << 20]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    throughput("F32", 4, &f32s);
}

fn dtype_info(dtype: &str) -> Option<(usize, bool)> {
    crate::DType::from_name(dtype).map(|d| (d.size(), d.is_float()))
}

fn measure_file(path: &str) {
    let Ok(file) = std::fs::read(path) else {
        println!("skipping {path}: not readable");
        return;
    };
    let hlen = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&file[8..8 + hlen]).unwrap();
    let payload = &file[8 + hlen..];
    let mut tensors: Vec<(String, String, usize, usize)> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let o = v["data_offsets"].as_array().unwrap();
            (
                k.clone(),
                v["dtype"].as_str().unwrap().to_string(),
                o[0].as_u64().unwrap() as usize,
                o[1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    tensors.sort_by_key(|t| t.2);
    println!("{path}: {} bytes, {} tensors", file.len(), tensors.len());
    for chunk_elems in [256usize << 10, 512 << 10, 1 << 20] {
        let mut stored_total = 0usize;
        let mut tensor_total = 0usize;
        let mut by_spec: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
        let (mut t_choose, mut t_enc, mut t_dec) = (0.0, 0.0, 0.0);
        let mut oracle_total = 0usize;
        for (_, dtype, a, b) in &tensors {
            let data = &payload[*a..*b];
            let (es, float) = dtype_info(dtype).unwrap_or((1, false));
            let t = Instant::now();
            let spec = choose_codec(es, float, data, chunk_elems);
            t_choose += t.elapsed().as_secs_f64();
            let mut st = 0;
            for c in data.chunks(chunk_elems * es) {
                let t = Instant::now();
                let s = encode_chunk(&spec, es, c).unwrap();
                t_enc += t.elapsed().as_secs_f64();
                let mut out = vec![0u8; c.len()];
                let t = Instant::now();
                decode_chunk(&spec, es, &s, &mut out).unwrap();
                t_dec += t.elapsed().as_secs_f64();
                assert!(out == c);
                st += s.len();
            }
            stored_total += st;
            tensor_total += data.len();
            // Oracle: the best candidate by actual encoded size (chooser check).
            if std::env::var_os("TIC_CODEC_ORACLE").is_some() {
                let mut specs: Vec<CodecSpec> =
                    candidates(es, float).iter().map(|c| c.spec()).collect();
                specs.push(CodecSpec::raw());
                let best = specs
                    .iter()
                    .map(|sp| {
                        data.chunks(chunk_elems * es)
                            .map(|c| encode_chunk(sp, es, c).unwrap().len())
                            .sum::<usize>()
                    })
                    .min()
                    .unwrap();
                oracle_total += best;
            }
            if data.len() > 4 << 20 && chunk_elems == 512 << 10 {
                let first = &data[..(chunk_elems * es).min(data.len())];
                let s = encode_chunk(&spec, es, first).unwrap();
                let planes = if spec.id == CODEC_PLANES {
                    usize::from(spec.params[1])
                } else {
                    0
                };
                println!(
                    "      {} {}: {:.3}%, chunk 0 sections {:?}",
                    spec.name(),
                    data.len(),
                    100.0 * st as f64 / data.len() as f64,
                    section_summary(&s, planes)
                );
            }
            let e = by_spec
                .entry(format!("{dtype} {}", spec.name()))
                .or_default();
            e.0 += 1;
            e.1 += data.len();
            e.2 += st;
        }
        let mb = tensor_total as f64 / MIB;
        println!(
            "  chunk {:>4}Ki elems: tensors {:.3}% ({stored_total}/{tensor_total}), \
             vs file (stored + original header) {:.3}%; choose {:.0} ms, encode {:.0} MiB/s, decode {:.0} MiB/s",
            chunk_elems >> 10,
            100.0 * stored_total as f64 / tensor_total as f64,
            100.0 * (stored_total + 8 + hlen) as f64 / file.len() as f64,
            t_choose * 1e3,
            mb / t_enc,
            mb / t_dec,
        );
        if oracle_total > 0 {
            println!(
                "    oracle (best candidate per tensor by actual size): {:.3}%",
                100.0 * oracle_total as f64 / tensor_total as f64
            );
        }
        for (k, (cnt, orig, st)) in by_spec {
            println!(
                "      {k:<28} {cnt:>4} tensors {:>10} -> {:>10} ({:.3}%)",
                orig,
                st,
                100.0 * st as f64 / orig as f64
            );
        }
    }
}

/// Ratios on the real MiniLM checkpoints (BF16 and F32) for three chunk sizes.
#[test]
#[ignore = "measurement; needs /work/shared/models"]
fn measure_real_models() {
    let paths = std::env::var("TIC_CODEC_MODELS").unwrap_or_else(|_| {
        "/work/shared/models/all-MiniLM-L6-v2-bf16/model.safetensors:\
         /work/shared/models/all-MiniLM-L6-v2/model.safetensors"
            .into()
    });
    for p in paths.split(':') {
        measure_file(p);
    }
}

fn entropy_bits(hist: &[u64]) -> f64 {
    let n: u64 = hist.iter().sum();
    hist.iter()
        .filter(|&&c| c > 0)
        .map(|&c| c as f64 / n as f64 * (n as f64 / c as f64).log2())
        .sum()
}

/// Per-plane empirical entropies (bits/element) of the largest F32 tensors,
/// whole-tensor and averaged over 512Ki-element chunks.
#[test]
#[ignore = "measurement; needs /work/shared/models"]
fn measure_f32_plane_entropy() {
    let path = "/work/shared/models/all-MiniLM-L6-v2/model.safetensors";
    let Ok(file) = std::fs::read(path) else {
        return;
    };
    let hlen = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&file[8..8 + hlen]).unwrap();
    let payload = &file[8 + hlen..];
    let mut t: Vec<(usize, String, usize)> = header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| *k != "__metadata__" && v["dtype"] == "F32")
        .map(|(k, v)| {
            let o = v["data_offsets"].as_array().unwrap();
            let (a, b) = (
                o[0].as_u64().unwrap() as usize,
                o[1].as_u64().unwrap() as usize,
            );
            (b - a, k.clone(), a)
        })
        .collect();
    t.sort();
    t.reverse();
    for (size, name, a) in t.iter().take(6) {
        let data = &payload[*a..a + size];
        let planes: [(u32, u32); 5] = [(22, 10), (16, 6), (8, 8), (0, 8), (16, 16)];
        let mut whole = [0f64; 5];
        let mut chunked = [0f64; 5];
        let vals: Vec<u32> = data
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()).rotate_left(1))
            .collect();
        for (k, &(s, w)) in planes.iter().enumerate() {
            let mut h = vec![0u64; 1 << w];
            for &r in &vals {
                h[((r >> s) & ((1 << w) - 1)) as usize] += 1;
            }
            whole[k] = entropy_bits(&h);
            let mut acc = 0.0;
            for c in vals.chunks(512 << 10) {
                let mut h = vec![0u64; 1 << w];
                for &r in c {
                    h[((r >> s) & ((1 << w) - 1)) as usize] += 1;
                }
                acc += entropy_bits(&h) * c.len() as f64;
            }
            chunked[k] = acc / vals.len() as f64;
        }
        println!(
            "{name} {size}: whole exp10 {:.3} m6 {:.3} b1 {:.3} b0 {:.3} top16 {:.3} | chunked {:.3} {:.3} {:.3} {:.3} {:.3} -> {:.2}%",
            whole[0], whole[1], whole[2], whole[3], whole[4],
            chunked[0], chunked[1], chunked[2], chunked[3], chunked[4],
            100.0 * (chunked[0] + chunked[1] + chunked[2] + chunked[3]) / 32.0
        );
    }
}

/// Single-thread choose / encode / decode speed on a real checkpoint, each
/// step timed several times and its fastest run kept (filters out a noisy
/// machine). `TIC_CODEC_MODEL` picks the file. Repeated runs find each chunk
/// in cache, so this is an upper bound for comparing builds; the `tic codec`
/// rows of `tests/benchmarks/bench_lossless.py` are the like-for-like figures.
#[test]
#[ignore = "measurement; needs /work/shared/models"]
fn measure_real_speed() {
    let path = std::env::var("TIC_CODEC_MODEL")
        .unwrap_or_else(|_| "/work/shared/models/all-MiniLM-L6-v2-bf16/model.safetensors".into());
    let Ok(file) = std::fs::read(&path) else {
        println!("skipping {path}: not readable");
        return;
    };
    let hlen = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&file[8..8 + hlen]).unwrap();
    let payload = &file[8 + hlen..];
    const REPS: usize = 5;
    let best = |f: &mut dyn FnMut()| -> f64 {
        (0..REPS)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min)
    };
    let chunk_elems = 512 << 10;
    let (mut t_choose, mut t_enc, mut t_dec, mut orig, mut stored) = (0.0, 0.0, 0.0, 0, 0);
    for (name, v) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        let o = v["data_offsets"].as_array().unwrap();
        let data = &payload[o[0].as_u64().unwrap() as usize..o[1].as_u64().unwrap() as usize];
        let (es, float) = dtype_info(v["dtype"].as_str().unwrap()).unwrap_or((1, false));
        let mut spec = CodecSpec::raw();
        t_choose += best(&mut || spec = choose_codec(es, float, data, chunk_elems));
        for c in data.chunks(chunk_elems * es) {
            let mut s = Vec::new();
            t_enc += best(&mut || s = encode_chunk(&spec, es, c).unwrap());
            let mut out = vec![0u8; c.len()];
            t_dec += best(&mut || decode_chunk(&spec, es, &s, &mut out).unwrap());
            assert!(out == c);
            orig += c.len();
            stored += s.len();
        }
    }
    let mb = orig as f64 / 1e6;
    println!(
        "{path}: {:.3}% of tensor bytes; single thread, best of {REPS}: choose {:.1} ms \
         ({:.0} MB/s), encode {:.0} MB/s, choose+encode {:.0} MB/s, decode {:.0} MB/s",
        100.0 * stored as f64 / orig as f64,
        t_choose * 1e3,
        mb / t_choose,
        mb / t_enc,
        mb / (t_choose + t_enc),
        mb / t_dec
    );
}
