// ChaCha20 (RFC 8439) keystream XOR, in place, over the ciphertext of every
// encrypted chunk of a batch. One thread per 64-byte block: the thread finds
// its chunk by binary search over the chunks' first global block index,
// computes block `counter + b` and XORs up to 64 bytes.
//
// The Poly1305 tag was checked on the host over the ciphertext before the
// chunk was copied; this kernel only turns verified ciphertext into
// plaintext in device memory. Plaintext never exists on the host.

#define TIC_QR(a, b, c, d)                 \
    a += b; d ^= a; d = tic_rotl32(d, 16); \
    c += d; b ^= c; b = tic_rotl32(b, 12); \
    a += b; d ^= a; d = tic_rotl32(d, 8);  \
    c += d; b ^= c; b = tic_rotl32(b, 7);

TIC_DEV u32 tic_rotl32(u32 x, u32 n) {
    return (x << n) | (x >> (32u - n));
}

// The 16 words of ChaCha20 block `counter` for (key, nonce).
TIC_DEV void tic_chacha20_block(const KeyDesc& k, u32 counter, u32 out[16]) {
    u32 s[16];
    s[0] = 0x61707865u;
    s[1] = 0x3320646eu;
    s[2] = 0x79622d32u;
    s[3] = 0x6b206574u;
    for (int i = 0; i < 8; i++) s[4 + i] = k.key[i];
    s[12] = counter;
    s[13] = k.nonce[0];
    s[14] = k.nonce[1];
    s[15] = k.nonce[2];
    u32 x[16];
    for (int i = 0; i < 16; i++) x[i] = s[i];
    for (int round = 0; round < 10; round++) {
        TIC_QR(x[0], x[4], x[8], x[12]);
        TIC_QR(x[1], x[5], x[9], x[13]);
        TIC_QR(x[2], x[6], x[10], x[14]);
        TIC_QR(x[3], x[7], x[11], x[15]);
        TIC_QR(x[0], x[5], x[10], x[15]);
        TIC_QR(x[1], x[6], x[11], x[12]);
        TIC_QR(x[2], x[7], x[8], x[13]);
        TIC_QR(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; i++) out[i] = x[i] + s[i];
}

// buf: the batch buffer (buf_len bytes); keys: nkeys descriptors sorted by
// first_block; total_blocks: sum of ceil(len / 64) over them.
extern "C" __global__ void tic_chacha20_xor(u8* __restrict__ buf, u64 buf_len,
                                            const KeyDesc* __restrict__ keys, u32 nkeys,
                                            u64 total_blocks, u32* __restrict__ status) {
    const u64 g = (u64)blockIdx.x * blockDim.x + threadIdx.x;
    if (g >= total_blocks || nkeys == 0) return;
    // Last descriptor whose first_block <= g.
    u32 lo = 0, hi = nkeys - 1;
    while (lo < hi) {
        u32 mid = lo + (hi - lo + 1) / 2;
        if (keys[mid].first_block <= g) lo = mid; else hi = mid - 1;
    }
    const KeyDesc& k = keys[lo];
    const u64 b = g - k.first_block;
    const u64 start = b * 64u;
    if (start >= k.len) return; // g lies in no chunk (corrupt table): nothing to do
    if (k.off > buf_len || k.len > buf_len - k.off) {
        tic_fail(status, k.chunk, TIC_ERR_KEYSTREAM);
        return;
    }
    u32 ks[16];
    tic_chacha20_block(k, k.counter + (u32)b, ks);
    u8* p = buf + k.off + start;
    const u64 n = tic_min64(64u, k.len - start);
    if (n == 64u && (((u64)p) & 15u) == 0) {
        // Four 16-byte accesses (chunks start 16-byte aligned in the batch).
        tic_u128* w = (tic_u128*)p;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            tic_u128 v = w[i]; // device and host are little-endian
            v.lo ^= (u64)ks[4 * i] | (u64)ks[4 * i + 1] << 32;
            v.hi ^= (u64)ks[4 * i + 2] | (u64)ks[4 * i + 3] << 32;
            w[i] = v;
        }
    } else {
        // Last, partial block (or unaligned): byte by byte, with constant
        // indices into ks so it stays in registers.
#pragma unroll
        for (u32 i = 0; i < 64; i++) {
            if (i < n) p[i] ^= (u8)(ks[i / 4] >> (8u * (i % 4)));
        }
    }
}
