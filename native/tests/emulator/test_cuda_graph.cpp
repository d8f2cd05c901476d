// CUDA graphs on the emulator: stream capture and replay in the fake runtime (the documented capture rules, so
// that graph-unsafe code fails in CI), the allocator's graph pools, and the UNet step captured once per shape and
// replayed bit for bit. Emulator build only (sdxl_native_tests_emu).
#include <cuda_runtime.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "backends/cuda/cuda_allocator.h"
#include "backends/cuda/cuda_launch.cuh"
#include "backends/cuda/emulator/emu_runtime.h"
#include "check.h"
#include "core/device.h"
#include "core/error.h"
#include "core/tensor.h"
#include "models/unet2d_condition.h"
#include "models/unet_graph.h"
#include "nn/weights.h"
#include "ops/ops.h"
#include "test_tensors.h"
#include "tiny_models.h"

using namespace sdxl;
using sdxl_test::rnd;

namespace {

__global__ void axpy_kernel(const float* x, float* y, float a, int n) {
    const int i = int(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n) y[i] = a * x[i] + y[i];
}

std::vector<float> read(const float* d, int n) {
    std::vector<float> h(size_t(n), -1.0f);
    if (cudaMemcpy(h.data(), d, size_t(n) * 4, cudaMemcpyDeviceToHost) != cudaSuccess) (void)cudaGetLastError();
    return h;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

// Captured work does not run; the graph runs it, in capture order, with the arguments of the capture, at every
// launch; memsets and device copies are nodes too.
SDXL_TEST(emulator_graph_capture_and_replay) {
    const int n = 100;
    float *x = nullptr, *y = nullptr, *z = nullptr;
    CHECK(cudaMalloc(reinterpret_cast<void**>(&x), n * 4) == cudaSuccess);
    CHECK(cudaMalloc(reinterpret_cast<void**>(&y), n * 4) == cudaSuccess);
    CHECK(cudaMalloc(reinterpret_cast<void**>(&z), n * 4) == cudaSuccess);
    std::vector<float> hx(n), hy(n, 5.0f);
    for (int i = 0; i < n; ++i) hx[size_t(i)] = float(i);
    CHECK(cudaMemcpy(x, hx.data(), n * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaMemcpy(y, hy.data(), n * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    cudaStream_t s = nullptr;
    CHECK(cudaStreamCreate(&s) == cudaSuccess);
    CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    unsigned long long id = 0;
    CHECK(cudaStreamGetCaptureInfo(s, &st, &id) == cudaSuccess && st == cudaStreamCaptureStatusActive && id > 0);
    CHECK(cudaMemsetAsync(y, 0, n * 4, s) == cudaSuccess);                              // y = 0
    CHECK(sdxl_emu::launch(axpy_kernel, dim3(4), dim3(32), 0, s, x, y, 2.0f, n) == cudaSuccess);  // y = 2x
    CHECK(cudaMemcpyAsync(z, y, n * 4, cudaMemcpyDeviceToDevice, s) == cudaSuccess);     // z = y
    CHECK(sdxl_emu::launch(axpy_kernel, dim3(4), dim3(32), 0, s, x, z, 1.0f, n) == cudaSuccess);  // z = 3x
    CHECK(y[7] == 5.0f);  // nothing ran (emulated device memory is host memory: peeked without a copy)
    cudaGraph_t graph = nullptr;
    CHECK(cudaStreamEndCapture(s, &graph) == cudaSuccess && graph);
    size_t nodes = 0;
    CHECK(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
    CHECK_MSG(nodes == 4, nodes);
    CHECK(cudaStreamIsCapturing(s, &st) == cudaSuccess && st == cudaStreamCaptureStatusNone);
    cudaGraphExec_t exec = nullptr;
    CHECK(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    CHECK(cudaGraphDestroy(graph) == cudaSuccess);  // the exec keeps what it needs
    const uint64_t launches = sdxl_emu::graph_launches();
    CHECK(cudaGraphLaunch(exec, s) == cudaSuccess);
    CHECK(sdxl_emu::graph_launches() == launches + 1);
    std::vector<float> hz = read(z, n), hy2 = read(y, n);
    CHECK_MSG(hz[7] == 21.0f && hy2[7] == 14.0f && hz[99] == 297.0f, hz[7] << " " << hy2[7]);
    // New input values, same graph: the replay reads them.
    for (int i = 0; i < n; ++i) hx[size_t(i)] = -float(i);
    CHECK(cudaMemcpy(x, hx.data(), n * 4, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaGraphLaunch(exec, nullptr) == cudaSuccess);  // on the legacy stream this time
    hz = read(z, n);
    CHECK_MSG(hz[7] == -21.0f, hz[7]);
    CHECK(cudaGraphExecDestroy(exec) == cudaSuccess);
    CHECK(cudaGraphExecDestroy(exec) == cudaErrorInvalidValue);
    (void)cudaGetLastError();
    CHECK(cudaStreamDestroy(s) == cudaSuccess);
    cudaFree(x);
    cudaFree(y);
    cudaFree(z);
}

// The calls CUDA refuses during a capture are refused here too, and invalidate the capture as documented.
SDXL_TEST(emulator_graph_unsafe_calls_are_reported) {
    float* d = nullptr;
    CHECK(cudaMalloc(reinterpret_cast<void**>(&d), 256) == cudaSuccess);
    float host[4] = {1, 2, 3, 4};
    cudaStream_t blocking = nullptr, nonblocking = nullptr;
    CHECK(cudaStreamCreate(&blocking) == cudaSuccess);
    CHECK(cudaStreamCreateWithFlags(&nonblocking, cudaStreamNonBlocking) == cudaSuccess);
    cudaGraph_t graph = nullptr;
    auto end_invalidated = [&](cudaStream_t s) {
        graph = reinterpret_cast<cudaGraph_t>(1);
        const cudaError_t e = cudaStreamEndCapture(s, &graph);
        (void)cudaGetLastError();
        return e == cudaErrorStreamCaptureInvalidated && graph == nullptr;
    };

    // Global mode on a blocking stream: a synchronous copy (legacy stream) is refused and invalidates the capture;
    // later work on the stream fails with cudaErrorStreamCaptureInvalidated.
    CHECK(cudaStreamBeginCapture(blocking, cudaStreamCaptureModeGlobal) == cudaSuccess);
    CHECK(cudaMemcpy(d, host, 16, cudaMemcpyHostToDevice) == cudaErrorStreamCaptureUnsupported);
    CHECK_MSG(contains(cudaGetErrorString(cudaErrorStreamCaptureUnsupported), "cudaMemcpy"),
              cudaGetErrorString(cudaErrorStreamCaptureUnsupported));
    (void)cudaGetLastError();
    cudaStreamCaptureStatus st;
    CHECK(cudaStreamIsCapturing(blocking, &st) == cudaSuccess && st == cudaStreamCaptureStatusInvalidated);
    CHECK(cudaMemsetAsync(d, 0, 16, blocking) == cudaErrorStreamCaptureInvalidated);
    CHECK(end_invalidated(blocking));

    // Synchronising the capturing stream; cudaDeviceSynchronize.
    CHECK(cudaStreamBeginCapture(nonblocking, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    CHECK(cudaStreamSynchronize(nonblocking) == cudaErrorStreamCaptureUnsupported);
    CHECK(end_invalidated(nonblocking));
    CHECK(cudaStreamBeginCapture(nonblocking, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    CHECK(cudaDeviceSynchronize() == cudaErrorStreamCaptureUnsupported);
    CHECK(end_invalidated(nonblocking));

    // cudaMalloc: refused in thread-local mode, allowed when the thread switches to relaxed, or in a relaxed capture.
    void* p = nullptr;
    CHECK(cudaStreamBeginCapture(nonblocking, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
    CHECK(cudaThreadExchangeStreamCaptureMode(&mode) == cudaSuccess && mode == cudaStreamCaptureModeGlobal);
    CHECK(cudaMalloc(&p, 64) == cudaSuccess);
    CHECK(cudaThreadExchangeStreamCaptureMode(&mode) == cudaSuccess && mode == cudaStreamCaptureModeRelaxed);
    CHECK(cudaFree(p) == cudaErrorStreamCaptureUnsupported);  // thread back in global mode: refused
    CHECK(end_invalidated(nonblocking));
    CHECK(cudaFree(p) == cudaSuccess);
    CHECK(cudaStreamBeginCapture(nonblocking, cudaStreamCaptureModeRelaxed) == cudaSuccess);
    CHECK(cudaMalloc(&p, 64) == cudaSuccess);
    CHECK(cudaFree(p) == cudaSuccess);
    // ...but a pageable host copy cannot become a graph node.
    CHECK(cudaMemcpyAsync(d, host, 16, cudaMemcpyHostToDevice, nonblocking) == cudaErrorStreamCaptureUnsupported);
    CHECK(end_invalidated(nonblocking));

    // Legacy-stream work while a blocking stream captures (even relaxed): an implicit dependency.
    CHECK(cudaStreamBeginCapture(blocking, cudaStreamCaptureModeRelaxed) == cudaSuccess);
    CHECK(sdxl_emu::launch(axpy_kernel, dim3(1), dim3(4), 0, nullptr, d, d, 1.0f, 4) == cudaErrorStreamCaptureImplicit);
    CHECK(end_invalidated(blocking));
    // ... but not while only a non-blocking stream captures.
    CHECK(cudaStreamBeginCapture(nonblocking, cudaStreamCaptureModeGlobal) == cudaSuccess);
    CHECK(sdxl_emu::launch(axpy_kernel, dim3(1), dim3(4), 0, nullptr, d, d, 1.0f, 4) == cudaSuccess);

    // Another thread: a global-mode capture forbids its unsafe calls; a thread-local one does not; ending a
    // non-relaxed capture from another thread is cudaErrorStreamCaptureWrongThread.
    cudaError_t other_malloc = cudaSuccess, other_end = cudaSuccess;
    std::thread([&] {
        void* q = nullptr;
        other_malloc = cudaMalloc(&q, 64);
        (void)cudaGetLastError();
        cudaGraph_t g = nullptr;
        other_end = cudaStreamEndCapture(nonblocking, &g);
        (void)cudaGetLastError();
    }).join();
    CHECK_MSG(other_malloc == cudaErrorStreamCaptureUnsupported, cudaGetErrorName(other_malloc));
    CHECK_MSG(other_end == cudaErrorStreamCaptureWrongThread, cudaGetErrorName(other_end));
    CHECK(end_invalidated(nonblocking));  // the other thread's cudaMalloc invalidated it
    CHECK(cudaStreamBeginCapture(nonblocking, cudaStreamCaptureModeThreadLocal) == cudaSuccess);
    std::thread([&] {
        void* q = nullptr;
        other_malloc = cudaMalloc(&q, 64);
        if (other_malloc == cudaSuccess) (void)cudaFree(q);
    }).join();
    CHECK(other_malloc == cudaSuccess);
    CHECK(cudaStreamEndCapture(nonblocking, &graph) == cudaSuccess && graph);
    CHECK(cudaGraphDestroy(graph) == cudaSuccess);

    // No capture on the legacy stream, no second capture on a capturing stream, no end without a capture.
    CHECK(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal) == cudaErrorStreamCaptureUnsupported);
    CHECK(cudaStreamEndCapture(nonblocking, &graph) == cudaErrorIllegalState);
    (void)cudaGetLastError();
    // Nothing above is sticky: the device works on.
    CHECK(cudaMemcpy(d, host, 16, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK(cudaStreamDestroy(blocking) == cudaSuccess);
    CHECK(cudaStreamDestroy(nonblocking) == cudaSuccess);
    CHECK(cudaFree(d) == cudaSuccess);
}

// Backend capture: ops on tensors inside device::cuda_graph_capture allocate from the graph's pool, reuse freed
// pool blocks within the capture, and the pool goes back to the cache when the graph is destroyed. cuBLAS
// (with our workspace) is captured too. A graph-unsafe body (a read back to the host) fails the capture cleanly.
SDXL_TEST(cuda_graph_pool_and_backend_capture) {
    const Tensor a = rnd({3, 8, 16}, 1).to(DType::F16).to(Device::CUDA);
    const Tensor b = rnd({3, 16, 8}, 2).to(DType::F16).to(Device::CUDA);
    const Tensor in_a = Tensor::empty(a.shape(), a.dtype(), Device::CUDA);
    device::copy_device_to_device(in_a.raw_data(), a.raw_data(), size_t(a.numel()) * 2);
    auto body = [&](const Tensor& x) {
        Tensor y = x;
        for (int i = 0; i < 4; ++i) y = ops::scale(ops::add(y, x), 0.5f, 0.25f);  // temporaries freed each round
        return ops::matmul(y, b);
    };
    const Tensor eager = body(a).to(Device::CPU);
    const cuda::AllocatorStats before = cuda::allocator_stats();
    Tensor out;
    std::string why;
    auto graph = device::cuda_graph_capture([&] { out = body(in_a); }, &why);
    CHECK_MSG(graph, why);
    const cuda::AllocatorStats during = cuda::allocator_stats();
    CHECK(during.graph_pools == before.graph_pools + 1);
    CHECK(during.graph_pool_bytes > 0);
    // 4 rounds of 2 temporaries each, freed as they go: stream-ordered reuse keeps the pool at a few blocks.
    CHECK_MSG(during.graph_pool_blocks <= 4, during.graph_pool_blocks);
    CHECK(device::cuda_graph_nodes(*graph) >= 9);
    device::cuda_graph_launch(*graph);
    const Tensor replay = out.to(Device::CPU);
    CHECK(std::memcmp(replay.raw_data(), eager.raw_data(), size_t(eager.numel()) * 2) == 0);
    // New values in the static input.
    const Tensor a2 = rnd({3, 8, 16}, 9).to(DType::F16).to(Device::CUDA);
    device::copy_device_to_device(in_a.raw_data(), a2.raw_data(), size_t(a.numel()) * 2);
    device::cuda_graph_launch(*graph);
    const Tensor eager2 = body(a2).to(Device::CPU), replay2 = out.to(Device::CPU);
    CHECK(std::memcmp(replay2.raw_data(), eager2.raw_data(), size_t(eager2.numel()) * 2) == 0);
    out = Tensor();
    graph.reset();
    const cuda::AllocatorStats after = cuda::allocator_stats();
    CHECK(after.graph_pools == before.graph_pools);
    CHECK_MSG(after.graph_pool_bytes == before.graph_pool_bytes, after.graph_pool_bytes);

    // A host read inside the body: refused by the capture; the pool is released, the thread works on.
    auto bad = device::cuda_graph_capture([&] { out = body(in_a).to(Device::CPU); }, &why);
    CHECK(!bad);
    CHECK_MSG(contains(why, "cudaErrorStreamCaptureUnsupported") || contains(why, "capturing"), why);
    out = Tensor();
    CHECK(cuda::allocator_stats().graph_pool_bytes == before.graph_pool_bytes);
    CHECK(cuda::allocator_stats().graph_pools == before.graph_pools);
    const Tensor again = body(a).to(Device::CPU);
    CHECK(std::memcmp(again.raw_data(), eager.raw_data(), size_t(eager.numel()) * 2) == 0);
}

namespace {

struct StepInputs {
    Tensor sample, timestep, context, text_embeds, time_ids;
};

StepInputs step_inputs(int64_t B, int64_t H, int64_t W, uint64_t seed, DType dt, int64_t t) {
    StepInputs in;
    in.sample = rnd({B, 4, H, W}, seed).to(dt).to(Device::CUDA);
    in.timestep = Tensor::empty({}, DType::I64);
    in.timestep.data<int64_t>()[0] = t;  // on the host, 0-d, as the pipeline gives it
    in.context = rnd({B, 7, 12}, seed + 1).to(dt).to(Device::CUDA);
    in.text_embeds = rnd({B, 6}, seed + 2).to(dt).to(Device::CUDA);
    in.time_ids = rnd({B, 5}, seed + 3, 0.0f, 1024.0f).to(Device::CUDA);
    return in;
}

bool same_bits(const Tensor& x, const Tensor& y) {
    const Tensor a = x.to(Device::CPU), b = y.to(Device::CPU);
    return a.shape() == b.shape() && a.dtype() == b.dtype() &&
           std::memcmp(a.raw_data(), b.raw_data(), size_t(a.numel()) * dtype_size(a.dtype())) == 0;
}

void unet_graph_case(DType dt) {
    const size_t pools_before = cuda::allocator_stats().graph_pools;
    const size_t pool_bytes_before = cuda::allocator_stats().graph_pool_bytes;
    {
        const models::UNet2DConditionModel unet(
            sdxl_test::tiny4_unet(), nn::WeightBuilder(nn::random_source(7, 1.0f), nn::Placement{Device::CUDA, dt}));
        auto fwd = [&](const StepInputs& in) {
            return unet.forward(in.sample, in.timestep, in.context, in.text_embeds, in.time_ids);
        };
        const StepInputs a = step_inputs(2, 8, 8, 11, dt, 500), b = step_inputs(2, 8, 8, 23, dt, 37);
        unet.set_cuda_graphs(false);
        const Tensor ref_a = fwd(a), ref_b = fwd(b);
        CHECK(!same_bits(ref_a, ref_b));
        unet.set_cuda_graphs(true);
        models::UNetGraphRunner& runner = unet.graph_runner();
        CHECK(same_bits(fwd(a), ref_a));  // warm-up (eager)
        CHECK(runner.stats().graphs == 0);
        CHECK_MSG(same_bits(fwd(a), ref_a), "the first replay differs from the eager step");  // capture + replay
        CHECK(runner.stats().graphs == 1 && runner.stats().replays == 1);
        CHECK(runner.stats().failed_captures == 0);
        CHECK_MSG(runner.stats().nodes > 50, runner.stats().nodes);
        const uint64_t launches = sdxl_emu::graph_launches();
        const Tensor rb = fwd(b);  // new input values (and timestep) through the same graph
        CHECK_MSG(same_bits(rb, ref_b), "a replay on new inputs differs from the eager step on them");
        CHECK(sdxl_emu::graph_launches() == launches + 1);
        CHECK(same_bits(fwd(a), ref_a));
        CHECK(runner.stats().graphs == 1 && runner.stats().replays == 3);
        // A new shape warms up and captures a second graph.
        const StepInputs c = step_inputs(1, 6, 10, 31, dt, 999);
        unet.set_cuda_graphs(false);
        const Tensor ref_c = fwd(c);
        unet.set_cuda_graphs(true);
        CHECK(same_bits(fwd(c), ref_c));
        CHECK(same_bits(fwd(c), ref_c));
        CHECK(runner.stats().graphs == 2 && runner.stats().replays == 4);
        CHECK(cuda::allocator_stats().graph_pools == pools_before + 2);
        CHECK(cuda::allocator_stats().graph_pool_bytes > pool_bytes_before);
    }
    // The model is gone: so are its graphs and their pools.
    CHECK(cuda::allocator_stats().graph_pools == pools_before);
    CHECK_MSG(cuda::allocator_stats().graph_pool_bytes == pool_bytes_before, cuda::allocator_stats().graph_pool_bytes);
}

}  // namespace

SDXL_TEST(unet_cuda_graph_replay_matches_eager_f16) { unet_graph_case(DType::F16); }
SDXL_TEST(unet_cuda_graph_replay_matches_eager_bf16) { unet_graph_case(DType::BF16); }
