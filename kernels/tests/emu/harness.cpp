// Runs a batch planned by tic_kernels::plan through the real kernel sources
// on the CPU (see cuda_emu.h).
//
// Input file (little-endian):
//   "TICEMU01"
//   u64 batch_len, batch bytes        the staging image the GPU would receive
//   u64 lut_bytes                     decode-table scratch to allocate
//   u64 arena_len                     output arena to allocate
//   u64 chunk_desc_off, u32 nchunks   ChunkDesc.out_ptr holds arena offsets;
//                                     the harness adds the arena's address
//   u32 nlaunch, then per launch:
//     u32 kernel (0 chacha20, 1 copy_raw, 2 parse, 3 decode)
//     u32 grid, u32 block, u32 shared_bytes, u32 nargs
//     nargs x (u32 kind: 0 batch+offset, 1 luts, 2 u32, 3 u64; u64 value)
// Output file: the batch buffer after the kernels, then the arena.
// The argument kinds are checked against each kernel's C signature.
#include "cuda_emu.h"

#include <cstring>
#include <string>

#include "../../common.cuh"
#include "../../chacha20.cu"
#include "../../raw.cu"
#include "../../planes.cu"

namespace {

struct Reader {
    const std::vector<unsigned char>& b;
    size_t at = 0;
    template <typename T>
    T get() {
        if (at + sizeof(T) > b.size()) die("input file truncated");
        T v;
        std::memcpy(&v, b.data() + at, sizeof(T));
        at += sizeof(T);
        return v;
    }
    [[noreturn]] static void die(const char* m) {
        std::fprintf(stderr, "harness: %s\n", m);
        std::exit(2);
    }
};

struct Arg {
    unsigned kind;
    u64 value;
};

// 'p' pointer (batch offset or luts), 'w' u32, 'q' u64.
void check_signature(const char* name, const std::vector<Arg>& args, const char* sig) {
    bool ok = std::strlen(sig) == args.size();
    for (size_t i = 0; ok && i < args.size(); i++) {
        const char want = sig[i];
        const unsigned k = args[i].kind;
        ok = (want == 'p' && (k == 0 || k == 1)) || (want == 'w' && k == 2) ||
             (want == 'q' && k == 3);
    }
    if (!ok) {
        std::fprintf(stderr, "harness: arguments of %s do not match its signature %s\n", name,
                     sig);
        std::exit(3);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: harness IN OUT\n");
        return 2;
    }
    std::vector<unsigned char> file;
    {
        FILE* f = std::fopen(argv[1], "rb");
        if (!f) Reader::die("cannot open input");
        unsigned char tmp[1 << 16];
        size_t n;
        while ((n = std::fread(tmp, 1, sizeof tmp, f)) > 0) file.insert(file.end(), tmp, tmp + n);
        std::fclose(f);
    }
    Reader r{file};
    if (file.size() < 8 || std::memcmp(file.data(), "TICEMU01", 8) != 0) Reader::die("bad magic");
    r.at = 8;
    const u64 batch_len = r.get<u64>();
    // Exact-size heap blocks so AddressSanitizer sees every overrun.
    u8* batch = static_cast<u8*>(std::malloc(batch_len ? batch_len : 1));
    if (r.at + batch_len > file.size()) Reader::die("batch truncated");
    std::memcpy(batch, file.data() + r.at, batch_len);
    r.at += batch_len;
    const u64 lut_bytes = r.get<u64>();
    u16* luts = static_cast<u16*>(std::malloc(lut_bytes ? lut_bytes : 1));
    std::memset(luts, 0xAB, lut_bytes);  // stale tables from "earlier batches"
    const u64 arena_len = r.get<u64>();
    u8* arena = static_cast<u8*>(std::malloc(arena_len ? arena_len : 1));
    std::memset(arena, 0xCD, arena_len);  // unwritten output bytes stand out
    const u64 chunk_desc_off = r.get<u64>();
    const u32 nchunks = r.get<u32>();
    for (u32 c = 0; c < nchunks; c++) {
        ChunkDesc* d = reinterpret_cast<ChunkDesc*>(batch + chunk_desc_off) + c;
        d->out_ptr += reinterpret_cast<u64>(arena);
    }
    const u32 nlaunch = r.get<u32>();
    for (u32 l = 0; l < nlaunch; l++) {
        const u32 kernel = r.get<u32>();
        const u32 grid = r.get<u32>();
        const u32 block = r.get<u32>();
        const u32 smem = r.get<u32>();
        const u32 nargs = r.get<u32>();
        std::vector<Arg> args(nargs);
        for (auto& a : args) {
            a.kind = r.get<u32>();
            a.value = r.get<u64>();
        }
        auto v = [&](size_t i) -> u64 {
            const Arg& a = args[i];
            if (a.kind == 0) return reinterpret_cast<u64>(batch) + a.value;
            if (a.kind == 1) return reinterpret_cast<u64>(luts);
            return a.value;
        };
        auto p8 = [&](size_t i) { return reinterpret_cast<u8*>(v(i)); };
        auto w = [&](size_t i) { return static_cast<u32>(v(i)); };
        switch (kernel) {
            case 0:
                check_signature("tic_chacha20_xor", args, "pqpwqp");
                tic_emu_launch(tic_chacha20_xor, grid, block, smem, p8(0), v(1),
                               reinterpret_cast<const KeyDesc*>(v(2)), w(3), v(4),
                               reinterpret_cast<u32*>(v(5)));
                break;
            case 1:
                check_signature("tic_copy_raw", args, "pppwp");
                tic_emu_launch(tic_copy_raw, grid, block, smem, (const u8*)p8(0),
                               reinterpret_cast<const ChunkDesc*>(v(1)),
                               reinterpret_cast<const RawItem*>(v(2)), w(3),
                               reinterpret_cast<u32*>(v(4)));
                break;
            case 2:
                check_signature("tic_planes_parse", args, "pppwppwp");
                tic_emu_launch(tic_planes_parse, grid, block, smem, (const u8*)p8(0),
                               reinterpret_cast<const ChunkDesc*>(v(1)),
                               reinterpret_cast<const u32*>(v(2)), w(3),
                               reinterpret_cast<PlaneDesc*>(v(4)), reinterpret_cast<u16*>(v(5)),
                               w(6), reinterpret_cast<u32*>(v(7)));
                break;
            case 3:
            case 4:
            case 5: {
                // The decode kernel in its three sizes (same signature).
                const char* names[] = {"tic_planes_decode2", "tic_planes_decode4",
                                       "tic_planes_decode"};
                decltype(&tic_planes_decode) fns[] = {tic_planes_decode2, tic_planes_decode4,
                                                      tic_planes_decode};
                check_signature(names[kernel - 3], args, "ppppwwpwp");
                tic_emu_launch(fns[kernel - 3], grid, block, smem, (const u8*)p8(0),
                               reinterpret_cast<const ChunkDesc*>(v(1)),
                               reinterpret_cast<const PlaneDesc*>(v(2)),
                               reinterpret_cast<const u16*>(v(3)), w(4), w(5),
                               reinterpret_cast<const WorkItem*>(v(6)), w(7),
                               reinterpret_cast<u32*>(v(8)));
                break;
            }
            default:
                Reader::die("unknown kernel");
        }
    }
    // Undo the relocation so the Rust side sees its own descriptors.
    for (u32 c = 0; c < nchunks; c++) {
        ChunkDesc* d = reinterpret_cast<ChunkDesc*>(batch + chunk_desc_off) + c;
        d->out_ptr -= reinterpret_cast<u64>(arena);
    }
    FILE* f = std::fopen(argv[2], "wb");
    if (!f) Reader::die("cannot open output");
    std::fwrite(batch, 1, batch_len, f);
    std::fwrite(arena, 1, arena_len, f);
    std::fclose(f);
    std::free(batch);
    std::free(luts);
    std::free(arena);
    return 0;
}
