// ops/ + the CPU backend against naive loops written here (double accumulation, obviously correct), on small
// odd shapes, strided views and the paths each kernel chooses by size; plus the argument errors.
//
// Tolerances: |got - ref| <= tol * (1 + |ref|) per element, with
//   exact ops (upsample, concat, slice, layout)               0
//   add / sub / mul                                           1e-6   (one float rounding)
//   elementwise / norms / softmax                             1e-5   (a few float roundings vs double)
//   products with K <= 150 (linear, matmul, attention)        1e-5   (float sgemm sums)
//   conv with K = C*kh*kw up to 576                           1e-4   (float sgemm sums of 576 terms)
//   timestep embedding vs double                              1e-4   (float argument t*freq up to 999 rad: 6e-5)
//   timestep embedding vs the float32 recipe                  2e-6   (sin/cos implementations, 1-2 ulp)
//   fast_exp vs double exp (relative)                         2.4e-7 (2 ulp)
//   1 thread vs the pool: group_norm/softmax exact, attention 1e-6 (sgemm blocking may differ)
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backends/cpu/cpu_math.h"
#include "backends/cpu/cpu_ops.h"
#include "check.h"
#include "test_tensors.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "ops/ops.h"

using namespace sdxl;

namespace {

using sdxl_test::rnd;

Tensor from_values(const Shape& shape, const std::vector<float>& v) {
    Tensor t = Tensor::empty(shape, DType::F32);
    for (size_t i = 0; i < v.size(); ++i) t.data<float>()[i] = v[i];
    return t;
}

// Values of any F32 tensor in logical (row-major) order.
std::vector<double> vals(const Tensor& t) {
    Tensor c = t.contiguous();
    std::vector<double> v(static_cast<size_t>(c.numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = c.data<float>()[i];
    return v;
}

// Compares element by element; reports the count and the worst element.
void expect_close(const char* what, const Tensor& got, const Shape& shape, const std::vector<double>& ref, double tol) {
    CHECK_MSG(got.shape() == shape, what << ": shape " << shape_str(got.shape()) << ", expected " << shape_str(shape));
    if (got.shape() != shape) return;
    CHECK_MSG(got.numel() == 0 || got.is_contiguous(), what << ": output not contiguous");
    std::vector<double> g = vals(got);
    int64_t bad = 0, worst = -1;
    double worst_err = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
        double err = std::fabs(g[i] - ref[i]) / (1.0 + std::fabs(ref[i]));
        bool ok = err <= tol || (std::isnan(ref[i]) && std::isnan(g[i]));
        if (!ok) ++bad;
        if (!(err <= worst_err) && !(std::isnan(ref[i]) && std::isnan(g[i]))) {
            worst_err = std::isnan(err) ? INFINITY : err;
            worst = int64_t(i);
        }
    }
    CHECK_MSG(bad == 0, what << ": " << bad << " of " << ref.size() << " elements off; worst at " << worst << ": got "
                             << (worst >= 0 ? g[size_t(worst)] : 0) << ", expected "
                             << (worst >= 0 ? ref[size_t(worst)] : 0) << " (tol " << tol << ")");
}

void expect_equal(const char* what, const Tensor& got, const Shape& shape, const std::vector<double>& ref) {
    expect_close(what, got, shape, ref, 0.0);
}

int64_t numel(const Shape& s) { return shape_numel(s); }

// Row-major index helpers for the naive references.
struct Idx {
    Shape shape;
    int64_t operator()(std::initializer_list<int64_t> ix) const {
        int64_t o = 0;
        size_t d = 0;
        for (int64_t i : ix) o = o * shape[d++] + i;
        return o;
    }
};

// Naive y[m, n] = sum_k a[m, k] * b[k, n] in double on row-major value arrays.
std::vector<double> naive_mm(const std::vector<double>& a, const std::vector<double>& b, int64_t m, int64_t k,
                             int64_t n) {
    std::vector<double> y(static_cast<size_t>(m * n), 0.0);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            double s = 0;
            for (int64_t t = 0; t < k; ++t) s += a[size_t(i * k + t)] * b[size_t(t * n + j)];
            y[size_t(i * n + j)] = s;
        }
    return y;
}

}  // namespace

// ------------------------------------------------------------------------------------------------ linear

static std::vector<double> naive_linear(const Tensor& x, const Tensor& w, const Tensor& b) {
    std::vector<double> xv = vals(x), wv = vals(w), bv = b.defined() ? vals(b) : std::vector<double>();
    const int64_t in = w.shape()[1], out = w.shape()[0], rows = x.numel() / in;
    std::vector<double> y(static_cast<size_t>(rows * out));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t o = 0; o < out; ++o) {
            double s = bv.empty() ? 0.0 : bv[size_t(o)];
            for (int64_t i = 0; i < in; ++i) s += xv[size_t(r * in + i)] * wv[size_t(o * in + i)];
            y[size_t(r * out + o)] = s;
        }
    return y;
}

SDXL_TEST(test_ops_linear) {
    Tensor x = rnd({2, 3, 5}, 1), w = rnd({7, 5}, 2), b = rnd({7}, 3);
    expect_close("linear bias", ops::linear(x, w, b), {2, 3, 7}, naive_linear(x, w, b), 1e-5);
    expect_close("linear no bias", ops::linear(x, w, Tensor()), {2, 3, 7}, naive_linear(x, w, Tensor()), 1e-5);
    // 1-D input.
    Tensor x1 = rnd({5}, 4);
    expect_close("linear 1-D", ops::linear(x1, w, b), {7}, naive_linear(x1, w, b), 1e-5);
    // x as a transposed view [6, 5] of a [5, 6] tensor, w as a transposed view of a [5, 7] tensor (no copy paths).
    Tensor xt = rnd({5, 6}, 5).transpose(0, 1), wt = rnd({5, 7}, 6).transpose(0, 1);
    expect_close("linear transposed views", ops::linear(xt, wt, b), {6, 7}, naive_linear(xt, wt, b), 1e-5);
    // Leading dims that cannot merge without a copy (narrowed middle dim).
    Tensor xn = rnd({2, 4, 5}, 7).narrow(1, 1, 3);
    expect_close("linear narrowed", ops::linear(xn, w, b), {2, 3, 7}, naive_linear(xn, w, b), 1e-5);
    // Empty batch.
    Tensor y0 = ops::linear(Tensor::empty({0, 5}, DType::F32), w, b);
    CHECK(y0.shape() == Shape({0, 7}));
    // Zero input features: y = b.
    Tensor yb = ops::linear(Tensor::empty({3, 0}, DType::F32), Tensor::empty({7, 0}, DType::F32), b);
    std::vector<double> bb;
    for (int r = 0; r < 3; ++r)
        for (double v : vals(b)) bb.push_back(v);
    expect_close("linear in=0", yb, {3, 7}, bb, 0.0);
}

// ------------------------------------------------------------------------------------------------ matmul

// Reference for torch.matmul of >= 2-D inputs with batch broadcasting.
static std::vector<double> naive_bmm(const Tensor& a, const Tensor& b, Shape& out_shape) {
    const int na = a.dim(), nb = b.dim();
    const int64_t m = a.shape()[size_t(na - 2)], k = a.shape()[size_t(na - 1)], n = b.shape()[size_t(nb - 1)];
    const int nd = std::max(na, nb) - 2;
    Shape batch(static_cast<size_t>(nd));
    for (int i = 0; i < nd; ++i) {
        int ia = i - (nd - (na - 2)), ib = i - (nd - (nb - 2));
        int64_t da = ia >= 0 ? a.shape()[size_t(ia)] : 1, db = ib >= 0 ? b.shape()[size_t(ib)] : 1;
        batch[size_t(i)] = std::max(da, db);
    }
    std::vector<double> av = vals(a), bv = vals(b);
    const int64_t nbatch = numel(batch);
    std::vector<double> y;
    for (int64_t t = 0; t < nbatch; ++t) {
        int64_t oa = 0, ob = 0, rest = t, mula = 1, mulb = 1;
        for (int i = nd - 1; i >= 0; --i) {
            int64_t ix = rest % batch[size_t(i)];
            rest /= batch[size_t(i)];
            int ia = i - (nd - (na - 2)), ib = i - (nd - (nb - 2));
            if (ia >= 0) {
                if (a.shape()[size_t(ia)] != 1) oa += ix * mula;
                mula *= a.shape()[size_t(ia)];
            }
            if (ib >= 0) {
                if (b.shape()[size_t(ib)] != 1) ob += ix * mulb;
                mulb *= b.shape()[size_t(ib)];
            }
        }
        std::vector<double> am(av.begin() + oa * m * k, av.begin() + (oa + 1) * m * k);
        std::vector<double> bm(bv.begin() + ob * k * n, bv.begin() + (ob + 1) * k * n);
        std::vector<double> ym = naive_mm(am, bm, m, k, n);
        y.insert(y.end(), ym.begin(), ym.end());
    }
    out_shape = batch;
    out_shape.push_back(m);
    out_shape.push_back(n);
    return y;
}

static void check_matmul(const char* what, const Tensor& a, const Tensor& b) {
    Shape shape;
    std::vector<double> ref = naive_bmm(a, b, shape);
    expect_close(what, ops::matmul(a, b), shape, ref, 1e-5);
}

SDXL_TEST(test_ops_matmul) {
    check_matmul("2-D", rnd({3, 5}, 1), rnd({5, 4}, 2));
    check_matmul("batch @ 2-D (folded)", rnd({2, 3, 4, 5}, 3), rnd({5, 6}, 4));
    check_matmul("broadcast both sides", rnd({3, 4, 5}, 5), rnd({2, 1, 5, 6}, 6));
    check_matmul("a batch 1", rnd({1, 4, 5}, 7), rnd({3, 5, 6}, 8));
    check_matmul("batch >= threads: one product per worker", rnd({9, 4, 3}, 9), rnd({9, 3, 2}, 10));
    {  // batch < threads: one product after another, each split over the pool
        const int saved = num_threads();
        set_num_threads(std::max(4, saved));
        check_matmul("batch < threads: split products", rnd({2, 200, 150}, 11), rnd({2, 150, 120}, 12));
        set_num_threads(saved);
    }
    // k.transpose(-1, -2) as b, and a transposed a: both read with CblasTrans.
    check_matmul("transposed b view", rnd({2, 3, 4, 5}, 13), rnd({2, 3, 6, 5}, 14).transpose(-1, -2));
    check_matmul("transposed a view", rnd({3, 5, 4}, 15).transpose(1, 2), rnd({3, 5, 6}, 16));
    check_matmul("transposed a, shared b (no fold)", rnd({2, 5, 4}, 17).transpose(1, 2), rnd({5, 3}, 18));
    // A view that is neither row- nor column-major (permuted batch inside): copied.
    check_matmul("permuted view", rnd({4, 2, 3, 5}, 19).permute({1, 3, 0, 2}), rnd({5, 3, 7}, 20));
    // Products large enough to be split over the pool (by columns when N >= M, else by rows), with plain and
    // transposed operands so that every sub-block pointer offset is exercised.
    check_matmul("split by columns", rnd({150, 120}, 30), rnd({120, 301}, 31));
    check_matmul("split by rows", rnd({301, 120}, 32), rnd({120, 150}, 33));
    check_matmul("split, transposed operands", rnd({120, 301}, 34).transpose(0, 1),
                 rnd({150, 120}, 35).transpose(0, 1));
    check_matmul("split by columns, transposed operands", rnd({120, 150}, 36).transpose(0, 1),
                 rnd({301, 120}, 37).transpose(0, 1));
    // 1-D operands follow torch.matmul: [K] @ [.., K, N] -> [.., N]; [.., M, K] @ [K] -> [.., M].
    Tensor v = rnd({5}, 21), bm = rnd({2, 5, 6}, 22), am = rnd({3, 4, 5}, 23);
    Shape s;
    std::vector<double> r1 = naive_bmm(v.view({1, 5}), bm, s);
    expect_close("1-D @ 3-D", ops::matmul(v, bm), {2, 6}, r1, 1e-5);
    std::vector<double> r2 = naive_bmm(am, v.view({5, 1}), s);
    expect_close("3-D @ 1-D", ops::matmul(am, v), {3, 4}, r2, 1e-5);
    std::vector<double> r3 = naive_bmm(v.view({1, 5}), v.view({5, 1}), s);
    expect_close("1-D @ 1-D", ops::matmul(v, v), {}, r3, 1e-5);
    // Empty dims.
    CHECK(ops::matmul(rnd({2, 0, 5}, 24), rnd({5, 3}, 25)).shape() == Shape({2, 0, 3}));
    expect_close("K = 0", ops::matmul(Tensor::empty({2, 3, 0}, DType::F32), Tensor::empty({2, 0, 4}, DType::F32)),
                 {2, 3, 4}, std::vector<double>(24, 0.0), 0.0);
}

// ------------------------------------------------------------------------------------------------ conv2d

static std::vector<double> naive_conv(const Tensor& x, const Tensor& w, const Tensor& b, int s, int p, Shape& shape) {
    const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    const int64_t O = w.shape()[0], kh = w.shape()[2], kw = w.shape()[3];
    const int64_t Ho = (H + 2 * p - kh) / s + 1, Wo = (W + 2 * p - kw) / s + 1;
    std::vector<double> xv = vals(x), wv = vals(w), bv = b.defined() ? vals(b) : std::vector<double>();
    Idx xi{x.shape()}, wi{w.shape()};
    shape = {N, O, Ho, Wo};
    Idx yi{shape};
    std::vector<double> y(static_cast<size_t>(numel(shape)));
    for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < O; ++o)
            for (int64_t oy = 0; oy < Ho; ++oy)
                for (int64_t ox = 0; ox < Wo; ++ox) {
                    double acc = bv.empty() ? 0.0 : bv[size_t(o)];
                    for (int64_t c = 0; c < C; ++c)
                        for (int64_t i = 0; i < kh; ++i)
                            for (int64_t j = 0; j < kw; ++j) {
                                int64_t iy = oy * s - p + i, ix = ox * s - p + j;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                acc += xv[size_t(xi({n, c, iy, ix}))] * wv[size_t(wi({o, c, i, j}))];
                            }
                    y[size_t(yi({n, o, oy, ox}))] = acc;
                }
    return y;
}

static void check_conv(const char* what, const Tensor& x, const Tensor& w, const Tensor& b, int s, int p,
                       double tol = 1e-5) {
    Shape shape;
    std::vector<double> ref = naive_conv(x, w, b, s, p, shape);
    expect_close(what, ops::conv2d(x, w, b, s, p), shape, ref, tol);
}

SDXL_TEST(test_ops_conv2d) {
    Tensor x = rnd({2, 3, 5, 7}, 1), w = rnd({4, 3, 3, 3}, 2), b = rnd({4}, 3);
    check_conv("3x3 stride 2 pad 1", x, w, b, 2, 1);
    check_conv("3x3 stride 1 pad 1", x, w, b, 1, 1);
    check_conv("3x3 stride 1 pad 0, no bias", x, w, Tensor(), 1, 0);
    check_conv("3x3 stride 3 pad 2", x, w, b, 3, 2);
    check_conv("3x2 kernel stride 2 pad 1", x, rnd({5, 3, 3, 2}, 4), rnd({5}, 5), 2, 1);
    check_conv("1x1 direct gemm", x, rnd({6, 3, 1, 1}, 6), rnd({6}, 7), 1, 0);
    check_conv("1x1 stride 2", x, rnd({6, 3, 1, 1}, 8), Tensor(), 2, 0);
    check_conv("1x1 pad 1", x, rnd({6, 3, 1, 1}, 9), rnd({6}, 10), 1, 1);
    check_conv("kernel = padded input", rnd({1, 2, 3, 3}, 11), rnd({2, 2, 5, 5}, 12), Tensor(), 1, 1);
    // Strided x (an NHWC tensor seen as NCHW).
    Tensor xs = rnd({2, 5, 7, 3}, 13).permute({0, 3, 1, 2});
    check_conv("channels-last view", xs, w, b, 2, 1);
    // Several im2col tiles per image (C*9*Wo*Ho > the 4M-float column budget).
    check_conv("tiled im2col", rnd({1, 64, 130, 64}, 14), rnd({3, 64, 3, 3}, 15), rnd({3}, 16), 1, 1, 1e-4);
}

// conv2d_fused on the cpu is the composition, bit for bit (the reference results of the UNet/VAE do not move);
// its own argument checks name the op.
SDXL_TEST(test_ops_conv2d_fused) {
    const Tensor x = rnd({2, 3, 5, 7}, 21), w = rnd({4, 3, 3, 3}, 22), b = rnd({4}, 23);
    const Tensor t = rnd({2, 4}, 24), r = rnd({2, 4, 7, 5}, 25).transpose(2, 3);  // residual as a strided view
    const Tensor fused = ops::conv2d_fused(x, w, b, 1, 1, t, r);
    const Tensor composed = ops::add(r, ops::add(ops::conv2d(x, w, b, 1, 1), t.view({2, 4, 1, 1})));
    CHECK(fused.shape() == composed.shape());
    bool same = fused.numel() == composed.numel();
    for (int64_t i = 0; same && i < fused.numel(); ++i) same = fused.data<float>()[i] == composed.data<float>()[i];
    CHECK_MSG(same, "conv2d_fused differs from conv2d + add + add on the cpu");
    const Tensor only_t = ops::conv2d_fused(x, w, Tensor(), 1, 1, t, Tensor());
    expect_close("conv2d_fused, time embedding only", only_t, {2, 4, 5, 7},
                 vals(ops::add(ops::conv2d(x, w, Tensor(), 1, 1), t.view({2, 4, 1, 1}))), 0);
    CHECK_THROWS_CODE(ops::conv2d_fused(x, w, b, 1, 1, rnd({2, 5}, 26), Tensor()), ErrorCode::INVALID_ARGUMENT);
    CHECK_THROWS_CODE(ops::conv2d_fused(x, w, b, 1, 1, Tensor(), rnd({2, 4, 5, 6}, 27)), ErrorCode::INVALID_ARGUMENT);
    CHECK_THROWS_CODE(ops::conv2d_fused(x, w, b, 2, 1, Tensor(), rnd({2, 4, 5, 7}, 28)), ErrorCode::INVALID_ARGUMENT);
    CHECK_THROWS_CODE(ops::conv2d_fused(x, rnd({4, 2, 3, 3}, 29), b, 1, 1, t, Tensor()), ErrorCode::INVALID_ARGUMENT);
}

// ------------------------------------------------------------------------------------------------ upsample

SDXL_TEST(test_ops_upsample_nearest) {
    Tensor x = rnd({2, 3, 5, 3}, 1);
    std::vector<double> xv = vals(x);
    auto ref = [&](int64_t oh, int64_t ow) {
        std::vector<double> y;
        for (int64_t nc = 0; nc < 6; ++nc)
            for (int64_t oy = 0; oy < oh; ++oy)
                for (int64_t ox = 0; ox < ow; ++ox) {
                    // torch: src = min(floor(dst * (float)in / out), in - 1), in float
                    int64_t sy = std::min<int64_t>(int64_t(std::floor(float(oy) * (5.0f / float(oh)))), 4);
                    int64_t sx = std::min<int64_t>(int64_t(std::floor(float(ox) * (3.0f / float(ow)))), 2);
                    y.push_back(xv[size_t((nc * 5 + sy) * 3 + sx)]);
                }
        return y;
    };
    expect_equal("2x", ops::upsample_nearest2x(x), {2, 3, 10, 6}, ref(10, 6));
    expect_equal("7x8", ops::upsample_nearest(x, 7, 8), {2, 3, 7, 8}, ref(7, 8));
    expect_equal("down 3x2", ops::upsample_nearest(x, 3, 2), {2, 3, 3, 2}, ref(3, 2));
    expect_equal("same size", ops::upsample_nearest(x, 5, 3), {2, 3, 5, 3}, xv);
    // Source indices torch 1.13 gives for 5 -> 7 and 3 -> 8 (interpolate(size=...), mode="nearest").
    Tensor r = from_values({1, 1, 1, 5}, {0, 1, 2, 3, 4});
    expect_equal("torch 5->7", ops::upsample_nearest(r, 1, 7), {1, 1, 1, 7}, {0, 0, 1, 2, 2, 3, 4});
    Tensor r3 = from_values({1, 1, 1, 3}, {0, 1, 2});
    expect_equal("torch 3->8", ops::upsample_nearest(r3, 1, 8), {1, 1, 1, 8}, {0, 0, 0, 1, 1, 1, 2, 2});
    // Strided input.
    Tensor xs = rnd({2, 5, 3, 3}, 2).permute({0, 3, 1, 2});
    std::vector<double> xsv = vals(xs);
    std::vector<double> ys;
    for (int64_t nc = 0; nc < 6; ++nc)
        for (int64_t oy = 0; oy < 10; ++oy)
            for (int64_t ox = 0; ox < 6; ++ox) ys.push_back(xsv[size_t((nc * 5 + oy / 2) * 3 + ox / 2)]);
    expect_equal("2x strided", ops::upsample_nearest2x(xs), {2, 3, 10, 6}, ys);
}

// ------------------------------------------------------------------------------------------------ norms

static std::vector<double> naive_group_norm(const Tensor& x, int G, const Tensor& gamma, const Tensor& beta,
                                            double eps) {
    std::vector<double> xv = vals(x), y(xv.size());
    const int64_t N = x.shape()[0], C = x.shape()[1], S = x.numel() / (N * C), cg = C / G;
    std::vector<double> gv = gamma.defined() ? vals(gamma) : std::vector<double>(size_t(C), 1.0);
    std::vector<double> bv = beta.defined() ? vals(beta) : std::vector<double>(size_t(C), 0.0);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t g = 0; g < G; ++g) {
            double mean = 0, var = 0;
            const int64_t base = (n * C + g * cg) * S, cnt = cg * S;
            for (int64_t i = 0; i < cnt; ++i) mean += xv[size_t(base + i)];
            mean /= double(cnt);
            for (int64_t i = 0; i < cnt; ++i) var += (xv[size_t(base + i)] - mean) * (xv[size_t(base + i)] - mean);
            var /= double(cnt);  // biased, as torch
            for (int64_t i = 0; i < cnt; ++i) {
                int64_t c = g * cg + i / S;
                const double norm = (xv[size_t(base + i)] - mean) / std::sqrt(var + eps);
                y[size_t(base + i)] = norm * gv[size_t(c)] + bv[size_t(c)];
            }
        }
    return y;
}

SDXL_TEST(test_ops_group_norm) {
    Tensor x = rnd({2, 6, 3, 5}, 1, -2.0f, 3.0f), g = rnd({6}, 2), b = rnd({6}, 3);
    expect_close("3 groups affine", ops::group_norm(x, 3, g, b, 1e-5f), {2, 6, 3, 5},
                 naive_group_norm(x, 3, g, b, 1e-5f), 1e-5);
    expect_close("3 groups plain", ops::group_norm(x, 3, Tensor(), Tensor(), 1e-6f), {2, 6, 3, 5},
                 naive_group_norm(x, 3, Tensor(), Tensor(), 1e-6f), 1e-5);
    expect_close("1 group", ops::group_norm(x, 1, g, b, 1e-5f), {2, 6, 3, 5}, naive_group_norm(x, 1, g, b, 1e-5f),
                 1e-5);
    expect_close("6 groups", ops::group_norm(x, 6, g, b, 1e-5f), {2, 6, 3, 5}, naive_group_norm(x, 6, g, b, 1e-5f),
                 1e-5);
    Tensor x3 = rnd({3, 4, 7}, 4);
    expect_close("3-D input", ops::group_norm(x3, 2, rnd({4}, 5), rnd({4}, 6), 1e-5f), {3, 4, 7},
                 naive_group_norm(x3, 2, rnd({4}, 5), rnd({4}, 6), 1e-5f), 1e-5);
    // Large common offset: two-pass double statistics keep full accuracy.
    Tensor xo = rnd({1, 4, 8, 8}, 7, 1000.0f, 1000.5f);
    expect_close("offset 1000", ops::group_norm(xo, 2, Tensor(), Tensor(), 1e-5f), {1, 4, 8, 8},
                 naive_group_norm(xo, 2, Tensor(), Tensor(), 1e-5f), 1e-4);
    // Strided input (channels-last view).
    Tensor xs = rnd({2, 3, 5, 6}, 8).permute({0, 3, 1, 2});
    expect_close("strided", ops::group_norm(xs, 3, g, b, 1e-5f), {2, 6, 3, 5}, naive_group_norm(xs, 3, g, b, 1e-5f),
                 1e-5);
}

// The fused op is group_norm then silu with the same float roundings: equal bit for bit on the cpu.
SDXL_TEST(test_ops_group_norm_silu) {
    Tensor x = rnd({2, 6, 3, 5}, 11, -4.0f, 4.0f), g = rnd({6}, 12), b = rnd({6}, 13);
    auto expect_fused = [](const char* what, const Tensor& x, int groups, const Tensor& g, const Tensor& b,
                           float eps) {
        const Tensor fused = ops::group_norm_silu(x, groups, g, b, eps);
        expect_equal(what, fused, x.shape(), vals(ops::silu(ops::group_norm(x, groups, g, b, eps))));
    };
    expect_fused("3 groups affine", x, 3, g, b, 1e-5f);
    expect_fused("plain", x, 2, Tensor(), Tensor(), 1e-6f);
    expect_fused("gamma only", x, 6, g, Tensor(), 1e-5f);
    expect_fused("3-D input", rnd({3, 4, 7}, 14), 2, rnd({4}, 15), rnd({4}, 16), 1e-5f);
    expect_fused("strided", rnd({2, 3, 5, 6}, 17).permute({0, 3, 1, 2}), 3, g, b, 1e-5f);
    expect_fused("32 groups of 320 channels", rnd({1, 320, 9, 11}, 18, -3.0f, 3.0f), 32, rnd({320}, 19),
                 rnd({320}, 20), 1e-6f);
    // Sanity against the formula, so the two are not equal by being both wrong.
    std::vector<double> ref = naive_group_norm(x, 3, g, b, 1e-5f);
    for (double& v : ref) v = v / (1.0 + std::exp(-v));
    expect_close("vs double", ops::group_norm_silu(x, 3, g, b, 1e-5f), x.shape(), ref, 1e-5);
    Tensor empty = Tensor::empty({0, 6, 2, 2}, DType::F32);
    CHECK(ops::group_norm_silu(empty, 3, g, b, 1e-5f).shape() == empty.shape());

    // Errors: as group_norm's, naming group_norm_silu.
    const ErrorCode bad = ErrorCode::INVALID_ARGUMENT;
    Tensor x4 = rnd({1, 4, 5, 5}, 21);
    CHECK_THROWS_CODE(ops::group_norm_silu(Tensor(), 2, Tensor(), Tensor(), 1e-5f), bad);
    CHECK_THROWS_CODE(ops::group_norm_silu(x4.to(DType::F16), 2, Tensor(), Tensor(), 1e-5f), bad);
    CHECK_THROWS_CODE(ops::group_norm_silu(x4, 3, Tensor(), Tensor(), 1e-5f), bad);  // 4 channels, 3 groups
    CHECK_THROWS_CODE(ops::group_norm_silu(x4, 0, Tensor(), Tensor(), 1e-5f), bad);
    CHECK_THROWS_CODE(ops::group_norm_silu(x4, 2, rnd({3}, 3), Tensor(), 1e-5f), bad);
    CHECK_THROWS_CODE(ops::group_norm_silu(x4, 2, Tensor(), rnd({4, 1}, 3), 1e-5f), bad);
    CHECK_THROWS_CODE(ops::group_norm_silu(x4, 2, rnd({4}, 3).to(DType::F16), Tensor(), 1e-5f), bad);
    CHECK_THROWS_CODE(ops::group_norm_silu(rnd({4}, 3), 2, Tensor(), Tensor(), 1e-5f), bad);
    CHECK_THROWS_CODE(ops::group_norm_silu(x4, 2, Tensor(), Tensor(), -1.0f), bad);
    CHECK_THROWS_CODE(ops::group_norm_silu(x4, 2, Tensor(), Tensor(), NAN), bad);
    try {
        ops::group_norm_silu(x4, 3, Tensor(), Tensor(), 1e-5f);
        CHECK_MSG(false, "group_norm_silu with 3 groups of 4 channels should throw");
    } catch (const Error& e) {
        const std::string& m = e.message();
        CHECK_MSG(m.find("group_norm_silu") != std::string::npos && m.find("[1, 4, 5, 5]") != std::string::npos &&
                      m.find("3 groups") != std::string::npos,
                  "message should name the op, x's shape and the groups: " << m);
    }
}

static std::vector<double> naive_layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, double eps) {
    std::vector<double> xv = vals(x), y(xv.size());
    const int64_t D = x.shape().back(), rows = x.numel() / D;
    std::vector<double> gv = gamma.defined() ? vals(gamma) : std::vector<double>(size_t(D), 1.0);
    std::vector<double> bv = beta.defined() ? vals(beta) : std::vector<double>(size_t(D), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < D; ++i) mean += xv[size_t(r * D + i)];
        mean /= double(D);
        for (int64_t i = 0; i < D; ++i) var += (xv[size_t(r * D + i)] - mean) * (xv[size_t(r * D + i)] - mean);
        var /= double(D);
        for (int64_t i = 0; i < D; ++i) {
            const double norm = (xv[size_t(r * D + i)] - mean) / std::sqrt(var + eps);
            y[size_t(r * D + i)] = norm * gv[size_t(i)] + bv[size_t(i)];
        }
    }
    return y;
}

SDXL_TEST(test_ops_layer_norm) {
    Tensor x = rnd({3, 4, 7}, 1, -1.0f, 2.0f), g = rnd({7}, 2), b = rnd({7}, 3);
    expect_close("affine", ops::layer_norm(x, g, b, 1e-5f), {3, 4, 7}, naive_layer_norm(x, g, b, 1e-5f), 1e-5);
    expect_close("plain", ops::layer_norm(x, Tensor(), Tensor(), 1e-5f), {3, 4, 7},
                 naive_layer_norm(x, Tensor(), Tensor(), 1e-5f), 1e-5);
    expect_close("gamma only", ops::layer_norm(x, g, Tensor(), 1e-5f), {3, 4, 7},
                 naive_layer_norm(x, g, Tensor(), 1e-5f), 1e-5);
    Tensor xt = rnd({7, 5}, 4).transpose(0, 1);
    expect_close("transposed", ops::layer_norm(xt, g, b, 1e-5f), {5, 7}, naive_layer_norm(xt, g, b, 1e-5f), 1e-5);
    Tensor xo = rnd({4, 33}, 5, -300.0f, -299.0f);
    expect_close("offset -300", ops::layer_norm(xo, Tensor(), Tensor(), 1e-5f), {4, 33},
                 naive_layer_norm(xo, Tensor(), Tensor(), 1e-5f), 1e-4);
}

// ------------------------------------------------------------------------------------------------ activations

static void check_unary(const char* what, const std::function<Tensor(const Tensor&)>& op,
                        const std::function<double(double)>& f) {
    // Includes extremes (no NaN/Inf where the function is finite) and a strided view.
    Tensor x = rnd({3, 5, 7}, 11, -6.0f, 6.0f);
    for (int i = 0; i < 4; ++i) x.data<float>()[i] = std::vector<float>{-100.0f, 100.0f, -30.0f, 0.0f}[size_t(i)];
    std::vector<double> ref;
    for (double v : vals(x)) ref.push_back(f(v));
    expect_close(what, op(x), {3, 5, 7}, ref, 1e-5);
    Tensor xt = x.transpose(0, 2);
    ref.clear();
    for (double v : vals(xt)) ref.push_back(f(v));
    expect_close(what, op(xt), {7, 5, 3}, ref, 1e-5);
    // Above the parallel grain.
    Tensor big = rnd({70000}, 12, -8.0f, 8.0f);
    ref.clear();
    for (double v : vals(big)) ref.push_back(f(v));
    expect_close(what, op(big), {70000}, ref, 1e-5);
}

SDXL_TEST(test_ops_activations) {
    check_unary("silu", ops::silu, [](double v) { return v / (1.0 + std::exp(-v)); });
    check_unary("gelu", ops::gelu, [](double v) { return 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); });
    check_unary("gelu_tanh", ops::gelu_tanh, [](double v) {
        return 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
    });
    check_unary("quick_gelu", ops::quick_gelu, [](double v) { return v / (1.0 + std::exp(-1.702 * v)); });
    check_unary("scale", [](const Tensor& t) { return ops::scale(t, -1.5f, 0.25f); },
                [](double v) { return -1.5 * v + 0.25; });
}

SDXL_TEST(test_ops_geglu) {
    auto ref = [](const Tensor& x) {
        std::vector<double> xv = vals(x), y;
        const int64_t two = x.shape().back(), d = two / 2, rows = x.numel() / two;
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t i = 0; i < d; ++i) {
                double h = xv[size_t(r * two + i)], g = xv[size_t(r * two + d + i)];
                y.push_back(h * 0.5 * g * (1.0 + std::erf(g / std::sqrt(2.0))));
            }
        return y;
    };
    Tensor x = rnd({2, 3, 10}, 1, -4.0f, 4.0f);
    expect_close("geglu", ops::geglu(x), {2, 3, 5}, ref(x), 1e-5);
    Tensor xt = rnd({10, 3}, 2, -4.0f, 4.0f).transpose(0, 1);
    expect_close("geglu strided", ops::geglu(xt), {3, 5}, ref(xt), 1e-5);
}

SDXL_TEST(test_ops_softmax) {
    auto ref = [](const Tensor& x) {
        std::vector<double> xv = vals(x), y(xv.size());
        const int64_t d = x.shape().back(), rows = x.numel() / d;
        for (int64_t r = 0; r < rows; ++r) {
            double mx = -INFINITY, s = 0;
            for (int64_t i = 0; i < d; ++i) mx = std::max(mx, xv[size_t(r * d + i)]);
            for (int64_t i = 0; i < d; ++i) s += std::exp(xv[size_t(r * d + i)] - mx);
            for (int64_t i = 0; i < d; ++i) y[size_t(r * d + i)] = std::exp(xv[size_t(r * d + i)] - mx) / s;
        }
        return y;
    };
    Tensor x = rnd({3, 4, 9}, 1, -5.0f, 5.0f);
    x.data<float>()[0] = 1000.0f;  // max subtraction keeps this finite
    x.data<float>()[9] = -INFINITY;
    expect_close("softmax", ops::softmax(x), {3, 4, 9}, ref(x), 1e-5);
    Tensor xt = rnd({9, 4}, 2, -5.0f, 5.0f).transpose(0, 1);
    expect_close("softmax strided", ops::softmax(xt), {4, 9}, ref(xt), 1e-5);
    Tensor big = rnd({40, 1000}, 3, -10.0f, 10.0f);
    expect_close("softmax big", ops::softmax(big), {40, 1000}, ref(big), 1e-5);
}

// The vectorisable exp behind softmax, attention, silu and quick_gelu: within 2 ulp of exp over its range.
SDXL_TEST(test_ops_fast_exp) {
    double worst = 0;
    float worst_x = 0;
    for (int i = 0; i <= 2000000; ++i) {
        const float x = -86.0f + (88.7f + 86.0f) * float(i) / 2000000.0f;
        const double ref = std::exp(double(x));
        const double err = std::fabs(double(cpu::fast_exp(x)) - ref) / ref;
        if (err > worst) {
            worst = err;
            worst_x = x;
        }
    }
    CHECK_MSG(worst <= 2.4e-7, "fast_exp relative error " << worst << " at " << worst_x);  // 2 ulp = 2.4e-7
    CHECK(cpu::fast_exp(0.0f) == 1.0f);
    CHECK(cpu::fast_exp(-INFINITY) == 0.0f && cpu::fast_exp(-100.0f) == 0.0f);
    CHECK(cpu::fast_exp(INFINITY) == INFINITY && cpu::fast_exp(89.0f) == INFINITY);
    CHECK(std::isfinite(cpu::fast_exp(88.72f)));
    CHECK(std::isnan(cpu::fast_exp(NAN)));
}

// ------------------------------------------------------------------------------------------------ attention

// softmax(q k^T * scale + mask) v per (b, h), rows with no allowed key give zeros.
static std::vector<double> naive_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                                           bool causal, double scale) {
    const int64_t B = q.shape()[0], H = q.shape()[1], Lq = q.shape()[2], D = q.shape()[3];
    const int64_t Lk = k.shape()[2], Dv = v.shape()[3];
    if (scale <= 0) scale = 1.0 / std::sqrt(double(D));
    std::vector<double> qv = vals(q), kv = vals(k), vv = vals(v);
    std::vector<double> mv;
    if (mask.defined()) {
        Tensor m = mask.dtype() == DType::I64 ? mask.to(DType::F32) : mask;
        mv = vals(m);
    }
    std::vector<double> y(static_cast<size_t>(B * H * Lq * Dv), 0.0);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t h = 0; h < H; ++h)
            for (int64_t i = 0; i < Lq; ++i) {
                std::vector<double> s(static_cast<size_t>(Lk));
                std::vector<bool> ok(static_cast<size_t>(Lk));
                double mx = -INFINITY;
                for (int64_t j = 0; j < Lk; ++j) {
                    ok[size_t(j)] = (mv.empty() || mv[size_t(b * Lk + j)] != 0.0) && (!causal || j <= i);
                    double d = 0;
                    for (int64_t t = 0; t < D; ++t)
                        d += qv[size_t(((b * H + h) * Lq + i) * D + t)] * kv[size_t(((b * H + h) * Lk + j) * D + t)];
                    s[size_t(j)] = d * scale;
                    if (ok[size_t(j)]) mx = std::max(mx, s[size_t(j)]);
                }
                double sum = 0;
                for (int64_t j = 0; j < Lk; ++j) {
                    s[size_t(j)] = ok[size_t(j)] ? std::exp(s[size_t(j)] - mx) : 0.0;
                    sum += s[size_t(j)];
                }
                if (sum == 0) continue;  // fully masked row: zeros
                for (int64_t j = 0; j < Lk; ++j)
                    for (int64_t t = 0; t < Dv; ++t)
                        y[size_t(((b * H + h) * Lq + i) * Dv + t)] +=
                            s[size_t(j)] / sum * vv[size_t(((b * H + h) * Lk + j) * Dv + t)];
            }
    return y;
}

static void check_attention(const char* what, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                            bool causal, float scale) {
    Shape shape{q.shape()[0], q.shape()[1], q.shape()[2], v.shape()[3]};
    expect_close(what, ops::attention(q, k, v, mask, causal, scale), shape,
                 naive_attention(q, k, v, mask, causal, scale), 1e-5);
}

SDXL_TEST(test_ops_attention) {
    // Cross-attention shape: Lq != Lk, Dv != D.
    Tensor q = rnd({2, 3, 5, 4}, 1, -2.0f, 2.0f), k = rnd({2, 3, 7, 4}, 2, -2.0f, 2.0f), v = rnd({2, 3, 7, 6}, 3);
    check_attention("plain", q, k, v, Tensor(), false, 0.0f);
    check_attention("explicit scale", q, k, v, Tensor(), false, 0.3f);
    check_attention("causal", q, k, v, Tensor(), true, 0.0f);
    // Key mask (F32) with batch 1 fully masked: its rows are zeros, no NaN.
    Tensor mask = from_values({2, 7}, {1, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0});
    check_attention("mask + fully masked batch", q, k, v, mask, false, 0.0f);
    // I64 mask combined with causal: the first query's only causal key (0) is masked -> zero row.
    Tensor mi = Tensor::empty({2, 7}, DType::I64);
    for (int i = 0; i < 14; ++i) mi.data<int64_t>()[i] = (i == 0 || i == 9) ? 0 : 3;
    check_attention("I64 mask + causal", q, k, v, mi, true, 0.0f);
    // Self-attention through strided views: [B, L, H, D] transposed to [B, H, L, D] (read without a copy).
    Tensor qs = rnd({2, 6, 3, 8}, 4).transpose(1, 2), ks = rnd({2, 6, 3, 8}, 5).transpose(1, 2);
    Tensor vs = rnd({2, 6, 3, 8}, 6).transpose(1, 2);
    check_attention("strided self", qs, ks, vs, Tensor(), false, 0.0f);
    check_attention("strided causal", qs, ks, vs, Tensor(), true, 0.0f);
    // k given as a transposed-in-the-last-two-dims view (column-major [Lk, D]).
    Tensor kt = rnd({2, 3, 4, 7}, 7).transpose(2, 3);
    check_attention("column-major k", q, kt, v, Tensor(), false, 0.0f);
    // Several query blocks per head (256-row blocks) with a mask, and causal across block boundaries.
    Tensor q2 = rnd({1, 2, 300, 16}, 8), k2 = rnd({1, 2, 77, 16}, 9), v2 = rnd({1, 2, 77, 16}, 10);
    Tensor m2 = Tensor::empty({1, 77}, DType::F32);
    for (int j = 0; j < 77; ++j) m2.data<float>()[j] = j < 60 ? 1.0f : 0.0f;
    check_attention("query blocks + mask", q2, k2, v2, m2, false, 0.0f);
    Tensor k2s = rnd({1, 2, 300, 16}, 14), v2s = rnd({1, 2, 300, 16}, 15);
    check_attention("query blocks, causal self", q2, k2s, v2s, Tensor(), true, 0.0f);
    // Products big enough that sgemm would split them, issued from pool workers (must run inline there).
    Tensor q3 = rnd({1, 1, 256, 64}, 11), k3 = rnd({1, 1, 300, 64}, 12), v3 = rnd({1, 1, 300, 48}, 13);
    check_attention("large blocks", q3, k3, v3, Tensor(), false, 0.0f);
    check_attention("large blocks causal", q3, k3, v3, Tensor(), true, 0.0f);
    // No keys at all: zeros.
    Tensor y0 = ops::attention(q, Tensor::empty({2, 3, 0, 4}, DType::F32), Tensor::empty({2, 3, 0, 6}, DType::F32),
                               Tensor(), false, 0.0f);
    expect_close("no keys", y0, {2, 3, 5, 6}, std::vector<double>(180, 0.0), 0.0);
}

// Both CPU attention paths (the AVX2/FMA kernels where the CPU has them, and the portable sgemm one) on cases
// that walk several key blocks: online-softmax rescaling, rows whose first key blocks are all masked, causal
// across key blocks, a VAE-like 512-wide head (small key blocks), lengths that are not multiples of 16.
SDXL_TEST(test_ops_attention_paths) {
    Tensor q1 = rnd({1, 2, 70, 64}, 21, -3.0f, 3.0f), k1 = rnd({1, 2, 600, 64}, 22, -3.0f, 3.0f);
    Tensor v1 = rnd({1, 2, 600, 40}, 23);
    Tensor m1 = Tensor::empty({1, 600}, DType::F32);
    for (int j = 0; j < 600; ++j) m1.data<float>()[j] = (j >= 300 && j % 7 != 0) ? 1.0f : 0.0f;
    Tensor qs = rnd({2, 531, 2, 32}, 24, -2.0f, 2.0f).transpose(1, 2);
    Tensor ks = rnd({2, 531, 2, 32}, 25, -2.0f, 2.0f).transpose(1, 2), vs = rnd({2, 531, 2, 32}, 26).transpose(1, 2);
    Tensor q5 = rnd({1, 1, 50, 512}, 27, -0.3f, 0.3f), k5 = rnd({1, 1, 333, 512}, 28, -0.3f, 0.3f);
    Tensor v5 = rnd({1, 1, 333, 512}, 29);
    Tensor qc = rnd({1, 20, 77, 64}, 30), kc = rnd({1, 20, 77, 64}, 31), vc = rnd({1, 20, 77, 64}, 32);
    for (bool portable : {false, true}) {
        cpu::attention_force_portable(portable);
        check_attention(portable ? "portable: key blocks" : "fast: key blocks", q1, k1, v1, Tensor(), false, 0.0f);
        check_attention(portable ? "portable: late keys" : "fast: late keys", q1, k1, v1, m1, false, 0.0f);
        check_attention(portable ? "portable: causal" : "fast: causal", qs, ks, vs, Tensor(), true, 0.0f);
        check_attention(portable ? "portable: self" : "fast: self", qs, ks, vs, Tensor(), false, 0.0f);
        check_attention(portable ? "portable: head 512" : "fast: head 512", q5, k5, v5, Tensor(), false, 0.0f);
        check_attention(portable ? "portable: clip" : "fast: clip", qc, kc, vc, Tensor(), true, 0.0f);
        check_attention(portable ? "portable: one key" : "fast: one key", q1, k1.narrow(2, 0, 1), v1.narrow(2, 0, 1),
                        Tensor(), false, 0.0f);
    }
    cpu::attention_force_portable(false);
}

// ------------------------------------------------------------------------------------------------ arithmetic

static std::vector<double> naive_broadcast(const Tensor& a, const Tensor& b, const Shape& out,
                                           const std::function<double(double, double)>& f) {
    std::vector<double> av = vals(a), bv = vals(b), y;
    const int nd = int(out.size());
    for (int64_t i = 0; i < numel(out); ++i) {
        int64_t rest = i, oa = 0, ob = 0, ma = 1, mb = 1;
        for (int d = nd - 1; d >= 0; --d) {
            int64_t ix = rest % out[size_t(d)];
            rest /= out[size_t(d)];
            int da = d - (nd - a.dim()), db = d - (nd - b.dim());
            if (da >= 0) {
                if (a.shape()[size_t(da)] != 1) oa += ix * ma;
                ma *= a.shape()[size_t(da)];
            }
            if (db >= 0) {
                if (b.shape()[size_t(db)] != 1) ob += ix * mb;
                mb *= b.shape()[size_t(db)];
            }
        }
        y.push_back(f(av[size_t(oa)], bv[size_t(ob)]));
    }
    return y;
}

SDXL_TEST(test_ops_binary) {
    struct Case {
        Tensor a, b;
        Shape out;
    };
    std::vector<Case> cases = {
        {rnd({2, 3, 4}, 1), rnd({2, 3, 4}, 2), {2, 3, 4}},
        {rnd({2, 3, 4}, 3), rnd({3, 1}, 4), {2, 3, 4}},
        {rnd({1}, 5), rnd({2, 3}, 6), {2, 3}},
        {rnd({2, 1, 4}, 7), rnd({3, 1}, 8), {2, 3, 4}},
        {rnd({2, 4, 3}, 9).transpose(1, 2), rnd({4}, 10), {2, 3, 4}},
        {rnd({5, 1, 1}, 11), rnd({1, 6, 7}, 12), {5, 6, 7}},
        {rnd({}, 13), rnd({2, 3}, 14), {2, 3}},
        {rnd({2, 320, 8, 8}, 15), rnd({1, 320, 1, 1}, 16), {2, 320, 8, 8}},   // bias per channel
        {rnd({2, 64, 300}, 17), rnd({2, 64, 300}, 18).narrow(2, 0, 300), {2, 64, 300}},  // > grain
        {rnd({0, 3}, 19), rnd({3}, 20), {0, 3}},
    };
    for (const Case& c : cases) {
        expect_close("add", ops::add(c.a, c.b), c.out, naive_broadcast(c.a, c.b, c.out, std::plus<double>()), 1e-6);
        expect_close("sub", ops::sub(c.a, c.b), c.out, naive_broadcast(c.a, c.b, c.out, std::minus<double>()), 1e-6);
        expect_close("mul", ops::mul(c.a, c.b), c.out, naive_broadcast(c.a, c.b, c.out, std::multiplies<double>()),
                     1e-6);
    }
    // Operand order matters for sub and for broadcasting on the left.
    Tensor a = rnd({3, 1}, 21), b = rnd({2, 3, 4}, 22);
    expect_close("sub reversed", ops::sub(a, b), {2, 3, 4}, naive_broadcast(a, b, {2, 3, 4}, std::minus<double>()),
                 1e-6);
}

// ------------------------------------------------------------------------------------------------ layout

SDXL_TEST(test_ops_concat_slice) {
    Tensor a = rnd({2, 3, 4}, 1), b = rnd({2, 5, 4}, 2);
    // Along dim 1 (and -2), with a strided part.
    Tensor bt = rnd({2, 4, 5}, 4).transpose(1, 2);  // [2, 5, 4]
    for (int dim : {1, -2}) {
        Tensor y = ops::concat({a, b, bt}, dim);
        std::vector<double> av = vals(a), bv = vals(b), tv = vals(bt), ref;
        for (int n = 0; n < 2; ++n) {
            ref.insert(ref.end(), av.begin() + n * 12, av.begin() + (n + 1) * 12);
            ref.insert(ref.end(), bv.begin() + n * 20, bv.begin() + (n + 1) * 20);
            ref.insert(ref.end(), tv.begin() + n * 20, tv.begin() + (n + 1) * 20);
        }
        expect_equal("concat dim 1", y, {2, 13, 4}, ref);
    }
    // Along dim 0 and the last dim.
    Tensor d0 = ops::concat({a, rnd({1, 3, 4}, 5)}, 0);
    std::vector<double> r0 = vals(a), e = vals(rnd({1, 3, 4}, 5));
    r0.insert(r0.end(), e.begin(), e.end());
    expect_equal("concat dim 0", d0, {3, 3, 4}, r0);
    Tensor x = rnd({3, 2}, 6), z = rnd({3, 3}, 7);
    std::vector<double> xv = vals(x), zv = vals(z), rl;
    for (int r = 0; r < 3; ++r) {
        rl.insert(rl.end(), xv.begin() + r * 2, xv.begin() + r * 2 + 2);
        rl.insert(rl.end(), zv.begin() + r * 3, zv.begin() + r * 3 + 3);
    }
    expect_equal("concat last", ops::concat({x, z}, -1), {3, 5}, rl);
    // Empty part and I64 parts (a byte copy).
    expect_equal("concat empty part", ops::concat({x, Tensor::empty({3, 0}, DType::F32)}, 1), {3, 2}, xv);
    Tensor i1 = Tensor::empty({2}, DType::I64), i2 = Tensor::empty({1}, DType::I64);
    i1.data<int64_t>()[0] = 5;
    i1.data<int64_t>()[1] = -7;
    i2.data<int64_t>()[0] = int64_t(1) << 40;
    Tensor ic = ops::concat({i1, i2}, 0);
    CHECK(ic.dtype() == DType::I64 && ic.shape() == Shape({3}));
    CHECK(ic.data<int64_t>()[0] == 5 && ic.data<int64_t>()[1] == -7 && ic.data<int64_t>()[2] == (int64_t(1) << 40));

    // slice: a view sharing storage.
    Tensor s = ops::slice(b, 1, 1, 3);
    CHECK(s.shape() == Shape({2, 3, 4}));
    CHECK(s.storage() == b.storage());
    std::vector<double> sv = vals(s), bv = vals(b);
    bool same = true;
    for (int n = 0; n < 2; ++n)
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 4; ++j) same &= sv[size_t((n * 3 + i) * 4 + j)] == bv[size_t((n * 5 + i + 1) * 4 + j)];
    CHECK(same);
    CHECK(ops::slice(b, -1, 4, 0).shape() == Shape({2, 5, 0}));
}

// ------------------------------------------------------------------------------------------------ embeddings

SDXL_TEST(test_ops_timestep_embedding) {
    // Small case by hand: dim 4, shift 0: freq = [1, exp(-ln(1e4) / 2)] = [1, 0.01].
    Tensor t1 = from_values({1}, {1.0f});
    Tensor e = ops::timestep_embedding(t1, 4, false, 0.0f, 1.0f, 10000.0f);
    expect_close("by hand", e, {1, 4}, {std::sin(1.0), std::sin(0.01), std::cos(1.0), std::cos(0.01)}, 1e-6);
    Tensor ef = ops::timestep_embedding(t1, 5, true, 0.0f, 1.0f, 10000.0f);
    expect_close("by hand, flip, odd", ef, {1, 5}, {std::cos(1.0), std::cos(0.01), std::sin(1.0), std::sin(0.01), 0.0},
                 1e-6);

    // SDXL's time_proj (320, flip, shift 0) and add_time_proj (256), and diffusers' default shift 1 with scale.
    Tensor t = from_values({4}, {999.0f, 500.5f, 1.0f, 0.0f});
    struct Cfg {
        int dim;
        bool flip;
        float shift, scale, period;
    };
    for (const Cfg& c : {Cfg{320, true, 0.0f, 1.0f, 10000.0f}, Cfg{256, true, 0.0f, 1.0f, 10000.0f},
                         Cfg{33, false, 1.0f, 2.0f, 500.0f}}) {
        const int half = c.dim / 2;
        std::vector<double> ref_d, ref_f;
        for (double tv : vals(t)) {
            const size_t hs = static_cast<size_t>(half);
            std::vector<double> sd(hs), cd(hs), sf(hs), cf(hs);
            for (int i = 0; i < half; ++i) {
                // double reference of the formula
                double a = c.scale * tv * std::exp(-std::log(double(c.period)) * i / (half - double(c.shift)));
                sd[size_t(i)] = std::sin(a);
                cd[size_t(i)] = std::cos(a);
                // torch's float32 evaluation order: ((-ln P) * i) / (half - shift), exp, t * f, scale * (.)
                float ex = (float(-std::log(double(c.period))) * float(i)) / float(half - double(c.shift));
                float af = c.scale * (float(tv) * std::exp(ex));
                sf[size_t(i)] = std::sin(double(af));
                cf[size_t(i)] = std::cos(double(af));
            }
            auto put = [&](std::vector<double>& out, const std::vector<double>& s, const std::vector<double>& co) {
                const std::vector<double>& first = c.flip ? co : s;
                const std::vector<double>& second = c.flip ? s : co;
                out.insert(out.end(), first.begin(), first.end());
                out.insert(out.end(), second.begin(), second.end());
                if (c.dim % 2) out.push_back(0.0);
            };
            put(ref_d, sd, cd);
            put(ref_f, sf, cf);
        }
        Tensor y = ops::timestep_embedding(t, c.dim, c.flip, c.shift, c.scale, c.period);
        expect_close("timestep vs double", y, {4, c.dim}, ref_d, 1e-4);
        expect_close("timestep vs float32 recipe", y, {4, c.dim}, ref_f, 2e-6);
    }
    // I64 timesteps give the same as F32.
    Tensor ti = Tensor::empty({2}, DType::I64);
    ti.data<int64_t>()[0] = 999;
    ti.data<int64_t>()[1] = 3;
    expect_equal("I64 t", ops::timestep_embedding(ti, 320, true, 0.0f, 1.0f, 10000.0f), {2, 320},
                 vals(ops::timestep_embedding(from_values({2}, {999.0f, 3.0f}), 320, true, 0.0f, 1.0f, 10000.0f)));
}

// ------------------------------------------------------------------------------------------------ threads

SDXL_TEST(test_ops_single_thread_matches) {
    // The pool size must not change results beyond float reassociation inside sgemm (none in our own loops).
    Tensor x = rnd({2, 8, 9, 9}, 1), w = rnd({5, 8, 3, 3}, 2);
    Tensor q = rnd({2, 2, 100, 16}, 3), k = rnd({2, 2, 77, 16}, 4), v = rnd({2, 2, 77, 16}, 5);
    Tensor gn_many = ops::group_norm(x, 4, Tensor(), Tensor(), 1e-5f);
    Tensor sm_many = ops::softmax(x);
    Tensor at_many = ops::attention(q, k, v, Tensor(), false, 0.0f);
    const int saved = num_threads();
    set_num_threads(1);
    Tensor gn_one = ops::group_norm(x, 4, Tensor(), Tensor(), 1e-5f);
    Tensor sm_one = ops::softmax(x);
    Tensor at_one = ops::attention(q, k, v, Tensor(), false, 0.0f);
    Shape conv_shape;
    std::vector<double> conv_ref = naive_conv(x, w, Tensor(), 1, 1, conv_shape);
    expect_close("conv 1 thread", ops::conv2d(x, w, Tensor(), 1, 1), conv_shape, conv_ref, 1e-5);
    set_num_threads(saved);
    expect_equal("group_norm threads", gn_many, x.shape(), vals(gn_one));
    expect_equal("softmax threads", sm_many, x.shape(), vals(sm_one));
    expect_close("attention threads", at_many, {2, 2, 100, 16}, vals(at_one), 1e-6);
}

// linear with a residual: the values of x w^T + b + r, and bit for bit ops::add(r, linear(x, w, b)) (the CPU
// backend's contract), for a contiguous residual, a permuted view, a broadcast-free 1-D case and no bias.
SDXL_TEST(test_ops_linear_residual) {
    Tensor x = rnd({2, 3, 5}, 11), w = rnd({7, 5}, 12), b = rnd({7}, 13);
    auto bits_equal = [](const Tensor& a, const Tensor& c) {
        const Tensor ac = a.contiguous(), cc = c.contiguous();
        return ac.shape() == cc.shape() &&
               std::memcmp(ac.raw_data(), cc.raw_data(), size_t(ac.numel()) * sizeof(float)) == 0;
    };
    auto plus = [](std::vector<double> y, const Tensor& r) {
        const std::vector<double> rv = vals(r);
        for (size_t i = 0; i < y.size(); ++i) y[i] += rv[i];
        return y;
    };
    const Tensor r = rnd({2, 3, 7}, 14);
    const Tensor y = ops::linear(x, w, b, r);
    expect_close("linear residual", y, {2, 3, 7}, plus(naive_linear(x, w, b), r), 1e-5);
    CHECK(bits_equal(y, ops::add(r, ops::linear(x, w, b))));
    // A residual that is a permuted view ([7, 3, 2] storage seen as [2, 3, 7]): any strides.
    const Tensor rp = rnd({7, 3, 2}, 15).permute({2, 1, 0});
    const Tensor yp = ops::linear(x, w, b, rp);
    expect_close("linear permuted residual", yp, {2, 3, 7}, plus(naive_linear(x, w, b), rp), 1e-5);
    CHECK(bits_equal(yp, ops::add(rp, ops::linear(x, w, b))));
    // No bias; 1-D input; zero input features (y = b + r).
    CHECK(bits_equal(ops::linear(x, w, Tensor(), r), ops::add(r, ops::linear(x, w, Tensor()))));
    const Tensor x1 = rnd({5}, 16), r1 = rnd({7}, 17);
    CHECK(bits_equal(ops::linear(x1, w, b, r1), ops::add(r1, ops::linear(x1, w, b))));
    const Tensor x0 = Tensor::empty({3, 0}, DType::F32), w0 = Tensor::empty({7, 0}, DType::F32);
    const Tensor r0 = rnd({3, 7}, 18);
    CHECK(bits_equal(ops::linear(x0, w0, b, r0), ops::add(r0, ops::linear(x0, w0, b))));
    // The inputs are not written.
    const Tensor r_before = r.clone();
    (void)ops::linear(x, w, b, r);
    CHECK(bits_equal(r, r_before));
}

// ------------------------------------------------------------------------------------------------ errors

SDXL_TEST(test_ops_errors) {
    const ErrorCode bad = ErrorCode::INVALID_ARGUMENT;
    Tensor x4 = rnd({1, 4, 5, 5}, 1), w = rnd({2, 4, 3, 3}, 2);
    // Undefined and non-F32 inputs.
    CHECK_THROWS_CODE(ops::silu(Tensor()), bad);
    CHECK_THROWS_CODE(ops::silu(x4.to(DType::F16)), bad);
    CHECK_THROWS_CODE(ops::gelu(Tensor::empty({3}, DType::I64)), bad);
    CHECK_THROWS_CODE(ops::add(x4, x4.to(DType::BF16)), bad);
    try {
        ops::silu(x4.to(DType::F16));
    } catch (const Error& e) {
        const std::string& m = e.message();
        CHECK_MSG(m.find("silu") != std::string::npos && m.find("to(DType::F32)") != std::string::npos,
                  "message should name the op and the fix: " << m);
    }
    // linear / matmul
    CHECK_THROWS_CODE(ops::linear(rnd({2, 5}, 3), rnd({7, 4}, 4), Tensor()), bad);
    CHECK_THROWS_CODE(ops::linear(rnd({2, 5}, 3), rnd({7, 5, 1}, 4), Tensor()), bad);
    CHECK_THROWS_CODE(ops::linear(rnd({2, 5}, 3), rnd({7, 5}, 4), rnd({6}, 5)), bad);
    CHECK_THROWS_CODE(ops::linear(rnd({}, 3), rnd({7, 5}, 4), Tensor()), bad);
    // residual: exactly the output's shape (no broadcasting), x's dtype and device.
    CHECK_THROWS_CODE(ops::linear(rnd({2, 5}, 3), rnd({7, 5}, 4), Tensor(), rnd({2, 6}, 5)), bad);
    CHECK_THROWS_CODE(ops::linear(rnd({2, 5}, 3), rnd({7, 5}, 4), Tensor(), rnd({1, 7}, 5)), bad);
    CHECK_THROWS_CODE(ops::linear(rnd({2, 5}, 3), rnd({7, 5}, 4), Tensor(), rnd({7}, 5)), bad);
    CHECK_THROWS_CODE(ops::linear(rnd({2, 5}, 3), rnd({7, 5}, 4), Tensor(), rnd({1, 2, 7}, 5)), bad);
    CHECK_THROWS_CODE(ops::linear(rnd({2, 5}, 3), rnd({7, 5}, 4), Tensor(), rnd({2, 7}, 5).to(DType::F16)), bad);
    CHECK_THROWS_CODE(ops::linear(rnd({2, 5}, 3), rnd({7, 5}, 4), Tensor(), Tensor::empty({2, 7}, DType::I64)), bad);
    try {
        ops::linear(rnd({2, 3, 5}, 3), rnd({7, 5}, 4), rnd({7}, 5), rnd({2, 1, 7}, 6));
        CHECK_MSG(false, "a broadcast residual should be refused");
    } catch (const Error& e) {
        const std::string& m = e.message();
        CHECK_MSG(m.find("linear") != std::string::npos && m.find("residual") != std::string::npos &&
                      m.find("[2, 3, 7]") != std::string::npos && m.find("[2, 1, 7]") != std::string::npos,
                  "message should name the op, the residual and both shapes: " << m);
    }
    CHECK_THROWS_CODE(ops::matmul(rnd({2, 3, 4}, 3), rnd({2, 5, 6}, 4)), bad);
    CHECK_THROWS_CODE(ops::matmul(rnd({2, 3, 4}, 3), rnd({3, 4, 6}, 4)), bad);
    CHECK_THROWS_CODE(ops::matmul(rnd({}, 3), rnd({3, 4}, 4)), bad);
    try {
        ops::matmul(rnd({2, 3, 4}, 3), rnd({2, 5, 6}, 4));
    } catch (const Error& e) {
        const std::string& m = e.message();
        CHECK_MSG(m.find("[2, 3, 4]") != std::string::npos && m.find("[2, 5, 6]") != std::string::npos,
                  "message should give both shapes: " << m);
    }
    // conv2d
    CHECK_THROWS_CODE(ops::conv2d(rnd({4, 5, 5}, 3), w, Tensor(), 1, 1), bad);
    CHECK_THROWS_CODE(ops::conv2d(rnd({1, 3, 5, 5}, 3), w, Tensor(), 1, 1), bad);
    CHECK_THROWS_CODE(ops::conv2d(x4, w, Tensor(), 0, 1), bad);
    CHECK_THROWS_CODE(ops::conv2d(x4, w, Tensor(), 1, -1), bad);
    CHECK_THROWS_CODE(ops::conv2d(rnd({1, 4, 2, 2}, 3), w, Tensor(), 1, 0), bad);
    CHECK_THROWS_CODE(ops::conv2d(x4, w, rnd({3}, 4), 1, 1), bad);
    CHECK_THROWS_CODE(ops::conv2d(x4, Tensor(), Tensor(), 1, 1), bad);
    // upsample
    CHECK_THROWS_CODE(ops::upsample_nearest(x4, 0, 3), bad);
    CHECK_THROWS_CODE(ops::upsample_nearest(rnd({4, 5, 5}, 3), 6, 6), bad);
    CHECK_THROWS_CODE(ops::upsample_nearest2x(rnd({4, 5}, 3)), bad);
    // norms
    CHECK_THROWS_CODE(ops::group_norm(x4, 3, Tensor(), Tensor(), 1e-5f), bad);  // 4 channels, 3 groups
    CHECK_THROWS_CODE(ops::group_norm(x4, 0, Tensor(), Tensor(), 1e-5f), bad);
    CHECK_THROWS_CODE(ops::group_norm(x4, 2, rnd({3}, 3), Tensor(), 1e-5f), bad);
    CHECK_THROWS_CODE(ops::group_norm(rnd({4}, 3), 2, Tensor(), Tensor(), 1e-5f), bad);
    CHECK_THROWS_CODE(ops::group_norm(x4, 2, Tensor(), Tensor(), -1.0f), bad);
    CHECK_THROWS_CODE(ops::layer_norm(x4, rnd({4}, 3), Tensor(), 1e-5f), bad);
    CHECK_THROWS_CODE(ops::layer_norm(x4, Tensor(), rnd({5, 1}, 3), 1e-5f), bad);
    // activations / softmax
    CHECK_THROWS_CODE(ops::geglu(rnd({2, 5}, 3)), bad);
    CHECK_THROWS_CODE(ops::softmax(rnd({}, 3)), bad);
    // attention
    Tensor q = rnd({2, 3, 5, 4}, 3), k = rnd({2, 3, 7, 4}, 4), v = rnd({2, 3, 7, 6}, 5);
    CHECK_THROWS_CODE(ops::attention(q, rnd({2, 3, 7, 5}, 6), v, Tensor(), false, 0.0f), bad);  // head size
    CHECK_THROWS_CODE(ops::attention(q, k, rnd({2, 3, 6, 6}, 6), Tensor(), false, 0.0f), bad);  // keys
    CHECK_THROWS_CODE(ops::attention(q, rnd({1, 3, 7, 4}, 6), v, Tensor(), false, 0.0f), bad);  // batch
    CHECK_THROWS_CODE(ops::attention(rnd({2, 5, 4}, 6), k, v, Tensor(), false, 0.0f), bad);      // rank
    CHECK_THROWS_CODE(ops::attention(q, k, v, rnd({2, 6}, 6), false, 0.0f), bad);                // mask shape
    CHECK_THROWS_CODE(ops::attention(q, k, v, rnd({2, 7}, 6).to(DType::F16), false, 0.0f), bad);  // mask dtype
    CHECK_THROWS_CODE(ops::attention(q, k, v, Tensor(), false, NAN), bad);
    // broadcasting
    CHECK_THROWS_CODE(ops::add(rnd({2, 3}, 3), rnd({4}, 4)), bad);
    CHECK_THROWS_CODE(ops::mul(rnd({2, 3, 4}, 3), rnd({3, 3, 4}, 4)), bad);
    CHECK_THROWS_CODE(ops::sub(rnd({2}, 3), Tensor()), bad);
    // layout
    CHECK_THROWS_CODE(ops::concat({}, 0), bad);
    CHECK_THROWS_CODE(ops::concat({rnd({2, 3}, 3), rnd({3, 3}, 4)}, 1), bad);
    CHECK_THROWS_CODE(ops::concat({rnd({2, 3}, 3), rnd({2, 3, 1}, 4)}, 0), bad);
    CHECK_THROWS_CODE(ops::concat({rnd({2, 3}, 3), rnd({2, 3}, 4)}, 2), bad);
    CHECK_THROWS_CODE(ops::concat({rnd({2, 3}, 3), Tensor::empty({2, 3}, DType::I64)}, 0), bad);
    CHECK_THROWS_CODE(ops::slice(rnd({2, 3}, 3), 1, 2, 2), bad);
    CHECK_THROWS_CODE(ops::slice(rnd({2, 3}, 3), 2, 0, 1), bad);
    CHECK_THROWS_CODE(ops::slice(rnd({2, 3}, 3), 0, -1, 1), bad);
    // timestep_embedding
    CHECK_THROWS_CODE(ops::timestep_embedding(rnd({2, 1}, 3), 8, true, 0.0f, 1.0f, 10000.0f), bad);
    CHECK_THROWS_CODE(ops::timestep_embedding(rnd({2}, 3).to(DType::F16), 8, true, 0.0f, 1.0f, 10000.0f), bad);
    CHECK_THROWS_CODE(ops::timestep_embedding(rnd({2}, 3), 0, true, 0.0f, 1.0f, 10000.0f), bad);
    CHECK_THROWS_CODE(ops::timestep_embedding(rnd({2}, 3), 2, true, 1.0f, 1.0f, 10000.0f), bad);  // half - shift = 0
    CHECK_THROWS_CODE(ops::timestep_embedding(rnd({2}, 3), 8, true, 0.0f, 1.0f, 0.0f), bad);
}
