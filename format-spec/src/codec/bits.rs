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

/// Packs `syms` as `w`-bit values LSB-first (`ceil(len * w / 8)` bytes).
pub(crate) fn pack(syms: &[u16], w: u32, out: &mut Vec<u8>) {
    match w {
        8 => out.extend(syms.iter().map(|&s| s as u8)),
        16 => {
            for &s in syms {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
        _ => {
            let mut bw = BitWriter::new(out);
            for &s in syms {
                bw.put(u32::from(s), w);
            }
            bw.finish();
        }
    }
}

/// Unpacks `out.len()` symbols of `w` bits starting at symbol index `first`
/// of a packed bit string. Reads zeros past the end of `data`.
pub(crate) fn unpack(data: &[u8], w: u32, first: usize, out: &mut [u16]) {
    match w {
        8 => {
            if let Some(src) = data.get(first..first + out.len()) {
                for (o, &b) in out.iter_mut().zip(src) {
                    *o = u16::from(b);
                }
            }
        }
        16 => {
            if let Some(src) = data.get(first * 2..(first + out.len()) * 2) {
                for (o, b) in out.iter_mut().zip(src.chunks_exact(2)) {
                    *o = u16::from_le_bytes([b[0], b[1]]);
                }
            }
        }
        _ => {
            let mask = (1u64 << w) - 1;
            let mut bp = first * w as usize;
            for o in out.iter_mut() {
                *o = ((load_u64(data, bp >> 3) >> (bp & 7)) & mask) as u16;
                bp += w as usize;
            }
        }
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
            let mut mid = vec![0u16; 100];
            unpack(&v, w, 500, &mut mid);
            assert_eq!(mid, &syms[500..600]);
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
