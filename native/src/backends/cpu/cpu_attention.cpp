// Scaled dot-product attention: per (batch, head) and block of queries, S = scale * Q K^T (sgemm), masked
// softmax over each row of S, O = P V (sgemm). q/k/v are read through their strides (the usual
// [B, L, H, D] -> [B, H, L, D] transposed views need no copy).
//
// Every (b, h, query block) is an independent task on the pool; its two products run single-threaded on
// the worker (see cpu_ops.h on threading). Blocks keep the score tile near L2 size, so memory stays
// bounded even for the VAE's one-head attention over 16384 tokens.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backends/cpu/cpu_math.h"
#include "backends/cpu/cpu_ops.h"
#include "core/parallel.h"

namespace sdxl::cpu {

namespace {

// Score tile per task, in floats (2 MiB), and the row range of a query block (gemm efficiency vs memory).
constexpr int64_t kScoreBudget = int64_t(1) << 19;
constexpr int64_t kMinBlockRows = 32, kMaxBlockRows = 256;

// Softmax over the first n entries of s (keys past n are causally masked, keep[j] == 0 masks key j);
// masked entries become 0. A row with no key left becomes all zeros.
void masked_softmax_row(float* s, int64_t n, const uint8_t* keep) {
    if (keep) {
        bool any = false;
        for (int64_t j = 0; j < n; ++j) {
            if (keep[j]) any = true;
            else s[j] = -std::numeric_limits<float>::infinity();  // exp gives exactly 0
        }
        if (!any) {
            std::fill(s, s + n, 0.0f);
            return;
        }
    }
    if (n == 0) return;
    const float mx = row_max(s, n);
    const float inv = float(1.0 / exp_sub_sum(s, n, mx));
    for (int64_t j = 0; j < n; ++j) s[j] *= inv;
}

}  // namespace

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

    // Per-(b, h) matrices must be sgemm-readable: Q [Lq, D], K^T [D, Lk], V [Lk, Dv]; copy if not.
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

    // One block: rows [q0, q0 + rows) of head bh, scores in p (room for rows * Lk floats).
    auto run_block = [&](int64_t bh, int64_t q0, int64_t rows, float* p) {
        const int64_t b = bh / H, h = bh % H;
        const int64_t nk = causal ? std::min(Lk, q0 + rows) : Lk;  // keys past the last row's are all masked
        GemmOperand qa = qop, kb = kop, vb = vop;
        qa.ptr = qp + b * q.strides()[0] + h * q.strides()[1] + q0 * q.strides()[2];
        kb.ptr = kp + b * k.strides()[0] + h * k.strides()[1];
        vb.ptr = vp + b * v.strides()[0] + h * v.strides()[1];
        sgemm(qa, kb, rows, nk, D, scale, 0.0f, p, nk);  // [rows, nk]
        const uint8_t* kmask = keep.empty() ? nullptr : keep.data() + b * Lk;
        for (int64_t r = 0; r < rows; ++r) {
            float* row = p + r * nk;
            const int64_t n = causal ? std::min(nk, q0 + r + 1) : nk;
            std::fill(row + n, row + nk, 0.0f);
            masked_softmax_row(row, n, kmask);
        }
        const GemmOperand pa = gemm_operand(p, rows, nk, nk, 1);
        sgemm(pa, vb, rows, Dv, nk, 1.0f, 0.0f, yp + (bh * Lq + q0) * Dv, Dv);  // [rows, Dv]
    };

    const int64_t block_rows = std::min(Lq, std::clamp<int64_t>(kScoreBudget / Lk, kMinBlockRows, kMaxBlockRows));
    const int64_t blocks = (Lq + block_rows - 1) / block_rows;
    parallel_for(B * H * blocks, 1, [&](int64_t t0, int64_t t1) {
        std::vector<float> p(static_cast<size_t>(block_rows * Lk));
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t q0 = (t % blocks) * block_rows;
            run_block(t / blocks, q0, std::min(block_rows, Lq - q0), p.data());
        }
    });
    return y;
}

}  // namespace sdxl::cpu
