// CUDA graphs of the backend's work (core/device.h: cuda_graph_capture / launch). A capture runs on a stream of
// its own, created non-blocking so that other threads' work on the legacy stream does not implicitly depend on
// it (cudaErrorStreamCaptureImplicit), in thread-local mode: only this thread's potentially unsafe calls
// (cudaMalloc, synchronous copies, synchronisation) invalidate it, and other threads keep running eager work on
// the backend's main stream meanwhile. While capturing, cuda::stream() is the capture stream for this thread
// and its allocations come from the graph's pool (cuda_allocator.h).
#include <cuda_runtime.h>

#include <cstdio>
#include <string>

#include "backends/cuda/cuda_allocator.h"
#include "backends/cuda/cuda_check.cuh"
#include "backends/cuda/cuda_context.cuh"
#include "core/device.h"
#include "core/error.h"

namespace sdxl::device {

struct CudaGraph {
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    cuda::GraphPool* pool = nullptr;
    size_t nodes = 0;
    ~CudaGraph() {
        cuda::bind_thread_quietly();
        if (exec) (void)cudaGraphExecDestroy(exec);
        if (graph) (void)cudaGraphDestroy(graph);
        (void)cudaGetLastError();
        cuda::graph_pool_release(pool);
    }
};

namespace {
std::string error_text(cudaError_t e) { return std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ")"; }

// Restores the thread's stream and allocation pool however the capture ends.
struct CaptureScope {
    cudaStream_t stream;
    CaptureScope(cudaStream_t s, cuda::GraphPool* pool) : stream(s) {
        cuda::set_thread_stream(s);
        cuda::graph_pool_begin_capture(pool);
    }
    ~CaptureScope() {
        cuda::graph_pool_end_capture();
        cuda::set_thread_stream(nullptr);
    }
};
}  // namespace

std::shared_ptr<CudaGraph> cuda_graph_capture(const std::function<void()>& body, std::string* why) {
    if (!cuda_available()) fail(ErrorCode::DEVICE_ERROR, "CUDA graph capture: ", cuda_status());
    auto g = std::make_shared<CudaGraph>();
    g->pool = cuda::graph_pool_create();
    cudaStream_t s = nullptr;
    SDXL_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    std::string failure;
    cudaError_t end = cudaSuccess;
    {
        CaptureScope scope(s, g->pool);
        cudaError_t begin = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
        if (begin != cudaSuccess) {
            failure = "cudaStreamBeginCapture: " + error_text(begin);
        } else {
            try {
                body();
            } catch (const std::exception& e) {
                failure = e.what();
            }
            end = cudaStreamEndCapture(s, &g->graph);
        }
    }
    if (end != cudaSuccess && failure.empty()) failure = "cudaStreamEndCapture: " + error_text(end);
    else if (end != cudaSuccess) failure += " (cudaStreamEndCapture: " + error_text(end) + ")";
    if (failure.empty()) {
        const cudaError_t inst = cudaGraphInstantiate(&g->exec, g->graph, 0);
        if (inst != cudaSuccess) failure = "cudaGraphInstantiate: " + error_text(inst);
    }
    if (failure.empty()) {
        // Only the count: cudaGraphGetNodes with a null array fills in the number of nodes.
        if (cudaGraphGetNodes(g->graph, nullptr, &g->nodes) != cudaSuccess) g->nodes = 0;
    }
    (void)cudaGetLastError();  // capture errors are not sticky: nothing is left for the next check
    (void)cudaStreamDestroy(s);
    (void)cudaGetLastError();
    if (!failure.empty()) {
        if (why) *why = failure;
        return nullptr;  // g's destructor releases the pool
    }
    return g;
}

void cuda_graph_launch(CudaGraph& graph) {
    SDXL_CUDA_CHECK(cudaGraphLaunch(graph.exec, cuda::main_stream()));
}

size_t cuda_graph_nodes(const CudaGraph& graph) { return graph.nodes; }

}  // namespace sdxl::device
