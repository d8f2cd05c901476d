// Scaled dot-product attention: per (batch, head) and block of queries, S = scale * Q K^T (sgemm), masked
// softmax over each row of S, O = P V (sgemm). q/k/v are read through their strides (the usual
// [B, L, H, D] -> [B, H, L, D] transposed views need no copy).
//
// Two schedules, chosen by size so that our pool and OpenBLAS's threads never fight:
//  - blocks small enough for OpenBLAS to run on the calling thread (cross-attention on 77 keys, CLIP):
//    every (b, h, query block) is an independent task on our workers;
//  - long key sequences (self-attention over 1024+ tokens): (b, h, block) one after another, each sgemm
//    parallelised by OpenBLAS, the softmax rows by our pool.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backends/cpu/cpu_ops.h"
#include "core/parallel.h"

namespace sdxl::cpu {

namespace {

// Score-block budget of the sequential schedule, in floats (4 MiB).
constexpr int64_t kScoreBudget = int64_t(1) << 20;
// The task schedule needs at least this many query rows per block to keep sgemm efficient.
constexpr int64_t kMinTaskRows = 32;

// Softmax over the first n entries of s (keys past n are causally masked, keep[j] == 0 masks key j);
// masked entries become 0. A row with no key left becomes all zeros.
void masked_softmax_row(float* s, int64_t n, const uint8_t* keep) {
    float mx = -std::numeric_limits<float>::infinity();
    bool any = false;
    for (int64_t j = 0; j < n; ++j) {
        if (keep && !keep[j]) continue;
        any = true;
        mx = std::max(mx, s[j]);
    }
    if (!any) {
        std::fill(s, s + n, 0.0f);
        return;
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n; ++j) {
        if (keep && !keep[j]) {
            s[j] = 0.0f;
            continue;
        }
        s[j] = std::exp(s[j] - mx);
        sum += s[j];
    }
    const float inv = float(1.0 / sum);
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
    auto run_block = [&](int64_t bh, int64_t q0, int64_t rows, float* p, bool parallel_rows) {
        const int64_t b = bh / H, h = bh % H;
        const int64_t nk = causal ? std::min(Lk, q0 + rows) : Lk;  // keys past the last row's are all masked
        GemmOperand qa = qop, kb = kop, vb = vop;
        qa.ptr = qp + b * q.strides()[0] + h * q.strides()[1] + q0 * q.strides()[2];
        kb.ptr = kp + b * k.strides()[0] + h * k.strides()[1];
        vb.ptr = vp + b * v.strides()[0] + h * v.strides()[1];
        sgemm(qa, kb, rows, nk, D, scale, 0.0f, p, nk);  // [rows, nk]
        const uint8_t* kmask = keep.empty() ? nullptr : keep.data() + b * Lk;
        auto softmax_rows = [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                float* row = p + r * nk;
                const int64_t n = causal ? std::min(nk, q0 + r + 1) : nk;
                std::fill(row + n, row + nk, 0.0f);
                masked_softmax_row(row, n, kmask);
            }
        };
        if (parallel_rows) parallel_for(rows, std::max<int64_t>(1, kElementwiseGrain / nk), softmax_rows);
        else softmax_rows(0, rows);
        const GemmOperand pa = gemm_operand(p, rows, nk, nk, 1);
        sgemm(pa, vb, rows, Dv, nk, 1.0f, 0.0f, yp + (bh * Lq + q0) * Dv, Dv);  // [rows, Dv]
    };

    const int64_t heads = B * H;
    const int64_t serial_rows = int64_t(kBlasSerialMnk / (double(Lk) * double(std::max<int64_t>({D, Dv, 1}))));
    const int64_t task_rows = std::min(Lq, serial_rows);
    if (task_rows >= std::min(Lq, kMinTaskRows)) {
        const int64_t blocks = (Lq + task_rows - 1) / task_rows;
        parallel_for(heads * blocks, 1, [&](int64_t t0, int64_t t1) {
            std::vector<float> p(size_t(task_rows * Lk));
            for (int64_t t = t0; t < t1; ++t) {
                const int64_t q0 = (t % blocks) * task_rows;
                run_block(t / blocks, q0, std::min(task_rows, Lq - q0), p.data(), false);
            }
        });
    } else {
        const int64_t block_rows = std::clamp<int64_t>(kScoreBudget / Lk, 1, Lq);
        std::vector<float> p(size_t(block_rows * Lk));
        for (int64_t bh = 0; bh < heads; ++bh)
            for (int64_t q0 = 0; q0 < Lq; q0 += block_rows)
                run_block(bh, q0, std::min(block_rows, Lq - q0), p.data(), true);
    }
    return y;
}

}  // namespace sdxl::cpu
