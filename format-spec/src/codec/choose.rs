//! Codec selection: estimates the stored size of each candidate from
//! histograms of a bounded sample of chunks and picks the smallest.

use super::huffman;
use super::planes::{plane_histogram, PlanesParams};
use super::{CodecSpec, MAX_HUFFMAN_WIDTH};

/// At most this many chunks (spread over the tensor) are sampled.
pub const SAMPLE_CHUNKS: usize = 4;

/// Below this many elements a sampled chunk's plane histograms are built
/// from the split planes instead of from 65536-bin histograms.
const SMALL_CHUNK: usize = 1 << 14;

/// Sampled chunks of at least `SUBSAMPLE * SMALL_CHUNK` elements are
/// histogrammed on one block of [`SUB_BLOCK`] elements in `SUBSAMPLE`
/// (spread over the chunk), counts scaled back up.
const SUBSAMPLE: usize = 4;
const SUB_BLOCK: usize = 4096;

/// The `planes` candidates tried for an element size.
pub fn candidates(elem_size: usize, float: bool) -> Vec<PlanesParams> {
    let p = PlanesParams::new;
    match (elem_size, float) {
        (1, _) => vec![p(false, &[8])],
        (2, true) => vec![
            p(true, &[8, 8]),
            p(true, &[9, 7]),
            p(true, &[10, 6]),
            p(true, &[6, 10]),
            p(true, &[7, 9]),
        ],
        (4, true) => vec![
            p(true, &[8, 8, 8, 8]),
            p(true, &[9, 7, 8, 8]),
            p(true, &[10, 6, 8, 8]),
        ],
        (8, true) => vec![p(true, &[8; 8]), p(true, &[10, 6, 8, 8, 8, 8, 8, 8])],
        (2 | 4 | 8, false) => vec![p(false, &vec![8; elem_size])],
        _ => vec![],
    }
}

/// Histograms of one sampled chunk under one rotation setting: the top
/// `min(W, 16)` bits, and each whole byte below them.
struct ChunkHists {
    top_bits: u32,
    /// Nonzero bins of the top-bits histogram (value, count).
    top_nonzero: Vec<(u32, u32)>,
    low_bytes: Vec<[u32; 256]>,
}

impl ChunkHists {
    /// Multiplies every count by `k` (a sample's histograms standing in for
    /// the whole chunk's); nonzero counts stay nonzero.
    fn scale(&mut self, k: f64) {
        if k == 1.0 {
            return;
        }
        let up = |c: &mut u32| *c = ((f64::from(*c) * k).round() as u32).max(u32::from(*c > 0));
        self.top_nonzero.iter_mut().for_each(|(_, c)| up(c));
        self.low_bytes.iter_mut().flatten().for_each(up);
    }
}

fn chunk_hists(elem_size: usize, rotate: bool, chunk: &[u8]) -> ChunkHists {
    match elem_size {
        1 => chunk_hists_n::<1>(rotate, chunk),
        2 => chunk_hists_n::<2>(rotate, chunk),
        4 => chunk_hists_n::<4>(rotate, chunk),
        _ => chunk_hists_n::<8>(rotate, chunk),
    }
}

fn chunk_hists_n<const N: usize>(rotate: bool, chunk: &[u8]) -> ChunkHists {
    let bits = 8 * N as u32;
    let top_bits = bits.min(16);
    let tshift = bits - top_bits;
    let nlow = (tshift / 8) as usize;
    let mut top = vec![0u32; 1 << top_bits];
    let mut low_bytes = vec![[0u32; 256]; nlow];
    for c in chunk.chunks_exact(N) {
        let mut a = [0u8; 8];
        a[..N].copy_from_slice(c);
        let mut r = u64::from_le_bytes(a);
        if rotate {
            r = if bits == 64 {
                r.rotate_left(1)
            } else {
                ((r << 1) | (r >> (bits - 1))) & ((1u64 << bits) - 1)
            };
        }
        top[(r >> tshift) as usize] += 1;
        for (b, h) in low_bytes.iter_mut().enumerate() {
            h[((r >> (8 * b)) & 0xff) as usize] += 1;
        }
    }
    let top_nonzero = top
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(x, &c)| (x as u32, c))
        .collect();
    ChunkHists {
        top_bits,
        top_nonzero,
        low_bytes,
    }
}

/// Histogram of the plane at (`shift`, `w`) if the chunk histograms hold it.
fn derived_hist(h: &ChunkHists, bits: u32, shift: u32, w: u32) -> Option<Vec<u32>> {
    let tshift = bits - h.top_bits;
    if shift >= tshift {
        let s = shift - tshift;
        let mask = (1usize << w) - 1;
        let mut out = vec![0u32; 1 << w];
        for &(x, c) in &h.top_nonzero {
            out[(x as usize >> s) & mask] += c;
        }
        Some(out)
    } else if w == 8 && shift.is_multiple_of(8) && shift + 8 <= tshift {
        Some(h.low_bytes[(shift / 8) as usize].to_vec())
    } else {
        None
    }
}

/// Estimated section size (header included) of a plane with histogram `hist`.
pub(crate) fn plane_cost(hist: &[u32], w: u32, n: usize) -> u64 {
    let raw = (n as u64 * u64::from(w)).div_ceil(8);
    let distinct = hist.iter().filter(|&&c| c > 0).count();
    let body = if n > 0 && distinct == 1 {
        2
    } else if n > 0 && w <= MAX_HUFFMAN_WIDTH {
        // No escape variants: this runs for every plane of every candidate
        // of every sampled chunk, escapes move a plane's size by
        // thousandths of a percent, and the candidates rank the same
        // without them (the encoder still tries them for real).
        huffman::plan_code(hist, w, n, raw, &[], false, false).map_or(raw, |p| p.bytes)
    } else {
        raw
    };
    5 + body
}

/// Picks the codec whose estimated stored size over a sample of chunks (cut
/// as the compiler cuts them, each with its own tables) is smallest; `raw`
/// wins ties and is returned for unsupported element sizes or bad lengths.
pub fn choose_codec(elem_size: usize, float: bool, data: &[u8], chunk_elems: usize) -> CodecSpec {
    let cands = candidates(elem_size, float);
    if cands.is_empty() || data.is_empty() || !data.len().is_multiple_of(elem_size) {
        return CodecSpec::raw();
    }
    let n = data.len() / elem_size;
    let ce = if chunk_elems == 0 { n } else { chunk_elems };
    let nchunks = n.div_ceil(ce);
    let picks: Vec<usize> = if nchunks <= SAMPLE_CHUNKS {
        (0..nchunks).collect()
    } else {
        (0..SAMPLE_CHUNKS)
            .map(|i| i * (nchunks - 1) / (SAMPLE_CHUNKS - 1))
            .collect()
    };
    let bits = 8 * elem_size as u32;
    let mut raw_cost = 0u64;
    let mut costs = vec![0u64; cands.len()];
    for &k in &picks {
        let start = k * ce * elem_size;
        let end = ((k + 1) * ce).min(n) * elem_size;
        let chunk = &data[start..end];
        let m = chunk.len() / elem_size;
        raw_cost += chunk.len() as u64;
        let mut hists: [Option<ChunkHists>; 2] = [None, None];
        // Small chunks: splitting is cheaper than 65536-bin histograms.
        let direct = m < SMALL_CHUNK;
        let sub: Option<Vec<u8>> = (m >= SUBSAMPLE * SMALL_CHUNK).then(|| {
            let mut v = Vec::with_capacity(chunk.len() / SUBSAMPLE + SUB_BLOCK * elem_size);
            for b in chunk.chunks(SUB_BLOCK * elem_size).step_by(SUBSAMPLE) {
                v.extend_from_slice(b);
            }
            v
        });
        let (hist_src, scale) = match &sub {
            Some(s) => (s.as_slice(), (m as f64 / (s.len() / elem_size) as f64)),
            None => (chunk, 1.0),
        };
        for (cand, cost) in cands.iter().zip(costs.iter_mut()) {
            for (p, (shift, w)) in cand.layout().into_iter().enumerate() {
                let derived = if direct {
                    None
                } else {
                    let h = hists[usize::from(cand.rotate)].get_or_insert_with(|| {
                        let mut h = chunk_hists(elem_size, cand.rotate, hist_src);
                        h.scale(scale);
                        h
                    });
                    derived_hist(h, bits, shift, w)
                };
                let hist = derived.unwrap_or_else(|| plane_histogram(cand, elem_size, chunk, p));
                *cost += plane_cost(&hist, w, m);
            }
        }
    }
    let mut best = CodecSpec::raw();
    let mut best_cost = raw_cost;
    for (cand, &cost) in cands.iter().zip(&costs) {
        if cost < best_cost {
            best_cost = cost;
            best = cand.spec();
        }
    }
    best
}
