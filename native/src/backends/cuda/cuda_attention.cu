// CUDA attention kernels: thin shells over the per-thread routines of cuda_attention_tile.h (which also run
// on the CPU, see cuda_attention_host.h), plus the dispatch on dtype x head size. F16/BF16 attention without
// mask or causal order at D = Dv in {64, 80} goes to the tensor-core kernel instead (cuda_attention_mma.cu);
// these SIMT kernels keep F32, the masked/causal CLIP attention, other head sizes and unaligned views.
//
// Flash kernel: grid = B * H * ceil(Lq / 128) blocks (1-D, (b, h)-major so the row blocks of one head share
// K/V in L2), 128 threads, one query row per thread; static shared memory per FlashTiles<D> (<= 40.25 KiB).
// Simple kernel: grid = B * H * Lq blocks, 128 threads, dynamic shared memory (D + Dv + 128) floats
// (opted in above 48 KiB).
//
// Resource usage (nvcc 13.0 -O3, ptxas --resource-usage; registers the same for F32/F16/BF16 unless noted).
// No kernel spills; CTest cuda_resources keeps it so (full table: <build>/cuda_resources.txt).
//                 registers sm_90   registers sm_80          static smem
//   flash D = 32  142               140                      16640 B
//   flash D = 40  149               168                      20736 B
//   flash D = 64  209               212                      33024 B
//   flash D = 80  246               244                      41216 B
//   simple        40                56 F32, 48 F16/BF16      16 B (+ (D + Dv + 128) * 4 B dynamic)
// The simple kernel used to spill (sm_80 F32/BF16 24-28 B, sm_90 F16 8 B, at 64-72 registers): the 64-bit
// divisions bh / H in every simple_* routine (and blk / Lq) are called subroutines in SASS, and ptxas spilled
// around those calls. It now splits its block index once, in 32-bit arithmetic (SimpleRow, simple_row in
// cuda_attention_tile.h): same results, same launch configuration, 40-56 registers.
// At 209 registers x 128 threads, D = 64 fits 2 blocks (8 warps) per SM: latency is hidden by the 16-key
// chunks' independent FMAs rather than by occupancy.
#include <cuda_runtime.h>

#include "backends/cuda/cuda_attention.cuh"
#include "backends/cuda/cuda_check.cuh"
#include "backends/cuda/cuda_context.cuh"
#include "backends/cuda/cuda_launch.cuh"
#include "core/error.h"

namespace sdxl::cuda {

namespace {

using namespace attn;

template <class E, int D>
__global__ void __launch_bounds__(FlashTiles<D>::kRows) flash_kernel(AttnParams p, int64_t row_blocks) {
    using Tiles = FlashTiles<D>;
    __shared__ FlashShared<D> sh;
    const int64_t blk = blockIdx.x;
    const int64_t bh = blk / row_blocks, row0 = (blk % row_blocks) * Tiles::kRows;
    const int tid = int(threadIdx.x);
    FlashRow<E, D> r;
    r.init(p, bh, row0 + tid);
    const int64_t kend = flash_key_end(p, row0, Tiles::kRows);
    for (int64_t k0 = 0; k0 < kend; k0 += Tiles::kKeys) {
        __syncthreads();  // every thread is done with the previous tile
        flash_load_tile<E, D>(p, sh, bh, k0, tid, Tiles::kRows);
        __syncthreads();
        r.step(p, sh, k0, int(kend - k0 < Tiles::kKeys ? kend - k0 : Tiles::kKeys));
    }
    r.finish(p, bh);
}

// Max or sum of x over the block (all threads get the result). `red` holds one float per warp.
template <bool kMax>
__device__ float block_reduce(float x, float* red) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        const float y = __shfl_xor_sync(0xffffffffu, x, off);
        x = kMax ? attn_max(x, y) : x + y;
    }
    __syncthreads();  // a previous reduction's readers are done with red
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = x;
    __syncthreads();
    x = red[0];
    for (int w = 1; w < int(blockDim.x >> 5); ++w) x = kMax ? attn_max(x, red[w]) : x + red[w];
    return x;
}

template <class E>
__global__ void __launch_bounds__(kSimpleThreads) simple_kernel(AttnParams p) {
    SDXL_DYNAMIC_SHARED(float, smem);
    __shared__ float red[kSimpleThreads / 32];
    const SimpleShared sh{smem, smem + p.D, smem + p.D + p.Dv};
    const SimpleRow r = simple_row(p, blockIdx.x);  // 32-bit divisions only (no spills, see SimpleRow)
    const int tid = int(threadIdx.x);
    constexpr int nt = kSimpleThreads;

    simple_load_q<E>(p, sh, r, tid, nt);
    __syncthreads();
    const float mx = block_reduce<true>(simple_partial_max<E>(p, sh, r, tid, nt), red);
    float lsum = 0.0f;
    if (mx != neg_inf()) {  // uniform over the block
        const int64_t nk = simple_key_end(p, r.row);
        for (int64_t c0 = 0; c0 < nk; c0 += nt) {
            lsum += simple_chunk_p<E>(p, sh, r, mx, c0, tid);
            __syncthreads();  // sh.p complete
            simple_chunk_acc<E>(p, sh, r, c0, tid, nt);
            __syncthreads();  // sh.p consumed before the next chunk overwrites it
        }
    }
    const float sum = block_reduce<false>(lsum, red);
    simple_store<E>(p, sh, r, sum, tid, nt);
}

constexpr int64_t kMaxGrid = 2147483647;  // gridDim.x limit

template <class E, int D>
void launch_flash(const AttnParams& p) {
    using Tiles = FlashTiles<D>;
    const int64_t row_blocks = (p.Lq + Tiles::kRows - 1) / Tiles::kRows;
    const int64_t blocks = p.B * p.H * row_blocks;
    if (blocks > kMaxGrid) fail(ErrorCode::UNSUPPORTED, "attention on cuda: ", blocks, " blocks exceed the grid limit");
    launch(flash_kernel<E, D>, unsigned(blocks), Tiles::kRows, 0, p, row_blocks);
    SDXL_CUDA_CHECK(cudaGetLastError());
}

template <class E>
void launch_simple(const AttnParams& p) {
    const int64_t blocks = p.B * p.H * p.Lq;
    if (blocks > kMaxGrid) fail(ErrorCode::UNSUPPORTED, "attention on cuda: ", blocks, " blocks exceed the grid limit");
    const size_t smem = size_t(p.D + p.Dv + kSimpleThreads) * sizeof(float);
    if (smem > 48 * 1024) {
        int dev = 0, max_optin = 0;
        SDXL_CUDA_CHECK(cudaGetDevice(&dev));
        SDXL_CUDA_CHECK(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
        cudaFuncAttributes fa{};  // the opt-in limit covers static (red[]) plus dynamic shared memory
        SDXL_CUDA_CHECK(cudaFuncGetAttributes(&fa, simple_kernel<E>));
        if (smem + fa.sharedSizeBytes > size_t(max_optin))
            fail(ErrorCode::UNSUPPORTED, "attention on cuda: head sizes D = ", p.D, ", Dv = ", p.Dv,
                 " need ", smem, " bytes of shared memory, the device allows ", max_optin);
        SDXL_CUDA_CHECK(cudaFuncSetAttribute(simple_kernel<E>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    }
    launch(simple_kernel<E>, unsigned(blocks), kSimpleThreads, smem, p);
    SDXL_CUDA_CHECK(cudaGetLastError());
}

template <class E>
void launch_typed(const AttnParams& p) {
    if (p.Dv == p.D) {
        switch (p.D) {
            case 32: return launch_flash<E, 32>(p);
            case 40: return launch_flash<E, 40>(p);
            case 64: return launch_flash<E, 64>(p);
            case 80: return launch_flash<E, 80>(p);
            default: break;
        }
    }
    launch_simple<E>(p);
}

}  // namespace

bool attention_uses_flash(int D, int Dv) { return D == Dv && flash_head_dim(D); }

void launch_attention(const AttnParams& p, AttnDType dtype) {
    if (p.B * p.H * p.Lq == 0 || p.Dv == 0) return;  // no output element
    if (attention_uses_mma(p, dtype)) return launch_attention_mma(p, dtype);  // tensor cores (F16/BF16)
    switch (dtype) {
        case AttnDType::F32: return launch_typed<ElemF32>(p);
        case AttnDType::F16: return launch_typed<ElemF16>(p);
        case AttnDType::BF16: return launch_typed<ElemBF16>(p);
    }
}

}  // namespace sdxl::cuda
