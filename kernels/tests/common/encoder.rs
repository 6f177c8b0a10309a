//! A reference encoder for codec 1 (`planes`), straight from the bitstream
//! description: for each plane, u32 section_len, u8 mode, body.

/// How to code one plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Raw,
    Const,
    /// Huffman with at most `max_coded` symbols given codes; the others are
    /// escaped (ESC code, then the symbol's w raw bits).
    Huffman {
        max_coded: usize,
    },
}

/// xorshift64*: deterministic test data without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Roughly normal, mean 0, standard deviation `sd`.
    pub fn normal(&mut self, sd: f32) -> f32 {
        let s: f32 = (0..12)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32)
            .sum();
        (s - 6.0) * sd
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// BF16 weights: normal values, so the exponent plane is skewed.
pub fn bf16_weights(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let b = (rng.normal(0.02).to_bits() >> 16) as u16;
        out.extend_from_slice(&b.to_le_bytes());
    }
    out
}

/// F32 weights.
pub fn f32_weights(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|_| rng.normal(0.05).to_le_bytes())
        .collect()
}

struct BitWriter {
    bytes: Vec<u8>,
    nbits: u64,
}

impl BitWriter {
    fn new() -> Self {
        BitWriter {
            bytes: Vec::new(),
            nbits: 0,
        }
    }
    /// Appends one bit at the next position: bit k of the stream is bit k%8
    /// of byte k/8.
    fn bit(&mut self, b: u64) {
        if self.nbits.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if b & 1 == 1 {
            *self.bytes.last_mut().unwrap() |= 1 << (self.nbits % 8);
        }
        self.nbits += 1;
    }
    /// `n` bits of `v`, least significant first.
    fn lsb_first(&mut self, v: u64, n: u32) {
        for k in 0..n {
            self.bit(v >> k);
        }
    }
    /// A code of `len` bits, most significant bit at the lowest position.
    fn code(&mut self, code: u32, len: u32) {
        for k in (0..len).rev() {
            self.bit((code >> k) as u64);
        }
    }
}

fn element(data: &[u8], i: usize, e: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..e].copy_from_slice(&data[i * e..(i + 1) * e]);
    u64::from_le_bytes(b)
}

/// The symbols of each plane, plane 0 holding the top bits of r.
pub fn plane_symbols(data: &[u8], e: usize, rotate: bool, widths: &[u8]) -> Vec<Vec<u32>> {
    let w_total = 8 * e as u32;
    let mask = |w: u32| if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    let n = data.len() / e;
    let mut left = w_total;
    let mut planes = Vec::new();
    for &w in widths {
        left -= w as u32;
        let shift = left;
        planes.push(
            (0..n)
                .map(|i| {
                    let x = element(data, i, e);
                    let r = if rotate {
                        ((x << 1) | (x >> (w_total - 1))) & mask(w_total)
                    } else {
                        x
                    };
                    ((r >> shift) & mask(w as u32)) as u32
                })
                .collect(),
        );
    }
    planes
}

/// Encodes a chunk of `data` (whole elements of `e` bytes).
pub fn encode_planes(
    data: &[u8],
    e: usize,
    rotate: bool,
    widths: &[u8],
    modes: &[Mode],
) -> Vec<u8> {
    assert_eq!(widths.len(), modes.len());
    assert_eq!(widths.iter().map(|&w| w as usize).sum::<usize>(), 8 * e);
    let mut out = Vec::new();
    for ((syms, &w), &mode) in plane_symbols(data, e, rotate, widths)
        .iter()
        .zip(widths)
        .zip(modes)
    {
        let (code, body) = match mode {
            Mode::Raw => {
                let mut bw = BitWriter::new();
                for &s in syms {
                    bw.lsb_first(s as u64, w as u32);
                }
                (0u8, bw.bytes)
            }
            Mode::Const => {
                assert!(syms.iter().all(|&s| s == syms[0]), "plane is not constant");
                (1u8, (syms[0] as u16).to_le_bytes().to_vec())
            }
            Mode::Huffman { max_coded } => (2u8, huffman_body(syms, w as u32, max_coded)),
        };
        out.extend_from_slice(&(1 + body.len() as u32).to_le_bytes());
        out.push(code);
        out.extend_from_slice(&body);
    }
    out
}

/// Code lengths (1..=12) for `freqs` (all > 0): Huffman, then lengths over
/// 12 cut to 12 and the longest shorter codes lengthened until Kraft holds.
pub fn limited_lengths(freqs: &[u64]) -> Vec<u32> {
    let n = freqs.len();
    if n == 1 {
        return vec![1];
    }
    // Huffman tree by repeatedly merging the two lightest nodes.
    let mut parent = vec![usize::MAX; 2 * n - 1];
    let mut nodes: Vec<(u64, usize)> = freqs.iter().copied().zip(0..).collect();
    let mut next = n;
    while nodes.len() > 1 {
        nodes.sort_by(|a, b| b.cmp(a));
        let (fa, a) = nodes.pop().unwrap();
        let (fb, b) = nodes.pop().unwrap();
        parent[a] = next;
        parent[b] = next;
        nodes.push((fa + fb, next));
        next += 1;
    }
    let mut lens: Vec<u32> = (0..n)
        .map(|mut i| {
            let mut d = 0;
            while parent[i] != usize::MAX {
                i = parent[i];
                d += 1;
            }
            d
        })
        .collect();
    for l in &mut lens {
        *l = (*l).min(12);
    }
    let kraft = |lens: &[u32]| lens.iter().map(|&l| 1u64 << (12 - l)).sum::<u64>();
    while kraft(&lens) > 4096 {
        let (i, _) = lens
            .iter()
            .enumerate()
            .filter(|(_, &l)| l < 12)
            .max_by_key(|(i, &l)| (l, std::cmp::Reverse(freqs[*i])))
            .unwrap();
        lens[i] += 1;
    }
    lens
}

/// Canonical codes, DEFLATE-style: by length, then by position in `lens`
/// (which is symbol value order, ESC last).
pub fn canonical_codes(lens: &[u32]) -> Vec<u32> {
    let mut bl_count = [0u32; 13];
    for &l in lens {
        bl_count[l as usize] += 1;
    }
    bl_count[0] = 0;
    let mut next_code = [0u32; 13];
    let mut code = 0;
    for bits in 1..=12 {
        code = (code + bl_count[bits - 1]) << 1;
        next_code[bits] = code;
    }
    lens.iter()
        .map(|&l| {
            if l == 0 {
                0
            } else {
                let c = next_code[l as usize];
                next_code[l as usize] += 1;
                c
            }
        })
        .collect()
}

fn huffman_body(syms: &[u32], w: u32, max_coded: usize) -> Vec<u8> {
    assert!(w <= 10);
    let esc = 1u32 << w;
    let mut freq = vec![0u64; esc as usize];
    for &s in syms {
        freq[s as usize] += 1;
    }
    let mut present: Vec<u32> = (0..esc).filter(|&s| freq[s as usize] > 0).collect();
    present.sort_by_key(|&s| (std::cmp::Reverse(freq[s as usize]), s));
    let mut coded: Vec<u32> = present.iter().copied().take(max_coded).collect();
    coded.sort();
    let escaped: u64 = present
        .iter()
        .skip(max_coded)
        .map(|&s| freq[s as usize])
        .sum();
    let (first, count) = match (coded.first(), coded.last()) {
        (Some(&a), Some(&b)) => (a, b - a + 1),
        _ => (0, 0),
    };
    // Lengths of the coded symbols and, when anything is escaped, of ESC.
    let mut weights: Vec<u64> = coded.iter().map(|&s| freq[s as usize]).collect();
    if escaped > 0 {
        weights.push(escaped);
    }
    let limited = if weights.is_empty() {
        vec![]
    } else {
        limited_lengths(&weights)
    };
    let mut lens = vec![0u32; count as usize + 1];
    for (k, &s) in coded.iter().enumerate() {
        lens[(s - first) as usize] = limited[k];
    }
    if escaped > 0 {
        lens[count as usize] = *limited.last().unwrap();
    }
    let codes = canonical_codes(&lens);

    let mut body = Vec::new();
    body.extend_from_slice(&(first as u16).to_le_bytes());
    body.extend_from_slice(&(count as u16).to_le_bytes());
    for pair in lens.chunks(2) {
        body.push((pair[0] | pair.get(1).copied().unwrap_or(0) << 4) as u8);
    }
    let n = syms.len();
    let tiles = n.div_ceil(65536);
    let mut dir = Vec::new();
    let mut area = Vec::new();
    for t in 0..tiles {
        let tile = &syms[t * 65536..n.min((t + 1) * 65536)];
        dir.extend_from_slice(&(area.len() as u32).to_le_bytes());
        for lane in 0..32 {
            let mut bw = BitWriter::new();
            for &s in tile.iter().skip(lane).step_by(32) {
                let q = s.wrapping_sub(first);
                if q < count && lens[q as usize] > 0 {
                    bw.code(codes[q as usize], lens[q as usize]);
                } else {
                    let e = count as usize;
                    assert!(lens[e] > 0, "symbol {s} has no code and no ESC");
                    bw.code(codes[e], lens[e]);
                    bw.lsb_first(s as u64, w);
                }
            }
            let len = u16::try_from(bw.bytes.len()).expect("lane fits u16");
            dir.extend_from_slice(&len.to_le_bytes());
            area.extend_from_slice(&bw.bytes);
        }
    }
    body.extend_from_slice(&dir);
    body.extend_from_slice(&area);
    body
}

/// The `planes` codec parameter bytes.
pub fn planes_params(rotate: bool, widths: &[u8]) -> Vec<u8> {
    let mut p = vec![rotate as u8, widths.len() as u8];
    p.extend_from_slice(widths);
    p
}
