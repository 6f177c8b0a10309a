//! Ignored measurement tests (throughput, ratios on real checkpoints). Run with
//! `cargo test -p tic-format --release -- --ignored --nocapture measure_`.

use super::tests::{bf16_bytes, Rng};
use super::*;
use std::collections::BTreeMap;
use std::time::Instant;

const MIB: f64 = 1024.0 * 1024.0;

/// This thread's CPU time in seconds (Linux schedstat, ns resolution), so
/// figures are not skewed by other processes on a shared machine.
fn cpu_time() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0.0, |ns| ns as f64 * 1e-9)
}

/// Single-thread encode/decode throughput on 64 MiB of BF16 ~ N(0, 0.02).
#[test]
#[ignore = "measurement; run in release"]
fn measure_throughput_bf16() {
    let mut rng = Rng::new(42);
    let n = 32 << 20;
    let data = bf16_bytes((0..n).map(|_| (rng.normal() * 0.02) as f32));
    let chunk_elems = 512 << 10;
    let t = Instant::now();
    let spec = choose_codec(2, true, &data, chunk_elems);
    let t_choose = t.elapsed().as_secs_f64();
    let chunk_bytes = chunk_elems * 2;
    let mb = data.len() as f64 / MIB;
    let (mut best_enc, mut best_dec) = (0f64, 0f64);
    for round in 0..8 {
        let (t, c) = (Instant::now(), cpu_time());
        let stored: Vec<Vec<u8>> = data
            .chunks(chunk_bytes)
            .map(|c| encode_chunk(&spec, 2, c).unwrap())
            .collect();
        let (w_enc, c_enc) = (t.elapsed().as_secs_f64(), cpu_time() - c);
        let total: usize = stored.iter().map(|s| s.len()).sum();
        let mut out = vec![0u8; data.len()];
        let (t, c) = (Instant::now(), cpu_time());
        for (s, o) in stored.iter().zip(out.chunks_mut(chunk_bytes)) {
            decode_chunk(&spec, 2, s, o).unwrap();
        }
        let (w_dec, c_dec) = (t.elapsed().as_secs_f64(), cpu_time() - c);
        assert!(out == data);
        best_enc = best_enc.max(mb / c_enc);
        best_dec = best_dec.max(mb / c_dec);
        println!(
            "round {round}: {} choose {:.1} ms, ratio {:.4}%, encode {:.0} MiB/s wall {:.0} MiB/s cpu, \
             decode {:.0} MiB/s wall {:.0} MiB/s cpu",
            spec.name(),
            t_choose * 1e3,
            100.0 * total as f64 / data.len() as f64,
            mb / w_enc,
            mb / c_enc,
            mb / w_dec,
            mb / c_dec,
        );
    }
    println!("best (cpu time): encode {best_enc:.0} MiB/s, decode {best_dec:.0} MiB/s");
}

fn dtype_info(dtype: &str) -> Option<(usize, bool)> {
    Some(match dtype {
        "BF16" | "F16" => (2, true),
        "F32" => (4, true),
        "F64" => (8, true),
        "F8_E4M3" | "F8_E5M2" => (1, true),
        "I8" | "U8" | "BOOL" => (1, false),
        "I16" | "U16" => (2, false),
        "I32" | "U32" => (4, false),
        "I64" | "U64" => (8, false),
        _ => return None,
    })
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
