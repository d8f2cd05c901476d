// The SIMT emulator and the fake CUDA runtime, on small kernels of their own: correct kernels give the right
// numbers, and planted bugs (an off-by-one index, a missing __syncthreads, a divergent barrier, bad shuffle
// masks, launches over the device's limits, bad copies, use after free, out of memory) are caught the way
// CUDA reports them. Emulator build only (sdxl_native_tests_emu).
#include <cuda_runtime.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "backends/cuda/cuda_kernel_util.cuh"
#include "backends/cuda/cuda_launch.cuh"
#include "backends/cuda/cuda_mma.cuh"
#include "backends/cuda/emulator/emu_runtime.h"
#include "check.h"
#include "core/device.h"
#include "core/error.h"
#include "core/tensor.h"
#include "sdxl/sdxl.h"

using namespace sdxl;
using sdxl::cuda::launch;

namespace {

// ---- kernels (device code exactly as nvcc would take it)

__global__ void add_kernel(const float* a, const float* b, float* y, int n) {
    for (int i = int(blockIdx.x * blockDim.x + threadIdx.x); i < n; i += int(gridDim.x * blockDim.x)) y[i] = a[i] + b[i];
}

// Off by one: writes y[i + 1], so the last thread writes one element past the end.
__global__ void shifted_copy_kernel(const float* x, float* y, int n) {
    const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n) y[i + 1] = x[i];
}

// Each thread's linear id and its block's index, for a 3-D block in a 2-D grid.
__global__ void ids_kernel(int* out) {
    const int t = int(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
    const int b = int(blockIdx.x + gridDim.x * blockIdx.y);
    const int per_block = int(blockDim.x * blockDim.y * blockDim.z);
    out[b * per_block + t] = b * 10000 + int(threadIdx.x) * 100 + int(threadIdx.y) * 10 + int(threadIdx.z);
}

// Neighbour exchange through shared memory: y[i] = x[i ^ 1] within the block. `barrier` false plants the bug of
// a missing __syncthreads between the write and the read.
template <bool barrier>
__global__ void swap_pairs_kernel(const float* x, float* y) {
    SDXL_DYNAMIC_SHARED(float, sh);
    const unsigned t = threadIdx.x, i = blockIdx.x * blockDim.x + t;
    sh[t] = x[i];
    if (barrier) __syncthreads();
    y[i] = sh[t ^ 1u];
}

// Block sum with the backend's own reduction (warp shuffles + shared memory + barriers).
__global__ void block_sum_kernel(const float* x, float* y) {
    __shared__ float scratch[32];
    const float s = cuda::block_sum(x[blockIdx.x * blockDim.x + threadIdx.x], scratch);
    if (threadIdx.x == 0) y[blockIdx.x] = s;
}

// Only half of the block reaches the barrier (the other half has returned).
__global__ void early_exit_kernel(float* y) {
    if (threadIdx.x >= 16) return;
    __syncthreads();
    y[threadIdx.x] = 1.0f;
}

// Even and odd threads wait at different __syncthreads.
__global__ void split_barrier_kernel(float* y) {
    if (threadIdx.x % 2) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    y[threadIdx.x] = 1.0f;
}

// A shuffle whose mask leaves out the calling lanes 16..31.
__global__ void bad_mask_kernel(float* y) {
    y[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, 1.0f, 1);
}

// Every lane shuffles, but reads from lane (lane + 1) with a mask of even lanes only.
__global__ void outside_mask_kernel(float* y) {
    const unsigned lane = threadIdx.x % 32;
    if (lane % 2 == 0) y[threadIdx.x] = __shfl_sync(0x55555555u, float(lane), int(lane + 1));
}

__global__ void shuffle_rules_kernel(int* out) {
    const int lane = int(threadIdx.x);
    out[0 * 32 + lane] = __shfl_down_sync(0xffffffffu, lane, 3);         // lane + 3, own value past 31
    out[1 * 32 + lane] = __shfl_up_sync(0xffffffffu, lane, 2, 8);         // within segments of 8
    out[2 * 32 + lane] = __shfl_sync(0xffffffffu, lane, 5, 16);           // lane 5 of each half
    out[3 * 32 + lane] = __shfl_xor_sync(0xffffffffu, lane, 16, 16);      // later segment: own; earlier: read
    out[4 * 32 + lane] = int(__ballot_sync(0xffffffffu, lane % 3 == 0));  // lanes 0, 3, ..., 30
}

// Every lane gathers two ints from each lane of its warp (the primitive behind emulated warp-wide instructions).
__global__ void gather_kernel(int* out) {
    const int lane = int(threadIdx.x % 32);
    const int mine[2] = {lane * 10, -lane};
    int all[64];
    ::sdxl_emu::warp_gather(0xffffffffu, mine, sizeof mine, all);
    int ok = 1;
    for (int l = 0; l < 32; ++l) ok = ok && all[2 * l] == l * 10 && all[2 * l + 1] == -l;
    out[threadIdx.x] = ok;
}

// ldmatrix from a row address 2 bytes off the required 16-byte alignment.
__global__ void misaligned_ldmatrix_kernel(int* out) {
    __shared__ __align__(16) uint16_t tile[32 * 8 + 8];
    for (int i = int(threadIdx.x); i < 32 * 8 + 8; i += 32) tile[i] = uint16_t(i);
    __syncwarp();
    uint32_t r[4];
    cuda::mma::ldmatrix_x4(r, tile + 1 + 8 * int(threadIdx.x % 32));
    out[threadIdx.x] = int(r[0]);
}

__global__ void noop_kernel(int) {}

// ---- host helpers

float* dev_floats(const std::vector<float>& v) {
    void* p = nullptr;
    if (cudaMalloc(&p, v.size() * sizeof(float)) != cudaSuccess) return nullptr;
    cudaMemcpy(p, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice);
    return static_cast<float*>(p);
}

std::vector<float> host_floats(const float* d, size_t n) {
    std::vector<float> v(n);
    cudaMemcpy(v.data(), d, n * sizeof(float), cudaMemcpyDeviceToHost);
    return v;
}

// The error of the last call, its message, and a clean device for the next test.
std::string take_error(cudaError_t* code) {
    *code = cudaGetLastError();
    const std::string msg = cudaGetErrorString(*code);
    sdxl_emu::reset_device();
    (void)cudaGetLastError();
    return msg;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

SDXL_TEST(emulator_runs_a_grid_stride_kernel) {
    const int n = 1000;
    std::vector<float> a(n), b(n);
    for (int i = 0; i < n; ++i) a[size_t(i)] = float(i), b[size_t(i)] = 0.5f * float(i);
    float *da = dev_floats(a), *db = dev_floats(b), *dy = dev_floats(std::vector<float>(n));
    launch(add_kernel, 3, 128, 0, da, db, dy, n);  // 384 threads stride over 1000 elements
    CHECK(cudaGetLastError() == cudaSuccess);
    const auto y = host_floats(dy, n);
    bool ok = true;
    for (int i = 0; i < n; ++i) ok = ok && y[size_t(i)] == 1.5f * float(i);
    CHECK(ok);
    cudaFree(da), cudaFree(db), cudaFree(dy);
}

// With SDXL4J_EMU_DEVICES=2 there are two devices; a stream belongs to the device current on the thread that made
// it, and a kernel issued to it from a thread whose current device is another fails as on a GPU (a copy does not).
// This is what catches a thread of ours that forgot cudaSetDevice (device::select_cuda_device).
SDXL_TEST(emulator_streams_belong_to_their_device) {
    const char* was = std::getenv("SDXL4J_EMU_DEVICES");
    const std::string saved = was ? was : "";
    setenv("SDXL4J_EMU_DEVICES", "2", 1);
    int count = 0, current = -1;
    CHECK(cudaGetDeviceCount(&count) == cudaSuccess && count == 2);
    CHECK(cudaSetDevice(2) == cudaErrorInvalidDevice);
    (void)cudaGetLastError();
    CHECK(cudaGetDevice(&current) == cudaSuccess);
    const int home = current;  // this thread's device before the test (the core may have set it)
    cudaStream_t on1 = nullptr;
    std::thread([&] {
        int fresh = -1;
        CHECK(cudaGetDevice(&fresh) == cudaSuccess && fresh == 0);  // a new thread starts on device 0
        CHECK(cudaSetDevice(1) == cudaSuccess);
        CHECK(cudaStreamCreate(&on1) == cudaSuccess);
    }).join();
    const int n = 64;
    float* d = dev_floats(std::vector<float>(size_t(n), 1.0f));
    CHECK(cudaSetDevice(0) == cudaSuccess);
    CHECK(sdxl_emu::launch(add_kernel, 1, n, 0, on1, d, d, d, n) == cudaErrorInvalidResourceHandle);
    CHECK(contains(cudaGetErrorString(cudaGetLastError()), "cudaSetDevice"));
    CHECK(cudaMemsetAsync(d, 0, sizeof(float), on1) == cudaSuccess);  // copies may use another device's stream
    CHECK(cudaSetDevice(1) == cudaSuccess);
    CHECK(sdxl_emu::launch(add_kernel, 1, n, 0, on1, d, d, d, n) == cudaSuccess);
    CHECK(cudaStreamSynchronize(on1) == cudaSuccess);
    const auto y = host_floats(d, size_t(n));
    CHECK(y[0] == 0.0f && y[1] == 2.0f && y[size_t(n) - 1] == 2.0f);
    CHECK(cudaStreamDestroy(on1) == cudaSuccess);
    cudaFree(d);
    CHECK(cudaSetDevice(home) == cudaSuccess);
    if (was) setenv("SDXL4J_EMU_DEVICES", saved.c_str(), 1);
    else unsetenv("SDXL4J_EMU_DEVICES");
}

SDXL_TEST(emulator_thread_and_block_indices) {
    const dim3 grid(3, 2), block(4, 3, 2);
    const int total = 6 * 24;
    int* d = nullptr;
    CHECK(cudaMalloc(reinterpret_cast<void**>(&d), total * sizeof(int)) == cudaSuccess);
    launch(ids_kernel, grid, block, 0, d);
    CHECK(cudaGetLastError() == cudaSuccess);
    std::vector<int> h(total);
    cudaMemcpy(h.data(), d, total * sizeof(int), cudaMemcpyDeviceToHost);
    bool ok = true;
    for (int b = 0; b < 6; ++b)
        for (int z = 0; z < 2; ++z)
            for (int y = 0; y < 3; ++y)
                for (int x = 0; x < 4; ++x) ok = ok && h[size_t(b * 24 + x + 4 * (y + 3 * z))] == b * 10000 + x * 100 + y * 10 + z;
    CHECK(ok);
    cudaFree(d);
}

SDXL_TEST(emulator_block_reduction_with_shuffles_and_barriers) {
    const int blocks = 5, threads = 256;
    std::vector<float> x(size_t(blocks * threads));
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(i % 97) - 40.0f;
    float *dx = dev_floats(x), *dy = dev_floats(std::vector<float>(blocks));
    launch(block_sum_kernel, blocks, threads, 0, dx, dy);
    CHECK(cudaGetLastError() == cudaSuccess);
    const auto y = host_floats(dy, blocks);
    for (int b = 0; b < blocks; ++b) {
        double want = 0;
        for (int t = 0; t < threads; ++t) want += x[size_t(b * threads + t)];
        CHECK_MSG(std::fabs(y[size_t(b)] - want) <= 1e-3, "block " << b << ": " << y[size_t(b)] << " vs " << want);
    }
    cudaFree(dx), cudaFree(dy);
}

SDXL_TEST(emulator_shuffle_width_and_ballot_rules) {
    int* d = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&d), 5 * 32 * sizeof(int));
    launch(shuffle_rules_kernel, 1, 32, 0, d);
    CHECK(cudaGetLastError() == cudaSuccess);
    std::vector<int> h(5 * 32);
    cudaMemcpy(h.data(), d, h.size() * sizeof(int), cudaMemcpyDeviceToHost);
    unsigned ballot = 0;
    for (int l = 0; l < 32; l += 3) ballot |= 1u << l;
    bool ok = true;
    for (int l = 0; l < 32; ++l) {
        ok = ok && h[size_t(l)] == (l + 3 < 32 ? l + 3 : l);
        ok = ok && h[size_t(32 + l)] == (l % 8 >= 2 ? l - 2 : l);
        ok = ok && h[size_t(64 + l)] == (l / 16) * 16 + 5;
        ok = ok && h[size_t(96 + l)] == (l < 16 ? l : l - 16);
        ok = ok && unsigned(h[size_t(128 + l)]) == ballot;
    }
    CHECK(ok);
    cudaFree(d);
}

SDXL_TEST(emulator_warp_gather) {
    int* d = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&d), 64 * sizeof(int));
    launch(gather_kernel, 1, 64, 0, d);
    CHECK(cudaGetLastError() == cudaSuccess);
    std::vector<int> h(64);
    cudaMemcpy(h.data(), d, h.size() * sizeof(int), cudaMemcpyDeviceToHost);
    int good = 0;
    for (int v : h) good += v;
    CHECK_MSG(good == 64, good << " of 64 lanes saw every lane's contribution");
    cudaFree(d);
}

SDXL_TEST(emulator_catches_an_off_by_one_write) {
    const int n = 100;
    float *dx = dev_floats(std::vector<float>(n, 2.0f)), *dy = dev_floats(std::vector<float>(n, 0.0f));
    launch(shifted_copy_kernel, 1, 128, 0, dx, dy, n);
    cudaError_t code;
    const std::string msg = take_error(&code);
    CHECK_MSG(code == cudaErrorIllegalAddress, "got " << cudaGetErrorName(code));
    CHECK_MSG(contains(msg, "past the end") && contains(msg, "400 bytes"), msg);
    cudaFree(dx), cudaFree(dy);
    sdxl_emu::reset_device();
}

SDXL_TEST(emulator_missing_syncthreads_gives_wrong_results) {
    const int threads = 64;
    std::vector<float> x(threads);
    for (int i = 0; i < threads; ++i) x[size_t(i)] = float(i);
    float *dx = dev_floats(x), *dy = dev_floats(std::vector<float>(threads));
    const size_t smem = threads * sizeof(float);
    auto wrong_elements = [&]() {
        const auto y = host_floats(dy, threads);
        int wrong = 0;
        for (int i = 0; i < threads; ++i) wrong += y[size_t(i)] != float(i ^ 1);
        return wrong;
    };
    launch(swap_pairs_kernel<true>, 1, threads, smem, dx, dy);
    CHECK(cudaGetLastError() == cudaSuccess);
    CHECK_MSG(wrong_elements() == 0, "with the barrier every element must be right");
#if defined(__SANITIZE_THREAD__)
    // Under ThreadSanitizer the racy launch runs only when asked (tools/emulator/tsan.sh expects the report).
    const char* planted = std::getenv("SDXL_EMU_PLANTED_RACE");
    if (!planted || planted[0] != '1') {
        cudaFree(dx), cudaFree(dy);
        return;
    }
#endif
    launch(swap_pairs_kernel<false>, 1, threads, smem, dx, dy);
    CHECK(cudaGetLastError() == cudaSuccess);  // no fault: a race is silent, its results are not
    CHECK_MSG(wrong_elements() > 0, "without the barrier a thread reads its neighbour's slot before it is written");
    cudaFree(dx), cudaFree(dy);
}

SDXL_TEST(emulator_reports_divergent_barriers) {
    float* dy = dev_floats(std::vector<float>(32));
    cudaError_t code;
    launch(early_exit_kernel, 1, 32, 0, dy);
    std::string msg = take_error(&code);
    CHECK_MSG(code == cudaErrorLaunchFailure, cudaGetErrorName(code));
    CHECK_MSG(contains(msg, "__syncthreads") && contains(msg, "16 thread(s) wait while 16 thread(s)"), msg);
    launch(split_barrier_kernel, 1, 32, 0, dy);
    msg = take_error(&code);
    CHECK_MSG(code == cudaErrorLaunchFailure && contains(msg, "divergence"), msg);
    cudaFree(dy);
}

SDXL_TEST(emulator_checks_shuffle_masks) {
    float* dy = dev_floats(std::vector<float>(32));
    cudaError_t code;
    launch(bad_mask_kernel, 1, 32, 0, dy);
    std::string msg = take_error(&code);
    CHECK_MSG(code == cudaErrorLaunchFailure && contains(msg, "not in the mask"), msg);
    launch(outside_mask_kernel, 1, 32, 0, dy);
    msg = take_error(&code);
    CHECK_MSG(code == cudaErrorLaunchFailure && contains(msg, "which is not in the mask"), msg);
    cudaFree(dy);
}

SDXL_TEST(emulator_reports_misaligned_tensor_core_loads) {
    int* d = nullptr;
    cudaMalloc(reinterpret_cast<void**>(&d), 32 * sizeof(int));
    launch(misaligned_ldmatrix_kernel, 1, 32, 0, d);
    cudaError_t code;
    const std::string msg = take_error(&code);
    CHECK_MSG(code == cudaErrorMisalignedAddress && contains(msg, "not 16-byte aligned"), cudaGetErrorName(code) << ": " << msg);
    cudaFree(d);
}

SDXL_TEST(emulator_enforces_launch_limits) {
    cudaError_t code;
    launch(noop_kernel, 1, 1025, 0, 0);
    take_error(&code);
    CHECK_MSG(code == cudaErrorInvalidConfiguration, cudaGetErrorName(code));
    launch(noop_kernel, dim3(1, 65536), 32, 0, 0);
    take_error(&code);
    CHECK_MSG(code == cudaErrorInvalidConfiguration, cudaGetErrorName(code));
    launch(noop_kernel, dim3(1), dim3(32, 1, 65), 0, 0);
    take_error(&code);
    CHECK_MSG(code == cudaErrorInvalidConfiguration, cudaGetErrorName(code));
    // Dynamic shared memory: 48 KB by default, more with the opt-in, never above the device's 227 KB.
    launch(noop_kernel, 1, 32, 48 * 1024 + 4, 0);
    std::string msg = take_error(&code);
    CHECK_MSG(code == cudaErrorInvalidValue && contains(msg, "cudaFuncAttributeMaxDynamicSharedMemorySize"), msg);
    CHECK(cudaFuncSetAttribute(noop_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024) == cudaSuccess);
    launch(noop_kernel, 1, 32, 48 * 1024 + 4, 0);
    CHECK(cudaGetLastError() == cudaSuccess);
    CHECK(cudaFuncSetAttribute(noop_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024) == cudaErrorInvalidValue);
    (void)cudaGetLastError();
    // Limit errors are not sticky: the next launch works.
    launch(noop_kernel, 1, 1024, 0, 0);
    CHECK(cudaGetLastError() == cudaSuccess);
}

SDXL_TEST(emulator_runtime_checks_copies_and_frees) {
    std::vector<float> host(16, 1.0f);
    float* d = dev_floats(host);
    cudaError_t code;
    // A host pointer where the kind says device, and the reverse.
    CHECK(cudaMemcpy(host.data(), d, 64, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    std::string msg = take_error(&code);
    CHECK_MSG(contains(msg, "not device memory"), msg);
    CHECK(cudaMemcpy(d, host.data(), 64, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
    take_error(&code);
    // A copy that runs past the allocation.
    CHECK(cudaMemcpy(d + 8, host.data(), 64, cudaMemcpyHostToDevice) == cudaErrorInvalidValue);
    msg = take_error(&code);
    CHECK_MSG(contains(msg, "past the end"), msg);
    // Use after free is named; a double free is an error.
    CHECK(cudaFree(d) == cudaSuccess);
    std::string why;
    CHECK(!sdxl_emu::device_range_ok(d, 4, &why));
    CHECK_MSG(contains(why, "use after free"), why);
    CHECK(cudaMemcpy(host.data(), d, 4, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue);
    take_error(&code);
    CHECK(cudaFree(d) == cudaErrorInvalidValue);
    msg = take_error(&code);
    CHECK_MSG(contains(msg, "double free"), msg);
}

// The backend's caching allocator on a small device: out of memory is OUT_OF_MEMORY, and after the tensors
// go away the same allocation succeeds (cached blocks are returned to the device and reused).
SDXL_TEST(emulator_out_of_memory_and_recovery) {
    const size_t saved = sdxl_emu::device_capacity();
    device::cuda_empty_cache();
    const size_t base = sdxl_emu::device_bytes_in_use();
    sdxl_emu::set_device_capacity(base + (size_t(8) << 20));  // 8 MiB free
    {
        Tensor a = Tensor::empty({1 << 20}, DType::F32, Device::CUDA);  // 4 MiB
        CHECK_THROWS_CODE(Tensor::empty({3 << 20}, DType::F32, Device::CUDA), ErrorCode::OUT_OF_MEMORY);
    }
    // a is released to the cache; the cache gives it back to the device when a larger block is needed.
    Tensor b = Tensor::empty({3 << 19}, DType::F32, Device::CUDA);  // 6 MiB
    CHECK(b.numel() == (3 << 19));
    b = Tensor();
    device::cuda_empty_cache();
    sdxl_emu::set_device_capacity(saved);
}

// A model on the device stays usable after running out of memory: a VAE decode with too little device memory
// fails with OUT_OF_MEMORY (nothing leaks), and with the memory back the same decode gives the same image as
// before the failure.
SDXL_TEST(emulator_model_usable_after_out_of_memory) {
    namespace api = sdxl::api;
    api::VaeConfig cfg = api::VaeConfig::sdxl();
    cfg.block_out_channels = {16, 32, 32, 32};
    cfg.layers_per_block = 1;
    cfg.norm_num_groups = 8;
    const api::VaeModel vae = api::VaeModel::random(cfg, 3, api::DEVICE_CUDA, api::DTYPE_F32);
    std::vector<float> z(size_t(1 * 4 * 8 * 8));
    for (size_t i = 0; i < z.size(); ++i) z[i] = float(i % 13) * 0.1f - 0.6f;
    const api::Tensor latents = api::Tensor::from_floats(z.data(), {1, 4, 8, 8});
    auto decode = [&]() {
        const api::Tensor img = vae.decode(latents);
        std::vector<float> v(size_t(img.numel()));
        img.copy_to_floats(v.data(), img.numel());
        return v;
    };
    const std::vector<float> before = decode();
    device::cuda_empty_cache();
    const size_t saved = sdxl_emu::device_capacity(), in_use = sdxl_emu::device_bytes_in_use();
    sdxl_emu::set_device_capacity(in_use + (size_t(64) << 10));  // the weights fit, the activations do not
    bool oom = false;
    try {
        (void)decode();
    } catch (const Error& e) {
        oom = e.code() == ErrorCode::OUT_OF_MEMORY;
        CHECK_MSG(oom, e.what());
    }
    CHECK_MSG(oom, "the decode should have run out of device memory");
    device::cuda_empty_cache();
    CHECK_MSG(sdxl_emu::device_bytes_in_use() == in_use, "the failed decode left " << sdxl_emu::device_bytes_in_use() - in_use
                                                                                   << " bytes allocated");
    sdxl_emu::set_device_capacity(saved);
    CHECK(decode() == before);
}
