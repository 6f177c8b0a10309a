// Shared definitions of the tic decode kernels: integer types, descriptor
// layouts, status codes and small device helpers.
//
// The descriptor structs are written byte by byte by the Rust launch planner
// (kernels/src/plan.rs); their sizes and field offsets are part of the
// contract and are checked on both sides (static_assert here, layout tests
// there).
//
// This file is compiled by NVRTC (no system headers available) and, for the
// CPU emulation tests, by a host C++ compiler with kernels/tests/emu/cuda_emu.h
// included first (TIC_EMULATION defined).

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#ifndef TIC_EMULATION
#define TIC_DEV static __device__ __forceinline__
#define TIC_DYNAMIC_SHARED(T, name) extern __shared__ __align__(16) T name[]
#endif

// Codec bitstream constants (format-spec CODECS.md, codec 1 `planes`).
#define TIC_TILE_SYMBOLS 65536u
#define TIC_LANES 32u
#define TIC_LUT_BITS 12u
#define TIC_LUT_SIZE 4096u
#define TIC_MAX_PLANES 8u
#define TIC_MAX_HUFFMAN_WIDTH 10u
#define TIC_MAX_CODE_LEN 12u
#define TIC_TILE_ENTRY_BYTES 68u // u32 tile_offset + 32 x u16 lane_len
#define TIC_NO_SLOT 0xFFFFFFFFu

#define TIC_CODEC_RAW 0u
#define TIC_CODEC_PLANES 1u

#define TIC_MODE_RAW 0u
#define TIC_MODE_CONST 1u
#define TIC_MODE_HUFFMAN 2u

// A decode table entry: symbol value in bits 0..10 (ESC is 2^w <= 1024),
// code length in bits 11..14; 0 means "no code has this 12-bit prefix".
#define TIC_LUT_SYM_MASK 0x7FFu
#define TIC_LUT_LEN_SHIFT 11u

// Status codes, one u32 per chunk of a batch; 0 = fine. The first error a
// kernel finds for a chunk wins (atomicCAS from 0). Kept in sync with
// `StreamError` in kernels/src/plan.rs.
#define TIC_ERR_DESCRIPTOR 1u          // descriptor inconsistent (a planner bug)
#define TIC_ERR_SECTION 2u             // plane section header runs past the chunk
#define TIC_ERR_MODE 3u                // unknown plane mode
#define TIC_ERR_RAW_LENGTH 4u          // raw plane body is not ceil(n*w/8) bytes
#define TIC_ERR_CONST 5u               // const body is not 2 bytes or value >= 2^w
#define TIC_ERR_HUFFMAN_WIDTH 6u       // Huffman plane wider than 10 bits
#define TIC_ERR_HUFFMAN_TABLE 7u       // table header truncated or symbols >= 2^w
#define TIC_ERR_CODE_LENGTH 8u         // a code length above 12
#define TIC_ERR_OVERSUBSCRIBED 9u      // code lengths violate Kraft's inequality
#define TIC_ERR_TILE_DIRECTORY 10u     // tile offsets/lane lengths do not tile the lane area
#define TIC_ERR_TRAILING 11u           // bytes after the last plane section
#define TIC_ERR_BAD_CODE 12u           // a lane holds a bit pattern that is no code
#define TIC_ERR_LANE_OVERRUN 13u       // a lane ends before its last symbol
#define TIC_ERR_LANE_TRAILING 14u      // a lane has whole unused bytes after its last symbol
#define TIC_ERR_RAW_CHUNK_LENGTH 15u   // raw codec chunk is not orig_len bytes
#define TIC_ERR_KEYSTREAM 16u          // keystream range outside the batch buffer

// One chunk of a batch (96 bytes), written by the host planner.
struct ChunkDesc {
    u64 out_ptr;          //  0 device address of the chunk's first output byte
    u64 in_off;           //  8 offset of the chunk's plaintext in the batch buffer
    u64 in_len;           // 16 plaintext bytes (stored bytes minus the AEAD tag)
    u32 n;                // 24 elements
    u32 elem_size;        // 28 bytes per element: 1, 2, 4 or 8
    u32 codec;            // 32 TIC_CODEC_*
    u32 rotate;           // 36 planes: 1 when elements were rotated left by 1
    u32 nplanes;          // 40 planes: 1..8
    u32 plane_base;       // 44 planes: index of this chunk's first PlaneDesc
    u8 width[8];          // 48 planes: bits per plane, plane 0 = most significant
    u8 shift[8];          // 56 planes: left shift of each plane's symbol in r
    u32 lut_slot[8];      // 64 planes: decode table slot for planes of width <= 10
};

// One plane of one chunk (32 bytes), written by tic_planes_parse. Offsets
// are relative to the chunk's first byte.
struct PlaneDesc {
    u32 mode;             //  0 TIC_MODE_*
    u32 value;            //  4 const: the value; Huffman: first symbol | count << 16
    u32 body_off;         //  8 first byte after the mode byte
    u32 body_len;         // 12
    u32 dir_off;          // 16 Huffman: tile directory
    u32 area_off;         // 20 Huffman: lane data area
    u32 area_len;         // 24
    u32 ok;               // 28 1 once parsed and checked
};

// One block of tic_planes_decode: up to warps-per-block tiles of one chunk.
struct WorkItem {
    u32 chunk;
    u32 first_tile;
};

// One block of tic_copy_raw: a segment of a raw-codec chunk.
struct RawItem {
    u32 chunk;
    u32 segment;
};

// One encrypted chunk for tic_chacha20_xor (80 bytes).
struct KeyDesc {
    u32 key[8];           //  0 ChaCha20 key, little-endian words
    u32 nonce[3];         // 32 nonce, little-endian words
    u32 counter;          // 44 block counter of the first 64 bytes (1 for tic)
    u64 off;              // 48 ciphertext offset in the batch buffer
    u64 len;              // 56 ciphertext bytes (tag excluded)
    u64 first_block;      // 64 global index of this chunk's first 64-byte block
    u32 chunk;            // 72 chunk index in the batch (for status)
    u32 pad;              // 76
};

static_assert(sizeof(ChunkDesc) == 96, "ChunkDesc layout");
static_assert(sizeof(PlaneDesc) == 32, "PlaneDesc layout");
static_assert(sizeof(WorkItem) == 8, "WorkItem layout");
static_assert(sizeof(RawItem) == 8, "RawItem layout");
static_assert(sizeof(KeyDesc) == 80, "KeyDesc layout");

// 16 bytes moved by one load or store.
struct __align__(16) tic_u128 {
    u64 lo, hi;
};

// Records the first error of a chunk.
TIC_DEV void tic_fail(u32* status, u32 chunk, u32 code) {
    atomicCAS(status + chunk, 0u, code);
}

// Unaligned little-endian loads (the stream has no alignment).
TIC_DEV u32 tic_rd16(const u8* p) {
    return (u32)p[0] | ((u32)p[1] << 8);
}
TIC_DEV u32 tic_rd32(const u8* p) {
    return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24);
}

// Reverses the low `len` bits of `v`.
TIC_DEV u32 tic_bitrev(u32 v, u32 len) {
    u32 r = 0;
    for (u32 i = 0; i < len; i++) {
        r = (r << 1) | ((v >> i) & 1u);
    }
    return r;
}

TIC_DEV u64 tic_min64(u64 a, u64 b) {
    return a < b ? a : b;
}
