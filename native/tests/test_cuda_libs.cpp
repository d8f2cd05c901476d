// The CUDA math-library glue: run-time search for cuBLAS/cuDNN (fake folder layouts, clear errors), the caching
// allocator's size classes, and, where a GPU exists, GEMM and conv2d against the CPU backend. Device tests are
// skipped (and say why) on machines without a GPU; the whole file is empty in builds without CUDA.
#if defined(SDXL_WITH_CUDA)

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "backends/cuda/cuda_allocator.h"
#include "backends/cuda/cuda_libs.h"
#include "core/device.h"
#include "ops/ops.h"
#include "test_tensors.h"

using namespace sdxl;
using sdxl_test::rnd;

namespace {

std::string make_temp_dir() {
    char tmpl[] = "/tmp/sdxl_cuda_libs_XXXXXX";
    const char* p = mkdtemp(tmpl);
    return p ? std::string(p) : std::string();
}

void mkdirs(const std::string& path) {
    std::string cur;
    for (size_t i = 0; i <= path.size(); ++i) {
        if (i == path.size() || path[i] == '/') {
            if (!cur.empty()) ::mkdir(cur.c_str(), 0755);
        }
        if (i < path.size()) cur += path[i];
    }
}

void touch(const std::string& path) { std::ofstream(path).flush(); }

// Sets an environment variable for the scope, restoring it after.
struct ScopedEnv {
    std::string name, old;
    bool had;
    ScopedEnv(const char* n, const std::string& value) : name(n) {
        const char* v = std::getenv(n);
        had = v != nullptr;
        if (had) old = v;
        ::setenv(n, value.c_str(), 1);
    }
    ~ScopedEnv() {
        if (had) ::setenv(name.c_str(), old.c_str(), 1);
        else ::unsetenv(name.c_str());
    }
};

bool contains(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
}

}  // namespace

SDXL_TEST(test_cuda_alloc_size_classes) {
    using cuda::alloc::size_class;
    CHECK(size_class(0) == 512);
    CHECK(size_class(1) == 512);
    CHECK(size_class(512) == 512);
    CHECK(size_class(513) == 1024);
    CHECK(size_class(1 << 20) == size_t(1) << 20);
    CHECK(size_class((1 << 20) + 1) == size_t(5) << 18);         // 1.25 MiB
    CHECK(size_class((size_t(2) << 20) - 1) == size_t(2) << 20);  // 2 MiB
    CHECK(size_class(size_t(3) << 20) == size_t(3) << 20);        // 1.5 x 2 MiB
    CHECK(size_class((size_t(3) << 20) + 1) == size_t(7) << 19);  // 1.75 x 2 MiB = 3.5 MiB
    CHECK(size_class(size_t(5) << 30) == size_t(5) << 30);        // 1.25 x 4 GiB
    // Every class covers its request, wastes at most 25% (above 1 MiB) or 511 bytes (below), and is monotonic.
    uint64_t s = 12345;
    size_t prev_n = 0, prev_c = 0;
    std::vector<size_t> ns;
    for (int i = 0; i < 20000; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        ns.push_back(size_t(s >> 30) % (size_t(1) << ((s >> 20) % 36)));
    }
    std::sort(ns.begin(), ns.end());
    for (size_t n : ns) {
        const size_t c = size_class(n);
        CHECK_MSG(c >= std::max<size_t>(n, 1), n << " -> " << c);
        if (n <= (1 << 20)) CHECK_MSG(c - std::max<size_t>(n, 1) < 512 && c % 512 == 0, n << " -> " << c);
        else CHECK_MSG(double(c) <= double(n) * 1.25 + 1.0, n << " -> " << c);
        CHECK_MSG(n < prev_n || c >= prev_c, "not monotonic at " << n);
        prev_n = n;
        prev_c = c;
    }
    // Requests of one class share blocks: that is what makes the cache hit.
    CHECK(size_class(100) == size_class(400));
    CHECK(size_class((size_t(3) << 20) + 100) == size_class((size_t(7) << 19) - 100));
}

// cuDNN statuses become the error codes callers act on: a configuration cuDNN does not support (every
// CUDNN_STATUS_NOT_SUPPORTED_*, e.g. BF16 conv where no engine takes it) is UNSUPPORTED, not DEVICE_ERROR.
SDXL_TEST(test_cuda_libs_cudnn_status_codes) {
    using cuda::libs::cudnn_error_code;
    CHECK(cudnn_error_code(3000) == ErrorCode::UNSUPPORTED);  // CUDNN_STATUS_NOT_SUPPORTED
    CHECK(cudnn_error_code(3003) == ErrorCode::UNSUPPORTED);  // ..._DATA_TYPE
    CHECK(cudnn_error_code(3007) == ErrorCode::UNSUPPORTED);  // ..._ARCH_MISMATCH
    CHECK(cudnn_error_code(3999) == ErrorCode::UNSUPPORTED);
    CHECK(cudnn_error_code(4003) == ErrorCode::OUT_OF_MEMORY);  // INTERNAL_ERROR_HOST_ALLOCATION_FAILED
    CHECK(cudnn_error_code(4004) == ErrorCode::OUT_OF_MEMORY);  // INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED
    CHECK(cudnn_error_code(2000) == ErrorCode::DEVICE_ERROR);   // BAD_PARAM
    CHECK(cudnn_error_code(4000) == ErrorCode::DEVICE_ERROR);   // INTERNAL_ERROR
    CHECK(cudnn_error_code(5000) == ErrorCode::DEVICE_ERROR);   // EXECUTION_FAILED
    sdxl_test::expect_error(
        [] { cuda::libs::fail_call("cuDNN", 3003, "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE", cudnn_error_code(3003),
                                   "cudnnConvolutionForward(...)", "f.cpp", 7); },
        ErrorCode::UNSUPPORTED, "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE");
}

SDXL_TEST(test_cuda_libs_search_reports_fake_and_missing_libraries) {
    const std::string root = make_temp_dir();
    CHECK(!root.empty());
    if (root.empty()) return;
    const std::string empty_dir = root + "/empty", fake_dir = root + "/fake";
    mkdirs(empty_dir);
    mkdirs(fake_dir);
    touch(fake_dir + "/libcublas.so.13");  // an empty file: found, but not a library

    // Missing everywhere: each folder is listed with "not found".
    cuda::libs::Library none =
        cuda::libs::open_library("cuBLAS", "libcublas_sdxl_test_missing.so.13", {empty_dir}, true, {}, {});
    CHECK(!none.ok());
    CHECK(none.tried.size() == 2);  // the plain name, then the folder
    const std::string r1 = none.report();
    CHECK_MSG(r1.find("cuBLAS was not found") != std::string::npos, r1);
    CHECK_MSG(r1.find(empty_dir + "/libcublas_sdxl_test_missing.so.13: not found") != std::string::npos, r1);
    CHECK_MSG(r1.find("SDXL4J_CUDA_LIBS") != std::string::npos, r1);
    sdxl_test::expect_error([&] { cuda::libs::require(none, "linear"); }, ErrorCode::DEVICE_ERROR, empty_dir);
    sdxl_test::expect_error([&] { cuda::libs::symbol(none, "cublasCreate_v2"); }, ErrorCode::DEVICE_ERROR,
                            "was not found");

    // An empty file: dlopen's reason is reported (not "not found"), and the search goes on to the next folder.
    cuda::libs::Library fake =
        cuda::libs::open_library("cuBLAS", "libcublas.so.13", {fake_dir, empty_dir}, false, {}, {});
    CHECK(!fake.ok());
    CHECK(fake.tried.size() == 2);
    if (fake.tried.size() == 2) {
        CHECK(fake.tried[0].path == fake_dir + "/libcublas.so.13");
        CHECK_MSG(fake.tried[0].outcome != "not found" && !fake.tried[0].outcome.empty(), fake.tried[0].outcome);
        CHECK(fake.tried[1].outcome == "not found");
    }
    std::cout << "  (report for a fake library: " << fake.report() << ")\n";

    // The override comes first, a folder that does not exist is skipped, a wheel layout under $VIRTUAL_ENV is found.
    const std::string venv = root + "/venv", wheel_lib = venv + "/lib/python3.99/site-packages/nvidia/cudnn/lib";
    mkdirs(wheel_lib);
    {
        ScopedEnv e1("SDXL4J_CUDA_LIBS", fake_dir + ":" + root + "/does-not-exist");
        ScopedEnv e2("VIRTUAL_ENV", venv);
        const auto dirs = cuda::libs::search_dirs({"nvidia/cudnn/lib"});
        CHECK(!dirs.empty() && dirs.front() == fake_dir);
        CHECK(!contains(dirs, root + "/does-not-exist"));
        CHECK_MSG(contains(dirs, wheel_lib), "wheel folder not searched");
        const auto sites = cuda::libs::python_site_packages();
        CHECK(contains(sites, venv + "/lib/python3.99/site-packages"));
        // The override is tried before the plain soname.
        cuda::libs::Library lib = cuda::libs::open_library("cuBLAS", "libcublas.so.13", dirs, true, {}, {});
        CHECK(!lib.tried.empty() && lib.tried.front().path == fake_dir + "/libcublas.so.13");
    }
    ::unlink((fake_dir + "/libcublas.so.13").c_str());
    ::rmdir(fake_dir.c_str());
    ::rmdir(empty_dir.c_str());
    for (std::string p = wheel_lib; p.size() > root.size(); p = p.substr(0, p.find_last_of('/'))) ::rmdir(p.c_str());
    ::rmdir(root.c_str());

    // What this machine has (informational: CI has neither).
    std::cout << "  (" << cuda::libs::cublas().report() << ")\n  (" << cuda::libs::cudnn().report() << ")\n";
}

namespace {

// max |got - ref| / max(1, max |ref|), after bringing got to the CPU in F32.
double rel_err(const Tensor& got, const Tensor& ref) {
    Tensor g = got.to(Device::CPU).to(DType::F32).contiguous();
    Tensor r = ref.contiguous();
    CHECK_MSG(g.shape() == r.shape(), shape_str(g.shape()) << " vs " << shape_str(r.shape()));
    if (g.shape() != r.shape()) return 1e9;
    double err = 0, scale = 1;
    for (int64_t i = 0; i < r.numel(); ++i) {
        err = std::max(err, double(std::fabs(g.data<float>()[i] - r.data<float>()[i])));
        scale = std::max(scale, double(std::fabs(r.data<float>()[i])));
    }
    return err / scale;
}

// Inputs rounded to dtype (the reference sees exactly what the GPU sees).
Tensor rounded(const Tensor& t, DType dt) { return t.to(dt).to(DType::F32); }
Tensor on_gpu(const Tensor& t, DType dt) { return t.to(dt).to(Device::CUDA); }

// Tolerances relative to the largest reference value: F32 without TF32 differs from the CPU only by the order of
// the fp32 sums; F16/BF16 mostly by the output rounding (2^-11, 2^-8) plus the sums.
double tolerance(DType dt) { return dt == DType::F32 ? 2e-5 : dt == DType::F16 ? 2e-3 : 1.6e-2; }

bool device_ready(const char* what) {
    if (!device::cuda_available()) {
        std::cout << "  (skipped " << what << ": " << device::cuda_status() << ")\n";
        return false;
    }
    const char* tf32 = std::getenv("SDXL4J_CUDA_TF32");
    if (tf32 && tf32[0] == '1') {
        std::cout << "  (skipped " << what << ": SDXL4J_CUDA_TF32=1 loosens F32 beyond these tolerances)\n";
        return false;
    }
    return true;
}

}  // namespace

SDXL_TEST(test_cuda_gemm_matches_cpu) {
    if (!device_ready("GEMM")) return;
    Tensor x = rnd({2, 7, 40}, 1), w = rnd({24, 40}, 2), b = rnd({24}, 3);
    if (!cuda::libs::gemm_compiled()) {
        std::cout << "  (GEMM compiled out: no cuBLAS headers at build time)\n";
        CHECK_THROWS_CODE(ops::linear(on_gpu(x, DType::F32), on_gpu(w, DType::F32), Tensor()), ErrorCode::UNSUPPORTED);
        return;
    }
    if (!cuda::libs::cublas().ok()) {
        std::cout << "  (cuBLAS not found at run time: checking the error)\n";
        sdxl_test::expect_error([&] { ops::linear(on_gpu(x, DType::F32), on_gpu(w, DType::F32), Tensor()); },
                                ErrorCode::DEVICE_ERROR, "searched");
        return;
    }
    Tensor a = rnd({3, 17, 33}, 4), bm = rnd({3, 33, 9}, 5), b1 = rnd({33, 9}, 6), a1 = rnd({1, 17, 33}, 7);
    Tensor kt = rnd({3, 9, 33}, 8);  // used as kt^T [3, 33, 9]: a transposed operand (op T)
    Tensor xp = rnd({7, 2, 40}, 9);  // permuted to [2, 7, 40]: rows do not merge, copied
    for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
        const double tol = tolerance(dt);
        struct Case {
            const char* name;
            Tensor gpu, ref;
        };
        auto R = [&](const Tensor& t) { return rounded(t, dt); };
        auto G = [&](const Tensor& t) { return on_gpu(t, dt); };
        std::vector<Case> cases;
        cases.push_back({"linear+bias", ops::linear(G(x), G(w), G(b)), ops::linear(R(x), R(w), R(b))});
        cases.push_back({"linear", ops::linear(G(x), G(w), Tensor()), ops::linear(R(x), R(w), Tensor())});
        cases.push_back({"linear strided x", ops::linear(G(xp).permute({1, 0, 2}), G(w), G(b)),
                         ops::linear(R(xp).permute({1, 0, 2}), R(w), R(b))});
        cases.push_back({"linear 1-D x", ops::linear(G(w).narrow(0, 3, 1).view({40}), G(w), Tensor()),
                         ops::linear(R(w).narrow(0, 3, 1).view({40}), R(w), Tensor())});
        cases.push_back({"bmm", ops::matmul(G(a), G(bm)), ops::matmul(R(a), R(bm))});
        cases.push_back({"bmm b broadcast", ops::matmul(G(a), G(b1)), ops::matmul(R(a), R(b1))});
        cases.push_back({"bmm a broadcast", ops::matmul(G(a1), G(bm)), ops::matmul(R(a1), R(bm))});
        cases.push_back({"bmm transposed b", ops::matmul(G(a), G(kt).transpose(-1, -2)),
                         ops::matmul(R(a), R(kt).transpose(-1, -2))});
        cases.push_back({"bmm transposed a", ops::matmul(G(bm).transpose(-1, -2), G(kt).transpose(-1, -2)),
                         ops::matmul(R(bm).transpose(-1, -2), R(kt).transpose(-1, -2))});
        for (auto& c : cases) {
            CHECK(c.gpu.dtype() == dt && c.gpu.device() == Device::CUDA);
            const double e = rel_err(c.gpu, c.ref);
            CHECK_MSG(e <= tol, c.name << " " << dtype_name(dt) << ": relative error " << e << " > " << tol);
        }
    }
}

// linear with bias and residual on both CUDA paths (cuBLASLt's epilogue and the cuBLAS fallback), against the CPU:
// contiguous and permuted residuals, views that start one element into their storage (less aligned pointers:
// another cuBLASLt plan), no bias, a 1-D x, K = 0. Checks which path ran, and that the residual is not written.
SDXL_TEST(test_cuda_linear_residual_both_paths) {
    if (!device_ready("linear + residual")) return;
    if (!cuda::libs::gemm_compiled() || !cuda::libs::cublas().ok()) {
        std::cout << "  (skipped: no cuBLAS)\n";
        return;
    }
#if defined(SDXL_CUDA_EMULATOR)
    CHECK_MSG(cuda::libs::cublaslt().ok(), "the fake cuBLASLt should load: " << cuda::libs::cublaslt().report());
#endif
    const bool have_lt = cuda::libs::cublaslt().ok();
    Tensor x = rnd({2, 7, 40}, 21), w = rnd({24, 40}, 22), b = rnd({24}, 23), r = rnd({2, 7, 24}, 24);
    Tensor rp = rnd({24, 7, 2}, 25);             // permuted to [2, 7, 24]: strides no GEMM layout takes
    Tensor xo = rnd({2, 7, 41}, 26), ro = rnd({2, 7, 25}, 27), bo = rnd({25}, 28);  // narrowed by 1 element
    Tensor x1 = rnd({40}, 29), r1 = rnd({24}, 30);
    for (bool fallback : {false, true}) {
        cuda::libs::force_cublas_linear(fallback);
        for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
            const double tol = tolerance(dt);
            auto R = [&](const Tensor& t) { return rounded(t, dt); };
            auto G = [&](const Tensor& t) { return on_gpu(t, dt); };
            struct Case {
                const char* name;
                Tensor gpu, ref;
            };
            const Tensor gr = G(r), gr_before = gr.to(Device::CPU);
            const auto before = cuda::libs::linear_paths();
            std::vector<Case> cases;
            cases.push_back({"x w^T + b + r", ops::linear(G(x), G(w), G(b), gr),
                             ops::linear(R(x), R(w), R(b), R(r))});
            cases.push_back({"x w^T + r", ops::linear(G(x), G(w), Tensor(), gr),
                             ops::linear(R(x), R(w), Tensor(), R(r))});
            cases.push_back({"permuted r", ops::linear(G(x), G(w), G(b), G(rp).permute({2, 1, 0})),
                             ops::linear(R(x), R(w), R(b), R(rp).permute({2, 1, 0}))});
            cases.push_back({"offset views", ops::linear(G(xo).narrow(2, 1, 40), G(w), G(bo).narrow(0, 1, 24),
                                                         G(ro).narrow(2, 1, 24)),
                             ops::linear(R(xo).narrow(2, 1, 40), R(w), R(bo).narrow(0, 1, 24), R(ro).narrow(2, 1, 24))});
            cases.push_back({"1-D x", ops::linear(G(x1), G(w), G(b), G(r1)), ops::linear(R(x1), R(w), R(b), R(r1))});
            cases.push_back({"K = 0", ops::linear(G(x).narrow(2, 0, 0), G(w).narrow(1, 0, 0), G(b), gr),
                             ops::linear(R(x).narrow(2, 0, 0), R(w).narrow(1, 0, 0), R(b), R(r))});
            const auto after = cuda::libs::linear_paths();
            for (auto& c : cases) {
                CHECK(c.gpu.dtype() == dt && c.gpu.device() == Device::CUDA);
                const double e = rel_err(c.gpu, c.ref);
                CHECK_MSG(e <= tol, c.name << " " << dtype_name(dt) << (fallback ? " (cuBLAS)" : " (cuBLASLt)")
                                           << ": relative error " << e << " > " << tol);
            }
            // Five GEMMs (K = 0 is no GEMM: it always takes the plain path).
            if (fallback || !have_lt) {
                CHECK(after.lt == before.lt && after.cublas == before.cublas + 6);
            } else {
                CHECK_MSG(after.lt == before.lt + 5 && after.cublas == before.cublas + 1,
                          "cuBLASLt ran " << after.lt - before.lt << " of 5, cuBLAS " << after.cublas - before.cublas);
            }
            const Tensor gr_after = gr.to(Device::CPU);
            CHECK(std::memcmp(gr_after.raw_data(), gr_before.raw_data(), size_t(gr.numel()) * dtype_size(dt)) == 0);
        }
    }
    cuda::libs::force_cublas_linear(false);
}

SDXL_TEST(test_cuda_conv2d_matches_cpu) {
    if (!device_ready("conv2d")) return;
    Tensor x = rnd({2, 5, 13, 11}, 11), w3 = rnd({7, 5, 3, 3}, 12), w1 = rnd({6, 5, 1, 1}, 13), b = rnd({7}, 14);
    if (!cuda::libs::conv_compiled()) {
        std::cout << "  (conv2d compiled out: no cuDNN headers at build time)\n";
        CHECK_THROWS_CODE(ops::conv2d(on_gpu(x, DType::F32), on_gpu(w3, DType::F32), Tensor(), 1, 1),
                          ErrorCode::UNSUPPORTED);
        return;
    }
    if (!cuda::libs::cudnn().ok()) {
        std::cout << "  (cuDNN not found at run time: checking the error)\n";
        sdxl_test::expect_error([&] { ops::conv2d(on_gpu(x, DType::F32), on_gpu(w3, DType::F32), Tensor(), 1, 1); },
                                ErrorCode::DEVICE_ERROR, "searched");
        return;
    }
    for (DType dt : {DType::F32, DType::F16, DType::BF16}) {
        const double tol = tolerance(dt);
        auto R = [&](const Tensor& t) { return rounded(t, dt); };
        auto G = [&](const Tensor& t) { return on_gpu(t, dt); };
        struct Case {
            const char* name;
            Tensor gpu, ref;
        };
        std::vector<Case> cases;
        cases.push_back({"3x3 pad 1 + bias", ops::conv2d(G(x), G(w3), G(b), 1, 1), ops::conv2d(R(x), R(w3), R(b), 1, 1)});
        cases.push_back({"3x3 stride 2 pad 1", ops::conv2d(G(x), G(w3), G(b), 2, 1), ops::conv2d(R(x), R(w3), R(b), 2, 1)});
        cases.push_back({"3x3 no pad", ops::conv2d(G(x), G(w3), Tensor(), 1, 0), ops::conv2d(R(x), R(w3), Tensor(), 1, 0)});
        cases.push_back({"1x1", ops::conv2d(G(x), G(w1), Tensor(), 1, 0), ops::conv2d(R(x), R(w1), Tensor(), 1, 0)});
        // Again with the same shape: the cached algorithm.
        cases.push_back({"3x3 pad 1 + bias (cached)", ops::conv2d(G(x), G(w3), G(b), 1, 1),
                         ops::conv2d(R(x), R(w3), R(b), 1, 1)});
        for (auto& c : cases) {
            const double e = rel_err(c.gpu, c.ref);
            CHECK_MSG(e <= tol, c.name << " " << dtype_name(dt) << ": relative error " << e << " > " << tol);
        }
    }
}

SDXL_TEST(test_cuda_allocator_reuses_blocks) {
    if (!device::cuda_available()) {
        std::cout << "  (skipped: " << device::cuda_status() << ")\n";
        return;
    }
    const char* off = std::getenv("SDXL4J_CUDA_CACHE");
    if (off && off[0] == '0') {
        std::cout << "  (skipped: caching off, SDXL4J_CUDA_CACHE=0)\n";
        return;
    }
    cuda::empty_cache();
    const auto s0 = cuda::allocator_stats();
    CHECK(s0.cached_bytes == 0 && s0.cached_blocks == 0);
    void* p = device::cuda_malloc(3000);
    device::cuda_free(p);
    const auto s1 = cuda::allocator_stats();
    CHECK(s1.cached_bytes == cuda::alloc::size_class(3000) && s1.cached_blocks == 1);
    void* q = device::cuda_malloc(2600);  // same 3072-byte class: the same block comes back
    CHECK(q == p);
    const auto s2 = cuda::allocator_stats();
    CHECK(s2.cache_hits == s1.cache_hits + 1 && s2.device_mallocs == s1.device_mallocs);
    device::cuda_free(q);
    device::cuda_empty_cache();
    CHECK(cuda::allocator_stats().cached_bytes == 0);
    // An impossible request is OUT_OF_MEMORY naming the size, never a crash.
    sdxl_test::expect_error([] { device::cuda_malloc(size_t(1) << 50); }, ErrorCode::OUT_OF_MEMORY,
                            std::to_string(size_t(1) << 50));
    std::cout << "  (" << cuda::allocator_summary() << ")\n";
}

#endif  // SDXL_WITH_CUDA
