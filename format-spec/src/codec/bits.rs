//! LSB-first bit packing shared by raw planes and Huffman lanes.
//!
//! Bit `k` of a bit string is bit `k % 8` of byte `k / 8`.

/// Loads 8 bytes at `byte` as a little-endian u64, reading zeros past the end
/// of `data` (never panics).
#[inline(always)]
pub(crate) fn load_u64(data: &[u8], byte: usize) -> u64 {
    match data.get(byte..).and_then(|s| s.first_chunk::<8>()) {
        Some(a) => u64::from_le_bytes(*a),
        None => load_u64_tail(data, byte),
    }
}

#[cold]
fn load_u64_tail(data: &[u8], byte: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(rest) = data.get(byte..) {
        let k = rest.len().min(8);
        a[..k].copy_from_slice(&rest[..k]);
    }
    u64::from_le_bytes(a)
}

/// Appends bits LSB-first to a byte vector.
pub(crate) struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl<'a> BitWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, n: 0 }
    }

    /// Appends the low `len` bits of `bits` (`len <= 32`, higher bits zero).
    #[inline(always)]
    pub(crate) fn put(&mut self, bits: u32, len: u32) {
        self.acc |= u64::from(bits) << self.n;
        self.n += len;
        if self.n >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    /// Flushes the remaining bits, zero-padded to a whole byte.
    pub(crate) fn finish(self) {
        let bytes = self.n.div_ceil(8) as usize;
        self.out
            .extend_from_slice(&self.acc.to_le_bytes()[..bytes.min(8)]);
    }
}

/// Calls `$f::<W>($args)` for the runtime width `$w` in 1..=16.
macro_rules! by_width {
    ($w:expr, $f:ident, $($args:expr),*) => {
        match $w {
            1 => $f::<1>($($args),*),
            2 => $f::<2>($($args),*),
            3 => $f::<3>($($args),*),
            4 => $f::<4>($($args),*),
            5 => $f::<5>($($args),*),
            6 => $f::<6>($($args),*),
            7 => $f::<7>($($args),*),
            8 => $f::<8>($($args),*),
            9 => $f::<9>($($args),*),
            10 => $f::<10>($($args),*),
            11 => $f::<11>($($args),*),
            12 => $f::<12>($($args),*),
            13 => $f::<13>($($args),*),
            14 => $f::<14>($($args),*),
            15 => $f::<15>($($args),*),
            _ => $f::<16>($($args),*),
        }
    };
}
pub(crate) use by_width;

/// Packs `syms` as `w`-bit values LSB-first (`ceil(len * w / 8)` bytes).
/// `w` must be in 1..=16.
#[inline(always)]
pub(crate) fn pack(syms: &[u16], w: u32, out: &mut Vec<u8>) {
    by_width!(w, pack_w, syms, out)
}

/// Eight `W`-bit symbols are exactly `W` bytes.
#[inline(always)]
fn pack_w<const W: usize>(syms: &[u16], out: &mut Vec<u8>) {
    let mut groups = syms.chunks_exact(8);
    let start = out.len();
    out.resize(start + groups.len() * W, 0);
    let dst = out[start..].chunks_exact_mut(W).zip(&mut groups);
    if W == 8 {
        for (d, g) in dst {
            for (o, &s) in d.iter_mut().zip(g) {
                *o = s as u8;
            }
        }
    } else {
        for (d, g) in dst {
            pack_group::<W>(|i| u64::from(g[i]), d);
        }
    }
    let mut bw = BitWriter::new(out);
    for &s in groups.remainder() {
        bw.put(u32::from(s), W as u32);
    }
    bw.finish();
}

/// Packs the eight `W`-bit symbols `sym(0..8)` (higher bits zero) into the
/// `W` bytes of `d`.
#[inline(always)]
pub(crate) fn pack_group<const W: usize>(sym: impl Fn(usize) -> u64, d: &mut [u8]) {
    if W <= 8 {
        // Eight symbols fit one u64: no 128-bit shifts.
        let mut v = 0u64;
        for i in 0..8 {
            v |= sym(i) << (i * W);
        }
        d.copy_from_slice(&v.to_le_bytes()[..W]);
    } else {
        let mut v = 0u128;
        for i in 0..8 {
            v |= u128::from(sym(i)) << (i * W);
        }
        d.copy_from_slice(&v.to_le_bytes()[..W]);
    }
}

/// Unpacks `out.len()` symbols of `w` bits (1..=16) starting at symbol
/// index `first` of a packed bit string. Reads zeros past the end of `data`.
#[inline(always)]
pub(crate) fn unpack(data: &[u8], w: u32, first: usize, out: &mut [u16]) {
    if first.is_multiple_of(8) {
        by_width!(w, unpack_w, data, first, out)
    } else {
        unpack_slow(data, w, first, out)
    }
}

/// `first` is a multiple of 8, so symbol groups of 8 start on byte `first / 8 * W`.
#[inline(always)]
fn unpack_w<const W: usize>(data: &[u8], first: usize, out: &mut [u16]) {
    let src = data.get(first / 8 * W..).unwrap_or_default();
    let k = (out.len() / 8).min(src.len() / W);
    let groups = out[..8 * k].chunks_exact_mut(8).zip(src.chunks_exact(W));
    if W == 8 {
        for (g, b) in groups {
            for (o, &x) in g.iter_mut().zip(b) {
                *o = u16::from(x);
            }
        }
    } else if W < 8 {
        // Eight symbols fit one u64; each half of four is spread into four
        // 16-bit lanes with two shift-or-mask steps instead of four
        // extractions.
        for (g, b) in groups {
            let mut a = [0u8; 8];
            a[..W].copy_from_slice(b);
            let v = u64::from_le_bytes(a);
            let halves = [spread4::<W>(v), spread4::<W>(v >> (4 * W))];
            for (o, h) in g.chunks_exact_mut(4).zip(halves) {
                let lanes: [u16; 4] = std::array::from_fn(|i| (h >> (16 * i)) as u16);
                o.copy_from_slice(&lanes);
            }
        }
    } else {
        let mask = (1u128 << W) - 1;
        for (g, b) in groups {
            let mut a = [0u8; 16];
            a[..W].copy_from_slice(b);
            let v = u128::from_le_bytes(a);
            for (i, o) in g.iter_mut().enumerate() {
                *o = ((v >> (i * W)) & mask) as u16;
            }
        }
    }
    unpack_slow(data, W as u32, first + 8 * k, &mut out[8 * k..]);
}

/// The four `W`-bit fields at the bottom of `v` (`W < 8`; higher bits
/// ignored), one in each 16-bit lane of the result: fields 2 and 3 move up
/// to bit 32, then fields 1 and 3 up to bits 16 and 48.
#[inline(always)]
fn spread4<const W: usize>(v: u64) -> u64 {
    let pair = (1u64 << (2 * W)) - 1;
    let one = (1u64 << W) - 1;
    let v = v & ((1u64 << (4 * W)) - 1);
    let v = (v | (v << (32 - 2 * W))) & (pair | pair << 32);
    (v | (v << (16 - W))) & (one * 0x0001_0001_0001_0001)
}

/// The inverse of [`spread4`]: the `W`-bit fields in the four 16-bit lanes
/// of `v` (`W < 8`; the rest of each lane zero), side by side in the low
/// `4 W` bits: fields 1 and 3 move down next to 0 and 2, then the pair
/// at bit 32 down next to the pair at bit 0.
#[inline(always)]
pub(crate) fn gather4<const W: usize>(v: u64) -> u64 {
    let pair = (1u64 << (2 * W)) - 1;
    let v = v | (v >> (16 - W));
    (v & pair) | ((v >> (32 - 2 * W)) & (pair << (2 * W)))
}

/// [`gather4`] for two 32-bit lanes: their `W`-bit fields side by side
/// in the low `2 W` bits.
#[inline(always)]
pub(crate) fn gather2<const W: usize>(v: u64) -> u64 {
    (v | (v >> (32 - W))) & ((1u64 << (2 * W)) - 1)
}

fn unpack_slow(data: &[u8], w: u32, first: usize, out: &mut [u16]) {
    let mask = (1u64 << w) - 1;
    let mut bp = first * w as usize;
    for o in out.iter_mut() {
        *o = ((load_u64(data, bp >> 3) >> (bp & 7)) & mask) as u16;
        bp += w as usize;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_unpack_all_widths() {
        for w in 1..=16u32 {
            let syms: Vec<u16> = (0..1000u32)
                .map(|i| (i.wrapping_mul(2654435761u32) >> 7) as u16 & ((1u32 << w) - 1) as u16)
                .collect();
            let mut v = Vec::new();
            pack(&syms, w, &mut v);
            assert_eq!(v.len(), (syms.len() * w as usize).div_ceil(8));
            let mut back = vec![0u16; syms.len()];
            unpack(&v, w, 0, &mut back);
            assert_eq!(back, syms);
            for (at, k) in [(500, 100), (504, 100), (992, 8), (999, 1), (1000, 0)] {
                let mut mid = vec![0u16; k];
                unpack(&v, w, at, &mut mid);
                assert_eq!(mid, &syms[at..at + k]);
            }
            // Past the end reads zeros.
            let mut past = vec![7u16; 20];
            unpack(&v, w, 992, &mut past);
            assert_eq!(&past[..8], &syms[992..]);
            assert!(past[8..].iter().all(|&x| x == 0));
        }
    }

    #[test]
    fn load_past_end_reads_zero() {
        let d = [1u8, 2, 3];
        assert_eq!(load_u64(&d, 0), 0x030201);
        assert_eq!(load_u64(&d, 2), 3);
        assert_eq!(load_u64(&d, 3), 0);
        assert_eq!(load_u64(&d, usize::MAX), 0);
    }
}
