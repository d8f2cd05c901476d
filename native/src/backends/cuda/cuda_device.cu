// Device memory and copies for the core (core/device.h). The library links cudart statically, so it
// loads everywhere; on a machine without a driver the first call reports an error and we say "no device".
#include <cuda_runtime.h>

#include <mutex>
#include <string>

#include "backends/cuda/cuda_check.cuh"
#include "backends/cuda/cuda_context.cuh"
#include "core/device.h"

namespace sdxl::device {

namespace {
struct Probe {
    int count = 0;
    std::string status;
};

const Probe& probe() {
    static Probe p = [] {
        Probe r;
        cudaError_t err = cudaGetDeviceCount(&r.count);
        if (err != cudaSuccess) {
            (void)cudaGetLastError();
            r.count = 0;
            r.status = std::string("no CUDA device: ") + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")";
        } else if (r.count == 0) {
            r.status = "no CUDA device found";
        } else {
            cudaDeviceProp prop{};
            if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
                r.status = std::to_string(r.count) + " CUDA device(s); device 0: " + prop.name + ", sm_" +
                           std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
                           std::to_string(prop.totalGlobalMem >> 20) + " MiB";
            } else {
                r.status = std::to_string(r.count) + " CUDA device(s)";
            }
        }
        return r;
    }();
    return p;
}

void require_device() {
    if (probe().count == 0) fail(ErrorCode::DEVICE_ERROR, "CUDA requested but unavailable: ", probe().status);
}
}  // namespace

bool cuda_compiled() { return true; }
bool cuda_available() { return probe().count > 0; }
std::string cuda_status() { return probe().status; }

void* cuda_malloc(size_t nbytes) {
    require_device();
    void* p = nullptr;
    SDXL_CUDA_CHECK(cudaMalloc(&p, nbytes == 0 ? 1 : nbytes));
    return p;
}

void cuda_free(void* ptr) noexcept {
    if (ptr) (void)cudaFree(ptr);  // runs in destructors: report nothing, never throw
}

void copy_host_to_device(void* dst, const void* src, size_t nbytes) {
    require_device();
    if (nbytes) SDXL_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyHostToDevice));
}

void copy_device_to_host(void* dst, const void* src, size_t nbytes) {
    require_device();
    if (nbytes) SDXL_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToHost));
}

void copy_device_to_device(void* dst, const void* src, size_t nbytes) {
    require_device();
    if (nbytes) SDXL_CUDA_CHECK(cudaMemcpy(dst, src, nbytes, cudaMemcpyDeviceToDevice));
}

}  // namespace sdxl::device

namespace sdxl::cuda {

cudaStream_t stream() {
    static cudaStream_t s = [] {
        cudaStream_t created = nullptr;
        SDXL_CUDA_CHECK(cudaStreamCreate(&created));
        return created;
    }();
    return s;
}

}  // namespace sdxl::cuda
