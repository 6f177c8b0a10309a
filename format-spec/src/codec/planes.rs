//! Codec 1 `planes`: optional 1-bit rotation, split into bit planes, each
//! plane stored raw, constant, or Huffman coded.

use super::bits::{self, by_width};
use super::dispatch;
use super::huffman::{self, HuffDecoder};
use super::{CodecError, CodecSpec, CODEC_PLANES, MAX_HUFFMAN_WIDTH, TILE_SYMBOLS};

/// Most planes a `planes` codec may use.
pub const MAX_PLANES: usize = 8;
/// Widest plane allowed, in bits.
pub const MAX_PLANE_WIDTH: u8 = 16;

/// Section mode bytes.
pub(crate) const MODE_RAW: u8 = 0;
pub(crate) const MODE_CONST: u8 = 1;
pub(crate) const MODE_HUFFMAN: u8 = 2;
/// Bytes before a plane section's body: u32 length (mode byte included) and mode.
const SECTION_HEADER: usize = 5;

/// Parameters of codec 1 `planes` (`rotate`, then the plane widths from the
/// most significant plane down).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PlanesParams {
    /// Rotate each element left by one bit within its width first
    /// (IEEE floats: exponent on top, sign at bit 0).
    pub rotate: bool,
    /// Plane widths in bits, most significant plane first; 1..=8 planes of
    /// 1..=16 bits summing to the element width.
    pub widths: Vec<u8>,
}

impl PlanesParams {
    /// Builds parameters (not validated; see [`PlanesParams::validate`]).
    pub fn new(rotate: bool, widths: &[u8]) -> Self {
        PlanesParams {
            rotate,
            widths: widths.to_vec(),
        }
    }

    /// Parses and validates the params bytes for `elem_size`-byte elements.
    pub fn from_bytes(params: &[u8], elem_size: usize) -> Result<Self, CodecError> {
        let bad = |reason: String| CodecError::BadParams {
            id: CODEC_PLANES,
            elem_size,
            reason,
        };
        let (&rot, rest) = params
            .split_first()
            .ok_or_else(|| bad("params are empty, expected rotate, P and P widths".into()))?;
        let (&p, widths) = rest
            .split_first()
            .ok_or_else(|| bad("params end before the plane count".into()))?;
        if widths.len() != usize::from(p) {
            return Err(bad(format!(
                "plane count is {p} but {} width bytes follow",
                widths.len()
            )));
        }
        if rot > 1 {
            return Err(bad(format!("rotate byte is {rot}, must be 0 or 1")));
        }
        let pp = PlanesParams {
            rotate: rot == 1,
            widths: widths.to_vec(),
        };
        pp.validate(elem_size)?;
        Ok(pp)
    }

    /// The params bytes: rotate, P, widths.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(2 + self.widths.len());
        v.push(u8::from(self.rotate));
        v.push(self.widths.len() as u8);
        v.extend_from_slice(&self.widths);
        v
    }

    /// The codec spec carrying these parameters.
    pub fn spec(&self) -> CodecSpec {
        CodecSpec {
            id: CODEC_PLANES,
            params: self.to_bytes(),
        }
    }

    /// Checks plane count, widths and their sum against `elem_size`.
    pub fn validate(&self, elem_size: usize) -> Result<(), CodecError> {
        let bad = |reason: String| CodecError::BadParams {
            id: CODEC_PLANES,
            elem_size,
            reason,
        };
        if !matches!(elem_size, 1 | 2 | 4 | 8) {
            return Err(bad(format!(
                "element size {elem_size} is not supported (1, 2, 4 or 8 bytes)"
            )));
        }
        let p = self.widths.len();
        if p == 0 || p > MAX_PLANES {
            return Err(bad(format!("plane count {p} is outside 1..={MAX_PLANES}")));
        }
        if let Some(&w) = self.widths.iter().find(|&&w| w == 0 || w > MAX_PLANE_WIDTH) {
            return Err(bad(format!(
                "plane width {w} is outside 1..={MAX_PLANE_WIDTH}"
            )));
        }
        let sum: usize = self.widths.iter().map(|&w| usize::from(w)).sum();
        if sum != 8 * elem_size {
            return Err(bad(format!(
                "plane widths sum to {sum} bits but elements are {} bits",
                8 * elem_size
            )));
        }
        Ok(())
    }

    /// Short human name, e.g. `planes(rot,10+6)`.
    pub fn name(&self) -> String {
        let w: Vec<String> = self.widths.iter().map(|w| w.to_string()).collect();
        if self.rotate {
            format!("planes(rot,{})", w.join("+"))
        } else {
            format!("planes({})", w.join("+"))
        }
    }

    /// (shift, width) of each plane: plane p is `(r >> shift) & (2^w - 1)`.
    pub(crate) fn layout(&self) -> Vec<(u32, u32)> {
        let total: u32 = self.widths.iter().map(|&w| u32::from(w)).sum();
        let mut top = total;
        self.widths
            .iter()
            .map(|&w| {
                top -= u32::from(w);
                (top, u32::from(w))
            })
            .collect()
    }
}

/// Element access for the four supported widths.
trait Elem {
    const SIZE: usize;
    fn load(b: &[u8]) -> u64;
    fn store(v: u64, b: &mut [u8]);
}

macro_rules! elem {
    ($t:ident, $ty:ty, $n:expr) => {
        struct $t;
        impl Elem for $t {
            const SIZE: usize = $n;
            #[inline(always)]
            fn load(b: &[u8]) -> u64 {
                b.first_chunk::<$n>()
                    .map_or(0, |a| <$ty>::from_le_bytes(*a) as u64)
            }
            #[inline(always)]
            fn store(v: u64, b: &mut [u8]) {
                if let Some(a) = b.first_chunk_mut::<$n>() {
                    *a = (v as $ty).to_le_bytes();
                }
            }
        }
    };
}
elem!(E1, u8, 1);
elem!(E2, u16, 2);
elem!(E4, u32, 4);
elem!(E8, u64, 8);

#[inline(always)]
fn rotl(x: u64, bits: u32) -> u64 {
    if bits == 64 {
        x.rotate_left(1)
    } else {
        ((x << 1) | (x >> (bits - 1))) & ((1u64 << bits) - 1)
    }
}

#[inline(always)]
fn rotr(x: u64, bits: u32) -> u64 {
    if bits == 64 {
        x.rotate_right(1)
    } else {
        (x >> 1) | ((x & 1) << (bits - 1))
    }
}

#[inline(always)]
fn rotr32(x: u32, bits: u32) -> u32 {
    if bits == 32 {
        x.rotate_right(1)
    } else {
        (x >> 1) | ((x & 1) << (bits - 1))
    }
}

/// `x = rotr16((a << s0) | b, 1)` (rotation optional), stored little-endian;
/// the low plane comes as a tile buffer or, for a raw 8-bit plane, as the
/// stored bytes themselves.
#[inline(always)]
fn merge2_u16<T: Copy + Into<u16>>(a: &[u16], b: &[T], s0: u32, rotate: bool, out: &mut [u8]) {
    let pairs = out.chunks_exact_mut(2).zip(a.iter().zip(b));
    if rotate {
        for (c, (&x, &y)) in pairs {
            let r = (x << s0) | y.into();
            c.copy_from_slice(&r.rotate_right(1).to_le_bytes());
        }
    } else {
        for (c, (&x, &y)) in pairs {
            c.copy_from_slice(&((x << s0) | y.into()).to_le_bytes());
        }
    }
}

/// `x = rotr32((a << s0) | (b << s1) | (c << s2) | (d << s3), 1)` (rotation
/// optional), stored little-endian; the two low planes come as tile buffers
/// or, for raw 8-bit planes, as the stored bytes themselves.
#[inline(always)]
fn merge4_u32<T: Copy + Into<u32>>(
    a: &[u16],
    b: &[u16],
    c: &[T],
    d: &[T],
    [s0, s1, s2, s3]: [u32; 4],
    rotate: bool,
    out: &mut [u8],
) {
    let rows = a.iter().zip(b).zip(c.iter().zip(d));
    for (o, ((&a, &b), (&c, &d))) in out.chunks_exact_mut(4).zip(rows) {
        let r = (u32::from(a) << s0) | (u32::from(b) << s1) | (c.into() << s2) | (d.into() << s3);
        let r = if rotate { rotr32(r, 32) } else { r };
        o.copy_from_slice(&r.to_le_bytes());
    }
}

/// Histogram of bits `shift..shift + w` (`w <= 16`) of a chunk's elements,
/// rotated as `rotate` says (used by the chooser).
pub(crate) fn bits_histogram(
    elem_size: usize,
    rotate: bool,
    data: &[u8],
    shift: u32,
    w: u32,
) -> Vec<u32> {
    let src = PlaneSrc {
        data,
        elem_size,
        rotate,
        shift,
        w,
    };
    let mut buf = vec![0u16; src.len().clamp(1, TILE_SYMBOLS)];
    let mut hist = Histogram::new(1 << w);
    for_each_tile(src.len(), |first, m| {
        src.extract(first, &mut buf[..m]);
        hist.add(&buf[..m]);
    });
    hist.finish()
}

/// One plane of a chunk, read straight from the chunk's bytes: the encoder
/// extracts a tile of symbols at a time into a small buffer that stays in
/// cache, instead of splitting the whole chunk into plane vectors first.
struct PlaneSrc<'a> {
    data: &'a [u8],
    elem_size: usize,
    rotate: bool,
    shift: u32,
    w: u32,
}

impl PlaneSrc<'_> {
    fn len(&self) -> usize {
        self.data.len() / self.elem_size
    }

    /// Appends the raw packing of elements `first..first + tile.len()`
    /// (`tile` is scratch). Tiles hold a multiple of 8 symbols, so the
    /// packings of consecutive tiles concatenate.
    #[inline(always)]
    fn pack(&self, first: usize, tile: &mut [u16], body: &mut Vec<u8>) {
        let (s, w, rot) = (self.shift, self.w, self.rotate);
        let bytes = |size: usize| &self.data[first * size..(first + tile.len()) * size];
        match self.elem_size {
            2 => by_width!(w, pack16, bytes(2), rot, s, tile, body),
            4 => by_width!(w, pack32, bytes(4), rot, s, tile, body),
            _ => {
                self.extract(first, tile);
                bits::pack(tile, w, body);
            }
        }
    }

    /// Symbols of elements `first..first + out.len()`.
    #[inline(always)]
    fn extract(&self, first: usize, out: &mut [u16]) {
        let (s, w, rot) = (self.shift, self.w, self.rotate);
        let bytes = |size: usize| &self.data[first * size..(first + out.len()) * size];
        match self.elem_size {
            1 => extract::<E1>(bytes(1), rot, s, w, out),
            2 => extract_swar::<16>(bytes(2), rot, s, w, out),
            4 => extract_swar::<32>(bytes(4), rot, s, w, out),
            _ => extract::<E8>(bytes(8), rot, s, w, out),
        }
    }
}

/// One symbol in `step` of every plane: the first [`SAMPLE_RUN`] of every
/// `SAMPLE_RUN * step`, so that the samples read one cache line in `step`
/// rather than every line of the chunk, and each run once for all planes.
fn samples(srcs: &[PlaneSrc], n: usize, step: usize) -> Vec<Vec<u16>> {
    let mut out: Vec<Vec<u16>> = srcs
        .iter()
        .map(|_| Vec::with_capacity(n / step + SAMPLE_RUN))
        .collect();
    for first in (0..n).step_by(SAMPLE_RUN * step) {
        let m = SAMPLE_RUN.min(n - first);
        for (src, v) in srcs.iter().zip(&mut out) {
            let at = v.len();
            v.resize(at + m, 0);
            src.extract(first, &mut v[at..]);
        }
    }
    out
}

/// Length of the contiguous runs [`samples`] takes.
const SAMPLE_RUN: usize = 64;

/// Plane symbols of whole elements (`data.len() == out.len() * E::SIZE`).
fn extract<E: Elem>(data: &[u8], rotate: bool, s: u32, w: u32, out: &mut [u16]) {
    let bits = 8 * E::SIZE as u32;
    let m = (1u64 << w) - 1;
    for (o, c) in out.iter_mut().zip(data.chunks_exact(E::SIZE)) {
        let r = E::load(c);
        let r = if rotate { rotl(r, bits) } else { r };
        *o = ((r >> s) & m) as u16;
    }
}

/// [`extract`] for 16- and 32-bit elements (`L` bits): 64 / L of them at a
/// time in a u64 (SWAR), which compiles to whole-word loads and stores where
/// per-element byte loads compile to byte gathers.
#[inline(always)]
fn extract_swar<const L: u32>(data: &[u8], rotate: bool, s: u32, w: u32, out: &mut [u16]) {
    let one = |x: u64| swar_fields::<L>(x, rotate, s, w);
    let k = (64 / L) as usize;
    let bytes = (L / 8) as usize;
    let mut groups = out.chunks_exact_mut(k);
    let mut src = data.chunks_exact(8);
    for (o, c) in (&mut groups).zip(&mut src) {
        let v = one(bits::load_u64(c, 0));
        for (i, x) in o.iter_mut().enumerate() {
            *x = (v >> (L as usize * i)) as u16;
        }
    }
    for (x, c) in groups
        .into_remainder()
        .iter_mut()
        .zip(src.remainder().chunks_exact(bytes))
    {
        let mut a = [0u8; 8];
        a[..bytes].copy_from_slice(c);
        *x = one(u64::from_le_bytes(a)) as u16;
    }
}

/// [`PlaneSrc::pack`] for 16- and 32-bit elements (`L` bits) in one pass:
/// eight symbols straight from eight elements into `W` packed bytes, with
/// no round trip through a tile of u16 symbols (`tile` is scratch for a
/// last group of fewer than eight).
#[inline(always)]
fn pack_swar<const W: usize, const L: u32>(
    data: &[u8],
    rotate: bool,
    s: u32,
    tile: &mut [u16],
    out: &mut Vec<u8>,
) {
    let start = out.len();
    if W == 8 {
        // One byte per element: a plain loop, which vectorizes.
        out.resize(start + data.len() / (L / 8) as usize, 0);
        let out = &mut out[start..];
        if L == 32 {
            for (o, c) in out.iter_mut().zip(data.chunks_exact(4)) {
                let x = u32::from_le_bytes(c.try_into().unwrap_or_default());
                *o = ((if rotate { x.rotate_left(1) } else { x }) >> s) as u8;
            }
        } else {
            for (o, c) in out.iter_mut().zip(data.chunks_exact(2)) {
                let x = u16::from_le_bytes(c.try_into().unwrap_or_default());
                *o = ((if rotate { x.rotate_left(1) } else { x }) >> s) as u8;
            }
        }
        return;
    }
    let per = (64 / L) as usize;
    let sym = (1u64 << W) - 1;
    let mut groups = data.chunks_exact(L as usize);
    out.resize(start + groups.len() * W, 0);
    if W < 8 {
        // Eight symbols of under 8 bits fit one u64: each word's fields,
        // already at the bottom of their slots, are moved together by
        // shifts, with no per-symbol work.
        for (d, g) in out[start..].chunks_exact_mut(W).zip(&mut groups) {
            let word = |j: usize| swar_fields::<L>(bits::load_u64(g, 8 * j), rotate, s, W as u32);
            let v = if L == 16 {
                bits::gather4::<W>(word(0)) | (bits::gather4::<W>(word(1)) << (4 * W))
            } else {
                (0..4).fold(0, |v, j| v | (bits::gather2::<W>(word(j)) << (2 * W * j)))
            };
            d.copy_from_slice(&v.to_le_bytes()[..W]);
        }
    } else {
        for (d, g) in out[start..].chunks_exact_mut(W).zip(&mut groups) {
            // The group's L / 8 words, each holding `per` symbols.
            let words: [u64; 4] = std::array::from_fn(|j| match j < L as usize / 8 {
                true => swar_fields::<L>(bits::load_u64(g, 8 * j), rotate, s, W as u32),
                false => 0,
            });
            bits::pack_group::<W>(|i| (words[i / per] >> (L as usize * (i % per))) & sym, d);
        }
    }
    let rest = groups.remainder();
    let k = rest.len() / (L / 8) as usize;
    extract_swar::<L>(rest, rotate, s, W as u32, &mut tile[..k]);
    bits::pack(&tile[..k], W as u32, out);
}

#[inline(always)]
fn pack16<const W: usize>(d: &[u8], r: bool, s: u32, t: &mut [u16], o: &mut Vec<u8>) {
    pack_swar::<W, 16>(d, r, s, t, o)
}

#[inline(always)]
fn pack32<const W: usize>(d: &[u8], r: bool, s: u32, t: &mut [u16], o: &mut Vec<u8>) {
    pack_swar::<W, 32>(d, r, s, t, o)
}

/// The `w`-bit field at `s` of each `L`-bit element of `x` (rotated first
/// if `rotate`), each left at the bottom of its element's slot.
#[inline(always)]
fn swar_fields<const L: u32>(x: u64, rotate: bool, s: u32, w: u32) -> u64 {
    // Bit 0 of every element.
    let lo: u64 = if L == 16 {
        0x0001_0001_0001_0001
    } else {
        0x0000_0001_0000_0001
    };
    let m = ((1u64 << w) - 1) * lo;
    let r = if rotate {
        ((x << 1) & !lo) | ((x >> (L - 1)) & lo)
    } else {
        x
    };
    // Bits shifted in from the next element sit above bit L - s of each
    // element, and w <= L - s, so the mask clears them.
    (r >> s) & m
}

/// The encoder's per-thread buffers, kept between chunks (fresh ones would
/// be faulted in and zeroed by the kernel for every chunk).
struct EncScratch {
    /// One tile of one plane's symbols.
    tile: Vec<u16>,
    /// A Huffman plane's lane scratch space.
    lanes: Vec<u8>,
}

thread_local! {
    static ENC_SCRATCH: std::cell::RefCell<EncScratch> = const {
        std::cell::RefCell::new(EncScratch { tile: Vec::new(), lanes: Vec::new() })
    };
}

/// How one plane of a chunk is stored.
enum PlaneMode {
    Const(u16),
    Huffman(huffman::CodePlan),
    Raw,
}

/// Calls `f(first, m)` for each tile of `n` symbols: `m` symbols from
/// symbol `first`.
#[inline(always)]
fn for_each_tile(n: usize, mut f: impl FnMut(usize, usize)) {
    for first in (0..n).step_by(TILE_SYMBOLS) {
        f(first, (n - first).min(TILE_SYMBOLS));
    }
}

/// Encodes a chunk with validated parameters. Planes are decided first
/// (from a sample, then histograms, tile by tile through all planes), then
/// written one after the other straight into the output.
pub(crate) fn encode(
    pp: &PlanesParams,
    elem_size: usize,
    data: &[u8],
) -> Result<Vec<u8>, CodecError> {
    ENC_SCRATCH.with_borrow_mut(|scratch| {
        dispatch::run(EncodeOp {
            scratch,
            pp,
            elem_size,
            data,
        })
    })
}

/// [`encode`] as an operation for [`dispatch::run`].
struct EncodeOp<'a> {
    scratch: &'a mut EncScratch,
    pp: &'a PlanesParams,
    elem_size: usize,
    data: &'a [u8],
}

impl pulp::WithSimd for EncodeOp<'_> {
    type Output = Result<Vec<u8>, CodecError>;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        encode_with(self.scratch, self.pp, self.elem_size, self.data)
    }
}

/// The body of [`encode`], with this thread's scratch buffers.
#[inline(always)]
fn encode_with(
    scratch: &mut EncScratch,
    pp: &PlanesParams,
    elem_size: usize,
    data: &[u8],
) -> Result<Vec<u8>, CodecError> {
    let EncScratch { tile: buf, lanes } = scratch;
    let n = data.len() / elem_size;
    buf.resize(n.clamp(1, TILE_SYMBOLS), 0);
    let srcs: Vec<PlaneSrc> = pp
        .layout()
        .into_iter()
        .map(|(shift, w)| PlaneSrc {
            data,
            elem_size,
            rotate: pp.rotate,
            shift,
            w,
        })
        .collect();
    let raw_len = |src: &PlaneSrc| (n * src.w as usize).div_ceil(8);
    // Which planes are worth a histogram (and a Huffman code)?
    // A sample of one symbol in 16, when the planes are long enough for
    // one to say anything.
    const STEP: usize = 16;
    let samples = (n >= 64 * STEP).then(|| samples(&srcs, n, STEP));
    let mut hists: Vec<Option<Histogram>> = Vec::with_capacity(srcs.len());
    let mut maybe_const = Vec::with_capacity(srcs.len());
    for (p, src) in srcs.iter().enumerate() {
        let sample = samples.as_ref().map(|s| s[p].as_slice());
        let (worth, constant) = screen(src, sample, raw_len(src));
        hists.push(worth.then(|| Histogram::new(1 << src.w)));
        maybe_const.push(constant);
    }
    // Long planes are counted on one block in HIST_STEP: the code then
    // has an escape for symbols the sample missed.
    let sampled = n >= HIST_SAMPLED_FROM;
    let (block, stride) = if sampled {
        (HIST_BLOCK, HIST_BLOCK * HIST_STEP)
    } else {
        (TILE_SYMBOLS, TILE_SYMBOLS)
    };
    let mut counted = 0;
    if hists.iter().any(Option::is_some) {
        for first in (0..n).step_by(stride) {
            let m = block.min(n - first);
            counted += m;
            for (src, h) in srcs.iter().zip(&mut hists) {
                if let Some(h) = h {
                    src.extract(first, &mut buf[..m]);
                    h.add(&buf[..m]);
                }
            }
        }
    }
    let modes: Vec<PlaneMode> = srcs
        .iter()
        .zip(hists)
        .zip(maybe_const)
        .map(|((src, hist), maybe_const)| match hist {
            Some(h) => {
                let mut hist = h.finish();
                if sampled {
                    scale_counts(&mut hist, n, counted);
                }
                mode_from_histogram(&hist, src, n, raw_len(src), sampled, buf)
            }
            None if maybe_const => constant(src, buf).map_or(PlaneMode::Raw, PlaneMode::Const),
            None => PlaneMode::Raw,
        })
        .collect();
    // Sections, one plane after the other, written in place: a chunk is
    // small enough to stay in cache between its planes' passes, and no
    // body is copied into the output afterwards.
    let mut out = Vec::with_capacity(srcs.iter().map(|src| SECTION_HEADER + raw_len(src)).sum());
    for (src, mode) in srcs.iter().zip(&modes) {
        let at = out.len();
        out.resize(at + SECTION_HEADER, 0);
        let body_at = out.len();
        let mode = match mode {
            PlaneMode::Const(v) => {
                out.extend_from_slice(&v.to_le_bytes());
                MODE_CONST
            }
            PlaneMode::Huffman(plan) => {
                let taken = std::mem::take(lanes);
                let mut wr = huffman::BodyWriter::start(n, src.w, plan, &mut out, taken);
                for_each_tile(
                    n,
                    #[inline(always)]
                    |first, m| {
                        let tile = &mut buf[..m];
                        src.extract(first, tile);
                        wr.tile(first / TILE_SYMBOLS, tile, &mut out);
                    },
                );
                *lanes = wr.into_lanes();
                // The plan's padding is an estimate: keep raw if it was off.
                if out.len() - body_at < raw_len(src) {
                    MODE_HUFFMAN
                } else {
                    out.truncate(body_at);
                    pack_plane(src, &mut out, buf)
                }
            }
            PlaneMode::Raw => pack_plane(src, &mut out, buf),
        };
        let section = u32::try_from(out.len() - body_at + 1).map_err(|_| CodecError::TooLarge {
            what: "plane section longer than 2^32-1 bytes",
        })?;
        out[at..at + 4].copy_from_slice(&section.to_le_bytes());
        out[at + 4] = mode;
    }
    Ok(out)
}

/// Appends `src` packed raw (`buf` is tile scratch); returns the mode.
#[inline(always)]
fn pack_plane(src: &PlaneSrc, out: &mut Vec<u8>, buf: &mut [u16]) -> u8 {
    for_each_tile(
        src.len(),
        #[inline(always)]
        |first, m| src.pack(first, &mut buf[..m], out),
    );
    MODE_RAW
}

/// Screens a plane on its sample, if it has one: (worth a histogram and a
/// Huffman code, possibly constant).
fn screen(src: &PlaneSrc, sample: Option<&[u16]>, raw_len: usize) -> (bool, bool) {
    let (n, w) = (src.len(), src.w);
    let worth = n > 0
        && w <= MAX_HUFFMAN_WIDTH
        && !sample.is_some_and(|s| surely_incompressible(s, n, w, raw_len));
    let maybe_const = n > 0 && sample.is_none_or(|s| s.iter().all(|&x| x == s[0]));
    (worth, maybe_const)
}

/// Planes of at least this many symbols get their histogram from a sample.
pub(crate) const HIST_SAMPLED_FROM: usize = 4 * TILE_SYMBOLS;
/// The sample: the first `HIST_BLOCK` symbols of every `HIST_STEP` blocks.
pub(crate) const HIST_BLOCK: usize = 4096;
pub(crate) const HIST_STEP: usize = 4;

/// Scales counts of a `counted`-symbol sample up to `n` symbols; counts that
/// were nonzero stay nonzero.
fn scale_counts(hist: &mut [u32], n: usize, counted: usize) {
    let k = n as f64 / counted.max(1) as f64;
    for c in hist.iter_mut().filter(|c| **c > 0) {
        *c = ((f64::from(*c) * k).round() as u32).max(1);
    }
}

/// The mode of a plane from its histogram (of every symbol, or with
/// `sampled` of a sample scaled up; `buf` is scratch for checking that a
/// plane whose sample holds one value is constant).
fn mode_from_histogram(
    hist: &[u32],
    src: &PlaneSrc,
    n: usize,
    raw_len: usize,
    sampled: bool,
    buf: &mut [u16],
) -> PlaneMode {
    let mut present = hist.iter().enumerate().filter(|(_, &c)| c > 0);
    if let (Some((only, _)), None) = (present.next(), present.next()) {
        if !sampled || constant(src, buf).is_some() {
            return PlaneMode::Const(only as u16);
        }
    }
    let thresholds = &huffman::ESC_THRESHOLDS;
    huffman::plan_code(hist, src.w, n, raw_len as u64, thresholds, true, sampled)
        .map_or(PlaneMode::Raw, PlaneMode::Huffman)
}

/// The plane's value if every symbol is the same (checked in full: this
/// runs only on planes without a sample or with a constant one).
fn constant(src: &PlaneSrc, buf: &mut [u16]) -> Option<u16> {
    let mut first = None;
    let mut same = true;
    for_each_tile(src.len(), |at, m| {
        let syms = &mut buf[..m];
        src.extract(at, syms);
        let v = *first.get_or_insert(syms[0]);
        same &= syms.iter().all(|&x| x == v);
    });
    first.filter(|_| same)
}

/// Cheap pre-check on a 1-in-16 sample of an `n`-symbol plane: true when
/// even the sample's empirical entropy (which tends to underestimate the
/// plane's) plus the fixed Huffman overhead does not beat the raw size, so
/// the full histogram and code construction can be skipped (near-uniform
/// mantissa planes).
fn surely_incompressible(sample: &[u16], n: usize, w: u32, raw_len: usize) -> bool {
    let hist = histogram(sample, 1 << w);
    let m = sample.len() as f64;
    let bits_per_symbol: f64 = hist
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| f64::from(c) / m * (m / f64::from(c)).log2())
        .sum();
    let estimate = bits_per_symbol * n as f64 / 8.0 + huffman::fixed_overhead(n) as f64;
    estimate >= raw_len as f64
}

/// A histogram built over several slices. Four interleaved tables break the
/// store-to-load dependency between repeated hits on the same bin, which
/// dominates on skewed planes such as exponents.
pub(crate) struct Histogram {
    bins: usize,
    h: Vec<u32>,
}

impl Histogram {
    pub(crate) fn new(bins: usize) -> Self {
        Histogram {
            bins,
            h: vec![0; 4 * bins],
        }
    }

    /// Counts `syms` (all `< bins`).
    #[inline(always)]
    pub(crate) fn add(&mut self, syms: &[u16]) {
        let (h0, rest) = self.h.split_at_mut(self.bins);
        let (h1, rest) = rest.split_at_mut(self.bins);
        let (h2, h3) = rest.split_at_mut(self.bins);
        let mut quads = syms.chunks_exact(4);
        for q in &mut quads {
            h0[q[0] as usize] += 1;
            h1[q[1] as usize] += 1;
            h2[q[2] as usize] += 1;
            h3[q[3] as usize] += 1;
        }
        for &s in quads.remainder() {
            h0[s as usize] += 1;
        }
    }

    pub(crate) fn finish(mut self) -> Vec<u32> {
        let (h0, rest) = self.h.split_at_mut(self.bins);
        let (h1, rest) = rest.split_at_mut(self.bins);
        let (h2, h3) = rest.split_at_mut(self.bins);
        for ((a, b), (c, d)) in h0.iter_mut().zip(h1.iter()).zip(h2.iter().zip(h3.iter())) {
            *a += b + c + d;
        }
        self.h.truncate(self.bins);
        self.h
    }
}

/// Histogram of `syms` (all `< bins`).
pub(crate) fn histogram(syms: &[u16], bins: usize) -> Vec<u32> {
    let mut h = Histogram::new(bins);
    h.add(syms);
    h.finish()
}

/// A parsed plane section.
enum PlaneDec<'a> {
    Raw(&'a [u8]),
    Const(u16),
    Huff(HuffDecoder<'a>),
}

/// Decodes a chunk with validated parameters into `out`.
pub(crate) fn decode(
    pp: &PlanesParams,
    elem_size: usize,
    stored: &[u8],
    out: &mut [u8],
) -> Result<(), CodecError> {
    let n = out.len() / elem_size;
    let layout = pp.layout();
    let mut decs = Vec::with_capacity(layout.len());
    let mut pos = 0usize;
    for (plane, &(_, w)) in layout.iter().enumerate() {
        let have = stored.len() - pos;
        let h = stored.get(pos..pos + 5).ok_or(CodecError::Truncated {
            what: "plane section header",
            offset: pos,
            need: 5,
            have,
        })?;
        let section = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if section == 0 {
            return Err(CodecError::BadSectionLength {
                plane,
                expected: 1,
                got: 0,
            });
        }
        let mode = h[4];
        let body = stored
            .get(pos + 5..)
            .and_then(|s| s.get(..section - 1))
            .ok_or(CodecError::Truncated {
                what: "plane section",
                offset: pos + 4,
                need: section,
                have: have - 4,
            })?;
        let base = pos + 5;
        pos += 4 + section;
        decs.push(match mode {
            MODE_RAW => {
                let expected = n
                    .checked_mul(w as usize)
                    .ok_or(CodecError::TooLarge { what: "raw plane" })?
                    .div_ceil(8);
                if body.len() != expected {
                    return Err(CodecError::BadSectionLength {
                        plane,
                        expected,
                        got: body.len(),
                    });
                }
                let used = n * w as usize;
                if !used.is_multiple_of(8) && body[used / 8] >> (used % 8) != 0 {
                    return Err(CodecError::RawPadding { plane });
                }
                PlaneDec::Raw(body)
            }
            MODE_CONST => {
                if body.len() != 2 {
                    return Err(CodecError::BadSectionLength {
                        plane,
                        expected: 2,
                        got: body.len(),
                    });
                }
                let v = u16::from_le_bytes([body[0], body[1]]);
                if u32::from(v) >> w != 0 {
                    return Err(CodecError::BadConst {
                        plane,
                        value: v,
                        width: w as u8,
                    });
                }
                PlaneDec::Const(v)
            }
            MODE_HUFFMAN => {
                if w > MAX_HUFFMAN_WIDTH {
                    return Err(CodecError::HuffmanTooWide {
                        plane,
                        width: w as u8,
                    });
                }
                PlaneDec::Huff(HuffDecoder::parse(plane, w, n, body, base)?)
            }
            m => return Err(CodecError::BadMode { plane, mode: m }),
        });
    }
    if pos != stored.len() {
        return Err(CodecError::TrailingBytes {
            extra: stored.len() - pos,
        });
    }
    match elem_size {
        1 => merge::<E1>(pp, &layout, &decs, out),
        2 => merge::<E2>(pp, &layout, &decs, out),
        4 => merge::<E4>(pp, &layout, &decs, out),
        _ => merge::<E8>(pp, &layout, &decs, out),
    }
}

/// Decodes the planes tile by tile and reassembles the elements.
fn merge<E: Elem>(
    pp: &PlanesParams,
    layout: &[(u32, u32)],
    decs: &[PlaneDec<'_>],
    out: &mut [u8],
) -> Result<(), CodecError> {
    let cap = (out.len() / E::SIZE).min(TILE_SYMBOLS);
    // Per-thread tile buffers, kept between chunks: every tile overwrites
    // the part it uses before reading it.
    MERGE_BUFS.with_borrow_mut(|bufs| {
        bufs.resize_with(decs.len().max(bufs.len()), Vec::new);
        for b in bufs.iter_mut().take(decs.len()) {
            if b.len() < cap {
                b.resize(cap, 0);
            }
        }
        huffman::with_scratch(|scratch| {
            dispatch::run(MergeOp::<E> {
                pp,
                layout,
                decs,
                out,
                bufs: &mut bufs[..decs.len()],
                scratch,
                elem: std::marker::PhantomData,
            })
        })
    })
}

/// [`merge_tiles`] as an operation for [`dispatch::run`].
struct MergeOp<'a, 'd, E> {
    pp: &'a PlanesParams,
    layout: &'a [(u32, u32)],
    decs: &'a [PlaneDec<'d>],
    out: &'a mut [u8],
    bufs: &'a mut [Vec<u16>],
    scratch: &'a mut huffman::Scratch,
    elem: std::marker::PhantomData<E>,
}

impl<E: Elem> pulp::WithSimd for MergeOp<'_, '_, E> {
    type Output = Result<(), CodecError>;
    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> Self::Output {
        let Self {
            pp,
            layout,
            decs,
            out,
            bufs,
            scratch,
            ..
        } = self;
        merge_tiles::<E>(pp, layout, decs, out, bufs, scratch)
    }
}

thread_local! {
    /// One tile of symbols per plane for the decoder.
    static MERGE_BUFS: std::cell::RefCell<Vec<Vec<u16>>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[inline(always)]
fn merge_tiles<E: Elem>(
    pp: &PlanesParams,
    layout: &[(u32, u32)],
    decs: &[PlaneDec<'_>],
    out: &mut [u8],
    bufs: &mut [Vec<u16>],
    scratch: &mut huffman::Scratch,
) -> Result<(), CodecError> {
    let n = out.len() / E::SIZE;
    let bits = 8 * E::SIZE as u32;
    let cap = n.min(TILE_SYMBOLS);
    let wide = layout.len() != 2;
    let mut acc = vec![0u64; if wide && E::SIZE == 8 { cap } else { 0 }];
    let mut acc32 = vec![0u32; if wide && E::SIZE <= 4 { cap } else { 0 }];
    // F32's usual layouts store the two low bytes raw, BF16's the low byte:
    // those are read in place rather than widened into tile buffers first.
    let raw_low = match (E::SIZE, layout, decs) {
        (4, [_, _, (_, 8), (_, 8)], [_, _, PlaneDec::Raw(x), PlaneDec::Raw(y)]) => {
            x.get(..n).zip(y.get(..n))
        }
        _ => None,
    };
    let raw_low16 = match (E::SIZE, layout, decs) {
        (2, [_, (0, 8)], [_, PlaneDec::Raw(x)]) => x.get(..n),
        _ => None,
    };
    // Planes decoded into the tile buffers (the others are read in place).
    let planes = match (raw_low, raw_low16) {
        (Some(_), _) => 2,
        (_, Some(_)) => 1,
        _ => decs.len(),
    };
    // The merges of 2-plane 16-bit and 4-plane 32-bit elements shift plane
    // 0 (the top bits) up within the element's width, so they drop any bits
    // above its symbols: the Huffman decoder need not clear them.
    let top_shifted_out = matches!((E::SIZE, layout.len()), (2, 2) | (4, 4));
    for (t, out_tile) in out.chunks_mut(TILE_SYMBOLS * E::SIZE).enumerate() {
        let m = out_tile.len() / E::SIZE;
        let first = t * TILE_SYMBOLS;
        let planes_in = decs.iter().zip(bufs.iter_mut()).zip(layout).take(planes);
        for (p, ((dec, buf), &(_, w))) in planes_in.enumerate() {
            let buf = &mut buf[..m];
            match dec {
                PlaneDec::Raw(body) => bits::unpack(body, w, first, buf),
                PlaneDec::Const(v) => buf.fill(*v),
                PlaneDec::Huff(h) if p == 0 && top_shifted_out => {
                    h.decode_tile_unmasked(t, buf, scratch)?
                }
                PlaneDec::Huff(h) => h.decode_tile(t, buf, scratch)?,
            }
        }
        if let ([(s0, _), _], 2) = (layout, E::SIZE) {
            // BF16/F16 with two planes: 16-bit arithmetic vectorizes well.
            match raw_low16 {
                Some(x) => merge2_u16(
                    &bufs[0][..m],
                    &x[first..first + m],
                    *s0,
                    pp.rotate,
                    out_tile,
                ),
                None => merge2_u16(&bufs[0][..m], &bufs[1][..m], *s0, pp.rotate, out_tile),
            }
            continue;
        }
        if let [(s0, _), (s1, _)] = layout {
            // Other 2-plane layouts: no accumulator pass.
            for ((c, &a), &b) in out_tile
                .chunks_exact_mut(E::SIZE)
                .zip(&bufs[0][..m])
                .zip(&bufs[1][..m])
            {
                let r = (u64::from(a) << s0) | (u64::from(b) << s1);
                E::store(if pp.rotate { rotr(r, bits) } else { r }, c);
            }
            continue;
        }
        if let ([(s0, _), (s1, _), (s2, _), (s3, _)], 4) = (layout, E::SIZE) {
            // F32 and other 4-plane 32-bit layouts: one pass, no accumulator.
            let shifts = [*s0, *s1, *s2, *s3];
            let (a, b) = (&bufs[0][..m], &bufs[1][..m]);
            match raw_low {
                Some((x, y)) => {
                    let (x, y) = (&x[first..first + m], &y[first..first + m]);
                    merge4_u32(a, b, x, y, shifts, pp.rotate, out_tile);
                }
                None => {
                    let (x, y) = (&bufs[2][..m], &bufs[3][..m]);
                    merge4_u32(a, b, x, y, shifts, pp.rotate, out_tile);
                }
            }
            continue;
        }
        if E::SIZE <= 4 {
            // u32 accumulators: twice the SIMD width of u64.
            let acc = &mut acc32[..m];
            acc.fill(0);
            for (buf, &(s, _)) in bufs.iter().zip(layout) {
                for (a, &v) in acc.iter_mut().zip(&buf[..m]) {
                    *a |= u32::from(v) << s;
                }
            }
            if pp.rotate {
                for a in acc.iter_mut() {
                    *a = rotr32(*a, bits);
                }
            }
            for (c, &r) in out_tile.chunks_exact_mut(E::SIZE).zip(acc.iter()) {
                E::store(u64::from(r), c);
            }
            continue;
        }
        let acc = &mut acc[..m];
        acc.fill(0);
        for (buf, &(s, _)) in bufs.iter().zip(layout) {
            for (a, &v) in acc.iter_mut().zip(&buf[..m]) {
                *a |= u64::from(v) << s;
            }
        }
        if pp.rotate {
            for (c, &r) in out_tile.chunks_exact_mut(E::SIZE).zip(acc.iter()) {
                E::store(rotr(r, bits), c);
            }
        } else {
            for (c, &r) in out_tile.chunks_exact_mut(E::SIZE).zip(acc.iter()) {
                E::store(r, c);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass raw packing equals extracting the symbols and packing
    /// them, for every element size it serves, every plane (shift, width),
    /// both rotations and lengths around the 8-symbol groups.
    #[test]
    fn one_pass_pack_matches_extract_then_pack() {
        let data: Vec<u8> = (0..4 * 1003u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for elem_size in [2usize, 4] {
            let bits = 8 * elem_size as u32;
            for w in 1..=16u32.min(bits) {
                for shift in 0..=bits - w {
                    for rotate in [false, true] {
                        for n in [0usize, 1, 7, 8, 9, 16, 100, 1003] {
                            let src = PlaneSrc {
                                data: &data[..n * elem_size],
                                elem_size,
                                rotate,
                                shift,
                                w,
                            };
                            // The plain per-element extraction as reference.
                            let mut syms = vec![0u16; n];
                            let d = src.data;
                            match elem_size {
                                2 => extract::<E2>(d, rotate, shift, w, &mut syms),
                                _ => extract::<E4>(d, rotate, shift, w, &mut syms),
                            }
                            let mut want = vec![0xAA];
                            bits::pack(&syms, w, &mut want);
                            let mut got = vec![0xAA];
                            src.pack(0, &mut vec![0u16; n], &mut got);
                            assert_eq!(
                                got, want,
                                "size {elem_size} w {w} s {shift} rot {rotate} n {n}"
                            );
                        }
                    }
                }
            }
        }
    }
}
