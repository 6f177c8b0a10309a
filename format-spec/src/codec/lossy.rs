//! Lossy codecs (normative description: `format-spec/LOSSY.md`):
//! - codec 2 `mantissa`: round BF16/F16/F32 to K mantissa bits (ties to
//!   even) and keep only the kept bits;
//! - codec 3 `quant`: error-bounded quantization in the spirit of SZ, with
//!   an absolute bound (`q = round(|x| / 2eb)`, `x' = ±q·2eb`) or a
//!   pointwise relative one (per-binade linear steps:
//!   `x' = ±2^e·(1 + j·2eb)`).
//!
//! Both turn every element into a small integer **code** (sign in bit 0)
//! and store the codes with codec 1 `planes`, so they share its
//! length-limited, tiled Huffman coding. Elements that cannot be coded
//! within the bound (NaNs, overflows, subnormals that would lose their
//! relative precision, values beyond the code range) go to an exception
//! list and are stored exactly. The encoder runs the decoder's arithmetic on
//! every element and checks the bound before it accepts a code, so every
//! decoded element is within its bound; zeros, signs, infinities and NaN bit
//! patterns come back exactly.
//!
//! Decoding uses only integer operations and correctly rounded IEEE-754
//! binary64 multiply and add, so every conforming decoder produces the same
//! bytes (the artifact records their SHA-256).

use super::{decode_chunk, encode_chunk, CodecError, CodecSpec, PlanesParams};
use crate::dtype::DType;

/// Codec 2: mantissa rounding to K bits.
pub const CODEC_MANTISSA: u16 = 2;
/// Codec 3: error-bounded quantization (absolute or pointwise relative).
pub const CODEC_QUANT: u16 = 3;

/// Lossy record `bound_kind`: pointwise relative bound `|x' - x| <= b·|x|`.
pub const BOUND_RELATIVE: u8 = 1;
/// Lossy record `bound_kind`: absolute bound `|x' - x| <= b`.
pub const BOUND_ABSOLUTE: u8 = 2;

/// Elements sampled per chunk when choosing the plane layout of the codes.
const LAYOUT_SAMPLE_ELEMS: usize = 64 << 10;

/// An IEEE-754 binary format the lossy codecs apply to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fmt {
    dtype: DType,
    /// Exponent bits.
    ebits: u32,
    /// Stored mantissa (fraction) bits.
    mbits: u32,
}

impl Fmt {
    fn of(dtype: DType) -> Option<Fmt> {
        let (ebits, mbits) = match dtype {
            DType::BF16 => (8, 7),
            DType::F16 => (5, 10),
            DType::F32 => (8, 23),
            _ => return None,
        };
        Some(Fmt {
            dtype,
            ebits,
            mbits,
        })
    }
    fn width(self) -> u32 {
        1 + self.ebits + self.mbits
    }
    fn size(self) -> usize {
        (self.width() / 8) as usize
    }
    fn bias(self) -> i32 {
        (1 << (self.ebits - 1)) - 1
    }
    fn exp_max(self) -> u32 {
        (1 << self.ebits) - 1
    }
    fn sign_bit(self) -> u32 {
        1 << (self.width() - 1)
    }
    fn inf(self) -> u32 {
        self.exp_max() << self.mbits
    }
    fn exp_field(self, x: u32) -> u32 {
        (x >> self.mbits) & self.exp_max()
    }
    fn mant_field(self, x: u32) -> u32 {
        x & ((1 << self.mbits) - 1)
    }
    fn is_nan(self, x: u32) -> bool {
        self.exp_field(x) == self.exp_max() && self.mant_field(x) != 0
    }
    fn load(self, b: &[u8]) -> u32 {
        match b {
            [a, b] => u32::from(u16::from_le_bytes([*a, *b])),
            [a, b, c, d] => u32::from_le_bytes([*a, *b, *c, *d]),
            _ => 0,
        }
    }
    fn store(self, v: u32, b: &mut [u8]) {
        match b.len() {
            2 => b.copy_from_slice(&(v as u16).to_le_bytes()),
            4 => b.copy_from_slice(&v.to_le_bytes()),
            _ => {}
        }
    }
    /// The exact value of the bits `x` (every BF16/F16/F32 value is an f64).
    fn to_f64(self, x: u32) -> f64 {
        match self.dtype {
            DType::BF16 => half::bf16::from_bits(x as u16).to_f64(),
            DType::F16 => half::f16::from_bits(x as u16).to_f64(),
            _ => f64::from(f32::from_bits(x)),
        }
    }
    /// Rounds `v` (not NaN) to the nearest value of this format, ties to
    /// even; magnitudes that round above the largest finite value give
    /// infinity. This is the one rounding step of every lossy decoder
    /// (LOSSY.md §2.2).
    fn round_from_f64(self, v: f64) -> u32 {
        let bits = v.to_bits();
        let sign = if bits >> 63 == 1 { self.sign_bit() } else { 0 };
        let e64 = ((bits >> 52) & 0x7ff) as i32;
        let m64 = bits & ((1u64 << 52) - 1);
        if e64 == 0x7ff {
            // Infinity (NaN never reaches here: decoders only round sums and
            // products of finite values).
            return sign | self.inf() | if m64 != 0 { 1 << (self.mbits - 1) } else { 0 };
        }
        if e64 == 0 {
            // Zero, or an f64 subnormal: far below half the smallest
            // subnormal of any target format.
            return sign;
        }
        let bias = self.bias();
        let e = e64 - 1023;
        if e > bias {
            return sign | self.inf();
        }
        let sig = (1u64 << 52) | m64;
        let mb = self.mbits as i32;
        let emin = 1 - bias;
        // The result is q · 2^(max(e, emin) - mb); drop the bits below it.
        let shift = e.max(emin) - mb - (e - 52);
        if shift > 53 {
            return sign;
        }
        let shift = shift as u32;
        let mut q = sig >> shift;
        let rem = sig & ((1u64 << shift) - 1);
        let half = 1u64 << (shift - 1);
        if rem > half || (rem == half && q & 1 == 1) {
            q += 1;
        }
        let out = if e < emin {
            // Subnormal; a carry into bit mb makes the smallest normal.
            q as u32
        } else {
            // q in [2^mb, 2^(mb+1)]: adding it to (biased exponent - 1)
            // carries into the exponent when rounding overflows the binade.
            (((e + bias - 1) as u32) << self.mbits) + q as u32
        };
        if out >= self.inf() {
            sign | self.inf()
        } else {
            sign | out
        }
    }
}

/// How one codec-2/3 tensor is coded (parsed params).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Scheme {
    /// Codec 2: keep `keep` mantissa bits.
    Mantissa { keep: u32 },
    /// Codec 3 mode 2: `|x' - x| <= eb`, codes `q << 1 | sign`, `q < 2^qbits`.
    Abs { eb: f64, step: f64, qbits: u32 },
    /// Codec 3 mode 1: `|x' - x| <= eb·|x|`, codes
    /// `(exponent << qbits | j) << 1 | sign`, `j < 2^qbits`.
    Rel { eb: f64, step: f64, qbits: u32 },
}

/// Parsed and validated params of codec 2 or 3.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LossyParams {
    fmt: Fmt,
    scheme: Scheme,
    /// Bits in a code (sign included).
    code_bits: u32,
    /// Bytes per code in the inner `planes` stream (1, 2 or 4).
    code_size: usize,
    /// The inner codec 1 params for the codes.
    inner: PlanesParams,
}

fn code_size_for(bits: u32) -> usize {
    match bits {
        0..=8 => 1,
        9..=16 => 2,
        _ => 4,
    }
}

impl LossyParams {
    /// Parses codec 2 or 3 params for `elem_size`-byte elements (LOSSY.md §3.1, §4.1).
    pub(crate) fn parse(spec: &CodecSpec, elem_size: usize) -> Result<Self, CodecError> {
        let id = spec.id;
        let bad = |reason: String| CodecError::BadParams {
            id,
            elem_size,
            reason,
        };
        let p = spec.params.as_slice();
        if p.len() > super::MAX_PARAMS_LEN {
            return Err(bad(format!(
                "params are {} bytes, at most {} are allowed",
                p.len(),
                super::MAX_PARAMS_LEN
            )));
        }
        let (&code, rest) = p
            .split_first()
            .ok_or_else(|| bad("params are empty, expected a dtype code first".into()))?;
        let fmt = DType::from_code(code).and_then(Fmt::of).ok_or_else(|| {
            bad(format!(
                "dtype code {code} is not F16 (5), BF16 (6) or F32 (9)"
            ))
        })?;
        if fmt.size() != elem_size {
            return Err(bad(format!(
                "params are for {} ({} bytes per element)",
                fmt.dtype,
                fmt.size()
            )));
        }
        let (scheme, code_bits, inner) = match id {
            CODEC_MANTISSA => {
                let (&k, inner) = rest
                    .split_first()
                    .ok_or_else(|| bad("params end before K".into()))?;
                let keep = u32::from(k);
                if keep >= fmt.mbits {
                    return Err(bad(format!(
                        "K = {keep} kept mantissa bits, must be below {}'s {} bits",
                        fmt.dtype, fmt.mbits
                    )));
                }
                (Scheme::Mantissa { keep }, 1 + fmt.ebits + keep, inner)
            }
            CODEC_QUANT => {
                if rest.len() < 10 {
                    return Err(bad(format!(
                        "params end after {} bytes, mode, eb and qbits need 11",
                        1 + rest.len()
                    )));
                }
                let mode = rest[0];
                let eb = f64::from_le_bytes(rest[1..9].try_into().expect("8 bytes"));
                let qbits = u32::from(rest[9]);
                let inner = &rest[10..];
                let step = 2.0 * eb;
                if !(eb > 0.0 && step.is_finite()) {
                    return Err(bad(format!("eb = {eb} must be positive and 2·eb finite")));
                }
                if qbits == 0 {
                    return Err(bad("qbits is 0".into()));
                }
                match mode {
                    BOUND_ABSOLUTE => {
                        if qbits > 31 {
                            return Err(bad(format!("qbits = {qbits}, at most 31")));
                        }
                        (Scheme::Abs { eb, step, qbits }, qbits + 1, inner)
                    }
                    BOUND_RELATIVE => {
                        if eb >= 1.0 {
                            return Err(bad(format!("relative eb = {eb} must be below 1")));
                        }
                        let bits = 1 + fmt.ebits + qbits;
                        if bits > 32 {
                            return Err(bad(format!(
                                "qbits = {qbits} makes {bits}-bit codes, at most 32"
                            )));
                        }
                        (Scheme::Rel { eb, step, qbits }, bits, inner)
                    }
                    m => {
                        return Err(bad(format!(
                            "mode {m} is neither 1 (pointwise relative) nor 2 (absolute)"
                        )))
                    }
                }
            }
            other => return Err(CodecError::UnknownCodec { id: other }),
        };
        let code_size = code_size_for(code_bits);
        let inner = PlanesParams::from_bytes(inner, code_size).map_err(|e| {
            bad(format!(
                "the inner planes params for {code_size}-byte codes are invalid ({e})"
            ))
        })?;
        Ok(LossyParams {
            fmt,
            scheme,
            code_bits,
            code_size,
            inner,
        })
    }

    fn to_spec(&self) -> CodecSpec {
        let mut params = vec![self.fmt.dtype.code()];
        let id = match self.scheme {
            Scheme::Mantissa { keep } => {
                params.push(keep as u8);
                CODEC_MANTISSA
            }
            Scheme::Abs { eb, qbits, .. } | Scheme::Rel { eb, qbits, .. } => {
                params.push(if matches!(self.scheme, Scheme::Abs { .. }) {
                    BOUND_ABSOLUTE
                } else {
                    BOUND_RELATIVE
                });
                params.extend_from_slice(&eb.to_le_bytes());
                params.push(qbits as u8);
                CODEC_QUANT
            }
        };
        params.extend_from_slice(&self.inner.to_bytes());
        CodecSpec { id, params }
    }

    /// (bound kind, bound) this scheme guarantees.
    fn bound(&self) -> (u8, f64) {
        match self.scheme {
            // 2^-(K+1), built from its bits (this runs per element).
            Scheme::Mantissa { keep } => (
                BOUND_RELATIVE,
                f64::from_bits(u64::from(1023 - 1 - keep) << 52),
            ),
            Scheme::Abs { eb, .. } => (BOUND_ABSOLUTE, eb),
            Scheme::Rel { eb, .. } => (BOUND_RELATIVE, eb),
        }
    }

    /// Decodes one code to element bits, or `None` for a code no encoder
    /// writes (LOSSY.md §3.2, §4.2).
    #[inline]
    fn decode_code(&self, c: u32) -> Option<u32> {
        let fmt = self.fmt;
        let sign = if c & 1 == 1 { fmt.sign_bit() } else { 0 };
        let v = c >> 1;
        match self.scheme {
            Scheme::Mantissa { keep } => Some(sign | (v << (fmt.mbits - keep))),
            Scheme::Abs { step, .. } => {
                let a = f64::from(v) * step;
                Some(fmt.round_from_f64(if sign != 0 { -a } else { a }))
            }
            Scheme::Rel { step, qbits, .. } => {
                let f = v >> qbits;
                let j = v & ((1 << qbits) - 1);
                if f == 0 || f == fmt.exp_max() {
                    // Zero or infinity; j must be 0.
                    return (j == 0).then_some(sign | (f << fmt.mbits));
                }
                let m = 1.0 + f64::from(j) * step;
                let p =
                    f64::from_bits(((i64::from(f) - i64::from(fmt.bias()) + 1023) as u64) << 52);
                let a = m * p;
                Some(fmt.round_from_f64(if sign != 0 { -a } else { a }))
            }
        }
    }

    /// The code for element bits `x`, if one decodes within the bound.
    fn encode_elem(&self, x: u32) -> Option<u32> {
        let fmt = self.fmt;
        let s = u32::from(x & fmt.sign_bit() != 0);
        let mag = x & !fmt.sign_bit();
        let ok = |c: u32| -> Option<u32> {
            if c.checked_shr(self.code_bits).unwrap_or(0) != 0 {
                return None;
            }
            let y = self.decode_code(c)?;
            within(fmt, self.bound(), x, y).then_some(c)
        };
        if fmt.is_nan(x) {
            return None;
        }
        match self.scheme {
            Scheme::Mantissa { keep } => {
                let shift = fmt.mbits - keep;
                // Round the magnitude's bits to nearest, ties to even; a
                // carry moves into the exponent (and to infinity at the top,
                // which the bound check turns into an exception).
                let r = mag + ((1 << (shift - 1)) - 1) + ((mag >> shift) & 1);
                ok(((r >> shift) << 1) | s)
            }
            Scheme::Abs { step, qbits, .. } => {
                let a = fmt.to_f64(mag);
                if !a.is_finite() {
                    return None;
                }
                let q0 = (a / step).round();
                if q0 >= (1u64 << qbits) as f64 {
                    return None;
                }
                let q0 = q0 as u32;
                [q0, q0.wrapping_sub(1), q0 + 1]
                    .into_iter()
                    .filter(|&q| q >> qbits == 0)
                    .find_map(|q| ok((q << 1) | s))
            }
            Scheme::Rel { step, qbits, .. } => {
                let f = fmt.exp_field(x);
                if f == 0 || f == fmt.exp_max() {
                    // Zeros and infinities are exact codes; subnormals are
                    // exceptions.
                    return if fmt.mant_field(x) == 0 {
                        ok(((f << qbits) << 1) | s)
                    } else {
                        None
                    };
                }
                let frac = f64::from(fmt.mant_field(x)) / f64::from(1u32 << fmt.mbits);
                let j0 = (frac / step).round();
                if j0 >= (1u64 << qbits) as f64 {
                    return None;
                }
                let j0 = j0 as u32;
                [j0, j0.wrapping_sub(1), j0 + 1]
                    .into_iter()
                    .filter(|&j| j >> qbits == 0)
                    .find_map(|j| ok((((f << qbits) | j) << 1) | s))
            }
        }
    }
}

/// Whether `y` is an acceptable decode of `x` under `bound`: NaN, infinities
/// and zeros bit-exact, the sign kept, the value finite and within the bound
/// (computed in binary64).
fn within(fmt: Fmt, (kind, bound): (u8, f64), x: u32, y: u32) -> bool {
    let fx = fmt.exp_field(x);
    if fx == fmt.exp_max() || x & !fmt.sign_bit() == 0 {
        return x == y;
    }
    if (x ^ y) & fmt.sign_bit() != 0 || fmt.exp_field(y) == fmt.exp_max() {
        return false;
    }
    let (a, b) = (fmt.to_f64(x), fmt.to_f64(y));
    let err = (b - a).abs();
    match kind {
        BOUND_ABSOLUTE => err <= bound,
        _ => err <= bound * a.abs(),
    }
}

// ---------------------------------------------------------------------------
// Stored chunk (LOSSY.md §2.3).

fn read_u32(stored: &[u8], at: usize, what: &'static str) -> Result<u32, CodecError> {
    stored
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(CodecError::Truncated {
            what,
            offset: at,
            need: 4,
            have: stored.len().saturating_sub(at),
        })
}

fn bad_chunk(reason: String) -> CodecError {
    CodecError::BadLossyChunk { reason }
}

fn put_varint(mut v: u32, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a minimal LEB128 varint of at most 5 bytes holding a u32.
fn get_varint(stored: &[u8], pos: &mut usize) -> Result<u32, CodecError> {
    let start = *pos;
    let mut v: u64 = 0;
    for i in 0..5 {
        let b = *stored.get(*pos).ok_or(CodecError::Truncated {
            what: "exception index",
            offset: *pos,
            need: 1,
            have: 0,
        })?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(bad_chunk(format!(
                    "exception index varint at offset {start} is not minimal"
                )));
            }
            return u32::try_from(v).map_err(|_| {
                bad_chunk(format!(
                    "exception index varint at offset {start} exceeds 2^32 - 1"
                ))
            });
        }
    }
    Err(bad_chunk(format!(
        "exception index varint at offset {start} is longer than 5 bytes"
    )))
}

/// The codes of a chunk (`C` bytes each, 0 at exceptions) and the indices
/// of its exceptions. The inner plane layout does not change them.
fn quantize(lp: &LossyParams, data: &[u8]) -> (Vec<u8>, Vec<u32>) {
    let es = lp.fmt.size();
    let cs = lp.code_size;
    let mut codes = vec![0u8; data.len() / es * cs];
    let mut exceptions: Vec<u32> = Vec::new();
    for (i, (x, c)) in data
        .chunks_exact(es)
        .zip(codes.chunks_exact_mut(cs))
        .enumerate()
    {
        match lp.encode_elem(lp.fmt.load(x)) {
            Some(code) => c.copy_from_slice(&code.to_le_bytes()[..cs]),
            None => exceptions.push(i as u32),
        }
    }
    (codes, exceptions)
}

/// Encodes one chunk with parsed params.
pub(crate) fn encode(lp: &LossyParams, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    let es = lp.fmt.size();
    let (codes, exceptions) = quantize(lp, data);
    let inner = encode_chunk(&lp.inner.spec(), lp.code_size, &codes)?;
    let len = u32::try_from(inner.len()).map_err(|_| CodecError::TooLarge {
        what: "codes stream longer than 2^32-1 bytes",
    })?;
    let mut out = Vec::with_capacity(inner.len() + 8 + exceptions.len() * (es + 2));
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&inner);
    out.extend_from_slice(&(exceptions.len() as u32).to_le_bytes());
    let mut next = 0u32;
    for &i in &exceptions {
        put_varint(i - next, &mut out);
        next = i + 1;
    }
    for &i in &exceptions {
        let at = i as usize * es;
        out.extend_from_slice(&data[at..at + es]);
    }
    Ok(out)
}

/// Decodes one chunk with parsed params into `out`.
pub(crate) fn decode(lp: &LossyParams, stored: &[u8], out: &mut [u8]) -> Result<(), CodecError> {
    let es = lp.fmt.size();
    let n = out.len() / es;
    let cs = lp.code_size;
    let len = read_u32(stored, 0, "codes stream length")? as usize;
    let inner = stored.get(4..4 + len).ok_or(CodecError::Truncated {
        what: "codes stream",
        offset: 4,
        need: len,
        have: stored.len().saturating_sub(4),
    })?;
    let mut codes = vec![0u8; n * cs];
    decode_chunk(&lp.inner.spec(), cs, inner, &mut codes)?;
    for (i, (c, o)) in codes
        .chunks_exact(cs)
        .zip(out.chunks_exact_mut(es))
        .enumerate()
    {
        let mut b = [0u8; 4];
        b[..cs].copy_from_slice(c);
        let code = u32::from_le_bytes(b);
        if code.checked_shr(lp.code_bits).unwrap_or(0) != 0 {
            return Err(bad_chunk(format!(
                "code {code:#x} of element {i} does not fit in {} bits",
                lp.code_bits
            )));
        }
        let y = lp.decode_code(code).ok_or_else(|| {
            bad_chunk(format!(
                "code {code:#x} of element {i} is a zero or infinity exponent with a nonzero step index"
            ))
        })?;
        lp.fmt.store(y, o);
    }
    let mut pos = 4 + len;
    let count = read_u32(stored, pos, "exception count")? as usize;
    pos += 4;
    if count > n {
        return Err(bad_chunk(format!(
            "{count} exceptions in a chunk of {n} elements"
        )));
    }
    // Each exception needs at least one index byte and `es` value bytes.
    if stored.len().saturating_sub(pos) < count * (1 + es) {
        return Err(CodecError::Truncated {
            what: "exception list",
            offset: pos,
            need: count * (1 + es),
            have: stored.len().saturating_sub(pos),
        });
    }
    let mut idx = Vec::with_capacity(count);
    let mut next = 0u64;
    for _ in 0..count {
        let gap = get_varint(stored, &mut pos)?;
        let i = next + u64::from(gap);
        if i >= n as u64 {
            return Err(bad_chunk(format!(
                "exception index {i} is outside the chunk's {n} elements"
            )));
        }
        idx.push(i as usize);
        next = i + 1;
    }
    let need = count * es;
    let values = stored.get(pos..pos + need).ok_or(CodecError::Truncated {
        what: "exception values",
        offset: pos,
        need,
        have: stored.len().saturating_sub(pos),
    })?;
    if pos + need != stored.len() {
        return Err(CodecError::TrailingBytes {
            extra: stored.len() - pos - need,
        });
    }
    for (&i, v) in idx.iter().zip(values.chunks_exact(es)) {
        out[i * es..(i + 1) * es].copy_from_slice(v);
    }
    Ok(())
}

/// Short human name, e.g. `mantissa(BF16,K=4;planes(3+8+5))`.
pub(crate) fn name(spec: &CodecSpec) -> Option<String> {
    let es = spec
        .params
        .first()
        .and_then(|&c| DType::from_code(c))?
        .size();
    let lp = LossyParams::parse(spec, es).ok()?;
    let inner = lp.inner.name();
    let inner = inner.strip_prefix("planes").unwrap_or(&inner);
    Some(match lp.scheme {
        Scheme::Mantissa { keep } => format!("mantissa({},K={keep};planes{inner})", lp.fmt.dtype),
        Scheme::Abs { eb, qbits, .. } => {
            format!("quant({},abs={eb:e},q={qbits};planes{inner})", lp.fmt.dtype)
        }
        Scheme::Rel { eb, qbits, .. } => {
            format!("quant({},rel={eb:e},q={qbits};planes{inner})", lp.fmt.dtype)
        }
    })
}

// ---------------------------------------------------------------------------
// Planning and measuring (used by the compiler).

/// A lossy setting a user asks for, per tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LossySetting {
    /// Codec 2: keep this many mantissa bits (pointwise relative error at
    /// most `2^-(K+1)`).
    Mantissa(u8),
    /// Codec 3: absolute bound.
    Abs(f64),
    /// Codec 3: pointwise relative bound.
    Rel(f64),
}

impl std::fmt::Display for LossySetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LossySetting::Mantissa(k) => write!(f, "mantissa:{k}"),
            LossySetting::Abs(eb) => write!(f, "abs:{eb:e}"),
            LossySetting::Rel(eb) => write!(f, "rel:{eb:e}"),
        }
    }
}

/// Whether a lossy setting can apply to tensors of this dtype (BF16, F16, F32).
pub fn lossy_dtype_supported(dtype: DType) -> bool {
    Fmt::of(dtype).is_some()
}

/// The dtype a codec 2 or 3 spec is for (its first params byte), or `None`
/// for other codecs and malformed params.
pub fn lossy_dtype(spec: &CodecSpec) -> Option<DType> {
    if !matches!(spec.id, CODEC_MANTISSA | CODEC_QUANT) {
        return None;
    }
    spec.params.first().and_then(|&c| DType::from_code(c))
}

/// (bound kind, bound) a valid codec 2 or 3 spec guarantees, for the
/// tensor's lossy record; `None` for lossless or malformed specs.
pub fn lossy_bound(spec: &CodecSpec) -> Option<(u8, f64)> {
    let es = lossy_dtype(spec)?.size();
    LossyParams::parse(spec, es).ok().map(|lp| lp.bound())
}

/// Bits needed to hold `v`.
fn bits_for(v: u64) -> u32 {
    64 - v.leading_zeros()
}

/// Candidate inner plane layouts for `bits`-bit codes in `size`-byte words:
/// zero bits on top (merged into the first plane when it stays Huffman-able,
/// else const planes of at most 16 bits), a first data plane of 6, 8, 9 or
/// 10 bits, the rest in planes of at most 8 bits (one plane when at most 10).
fn layouts(bits: u32, size: usize) -> Vec<PlanesParams> {
    let zeros = 8 * size as u32 - bits;
    let mut out: Vec<PlanesParams> = Vec::new();
    for t in [6u32, 8, 9, 10] {
        let t = t.min(bits);
        let mut w: Vec<u8> = Vec::new();
        if zeros + t <= 10 {
            w.push((zeros + t) as u8);
        } else {
            let mut z = zeros;
            while z > 0 {
                let p = z.min(16);
                w.push(p as u8);
                z -= p;
            }
            w.push(t as u8);
        }
        let mut r = bits - t;
        if r > 0 && r <= 10 {
            w.push(r as u8);
            r = 0;
        }
        while r > 0 {
            let p = r.min(8);
            w.push(p as u8);
            r -= p;
        }
        let pp = PlanesParams::new(false, &w);
        if pp.validate(size).is_ok() && !out.contains(&pp) {
            out.push(pp);
        }
    }
    out
}

/// Picks the codec 2 or 3 spec for a tensor of `dtype` under `setting`,
/// from `sample` (whole sampled chunks of `chunk_elems` elements, the last
/// possibly shorter, back to back, as the compiler cuts them): the code
/// width, then the inner plane layout that codes the sample smallest.
/// Returns `None` (stay lossless) when the dtype is not BF16, F16 or F32,
/// when the setting cannot change the tensor (K at or above the dtype's
/// mantissa bits, a relative bound finer than the dtype's own precision),
/// or when the lossy coding of the sample is not smaller than its lossless
/// coding (`choose_codec`): the lossless bytes meet any bound, so a lossy
/// setting never makes a tensor larger. (With an absolute bound finer than
/// a BF16 tensor's own precision, the indices of the larger values are
/// sparse and cost more than the values themselves.)
pub fn plan_lossy(
    dtype: DType,
    setting: LossySetting,
    sample: &[u8],
    chunk_elems: usize,
) -> Result<Option<CodecSpec>, CodecError> {
    plan(dtype, setting, sample, chunk_elems, true)
}

/// [`plan_lossy`], optionally without the comparison with lossless coding
/// (the tests exercise the codecs on data they do not shrink).
pub(crate) fn plan(
    dtype: DType,
    setting: LossySetting,
    sample: &[u8],
    chunk_elems: usize,
    vs_lossless: bool,
) -> Result<Option<CodecSpec>, CodecError> {
    let Some(fmt) = Fmt::of(dtype) else {
        return Ok(None);
    };
    let es = fmt.size();
    let (scheme, code_bits) = match setting {
        LossySetting::Mantissa(k) => {
            let keep = u32::from(k);
            if keep >= fmt.mbits {
                return Ok(None);
            }
            (Scheme::Mantissa { keep }, 1 + fmt.ebits + keep)
        }
        LossySetting::Rel(eb) => {
            if !(eb > 0.0 && eb < 1.0) {
                return Err(CodecError::BadParams {
                    id: CODEC_QUANT,
                    elem_size: es,
                    reason: format!("relative bound {eb} is not in (0, 1)"),
                });
            }
            if eb < (-(fmt.mbits as f64) - 1.0).exp2() {
                return Ok(None);
            }
            let step = 2.0 * eb;
            let qbits = bits_for((1.0 / step).ceil() as u64).max(1);
            (Scheme::Rel { eb, step, qbits }, 1 + fmt.ebits + qbits)
        }
        LossySetting::Abs(eb) => {
            let step = 2.0 * eb;
            if !(eb > 0.0 && step.is_finite()) {
                return Err(CodecError::BadParams {
                    id: CODEC_QUANT,
                    elem_size: es,
                    reason: format!("absolute bound {eb} is not positive and finite"),
                });
            }
            let max = sample
                .chunks_exact(es)
                .map(|b| fmt.to_f64(fmt.load(b) & !fmt.sign_bit()))
                .filter(|a| a.is_finite())
                .fold(0.0f64, f64::max);
            let qmax = (max / step).round().min(f64::from(u32::MAX));
            // One bit of headroom for values beyond the sample's largest.
            let qbits = (bits_for(qmax as u64) + 1).clamp(1, 31);
            (Scheme::Abs { eb, step, qbits }, qbits + 1)
        }
    };
    let code_size = code_size_for(code_bits);
    let cands = layouts(code_bits, code_size);
    let first = cands
        .first()
        .cloned()
        .ok_or_else(|| CodecError::BadParams {
            id: CODEC_QUANT,
            elem_size: es,
            reason: format!("no plane layout for {code_bits}-bit codes"),
        })?;
    let mut lp = LossyParams {
        fmt,
        scheme,
        code_bits,
        code_size,
        inner: first,
    };
    // The codes of the head of each sampled chunk, quantized once; each
    // layout then only codes them (exceptions cost the same in every one).
    let ce = chunk_elems.max(1) * es;
    let heads: Vec<&[u8]> = sample
        .chunks(ce)
        .map(|chunk| {
            let part = &chunk[..chunk.len().min(LAYOUT_SAMPLE_ELEMS * es)];
            &part[..part.len() / es * es]
        })
        .collect();
    let mut exceptions_cost = 0usize;
    let parts: Vec<Vec<u8>> = heads
        .iter()
        .map(|part| {
            let (codes, exc) = quantize(&lp, part);
            // Length fields, one to two index bytes and the value each.
            exceptions_cost += 8 + exc.len() * (es + 2);
            codes
        })
        .collect();
    let mut best: Option<(usize, PlanesParams)> = None;
    for inner in cands {
        let spec = inner.spec();
        let mut size = 0usize;
        for codes in &parts {
            size += encode_chunk(&spec, code_size, codes)?.len();
        }
        if best.as_ref().is_none_or(|(s, _)| size < *s) {
            best = Some((size, inner));
        }
    }
    let Some((codes_cost, inner)) = best else {
        return Ok(Some(lp.to_spec()));
    };
    lp.inner = inner;
    if !vs_lossless {
        return Ok(Some(lp.to_spec()));
    }
    let lossless = super::choose_codec(es, true, sample, chunk_elems.max(1));
    let mut lossless_cost = 0usize;
    for part in &heads {
        lossless_cost += encode_chunk(&lossless, es, part)?.len();
    }
    if codes_cost + exceptions_cost >= lossless_cost {
        return Ok(None);
    }
    Ok(Some(lp.to_spec()))
}

/// Error figures of decoded elements against the originals, mergeable
/// across chunks. Relative errors are over the finite nonzero originals;
/// the absolute error over the finite ones.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ErrorStats {
    /// Elements with a finite nonzero original.
    pub rel_count: u64,
    pub max_abs: f64,
    pub max_rel: f64,
    pub sum_rel: f64,
    pub sum_rel_sq: f64,
}

impl ErrorStats {
    /// Adds another chunk's figures.
    pub fn merge(&mut self, o: &ErrorStats) {
        self.rel_count += o.rel_count;
        self.max_abs = self.max_abs.max(o.max_abs);
        self.max_rel = self.max_rel.max(o.max_rel);
        self.sum_rel += o.sum_rel;
        self.sum_rel_sq += o.sum_rel_sq;
    }
    /// Mean pointwise relative error.
    pub fn mean_rel(&self) -> f64 {
        if self.rel_count == 0 {
            0.0
        } else {
            self.sum_rel / self.rel_count as f64
        }
    }
    /// Root mean square pointwise relative error.
    pub fn rms_rel(&self) -> f64 {
        if self.rel_count == 0 {
            0.0
        } else {
            (self.sum_rel_sq / self.rel_count as f64).sqrt()
        }
    }
}

/// Checks every decoded element of a chunk against its original under the
/// bound of `spec` (a codec 2 or 3 spec) and measures the errors. On a
/// violation returns the element index and what is wrong: that is an
/// encoder bug, never an input problem.
pub fn check_and_measure(
    spec: &CodecSpec,
    orig: &[u8],
    decoded: &[u8],
) -> Result<ErrorStats, String> {
    let dtype = lossy_dtype(spec).ok_or("not a lossy codec spec")?;
    let fmt = Fmt::of(dtype).ok_or("not a lossy dtype")?;
    let lp = LossyParams::parse(spec, fmt.size()).map_err(|e| e.to_string())?;
    if orig.len() != decoded.len() || !orig.len().is_multiple_of(fmt.size()) {
        return Err(format!(
            "lengths {} and {} differ or are not whole elements",
            orig.len(),
            decoded.len()
        ));
    }
    let bound = lp.bound();
    let mut st = ErrorStats::default();
    for (i, (a, b)) in orig
        .chunks_exact(fmt.size())
        .zip(decoded.chunks_exact(fmt.size()))
        .enumerate()
    {
        let (x, y) = (fmt.load(a), fmt.load(b));
        if !within(fmt, bound, x, y) {
            return Err(format!(
                "element {i}: {:e} (bits {x:#x}) decoded as {:e} (bits {y:#x}), outside the bound {:e}",
                fmt.to_f64(x),
                fmt.to_f64(y),
                bound.1
            ));
        }
        let (fx, fy) = (fmt.to_f64(x), fmt.to_f64(y));
        if fx.is_finite() {
            let err = (fy - fx).abs();
            st.max_abs = st.max_abs.max(err);
            if fx != 0.0 {
                let rel = err / fx.abs();
                st.rel_count += 1;
                st.max_rel = st.max_rel.max(rel);
                st.sum_rel += rel;
                st.sum_rel_sq += rel * rel;
            }
        }
    }
    Ok(st)
}

#[cfg(test)]
#[path = "lossy_tests.rs"]
mod tests;
