// The math of the CUDA attention kernels, written once for the device and the host.
//
// Everything here is plain C++17 plus SDXL_HD (__host__ __device__ under nvcc, inline otherwise), so the
// exact per-thread code of both kernels also compiles into the CPU-only build, where
// cuda_attention_emulate.h runs it block by block and thread by thread (barriers become the boundaries
// between loops over threads) and tests/test_cuda_attention.cpp compares it with the cpu backend. The
// kernels in cuda_attention.cu are thin shells over these routines: index the block, call them between
// __syncthreads(), reduce across the block.
//
// Semantics (ops.h): o = softmax(scale * q k^T, masked) v per (b, h); key_mask [B, Lk] (F32 or I64, nonzero =
// attend); causal: query i attends keys j <= i; a query row with no key left gives zeros. Scores are kept
// in base 2: q is multiplied by scale * log2(e) once, and exp2(s - m) = exp(scale * (q.k - max)).
//
// Two paths:
//  * flash (head_dim D compile-time, Dv == D): FlashAttention-2-style forward. A block of kRows threads owns
//    kRows consecutive query rows of one (b, h), one row per thread (its q and o accumulators live in
//    registers, fp32). K/V are streamed through shared memory in tiles of kKeys keys (converted to fp32 on
//    load); each thread scores kChunk keys at a time, then does one online-softmax step for the chunk
//    (running max m and sum l in fp32, o rescaled by exp2(m_old - m_new)). SIMT fp32 FMAs, no tensor cores.
//  * simple (any D, Dv): one block of kSimpleThreads threads per (b, h, query row); q and the output
//    accumulator in shared memory; pass 1 finds the row max, pass 2 computes exp2(s - max) for a chunk of
//    kSimpleThreads keys (one per thread) into shared memory and accumulates p v (each thread owns output
//    dims d = tid, tid + NT, ...); the row sum is reduced at the end. Reads K twice and V once per row:
//    correct, not fast.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/half.h"  // host conversions (also seen by nvcc's host pass)

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define SDXL_HD __host__ __device__ __forceinline__
#define SDXL_UNROLL _Pragma("unroll")
#else
#define SDXL_HD inline
#define SDXL_UNROLL
#endif

namespace sdxl::cuda::attn {

// ---------------------------------------------------------------------------------------------- params

// FlashAttention-style plain params: element pointers, element strides, sizes. q/k/v are read through their
// strides (any layout, e.g. [B, L, H, D] transposed views); o is written contiguous [B, H, Lq, Dv].
struct AttnParams {
    const void* q = nullptr;
    const void* k = nullptr;
    const void* v = nullptr;
    void* o = nullptr;
    // o's memory order: 1 = [B, Lq, H, Dv] (the op's: merging heads afterwards is free), 0 = [B, H, Lq, Dv].
    // A flag rather than strides: the offset stays two multiply-adds, and the register budget with it.
    int o_tokens_major = 0;
    int64_t q_stride[4] = {0, 0, 0, 0};  // b, h, l, d
    int64_t k_stride[4] = {0, 0, 0, 0};
    int64_t v_stride[4] = {0, 0, 0, 0};
    int64_t B = 0, H = 0, Lq = 0, Lk = 0;
    int D = 0, Dv = 0;
    float scale_log2 = 0.0f;  // scale * log2(e)
    // key_mask [B, Lk]: at most one of the two is set (element strides below); null = every key attends.
    const float* mask_f32 = nullptr;
    const int64_t* mask_i64 = nullptr;
    int64_t mask_stride_b = 0, mask_stride_k = 0;
    int causal = 0;
};

constexpr float kLog2e = 1.4426950408889634f;

// ---------------------------------------------------------------------------------------------- elements

// Storage type and exact conversions: the 16-bit types are stored as their bits (uint16_t) so the host
// build needs no CUDA header; widening is exact, narrowing rounds to nearest even on both sides.
struct ElemF32 {
    using T = float;
    static SDXL_HD float load(const T* p) { return *p; }
    static SDXL_HD void store(T* p, float x) { *p = x; }
};

struct ElemF16 {
    using T = uint16_t;
    static SDXL_HD float load(const T* p) {
#if defined(__CUDA_ARCH__)
        return __half2float(__ushort_as_half(*p));
#else
        return f16_to_f32(*p);
#endif
    }
    static SDXL_HD void store(T* p, float x) {
#if defined(__CUDA_ARCH__)
        *p = __half_as_ushort(__float2half_rn(x));
#else
        *p = f32_to_f16(x);
#endif
    }
};

struct ElemBF16 {
    using T = uint16_t;
    static SDXL_HD float load(const T* p) {
#if defined(__CUDA_ARCH__)
        return __uint_as_float(uint32_t(*p) << 16);
#else
        return bf16_to_f32(*p);
#endif
    }
    static SDXL_HD void store(T* p, float x) {
#if defined(__CUDA_ARCH__)
        *p = __bfloat16_as_ushort(__float2bfloat16_rn(x));
#else
        *p = f32_to_bf16(x);
#endif
    }
};

// ---------------------------------------------------------------------------------------------- helpers

SDXL_HD float attn_exp2(float x) {
#if defined(__CUDA_ARCH__)
    return exp2f(x);
#else
    return std::exp2(x);
#endif
}

SDXL_HD float attn_max(float a, float b) { return a > b ? a : b; }

SDXL_HD float neg_inf() {
#if defined(__CUDA_ARCH__)
    return -__int_as_float(0x7f800000);
#else
    return -INFINITY;
#endif
}

// True when key `key` of batch b may be attended (ignores causality).
SDXL_HD bool key_kept(const AttnParams& p, int64_t b, int64_t key) {
    if (p.mask_f32) return p.mask_f32[b * p.mask_stride_b + key * p.mask_stride_k] != 0.0f;
    if (p.mask_i64) return p.mask_i64[b * p.mask_stride_b + key * p.mask_stride_k] != 0;
    return true;
}

// ============================================================================================ flash path

// Tile sizes, per head size D (all threads of a block = kRows = 128 = 4 warps):
//   kRows  = 128 query rows per block, one per thread
//   kKeys  = K/V keys per shared-memory tile: 64 for D <= 80, 32 above
//   kChunk = 16 keys scored per online-softmax step (16 score registers per thread)
// Static shared memory = 2 * kKeys * D * 4 bytes (K and V tiles, fp32) + kKeys * 4 (key bias):
//   D = 32: 16.25 KiB, 40: 20.25 KiB, 64: 32.25 KiB, 80: 40.25 KiB -- all under the 48 KiB static limit, so
// no cudaFuncSetAttribute opt-in is needed. (D = 128 would fit in shared memory with kKeys = 32, but its
// q[128] + o[128] registers spill (~800 bytes/thread with ptxas), so it is not instantiated: simple path.)
// Registers per thread: q[D] + o[D] + s[kChunk] + bookkeeping (see the ptxas report in cuda_attention.cu).
template <int D>
struct FlashTiles {
    static_assert(D % 4 == 0 && D > 0 && D <= 128, "flash head size");
    static constexpr int kRows = 128;
    static constexpr int kKeys = D <= 80 ? 64 : 32;
    static constexpr int kChunk = 16;
    static_assert(kKeys % kChunk == 0, "chunks tile the key tile");
};

template <int D>
struct alignas(16) FlashShared {
    float k[FlashTiles<D>::kKeys][D];
    float v[FlashTiles<D>::kKeys][D];
    float bias[FlashTiles<D>::kKeys];  // 0 = key attends, -inf = masked by key_mask or past Lk
};

// Number of keys the block of rows [row0, row0 + kRows) needs: causal rows stop at their own index.
SDXL_HD int64_t flash_key_end(const AttnParams& p, int64_t row0, int rows) {
    if (!p.causal) return p.Lk;
    const int64_t last = row0 + rows;  // keys < last cover every row of the block
    return last < p.Lk ? last : p.Lk;
}

// Cooperative load of keys [k0, k0 + kKeys) of head bh into shared memory (fp32), by thread tid of
// nthreads. Consecutive threads read consecutive d (coalesced when stride_d == 1). Keys past Lk become
// zero K/V rows with bias -inf.
template <class E, int D>
SDXL_HD void flash_load_tile(const AttnParams& p, FlashShared<D>& sh, int64_t bh, int64_t k0, int tid,
                             int nthreads) {
    constexpr int kKeys = FlashTiles<D>::kKeys;
    const int64_t b = bh / p.H, h = bh % p.H;
    const auto* kp = static_cast<const typename E::T*>(p.k) + b * p.k_stride[0] + h * p.k_stride[1];
    const auto* vp = static_cast<const typename E::T*>(p.v) + b * p.v_stride[0] + h * p.v_stride[1];
    for (int i = tid; i < kKeys * D; i += nthreads) {
        const int j = i / D, d = i % D;
        const int64_t key = k0 + j;
        float kx = 0.0f, vx = 0.0f;
        if (key < p.Lk) {
            kx = E::load(kp + key * p.k_stride[2] + d * p.k_stride[3]);
            vx = E::load(vp + key * p.v_stride[2] + d * p.v_stride[3]);
        }
        sh.k[j][d] = kx;
        sh.v[j][d] = vx;
    }
    for (int j = tid; j < kKeys; j += nthreads) {
        const int64_t key = k0 + j;
        sh.bias[j] = (key < p.Lk && key_kept(p, b, key)) ? 0.0f : neg_inf();
    }
}

// One thread's query row: q (pre-scaled by scale * log2 e) and the unnormalised output o in registers,
// with the running max m (base 2) and running sum l of the online softmax.
template <class E, int D>
struct FlashRow {
    float q[D];
    float o[D];
    float m;
    float l;
    int64_t row;
    bool active;  // row < Lq (threads past the end still help load tiles)

    SDXL_HD void init(const AttnParams& p, int64_t bh, int64_t row_) {
        row = row_;
        active = row < p.Lq;
        m = neg_inf();
        l = 0.0f;
        const int64_t b = bh / p.H, h = bh % p.H;
        const auto* qp = static_cast<const typename E::T*>(p.q) + b * p.q_stride[0] + h * p.q_stride[1] +
                         (active ? row : 0) * p.q_stride[2];
SDXL_UNROLL
        for (int d = 0; d < D; ++d) {
            q[d] = active ? E::load(qp + d * p.q_stride[3]) * p.scale_log2 : 0.0f;
            o[d] = 0.0f;
        }
    }

    // Consumes the tile of keys [k0, k0 + nk) held in sh (nk <= kKeys).
    SDXL_HD void step(const AttnParams& p, const FlashShared<D>& sh, int64_t k0, int nk) {
        constexpr int kChunk = FlashTiles<D>::kChunk;
        if (!active) return;
        int n = nk;
        if (p.causal) {  // keys k0 + j with j > row - k0 are in this row's future
            const int64_t lim = row - k0 + 1;
            if (lim <= 0) return;
            if (lim < n) n = int(lim);
        }
        for (int c = 0; c < n; c += kChunk) {
            float s[kChunk];
            float cmax = neg_inf();
SDXL_UNROLL
            for (int j = 0; j < kChunk; ++j) {
                if (c + j < n) {
                    const float* kr = sh.k[c + j];
                    float dot = 0.0f;
SDXL_UNROLL
                    for (int d = 0; d < D; ++d) dot += q[d] * kr[d];
                    // A select, not dot + bias: a masked key's inf/NaN K would make dot + (-inf) NaN.
                    s[j] = sh.bias[c + j] == 0.0f ? dot : neg_inf();
                } else {
                    s[j] = neg_inf();
                }
                cmax = attn_max(cmax, s[j]);
            }
            const float m_new = attn_max(m, cmax);
            if (m_new == neg_inf()) continue;  // every key so far is masked: nothing to add yet
            const float corr = attn_exp2(m - m_new);  // 0 when m was -inf (then o and l are 0 anyway)
            l *= corr;
SDXL_UNROLL
            for (int d = 0; d < D; ++d) o[d] *= corr;
SDXL_UNROLL
            for (int j = 0; j < kChunk; ++j) {
                if (c + j < n) {
                    const float pj = attn_exp2(s[j] - m_new);  // masked keys: exp2(-inf) = 0
                    l += pj;
                    const float* vr = sh.v[c + j];
SDXL_UNROLL
                    for (int d = 0; d < D; ++d) o[d] += pj * vr[d];
                }
            }
            m = m_new;
        }
    }

    // o / l into the output (zeros when no key was left: l == 0).
    SDXL_HD void finish(const AttnParams& p, int64_t bh) const {
        if (!active) return;
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        const int64_t o_row = p.o_tokens_major ? (int64_t(int(bh) / int(p.H)) * p.Lq + row) * p.H + int(bh) % int(p.H)
                                               : bh * p.Lq + row;
        auto* op = static_cast<typename E::T*>(p.o) + o_row * int64_t(D);
SDXL_UNROLL
        for (int d = 0; d < D; ++d) E::store(op + d, o[d] * inv);
    }
};

// ============================================================================================ simple path

constexpr int kSimpleThreads = 128;

// Shared memory of one simple block: q [D] (pre-scaled), acc [Dv], p [kSimpleThreads]. Dynamic shared
// memory of (D + Dv + kSimpleThreads) floats on the device.
struct SimpleShared {
    float* q;
    float* acc;
    float* p;
};

// The (b, h, query row) of one simple block, split once per block. The routines below take it instead of
// dividing a flat bh by H each: on the device a 64-bit integer division is a called subroutine, and the
// registers that call pins made ptxas spill the simple kernel (8-28 B per thread on sm_80/sm_90).
struct SimpleRow {
    int64_t b, h, row;
};

// q = x / n, r = x % n for 0 <= x and n >= 1. On the device x is a block index (< 2^31, the grid limit that
// launch_simple checks), so 32-bit division suffices: no 64-bit division subroutine in the kernel at all.
struct DivMod {
    int64_t q, r;
};
SDXL_HD DivMod divmod_index(int64_t x, int64_t n) {
#if !defined(__CUDA_ARCH__)
    if (x >> 32) return {x / n, x % n};  // host only (the emulation may loop past 2^32 blocks)
#endif
    if (n > x) return {0, x};
    const auto xu = uint32_t(x), nu = uint32_t(n);  // n <= x < 2^32
    return {int64_t(xu / nu), int64_t(xu % nu)};
}

// Block blk of the simple kernel's grid (B * H * Lq blocks, row-major).
SDXL_HD SimpleRow simple_row(const AttnParams& p, int64_t blk) {
    const DivMod bh = divmod_index(blk, p.Lq), b = divmod_index(bh.q, p.H);
    return {b.q, b.r, bh.r};
}

SDXL_HD int64_t simple_key_end(const AttnParams& p, int64_t row) {
    if (!p.causal) return p.Lk;
    return row + 1 < p.Lk ? row + 1 : p.Lk;
}

template <class E>
SDXL_HD void simple_load_q(const AttnParams& p, SimpleShared sh, const SimpleRow& r, int tid, int nt) {
    const auto* qp = static_cast<const typename E::T*>(p.q) + r.b * p.q_stride[0] + r.h * p.q_stride[1] +
                     r.row * p.q_stride[2];
    for (int d = tid; d < p.D; d += nt) sh.q[d] = E::load(qp + d * p.q_stride[3]) * p.scale_log2;
    for (int d = tid; d < p.Dv; d += nt) sh.acc[d] = 0.0f;
}

// Base-2 score of key `key` (< simple_key_end) for the row whose scaled q is in sh.q; -inf when masked.
template <class E>
SDXL_HD float simple_score(const AttnParams& p, SimpleShared sh, const SimpleRow& r, int64_t key) {
    if (!key_kept(p, r.b, key)) return neg_inf();
    const auto* kp = static_cast<const typename E::T*>(p.k) + r.b * p.k_stride[0] + r.h * p.k_stride[1] +
                     key * p.k_stride[2];
    float dot = 0.0f;
    for (int d = 0; d < p.D; ++d) dot += sh.q[d] * E::load(kp + d * p.k_stride[3]);
    return dot;
}

// Pass 1, per thread: max score over keys tid, tid + nt, ... (block-reduced by the caller).
template <class E>
SDXL_HD float simple_partial_max(const AttnParams& p, SimpleShared sh, const SimpleRow& r, int tid, int nt) {
    const int64_t nk = simple_key_end(p, r.row);
    float mx = neg_inf();
    for (int64_t j = tid; j < nk; j += nt) mx = attn_max(mx, simple_score<E>(p, sh, r, j));
    return mx;
}

// Pass 2a, per thread: p = exp2(s - mx) of key c0 + tid into sh.p[tid] (0 past the row's last key);
// returns it for the thread's partial sum. mx must be finite.
template <class E>
SDXL_HD float simple_chunk_p(const AttnParams& p, SimpleShared sh, const SimpleRow& r, float mx, int64_t c0,
                             int tid) {
    const int64_t key = c0 + tid;
    const float e = key < simple_key_end(p, r.row) ? attn_exp2(simple_score<E>(p, sh, r, key) - mx) : 0.0f;
    sh.p[tid] = e;
    return e;
}

// Pass 2b, per thread: acc[d] += sum_j p[j] v[c0 + j][d] for the thread's dims d = tid, tid + nt, ...
template <class E>
SDXL_HD void simple_chunk_acc(const AttnParams& p, SimpleShared sh, const SimpleRow& r, int64_t c0, int tid,
                              int nt) {
    const int64_t nk = simple_key_end(p, r.row);
    const int n = int(nk - c0 < nt ? nk - c0 : nt);
    const auto* vp = static_cast<const typename E::T*>(p.v) + r.b * p.v_stride[0] + r.h * p.v_stride[1] +
                     c0 * p.v_stride[2];
    for (int d = tid; d < p.Dv; d += nt) {
        float a = sh.acc[d];
        for (int j = 0; j < n; ++j) {
            const float pj = sh.p[j];
            if (pj != 0.0f) a += pj * E::load(vp + j * p.v_stride[2] + d * p.v_stride[3]);
        }
        sh.acc[d] = a;
    }
}

// Final, per thread: o[d] = acc[d] / sum for the thread's dims (zeros when sum == 0: row fully masked).
template <class E>
SDXL_HD void simple_store(const AttnParams& p, SimpleShared sh, const SimpleRow& r, float sum, int tid, int nt) {
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    const int64_t o_row = p.o_tokens_major ? (r.b * p.Lq + r.row) * p.H + r.h : (r.b * p.H + r.h) * p.Lq + r.row;
    auto* op = static_cast<typename E::T*>(p.o) + o_row * int64_t(p.Dv);
    for (int d = tid; d < p.Dv; d += nt) E::store(op + d, sum > 0.0f ? sh.acc[d] * inv : 0.0f);
}

// Head sizes with a flash instantiation (Dv == D, any of F32/F16/BF16); everything else takes the simple path.
constexpr bool flash_head_dim(int d) { return d == 32 || d == 40 || d == 64 || d == 80; }

}  // namespace sdxl::cuda::attn
