// Codec 0 (`raw`): the chunk's plaintext is the original bytes. One block
// per 64 KiB segment of a raw chunk copies it from the batch buffer to the
// tensor, 16 bytes per thread and step when both sides are 16-byte aligned.

#define TIC_RAW_SEGMENT 65536u

extern "C" __global__ void tic_copy_raw(const u8* __restrict__ buf,
                                        const ChunkDesc* __restrict__ chunks,
                                        const RawItem* __restrict__ items, u32 nitems,
                                        u32* __restrict__ status) {
    if (blockIdx.x >= nitems) return;
    const RawItem it = items[blockIdx.x];
    const ChunkDesc& c = chunks[it.chunk];
    const u64 len = (u64)c.n * c.elem_size;
    if (c.codec != TIC_CODEC_RAW || c.in_len != len) {
        if (threadIdx.x == 0) tic_fail(status, it.chunk, TIC_ERR_RAW_CHUNK_LENGTH);
        return;
    }
    const u64 start = (u64)it.segment * TIC_RAW_SEGMENT;
    if (start >= len) return;
    const u64 end = tic_min64(len, start + TIC_RAW_SEGMENT);
    const u8* src = buf + c.in_off;
    u8* dst = (u8*)c.out_ptr;
    u64 i = start;
    if ((((u64)(src + start)) & 15u) == 0 && (((u64)(dst + start)) & 15u) == 0) {
        const u64 vec_end = start + ((end - start) & ~(u64)15);
        for (u64 j = start + 16u * threadIdx.x; j < vec_end; j += 16u * blockDim.x) {
            *(tic_u128*)(dst + j) = *(const tic_u128*)(src + j);
        }
        i = vec_end;
    }
    for (u64 j = i + threadIdx.x; j < end; j += blockDim.x) {
        dst[j] = src[j];
    }
}
