// Codec 1 (`planes`): parse each chunk's plane sections on the device, then
// decode every plane of a tile and merge the planes into elements in one
// pass, so each output byte is written exactly once and no plane symbols
// ever go through memory.
//
// Bitstream (format-spec CODECS.md, codec 1). For each plane p: u32
// section_len (bytes after the field), u8 mode, body. Modes: 0 raw (n
// symbols of w bits, LSB-first, padded to a byte), 1 const (u16 value),
// 2 Huffman (w <= 10): u16 first, u16 count, ceil((count+1)/2) bytes of
// 4-bit code lengths (low nibble first) for first..first+count-1 then ESC
// (= 2^w); a tile directory of ceil(n/65536) entries (u32 tile_offset from
// the lane area start, 32 x u16 lane byte lengths); the lane area, tile by
// tile, lanes 0..31. Lane j of a tile holds the tile's symbols i with
// i % 32 == j. Codes are canonical (DEFLATE order of (length, value)),
// stored bit-reversed so a 12-bit LSB-first peek indexes a 4096-entry table;
// ESC is followed by the symbol's w bits, LSB-first.

#define TIC_MAX_SYMBOLS 1025u // 2^10 symbols + ESC

// Reads a shared word after a barrier and then waits at a second barrier,
// so no thread can overwrite it before every thread has read it. Call from
// block-uniform control flow.
TIC_DEV u32 tic_block_read(const u32* v) {
    __syncthreads();
    const u32 x = *(const volatile u32*)v;
    __syncthreads();
    return x;
}

// Walks the plane sections of one chunk (one thread). Fills pd[0..nplanes)
// and returns 0, or the first error. Every offset it produces lies inside
// the chunk: section lengths are checked against what is left before use.
TIC_DEV u32 tic_parse_sections(const ChunkDesc& c, const u8* in, u32 ntiles, u32 nluts,
                               PlaneDesc* pd) {
    if (c.codec != TIC_CODEC_PLANES || c.nplanes == 0 || c.nplanes > TIC_MAX_PLANES ||
        c.n == 0 || c.in_len > 0xFFFFFFFFull) {
        return TIC_ERR_DESCRIPTOR;
    }
    const u32 len = (u32)c.in_len;
    u32 pos = 0; // invariant: pos <= len
    for (u32 p = 0; p < c.nplanes; p++) {
        const u32 w = c.width[p];
        if (w == 0 || w > 16) return TIC_ERR_DESCRIPTOR;
        if (len - pos < 5) return TIC_ERR_SECTION;
        const u32 section = tic_rd32(in + pos);
        pos += 4;
        if (section == 0 || section > len - pos) return TIC_ERR_SECTION;
        PlaneDesc d;
        d.mode = in[pos];
        d.value = 0;
        d.body_off = pos + 1;
        d.body_len = section - 1;
        d.dir_off = 0;
        d.area_off = 0;
        d.area_len = 0;
        d.ok = 0;
        pos += section;
        if (d.mode == TIC_MODE_RAW) {
            const u64 bytes = ((u64)c.n * w + 7u) / 8u;
            if ((u64)d.body_len != bytes) return TIC_ERR_RAW_LENGTH;
        } else if (d.mode == TIC_MODE_CONST) {
            if (d.body_len != 2) return TIC_ERR_CONST;
            d.value = tic_rd16(in + d.body_off);
            if ((d.value >> w) != 0) return TIC_ERR_CONST;
        } else if (d.mode == TIC_MODE_HUFFMAN) {
            if (w > TIC_MAX_HUFFMAN_WIDTH) return TIC_ERR_HUFFMAN_WIDTH;
            if (c.lut_slot[p] >= nluts) return TIC_ERR_DESCRIPTOR;
            if (d.body_len < 4) return TIC_ERR_HUFFMAN_TABLE;
            const u32 first = tic_rd16(in + d.body_off);
            const u32 count = tic_rd16(in + d.body_off + 2);
            if (first + count > (1u << w)) return TIC_ERR_HUFFMAN_TABLE;
            const u32 nibble_bytes = (count + 2u) / 2u; // ceil((count + 1) / 2)
            if (d.body_len - 4u < nibble_bytes) return TIC_ERR_HUFFMAN_TABLE;
            const u64 dir_len = (u64)ntiles * TIC_TILE_ENTRY_BYTES;
            if ((u64)(d.body_len - 4u - nibble_bytes) < dir_len) return TIC_ERR_TILE_DIRECTORY;
            d.value = first | (count << 16);
            d.dir_off = d.body_off + 4u + nibble_bytes;
            d.area_off = d.dir_off + (u32)dir_len;
            d.area_len = d.body_off + d.body_len - d.area_off;
        } else {
            return TIC_ERR_MODE;
        }
        pd[p] = d;
    }
    if (pos != len) return TIC_ERR_TRAILING;
    return 0;
}

// Reads nsym 4-bit code lengths and assigns canonical codes as DEFLATE does
// (RFC 1951 3.2.2): by length, then by symbol value (ESC, 2^w, is last).
// One thread. Returns 0 or an error.
TIC_DEV u32 tic_canonical_codes(const u8* nibbles, u32 nsym, u8* lens, u16* codes) {
    u32 bl_count[TIC_MAX_CODE_LEN + 1];
    u32 next_code[TIC_MAX_CODE_LEN + 1];
    for (u32 l = 0; l <= TIC_MAX_CODE_LEN; l++) bl_count[l] = 0;
    for (u32 q = 0; q < nsym; q++) {
        const u32 b = nibbles[q / 2];
        const u32 l = (q & 1u) ? (b >> 4) : (b & 15u);
        if (l > TIC_MAX_CODE_LEN) return TIC_ERR_CODE_LENGTH;
        lens[q] = (u8)l;
        bl_count[l]++;
    }
    bl_count[0] = 0;
    u32 kraft = 0; // in units of 2^-12
    for (u32 l = 1; l <= TIC_MAX_CODE_LEN; l++) kraft += bl_count[l] << (TIC_MAX_CODE_LEN - l);
    if (kraft > TIC_LUT_SIZE) return TIC_ERR_OVERSUBSCRIBED;
    u32 code = 0;
    next_code[0] = 0;
    for (u32 l = 1; l <= TIC_MAX_CODE_LEN; l++) {
        code = (code + bl_count[l - 1]) << 1;
        next_code[l] = code;
    }
    for (u32 q = 0; q < nsym; q++) {
        const u32 l = lens[q];
        if (l != 0) codes[q] = (u16)(next_code[l]++);
    }
    return 0;
}

// One block (256 threads) per planes chunk of the batch: checks the
// sections, builds each Huffman plane's 4096-entry decode table in its LUT
// slot, checks the tile directory, and publishes the PlaneDescs (ok = 1)
// only when everything holds. On error the chunk's status is set and its
// PlaneDescs stay zero, so the decode kernel skips it.
extern "C" __global__ void tic_planes_parse(const u8* __restrict__ buf,
                                            const ChunkDesc* __restrict__ chunks,
                                            const u32* __restrict__ list, u32 nlist,
                                            PlaneDesc* __restrict__ planes,
                                            u16* __restrict__ luts, u32 nluts,
                                            u32* __restrict__ status) {
    __shared__ PlaneDesc s_pd[TIC_MAX_PLANES];
    __shared__ u32 s_err;
    __shared__ u8 s_len[TIC_MAX_SYMBOLS];
    __shared__ u16 s_code[TIC_MAX_SYMBOLS];
    if (blockIdx.x >= nlist) return;
    const u32 ci = list[blockIdx.x];
    const ChunkDesc& c = chunks[ci];
    const u8* in = buf + c.in_off;
    const u32 ntiles = (u32)(((u64)c.n + TIC_TILE_SYMBOLS - 1u) / TIC_TILE_SYMBOLS);
    if (threadIdx.x == 0) s_err = tic_parse_sections(c, in, ntiles, nluts, s_pd);
    // Every read of s_err is followed by a barrier before thread 0 may write
    // it again, so all threads see the same value and leave together.
    const u32 section_err = tic_block_read(&s_err);
    if (section_err != 0) {
        if (threadIdx.x == 0) tic_fail(status, ci, section_err);
        return;
    }
    for (u32 p = 0; p < c.nplanes; p++) {
        if (s_pd[p].mode != TIC_MODE_HUFFMAN) continue;
        const PlaneDesc d = s_pd[p];
        const u32 w = c.width[p];
        const u32 first = d.value & 0xFFFFu;
        const u32 count = d.value >> 16;
        const u32 nsym = count + 1u;
        if (threadIdx.x == 0) s_err = tic_canonical_codes(in + d.body_off + 4u, nsym, s_len, s_code);
        const u32 code_err = tic_block_read(&s_err);
        if (code_err != 0) {
            if (threadIdx.x == 0) tic_fail(status, ci, code_err);
            return;
        }
        u16* lut = luts + (u64)c.lut_slot[p] * TIC_LUT_SIZE;
        for (u32 e = threadIdx.x; e < TIC_LUT_SIZE; e += blockDim.x) lut[e] = 0;
        __syncthreads();
        // Codes are prefix-free (Kraft checked), so threads fill disjoint entries.
        for (u32 q = threadIdx.x; q < nsym; q += blockDim.x) {
            const u32 l = s_len[q];
            if (l == 0) continue;
            const u32 sym = q < count ? first + q : (1u << w);
            const u16 entry = (u16)(sym | (l << TIC_LUT_LEN_SHIFT));
            const u32 rev = tic_bitrev(s_code[q], l);
            for (u32 k = 0; k < (1u << (TIC_LUT_BITS - l)); k++) lut[rev | (k << l)] = entry;
        }
        // Tile t's lanes must end where tile t+1 starts, the first tile must
        // start at 0 and the last end at the end of the lane area: then every
        // lane lies inside the area and lanes are back to back.
        for (u32 t = threadIdx.x; t < ntiles; t += blockDim.x) {
            const u8* e = in + d.dir_off + (u64)t * TIC_TILE_ENTRY_BYTES;
            const u64 start = tic_rd32(e);
            u64 end = start;
            for (u32 j = 0; j < TIC_LANES; j++) end += tic_rd16(e + 4u + 2u * j);
            const u64 expect = t + 1u < ntiles ? (u64)tic_rd32(e + TIC_TILE_ENTRY_BYTES) : (u64)d.area_len;
            if ((t == 0 && start != 0) || end != expect) atomicCAS(&s_err, 0u, TIC_ERR_TILE_DIRECTORY);
        }
        __syncthreads();
        const u32 dir_err = tic_block_read(&s_err);
        if (dir_err != 0) {
            if (threadIdx.x == 0) tic_fail(status, ci, dir_err);
            return;
        }
    }
    if (threadIdx.x < c.nplanes) {
        PlaneDesc d = s_pd[threadIdx.x];
        d.ok = 1;
        planes[c.plane_base + threadIdx.x] = d;
    }
}

// A lane's bit reader: bits are consumed from the bottom of `bits`. The
// lane is read a 4-byte aligned word at a time (one load per 32 bits, not
// one per byte: the 32 lanes of a warp read 32 different places, so every
// load instruction costs the L1 one pass per lane), and the next word is
// loaded one refill ahead so that its latency hides behind decoding.
// (16-byte loads were measured slower on an H100: the kernel is bound by
// instructions issued, and queueing words costs more of them.)
// Aligned words may hold bytes of the neighbouring lanes or sections; those
// are masked off, so bits past the lane's end read as zero. A word is only
// loaded when it holds at least one byte of the lane, so no load leaves the
// batch buffer (4-byte aligned, as is every chunk in it).
struct TicLane {
    const u32* w; // the word after `next`
    u32 next;     // the next word of the lane, loaded ahead
    u32 left;     // bytes of the lane not yet moved into `bits`
    u32 nbits;    // valid bits in `bits`
    u64 bits;
};

// Keeps the low `bytes` (0..4) bytes of `v`.
TIC_DEV u32 tic_low_bytes(u32 v, u32 bytes) {
    return bytes >= 4u ? v : v & ((1u << (8u * bytes)) - 1u);
}

// Starts a lane of `len` bytes at byte `off` of the 4-byte aligned `base`.
TIC_DEV void tic_lane_start(TicLane& L, const u8* base, u64 off, u32 len) {
    const u32 a = (u32)(off & 3u);
    L.w = (const u32*)(base + (off - a));
    L.bits = 0;
    L.nbits = 0;
    L.left = len;
    L.next = 0;
    if (len != 0u) {
        const u32 take = 4u - a < len ? 4u - a : len;
        L.bits = tic_low_bytes(*L.w++ >> (8u * a), take);
        L.nbits = 8u * take;
        L.left = len - take;
        if (L.left != 0u) L.next = *L.w++;
    }
}

// Tops the reader up to more than 32 bits (while the lane lasts): enough
// for one code (<= 12 bits) and an escaped symbol (<= 10 bits).
TIC_DEV void tic_lane_refill(TicLane& L) {
    if (L.nbits <= 32u && L.left != 0u) {
        const u32 take = L.left < 4u ? L.left : 4u;
        L.bits |= (u64)tic_low_bytes(L.next, take) << L.nbits;
        L.nbits += 8u * take;
        L.left -= take;
        if (L.left != 0u) L.next = *L.w++;
    }
}

// The common layout, decoded with fewer instructions per element (the
// decode kernels are bound by instructions issued): NP planes, plane 0
// Huffman with its table in shared memory, every other plane raw, elements
// of type T.
//
// Plane 0's lane is read through a 64-bit window over two aligned words
// (`cur`, `nxt`): one funnel shift peeks a code, the same window serves the
// escaped value after it (at most 12 + 10 bits from a bit offset below 32),
// and one word boundary at most is crossed per element. The word after the
// window is loaded on crossing; it is needed only when a code starts in the
// last 11 bits of `cur`. Only words holding a byte of the lane are loaded
// (others read as 0), so no load leaves the batch buffer. Bytes of the
// neighbouring lane in the last word are not masked: instead the bits
// consumed are counted, and consuming a bit past the lane's end is an
// overrun, checked once at the end. The error is the same as the general
// loop's first error: a code without an entry (length 0) consumes nothing,
// so the lane stays on it and never overruns afterwards; after an overrun
// the position is past the end, so the overrun is what is reported.
//
// A raw plane's symbols for one step of a warp (32 consecutive elements)
// span exactly w words, so each lane keeps its word pointer and bit offset
// and steps by w words.
//
// Returns the lane's first error, or 0 (the trailing-bytes check included).
template <u32 NP, typename T>
TIC_DEV u32 tic_decode_huffman_raw(const u32* lane_words, u32 lane_bit0, u32 lane_bits,
                                   const u16* tab, const u32* width, const u32* shift,
                                   const u64* raw_bit, const u32* in32, u32 first, u32 count,
                                   u32 rotate, T* out) {
    const u32 W = 8u * (u32)sizeof(T);
    const u32 w0 = width[0];
    const u32 esc = 1u << w0;
    // Words [0, wend) of lane_words hold the lane's bits [lane_bit0, end).
    const u32 end = lane_bit0 + lane_bits;
    const u32 wend = (end + 31u) >> 5;
    u32 cur = 0u < wend ? lane_words[0] : 0u;
    u32 nxt = 1u < wend ? lane_words[1] : 0u;
    u32 widx = 0; // the word in `cur`
    u32 off = lane_bit0;
    u32 bad = 0;
    const u32* q[NP];
    u32 sh[NP], two[NP], mask[NP];
#pragma unroll
    for (u32 p = 1; p < NP; p++) {
        // body_len == ceil(n*w/8) and every element index is < n, so the
        // word holding a symbol's first bit exists, and the next one does
        // whenever the symbol reaches into it (the same for every step).
        const u64 bit = raw_bit[p] + (u64)first * width[p];
        q[p] = in32 + (bit >> 5);
        sh[p] = (u32)(bit & 31u);
        two[p] = sh[p] + width[p] > 32u;
        mask[p] = (1u << width[p]) - 1u;
    }
    T* o = out + first;
    for (u32 k = 0; k < count; k++) {
        const u64 win = ((u64)nxt << 32) | cur;
        const u32 e = tab[(u32)(win >> off) & (TIC_LUT_SIZE - 1u)];
        const u32 len = e >> TIC_LUT_LEN_SHIFT;
        u32 sym = e & TIC_LUT_SYM_MASK;
        bad |= len == 0u;
        off += len;
        if (sym == esc) { // ESC: the symbol follows in w0 raw bits
            sym = (u32)(win >> off) & (esc - 1u);
            off += w0;
        }
        if (off >= 32u) {
            off -= 32u;
            cur = nxt;
            widx++;
            nxt = widx + 1u < wend ? lane_words[widx + 1u] : 0u;
        }
        u32 r = sym << shift[0];
#pragma unroll
        for (u32 p = 1; p < NP; p++) {
            u64 v = q[p][0];
            if (two[p]) v |= (u64)q[p][1] << 32;
            r |= ((u32)(v >> sh[p]) & mask[p]) << shift[p];
            q[p] += width[p];
        }
        r = (r >> rotate) | ((r & rotate) << (W - 1u));
        *o = (T)r;
        o += TIC_LANES;
    }
    const u64 pos = (u64)widx * 32u + off;
    if (pos > end) return TIC_ERR_LANE_OVERRUN;
    if (bad) return TIC_ERR_BAD_CODE;
    // A lane may end with at most 7 padding bits.
    if (end - pos >= 8u) return TIC_ERR_LANE_TRAILING;
    return 0u;
}

template <u32 MAXP>
TIC_DEV void tic_planes_decode_body(const u8* __restrict__ buf,
                                    const ChunkDesc* __restrict__ chunks,
                                    const PlaneDesc* __restrict__ planes,
                                    const u16* __restrict__ luts, u32 nluts, u32 nshared,
                                    const WorkItem* __restrict__ work, u32 nwork,
                                    u32* __restrict__ status) {
    TIC_DYNAMIC_SHARED(u16, s_lut);
    // Per-plane facts, the same for every lane: kept in shared memory (read
    // as broadcasts) so registers go to the lanes' bit readers.
    __shared__ PlaneDesc s_pd[MAXP];
    __shared__ const u16* s_tab[MAXP];
    __shared__ u32 s_ok;
    if (blockIdx.x >= nwork) return;
    const WorkItem wi = work[blockIdx.x];
    const ChunkDesc& c = chunks[wi.chunk];
    if (threadIdx.x == 0) {
        u32 ok = status[wi.chunk] == 0 && c.codec == TIC_CODEC_PLANES && c.nplanes >= 1 &&
                 c.nplanes <= MAXP && (c.elem_size == 1 || c.elem_size == 2 ||
                                                 c.elem_size == 4 || c.elem_size == 8);
        u32 hs = 0;
        for (u32 p = 0; ok && p < c.nplanes; p++) {
            s_pd[p] = planes[c.plane_base + p];
            s_tab[p] = luts;
            if (s_pd[p].ok != 1) ok = 0;
            if (s_pd[p].mode == TIC_MODE_HUFFMAN) {
                if (c.lut_slot[p] >= nluts) {
                    ok = 0;
                } else {
                    s_tab[p] = hs < nshared ? s_lut + hs * TIC_LUT_SIZE
                                            : luts + (u64)c.lut_slot[p] * TIC_LUT_SIZE;
                }
            }
            if (c.lut_slot[p] != TIC_NO_SLOT) hs++;
        }
        s_ok = ok;
    }
    __syncthreads();
    if (!s_ok) return; // block-uniform: s_ok is not written again
    {
        u32 hs = 0;
        for (u32 p = 0; p < c.nplanes; p++) {
            if (c.lut_slot[p] == TIC_NO_SLOT) continue;
            if (hs < nshared && s_pd[p].mode == TIC_MODE_HUFFMAN) {
                const u32* src = (const u32*)(luts + (u64)c.lut_slot[p] * TIC_LUT_SIZE);
                u32* dst = (u32*)(s_lut + hs * TIC_LUT_SIZE);
                for (u32 e = threadIdx.x; e < TIC_LUT_SIZE / 2u; e += blockDim.x) dst[e] = src[e];
            }
            hs++;
        }
    }
    __syncthreads();
    // No barrier below this point: warps without a tile may leave.
    const u32 warp = threadIdx.x / TIC_LANES;
    const u32 lane = threadIdx.x % TIC_LANES;
    const u32 ntiles = (u32)(((u64)c.n + TIC_TILE_SYMBOLS - 1u) / TIC_TILE_SYMBOLS);
    const u32 tile = wi.first_tile + warp;
    if (tile >= ntiles) return;
    const u8* in = buf + c.in_off;
    const u32 tstart = tile * TIC_TILE_SYMBOLS;
    const u32 m = (u32)tic_min64(TIC_TILE_SYMBOLS, (u64)c.n - tstart);
    const u32 count = lane < m ? (m - lane + TIC_LANES - 1u) / TIC_LANES : 0u;
    const u32 np = c.nplanes;
    const u32 W = 8u * c.elem_size;
    const u32 rotate = c.rotate;

    // The plane facts the loop needs, in registers (unrolled over planes).
    u32 mode[MAXP], width[MAXP], shift[MAXP];
    u64 raw_bit[MAXP];
    TicLane rd[MAXP];
    u64 lane0_off = 0; // plane 0's lane (Huffman): byte offset from `in`, length
    u32 lane0_len = 0;
    u32 err = 0;
#pragma unroll
    for (u32 p = 0; p < MAXP; p++) {
        mode[p] = p < np ? s_pd[p].mode : TIC_MODE_CONST;
        width[p] = p < np ? c.width[p] : 0u;
        shift[p] = p < np ? c.shift[p] : 0u;
        raw_bit[p] = p < np ? (u64)s_pd[p].body_off * 8u : 0u;
        tic_lane_start(rd[p], in, 0, 0);
        if (p < np && mode[p] == TIC_MODE_HUFFMAN) {
            const PlaneDesc& d = s_pd[p];
            const u8* e = in + d.dir_off + (u64)tile * TIC_TILE_ENTRY_BYTES;
            u32 start = tic_rd32(e);
            for (u32 j = 0; j < lane; j++) start += tic_rd16(e + 4u + 2u * j);
            const u32 len = tic_rd16(e + 4u + 2u * lane);
            // Checked by the parse kernel; checked again so that no
            // descriptor can make a lane read outside its plane.
            if ((u64)start + len > d.area_len) err = TIC_ERR_TILE_DIRECTORY;
            tic_lane_start(rd[p], in, (u64)d.area_off + start, err ? 0u : len);
            if (p == 0) {
                lane0_off = (u64)d.area_off + start;
                lane0_len = len;
            }
        }
    }
    const u32* in32 = (const u32*)in;
    u8* out = (u8*)c.out_ptr;
    // (Plane 0's table must be in shared memory: the first table copied.)
    // (Exactly MAXP planes: the 2-plane kernel's and the 4-plane kernel's
    // usual case; plane 0's table is in shared memory, the first copied.)
    bool fast = !err && MAXP <= 4u && np == MAXP && nshared != 0u &&
                mode[0] == TIC_MODE_HUFFMAN && (W == 16u || W == 32u);
#pragma unroll
    for (u32 p = 1; p < MAXP; p++) {
        if (p < np && mode[p] != TIC_MODE_RAW) fast = false;
    }
    if (fast) {
        const u32 first = tstart + lane;
        const u32 rot = rotate & 1u;
        const u32* words = in32 + (lane0_off >> 2);
        const u32 bit0 = (u32)(lane0_off & 3u) * 8u;
        const u32 bits = lane0_len * 8u;
        const u16* tab = s_lut; // addressed as shared memory: LDS, not a generic load
        err = W == 16u ? tic_decode_huffman_raw<MAXP, u16>(words, bit0, bits, tab, width, shift,
                                                         raw_bit, in32, first, count, rot,
                                                         (u16*)out)
                       : tic_decode_huffman_raw<MAXP, u32>(words, bit0, bits, tab, width, shift,
                                                         raw_bit, in32, first, count, rot,
                                                         (u32*)out);
    }
    for (u32 k = 0; k < count && !err && !fast; k++) {
        const u32 i = tstart + k * TIC_LANES + lane;
        u64 r = 0;
#pragma unroll
        for (u32 p = 0; p < MAXP; p++) {
            if (p < np) {
                const u32 w = width[p];
                const u32 mask = (1u << w) - 1u;
                u32 sym;
                if (mode[p] == TIC_MODE_CONST) {
                    sym = s_pd[p].value;
                } else if (mode[p] == TIC_MODE_RAW) {
                    // body_len == ceil(n*w/8) and i < n, so the symbol's
                    // bytes exist; the aligned words around them lie in
                    // the batch buffer. The second word is read only when
                    // the symbol reaches into it.
                    const u64 bit = raw_bit[p] + (u64)i * w;
                    const u32 sh = (u32)(bit & 31u);
                    const u32* q = in32 + (bit >> 5);
                    u64 v = q[0];
                    if (sh + w > 32u) v |= (u64)q[1] << 32;
                    sym = (u32)(v >> sh) & mask;
                } else {
                    TicLane& L = rd[p];
                    tic_lane_refill(L);
                    const u32 e = s_tab[p][(u32)L.bits & (TIC_LUT_SIZE - 1u)];
                    const u32 len = e >> TIC_LUT_LEN_SHIFT;
                    if (len == 0) {
                        err = TIC_ERR_BAD_CODE;
                        break;
                    }
                    if (len > L.nbits) {
                        err = TIC_ERR_LANE_OVERRUN;
                        break;
                    }
                    sym = e & TIC_LUT_SYM_MASK;
                    L.bits >>= len;
                    L.nbits -= len;
                    if (sym == (1u << w)) { // ESC: the symbol follows in w raw bits
                        if (L.nbits < w) {
                            err = TIC_ERR_LANE_OVERRUN;
                            break;
                        }
                        sym = (u32)L.bits & mask;
                        L.bits >>= w;
                        L.nbits -= w;
                    }
                }
                r |= (u64)sym << shift[p];
            }
        }
        if (err) break;
        if (rotate) r = (r >> 1) | ((r & 1u) << (W - 1u));
        if (W == 8u) {
            out[i] = (u8)r;
        } else if (W == 16u) {
            ((u16*)out)[i] = (u16)r;
        } else if (W == 32u) {
            ((u32*)out)[i] = (u32)r;
        } else {
            ((u64*)out)[i] = r;
        }
    }
    if (!err && !fast) {
        // A lane may end with at most 7 padding bits.
#pragma unroll
        for (u32 p = 0; p < MAXP; p++) {
            if (p < np && s_pd[p].mode == TIC_MODE_HUFFMAN &&
                (u64)rd[p].left * 8u + rd[p].nbits >= 8u) {
                err = TIC_ERR_LANE_TRAILING;
            }
        }
    }
    if (err) tic_fail(status, wi.chunk, err);
}

// The decode kernel in three sizes: registers go with the planes a kernel
// unrolls for, and fewer registers let more warps share an SM. The planner
// sends each chunk to the smallest that fits its plane count.
#define TIC_PLANES_DECODE(name, maxp)                                                          \
    extern "C" __global__ void name(const u8* __restrict__ buf,                                 \
                                    const ChunkDesc* __restrict__ chunks,                       \
                                    const PlaneDesc* __restrict__ planes,                       \
                                    const u16* __restrict__ luts, u32 nluts, u32 nshared,       \
                                    const WorkItem* __restrict__ work, u32 nwork,               \
                                    u32* __restrict__ status) {                                 \
        tic_planes_decode_body<maxp>(buf, chunks, planes, luts, nluts, nshared, work, nwork,    \
                                     status);                                                   \
    }
TIC_PLANES_DECODE(tic_planes_decode2, 2u)
TIC_PLANES_DECODE(tic_planes_decode4, 4u)
TIC_PLANES_DECODE(tic_planes_decode, TIC_MAX_PLANES)
