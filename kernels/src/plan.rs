//! The launch planner: pure Rust, no CUDA.
//!
//! It turns a sequence of chunks (codec, element size, where the stored
//! bytes go, keystream parameters when encrypted, where the output goes)
//! into *batches*: a byte image of the batch buffer (the chunks' bytes
//! followed by the descriptor tables the kernels read) and the list of
//! kernel launches with their arguments. The same [`Batch`] drives the GPU
//! ([`crate::Decoder`]) and the CPU emulation of the kernels in the tests,
//! so the descriptor layout and launch arguments are checked without a GPU.
//!
//! # Batch buffer layout
//!
//! ```text
//! 0            chunk 0 bytes (16-byte aligned), chunk 1 bytes, ...
//! tables_off   (256-byte aligned) regions, each 16-byte aligned:
//!              ChunkDesc  x chunks        96 bytes each, host-written
//!              PlaneDesc  x planes        32 bytes each, zero, written by tic_planes_parse
//!              WorkItem   x decode blocks  8 bytes each
//!              RawItem    x copy blocks    8 bytes each
//!              u32        x planes chunks  (tic_planes_parse block -> chunk)
//!              KeyDesc    x encrypted     80 bytes each
//!              u32 status x chunks        zero; kernels store the first error
//! ```
//!
//! Layouts match the structs of `kernels/common.cuh` field for field.
//!
//! What the planner does **not** see is the chunks' contents: for an
//! encrypted chunk the plane sections and tile directories only exist on
//! the device after the keystream XOR, so they are parsed there
//! (`tic_planes_parse`). Everything the host knows from the signed header
//! (element counts, codec parameters, lengths) is checked here.

use std::collections::HashMap;

use thiserror::Error;

/// Symbols per tile (the codec's `TILE_SYMBOLS`).
pub const TILE_SYMBOLS: u64 = 65536;
/// Lanes per tile: one per thread of a warp.
pub const LANES: u32 = 32;
/// Entries of a Huffman decode table (12-bit peek).
pub const LUT_ENTRIES: usize = 4096;
/// Bytes of one decode table slot (u16 entries).
pub const LUT_BYTES: u64 = 2 * LUT_ENTRIES as u64;
/// Most planes a `planes` codec may have.
pub const MAX_PLANES: usize = 8;
/// Widest plane that may be Huffman coded.
pub const MAX_HUFFMAN_WIDTH: u8 = 10;
/// Bytes of the Poly1305 tag that ends an encrypted chunk.
pub const TAG_LEN: u64 = 16;
/// Most original bytes in one chunk (SPEC.md §10).
pub const MAX_CHUNK_ORIG_LEN: u64 = 64 << 20;
/// Bytes per block of `tic_copy_raw`.
pub const RAW_SEGMENT: u64 = 65536;
/// Threads per block of `tic_copy_raw`, `tic_chacha20_xor`, `tic_planes_parse`.
pub const AUX_THREADS: u32 = 256;

pub const CHUNK_DESC_BYTES: u64 = 96;
pub const PLANE_DESC_BYTES: u64 = 32;
pub const WORK_ITEM_BYTES: u64 = 8;
pub const RAW_ITEM_BYTES: u64 = 8;
pub const KEY_DESC_BYTES: u64 = 80;
/// Marks a plane that can never be Huffman coded (wider than 10 bits).
pub const NO_SLOT: u32 = u32::MAX;

/// Codec ids (format-spec CODECS.md).
pub const CODEC_RAW: u16 = 0;
pub const CODEC_PLANES: u16 = 1;

/// A chunk or batch the planner cannot accept.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    #[error("codec {id} has no GPU decoder; decode this tensor on the CPU")]
    UnsupportedCodec { id: u16 },
    #[error("invalid `planes` codec parameters: {0}")]
    BadParams(String),
    #[error("element size {0} is not 1, 2, 4 or 8 bytes")]
    BadElementSize(usize),
    #[error("chunk {tag}: {what}")]
    BadChunk { tag: u64, what: String },
    #[error("chunk {tag} needs {need} bytes of staging but a batch holds {capacity}; raise the staging size")]
    ChunkTooLarge { tag: u64, need: u64, capacity: u64 },
    #[error("invalid planner limits: {0}")]
    BadLimits(String),
}

/// The `planes` codec parameters: `[rotate, P, widths[P]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanesParams {
    pub rotate: bool,
    /// Bits per plane, most significant plane first.
    pub widths: Vec<u8>,
}

impl PlanesParams {
    /// Parses and checks the parameter bytes against the element size.
    pub fn parse(params: &[u8], elem_size: usize) -> Result<Self, PlanError> {
        check_elem_size(elem_size)?;
        let bad = |m: String| Err(PlanError::BadParams(m));
        let (rotate, count, widths) = match params {
            [r, p, rest @ ..] => (*r, *p as usize, rest),
            _ => return bad(format!("{} bytes, need at least 2", params.len())),
        };
        let rotate = match rotate {
            0 => false,
            1 => true,
            v => return bad(format!("rotate is {v}, not 0 or 1")),
        };
        if !(1..=MAX_PLANES).contains(&count) {
            return bad(format!("{count} planes, need 1 to 8"));
        }
        if widths.len() != count {
            return bad(format!("{} width bytes for {count} planes", widths.len()));
        }
        if let Some(w) = widths.iter().find(|&&w| !(1..=16).contains(&w)) {
            return bad(format!("plane width {w} outside 1..=16"));
        }
        let total: usize = widths.iter().map(|&w| w as usize).sum();
        if total != 8 * elem_size {
            return bad(format!(
                "plane widths add up to {total} bits but elements have {}",
                8 * elem_size
            ));
        }
        Ok(PlanesParams {
            rotate,
            widths: widths.to_vec(),
        })
    }

    /// Left shift of each plane's symbol within the W-bit word `r`: plane 0
    /// holds the top bits.
    pub fn shifts(&self) -> Vec<u8> {
        let mut left: u32 = self.widths.iter().map(|&w| w as u32).sum();
        self.widths
            .iter()
            .map(|&w| {
                left -= w as u32;
                left as u8
            })
            .collect()
    }

    /// Planes that may be Huffman coded and so need a decode table slot.
    pub fn huffman_capable(&self) -> usize {
        self.widths
            .iter()
            .filter(|&&w| w <= MAX_HUFFMAN_WIDTH)
            .count()
    }
}

/// A tensor codec the GPU decodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Codec {
    Raw,
    Planes(PlanesParams),
}

impl Codec {
    /// The codec for a tensor entry's codec id and parameters.
    pub fn from_spec(id: u16, params: &[u8], elem_size: usize) -> Result<Codec, PlanError> {
        check_elem_size(elem_size)?;
        match id {
            CODEC_RAW if params.is_empty() => Ok(Codec::Raw),
            CODEC_RAW => Err(PlanError::BadParams(
                "the raw codec takes no parameters".into(),
            )),
            CODEC_PLANES => Ok(Codec::Planes(PlanesParams::parse(params, elem_size)?)),
            id => Err(PlanError::UnsupportedCodec { id }),
        }
    }
}

fn check_elem_size(e: usize) -> Result<(), PlanError> {
    match e {
        1 | 2 | 4 | 8 => Ok(()),
        e => Err(PlanError::BadElementSize(e)),
    }
}

/// ChaCha20 parameters of one encrypted chunk: what
/// `tic_format::crypto::keystream_params(key, index, last)` returns.
#[derive(Clone, PartialEq, Eq)]
pub struct Keystream {
    pub key: [u8; 32],
    pub nonce: [u8; 12],
    /// Block counter of the first 64 bytes of ciphertext (1 in tic).
    pub counter: u32,
}

impl std::fmt::Debug for Keystream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystream")
            .field("key", &"<redacted>")
            .field("nonce", &self.nonce)
            .field("counter", &self.counter)
            .finish()
    }
}

/// One chunk to plan.
#[derive(Clone, Debug)]
pub struct ChunkJob<'a> {
    /// The caller's name for the chunk (tic uses the global chunk index);
    /// errors carry it back.
    pub tag: u64,
    pub codec: &'a Codec,
    pub elem_size: usize,
    /// Bytes the chunk decodes to.
    pub orig_len: u64,
    /// Bytes the kernels read: the stored bytes, or for an encrypted chunk
    /// the ciphertext without its tag.
    pub data_len: u64,
    /// Bytes reserved for the chunk in the batch buffer, at least
    /// `data_len`: an encrypted chunk's tag is staged after its ciphertext
    /// (and checked on the host there) but never read by a kernel.
    pub staged_len: u64,
    /// Set for encrypted chunks.
    pub keystream: Option<Keystream>,
    /// Device address of the chunk's first output byte.
    pub out_ptr: u64,
}

/// Sizes that bound a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of one batch buffer (chunk bytes and tables).
    pub staging_bytes: u64,
    /// Chunks per batch (bounds the status readback).
    pub max_chunks: u32,
    /// Decode-table slots per batch (8 KiB of device scratch each).
    pub max_lut_slots: u32,
    /// Tiles (warps) per decode block.
    pub warps_per_block: u32,
    /// Decode tables a decode block may keep in shared memory.
    pub max_shared_tables: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            staging_bytes: 128 << 20,
            max_chunks: 8192,
            max_lut_slots: 2048,
            warps_per_block: 4,
            max_shared_tables: 8,
        }
    }
}

impl Limits {
    fn check(&self) -> Result<(), PlanError> {
        let bad = |m: &str| Err(PlanError::BadLimits(m.into()));
        if self.staging_bytes < 4096 || self.staging_bytes > (1 << 40) {
            return bad("staging_bytes must be between 4 KiB and 1 TiB");
        }
        if self.max_chunks == 0 || self.max_lut_slots == 0 {
            return bad("max_chunks and max_lut_slots must be at least 1");
        }
        if !(1..=32).contains(&self.warps_per_block) {
            return bad("warps_per_block must be 1..=32");
        }
        if self.max_shared_tables > MAX_PLANES as u32 {
            return bad("max_shared_tables must be at most 8");
        }
        Ok(())
    }

    /// The largest `data_len` a chunk may have to fit an empty batch.
    pub fn max_chunk_data(&self) -> u64 {
        self.staging_bytes.saturating_sub(self.chunk_overhead())
    }

    /// The most batch-buffer bytes one chunk can need besides its data: its
    /// alignment and its share of the tables, for a chunk with the most
    /// tiles and tables a chunk can have. A batch of `k` chunks fits in
    /// the sum of their staged bytes plus `k` times this.
    pub fn chunk_overhead(&self) -> u64 {
        let t = Tables {
            chunks: 1,
            planes: MAX_PLANES as u64,
            work: (MAX_CHUNK_ORIG_LEN / TILE_SYMBOLS).div_ceil(self.warps_per_block as u64),
            raw: MAX_CHUNK_ORIG_LEN.div_ceil(RAW_SEGMENT),
            parse: 1,
            keys: 1,
        };
        align(t.size(), 256) + 256
    }
}

/// Counts of every table of a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tables {
    chunks: u64,
    planes: u64,
    work: u64,
    raw: u64,
    parse: u64,
    keys: u64,
}

/// Offsets of the table regions, relative to `tables_off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLayout {
    pub chunks: u64,
    pub planes: u64,
    pub work: u64,
    pub raw: u64,
    pub parse: u64,
    pub keys: u64,
    pub status: u64,
    pub len: u64,
}

impl Tables {
    fn layout(&self) -> TableLayout {
        let mut at = 0u64;
        let mut region = |bytes: u64| {
            let off = at;
            at = align(at + bytes, 16);
            off
        };
        let chunks = region(self.chunks * CHUNK_DESC_BYTES);
        let planes = region(self.planes * PLANE_DESC_BYTES);
        let work = region(self.work * WORK_ITEM_BYTES);
        let raw = region(self.raw * RAW_ITEM_BYTES);
        let parse = region(self.parse * 4);
        let keys = region(self.keys * KEY_DESC_BYTES);
        let status = region(self.chunks * 4);
        TableLayout {
            chunks,
            planes,
            work,
            raw,
            parse,
            keys,
            status,
            len: at,
        }
    }
    fn size(&self) -> u64 {
        self.layout().len
    }
}

fn align(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

#[derive(Clone, Debug)]
struct Planned {
    tag: u64,
    codec: Codec,
    elem_size: u32,
    n: u32,
    in_off: u64,
    data_len: u64,
    out_ptr: u64,
    keystream: Option<Keystream>,
    plane_base: u32,
    lut_slots: [u32; MAX_PLANES],
    tiles: u32,
}

/// Collects chunks into one batch at a time.
#[derive(Debug)]
pub struct BatchBuilder {
    limits: Limits,
    chunks: Vec<Planned>,
    payload_end: u64,
    tables: Tables,
    lut_slots: u32,
}

/// A kernel of `kernels/*.cu`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Chacha20Xor,
    CopyRaw,
    PlanesParse,
    /// Chunks of up to 2 planes (BF16 and F16 layouts).
    PlanesDecode2,
    /// Chunks of 3 or 4 planes (F32 layouts).
    PlanesDecode4,
    /// Any chunk (up to 8 planes).
    PlanesDecode,
}

impl Kernel {
    pub const ALL: [Kernel; 6] = [
        Kernel::Chacha20Xor,
        Kernel::CopyRaw,
        Kernel::PlanesParse,
        Kernel::PlanesDecode2,
        Kernel::PlanesDecode4,
        Kernel::PlanesDecode,
    ];
    /// The `extern "C"` name in the CUBIN.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Chacha20Xor => "tic_chacha20_xor",
            Kernel::CopyRaw => "tic_copy_raw",
            Kernel::PlanesParse => "tic_planes_parse",
            Kernel::PlanesDecode2 => "tic_planes_decode2",
            Kernel::PlanesDecode4 => "tic_planes_decode4",
            Kernel::PlanesDecode => "tic_planes_decode",
        }
    }
}

impl Kernel {
    /// The most planes a decode kernel handles (0 for the other kernels).
    pub fn max_planes(self) -> u32 {
        match self {
            Kernel::PlanesDecode2 => 2,
            Kernel::PlanesDecode4 => 4,
            Kernel::PlanesDecode => MAX_PLANES as u32,
            _ => 0,
        }
    }
}

/// The decode kernel for chunks of `planes` planes.
fn decode_kernel(planes: usize) -> Kernel {
    match planes {
        0..=2 => Kernel::PlanesDecode2,
        3..=4 => Kernel::PlanesDecode4,
        _ => Kernel::PlanesDecode,
    }
}

/// One kernel argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// A pointer: the batch buffer's device address plus this offset.
    Batch(u64),
    /// A pointer: the decode-table scratch.
    Luts,
    U32(u32),
    U64(u64),
}

/// One kernel launch: a 1-D grid of 1-D blocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub kernel: Kernel,
    pub grid: u32,
    pub block: u32,
    pub shared_bytes: u32,
    pub args: Vec<Arg>,
}

/// A planned batch: where each chunk's bytes go, the descriptor tables and
/// the launches. Copy each chunk's bytes to `inputs[i].0` in the staging
/// buffer, `tables` to `tables_off`, then `total_len` bytes to the device.
#[derive(Clone, Debug)]
pub struct Batch {
    /// The callers' tags, in chunk order (status `i` belongs to `tags[i]`).
    pub tags: Vec<u64>,
    /// (offset in the batch buffer, bytes) of each chunk's data.
    pub inputs: Vec<(u64, u64)>,
    pub tables_off: u64,
    pub layout: TableLayout,
    pub tables: Vec<u8>,
    pub total_len: u64,
    /// Decode-table slots the batch uses.
    pub lut_slots: u32,
    pub launches: Vec<Launch>,
}

impl Batch {
    /// Offset of the u32 status array in the batch buffer.
    pub fn status_off(&self) -> u64 {
        self.tables_off + self.layout.status
    }
    /// Offset of the ChunkDesc table in the batch buffer.
    pub fn chunk_desc_off(&self) -> u64 {
        self.tables_off + self.layout.chunks
    }
    /// Decodes the status array read back from the device: the first failing
    /// chunk (in batch order) with its error.
    pub fn first_error(&self, status: &[u8]) -> Option<(u64, StreamError)> {
        status
            .chunks_exact(4)
            .take(self.tags.len())
            .enumerate()
            .find_map(|(i, s)| {
                let code = u32::from_le_bytes(s.try_into().expect("4 bytes"));
                (code != 0).then(|| (self.tags[i], StreamError::from_code(code)))
            })
    }
}

impl BatchBuilder {
    pub fn new(limits: Limits) -> Result<Self, PlanError> {
        limits.check()?;
        Ok(BatchBuilder {
            limits,
            chunks: Vec::new(),
            payload_end: 0,
            tables: Tables::default(),
            lut_slots: 0,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    pub fn len(&self) -> usize {
        self.chunks.len()
    }
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Adds a chunk to the batch. `Ok(Some(offset))`: copy the chunk's data
    /// to that offset of the staging buffer. `Ok(None)`: the batch is full;
    /// [`finish`](Self::finish) it and add the chunk to the next one. `Err`:
    /// the chunk is invalid or larger than any batch.
    pub fn try_add(&mut self, job: &ChunkJob<'_>) -> Result<Option<u64>, PlanError> {
        let bad = |what: String| PlanError::BadChunk { tag: job.tag, what };
        check_elem_size(job.elem_size)?;
        let e = job.elem_size as u64;
        if job.orig_len == 0 || !job.orig_len.is_multiple_of(e) || job.orig_len > MAX_CHUNK_ORIG_LEN
        {
            return Err(bad(format!(
                "{} original bytes is not 1 to {} whole elements of {e} bytes",
                job.orig_len,
                MAX_CHUNK_ORIG_LEN / e
            )));
        }
        if !job.out_ptr.is_multiple_of(e) {
            return Err(bad(format!(
                "output address {:#x} is not aligned to the {e}-byte element",
                job.out_ptr
            )));
        }
        if job.out_ptr.checked_add(job.orig_len).is_none() {
            return Err(bad("output range overflows".into()));
        }
        if job.data_len > u32::MAX as u64 {
            return Err(bad(format!("{} stored bytes is too many", job.data_len)));
        }
        if job.staged_len < job.data_len || job.staged_len - job.data_len > 4096 {
            return Err(bad(format!(
                "{} staged bytes for {} stored bytes",
                job.staged_len, job.data_len
            )));
        }
        let n = job.orig_len / e;
        let mut add = Tables {
            chunks: 1,
            keys: job.keystream.is_some() as u64,
            ..Tables::default()
        };
        let mut tiles = 0u32;
        let mut slots_needed = 0u32;
        match job.codec {
            Codec::Raw => {
                if job.data_len != job.orig_len {
                    return Err(bad(format!(
                        "raw chunk holds {} bytes but decodes to {}",
                        job.data_len, job.orig_len
                    )));
                }
                add.raw = job.orig_len.div_ceil(RAW_SEGMENT);
            }
            Codec::Planes(p) => {
                if p.widths.iter().map(|&w| w as u64).sum::<u64>() != 8 * e {
                    return Err(PlanError::BadParams(format!(
                        "plane widths do not add up to {} bits",
                        8 * e
                    )));
                }
                tiles = n.div_ceil(TILE_SYMBOLS) as u32;
                add.planes = p.widths.len() as u64;
                add.work = (tiles as u64).div_ceil(self.limits.warps_per_block as u64);
                add.parse = 1;
                slots_needed = p.huffman_capable() as u32;
            }
        }
        let in_off = align(self.payload_end, 16);
        let payload_end = in_off + job.staged_len;
        let tables = Tables {
            chunks: self.tables.chunks + add.chunks,
            planes: self.tables.planes + add.planes,
            work: self.tables.work + add.work,
            raw: self.tables.raw + add.raw,
            parse: self.tables.parse + add.parse,
            keys: self.tables.keys + add.keys,
        };
        let total = align(payload_end, 256) + tables.size();
        let fits = total <= self.limits.staging_bytes
            && tables.chunks <= self.limits.max_chunks as u64
            && self.lut_slots + slots_needed <= self.limits.max_lut_slots;
        if !fits {
            if self.chunks.is_empty() {
                return Err(PlanError::ChunkTooLarge {
                    tag: job.tag,
                    need: total,
                    capacity: self.limits.staging_bytes,
                });
            }
            return Ok(None);
        }
        let mut lut_slots = [NO_SLOT; MAX_PLANES];
        if let Codec::Planes(p) = job.codec {
            for (slot, &w) in lut_slots.iter_mut().zip(&p.widths) {
                if w <= MAX_HUFFMAN_WIDTH {
                    *slot = self.lut_slots;
                    self.lut_slots += 1;
                }
            }
        }
        self.chunks.push(Planned {
            tag: job.tag,
            codec: job.codec.clone(),
            elem_size: e as u32,
            n: n as u32,
            in_off,
            data_len: job.data_len,
            out_ptr: job.out_ptr,
            keystream: job.keystream.clone(),
            plane_base: self.tables.planes as u32,
            lut_slots,
            tiles,
        });
        self.tables = tables;
        self.payload_end = payload_end;
        Ok(Some(in_off))
    }

    /// Lays out the tables and launches of the chunks added so far, and
    /// empties the builder for the next batch.
    pub fn finish(&mut self) -> Batch {
        let chunks = std::mem::take(&mut self.chunks);
        let tables = std::mem::take(&mut self.tables);
        let lut_slots = std::mem::take(&mut self.lut_slots);
        let payload_end = std::mem::take(&mut self.payload_end);
        let tables_off = align(payload_end, 256);
        let layout = tables.layout();
        let mut t = vec![0u8; layout.len as usize];

        let mut work = Vec::new();
        let mut raw = Vec::new();
        let mut parse = Vec::new();
        let mut keys = Vec::new();
        let mut total_blocks = 0u64;
        // Per decode kernel, the most tables one of its chunks may need.
        let mut max_capable: HashMap<Kernel, u32> = HashMap::new();
        for (ci, c) in chunks.iter().enumerate() {
            let ci = ci as u32;
            let d = &mut t[(layout.chunks + ci as u64 * CHUNK_DESC_BYTES) as usize..]
                [..CHUNK_DESC_BYTES as usize];
            put64(d, 0, c.out_ptr);
            put64(d, 8, c.in_off);
            put64(d, 16, c.data_len);
            put32(d, 24, c.n);
            put32(d, 28, c.elem_size);
            match &c.codec {
                Codec::Raw => {
                    put32(d, 32, CODEC_RAW as u32);
                    for s in 0..(c.n as u64 * c.elem_size as u64).div_ceil(RAW_SEGMENT) {
                        raw.push((ci, s as u32));
                    }
                }
                Codec::Planes(p) => {
                    put32(d, 32, CODEC_PLANES as u32);
                    put32(d, 36, p.rotate as u32);
                    put32(d, 40, p.widths.len() as u32);
                    put32(d, 44, c.plane_base);
                    for (i, (&w, s)) in p.widths.iter().zip(p.shifts()).enumerate() {
                        d[48 + i] = w;
                        d[56 + i] = s;
                    }
                    parse.push(ci);
                    let wpb = self.limits.warps_per_block;
                    let group = decode_kernel(p.widths.len());
                    for first in (0..c.tiles).step_by(wpb as usize) {
                        work.push((group, ci, first));
                    }
                    let cap = max_capable.entry(group).or_default();
                    *cap = (*cap).max(p.huffman_capable() as u32);
                }
            }
            for (i, s) in c.lut_slots.iter().enumerate() {
                put32(d, 64 + 4 * i, *s);
            }
            if let Some(k) = &c.keystream {
                keys.push((ci, c, k, total_blocks));
                total_blocks += c.data_len.div_ceil(64);
            }
        }
        // Work items grouped by decode kernel (each sized for its plane
        // count: fewer registers, more warps per SM), chunk order kept.
        work.sort_by_key(|w| w.0 as u8);
        for (i, (_, ci, first)) in work.iter().enumerate() {
            let at = (layout.work + i as u64 * WORK_ITEM_BYTES) as usize;
            put32(&mut t, at, *ci);
            put32(&mut t, at + 4, *first);
        }
        for (i, (ci, seg)) in raw.iter().enumerate() {
            let at = (layout.raw + i as u64 * RAW_ITEM_BYTES) as usize;
            put32(&mut t, at, *ci);
            put32(&mut t, at + 4, *seg);
        }
        for (i, ci) in parse.iter().enumerate() {
            put32(&mut t, (layout.parse + 4 * i as u64) as usize, *ci);
        }
        for (i, (ci, c, k, first_block)) in keys.iter().enumerate() {
            let d = &mut t[(layout.keys + i as u64 * KEY_DESC_BYTES) as usize..]
                [..KEY_DESC_BYTES as usize];
            d[0..32].copy_from_slice(&k.key);
            d[32..44].copy_from_slice(&k.nonce);
            put32(d, 44, k.counter);
            put64(d, 48, c.in_off);
            put64(d, 56, c.data_len);
            put64(d, 64, *first_block);
            put32(d, 72, *ci);
        }

        let total_len = tables_off + layout.len;
        let at = |off: u64| Arg::Batch(tables_off + off);
        let status = at(layout.status);
        let mut launches = Vec::new();
        if !keys.is_empty() {
            launches.push(Launch {
                kernel: Kernel::Chacha20Xor,
                grid: grid(total_blocks.div_ceil(AUX_THREADS as u64)),
                block: AUX_THREADS,
                shared_bytes: 0,
                args: vec![
                    Arg::Batch(0),
                    Arg::U64(total_len),
                    at(layout.keys),
                    Arg::U32(keys.len() as u32),
                    Arg::U64(total_blocks),
                    status,
                ],
            });
        }
        if !raw.is_empty() {
            launches.push(Launch {
                kernel: Kernel::CopyRaw,
                grid: grid(raw.len() as u64),
                block: AUX_THREADS,
                shared_bytes: 0,
                args: vec![
                    Arg::Batch(0),
                    at(layout.chunks),
                    at(layout.raw),
                    Arg::U32(raw.len() as u32),
                    status,
                ],
            });
        }
        if !parse.is_empty() {
            launches.push(Launch {
                kernel: Kernel::PlanesParse,
                grid: grid(parse.len() as u64),
                block: AUX_THREADS,
                shared_bytes: 0,
                args: vec![
                    Arg::Batch(0),
                    at(layout.chunks),
                    at(layout.parse),
                    Arg::U32(parse.len() as u32),
                    at(layout.planes),
                    Arg::Luts,
                    Arg::U32(lut_slots),
                    status,
                ],
            });
            let mut start = 0;
            while start < work.len() {
                let kernel = work[start].0;
                let end = start + work[start..].iter().take_while(|w| w.0 == kernel).count();
                let nshared = max_capable[&kernel]
                    .min(self.limits.max_shared_tables)
                    .min(kernel.max_planes());
                launches.push(Launch {
                    kernel,
                    grid: grid((end - start) as u64),
                    block: LANES * self.limits.warps_per_block,
                    shared_bytes: nshared * LUT_BYTES as u32,
                    args: vec![
                        Arg::Batch(0),
                        at(layout.chunks),
                        at(layout.planes),
                        Arg::Luts,
                        Arg::U32(lut_slots),
                        Arg::U32(nshared),
                        at(layout.work + start as u64 * WORK_ITEM_BYTES),
                        Arg::U32((end - start) as u32),
                        status,
                    ],
                });
                start = end;
            }
        }
        Batch {
            tags: chunks.iter().map(|c| c.tag).collect(),
            inputs: chunks.iter().map(|c| (c.in_off, c.data_len)).collect(),
            tables_off,
            layout,
            tables: t,
            total_len,
            lut_slots,
            launches,
        }
    }
}

fn grid(blocks: u64) -> u32 {
    // Batches are bounded by the staging size, far below 2^31 blocks.
    u32::try_from(blocks).expect("grid size fits u32")
}

fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// What a kernel found wrong with a chunk's stream (the status codes of
/// `kernels/common.cuh`). The chunk passed its SHA-256 check, so these mean
/// the signed stream is malformed (a writer bug) or the decoder is wrong.
#[derive(Clone, Copy, Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamError {
    #[error("the launch descriptors are inconsistent (a bug in tic's planner)")]
    Descriptor,
    #[error("a plane section header runs past the end of the chunk")]
    Section,
    #[error("a plane has an unknown coding mode")]
    Mode,
    #[error("a raw plane's length is not ceil(n*w/8) bytes")]
    RawLength,
    #[error("a constant plane is malformed or its value does not fit the plane")]
    Const,
    #[error("a Huffman-coded plane is wider than 10 bits")]
    HuffmanWidth,
    #[error("a Huffman table is truncated or names symbols outside the plane")]
    HuffmanTable,
    #[error("a Huffman code length exceeds 12")]
    CodeLength,
    #[error("Huffman code lengths are over-subscribed")]
    Oversubscribed,
    #[error("a tile directory does not tile the lane data area")]
    TileDirectory,
    #[error("bytes follow the last plane section")]
    Trailing,
    #[error("a lane holds a bit pattern that is not a code")]
    BadCode,
    #[error("a lane ends before its last symbol")]
    LaneOverrun,
    #[error("a lane has unused bytes after its last symbol")]
    LaneTrailing,
    #[error("a raw chunk's length differs from its original length")]
    RawChunkLength,
    #[error("an encrypted chunk's range lies outside the batch buffer")]
    Keystream,
    #[error("unknown device status code {0}")]
    Unknown(u32),
}

impl StreamError {
    pub fn from_code(code: u32) -> StreamError {
        use StreamError::*;
        match code {
            1 => Descriptor,
            2 => Section,
            3 => Mode,
            4 => RawLength,
            5 => Const,
            6 => HuffmanWidth,
            7 => HuffmanTable,
            8 => CodeLength,
            9 => Oversubscribed,
            10 => TileDirectory,
            11 => Trailing,
            12 => BadCode,
            13 => LaneOverrun,
            14 => LaneTrailing,
            15 => RawChunkLength,
            16 => Keystream,
            c => Unknown(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get32(b: &[u8], at: u64) -> u32 {
        u32::from_le_bytes(b[at as usize..at as usize + 4].try_into().unwrap())
    }
    fn get64(b: &[u8], at: u64) -> u64 {
        u64::from_le_bytes(b[at as usize..at as usize + 8].try_into().unwrap())
    }

    fn bf16_planes() -> Codec {
        // rotate, 3 planes: 8-bit exponent, 4 + 4 bits of sign/mantissa
        Codec::from_spec(CODEC_PLANES, &[1, 3, 8, 4, 4], 2).unwrap()
    }

    fn job(tag: u64, codec: &Codec, e: usize, orig: u64, data: u64, out: u64) -> ChunkJob<'_> {
        ChunkJob {
            tag,
            codec,
            elem_size: e,
            orig_len: orig,
            data_len: data,
            staged_len: data,
            keystream: None,
            out_ptr: out,
        }
    }

    #[test]
    fn planes_params_parse_and_reject() {
        let p = PlanesParams::parse(&[1, 3, 8, 4, 4], 2).unwrap();
        assert!(p.rotate);
        assert_eq!(p.widths, vec![8, 4, 4]);
        assert_eq!(p.shifts(), vec![8, 4, 0]);
        assert_eq!(p.huffman_capable(), 3);
        let p = PlanesParams::parse(&[0, 2, 16, 16], 4).unwrap();
        assert_eq!(p.shifts(), vec![16, 0]);
        assert_eq!(p.huffman_capable(), 0);
        let p = PlanesParams::parse(&[0, 4, 16, 16, 16, 16], 8).unwrap();
        assert_eq!(p.shifts(), vec![48, 32, 16, 0]);
        for (bytes, e) in [
            (&[][..], 2),
            (&[2, 1, 16][..], 2),                        // rotate not 0/1
            (&[0, 0][..], 2),                            // no planes
            (&[0, 9, 1, 1, 1, 1, 1, 1, 1, 1, 8][..], 2), // 9 planes
            (&[0, 2, 8][..], 2),                         // missing width
            (&[0, 2, 8, 8, 8][..], 2),                   // extra byte
            (&[0, 2, 0, 16][..], 2),                     // zero width
            (&[0, 1, 17][..], 2),                        // too wide
            (&[0, 2, 8, 7][..], 2),                      // sums to 15
            (&[0, 2, 16, 16][..], 8),                    // 32 of 64 bits
        ] {
            assert!(
                matches!(PlanesParams::parse(bytes, e), Err(PlanError::BadParams(_))),
                "{bytes:?} accepted"
            );
        }
        assert_eq!(
            PlanesParams::parse(&[0, 1, 8], 3),
            Err(PlanError::BadElementSize(3))
        );
        assert_eq!(
            Codec::from_spec(7, &[], 2),
            Err(PlanError::UnsupportedCodec { id: 7 })
        );
        assert!(Codec::from_spec(CODEC_RAW, &[0], 2).is_err());
        assert_eq!(Codec::from_spec(CODEC_RAW, &[], 2), Ok(Codec::Raw));
    }

    /// Chunks go to the decode kernel sized for their plane count; each
    /// launch covers one contiguous run of work items.
    #[test]
    fn decode_work_is_grouped_by_plane_count() {
        let two = Codec::from_spec(CODEC_PLANES, &[1, 2, 10, 6], 2).unwrap();
        let four = Codec::from_spec(CODEC_PLANES, &[1, 4, 9, 7, 8, 8], 4).unwrap();
        let eight = Codec::from_spec(CODEC_PLANES, &[0, 8, 8, 8, 8, 8, 8, 8, 8, 8], 8).unwrap();
        let mut b = BatchBuilder::new(Limits::default()).unwrap();
        // (codec, element size, tiles), in the order added.
        let chunks = [(&two, 2, 3), (&eight, 8, 1), (&two, 2, 5), (&four, 4, 2)];
        for (tag, &(codec, e, tiles)) in chunks.iter().enumerate() {
            let orig = tiles * TILE_SYMBOLS * e as u64;
            let out = 1 << 30 | (tag as u64) << 26;
            b.try_add(&job(tag as u64, codec, e, orig, 1000, out))
                .unwrap()
                .unwrap();
        }
        let batch = b.finish();
        let t = &batch.tables;
        let decodes: Vec<&Launch> = batch
            .launches
            .iter()
            .filter(|l| l.kernel.max_planes() > 0)
            .collect();
        let kinds: Vec<Kernel> = decodes.iter().map(|l| l.kernel).collect();
        assert_eq!(
            kinds,
            [
                Kernel::PlanesDecode2,
                Kernel::PlanesDecode4,
                Kernel::PlanesDecode
            ]
        );
        let work_at = |a: &Arg| match *a {
            Arg::Batch(off) => off - batch.tables_off,
            ref other => panic!("work argument {other:?}"),
        };
        let mut next = batch.layout.work;
        for l in &decodes {
            assert_eq!(
                work_at(&l.args[6]),
                next,
                "{:?} starts where the last ended",
                l.kernel
            );
            let Arg::U32(n) = l.args[7] else { panic!() };
            assert_eq!(l.grid, n);
            for i in 0..n as u64 {
                let chunk = get32(t, next + i * WORK_ITEM_BYTES) as usize;
                let planes = match chunks[chunk].0 {
                    Codec::Planes(p) => p.widths.len() as u32,
                    Codec::Raw => panic!(),
                };
                assert!(
                    planes <= l.kernel.max_planes(),
                    "chunk {chunk} in {:?}",
                    l.kernel
                );
                assert!(
                    planes > l.kernel.max_planes() / 2,
                    "chunk {chunk} in {:?}",
                    l.kernel
                );
            }
            next += n as u64 * WORK_ITEM_BYTES;
        }
        // Every tile in exactly one work item: 3 + 5 tiles of 2 planes in
        // blocks of 4 (1 + 2 items), 2 tiles of 4 planes (1), 1 of 8 (1).
        assert_eq!(next, batch.layout.work + 5 * WORK_ITEM_BYTES);
        // Shared memory for the tables of each kernel's own chunks: every
        // plane of these layouts is narrow enough for Huffman coding.
        let shared: Vec<u32> = decodes.iter().map(|l| l.shared_bytes).collect();
        assert_eq!(shared, [2 * 8192, 4 * 8192, 8 * 8192]);
    }

    /// `chunk_overhead` bounds what a chunk adds to a batch besides its
    /// bytes, whatever the chunks: a batch sized as the sum of the chunks'
    /// bytes plus that per chunk (and 16 for alignment) takes them all.
    #[test]
    fn chunk_overhead_bounds_every_batch() {
        let wide = Codec::from_spec(CODEC_PLANES, &[0, 8, 8, 8, 8, 8, 8, 8, 8, 8], 8).unwrap();
        let bf16 = Codec::from_spec(CODEC_PLANES, &[1, 2, 10, 6], 2).unwrap();
        let key = Keystream {
            key: [1; 32],
            nonce: [2; 12],
            counter: 1,
        };
        /// Codec, element size, original bytes, stored bytes, encrypted.
        type Chunk<'c> = (&'c Codec, usize, u64, u64, bool);
        let mixes: [Vec<Chunk>; 4] = [
            vec![
                (
                    &Codec::Raw,
                    1,
                    MAX_CHUNK_ORIG_LEN,
                    MAX_CHUNK_ORIG_LEN,
                    false
                );
                200
            ],
            vec![(&wide, 8, MAX_CHUNK_ORIG_LEN, 1, true); 300],
            vec![(&bf16, 2, 2, 3, false); 1000],
            (0..500)
                .map(|i| match i % 3 {
                    0 => (&Codec::Raw, 4, 4 * (i + 1), 4 * (i + 1), i % 2 == 0),
                    1 => (&bf16, 2, 1 << 21, 1 << 20, true),
                    _ => (&wide, 8, 8 * 65537, 7, false),
                })
                .collect(),
        ];
        for (m, mix) in mixes.iter().enumerate() {
            let base = Limits::default();
            let data: u64 = mix.iter().map(|c| c.3).sum();
            let limits = Limits {
                staging_bytes: data + mix.len() as u64 * (base.chunk_overhead() + 16),
                max_chunks: mix.len() as u32,
                max_lut_slots: 8 * mix.len() as u32,
                ..base
            };
            let mut b = BatchBuilder::new(limits).unwrap();
            let mut out = 0u64;
            for (i, &(codec, e, orig, stored, encrypted)) in mix.iter().enumerate() {
                let mut j = job(i as u64, codec, e, orig, stored, out);
                j.keystream = encrypted.then(|| key.clone());
                assert!(
                    b.try_add(&j).unwrap().is_some(),
                    "mix {m}: chunk {i} did not fit"
                );
                out += orig.next_multiple_of(8);
            }
            assert!(b.finish().total_len <= limits.staging_bytes, "mix {m}");
        }
    }

    #[test]
    fn layout_of_a_mixed_batch() {
        let planes = bf16_planes();
        let raw = Codec::Raw;
        let mut b = BatchBuilder::new(Limits::default()).unwrap();
        // 200_000 BF16 elements: 4 tiles (3 full + 1 partial) -> 1 work item.
        let n = 200_000u64;
        assert_eq!(
            b.try_add(&job(10, &planes, 2, 2 * n, 1000, 0x1000))
                .unwrap(),
            Some(0)
        );
        // Raw chunk of 70_000 bytes: 2 segments; its data starts 16-aligned.
        assert_eq!(
            b.try_add(&job(11, &raw, 1, 70_000, 70_000, 0x9_0000))
                .unwrap(),
            Some(1008)
        );
        // Encrypted planes chunk with 9 tiles -> 3 work items of 4 warps.
        let mut j = job(12, &planes, 2, 2 * 9 * 65536 - 2, 333, 0x20_0000);
        j.keystream = Some(Keystream {
            key: [7; 32],
            nonce: [9; 12],
            counter: 1,
        });
        assert_eq!(b.try_add(&j).unwrap(), Some(align(1008 + 70_000, 16)));
        let batch = b.finish();
        assert!(b.is_empty());

        assert_eq!(batch.tags, vec![10, 11, 12]);
        assert_eq!(batch.inputs, vec![(0, 1000), (1008, 70_000), (71_008, 333)]);
        assert_eq!(batch.tables_off, align(71_008 + 333, 256));
        assert_eq!(batch.lut_slots, 6);
        let l = batch.layout;
        assert_eq!(l.chunks, 0);
        assert_eq!(l.planes, 3 * 96);
        assert_eq!(l.work, 3 * 96 + 6 * 32);
        assert_eq!(l.raw, l.work + 4 * 8);
        assert_eq!(l.parse, l.raw + 2 * 8);
        assert_eq!(l.keys, l.parse + 16);
        assert_eq!(l.status, l.keys + 80);
        assert_eq!(l.len, l.status + 16);
        assert_eq!(batch.total_len, batch.tables_off + l.len);
        assert_eq!(batch.status_off(), batch.tables_off + l.status);
        let t = &batch.tables;

        // ChunkDesc 0: planes BF16.
        assert_eq!(get64(t, 0), 0x1000);
        assert_eq!(get64(t, 8), 0);
        assert_eq!(get64(t, 16), 1000);
        assert_eq!(get32(t, 24), n as u32);
        assert_eq!(get32(t, 28), 2);
        assert_eq!(get32(t, 32), 1);
        assert_eq!(get32(t, 36), 1);
        assert_eq!(get32(t, 40), 3);
        assert_eq!(get32(t, 44), 0);
        assert_eq!(&t[48..56], &[8, 4, 4, 0, 0, 0, 0, 0]);
        assert_eq!(&t[56..64], &[8, 4, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            (0..8).map(|i| get32(t, 64 + 4 * i)).collect::<Vec<_>>(),
            vec![0, 1, 2, NO_SLOT, NO_SLOT, NO_SLOT, NO_SLOT, NO_SLOT]
        );
        // ChunkDesc 1: raw.
        assert_eq!(get64(t, 96), 0x9_0000);
        assert_eq!(get64(t, 96 + 8), 1008);
        assert_eq!(get32(t, 96 + 24), 70_000);
        assert_eq!(get32(t, 96 + 28), 1);
        assert_eq!(get32(t, 96 + 32), 0);
        assert_eq!(get32(t, 96 + 64), NO_SLOT);
        // ChunkDesc 2: plane_base after chunk 0's three planes, slots 3..6.
        assert_eq!(get32(t, 192 + 44), 3);
        assert_eq!(get32(t, 192 + 64), 3);
        assert_eq!(get32(t, 192 + 72), 5);
        // Work items: chunk 0 tile 0; chunk 2 tiles 0, 4, 8.
        let work: Vec<_> = (0..4)
            .map(|i| (get32(t, l.work + 8 * i), get32(t, l.work + 8 * i + 4)))
            .collect();
        assert_eq!(work, vec![(0, 0), (2, 0), (2, 4), (2, 8)]);
        let raw_items: Vec<_> = (0..2)
            .map(|i| (get32(t, l.raw + 8 * i), get32(t, l.raw + 8 * i + 4)))
            .collect();
        assert_eq!(raw_items, vec![(1, 0), (1, 1)]);
        assert_eq!((get32(t, l.parse), get32(t, l.parse + 4)), (0, 2));
        // KeyDesc.
        let k = l.keys as usize;
        assert_eq!(&t[k..k + 32], &[7; 32]);
        assert_eq!(&t[k + 32..k + 44], &[9; 12]);
        assert_eq!(get32(t, l.keys + 44), 1);
        assert_eq!(get64(t, l.keys + 48), 71_008);
        assert_eq!(get64(t, l.keys + 56), 333);
        assert_eq!(get64(t, l.keys + 64), 0);
        assert_eq!(get32(t, l.keys + 72), 2);
        // Plane descs and statuses start zeroed.
        assert!(t[l.planes as usize..l.work as usize]
            .iter()
            .all(|&b| b == 0));
        assert!(t[l.status as usize..].iter().all(|&b| b == 0));

        let kinds: Vec<_> = batch.launches.iter().map(|l| l.kernel).collect();
        assert_eq!(
            kinds,
            vec![
                Kernel::Chacha20Xor,
                Kernel::CopyRaw,
                Kernel::PlanesParse,
                // The chunk has 3 planes.
                Kernel::PlanesDecode4
            ]
        );
        let ch = &batch.launches[0];
        assert_eq!(ch.grid, 1); // 6 blocks of 64 bytes
        assert_eq!(ch.args[4], Arg::U64(333u64.div_ceil(64)));
        let dec = &batch.launches[3];
        assert_eq!(dec.grid, 4);
        assert_eq!(dec.block, 128);
        assert_eq!(dec.shared_bytes, 3 * 8192);
        assert_eq!(dec.args[4], Arg::U32(6));
        assert_eq!(dec.args[5], Arg::U32(3));
        assert_eq!(dec.args[8], Arg::Batch(batch.status_off()));
    }

    #[test]
    fn keystream_blocks_accumulate() {
        let raw = Codec::Raw;
        let mut b = BatchBuilder::new(Limits::default()).unwrap();
        for (i, len) in [100u64, 64, 1].iter().enumerate() {
            let mut j = job(i as u64, &raw, 1, *len, *len, 4096 * i as u64);
            j.keystream = Some(Keystream {
                key: [i as u8; 32],
                nonce: [0; 12],
                counter: 1,
            });
            b.try_add(&j).unwrap().unwrap();
        }
        let batch = b.finish();
        let firsts: Vec<_> = (0..3)
            .map(|i| get64(&batch.tables, batch.layout.keys + 80 * i + 64))
            .collect();
        assert_eq!(firsts, vec![0, 2, 3]);
        assert_eq!(batch.launches[0].args[4], Arg::U64(4));
    }

    #[test]
    fn batches_split_on_every_limit() {
        let planes = bf16_planes();
        let raw = Codec::Raw;
        // Staging: a second 5000-byte chunk does not fit.
        let limits = Limits {
            staging_bytes: 8192,
            ..Limits::default()
        };
        let mut b = BatchBuilder::new(limits).unwrap();
        assert!(b
            .try_add(&job(0, &raw, 1, 5000, 5000, 0))
            .unwrap()
            .is_some());
        assert!(b
            .try_add(&job(1, &raw, 1, 5000, 5000, 0))
            .unwrap()
            .is_none());
        assert_eq!(b.len(), 1);
        b.finish();
        assert!(b
            .try_add(&job(1, &raw, 1, 5000, 5000, 0))
            .unwrap()
            .is_some());
        // A chunk larger than any batch is an error, not "full".
        let mut b = BatchBuilder::new(limits).unwrap();
        assert!(matches!(
            b.try_add(&job(5, &raw, 1, 9000, 9000, 0)),
            Err(PlanError::ChunkTooLarge { tag: 5, .. })
        ));
        // Chunk count.
        let limits = Limits {
            max_chunks: 2,
            ..Limits::default()
        };
        let mut b = BatchBuilder::new(limits).unwrap();
        for i in 0..2 {
            assert!(b.try_add(&job(i, &raw, 1, 10, 10, 0)).unwrap().is_some());
        }
        assert!(b.try_add(&job(2, &raw, 1, 10, 10, 0)).unwrap().is_none());
        // Decode-table slots: 3 per BF16 chunk.
        let limits = Limits {
            max_lut_slots: 5,
            ..Limits::default()
        };
        let mut b = BatchBuilder::new(limits).unwrap();
        assert!(b.try_add(&job(0, &planes, 2, 20, 10, 0)).unwrap().is_some());
        assert!(b.try_add(&job(1, &planes, 2, 20, 10, 0)).unwrap().is_none());
        let limits = Limits {
            max_lut_slots: 2,
            ..Limits::default()
        };
        let mut b = BatchBuilder::new(limits).unwrap();
        assert!(matches!(
            b.try_add(&job(0, &planes, 2, 20, 10, 0)),
            Err(PlanError::ChunkTooLarge { .. })
        ));
        // The largest chunk the limits promise to take fits an empty batch.
        let l = Limits::default();
        let mut b = BatchBuilder::new(l).unwrap();
        let big = Codec::from_spec(CODEC_PLANES, &[0, 8, 1, 1, 1, 1, 1, 1, 1, 1], 1).unwrap();
        let j = job(0, &big, 1, MAX_CHUNK_ORIG_LEN, l.max_chunk_data(), 0);
        assert!(b.try_add(&j).unwrap().is_some());
    }

    #[test]
    fn invalid_chunks_are_rejected() {
        let planes = bf16_planes();
        let raw = Codec::Raw;
        let mut b = BatchBuilder::new(Limits::default()).unwrap();
        let cases = [
            job(0, &planes, 2, 0, 10, 0),              // empty
            job(0, &planes, 2, 3, 10, 0),              // not whole elements
            job(0, &planes, 2, (64 << 20) + 2, 10, 0), // over 64 MiB
            job(0, &planes, 2, 4, 10, 1),              // misaligned output
            job(0, &raw, 1, 10, 11, 0),                // raw length mismatch
            job(0, &planes, 2, 4, 1 << 33, 0),         // absurd stored length
            job(0, &planes, 2, 4, 10, u64::MAX - 1),   // output overflows
        ];
        for j in &cases {
            assert!(
                matches!(b.try_add(j), Err(PlanError::BadChunk { .. })),
                "{j:?} accepted"
            );
        }
        // The planes codec must match the element size.
        assert!(matches!(
            b.try_add(&job(0, &planes, 4, 8, 10, 0)),
            Err(PlanError::BadParams(_))
        ));
        assert!(b.is_empty());
        assert!(BatchBuilder::new(Limits {
            warps_per_block: 0,
            ..Limits::default()
        })
        .is_err());
    }

    #[test]
    fn shared_tables_are_capped() {
        let eight = Codec::from_spec(CODEC_PLANES, &[0, 8, 1, 1, 1, 1, 1, 1, 1, 1], 1).unwrap();
        let limits = Limits {
            max_shared_tables: 5,
            ..Limits::default()
        };
        let mut b = BatchBuilder::new(limits).unwrap();
        b.try_add(&job(0, &eight, 1, 100, 50, 0)).unwrap().unwrap();
        let batch = b.finish();
        let dec = batch.launches.last().unwrap();
        assert_eq!(dec.kernel, Kernel::PlanesDecode);
        assert_eq!(dec.shared_bytes, 5 * 8192);
        assert_eq!(dec.args[5], Arg::U32(5));
    }

    #[test]
    fn first_error_names_the_chunk() {
        let raw = Codec::Raw;
        let mut b = BatchBuilder::new(Limits::default()).unwrap();
        for i in 0..3 {
            b.try_add(&job(100 + i, &raw, 1, 10, 10, 0))
                .unwrap()
                .unwrap();
        }
        let batch = b.finish();
        let mut status = vec![0u8; 12];
        assert_eq!(batch.first_error(&status), None);
        status[8] = 12;
        status[4] = 13;
        assert_eq!(
            batch.first_error(&status),
            Some((101, StreamError::LaneOverrun))
        );
        assert_eq!(StreamError::from_code(99), StreamError::Unknown(99));
    }
}
