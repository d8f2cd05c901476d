// conv2d (1x1 as a direct GEMM; k x k through im2col tiles + sgemm) and nearest-neighbour upsampling.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/cpu/cpu_ops.h"
#include "core/parallel.h"

namespace sdxl::cpu {

namespace {

// im2col buffer budget in floats (16 MiB): the output is produced in tiles of whole output rows so that
// a full-resolution VAE conv (128 ch x 3x3 x 1024x1024 would need 4.5 GiB of columns) stays small.
constexpr int64_t kColsBudget = int64_t(1) << 22;

int64_t ceil_div_nonneg(int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; }

// Fills cols [C*kh*kw, rows*Wo] (row r = (c*kh + i)*kw + j) for output rows [oy0, oy0 + rows) of one image.
void im2col_tile(const float* img, int64_t C, int64_t H, int64_t W, int64_t kh, int64_t kw, int64_t s, int64_t p,
                 int64_t Wo, int64_t oy0, int64_t rows, float* cols) {
    const int64_t ck = C * kh * kw;
    const int64_t tile_cols = rows * Wo;
    const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / std::max<int64_t>(1, tile_cols));
    parallel_for(ck, grain, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t c = r / (kh * kw), i = (r / kw) % kh, j = r % kw;
            // Output columns whose input column ox*s - p + j lies inside [0, W).
            const int64_t ox_lo = std::min(Wo, ceil_div_nonneg(p - j, s));
            const int64_t ox_hi = W - 1 + p - j < 0 ? 0 : std::min(Wo, (W - 1 + p - j) / s + 1);
            for (int64_t t = 0; t < rows; ++t) {
                float* dst = cols + r * tile_cols + t * Wo;
                const int64_t iy = (oy0 + t) * s - p + i;
                if (iy < 0 || iy >= H || ox_hi <= ox_lo) {
                    std::memset(dst, 0, size_t(Wo) * sizeof(float));
                    continue;
                }
                const float* src = img + (c * H + iy) * W;
                std::fill(dst, dst + ox_lo, 0.0f);
                if (s == 1) {
                    std::memcpy(dst + ox_lo, src + (ox_lo - p + j), size_t(ox_hi - ox_lo) * sizeof(float));
                } else {
                    for (int64_t ox = ox_lo; ox < ox_hi; ++ox) dst[ox] = src[ox * s - p + j];
                }
                std::fill(dst + ox_hi, dst + Wo, 0.0f);
            }
        }
    });
}

}  // namespace

// x [N, C, H, W] * w [O, C, kh, kw] (+ b [O]) -> [N, O, Ho, Wo]
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int padding) {
    const Tensor xc = x.contiguous(), wc = w.contiguous();
    const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    const int64_t O = w.shape()[0], kh = w.shape()[2], kw = w.shape()[3];
    const int64_t s = stride, p = padding;
    const int64_t Ho = (H + 2 * p - kh) / s + 1, Wo = (W + 2 * p - kw) / s + 1;
    Tensor y = Tensor::empty({N, O, Ho, Wo}, DType::F32);
    if (y.numel() == 0) return y;
    float* yp = y.data<float>();
    const float* xp = xc.data<float>();
    const int64_t hw = Ho * Wo, ck = C * kh * kw;

    float beta = 0.0f;
    if (b.defined()) {  // every output plane starts as its bias; the products accumulate onto it
        Tensor bc = b.contiguous();
        const float* bp = bc.data<float>();
        parallel_for(N * O, std::max<int64_t>(1, kElementwiseGrain / hw), [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) std::fill(yp + r * hw, yp + (r + 1) * hw, bp[r % O]);
        });
        beta = 1.0f;
    }
    const GemmOperand wm = gemm_operand(wc.data<float>(), O, ck, ck, 1);  // [O, C*kh*kw]

    if (kh == 1 && kw == 1 && s == 1 && p == 0) {  // pointwise: y_n [O, HW] = w [O, C] @ x_n [C, HW]
        for (int64_t n = 0; n < N; ++n) {
            GemmOperand xm = gemm_operand(xp + n * C * H * W, C, hw, hw, 1);
            sgemm(wm, xm, O, hw, C, 1.0f, beta, yp + n * O * hw, hw);
        }
        return y;
    }

    const int64_t tile_rows = std::clamp<int64_t>(kColsBudget / std::max<int64_t>(1, ck * Wo), 1, Ho);
    std::vector<float> cols(static_cast<size_t>(std::max<int64_t>(1, ck * tile_rows * Wo)));
    for (int64_t n = 0; n < N; ++n) {
        const float* img = xp + n * C * H * W;
        for (int64_t oy0 = 0; oy0 < Ho; oy0 += tile_rows) {
            const int64_t rows = std::min(tile_rows, Ho - oy0);
            const int64_t tile_cols = rows * Wo;
            im2col_tile(img, C, H, W, kh, kw, s, p, Wo, oy0, rows, cols.data());  // [ck, rows*Wo]
            GemmOperand cm = gemm_operand(cols.data(), ck, tile_cols, tile_cols, 1);
            // y_n[:, oy0*Wo : (oy0+rows)*Wo] [O, rows*Wo], row stride HW
            sgemm(wm, cm, O, tile_cols, ck, 1.0f, beta, yp + n * O * hw + oy0 * Wo, hw);
        }
    }
    return y;
}

namespace {

// torch's "nearest" source index: src = min(floor(dst * scale), in - 1), scale = (float)in / out, in float.
int64_t nearest_src(int64_t dst, int64_t in, int64_t out) {
    if (in == out) return dst;
    if (out == 2 * in) return dst >> 1;  // torch's exact shortcut, same result as the formula
    const float scale = float(in) / float(out);
    return std::min(int64_t(std::floor(float(dst) * scale)), in - 1);
}

}  // namespace

// x [N, C, H, W] -> [N, C, out_h, out_w]
Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) {
    const Tensor xc = x.contiguous();
    const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3];
    Tensor y = Tensor::empty({N, C, out_h, out_w}, DType::F32);
    if (y.numel() == 0) return y;
    std::vector<int64_t> sy(static_cast<size_t>(out_h)), sx(static_cast<size_t>(out_w));
    for (int64_t i = 0; i < out_h; ++i) sy[size_t(i)] = nearest_src(i, H, out_h);
    for (int64_t i = 0; i < out_w; ++i) sx[size_t(i)] = nearest_src(i, W, out_w);
    const float* xp = xc.data<float>();
    float* yp = y.data<float>();
    parallel_for(N * C * out_h, std::max<int64_t>(1, kElementwiseGrain / out_w), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {  // r = (n*C + c)*out_h + oy
            const int64_t plane = r / out_h, oy = r % out_h;
            const float* src = xp + (plane * H + sy[size_t(oy)]) * W;
            float* dst = yp + r * out_w;
            for (int64_t ox = 0; ox < out_w; ++ox) dst[ox] = src[sx[size_t(ox)]];
        }
    });
    return y;
}

}  // namespace sdxl::cpu
