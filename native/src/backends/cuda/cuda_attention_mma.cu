// Tensor-core attention forward, FlashAttention-2 style, for F16/BF16 q/k/v (fp32 accumulation and softmax),
// head sizes D = Dv in {64, 80}, no key mask, not causal (cuda_attention.cu routes everything else to the SIMT
// kernels). Semantics as ops::attention (ops.h): q [B, H, Lq, D], k/v [B, H, Lk, D] read through their strides
// (unit stride along d, 16-byte aligned rows: attention_uses_mma), o written contiguous [B, H, Lq, D].
//
// Work split: one block per (b, h, 128 query rows); grid = B * H * ceil(Lq / 128), 1-D, (b, h)-major so the
// row blocks of one head run together and share its K/V in L2. 8 warps (256 threads); each warp owns 16
// query rows for the whole kernel: its Q fragments stay in registers, and its 16 x D output accumulator
// and online-softmax state (running max m, running sum l) live in registers (fp32).
// Per K/V tile of 64 keys, each warp computes
//   S = Q K^T   [16 x 64]: (D / 16) x 8 mma.m16n8k16 (A = Q from registers, B = K via ldmatrix),
//   P = exp2(S * scale log2(e) - m * scale log2(e)) with m the new row max (the scale folded into one FMA
//       per score, as FlashAttention-2 does; the row max is taken on the raw scores, scale > 0);
//       the old O and l are rescaled by exp2((m_old - m_new) * scale log2(e)),
//   O += P V    [16 x D]: 4 x (D / 8) mma.m16n8k16 (A = P rounded to f16/bf16 straight from the S
//       accumulators, whose C layout is the A layout of the next mma; B = V via ldmatrix.trans).
// The row sums l stay per lane (each lane holds 2 of every 8 columns) until the end, where the 4 lanes of a
// row add them up and O / l is rounded once to the output dtype.
//
// Shared memory (dynamic, opted in above 48 KiB): Q [128][D + 8] and two buffers of K and V [64][D + 8], f16/bf16:
//   D = 64: (128 + 4 * 64) * 72 * 2 = 55296 B (54 KiB);  D = 80: 384 * 88 * 2 = 67584 B (66 KiB).
// K/V are double-buffered with cp.async (16-byte copies, rows past Lq/Lk zero-filled): tile t + 1 streams in
// while tile t is computed, one __syncthreads per tile. Rows are padded by 16 bytes (8 elements) so that the
// 8 row addresses of each ldmatrix phase fall in distinct bank groups (pitch 144 B / 176 B = 36 / 44 words:
// the 8 rows start 4 / 12 banks apart, all 32 banks covered once) -- conflict-free by this arithmetic; neither
// the emulator nor the CPU build can measure bank conflicts (a GPU profiler can).
//
// Why these sizes: 128 query rows per block make every K/V byte fetched from L2 serve 128 rows: 4 * 128 * D
// FLOPs per 2 * 2 * D bytes = 128 FLOP/B. An H100 SXM has roughly 990 TFLOP/s of dense f16 tensor math (with
// wgmma; mma.sync reaches a good part of it) against roughly 5.5 TB/s of L2 bandwidth, ~180 FLOP/B, so 64-row
// blocks (64 FLOP/B) would lean on L2 while 128 rows leave the tensor cores the limit. 16 rows per warp (one
// m16 tile) keep S (32 floats), O (32 / 40 floats) and Q (16 / 20 registers) in registers; 64-key tiles keep
// the per-tile online-softmax work (2 shuffles per row, one rescale of O) small against the
// 2 * (D / 16) * 8 = 64 / 80 mma per warp and tile, and the double-buffered K/V small enough for 2 blocks/SM.
// Work at SDXL's self-attention at 1024 x 1024 ([2, 10, 4096, 64]): 4 * B * H * Lq * Lk * D = 4 * 20 * 4096^2 *
// 64 = 85.9 GFLOP per call on tensor cores (~0.1-0.3 ms at 300-900 TFLOP/s) and 335 M exp2 on the MUFU
// (16 / clk / SM: ~0.1 ms on an H100), i.e. tensor-core bound with the exp2 a visible second (not measured here:
// no GPU yet; sdxl_backend_ops --perf, run by tools/gpu/check.sh, times this case when one is lent).
//
// Resource usage (nvcc 13.0 -O3, ptxas --resource-usage; the same for F16 and BF16; CTest cuda_resources):
//                 registers sm_80   registers sm_90   spills   static smem   dynamic smem   blocks / SM
//   D = 64        128               128               0        0             55296 B        2 (16 warps)
//   D = 80        158               167               0        0             67584 B        1 (8 warps)
// D = 64 is held at 128 registers by __launch_bounds__(256, 2) (left alone, ptxas took 131: one block per SM);
// asking the same of D = 80 spills 28-40 bytes, so it runs one block of 8 warps per SM. Shared memory would
// allow 2 blocks (A100: 164 KiB per SM) to 3 (H100: 227 KiB).
#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/cuda_attention.cuh"
#include "backends/cuda/cuda_check.cuh"
#include "backends/cuda/cuda_context.cuh"
#include "backends/cuda/cuda_launch.cuh"
#include "backends/cuda/cuda_mma.cuh"
#include "core/error.h"

namespace sdxl::cuda {

namespace {

using namespace attn;
using namespace mma;

template <int D>
struct MmaTiles {
    static_assert(D % 16 == 0 && D <= 128, "tensor-core attention head size");
    static constexpr int kWarps = 8;
    static constexpr int kThreads = 32 * kWarps;
    static constexpr int kRows = 16 * kWarps;  // query rows per block, 16 per warp
    static constexpr int kKeys = 64;           // keys per K/V tile
    static constexpr int kPitch = D + 8;       // elements per shared row: 16 bytes of padding (bank conflicts)
    static constexpr int kChunks = D / 8;      // 16-byte chunks per row
    static constexpr int kTileElems = kKeys * kPitch;
    // q [kRows][kPitch], then k0, v0, k1, v1, each [kKeys][kPitch]
    static constexpr size_t kSmemBytes = size_t(kRows * kPitch + 4 * kTileElems) * sizeof(uint16_t);
    // D = 64: at most 128 registers per thread, so that 2 blocks (16 warps) fit an SM's 64 K registers (D = 80
    // would spill at 128, see the header comment).
    static constexpr int kMinBlocksPerSm = D <= 64 ? 2 : 1;
};

// Copies rows [first, first + kTileRows) of one head (row stride `stride` elements, unit stride along d) into the
// shared tile [kTileRows][kPitch], one 16-byte cp.async per chunk, consecutive threads on consecutive chunks
// (coalesced). Rows at or past `end` become zeros (src-size 0, the source address kept in bounds).
template <int D, int kTileRows>
__device__ __forceinline__ void load_tile_async(uint16_t* tile, const uint16_t* head, int64_t stride, int first,
                                                int end, int tid) {
    using Tiles = MmaTiles<D>;
    constexpr int kTotal = kTileRows * Tiles::kChunks;
    constexpr int kPerThread = (kTotal + Tiles::kThreads - 1) / Tiles::kThreads;
SDXL_UNROLL
    for (int i = 0; i < kPerThread; ++i) {
        const int c = tid + i * Tiles::kThreads;
        if (kTotal % Tiles::kThreads != 0 && c >= kTotal) break;  // D = 80: 640 chunks per K/V tile
        const int r = c / Tiles::kChunks, chunk = c % Tiles::kChunks;
        const int row = first + r;
        const bool valid = row < end;
        cp_async_16(tile + r * Tiles::kPitch + chunk * 8, head + (valid ? row : 0) * stride + chunk * 8, valid);
    }
}

template <MmaType T, int D>
__global__ void __launch_bounds__(MmaTiles<D>::kThreads, MmaTiles<D>::kMinBlocksPerSm)
    mma_attention_kernel(AttnParams p, int row_blocks) {
    using Tiles = MmaTiles<D>;
    constexpr int kKeys = Tiles::kKeys, kPitch = Tiles::kPitch;
    constexpr int kDimSteps = D / 16;       // k-steps of S = Q K^T; pairs of 8-dim output tiles
    constexpr int kKeySteps = kKeys / 16;   // k-steps of O += P V; pairs of 8-key score tiles
    constexpr int kScoreTiles = kKeys / 8;  // 8-key column tiles of S
    constexpr int kOutTiles = D / 8;        // 8-dim column tiles of O

    SDXL_DYNAMIC_SHARED(uint4, smem_raw);  // uint4: the 16-byte alignment cp.async and ldmatrix need
    uint16_t* const q_tile = reinterpret_cast<uint16_t*>(smem_raw);       // [kRows][kPitch]
    uint16_t* const kv_tiles = q_tile + Tiles::kRows * kPitch;           // k0, v0, k1, v1: [kKeys][kPitch]

    const int tid = int(threadIdx.x), warp = tid / 32, lane = tid % 32;
    // 32-bit index math (fewer registers, no 64-bit division subroutine): blockIdx.x < 2^31 (launch_mma checks
    // the grid), Lq and Lk < 2^31 (attention_uses_mma); only element offsets (row x stride) are 64-bit.
    const int Lq = int(p.Lq), Lk = int(p.Lk);
    const int bh = int(blockIdx.x) / row_blocks;
    const int row0 = (int(blockIdx.x) % row_blocks) * Tiles::kRows;
    const int64_t b = bh / int(p.H), h = bh % int(p.H);
    const auto* q_head = static_cast<const uint16_t*>(p.q) + b * p.q_stride[0] + h * p.q_stride[1];
    const auto* k_head = static_cast<const uint16_t*>(p.k) + b * p.k_stride[0] + h * p.k_stride[1];
    const auto* v_head = static_cast<const uint16_t*>(p.v) + b * p.v_stride[0] + h * p.v_stride[1];
    const int n_tiles = (Lk + kKeys - 1) / kKeys;

    // Q and the first K/V tile in one group.
    load_tile_async<D, Tiles::kRows>(q_tile, q_head, p.q_stride[2], row0, Lq, tid);
    load_tile_async<D, kKeys>(kv_tiles, k_head, p.k_stride[2], 0, Lk, tid);
    load_tile_async<D, kKeys>(kv_tiles + Tiles::kTileElems, v_head, p.v_stride[2], 0, Lk, tid);
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    // The warp's 16 query rows as A fragments, one per 16 dims. Lane l addresses row l % 16 at dim 8 (l / 16):
    // matrices (rows 0-7, dims 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15) = registers a0a1, a2a3, a4a5, a6a7.
    uint32_t q_frag[kDimSteps][4];
    {
        const uint16_t* q_rows = q_tile + (warp * 16 + lane % 16) * kPitch + (lane / 16) * 8;
SDXL_UNROLL
        for (int ds = 0; ds < kDimSteps; ++ds) ldmatrix_x4(q_frag[ds], q_rows + ds * 16);
    }

    // This lane's part of the warp's rows r = lane / 4 (index 0) and r + 8 (index 1): O columns
    // 8 j + 2 (lane % 4) + {0, 1} (C fragment layout), raw-score row max, partial row sum.
    float o_acc[kOutTiles][4];
SDXL_UNROLL
    for (int j = 0; j < kOutTiles; ++j) o_acc[j][0] = o_acc[j][1] = o_acc[j][2] = o_acc[j][3] = 0.0f;
    float row_max[2] = {neg_inf(), neg_inf()};
    float row_sum[2] = {0.0f, 0.0f};

    // Per-lane ldmatrix row offsets inside a K or V tile (elements), see the fragment notes at the mma calls.
    const int k_lane_offset = ((lane / 16) * 8 + lane % 8) * kPitch + ((lane / 8) % 2) * 8;
    const int v_lane_offset = (((lane / 8) % 2) * 8 + lane % 8) * kPitch + (lane / 16) * 8;

#if defined(__CUDACC__)
#pragma unroll 1
#endif
    for (int tile = 0; tile < n_tiles; ++tile) {
        const int buf = tile & 1;
        if (tile + 1 < n_tiles) {  // the next tile streams into the other buffer (free since the last barrier)
            uint16_t* next = kv_tiles + (2 * (buf ^ 1)) * Tiles::kTileElems;
            const int next_key0 = (tile + 1) * kKeys;
            load_tile_async<D, kKeys>(next, k_head, p.k_stride[2], next_key0, Lk, tid);
            load_tile_async<D, kKeys>(next + Tiles::kTileElems, v_head, p.v_stride[2], next_key0, Lk, tid);
            cp_async_commit();
        }
        const uint16_t* k_tile = kv_tiles + (2 * buf) * Tiles::kTileElems;
        const uint16_t* v_tile = k_tile + Tiles::kTileElems;

        // S = Q K^T [16 x kKeys]. B = K^T (k = dim, n = key) is K row-major [key][dim]: ldmatrix without .trans
        // gives lane l (key l / 4, dims 2 (l % 4), +1) = b0b1. Lanes 0-7 / 8-15 / 16-23 / 24-31 address keys 0-7
        // dims 0-7 / keys 0-7 dims 8-15 / keys 8-15 dims 0-7 / keys 8-15 dims 8-15 of a 16-key pair: registers
        // (b0b1, b2b3) of score tile 2 kp, then of tile 2 kp + 1.
        float s[kScoreTiles][4];
SDXL_UNROLL
        for (int j = 0; j < kScoreTiles; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
SDXL_UNROLL
        for (int ds = 0; ds < kDimSteps; ++ds) {
SDXL_UNROLL
            for (int kp = 0; kp < kKeySteps; ++kp) {
                uint32_t kb[4];
                ldmatrix_x4(kb, k_tile + k_lane_offset + kp * 16 * kPitch + ds * 16);
                mma_m16n8k16<T>(s[2 * kp], q_frag[ds], kb[0], kb[1]);
                mma_m16n8k16<T>(s[2 * kp + 1], q_frag[ds], kb[2], kb[3]);
            }
        }
        // Keys past Lk (last tile only): their K rows are zeros, their scores must not count.
        const int key0 = tile * kKeys;
        if (key0 + kKeys > Lk) {
SDXL_UNROLL
            for (int j = 0; j < kScoreTiles; ++j)
SDXL_UNROLL
                for (int i = 0; i < 4; ++i)
                    if (key0 + 8 * j + 2 * (lane % 4) + (i & 1) >= Lk) s[j][i] = neg_inf();
        }

        // Online softmax per row (r = 0: row lane / 4, elements 0-1; r = 1: row lane / 4 + 8, elements 2-3). A row
        // lives in the 4 lanes of a quad: two xor-shuffles give the quad's max.
SDXL_UNROLL
        for (int r = 0; r < 2; ++r) {
            float mx = row_max[r];
SDXL_UNROLL
            for (int j = 0; j < kScoreTiles; ++j) mx = attn_max(mx, attn_max(s[j][2 * r], s[j][2 * r + 1]));
            mx = attn_max(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = attn_max(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            // Every tile has a key < Lk, so mx is finite for finite inputs; the guard keeps -inf - -inf out anyway.
            const float mx_scaled = mx == neg_inf() ? 0.0f : mx * p.scale_log2;
            const float corr = attn_exp2(row_max[r] * p.scale_log2 - mx_scaled);  // 0 on the first tile
            row_max[r] = mx;
            row_sum[r] *= corr;
SDXL_UNROLL
            for (int j = 0; j < kOutTiles; ++j) {
                o_acc[j][2 * r] *= corr;
                o_acc[j][2 * r + 1] *= corr;
            }
SDXL_UNROLL
            for (int j = 0; j < kScoreTiles; ++j) {
SDXL_UNROLL
                for (int c = 0; c < 2; ++c) {
                    const float pj = attn_exp2(s[j][2 * r + c] * p.scale_log2 - mx_scaled);  // masked: exp2(-inf) = 0
                    s[j][2 * r + c] = pj;
                    row_sum[r] += pj;
                }
            }
        }

        // O += P V, 16 keys per step. A = P: the C layout of score tiles 2 kk, 2 kk + 1 is the A layout of one
        // 16 x 16 fragment (a0a1 / a2a3 = tile 2 kk, rows lane / 4 / + 8; a4a5 / a6a7 = tile 2 kk + 1). B = V (k = key,
        // n = dim) is V row-major [key][dim]: ldmatrix.trans gives lane l (keys 2 (l % 4), +1; dim l / 4) = b0b1.
        // Lanes 0-7 / 8-15 / 16-23 / 24-31 address keys 0-7 dims 0-7 / keys 8-15 dims 0-7 / keys 0-7 dims 8-15 /
        // keys 8-15 dims 8-15 of a 16-dim pair: registers (b0b1, b2b3) of output tile 2 dp, then of 2 dp + 1.
SDXL_UNROLL
        for (int kk = 0; kk < kKeySteps; ++kk) {
            const uint32_t p_frag[4] = {pack2<T>(s[2 * kk][0], s[2 * kk][1]), pack2<T>(s[2 * kk][2], s[2 * kk][3]),
                                        pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                        pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
SDXL_UNROLL
            for (int dp = 0; dp < kDimSteps; ++dp) {
                uint32_t vb[4];
                ldmatrix_x4_trans(vb, v_tile + v_lane_offset + kk * 16 * kPitch + dp * 16);
                mma_m16n8k16<T>(o_acc[2 * dp], p_frag, vb[0], vb[1]);
                mma_m16n8k16<T>(o_acc[2 * dp + 1], p_frag, vb[2], vb[3]);
            }
        }

        cp_async_wait<0>();  // this thread's copies of the next tile landed ...
        __syncthreads();     // ... and everyone's; everyone is done with this tile's buffer
    }

    // O / l, rounded once. Each lane writes 2 adjacent elements (4 bytes) per 8-dim tile of its two rows; the
    // 4 lanes of a quad cover 16 contiguous bytes (the output is a small part of the traffic: no staging).
SDXL_UNROLL
    for (int r = 0; r < 2; ++r) {
        float sum = row_sum[r];
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        const int row = row0 + warp * 16 + lane / 4 + 8 * r;
        if (row < Lq) {
            const int64_t o_row = p.o_tokens_major
                                      ? (int64_t(bh / int(p.H)) * Lq + row) * int(p.H) + bh % int(p.H)
                                      : int64_t(bh) * Lq + row;
            auto* out = reinterpret_cast<uint32_t*>(static_cast<uint16_t*>(p.o) + o_row * D + 2 * (lane % 4));
SDXL_UNROLL
            for (int j = 0; j < kOutTiles; ++j) out[4 * j] = pack2<T>(o_acc[j][2 * r] * inv, o_acc[j][2 * r + 1] * inv);
        }
    }
}

constexpr int64_t kMaxGrid = 2147483647;  // gridDim.x limit

template <MmaType T, int D>
void launch_mma(const AttnParams& p) {
    using Tiles = MmaTiles<D>;
    const int64_t row_blocks = (p.Lq + Tiles::kRows - 1) / Tiles::kRows;
    const int64_t blocks = p.B * p.H * row_blocks;
    if (blocks > kMaxGrid) fail(ErrorCode::UNSUPPORTED, "attention on cuda: ", blocks, " blocks exceed the grid limit");
    SDXL_CUDA_CHECK(cudaFuncSetAttribute(mma_attention_kernel<T, D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         int(Tiles::kSmemBytes)));
    launch(mma_attention_kernel<T, D>, unsigned(blocks), Tiles::kThreads, Tiles::kSmemBytes, p, int(row_blocks));
    SDXL_CUDA_CHECK(cudaGetLastError());
}

// The rows of a [B, H, L, D] view can be copied 16 bytes at a time: unit stride along d, base and every stride
// that is used (dims of size 1 never move the pointer) multiples of 8 elements.
bool rows_aligned(const void* base, const int64_t (&stride)[4], int64_t B, int64_t H, int64_t L) {
    auto ok = [](int64_t n, int64_t s) { return n <= 1 || s % 8 == 0; };
    return stride[3] == 1 && reinterpret_cast<uintptr_t>(base) % 16 == 0 && ok(B, stride[0]) && ok(H, stride[1]) &&
           ok(L, stride[2]);
}

}  // namespace

bool attention_uses_mma(const AttnParams& p, AttnDType dtype) {
    if (dtype == AttnDType::F32 || p.mask_f32 || p.mask_i64 || p.causal) return false;
    if (p.D != p.Dv || (p.D != 64 && p.D != 80)) return false;
    if (p.Lk <= 0 || p.Lq <= 0 || p.Lk > INT32_MAX - 64 || p.Lq > INT32_MAX - 128) return false;  // 32-bit rows
    if (!rows_aligned(p.q, p.q_stride, p.B, p.H, p.Lq) || !rows_aligned(p.k, p.k_stride, p.B, p.H, p.Lk) ||
        !rows_aligned(p.v, p.v_stride, p.B, p.H, p.Lk))
        return false;
    int dev = 0, max_optin = 0;  // sm_80 and later allow >= 163 KiB; checked rather than assumed
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
        (void)cudaGetLastError();
        return false;
    }
    return size_t(max_optin) >= (p.D == 64 ? MmaTiles<64>::kSmemBytes : MmaTiles<80>::kSmemBytes);
}

void launch_attention_mma(const AttnParams& p, AttnDType dtype) {
    const bool bf16 = dtype == AttnDType::BF16;
    if (p.D == 64) return bf16 ? launch_mma<MmaType::BF16, 64>(p) : launch_mma<MmaType::F16, 64>(p);
    return bf16 ? launch_mma<MmaType::BF16, 80>(p) : launch_mma<MmaType::F16, 80>(p);
}

}  // namespace sdxl::cuda
