// Scaled dot-product attention, flash style: per (batch, head) and block of queries, the keys are walked in
// blocks; each block's scores S = scale * Q K_blk^T get an online softmax in fp32 (running row max and sum;
// earlier partial outputs are rescaled when the max grows) and O += P V_blk. Nothing of size Lq x Lk is ever
// materialised (the VAE's one-head attention over 16384 tokens included): the score tile stays in L2.
//
// Two paths compute the same thing:
//  - where the CPU has AVX2 and FMA (checked at run time; the library itself targets x86-64-v2), K and V are
//    packed once per call into 16-wide panels and both products run on a 6 x 16 register-blocked kernel
//    (with a head size of 64, sgemm re-packing its operands for every tile cost a third of its time);
//  - otherwise both products are single-threaded sgemm calls on strided views (the usual
//    [B, L, H, D] -> [B, H, L, D] transposed views need no copy), softmax vectorised by the compiler.
// Every (b, h, query block) is an independent task on the pool (see cpu_ops.h on threading).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SDXL_ATTN_X86 1
#endif

#include "backends/cpu/cpu_math.h"
#include "backends/cpu/cpu_ops.h"
#include "core/parallel.h"

namespace sdxl::cpu {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Query rows per task and keys per block: a 256 x 256 score tile is 256 KiB (L2 is 512 KiB per core on the
// 2-core EPYC we measure on), large enough for the products to run near peak with head dims of 64. Measured
// (sgemm path) with tests/attention_perf.cpp at 2 x 10 heads x 4096 tokens: 256 x 256 ~ 256 x 128 >
// 128 x 256/512 > 64 x 256. The AVX2 path shrinks the key block for wide heads (see block_keys there).
constexpr int64_t kBlockRows = 256, kBlockKeys = 256;

// ---- softmax row pieces: portable versions (vectorised by the compiler at the baseline ISA)

struct RowOps {
    // Max of s[0, n), n >= 1.
    float (*max)(const float*, int64_t);
    // s[j] = exp(s[j] - m) in place, returns the sum (m finite).
    float (*exp_sum)(float*, int64_t, float);
    // o[j] *= a.
    void (*scale)(float*, int64_t, float);
};

float max_generic(const float* s, int64_t n) { return row_max(s, n); }

float exp_sum_generic(float* s, int64_t n, float m) { return float(exp_sub_sum(s, n, m)); }

void scale_generic(float* o, int64_t n, float a) {
    for (int64_t j = 0; j < n; ++j) o[j] *= a;
}

#ifdef SDXL_ATTN_X86
// ---- AVX2/FMA versions (only called where the CPU has both)

// fast_exp (cpu_math.h) on 8 lanes: same reduction and polynomial, Horner steps fused.
__attribute__((target("avx2,fma"))) inline __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-86.0f), hi = _mm256_set1_ps(88.72f);
    const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);  // a NaN becomes lo here, restored below
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    const __m256 t = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), magic);
    const __m256 fn = _mm256_sub_ps(t, magic);
    const __m256i n = _mm256_sub_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(0x4b400000));
    __m256 r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(0.693145751953125f), xc);
    r = _mm256_fnmadd_ps(fn, _mm256_set1_ps(1.42860682030941723212e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i sbits = _mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(126)), 23);  // 2^(n-1)
    __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(sbits)), _mm256_set1_ps(2.0f));
    y = _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y);                                   // 0 below
    y = _mm256_blendv_ps(y, _mm256_set1_ps(std::numeric_limits<float>::infinity()),
                         _mm256_cmp_ps(x, hi, _CMP_GT_OQ));                                       // inf above
    return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));                            // NaN stays
}

__attribute__((target("avx2,fma"))) float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

// Lanes [0, t) set, t in [1, 8).
__attribute__((target("avx2,fma"))) inline __m256i tail_mask(int64_t t) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(t)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

__attribute__((target("avx2,fma"))) float max_avx2(const float* s, int64_t n) {
    __m256 m0 = _mm256_set1_ps(s[0]), m1 = m0;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        m0 = _mm256_max_ps(m0, _mm256_loadu_ps(s + j));
        m1 = _mm256_max_ps(m1, _mm256_loadu_ps(s + j + 8));
    }
    for (; j + 8 <= n; j += 8) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(s + j));
    if (j < n) {  // the tail as one masked load; the other lanes repeat s[0]
        const __m256i mask = tail_mask(n - j);
        m1 = _mm256_blendv_ps(m1, _mm256_maskload_ps(s + j, mask), _mm256_castsi256_ps(mask));
    }
    return hmax8(_mm256_max_ps(m0, m1));
}

__attribute__((target("avx2,fma"))) float exp_sum_avx2(float* s, int64_t n, float mx) {
    const __m256 m = _mm256_set1_ps(mx);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
        const __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j + 8), m));
        _mm256_storeu_ps(s + j, e0);
        _mm256_storeu_ps(s + j + 8, e1);
        a0 = _mm256_add_ps(a0, e0);
        a1 = _mm256_add_ps(a1, e1);
    }
    for (; j + 8 <= n; j += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), m));
        _mm256_storeu_ps(s + j, e);
        a0 = _mm256_add_ps(a0, e);
    }
    if (j < n) {  // the tail as one masked load and store; the other lanes add nothing
        const __m256i mask = tail_mask(n - j);
        const __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_maskload_ps(s + j, mask), m)),
                                       _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(s + j, mask, e);
        a1 = _mm256_add_ps(a1, e);
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, _mm256_add_ps(a0, a1));
    float sum = 0.0f;
    for (float l : lanes) sum += l;
    return sum;
}

__attribute__((target("avx2,fma"))) void scale_avx2(float* o, int64_t n, float a) {
    const __m256 av = _mm256_set1_ps(a);
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(o + j, _mm256_mul_ps(_mm256_loadu_ps(o + j), av));
    for (; j < n; ++j) o[j] *= a;
}


// ---- the fused AVX2/FMA path: own register-blocked products on K and V packed once per call, so nothing
// is re-packed per tile (with a head size of 64, OpenBLAS spent a third of its time packing operands).

constexpr int kMR = 6;   // rows of a micro tile
constexpr int kNR = 16;  // columns of a micro tile (two 8-float vectors)

// C[MR, 16] = alpha * A[MR, K] @ Bp[K, 16] (accumulate: C += A @ Bp). A's rows are lda apart, contiguous;
// Bp is a packed panel (16 floats per k). 12 accumulators + 2 B vectors + 1 broadcast fit the 16 ymm.
template <int MR>
__attribute__((target("avx2,fma"))) inline void micro_tile(const float* a, int64_t lda, const float* bp, int64_t K,
                                                           float* c, int64_t ldc, float alpha, bool accumulate) {
    __m256 c0[MR], c1[MR];
    const float* ar[MR];  // row pointers, so that each broadcast is one indexed load
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
        c0[i] = c1[i] = _mm256_setzero_ps();
        ar[i] = a + i * lda;
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < K; ++k) {
        const __m256 b0 = _mm256_loadu_ps(bp + k * kNR), b1 = _mm256_loadu_ps(bp + k * kNR + 8);
#pragma GCC unroll 6
        for (int i = 0; i < MR; ++i) {
            const __m256 av = _mm256_broadcast_ss(ar[i] + k);
            c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
        float* ci = c + i * ldc;
        if (accumulate) {
            _mm256_storeu_ps(ci, _mm256_add_ps(_mm256_loadu_ps(ci), c0[i]));
            _mm256_storeu_ps(ci + 8, _mm256_add_ps(_mm256_loadu_ps(ci + 8), c1[i]));
        } else {
            const __m256 al = _mm256_set1_ps(alpha);
            _mm256_storeu_ps(ci, _mm256_mul_ps(c0[i], al));
            _mm256_storeu_ps(ci + 8, _mm256_mul_ps(c1[i], al));
        }
    }
}

// C[rows, 16 * panels] (+)= alpha * A[rows, K] @ [panels of Bp, panel_stride apart]; rows in micro tiles.
__attribute__((target("avx2,fma"))) void panel_product(const float* a, int64_t lda, int64_t rows, const float* bp,
                                                       int64_t panels, int64_t panel_stride, int64_t K, float* c,
                                                       int64_t ldc, float alpha, bool accumulate) {
    for (int64_t i0 = 0; i0 < rows; i0 += kMR) {
        const float* ai = a + i0 * lda;
        float* ci = c + i0 * ldc;
        const int64_t mr = std::min<int64_t>(kMR, rows - i0);
        for (int64_t p = 0; p < panels; ++p) {
            const float* b = bp + p * panel_stride;
            float* cp = ci + p * kNR;
            switch (mr) {
                case 6: micro_tile<6>(ai, lda, b, K, cp, ldc, alpha, accumulate); break;
                case 5: micro_tile<5>(ai, lda, b, K, cp, ldc, alpha, accumulate); break;
                case 4: micro_tile<4>(ai, lda, b, K, cp, ldc, alpha, accumulate); break;
                case 3: micro_tile<3>(ai, lda, b, K, cp, ldc, alpha, accumulate); break;
                case 2: micro_tile<2>(ai, lda, b, K, cp, ldc, alpha, accumulate); break;
                default: micro_tile<1>(ai, lda, b, K, cp, ldc, alpha, accumulate); break;
            }
        }
    }
}

bool cpu_has_avx2_fma() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

#ifdef SDXL_ATTN_X86
bool cpu_has_avx2_fma_cached() {
    static const bool has = cpu_has_avx2_fma();
    return has;
}
#endif

std::atomic<bool> force_portable{false};

const RowOps& row_ops() {
    static const RowOps ops = [] {
#ifdef SDXL_ATTN_X86
        if (cpu_has_avx2_fma()) return RowOps{max_avx2, exp_sum_avx2, scale_avx2};
#endif
        return RowOps{max_generic, exp_sum_generic, scale_generic};
    }();
    return ops;
}

// Online-softmax step for the score tile s [rows, nk] (row stride lds) of key block [j0, j0 + nk), rows
// [q0, q0 + rows): masks, exponentiates in place (masked and causally hidden entries become 0), updates each
// row's running max m and sum l, and rescales the row's partial output o (row stride ldo, width dv) when its
// max grows. A row with nothing visible so far keeps m = -inf, l = 0 and an all-zero output row.
void softmax_step(float* s, int64_t lds, int64_t rows, int64_t nk, int64_t q0, int64_t j0, bool causal,
                  const uint8_t* kmask, float* m, float* l, float* o, int64_t ldo, int64_t dv, const RowOps& ro) {
    for (int64_t r = 0; r < rows; ++r) {
        float* row = s + r * lds;
        // Keys [0, n) of this block are causally visible to the row.
        const int64_t n = causal ? std::clamp<int64_t>(q0 + r + 1 - j0, 0, nk) : nk;
        std::fill(row + n, row + nk, 0.0f);
        if (kmask)
            for (int64_t j = 0; j < n; ++j)
                if (!kmask[j0 + j]) row[j] = kNegInf;  // exp gives exactly 0
        const float bmax = n > 0 ? ro.max(row, n) : kNegInf;
        if (bmax == kNegInf) {  // nothing visible in this block
            std::fill(row, row + n, 0.0f);
            continue;
        }
        const float m_new = bmax != bmax ? bmax : std::max(m[r], bmax);  // a NaN score goes on and shows
        const float bsum = ro.exp_sum(row, n, m_new);
        if (m[r] == kNegInf) {  // first visible block: the output row is still all zeros
            l[r] = bsum;
        } else if (m_new != m[r]) {  // the max grew: earlier terms shrink by exp(m_old - m_new)
            const float alpha = fast_exp(m[r] - m_new);
            l[r] = l[r] * alpha + bsum;
            ro.scale(o + r * ldo, dv, alpha);
        } else {
            l[r] += bsum;
        }
        m[r] = m_new;
    }
}

struct Scratch {
    std::vector<float> s, m, l, o;
};

}  // namespace

void attention_force_portable(bool on) { force_portable = on; }

// q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv], key_mask [B, Lk] or undefined -> [B, H, Lq, Dv]
Tensor attention(const Tensor& q_in, const Tensor& k_in, const Tensor& v_in, const Tensor& key_mask, bool causal,
                 float scale) {
    const int64_t B = q_in.shape()[0], H = q_in.shape()[1], Lq = q_in.shape()[2], D = q_in.shape()[3];
    const int64_t Lk = k_in.shape()[2], Dv = v_in.shape()[3];
    Tensor y = Tensor::empty({B, H, Lq, Dv}, DType::F32);
    if (y.numel() == 0) return y;
    float* yp = y.data<float>();
    if (Lk == 0) {  // no keys: every row is fully masked
        std::memset(yp, 0, size_t(y.numel()) * sizeof(float));
        return y;
    }

    std::vector<uint8_t> keep;  // [B, Lk], 1 = attend
    if (key_mask.defined()) {
        const Tensor mc = key_mask.contiguous();
        keep.resize(size_t(B * Lk));
        if (mc.dtype() == DType::I64) {
            const int64_t* mp = mc.data<int64_t>();
            for (size_t i = 0; i < keep.size(); ++i) keep[i] = mp[i] != 0;
        } else {
            const float* mp = mc.data<float>();
            for (size_t i = 0; i < keep.size(); ++i) keep[i] = mp[i] != 0.0f;
        }
    }
    const RowOps& ro = row_ops();

#ifdef SDXL_ATTN_X86
    if (cpu_has_avx2_fma_cached() && !force_portable) {
        // Q rows are read in place (contiguous along D); K and V are packed once into 16-wide panels:
        // kp[h][key panel][d][16] (keys past Lk zero) and vp[h][column panel][key][16] (columns past Dv zero).
        Tensor q = q_in.strides()[3] == 1 || D == 1 ? q_in : q_in.contiguous();
        const int64_t lk16 = (Lk + kNR - 1) / kNR * kNR, dv16 = (Dv + kNR - 1) / kNR * kNR;
        const int64_t kpanels = lk16 / kNR, vpanels = dv16 / kNR;
        const int64_t khead = lk16 * D, vhead = dv16 * Lk;
        std::vector<float> kpack(size_t(B * H * khead)), vpack(size_t(B * H * vhead));
        const float* kbase = k_in.data<float>();
        const float* vbase = v_in.data<float>();
        const int64_t* ks = k_in.strides().data();
        const int64_t* vs = v_in.strides().data();
        parallel_for(B * H, 1, [&](int64_t h0, int64_t h1) {
            for (int64_t bh = h0; bh < h1; ++bh) {
                const int64_t b = bh / H, h = bh % H;
                const float* kh = kbase + b * ks[0] + h * ks[1];
                float* kd = kpack.data() + bh * khead;
                for (int64_t p = 0; p < kpanels; ++p)
                    for (int64_t jj = 0; jj < kNR; ++jj) {
                        const int64_t j = p * kNR + jj;
                        float* dst = kd + p * D * kNR + jj;
                        if (j < Lk)
                            for (int64_t d = 0; d < D; ++d) dst[d * kNR] = kh[j * ks[2] + d * ks[3]];
                        else
                            for (int64_t d = 0; d < D; ++d) dst[d * kNR] = 0.0f;
                    }
                const float* vh = vbase + b * vs[0] + h * vs[1];
                float* vd = vpack.data() + bh * vhead;
                for (int64_t c = 0; c < vpanels; ++c)
                    for (int64_t j = 0; j < Lk; ++j) {
                        float* dst = vd + (c * Lk + j) * kNR;
                        for (int64_t cc = 0; cc < kNR; ++cc) {
                            const int64_t col = c * kNR + cc;
                            dst[cc] = col < Dv ? vh[j * vs[2] + col * vs[3]] : 0.0f;
                        }
                    }
            }
        });
        const float* qbase = q.data<float>();
        const int64_t* qs = q.strides().data();
        const int64_t q_ld = Lq == 1 ? D : qs[2];
        // Key blocks keep the packed K and V of a block near L2 (about 128 KiB at head size 64 + 64).
        const int64_t block_rows = std::min(Lq, kBlockRows);
        const int64_t block_keys =
            std::min(lk16, std::clamp<int64_t>((int64_t(1) << 15) / std::max<int64_t>(1, D + Dv) / kNR * kNR, kNR,
                                               kBlockKeys));
        const int64_t blocks = (Lq + block_rows - 1) / block_rows;
        parallel_for(B * H * blocks, 1, [&](int64_t t0, int64_t t1) {
            Scratch sc;
            sc.s.resize(size_t(block_rows * block_keys));
            sc.m.resize(size_t(block_rows));
            sc.l.resize(size_t(block_rows));
            sc.o.resize(size_t(block_rows * dv16));
            for (int64_t t = t0; t < t1; ++t) {
                const int64_t bh = t / blocks, b = bh / H, h = bh % H;
                const int64_t q0 = (t % blocks) * block_rows, rows = std::min(block_rows, Lq - q0);
                const int64_t nk_all = causal ? std::min(Lk, q0 + rows) : Lk;
                const float* qa = qbase + b * qs[0] + h * qs[1] + q0 * q_ld;
                const float* kd = kpack.data() + bh * khead;
                const float* vd = vpack.data() + bh * vhead;
                const uint8_t* kmask = keep.empty() ? nullptr : keep.data() + b * Lk;
                float *s = sc.s.data(), *m = sc.m.data(), *l = sc.l.data(), *o = sc.o.data();
                std::fill(m, m + rows, kNegInf);
                std::fill(l, l + rows, 0.0f);
                std::fill(o, o + rows * dv16, 0.0f);
                for (int64_t j0 = 0; j0 < nk_all; j0 += block_keys) {
                    const int64_t nk = std::min(block_keys, nk_all - j0);
                    const int64_t np = (nk + kNR - 1) / kNR;  // key panels (the last may run past nk: ignored)
                    panel_product(qa, q_ld, rows, kd + (j0 / kNR) * D * kNR, np, D * kNR, D, s, block_keys, scale,
                                  false);
                    softmax_step(s, block_keys, rows, nk, q0, j0, causal, kmask, m, l, o, dv16, dv16, ro);
                    panel_product(s, block_keys, rows, vd + j0 * kNR, vpanels, Lk * kNR, nk, o, dv16, 1.0f, true);
                }
                float* yo = yp + (bh * Lq + q0) * Dv;
                for (int64_t r = 0; r < rows; ++r) {  // normalise; a row with no key left is all zeros
                    const float inv = l[r] > 0.0f ? 1.0f / l[r] : l[r] != l[r] ? l[r] : 0.0f;
                    for (int64_t c = 0; c < Dv; ++c) yo[r * Dv + c] = o[r * dv16 + c] * inv;
                }
            }
        });
        return y;
    }
#endif

    // Portable path: both products on sgemm. Per-(b, h) matrices must be sgemm-readable: Q [Lq, D],
    // K^T [D, Lk], V [Lk, Dv]; copy if not.
    Tensor q = q_in, k = k_in, v = v_in;
    auto op_of = [](const Tensor& t, bool transpose) {
        const int64_t r = t.shape()[2], c = t.shape()[3], sr = t.strides()[2], sc = t.strides()[3];
        return transpose ? gemm_operand(t.data<float>(), c, r, sc, sr) : gemm_operand(t.data<float>(), r, c, sr, sc);
    };
    GemmOperand qop = op_of(q, false), kop = op_of(k, true), vop = op_of(v, false);
    if (!qop.ok) qop = op_of(q = q.contiguous(), false);
    if (!kop.ok) kop = op_of(k = k.contiguous(), true);
    if (!vop.ok) vop = op_of(v = v.contiguous(), false);
    const float* qp = q.data<float>();
    const float* kp = k.data<float>();
    const float* vp = v.data<float>();
    // Key row stride as seen by the K^T / V operands (a key block is an offset of this many floats).
    const int64_t k_row = k.strides()[2], v_row = v.strides()[2];

    const int64_t block_rows = std::min(Lq, kBlockRows);
    const int64_t block_keys = std::min(Lk, kBlockKeys);
    const int64_t blocks = (Lq + block_rows - 1) / block_rows;

    // One task: rows [q0, q0 + rows) of head bh; the output rows accumulate in y.
    auto run_block = [&](int64_t bh, int64_t q0, int64_t rows, Scratch& sc) {
        const int64_t b = bh / H, h = bh % H;
        const int64_t nk_all = causal ? std::min(Lk, q0 + rows) : Lk;  // keys past the last row's are all masked
        GemmOperand qa = qop;
        qa.ptr = qp + b * q.strides()[0] + h * q.strides()[1] + q0 * q.strides()[2];
        const float* kbase = kp + b * k.strides()[0] + h * k.strides()[1];
        const float* vbase = vp + b * v.strides()[0] + h * v.strides()[1];
        const uint8_t* kmask = keep.empty() ? nullptr : keep.data() + b * Lk;
        float* o = yp + (bh * Lq + q0) * Dv;
        float* m = sc.m.data();
        float* l = sc.l.data();
        std::fill(m, m + rows, kNegInf);
        std::fill(l, l + rows, 0.0f);
        for (int64_t j0 = 0; j0 < nk_all; j0 += block_keys) {
            const int64_t nk = std::min(block_keys, nk_all - j0);
            GemmOperand kb = kop, vb = vop;
            kb.ptr = kbase + j0 * k_row;
            vb.ptr = vbase + j0 * v_row;
            float* s = sc.s.data();
            sgemm(qa, kb, rows, nk, D, scale, 0.0f, s, nk);  // [rows, nk]
            // The first block's product (beta 0) overwrites o, so rows with nothing visible yet stay zero.
            softmax_step(s, nk, rows, nk, q0, j0, causal, kmask, m, l, o, Dv, Dv, ro);
            const GemmOperand pa = gemm_operand(s, rows, nk, nk, 1);
            sgemm(pa, vb, rows, Dv, nk, 1.0f, j0 == 0 ? 0.0f : 1.0f, o, Dv);  // O (+)= P V_blk
        }
        for (int64_t r = 0; r < rows; ++r) {  // normalise; a row with no key left is all zeros
            float* orow = o + r * Dv;
            if (l[r] > 0.0f) ro.scale(orow, Dv, 1.0f / l[r]);
            else if (!(l[r] != l[r])) std::fill(orow, orow + Dv, 0.0f);
        }
    };

    parallel_for(B * H * blocks, 1, [&](int64_t t0, int64_t t1) {
        Scratch sc;
        sc.s.resize(size_t(block_rows * block_keys));
        sc.m.resize(size_t(block_rows));
        sc.l.resize(size_t(block_rows));
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t q0 = (t % blocks) * block_rows;
            run_block(t / blocks, q0, std::min(block_rows, Lq - q0), sc);
        }
    });
    return y;
}

}  // namespace sdxl::cpu
