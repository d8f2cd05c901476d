// Stand-ins used when the library is built without the CUDA backend (SDXL_CUDA=OFF or no nvcc).
#include "backends/backend.h"
#include "core/device.h"

namespace sdxl {

const Backend& cuda_backend() {
    static const Backend table{"cuda (not compiled)"};
    return table;
}

namespace device {

[[noreturn]] static void not_compiled() {
    fail(ErrorCode::UNSUPPORTED, "this build of libsdxl has no CUDA backend (rebuild with -DSDXL_CUDA=ON)");
}

bool cuda_compiled() { return false; }
bool cuda_available() { return false; }
std::string cuda_status() { return "CUDA backend not compiled into this build"; }
std::string cuda_versions() { return cuda_status(); }
int cuda_device() { return 0; }
void select_cuda_device(int) { not_compiled(); }
void* cuda_malloc(size_t) { not_compiled(); }
void cuda_free(void*) noexcept {}
void copy_host_to_device(void*, const void*, size_t) { not_compiled(); }
void copy_device_to_host(void*, const void*, size_t) { not_compiled(); }
void copy_device_to_device(void*, const void*, size_t) { not_compiled(); }
void cuda_empty_cache() {}
void cuda_zero(void*, size_t) { not_compiled(); }
struct CudaGraph {};
std::shared_ptr<CudaGraph> cuda_graph_capture(const std::function<void()>&, std::string*) { not_compiled(); }
void cuda_graph_launch(CudaGraph&) { not_compiled(); }
size_t cuda_graph_nodes(const CudaGraph&) { return 0; }
void cuda_strided_copy(void*, const void*, DType, int, const int64_t*, const int64_t*) { not_compiled(); }
void cuda_convert(void*, DType, const void*, DType, int64_t) { not_compiled(); }
void cuda_fill_counter_normal(void*, DType, int64_t, uint64_t, float, float) { not_compiled(); }
int cuda_timer_mark() { not_compiled(); }
double cuda_timer_elapsed_ms(int, int) { not_compiled(); }
void cuda_timer_reset() {}

}  // namespace device
}  // namespace sdxl
