// linear and batched matmul on OpenBLAS sgemm, plus the gemm helpers that conv and attention share.
// Strided operands whose last two dims are a plain or transposed row-major matrix go to sgemm as they
// are (CblasTrans for a transposed view such as k.transpose(-1, -2)); anything else is copied first.
#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <mutex>

#include "backends/cpu/cpu_ops.h"
#include "core/parallel.h"

namespace sdxl::cpu {

GemmOperand gemm_operand(const float* ptr, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
    GemmOperand op;
    op.ptr = ptr;
    // The stride of a dimension of size <= 1 is never used to address anything, so it may be whatever
    // makes the layout fit (unsqueezed and narrowed views carry arbitrary strides there).
    bool plain = (cols <= 1 || col_stride == 1) && (rows <= 1 || row_stride >= std::max<int64_t>(1, cols));
    if (plain) {
        op.trans = false;
        op.ld = rows <= 1 ? std::max<int64_t>(1, cols) : row_stride;
        op.ok = true;
        return op;
    }
    // Column-major storage: the matrix is the transpose of a row-major [cols, rows] one.
    bool transposed = (rows <= 1 || row_stride == 1) && (cols <= 1 || col_stride >= std::max<int64_t>(1, rows));
    if (transposed) {
        op.trans = true;
        op.ld = cols <= 1 ? std::max<int64_t>(1, rows) : col_stride;
        op.ok = true;
    }
    return op;
}

namespace {

// Below this many multiply-adds a product runs as one call: splitting costs more than it saves.
constexpr double kSplitGemmWork = double(1 << 21);

void blas_single_threaded() {
    static std::once_flag once;
    std::call_once(once, [] { openblas_set_num_threads(1); });
}

void call_sgemm(const GemmOperand& a, const GemmOperand& b, int64_t m, int64_t n, int64_t k, float alpha,
                float beta, float* c, int64_t ldc) {
    cblas_sgemm(CblasRowMajor, a.trans ? CblasTrans : CblasNoTrans, b.trans ? CblasTrans : CblasNoTrans, blasint(m),
                blasint(n), blasint(k), alpha, a.ptr, blasint(a.ld), b.ptr, blasint(b.ld), beta, c, blasint(ldc));
}

}  // namespace

void sgemm(const GemmOperand& a, const GemmOperand& b, int64_t m, int64_t n, int64_t k, float alpha, float beta,
           float* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {  // empty sum: C = beta * C (BLAS implementations differ on k == 0, so do it here)
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    const int64_t lim = std::numeric_limits<blasint>::max();
    if (m > lim || n > lim || k > lim || a.ld > lim || b.ld > lim || ldc > lim)
        fail(ErrorCode::UNSUPPORTED, "sgemm: sizes m=", m, " n=", n, " k=", k, " (ld ", a.ld, ", ", b.ld, ", ", ldc,
             ") exceed the BLAS integer range");
    blas_single_threaded();
    const int threads = num_threads();
    if (threads <= 1 || double(m) * double(n) * double(k) < kSplitGemmWork) {
        call_sgemm(a, b, m, n, k, alpha, beta, c, ldc);
        return;
    }
    // One block per thread along the longer side of C (a multiple of 16 to keep the kernels' tiles whole).
    const bool split_cols = n >= m;
    const int64_t len = split_cols ? n : m;
    const int64_t block = std::max<int64_t>(16, ((len + threads - 1) / threads + 15) / 16 * 16);
    const int64_t blocks = (len + block - 1) / block;
    parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
        const int64_t i0 = b0 * block, i1 = std::min(len, b1 * block);  // one call for the whole chunk
        if (split_cols) {
            GemmOperand bs = b;
            bs.ptr = b.trans ? b.ptr + i0 * b.ld : b.ptr + i0;  // columns [i0, i1) of op(B)
            call_sgemm(a, bs, m, i1 - i0, k, alpha, beta, c + i0, ldc);
        } else {
            GemmOperand as = a;
            as.ptr = a.trans ? a.ptr + i0 : a.ptr + i0 * a.ld;  // rows [i0, i1) of op(A)
            call_sgemm(as, b, i1 - i0, n, k, alpha, beta, c + i0 * ldc, ldc);
        }
    });
}

Tensor as_rows(const Tensor& x) {
    const int r = x.dim();
    if (x.numel() == 0) {
        Shape s{1, r == 0 ? 1 : x.shape()[r - 1]};
        for (int i = 0; i + 1 < r; ++i) s[0] *= x.shape()[i];
        return Tensor::empty(s, x.dtype(), x.device());
    }
    const int64_t cols = r == 0 ? 1 : x.shape()[r - 1];
    const int64_t col_stride = r == 0 ? 1 : x.strides()[r - 1];
    int64_t rows = 1;
    int64_t row_stride = -1;  // stride of the innermost leading dim of size > 1
    bool mergeable = true;
    for (int i = r - 2; i >= 0; --i) {
        int64_t size = x.shape()[i], stride = x.strides()[i];
        rows *= size;
        if (size == 1) continue;
        if (row_stride < 0) row_stride = stride;
        else if (stride != row_stride * rows / size) mergeable = false;  // rows/size = product of inner leading dims
    }
    if (row_stride < 0) row_stride = std::max<int64_t>(1, cols);
    if (mergeable)
        return Tensor::from_storage(x.storage(), x.offset(), {rows, cols}, {row_stride, col_stride}, x.dtype());
    return x.contiguous().view({rows, cols});
}

namespace {

// The [rows, cols] matrix of a strided tensor's last two dims, or a contiguous copy when sgemm can't read it.
struct Operand {
    Tensor keep;  // holds a copy alive when one was needed
    GemmOperand op;
};

Operand matrix_operand(const Tensor& t, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride,
                       bool want_transpose_of_last_two) {
    Operand o;
    o.keep = t;
    o.op = gemm_operand(t.data<float>(), rows, cols, row_stride, col_stride);
    if (!o.op.ok) {
        o.keep = t.contiguous();
        const int r = o.keep.dim();
        int64_t s_last = o.keep.strides()[r - 1], s_prev = o.keep.strides()[r - 2];
        o.op = want_transpose_of_last_two ? gemm_operand(o.keep.data<float>(), rows, cols, s_last, s_prev)
                                          : gemm_operand(o.keep.data<float>(), rows, cols, s_prev, s_last);
    }
    return o;
}

}  // namespace

// y [..., out] = x [..., in] @ w[out, in]^T + b (+ residual [..., out])
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& residual) {
    const int64_t in = w.shape()[1], out = w.shape()[0];
    Tensor x2 = as_rows(x);  // [M, in]
    const int64_t m = x2.shape()[0];
    Shape out_shape = x.shape();
    out_shape.back() = out;
    Tensor y = Tensor::empty(out_shape, DType::F32);
    float* yp = y.data<float>();
    if (y.numel() == 0) return y;

    Operand a = matrix_operand(x2, m, in, x2.strides()[0], x2.strides()[1], false);
    Operand wt = matrix_operand(w, in, out, w.strides()[1], w.strides()[0], true);  // w^T [in, out]
    float beta = 0.0f;
    if (b.defined()) {  // start from the bias in every row, then accumulate the product onto it
        Tensor bc = b.contiguous();
        const float* bp = bc.data<float>();
        parallel_for(m, std::max<int64_t>(1, kElementwiseGrain / out), [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) std::memcpy(yp + r * out, bp, size_t(out) * sizeof(float));
        });
        beta = 1.0f;
    }
    sgemm(a.op, wt.op, m, out, in, 1.0f, beta, yp, out);
    if (residual.defined()) {
        // Added to the finished product, one IEEE add per element: bit for bit ops::add(residual, linear(x, w, b))
        // (fp32 addition commutes). Not folded into sgemm's beta, which would round differently.
        const Tensor rc = residual.contiguous();  // [..., out]
        const float* rp = rc.data<float>();
        parallel_for(y.numel(), kElementwiseGrain, [&](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i) yp[i] = rp[i] + yp[i];
        });
    }
    return y;
}

// a [Ba, M, K] @ b [Bb, K, N] -> [max(Ba, Bb), M, N]; a batch of 1 is broadcast.
Tensor matmul(const Tensor& a, const Tensor& b) {
    const int64_t ba = a.shape()[0], m = a.shape()[1], k = a.shape()[2];
    const int64_t bb = b.shape()[0], n = b.shape()[2];
    const int64_t batch = std::max(ba, bb);
    Tensor y = Tensor::empty({batch, m, n}, DType::F32);
    float* yp = y.data<float>();
    if (y.numel() == 0) return y;

    Operand oa = matrix_operand(a, m, k, a.strides()[1], a.strides()[2], false);
    Operand ob = matrix_operand(b, k, n, b.strides()[1], b.strides()[2], false);
    const int64_t sa = ba == 1 ? 0 : oa.keep.strides()[0];
    const int64_t sb = bb == 1 ? 0 : ob.keep.strides()[0];
    const float* pa = oa.op.ptr;
    const float* pb = ob.op.ptr;
    auto one = [&](int64_t i) {
        GemmOperand ai = oa.op, bi = ob.op;
        ai.ptr = pa + i * sa;
        bi.ptr = pb + i * sb;
        sgemm(ai, bi, m, n, k, 1.0f, 0.0f, yp + i * m * n, n);
    };
    // Enough batch items to occupy the pool: one product per item on each worker. Otherwise one product
    // at a time, each split over the pool by sgemm.
    if (batch >= num_threads()) {
        parallel_for(batch, 1, [&](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i) one(i);
        });
    } else {
        for (int64_t i = 0; i < batch; ++i) one(i);
    }
    return y;
}

}  // namespace sdxl::cpu
