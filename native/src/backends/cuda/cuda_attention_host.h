// Host-side companions of the CUDA attention kernels (cuda_attention_tile.h):
//  * attention_params: AttnParams from tensors, shared by the CUDA op (cuda_attention_ops.cpp) and the tests;
//  * emulate_flash / emulate_simple: the kernels' block and thread structure run on the CPU with the very
//    same per-thread routines. Each __syncthreads() of a kernel is a boundary between two loops over the
//    block's threads here; the block reductions of the simple kernel become plain loops (so only their
//    summation order differs from the device). Used by tests/test_cuda_attention.cpp in every build.
#pragma once

#include <memory>
#include <vector>

#include "backends/cuda/cuda_attention_tile.h"
#include "core/tensor.h"

namespace sdxl::cuda::attn {

// q [B, H, Lq, D], k [B, H, Lk, D], v [B, H, Lk, Dv] (any strides), key_mask [B, Lk] F32/I64 or undefined,
// out [B, H, Lq, Dv], contiguous or a view of a contiguous [B, Lq, H, Dv] buffer (what the op passes); all on
// one device and already validated by ops::attention. `scale` is the
// resolved softmax scale.
inline AttnParams attention_params(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask,
                                   bool causal, float scale, const Tensor& out) {
    AttnParams p;
    p.q = q.raw_data();
    p.k = k.raw_data();
    p.v = v.raw_data();
    p.o = out.raw_data();
    const int64_t H = out.shape()[1], Lq = out.shape()[2], Dv = out.shape()[3];
    const Shape tokens_major{Lq * H * Dv, Dv, H * Dv, 1};  // strides of [B, Lq, H, Dv] seen as [B, H, Lq, Dv]
    if (out.is_contiguous()) {
        p.o_tokens_major = 0;
    } else if (out.strides() == tokens_major || H == 1) {
        p.o_tokens_major = 1;
    } else {
        fail(ErrorCode::INTERNAL, "attention: output ", out.describe(), " is neither [B, H, Lq, Dv] nor [B, Lq, H, Dv]");
    }
    for (int i = 0; i < 4; ++i) {
        p.q_stride[i] = q.strides()[size_t(i)];
        p.k_stride[i] = k.strides()[size_t(i)];
        p.v_stride[i] = v.strides()[size_t(i)];
    }
    p.B = q.shape()[0];
    p.H = q.shape()[1];
    p.Lq = q.shape()[2];
    p.Lk = k.shape()[2];
    p.D = int(q.shape()[3]);
    p.Dv = int(v.shape()[3]);
    p.scale_log2 = scale * kLog2e;
    if (key_mask.defined()) {
        if (key_mask.dtype() == DType::I64) p.mask_i64 = static_cast<const int64_t*>(key_mask.raw_data());
        else p.mask_f32 = static_cast<const float*>(key_mask.raw_data());
        p.mask_stride_b = key_mask.strides()[0];
        p.mask_stride_k = key_mask.strides()[1];
    }
    p.causal = causal ? 1 : 0;
    return p;
}

// The flash kernel, block by block: kRows "threads" per block, barrier-separated phases as loops.
template <class E, int D>
void emulate_flash(const AttnParams& p) {
    using Tiles = FlashTiles<D>;
    auto sh = std::make_unique<FlashShared<D>>();
    std::vector<FlashRow<E, D>> rows(static_cast<size_t>(Tiles::kRows));
    const int64_t row_blocks = (p.Lq + Tiles::kRows - 1) / Tiles::kRows;
    for (int64_t blk = 0; blk < p.B * p.H * row_blocks; ++blk) {  // blockIdx.x
        const int64_t bh = blk / row_blocks, row0 = (blk % row_blocks) * Tiles::kRows;
        for (int t = 0; t < Tiles::kRows; ++t) rows[size_t(t)].init(p, bh, row0 + t);
        const int64_t kend = flash_key_end(p, row0, Tiles::kRows);
        for (int64_t k0 = 0; k0 < kend; k0 += Tiles::kKeys) {
            for (int t = 0; t < Tiles::kRows; ++t) flash_load_tile<E, D>(p, *sh, bh, k0, t, Tiles::kRows);
            const int nk = int(kend - k0 < Tiles::kKeys ? kend - k0 : Tiles::kKeys);
            for (int t = 0; t < Tiles::kRows; ++t) rows[size_t(t)].step(p, *sh, k0, nk);
        }
        for (int t = 0; t < Tiles::kRows; ++t) rows[size_t(t)].finish(p, bh);
    }
}

// The simple kernel, block by block (one block per (b, h, query row)).
template <class E>
void emulate_simple(const AttnParams& p) {
    constexpr int nt = kSimpleThreads;
    std::vector<float> qbuf(size_t(p.D) + 1), acc(size_t(p.Dv) + 1), pbuf(nt);
    const SimpleShared sh{qbuf.data(), acc.data(), pbuf.data()};
    for (int64_t blk = 0; blk < p.B * p.H * p.Lq; ++blk) {
        const SimpleRow r = simple_row(p, blk);
        for (int t = 0; t < nt; ++t) simple_load_q<E>(p, sh, r, t, nt);
        float mx = neg_inf();
        for (int t = 0; t < nt; ++t) mx = attn_max(mx, simple_partial_max<E>(p, sh, r, t, nt));
        std::vector<float> lsum(nt, 0.0f);
        if (mx != neg_inf()) {
            const int64_t nk = simple_key_end(p, r.row);
            for (int64_t c0 = 0; c0 < nk; c0 += nt) {
                for (int t = 0; t < nt; ++t) lsum[size_t(t)] += simple_chunk_p<E>(p, sh, r, mx, c0, t);
                for (int t = 0; t < nt; ++t) simple_chunk_acc<E>(p, sh, r, c0, t, nt);
            }
        }
        float sum = 0.0f;
        for (float x : lsum) sum += x;
        for (int t = 0; t < nt; ++t) simple_store<E>(p, sh, r, sum, t, nt);
    }
}

}  // namespace sdxl::cuda::attn
