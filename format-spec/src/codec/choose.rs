//! Codec selection: estimates the stored size of each candidate from
//! histograms of a bounded sample of chunks and picks the smallest.

use super::huffman;
use super::planes::{bits_histogram, PlanesParams};
use super::{CodecSpec, MAX_HUFFMAN_WIDTH};

/// At most this many chunks (spread over the tensor) are sampled.
pub const SAMPLE_CHUNKS: usize = 4;

/// Sampled chunks of at least `SUBSAMPLE_MIN` elements are histogrammed on
/// one block of [`SUB_BLOCK`] elements in every [`subsample_step`] (spread
/// over the chunk), counts scaled back up.
const SUBSAMPLE_MIN: usize = 1 << 16;
/// At least this many elements are counted per chunk: a smaller sample of
/// incompressible 10-bit windows looks compressible (an empirical entropy
/// underestimates by about (bins - 1) / (2 samples ln 2) bits).
const SUBSAMPLE_ELEMS: usize = 1 << 14;
/// At most one block in this many is counted.
const SUBSAMPLE_MAX_STEP: usize = 16;
const SUB_BLOCK: usize = 4096;

/// One [`SUB_BLOCK`] in this many of an `m`-element chunk is counted: at
/// least [`SUBSAMPLE_ELEMS`] elements, and at least one block in
/// [`SUBSAMPLE_MAX_STEP`].
fn subsample_step(m: usize) -> usize {
    (m / SUBSAMPLE_ELEMS).clamp(1, SUBSAMPLE_MAX_STEP)
}

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

/// Bits of the windows whose histograms the chooser builds: every plane of
/// every candidate is at most this wide.
const WINDOW_BITS: u32 = MAX_HUFFMAN_WIDTH;

/// The window (shift, width) whose histogram holds the histogram of plane
/// (`shift`, `w`) of `bits`-bit elements: the top or bottom
/// [`WINDOW_BITS`] bits, else the byte the plane lies in. BF16's candidates
/// all fall in its top and bottom windows, F32's in those and two bytes: a
/// few 1024-bin histograms serve every candidate, and each stays in L1.
fn window(bits: u32, shift: u32, w: u32) -> Option<(u32, u32)> {
    let t = bits.min(WINDOW_BITS);
    let byte = (shift / 8 * 8, 8);
    [(bits - t, t), (0, t), byte]
        .into_iter()
        .find(|&(s, width)| s <= shift && shift + w <= s + width)
}

/// Histogram of plane (`shift`, `w`) summed out of the nonzero bins
/// `(value, count)` of window (`ws`, ..): a small tensor's window has far
/// fewer of them than its 1024 bins.
fn derived_hist(ws: u32, bins: &[(u32, u32)], shift: u32, w: u32) -> Vec<u32> {
    let s = shift - ws;
    let mask = (1usize << w) - 1;
    let mut out = vec![0u32; 1 << w];
    for &(x, c) in bins {
        out[(x as usize >> s) & mask] += c;
    }
    out
}

/// Multiplies every count by `k` (a sample's histogram standing in for the
/// whole chunk's); nonzero counts stay nonzero.
fn scale(hist: &mut [u32], k: f64) {
    if k != 1.0 {
        for c in hist.iter_mut() {
            *c = ((f64::from(*c) * k).round() as u32).max(u32::from(*c > 0));
        }
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

/// `c log2 c`.
fn c_log2_c(c: u32) -> f64 {
    match c {
        0 => 0.0,
        _ => f64::from(c) * f64::from(c).log2(),
    }
}

/// [`c_log2_c`] of the counts below its length: most bins of a small
/// tensor's histograms, where a `log2` call costs about as much as the
/// rest of [`plane_cost_floor`]'s work on a bin.
fn c_log2_c_table() -> &'static [f64; 1024] {
    static TABLE: std::sync::OnceLock<[f64; 1024]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|c| c_log2_c(c as u32)))
}

/// A lower bound of [`plane_cost`], for a fraction of its work (no sort,
/// no code construction): a prefix code spends at least the histogram's
/// entropy (Gibbs' inequality, as the Kraft sum is at most 1), and its
/// table holds at least every present symbol.
pub(crate) fn plane_cost_floor(hist: &[u32], w: u32, n: usize) -> u64 {
    let raw = (n as u64 * u64::from(w)).div_ceil(8);
    let (mut distinct, mut total, mut c_log_c) = (0u64, 0u64, 0f64);
    let table = c_log2_c_table();
    for &c in hist.iter().filter(|&&c| c > 0) {
        distinct += 1;
        total += u64::from(c);
        c_log_c += table
            .get(c as usize)
            .copied()
            .unwrap_or_else(|| c_log2_c(c));
    }
    let body = if n > 0 && distinct == 1 {
        2
    } else if n > 0 && w <= MAX_HUFFMAN_WIDTH && distinct > 1 {
        let t = total as f64;
        // The relative margin covers the rounding of the sums.
        let bits = ((t * t.log2() - c_log_c) * (1.0 - 1e-9)).max(0.0);
        let table = 4 + (distinct + 2) / 2;
        raw.min((bits / 8.0) as u64 + table + huffman::fixed_overhead(n))
    } else {
        raw
    };
    5 + body
}

/// A window histogram's (rotate, shift, width).
type WindowKey = (bool, u32, u32);

/// One plane of one sampled chunk, as the chooser sizes it.
struct PlaneSample {
    hist: Vec<u32>,
    w: u32,
    /// Symbols in the chunk.
    m: usize,
}

/// Picks the codec whose estimated stored size over a sample of chunks (cut
/// as the compiler cuts them, each with its own tables) is smallest; `raw`
/// wins ties and is returned for unsupported element sizes or bad lengths.
pub fn choose_codec(elem_size: usize, float: bool, data: &[u8], chunk_elems: usize) -> CodecSpec {
    choose_with(elem_size, float, data, chunk_elems, true)
}

/// [`choose_codec`]; with `prune`, candidates are sized in the order of
/// their cost's lower bound, and those whose bound exceeds the best cost so
/// far are never sized (the pick is the same: tests compare both).
pub(crate) fn choose_with(
    elem_size: usize,
    float: bool,
    data: &[u8],
    chunk_elems: usize,
    prune: bool,
) -> CodecSpec {
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
    // Every candidate's planes over the sampled chunks.
    let mut planes: Vec<Vec<PlaneSample>> = cands.iter().map(|_| Vec::new()).collect();
    for &k in &picks {
        let start = k * ce * elem_size;
        let end = ((k + 1) * ce).min(n) * elem_size;
        let chunk = &data[start..end];
        let m = chunk.len() / elem_size;
        raw_cost += chunk.len() as u64;
        // Window histograms of this chunk: ((rotate, shift, width), nonzero
        // bins as (value, count)).
        let mut windows: Vec<(WindowKey, Vec<(u32, u32)>)> = Vec::new();
        let sub: Option<Vec<u8>> = (m >= SUBSAMPLE_MIN).then(|| {
            let step = subsample_step(m);
            let mut v = Vec::with_capacity(chunk.len() / step + SUB_BLOCK * elem_size);
            for b in chunk.chunks(SUB_BLOCK * elem_size).step_by(step) {
                v.extend_from_slice(b);
            }
            v
        });
        let (hist_src, k) = match &sub {
            Some(s) => (s.as_slice(), (m as f64 / (s.len() / elem_size) as f64)),
            None => (chunk, 1.0),
        };
        for (cand, samples) in cands.iter().zip(planes.iter_mut()) {
            for (shift, w) in cand.layout() {
                let hist = match window(bits, shift, w) {
                    Some((ws, ww)) => {
                        let key = (cand.rotate, ws, ww);
                        let i = windows.iter().position(|(x, _)| *x == key);
                        let i = i.unwrap_or_else(|| {
                            let mut h = bits_histogram(elem_size, cand.rotate, hist_src, ws, ww);
                            scale(&mut h, k);
                            let bins = (0u32..).zip(h).filter(|&(_, c)| c > 0).collect();
                            windows.push((key, bins));
                            windows.len() - 1
                        });
                        derived_hist(ws, &windows[i].1, shift, w)
                    }
                    None => bits_histogram(elem_size, cand.rotate, chunk, shift, w),
                };
                samples.push(PlaneSample { hist, w, m });
            }
        }
    }
    let sum = |c: usize, f: fn(&[u32], u32, usize) -> u64| -> u64 {
        planes[c].iter().map(|p| f(&p.hist, p.w, p.m)).sum()
    };
    // A lone candidate is sized anyway: its bound would be work for nothing.
    let prune = prune && cands.len() > 1;
    let mut order: Vec<(u64, usize)> = (0..cands.len())
        .map(|c| (if prune { sum(c, plane_cost_floor) } else { 0 }, c))
        .collect();
    order.sort_unstable();
    // Smallest cost wins; on a tie raw, then the earlier candidate.
    let mut best: Option<usize> = None;
    let mut best_cost = raw_cost;
    for (floor, c) in order {
        if floor > best_cost {
            break;
        }
        let cost = sum(c, plane_cost);
        if cost < best_cost || (cost == best_cost && best.is_some_and(|b| c < b)) {
            best = Some(c);
            best_cost = cost;
        }
    }
    best.map_or_else(CodecSpec::raw, |c| cands[c].spec())
}
