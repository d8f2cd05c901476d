// CPU attention timing at SDXL's sizes (not a CTest): sdxl_attention_perf [--reps N] [--filter substr]
// Each case runs once as warm-up, then N timed calls; prints mean +- stddev and min in ms, the GFLOP/s of the
// two products, and the max abs error of a sample of output rows against a double-precision reference.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "ops/ops.h"
#include "test_tensors.h"

using namespace sdxl;

namespace {

struct Case {
    const char* name;
    int64_t B, H, Lq, Lk, D;
    bool causal;
    bool strided;  // q/k/v as [B, L, H, D] transposed views (what the models pass)
};

Tensor make(int64_t B, int64_t H, int64_t L, int64_t D, bool strided, uint64_t seed, float amp) {
    if (!strided) return sdxl_test::rnd({B, H, L, D}, seed, -amp, amp);
    return sdxl_test::rnd({B, L, H, D}, seed, -amp, amp).transpose(1, 2);
}

// Max abs error over a sample of rows vs a double reference.
double check(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& y, bool causal, float scale) {
    const int64_t B = q.shape()[0], H = q.shape()[1], Lq = q.shape()[2], D = q.shape()[3], Lk = k.shape()[2];
    const Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous(), yc = y.contiguous();
    const float *qp = qc.data<float>(), *kp = kc.data<float>(), *vp = vc.data<float>(), *yp = yc.data<float>();
    double err = 0.0;
    std::vector<double> s(size_t(Lk), 0.0);
    std::vector<double> o(static_cast<size_t>(D), 0.0);
    for (int64_t bh : {int64_t(0), B * H - 1})
        for (int64_t i : {int64_t(0), Lq / 3, Lq / 2 + 1, Lq - 1}) {
            const int64_t n = causal ? std::min(Lk, i + 1) : Lk;
            double mx = -1e300;
            for (int64_t j = 0; j < n; ++j) {
                double acc = 0;
                for (int64_t d = 0; d < D; ++d) acc += double(qp[(bh * Lq + i) * D + d]) * kp[(bh * Lk + j) * D + d];
                s[size_t(j)] = acc * scale;
                mx = std::max(mx, s[size_t(j)]);
            }
            double sum = 0;
            for (int64_t j = 0; j < n; ++j) sum += (s[size_t(j)] = std::exp(s[size_t(j)] - mx));
            std::fill(o.begin(), o.end(), 0.0);
            for (int64_t j = 0; j < n; ++j)
                for (int64_t d = 0; d < D; ++d) o[size_t(d)] += s[size_t(j)] / sum * vp[(bh * Lk + j) * D + d];
            for (int64_t d = 0; d < D; ++d) err = std::max(err, std::abs(o[size_t(d)] - yp[(bh * Lq + i) * D + d]));
        }
    return err;
}

}  // namespace

int main(int argc, char** argv) {
    int reps = 5;
    std::string filter;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--reps") reps = std::stoi(argv[i + 1]);
        else if (a == "--filter") filter = argv[i + 1];
    }
    const Case cases[] = {
        {"self 2x10x1024 d64", 2, 10, 1024, 1024, 64, false, true},
        {"self 2x20x1024 d64", 2, 20, 1024, 1024, 64, false, true},
        {"self 2x10x4096 d64", 2, 10, 4096, 4096, 64, false, true},
        {"self 1x2x16384 d64", 1, 2, 16384, 16384, 64, false, true},
        {"cross 2x10x4096x77 d64", 2, 10, 4096, 77, 64, false, true},
        {"cross 2x20x1024x154 d64", 2, 20, 1024, 154, 64, false, true},
        {"vae 1x1x4096 d512", 1, 1, 4096, 4096, 512, false, false},
        {"vae 1x1x16384 d512", 1, 1, 16384, 16384, 512, false, false},
        {"clip causal 1x20x77 d64", 1, 20, 77, 77, 64, true, true},
    };
    std::printf("threads %d\n", num_threads());
    for (const Case& c : cases) {
        if (!filter.empty() && std::string(c.name).find(filter) == std::string::npos) continue;
        const Tensor q = make(c.B, c.H, c.Lq, c.D, c.strided, 1, 2.0f);
        const Tensor k = make(c.B, c.H, c.Lk, c.D, c.strided, 2, 2.0f);
        const Tensor v = make(c.B, c.H, c.Lk, c.D, c.strided, 3, 1.0f);
        const float scale = 1.0f / std::sqrt(float(c.D));
        Tensor y = ops::attention(q, k, v, Tensor(), c.causal, 0.0f);
        const double err = check(q, k, v, y, c.causal, scale);
        std::vector<double> ms;
        for (int r = 0; r < reps; ++r) {
            const auto t0 = std::chrono::steady_clock::now();
            y = ops::attention(q, k, v, Tensor(), c.causal, 0.0f);
            ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        }
        double mean = 0, var = 0;
        for (double m : ms) mean += m;
        mean /= double(ms.size());
        for (double m : ms) var += (m - mean) * (m - mean);
        const double sd = ms.size() > 1 ? std::sqrt(var / double(ms.size() - 1)) : 0.0;
        const double flop = 4.0 * double(c.B * c.H) * double(c.Lq) * double(c.Lk) * double(c.D) * (c.causal ? 0.5 : 1.0);
        std::printf("%-26s %9.2f +- %7.2f ms (min %9.2f)  %6.1f GFLOP/s  max err %.2e\n", c.name, mean, sd,
                    *std::min_element(ms.begin(), ms.end()), flop / (mean * 1e6), err);
        std::fflush(stdout);
    }
    return 0;
}
