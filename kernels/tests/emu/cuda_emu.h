// A minimal CUDA execution model on the CPU, for testing the kernels in
// kernels/*.cu without a GPU.
//
// Each block runs with one OS thread per CUDA thread, blocks one after the
// other, so `__shared__` variables can be plain statics. __syncthreads is a
// std::barrier; a thread that returns drops out of it (as an exited GPU
// thread does), and the launcher checks that every thread of a block passed
// the same number of barriers, so a barrier under divergent control flow,
// which would hang or misbehave on a GPU, fails the test instead.
//
// It models what the kernels rely on (thread/block indices, shared memory,
// barriers, atomicCAS, 64-bit pointers, little-endian memory) and nothing
// about timing, warps or memory coalescing.
#pragma once
#define TIC_EMULATION 1

#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

struct tic_dim3 {
    unsigned x = 0, y = 0, z = 0;
};
inline thread_local tic_dim3 threadIdx;
inline thread_local tic_dim3 blockIdx;
inline tic_dim3 blockDim;
inline tic_dim3 gridDim;

inline std::barrier<>* tic_emu_barrier = nullptr;
inline thread_local unsigned tic_emu_syncs = 0;
inline unsigned char* tic_emu_smem = nullptr;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) alignas(n)
#define TIC_DEV static inline
#define TIC_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(tic_emu_smem)

inline void __syncthreads() {
    tic_emu_syncs++;
    tic_emu_barrier->arrive_and_wait();
}

inline unsigned atomicCAS(unsigned* address, unsigned compare, unsigned value) {
    __atomic_compare_exchange_n(address, &compare, value, false, __ATOMIC_SEQ_CST,
                                __ATOMIC_SEQ_CST);
    return compare;
}

// Runs kernel<<<grid, block, smem>>>(args...).
template <typename... P, typename... A>
void tic_emu_launch(void (*kernel)(P...), unsigned grid, unsigned block, unsigned smem,
                    A... args) {
    gridDim.x = grid;
    gridDim.y = gridDim.z = 1;
    blockDim.x = block;
    blockDim.y = blockDim.z = 1;
    for (unsigned b = 0; b < grid; b++) {
        // Exactly `smem` bytes, so AddressSanitizer flags any overrun.
        unsigned char* dynamic = smem ? new unsigned char[smem] : nullptr;
        tic_emu_smem = dynamic;
        std::barrier<> bar(block);
        tic_emu_barrier = &bar;
        std::vector<unsigned> syncs(block, 0);
        std::vector<std::thread> threads;
        threads.reserve(block);
        for (unsigned t = 0; t < block; t++) {
            threads.emplace_back([&, t] {
                threadIdx.x = t;
                threadIdx.y = threadIdx.z = 0;
                blockIdx.x = b;
                blockIdx.y = blockIdx.z = 0;
                tic_emu_syncs = 0;
                kernel(static_cast<P>(args)...);
                syncs[t] = tic_emu_syncs;
                bar.arrive_and_drop();
            });
        }
        for (auto& th : threads) th.join();
        for (unsigned t = 1; t < block; t++) {
            if (syncs[t] != syncs[0]) {
                std::fprintf(stderr,
                             "emulator: block %u: thread %u passed %u barriers but thread 0 "
                             "passed %u (__syncthreads under divergent control flow)\n",
                             b, t, syncs[t], syncs[0]);
                std::abort();
            }
        }
        delete[] dynamic;
        tic_emu_smem = nullptr;
        tic_emu_barrier = nullptr;
    }
}
