//! Mode 2 (`huffman`) plane sections: length-limited canonical Huffman code
//! with an escape symbol, 32 interleaved lanes per 65536-symbol tile.

use super::bits::load_u64;
use super::{CodecError, TableFault, LANES, MAX_CODE_LEN, TABLE_SIZE, TILE_SYMBOLS};

/// Bytes of one tile directory entry: u32 offset + 32 × u16 lane length.
pub(crate) const DIR_ENTRY: usize = 4 + 2 * LANES;

/// Lanes decoded in lockstep by the fast path: independent dependency
/// chains for the out-of-order core. 8 decoded BF16 and F32 2-4% faster
/// than 4 on a 2-core Xeon VM (Sapphire Rapids), 2 was 20% slower and 16
/// no better than 8.
const GROUP: usize = 8;

/// Sections of fewer symbols are decoded by the exact decoder alone: the
/// fast table costs about as much to build as it saves on them.
const FAST_MIN_SYMBOLS: usize = 8192;

/// Rows (symbols per lane) the fast path decodes per block: 8 KiB of output.
const BLOCK_ROWS: usize = 128;

/// Scratch for a tile's lane area: a power of two at least the largest a
/// valid tile needs (65536 symbols × 22 bits), plus 8 zero bytes of slack.
const SCRATCH_BYTES: usize = 1 << 18;

/// Scratch of the fast path: lane area copy and a whole tile of output (for
/// the last, partial tile of a chunk).
pub(crate) type Scratch = (Box<[u8; SCRATCH_BYTES + 8]>, Box<[u16; TILE_SYMBOLS]>);

/// Runs `f` with this thread's decoder scratch. Taken outside the decode
/// loops, so that they inline whole into [`super::dispatch::run`].
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    SCRATCH.with_borrow_mut(f)
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new((
        vec![0u8; SCRATCH_BYTES + 8].into_boxed_slice().try_into().expect("length"),
        vec![0u16; TILE_SYMBOLS].into_boxed_slice().try_into().expect("length"),
    ));
}

// Decode table entries, one per 12-bit LSB-first peek:
//   bits 0..24  the symbols, first at the bottom: up to three of 8 bits
//               (planes of w <= 8 bits) or two of 10 bits (wider planes)
//   bits 24..26 how many symbols (0 only with INVALID)
//   bit 26      ESC, bit 27 INVALID
//   bits 28..32 bits consumed by the codes (for ESC: the escape code only),
//               on top so that one shift extracts them
//   ESC: the (only) code is the escape, its w-bit value follows it;
//   INVALID: no code starts with the peek (consumes a whole peek, so the
//   fast path keeps moving; its result is then thrown away).
// The exact decoder's table holds one symbol per entry.
const ESC_FLAG: u32 = 1 << 26;
const INVALID: u32 = 1 << 27;

/// A decode table: one entry per 12-bit peek.
type DecodeTable = Box<[u32; TABLE_SIZE]>;

/// A table entry.
const fn entry(syms: u32, adv: u32, count: u32, flags: u32) -> u32 {
    syms | count << 24 | flags | adv << 28
}

/// Symbols per fast-table entry and their field width, for planes of `w`
/// bits.
const fn multi_layout(w: u32) -> (u32, u32) {
    if w <= 8 {
        (3, 8)
    } else {
        (2, 10)
    }
}

/// Builds the exact (one code per entry) and, if `with_fast`, the fast (as
/// many whole codes as the peek holds, up to [`multi_layout`]) decode tables
/// for code lengths `lens` (index = symbol; `escape` is the escape's index)
/// and their canonical codes.
fn decode_tables(
    lens: &[u8],
    codes: &[u16],
    escape: usize,
    w: u32,
    with_fast: bool,
) -> (DecodeTable, Option<DecodeTable>) {
    let mut single = Box::new([entry(0, MAX_CODE_LEN, 0, INVALID); TABLE_SIZE]);
    for (s, (&l, &c)) in lens.iter().zip(codes).enumerate() {
        if l == 0 {
            continue;
        }
        let l32 = u32::from(l);
        let e = if s == escape {
            entry(0, l32, 1, ESC_FLAG)
        } else {
            entry(s as u32, l32, 1, 0)
        };
        // Every peek whose low l bits are the reversed code: r, r + 2^l, ...
        let r = reverse(c, l) as usize;
        for slot in single.iter_mut().skip(r).step_by(1 << l) {
            *slot = e;
        }
    }
    if !with_fast {
        return (single, None);
    }
    let mut fast = Box::new([0; TABLE_SIZE]);
    match multi_layout(w) {
        (3, 8) => fill_fast::<3, 8>(&single, &mut fast),
        _ => fill_fast::<2, 10>(&single, &mut fast),
    }
    (single, Some(fast))
}

/// The fast table from the exact one: each plain code's entry gets the
/// plain codes that follow it within the peek appended (up to `MAX`
/// symbols of `WIDTH` bits): a code's entry depends only on its own bits,
/// so the lookup of the shifted peek is exact when that code is short
/// enough. Escapes and unassigned peeks stay as they are. Branch-free per
/// entry: how many codes fit varies from peek to peek and mispredicted.
fn fill_fast<const MAX: u32, const WIDTH: u32>(single: &DecodeTable, fast: &mut DecodeTable) {
    for (p, (f, &t)) in fast.iter_mut().zip(single.iter()).enumerate() {
        let plain = t & (INVALID | ESC_FLAG) == 0;
        let (mut syms, mut used, mut count) = (t & 0xff_ffff, t >> 28, 1);
        let mut more = plain;
        for _ in 1..MAX {
            let e = single[(p >> used) & (TABLE_SIZE - 1)];
            let l = e >> 28;
            more &= e & (INVALID | ESC_FLAG) == 0 && used + l <= MAX_CODE_LEN;
            let k = u32::from(more);
            syms |= ((e & 0xff_ffff) << (WIDTH * count)) * k;
            used += l * k;
            count += k;
        }
        *f = if plain {
            entry(syms, used, count, 0)
        } else {
            t
        };
    }
}

/// Optimal code lengths limited to `limit` bits for `weights` (ascending, all
/// nonzero, at most `2^limit` of them), by package-merge. Returns the length
/// of each weight in input order.
pub(crate) fn package_merge(weights: &[u64], limit: u32) -> Vec<u8> {
    let n = weights.len();
    let mut lens = vec![0u8; n];
    if n == 0 {
        return lens;
    }
    if n == 1 {
        lens[0] = 1;
        return lens;
    }
    debug_assert!(n <= 1 << limit);
    // levels[0] is the deepest list (denomination 2^-limit), the last one is
    // the top list (2^-1). An item is (weight, leaf index or -1 for a package).
    let mut levels: Vec<Vec<(u64, i32)>> = Vec::with_capacity(limit as usize);
    let leaves: Vec<(u64, i32)> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| (w, i as i32))
        .collect();
    levels.push(leaves.clone());
    for _ in 1..limit {
        let prev = &levels[levels.len() - 1];
        let mut merged = Vec::with_capacity(n + prev.len() / 2);
        let mut packages = prev.chunks_exact(2).map(|p| (p[0].0 + p[1].0, -1));
        let mut li = leaves.iter().copied().peekable();
        let mut pk = packages.next();
        loop {
            match (li.peek(), pk) {
                (Some(&l), Some(p)) => {
                    if l.0 <= p.0 {
                        merged.push(l);
                        li.next();
                    } else {
                        merged.push(p);
                        pk = packages.next();
                    }
                }
                (Some(&l), None) => {
                    merged.push(l);
                    li.next();
                }
                (None, Some(p)) => {
                    merged.push(p);
                    pk = packages.next();
                }
                (None, None) => break,
            }
        }
        levels.push(merged);
    }
    // Select the first 2n-2 items of the top list; every package selected at
    // one level selects its two children at the level below.
    let mut m = 2 * n - 2;
    for list in levels.iter().rev() {
        let mut packages = 0usize;
        for &(_, id) in &list[..m.min(list.len())] {
            if id >= 0 {
                lens[id as usize] += 1;
            } else {
                packages += 1;
            }
        }
        m = 2 * packages;
        if m == 0 {
            break;
        }
    }
    lens
}

/// Lengths limited to `limit` bits from unlimited Huffman `depths` of
/// `weights` sorted ascending (so the deepest symbols come first): the
/// length counts are repaired as in JPEG (ITU T.81 Annex K.3, `Adjust_BITS`),
/// which keeps the Kraft sum at exactly 1, and the lengths are then handed
/// out shortest first to the heaviest symbols. Linear in the symbol count;
/// within a few thousandths of a percent of the optimal length-limited code
/// on real weight planes, for a fraction of package-merge's cost.
fn limit_lengths(depths: &[u32], limit: u32) -> Vec<u8> {
    let n = depths.len();
    debug_assert!(n >= 2 && n <= 1 << limit);
    let max = depths.iter().copied().max().unwrap_or(0) as usize;
    let mut bl_count = vec![0u64; max + 1];
    for &d in depths {
        bl_count[d as usize] += 1;
    }
    let limit = limit as usize;
    for i in (limit + 1..=max).rev() {
        while bl_count[i] > 0 {
            // Two leaves at depth i become one at i-1 (their parent's
            // sibling moves down) and a leaf at some shallower depth j
            // becomes an internal node with two children at j+1.
            let mut j = i - 2;
            while bl_count[j] == 0 {
                j -= 1;
            }
            bl_count[i] -= 2;
            bl_count[i - 1] += 1;
            bl_count[j + 1] += 2;
            bl_count[j] -= 1;
        }
    }
    // Shortest lengths to the heaviest (last) symbols.
    let mut lens = vec![0u8; n];
    let mut k = n;
    for (len, &count) in bl_count.iter().enumerate().take(limit + 1).skip(1) {
        for _ in 0..count {
            k -= 1;
            lens[k] = len as u8;
        }
    }
    debug_assert_eq!(k, 0);
    lens
}

/// Code lengths limited to `limit` bits for `weights` (ascending, nonzero,
/// at most `2^limit` of them): plain Huffman (two-queue, O(n)), optimal
/// when it fits the limit; else package-merge (`exact`, optimal) or the
/// fast repair of [`limit_lengths`].
pub(crate) fn code_lengths(weights: &[u64], limit: u32, exact: bool) -> Vec<u8> {
    let n = weights.len();
    if n <= 1 {
        return vec![1; n];
    }
    // Internal nodes are created in nondecreasing weight order, so two
    // queues (leaves, internal nodes) replace a heap. Node ids: leaves
    // 0..n, internal nodes n..2n-1.
    let mut parent = vec![0usize; 2 * n - 1];
    let mut iw = Vec::with_capacity(n - 1);
    let (mut li, mut ii) = (0usize, 0usize);
    fn pick(leaves: &[u64], iw: &[u64], li: &mut usize, ii: &mut usize) -> (usize, u64) {
        if *li < leaves.len() && (*ii >= iw.len() || leaves[*li] <= iw[*ii]) {
            *li += 1;
            (*li - 1, leaves[*li - 1])
        } else {
            *ii += 1;
            (leaves.len() + *ii - 1, iw[*ii - 1])
        }
    }
    for k in 0..n - 1 {
        let (a, wa) = pick(weights, &iw, &mut li, &mut ii);
        let (b, wb) = pick(weights, &iw, &mut li, &mut ii);
        parent[a] = n + k;
        parent[b] = n + k;
        iw.push(wa + wb);
    }
    // Depths: the root (last node) is 0; parents come after their children.
    let mut depth = vec![0u32; 2 * n - 1];
    for v in (0..2 * n - 2).rev() {
        depth[v] = depth[parent[v]] + 1;
    }
    if depth[..n].iter().any(|&d| d > limit) {
        return if exact {
            package_merge(weights, limit)
        } else {
            limit_lengths(&depth[..n], limit)
        };
    }
    depth[..n].iter().map(|&d| d as u8).collect()
}

/// Canonical codes (DEFLATE order: by length, then symbol value) for `lens`
/// indexed by symbol value. Codes are returned MSB-first as integers.
/// Requires a Kraft sum <= 1 and lengths <= 12.
pub(crate) fn canonical_codes(lens: &[u8]) -> Vec<u16> {
    let mut bl_count = [0u32; MAX_CODE_LEN as usize + 1];
    for &l in lens {
        bl_count[l as usize] += 1;
    }
    bl_count[0] = 0;
    let mut next = [0u32; MAX_CODE_LEN as usize + 1];
    let mut code = 0u32;
    for bits in 1..=MAX_CODE_LEN as usize {
        code = (code + bl_count[bits - 1]) << 1;
        next[bits] = code;
    }
    lens.iter()
        .map(|&l| {
            if l == 0 {
                0
            } else {
                let c = next[l as usize];
                next[l as usize] += 1;
                c as u16
            }
        })
        .collect()
}

/// Reverses the low `len` bits of `code` (MSB-first code → LSB-first stream).
#[inline]
fn reverse(code: u16, len: u8) -> u32 {
    if len == 0 {
        return 0;
    }
    u32::from(code.reverse_bits() >> (16 - u32::from(len)))
}

/// An encoder's plan for one plane: the code lengths and its estimated size.
#[derive(Clone, Debug)]
pub(crate) struct CodePlan {
    /// Code length per symbol value `0..2^w`, then ESC at index `2^w`;
    /// 0 = no code (the symbol, if present, is escaped).
    pub lens: Vec<u8>,
    /// First symbol of the table range.
    pub first: u16,
    /// Number of symbols in the table range.
    pub count: u16,
    /// Estimated section body size in bytes (table, directory, lanes with
    /// an average of half a byte of padding per used lane).
    pub bytes: u64,
}

/// Thresholds the encoder tries when deciding which rare symbols to escape.
pub(crate) const ESC_THRESHOLDS: [u32; 14] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256];

/// Body bytes that do not depend on the code: tile directory and an average
/// of 4 padding bits per used lane.
pub(crate) fn fixed_overhead(n: usize) -> u64 {
    let tiles = n.div_ceil(TILE_SYMBOLS);
    let full = n / TILE_SYMBOLS;
    let last = n % TILE_SYMBOLS;
    let used_lanes = full * LANES + last.min(LANES);
    (tiles * DIR_ENTRY) as u64 + (used_lanes as u64).div_ceil(2)
}

/// Chooses code lengths for a plane of width `w` (<= 10) with histogram
/// `hist` (`2^w` counts, `n` symbols in all). Tries a length-limited code
/// over all present symbols, and variants that escape the rarest symbols
/// (count <= each of `thresholds`) or trim rare symbols off the table's
/// range; returns the smallest. Variants are sized with the fast length
/// repair; with `exact` the winner then gets optimal (package-merge) lengths.
/// With `sampled` the histogram counts a sample of the plane (scaled up):
/// the code then always has an escape, for symbols the sample missed.
/// `None` when `n == 0` or when no code can be smaller than `beat` bytes
/// (checked first with the entropy bound, which no prefix code beats).
pub(crate) fn plan_code(
    hist: &[u32],
    w: u32,
    n: usize,
    beat: u64,
    thresholds: &[u32],
    exact: bool,
    sampled: bool,
) -> Option<CodePlan> {
    debug_assert_eq!(hist.len(), 1usize << w);
    let mut present: Vec<(u32, u16)> = hist
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(s, &c)| (c, s as u16))
        .collect();
    if present.is_empty() {
        return None;
    }
    let fixed = fixed_overhead(n);
    let total = n as f64;
    let entropy_bits: f64 = present
        .iter()
        .map(|&(c, _)| f64::from(c) * (total / f64::from(c)).log2())
        .sum();
    if (entropy_bits / 8.0) * (1.0 - 1e-9) + (5 + fixed) as f64 >= beat as f64 {
        return None;
    }
    present.sort_unstable();
    let mut best: Option<CodePlan> = None;
    let mut consider = |keep: &dyn Fn(u16, u32) -> bool| -> bool {
        match evaluate(w, &present, keep, fixed, false, sampled) {
            Some(plan) if best.as_ref().is_none_or(|b| plan.bytes < b.bytes) => {
                best = Some(plan);
                true
            }
            _ => false,
        }
    };
    consider(&|_, _| true);
    let mut escaped = 0;
    // On planes of a tile or more, sizes along the ladder fall, then rise:
    // stop after two rungs in a row that beat nothing. (On small planes the
    // table's size makes the curve bumpy, and the ladder is cheap.)
    let patience = if n >= TILE_SYMBOLS { 2 } else { usize::MAX };
    let mut misses = 0;
    for &t in thresholds {
        let k = present.partition_point(|&(c, _)| c <= t);
        if k == present.len() || misses >= patience {
            break;
        }
        if k == escaped {
            continue;
        }
        escaped = k;
        // Escape every symbol with count <= t.
        let all = consider(&|_, c| c > t);
        // Escape only rare symbols outside the range spanned by frequent ones.
        let lo = hist.iter().position(|&c| c > t).unwrap_or(0) as u16;
        let hi = hist.iter().rposition(|&c| c > t).unwrap_or(0) as u16;
        let outside = consider(&|s, _| s >= lo && s <= hi);
        misses = if all || outside { 0 } else { misses + 1 };
    }
    // The variants were sized with the fast length repair; the winner gets
    // optimal lengths when it is coded for real.
    if exact {
        if let Some(b) = &best {
            let lens = b.lens.clone();
            best = evaluate(
                w,
                &present,
                &|s, _| lens[usize::from(s)] > 0,
                fixed,
                true,
                sampled,
            );
        }
    }
    best.filter(|b| b.bytes < beat)
}

/// Builds and sizes the code that keeps the present symbols accepted by `keep`
/// and escapes the others (with `always_escape`, the code has an escape
/// even when no present symbol needs it).
fn evaluate(
    w: u32,
    present: &[(u32, u16)],
    keep: &dyn Fn(u16, u32) -> bool,
    fixed: u64,
    exact: bool,
    always_escape: bool,
) -> Option<CodePlan> {
    let alphabet = 1usize << w;
    let mut kept: Vec<(u64, u16)> = Vec::with_capacity(present.len() + 1);
    let mut esc_count = 0u64;
    for &(c, s) in present {
        if keep(s, c) {
            kept.push((u64::from(c), s));
        } else {
            esc_count += u64::from(c);
        }
    }
    if kept.is_empty() {
        return None;
    }
    let esc = alphabet as u16;
    if esc_count > 0 || always_escape {
        let weight = esc_count.max(1);
        let at = kept.partition_point(|&(c, _)| c <= weight);
        kept.insert(at, (weight, esc));
    }
    let weights: Vec<u64> = kept.iter().map(|k| k.0).collect();
    let l = code_lengths(&weights, MAX_CODE_LEN, exact);
    let mut lens = vec![0u8; alphabet + 1];
    let mut bits = 0u64;
    for (&(c, s), &len) in kept.iter().zip(&l) {
        lens[s as usize] = len;
        bits += c * u64::from(len);
    }
    bits += esc_count * u64::from(w);
    let first = lens[..alphabet].iter().position(|&x| x > 0).unwrap_or(0);
    let last = lens[..alphabet].iter().rposition(|&x| x > 0);
    let count = last.map_or(0, |l| l + 1 - first);
    let table = 4 + (count as u64 + 2) / 2;
    Some(CodePlan {
        lens,
        first: first as u16,
        count: count as u16,
        bytes: table + bits.div_ceil(8) + fixed,
    })
}

/// Writes a mode-2 section body (without the mode byte) tile by tile, so
/// that a caller can interleave several planes' tiles.
pub(crate) struct BodyWriter {
    enc: EncTable,
    n: usize,
    /// Where the tile directory starts in the body.
    dir_at: usize,
    /// Where the lane area starts in the body.
    area_at: usize,
    scratch: Vec<u8>,
}

impl BodyWriter {
    /// Appends the code table and a directory placeholder for `n` symbols
    /// of width `w` to `body`. `lanes` is scratch space for the lanes of a
    /// tile (any contents; see [`BodyWriter::into_lanes`]).
    pub(crate) fn start(
        n: usize,
        w: u32,
        plan: &CodePlan,
        body: &mut Vec<u8>,
        lanes: Vec<u8>,
    ) -> Self {
        let alphabet = 1usize << w;
        body.extend_from_slice(&plan.first.to_le_bytes());
        body.extend_from_slice(&plan.count.to_le_bytes());
        let first = plan.first as usize;
        let count = plan.count as usize;
        let nibbles = plan.lens[first..first + count]
            .iter()
            .chain(std::iter::once(&plan.lens[alphabet]));
        let mut byte = 0u8;
        for (i, &l) in nibbles.enumerate() {
            if i % 2 == 0 {
                byte = l;
            } else {
                body.push(byte | (l << 4));
            }
        }
        if (count + 1) % 2 == 1 {
            body.push(byte);
        }
        let dir_at = body.len();
        body.resize(dir_at + n.div_ceil(TILE_SYMBOLS) * DIR_ENTRY, 0);
        BodyWriter {
            enc: EncTable::new(plan, w),
            n,
            dir_at,
            area_at: body.len(),
            scratch: lanes,
        }
    }

    /// Gives back the lane scratch space, for the next body.
    pub(crate) fn into_lanes(self) -> Vec<u8> {
        self.scratch
    }

    /// Appends tile `t` (tiles come in order; `tile` holds all its symbols)
    /// and fills in its directory entry.
    #[inline(always)]
    pub(crate) fn tile(&mut self, t: usize, tile: &[u16], body: &mut Vec<u8>) {
        debug_assert_eq!(tile.len(), (self.n - t * TILE_SYMBOLS).min(TILE_SYMBOLS));
        let offset = (body.len() - self.area_at) as u32;
        let d = self.dir_at + t * DIR_ENTRY;
        body[d..d + 4].copy_from_slice(&offset.to_le_bytes());
        let lens = encode_tile(tile, &self.enc, body, &mut self.scratch);
        for (j, len) in lens.iter().enumerate() {
            let at = d + 4 + 2 * j;
            body[at..at + 2].copy_from_slice(&len.to_le_bytes());
        }
    }
}

/// Rows a lane writer adds between flushes: the accumulator holds at most 7
/// pending bits plus this many entries of at most [`SHORT_ENTRY`] bits, and
/// a flush may shift out at most 7 whole bytes.
const ROWS_PER_FLUSH: usize = 4;

/// The longest entry added without a flush around it: every code (12 bits
/// at most); only escaped symbols (escape code and w raw bits, up to 22) are
/// longer, and they are rare.
const SHORT_ENTRY: u32 = MAX_CODE_LEN;

/// Scratch bytes per lane: at most 2048 symbols of 22 bits, plus slack for
/// the unconditional 8-byte stores of [`LaneWriter::flush`].
const LANE_CAP: usize = (TILE_SYMBOLS / LANES) * 22 / 8 + 16;

/// Encoder table size: one entry per symbol value of a plane at most
/// [`super::MAX_HUFFMAN_WIDTH`] bits wide (masking the index with
/// `ENC_SIZE - 1` needs no bounds check).
const ENC_SIZE: usize = 1 << 10;

/// Per symbol value: its code's bits (LSB-first, ready to OR in) and length.
/// Escaped symbols carry the escape code followed by their w raw bits.
struct EncTable {
    bits: [u32; ENC_SIZE],
    lens: [u8; ENC_SIZE],
}

impl EncTable {
    fn new(plan: &CodePlan, w: u32) -> Self {
        let alphabet = 1usize << w;
        let codes = canonical_codes(&plan.lens);
        let esc_len = plan.lens[alphabet];
        let esc_bits = reverse(codes[alphabet], esc_len);
        let mut t = EncTable {
            bits: [0; ENC_SIZE],
            lens: [0; ENC_SIZE],
        };
        for (s, (&l, &code)) in plan.lens[..alphabet].iter().zip(&codes).enumerate() {
            let (bits, len) = if l > 0 {
                (reverse(code, l), u32::from(l))
            } else {
                (esc_bits | ((s as u32) << esc_len), u32::from(esc_len) + w)
            };
            t.bits[s] = bits;
            t.lens[s] = len as u8;
        }
        t
    }
}

/// LSB-first bit writer over a lane's scratch buffer.
#[derive(Clone, Copy, Default)]
struct LaneWriter {
    acc: u64,
    n: u32,
    pos: usize,
}

impl LaneWriter {
    /// Adds symbol `s`'s entry; an entry longer than [`SHORT_ENTRY`] gets a
    /// flush before and after it, so that between flushes at most
    /// [`ROWS_PER_FLUSH`] short entries accumulate.
    #[inline(always)]
    fn add(&mut self, enc: &EncTable, s: u16, buf: &mut [u8]) {
        let i = usize::from(s) & (ENC_SIZE - 1);
        let len = u32::from(enc.lens[i]);
        let long = len > SHORT_ENTRY;
        if long {
            self.flush(buf);
        }
        self.acc |= u64::from(enc.bits[i]) << self.n;
        self.n += len;
        if long {
            self.flush(buf);
        }
    }

    /// Stores all 8 bytes of the accumulator and keeps only the whole ones.
    #[inline(always)]
    fn flush(&mut self, buf: &mut [u8]) {
        if let Some(dst) = buf.get_mut(self.pos..self.pos + 8) {
            dst.copy_from_slice(&self.acc.to_le_bytes());
        }
        let whole = self.n >> 3;
        self.pos += whole as usize;
        // n <= 63, so at most 7 whole bytes: the shift is < 64.
        self.acc >>= 8 * whole;
        self.n &= 7;
    }

    /// Flushes the partial byte; returns the lane length.
    fn finish(mut self, buf: &mut [u8]) -> usize {
        self.flush(buf);
        if self.n > 0 {
            if let Some(b) = buf.get_mut(self.pos) {
                *b = self.acc as u8;
            }
            self.pos += 1;
        }
        self.pos
    }
}

/// Appends the 32 lanes of one tile; returns their byte lengths. Lanes are
/// written two at a time in lockstep into scratch buffers (independent
/// bit-writer chains; four spill the accumulators out of registers),
/// [`ROWS_PER_FLUSH`] rows per flush, then copied out in lane order.
#[inline(always)]
fn encode_tile(
    tile: &[u16],
    enc: &EncTable,
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
) -> [u16; LANES] {
    const G: usize = 2;
    scratch.resize(LANES * LANE_CAP, 0);
    let mut lens = [0u16; LANES];
    let blocks = tile.chunks_exact(ROWS_PER_FLUSH * LANES);
    let rest = blocks.remainder();
    for (g, group) in scratch.chunks_exact_mut(G * LANE_CAP).enumerate() {
        let g = g * G;
        let (b0, b1) = group.split_at_mut(LANE_CAP);
        let mut wr = [LaneWriter::default(); G];
        for block in blocks.clone() {
            for row in block.chunks_exact(LANES) {
                if let Some(a) = row.get(g..).and_then(|r| r.first_chunk::<G>()) {
                    wr[0].add(enc, a[0], b0);
                    wr[1].add(enc, a[1], b1);
                }
            }
            wr[0].flush(b0);
            wr[1].flush(b1);
        }
        let bufs: [&mut [u8]; G] = [b0, b1];
        for (i, (mut w, buf)) in wr.into_iter().zip(bufs).enumerate() {
            // The last, partial rows: one symbol per flush.
            let mut p = g + i;
            while let Some(&s) = rest.get(p) {
                w.add(enc, s, buf);
                w.flush(buf);
                p += LANES;
            }
            lens[g + i] = w.finish(buf) as u16;
        }
    }
    for (lane, &len) in scratch.chunks_exact(LANE_CAP).zip(&lens) {
        out.extend_from_slice(&lane[..usize::from(len)]);
    }
    lens
}

/// Number of symbols lane `j` carries in a tile of `m` symbols.
#[inline]
pub(crate) fn lane_count(m: usize, j: usize) -> usize {
    if m > j {
        (m - j).div_ceil(LANES)
    } else {
        0
    }
}

/// A parsed, validated mode-2 section ready to decode tile by tile.
pub(crate) struct HuffDecoder<'a> {
    plane: usize,
    w: u32,
    wmask: u64,
    /// Per 12-bit LSB-first peek: one symbol (see [`decode_tables`]).
    table: DecodeTable,
    /// Per 12-bit LSB-first peek: up to three symbols (none for sections of
    /// fewer than [`FAST_MIN_SYMBOLS`] symbols).
    fast: Option<DecodeTable>,
    dir: &'a [u8],
    lanes: &'a [u8],
}

impl<'a> HuffDecoder<'a> {
    /// Parses and validates a mode-2 body for `n` symbols of width `w`.
    /// `base` is the body's offset in the stored chunk (for error messages).
    pub(crate) fn parse(
        plane: usize,
        w: u32,
        n: usize,
        body: &'a [u8],
        base: usize,
    ) -> Result<Self, CodecError> {
        let alphabet = 1u32 << w;
        let need = |what, off: usize, k: usize| -> Result<&'a [u8], CodecError> {
            body.get(off..)
                .and_then(|s| s.get(..k))
                .ok_or(CodecError::Truncated {
                    what,
                    offset: base + off,
                    need: k,
                    have: body.len().saturating_sub(off),
                })
        };
        let h = need("huffman table header", 0, 4)?;
        let first = u16::from_le_bytes([h[0], h[1]]);
        let count = u16::from_le_bytes([h[2], h[3]]);
        if u32::from(first) + u32::from(count) > alphabet {
            return Err(CodecError::BadTable {
                plane,
                fault: TableFault::RangeOutsideAlphabet {
                    first,
                    count,
                    alphabet,
                },
            });
        }
        let nl = usize::from(count) + 1;
        let lb = need("huffman code lengths", 4, nl.div_ceil(2))?;
        if nl % 2 == 1 && lb[nl / 2] >> 4 != 0 {
            return Err(CodecError::BadTable {
                plane,
                fault: TableFault::NonzeroPadding,
            });
        }
        let mut lens = vec![0u8; alphabet as usize + 1];
        let mut kraft = 0u32;
        for i in 0..nl {
            let l = (lb[i / 2] >> (4 * (i % 2))) & 0xf;
            let sym = if i + 1 == nl {
                alphabet
            } else {
                u32::from(first) + i as u32
            };
            if u32::from(l) > MAX_CODE_LEN {
                return Err(CodecError::BadTable {
                    plane,
                    fault: TableFault::CodeTooLong {
                        symbol: sym,
                        len: l,
                    },
                });
            }
            if l > 0 {
                kraft += 1 << (MAX_CODE_LEN - u32::from(l));
                lens[sym as usize] = l;
            }
        }
        if kraft == 0 {
            return Err(CodecError::BadTable {
                plane,
                fault: TableFault::EmptyCode,
            });
        }
        if kraft > TABLE_SIZE as u32 {
            return Err(CodecError::BadTable {
                plane,
                fault: TableFault::KraftOverflow,
            });
        }
        let codes = canonical_codes(&lens);
        let (table, fast) =
            decode_tables(&lens, &codes, alphabet as usize, w, n >= FAST_MIN_SYMBOLS);
        // Tile directory.
        let dir_off = 4 + nl.div_ceil(2);
        let tiles = n.div_ceil(TILE_SYMBOLS);
        let dir_len = tiles.checked_mul(DIR_ENTRY).ok_or(CodecError::TooLarge {
            what: "tile directory",
        })?;
        let dir = need("tile directory", dir_off, dir_len)?;
        let mut sum = 0u64;
        for (t, e) in dir.chunks_exact(DIR_ENTRY).enumerate() {
            let off = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            if u64::from(off) != sum {
                return Err(CodecError::BadTileOffset {
                    plane,
                    tile: t,
                    expected: sum,
                    got: off,
                });
            }
            for l in e[4..].chunks_exact(2) {
                sum += u64::from(u16::from_le_bytes([l[0], l[1]]));
            }
        }
        let lanes = &body[dir_off + dir_len..];
        if sum != lanes.len() as u64 {
            return Err(CodecError::LaneAreaLength {
                plane,
                expected: sum,
                got: lanes.len(),
            });
        }
        Ok(HuffDecoder {
            plane,
            w,
            wmask: u64::from(alphabet) - 1,
            table,
            fast,
            dir,
            lanes,
        })
    }

    /// Decodes tile `t`, whose symbol count is `out.len()`, into `out`.
    ///
    /// The fast path decodes lanes [`GROUP`] at a time in lockstep
    /// (independent dependency chains keep the CPU busy), up to three
    /// symbols per table lookup (see [`multi_layout`]), in blocks of
    /// [`BLOCK_ROWS`] rows so the rows being written and the decode table
    /// stay in L1 together. It works on power-of-two scratch copies indexed
    /// through masks, so it needs no bounds checks. Each lane's last few
    /// symbols, every lane if the fast path met an unassigned code, and
    /// whole sections under [`FAST_MIN_SYMBOLS`] go through the exact
    /// one-symbol decoder on the section itself, which reports the precise
    /// error.
    #[inline(always)]
    pub(crate) fn decode_tile(
        &self,
        t: usize,
        out: &mut [u16],
        sc: &mut Scratch,
    ) -> Result<(), CodecError> {
        self.decode_tile_with(t, out, sc, true, true)
    }

    /// [`Self::decode_tile`], except that the symbols may carry stray bits
    /// above the plane's width (the fast path writes them so; clearing them
    /// is a pass over the tile): for a caller that shifts them out anyway,
    /// as the merge does with the top plane of an element.
    #[inline(always)]
    pub(crate) fn decode_tile_unmasked(
        &self,
        t: usize,
        out: &mut [u16],
        sc: &mut Scratch,
    ) -> Result<(), CodecError> {
        self.decode_tile_with(t, out, sc, true, false)
    }

    /// [`Self::decode_tile`], with the fast path (scratch `sc`) or
    /// (`fast == false`, for tests) the exact decoder alone, and the stray
    /// bits of the fast path cleared or (`masked == false`) left.
    #[inline(always)]
    fn decode_tile_with(
        &self,
        t: usize,
        out: &mut [u16],
        sc: &mut Scratch,
        fast: bool,
        masked: bool,
    ) -> Result<(), CodecError> {
        let m = out.len();
        let e = &self.dir[t * DIR_ENTRY..(t + 1) * DIR_ENTRY];
        let mut starts = [0usize; LANES];
        let mut lens = [0usize; LANES];
        let first = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as usize;
        let mut at = first;
        for (j, l) in e[4..].chunks_exact(2).enumerate() {
            starts[j] = at;
            lens[j] = usize::from(u16::from_le_bytes([l[0], l[1]]));
            at += lens[j];
        }
        // Where each lane starts: bit position, output index of its symbol 0.
        let start_bp = starts.map(|s| s * 8);
        let start_idx: [usize; LANES] = std::array::from_fn(|j| j);
        let (mut bp, mut idx) = (start_bp, start_idx);
        let area = self
            .lanes
            .get(first..at)
            .filter(|a| a.len() <= SCRATCH_BYTES);
        // Lane counts fall with the lane index: the last lane's is smallest.
        let rows = lane_count(m, LANES - 1);
        if let (Some(area), Some(table), true) = (area, &self.fast, fast && rows > 0) {
            let fast_ok = 'fast: {
                let (lane_buf, tile_buf) = (&mut sc.0, &mut sc.1);
                lane_buf[..area.len()].copy_from_slice(area);
                lane_buf[area.len()..area.len() + 8].fill(0);
                let mut rel = bp.map(|b| b - first * 8);
                let full = <&mut [u16; TILE_SYMBOLS]>::try_from(&mut *out);
                let tile: &mut [u16; TILE_SYMBOLS] = match full {
                    Ok(o) => o,
                    Err(_) => tile_buf,
                };
                let mut bad = 0u32;
                let mut limit = 0;
                while limit < rows {
                    limit = (limit + BLOCK_ROWS).min(rows);
                    for (b, x) in rel.chunks_exact_mut(GROUP).zip(idx.chunks_exact_mut(GROUP)) {
                        if let (Ok(b), Ok(x)) = (b.try_into(), x.try_into()) {
                            bad |= match multi_layout(self.w) {
                                (3, 8) => {
                                    self.decode_group::<3, 8>(table, limit, b, x, lane_buf, tile)
                                }
                                _ => self.decode_group::<2, 10>(table, limit, b, x, lane_buf, tile),
                            };
                        }
                    }
                }
                if bad & INVALID != 0 {
                    break 'fast false;
                }
                if m < TILE_SYMBOLS {
                    out.copy_from_slice(&tile_buf[..m]);
                }
                if masked {
                    let wmask = self.wmask as u16;
                    out.iter_mut().for_each(|x| *x &= wmask);
                }
                for (b, r) in bp.iter_mut().zip(rel) {
                    *b = r + first * 8;
                }
                true
            };
            if !fast_ok {
                (bp, idx) = (start_bp, start_idx);
            }
        }
        for j in 0..LANES {
            let resume = (bp[j], idx[j] / LANES);
            self.decode_lane(t, j, starts[j], lens[j], lane_count(m, j), resume, out)?;
        }
        Ok(())
    }

    /// Fast lockstep decode of one group of lanes, at bit positions `bp` of
    /// `lanes` and output indices `idx` (symbol `k` of lane `j` is
    /// `out[k * LANES + j]`), until a lane could pass symbol `limit` of the
    /// lane: one 8-byte load and two lookups in the fast table `table` per
    /// lane and step (at most 2 × 22 bits of the 57 a load guarantees), each
    /// lookup giving up to `MAX` symbols of `WIDTH`-bit fields. Returns the
    /// OR of the entries used: [`INVALID`] set means an unassigned code was
    /// met and the results are void. Symbols are stored with stray bits
    /// above their width: the caller masks the tile.
    #[inline(always)]
    fn decode_group<const MAX: usize, const WIDTH: u32>(
        &self,
        table: &[u32; TABLE_SIZE],
        limit: usize,
        bp: &mut [usize; GROUP],
        idx: &mut [usize; GROUP],
        lanes: &[u8; SCRATCH_BYTES + 8],
        out: &mut [u16; TILE_SYMBOLS],
    ) -> u32 {
        const OUT_MASK: usize = TILE_SYMBOLS - 1;
        let w = self.w;
        let wmask = self.wmask;
        let mut bad = 0u32;
        loop {
            // Steps every lane can take without passing `limit` (a step emits
            // at most 2 × MAX symbols).
            let done = idx.iter().map(|&x| x / LANES).max().unwrap_or(0);
            let steps = limit.saturating_sub(done) / (2 * MAX);
            if steps == 0 {
                return bad;
            }
            for _ in 0..steps {
                for i in 0..GROUP {
                    let b = (bp[i] >> 3) & (SCRATCH_BYTES - 1);
                    let bytes: [u8; 8] = lanes[b..b + 8].try_into().unwrap_or([0; 8]);
                    let mut word = u64::from_le_bytes(bytes) >> (bp[i] & 7);
                    let mut used = 0;
                    let mut at = idx[i];
                    for _ in 0..2 {
                        let e = table[(word & (TABLE_SIZE as u64 - 1)) as usize];
                        bad |= e;
                        let l = e >> 28;
                        let (syms, adv, count) = if e & ESC_FLAG != 0 {
                            (((word >> l) & wmask) as u32, l + w, 1)
                        } else {
                            (e, l, (e >> 24) as usize & 3)
                        };
                        // Unmasked: the bits above the symbol are cleared
                        // once per tile afterwards, in a vectorized pass.
                        for k in 0..MAX {
                            out[(at + k * LANES) & OUT_MASK] = (syms >> (WIDTH * k as u32)) as u16;
                        }
                        at += count * LANES;
                        word >>= adv;
                        used += adv as usize;
                    }
                    idx[i] = at;
                    bp[i] += used;
                }
            }
        }
    }

    /// Exact decode of lane `j`'s symbols `k..cnt`, starting at bit `bp` of
    /// the lane area (`resume = (bp, k)`), then the lane's end checks.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn decode_lane(
        &self,
        t: usize,
        j: usize,
        start: usize,
        len: usize,
        cnt: usize,
        resume: (usize, usize),
        out: &mut [u16],
    ) -> Result<(), CodecError> {
        let lanes = self.lanes;
        let table = &*self.table;
        let w = self.w;
        let wmask = self.wmask;
        let begin = start * 8;
        let end = (start + len) * 8;
        let (mut bp, k) = resume;
        let err = |bp: usize| {
            if bp >= end {
                CodecError::LaneOverrun {
                    plane: self.plane,
                    tile: t,
                    lane: j,
                }
            } else {
                CodecError::InvalidCode {
                    plane: self.plane,
                    tile: t,
                    lane: j,
                }
            }
        };
        if let Some(lane_out) = out.get_mut(j..) {
            for slot in lane_out.iter_mut().step_by(LANES).take(cnt).skip(k) {
                let word = load_u64(lanes, bp >> 3) >> (bp & 7);
                let e = table[(word & (TABLE_SIZE as u64 - 1)) as usize];
                if e & INVALID != 0 {
                    return Err(err(bp));
                }
                let l = e >> 28;
                let (s, adv) = if e & ESC_FLAG != 0 {
                    (((word >> l) & wmask) as u32, l + w)
                } else {
                    (e & 0xff_ffff, l)
                };
                bp += adv as usize;
                *slot = s as u16;
            }
        }
        if bp > end {
            return Err(err(bp));
        }
        let used = (bp - begin).div_ceil(8);
        if used != len {
            return Err(CodecError::LaneLength {
                plane: self.plane,
                tile: t,
                lane: j,
                expected: used,
                got: len,
            });
        }
        if bp < end && (load_u64(lanes, bp >> 3) & 0xff) >> (bp & 7) != 0 {
            return Err(CodecError::NonzeroPadding {
                plane: self.plane,
                tile: t,
                lane: j,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kraft(lens: &[u8]) -> f64 {
        lens.iter()
            .filter(|&&l| l > 0)
            .map(|&l| 0.5f64.powi(l as i32))
            .sum()
    }

    /// A whole mode-2 body for `syms`.
    fn encode_body(syms: &[u16], w: u32, plan: &CodePlan) -> Vec<u8> {
        let mut body = Vec::new();
        let mut wr = BodyWriter::start(syms.len(), w, plan, &mut body, Vec::new());
        for (t, tile) in syms.chunks(TILE_SYMBOLS).enumerate() {
            wr.tile(t, tile, &mut body);
        }
        body
    }

    /// Decodes every tile of `body` with the fast path and with the exact
    /// decoder alone; both must give the same symbols or the same error.
    fn fast_and_exact(w: u32, n: usize, body: &[u8]) -> Option<Vec<u16>> {
        let dec = HuffDecoder::parse(0, w, n, body, 0).ok()?;
        let mut all = Vec::new();
        let mut failed = false;
        for (t, first) in (0..n).step_by(TILE_SYMBOLS).enumerate() {
            let m = (n - first).min(TILE_SYMBOLS);
            let (mut a, mut b, mut c) = (vec![0u16; m], vec![0u16; m], vec![0u16; m]);
            let (ra, rb, rc) = with_scratch(|sc| {
                (
                    dec.decode_tile(t, &mut a, sc),
                    dec.decode_tile_with(t, &mut b, sc, false, true),
                    dec.decode_tile_unmasked(t, &mut c, sc),
                )
            });
            assert_eq!(format!("{ra:?}"), format!("{rb:?}"), "tile {t}");
            assert_eq!(format!("{ra:?}"), format!("{rc:?}"), "tile {t}");
            if ra.is_ok() {
                assert!(a == b, "tile {t}: fast and exact decodes differ");
                let wmask = (1u16 << w) - 1;
                c.iter_mut().for_each(|x| *x &= wmask);
                assert!(a == c, "tile {t}: unmasked decode differs below the width");
            }
            failed |= ra.is_err();
            all.extend(a);
        }
        (!failed).then_some(all)
    }

    /// The worst case for the lane accumulator: 12-bit codes (the longest)
    /// and 22-bit escaped symbols mixed at random, so that batches of three
    /// longest codes then an escape, on top of 7 pending bits, come up often
    /// (65 bits: one too many without the flush before the escape).
    #[test]
    fn longest_codes_next_to_escapes_round_trip() {
        let w = 10;
        // Lengths 1, 2, ..., 12 for symbols 0..=11 and 12 for the escape: a
        // complete code.
        let mut lens = vec![0u8; (1 << w) + 1];
        for (s, l) in lens.iter_mut().take(12).enumerate() {
            *l = s as u8 + 1;
        }
        lens[1 << w] = 12;
        assert_eq!(kraft(&lens), 1.0);
        let plan = CodePlan {
            lens,
            first: 0,
            count: 12,
            bytes: 0,
        };
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let n = 2 * TILE_SYMBOLS + 100;
        let syms: Vec<u16> = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match x % 8 {
                    0..=4 => 11,
                    5 => 10,
                    _ => 12 + (x >> 32) as u16 % 1000,
                }
            })
            .collect();
        let body = encode_body(&syms, w, &plan);
        assert_eq!(fast_and_exact(w, n, &body), Some(syms));
    }

    /// The encoder flushes every 4 rows, and around each entry longer than
    /// a code (an escaped symbol with its raw bits); bodies with and without
    /// such entries, and with bursts of them, must read back in both
    /// decoders.
    #[test]
    fn encoder_long_entries_round_trip() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut longest = std::collections::BTreeSet::new();
        for (w, rare) in [
            (6, 0),
            (6, 50),
            (8, 0),
            (8, 400),
            (10, 0),
            (10, 60),
            (10, 1 << 40),
        ] {
            let n = TILE_SYMBOLS + 777;
            let mask = (1u64 << w) - 1;
            // Rare symbols (escaped when `rare` is large) now and then, and
            // a burst of 4 rows of them, so that every lane meets four
            // of the longest entries within one flush.
            let syms: Vec<u16> = (0..n as u64)
                .map(|i| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if rare > 0 && (x.is_multiple_of(rare) || (4096..4096 + 4 * 32).contains(&i)) {
                        ((x >> 20) & mask) as u16
                    } else {
                        ((3 + (x >> 40).trailing_zeros().min(14) as u64) & mask) as u16
                    }
                })
                .collect();
            let mut hist = vec![0u32; 1 << w];
            syms.iter().for_each(|&s| hist[usize::from(s)] += 1);
            let plan = plan_code(&hist, w, n, u64::MAX, &ESC_THRESHOLDS, true, false).unwrap();
            let enc = EncTable::new(&plan, w);
            longest.insert(enc.lens.iter().any(|&l| u32::from(l) > SHORT_ENTRY));
            let body = encode_body(&syms, w, &plan);
            assert_eq!(
                fast_and_exact(w, n, &body),
                Some(syms),
                "w {w}, rare {rare}"
            );
        }
        assert_eq!(longest.into_iter().collect::<Vec<_>>(), [false, true]);
    }

    #[test]
    fn fast_path_matches_exact_decoder_on_damaged_sections() {
        // Skewed 8-bit symbols with rare values (escapes), two full tiles and
        // a partial one.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let n = 2 * TILE_SYMBOLS + 1234;
        let syms: Vec<u16> = (0..n)
            .map(|_| {
                let r = next();
                if r % 997 == 0 {
                    (r >> 20) as u16 & 0xff
                } else {
                    120 + (r >> 32).trailing_zeros().min(9) as u16
                }
            })
            .collect();
        let mut hist = vec![0u32; 256];
        syms.iter().for_each(|&s| hist[usize::from(s)] += 1);
        let plan = plan_code(&hist, 8, n, u64::MAX, &ESC_THRESHOLDS, true, false).unwrap();
        assert!(plan.lens[256] > 0, "escape code used");
        let body = encode_body(&syms, 8, &plan);
        assert_eq!(fast_and_exact(8, n, &body), Some(syms.clone()));
        // Damage the code lengths (incomplete codes, unassigned patterns) or
        // the lane bytes; the directory is left alone so tiles still parse.
        let lanes_at = 4 + (usize::from(plan.count) + 1).div_ceil(2) + 3 * DIR_ENTRY;
        let mut errors = 0;
        for round in 0..300 {
            let mut b = body.clone();
            let r = next();
            let at = if round % 3 == 0 {
                4 + (r as usize >> 8) % 4
            } else {
                lanes_at + (r as usize >> 8) % (body.len() - lanes_at)
            };
            b[at] ^= 1 << (r % 8);
            errors += usize::from(fast_and_exact(8, n, &b).is_none());
        }
        assert!(errors > 0, "some damage must be detected");
    }

    #[test]
    fn package_merge_limits_and_is_complete() {
        // Fibonacci weights force very deep unlimited Huffman trees.
        let mut w = vec![1u64, 1];
        while w.len() < 40 {
            let k = w[w.len() - 1] + w[w.len() - 2];
            w.push(k);
        }
        for limit in [6u32, 8, 12] {
            let l = package_merge(&w, limit);
            assert!(l.iter().all(|&x| x >= 1 && x as u32 <= limit));
            assert!((kraft(&l) - 1.0).abs() < 1e-12, "{l:?}");
            // Heavier symbols never get longer codes.
            assert!(l.windows(2).all(|p| p[0] >= p[1]));
        }
        // Unconstrained case matches Huffman cost.
        let w = [1u64, 1, 2, 3, 5];
        let l = package_merge(&w, 12);
        let cost: u64 = w.iter().zip(&l).map(|(a, &b)| a * b as u64).sum();
        // Huffman: internal nodes 2 + 4 + 7 + 12.
        assert_eq!(cost, 25);
    }

    #[test]
    fn code_lengths_are_valid_and_near_optimal() {
        // Optimal (equal to package-merge) when plain Huffman fits the
        // limit; within 1% of it when the lengths had to be repaired (random,
        // steep weights; on real weight planes the loss is about 0.005%).
        let mut x = 12345u64;
        let mut repaired = 0;
        for round in 0..200 {
            let n = 2 + round % 300;
            let mut w: Vec<u64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    1 + (x % 1000) * (x % 7 + 1).pow(3)
                })
                .collect();
            w.sort_unstable();
            for limit in [10u32, 12] {
                let a = code_lengths(&w, limit, false);
                let b = package_merge(&w, limit);
                let cost = |l: &[u8]| -> u64 { w.iter().zip(l).map(|(w, &l)| w * l as u64).sum() };
                assert_eq!(cost(&code_lengths(&w, limit, true)), cost(&b));
                assert!(a.iter().all(|&l| l >= 1 && u32::from(l) <= limit));
                assert!((kraft(&a) - 1.0).abs() < 1e-12, "n={n} limit={limit}");
                if b.iter().any(|&l| u32::from(l) == limit) {
                    repaired += 1;
                    assert!(
                        cost(&a) * 100 <= cost(&b) * 101,
                        "n={n} limit={limit}: {} vs optimal {}",
                        cost(&a),
                        cost(&b)
                    );
                } else {
                    assert_eq!(cost(&a), cost(&b), "n={n} limit={limit}");
                }
            }
        }
        assert!(repaired > 50, "only {repaired} cases needed a repair");
    }

    #[test]
    fn code_lengths_on_fibonacci_weights() {
        // Fibonacci weights force the deepest unlimited Huffman trees.
        let mut w = vec![1u64, 1];
        while w.len() < 40 {
            let k = w[w.len() - 1] + w[w.len() - 2];
            w.push(k);
        }
        for limit in [6u32, 8, 12] {
            let l = code_lengths(&w, limit, false);
            assert!(l.iter().all(|&x| x >= 1 && x as u32 <= limit));
            assert!((kraft(&l) - 1.0).abs() < 1e-12, "{l:?}");
            assert!(l.windows(2).all(|p| p[0] >= p[1]));
        }
    }

    #[test]
    fn package_merge_full_alphabet() {
        let w: Vec<u64> = (0..4096).map(|_| 1).collect();
        let l = package_merge(&w, 12);
        assert!(l.iter().all(|&x| x == 12));
    }

    #[test]
    fn canonical_matches_deflate_example() {
        // RFC 1951 §3.2.2 example: lengths (3,3,3,3,3,2,4,4).
        let c = canonical_codes(&[3, 3, 3, 3, 3, 2, 4, 4]);
        assert_eq!(c, vec![2, 3, 4, 5, 6, 0, 14, 15]);
    }
}
