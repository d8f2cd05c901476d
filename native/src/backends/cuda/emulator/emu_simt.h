// The SIMT emulator: the CUDA kernel language on the CPU, so that the backend's .cu sources, compiled as host
// C++ (g++) in the emulator build, run unchanged in CI without a GPU.
//
// Execution model (what the emulator checks):
//  - a launch runs the grid's blocks one after another (blockIdx.x fastest); the threads of a block run
//    concurrently as fibers on one OS thread, switched only at __syncthreads, warp collectives and exit, so a
//    block's threads interleave at exactly the points where CUDA lets them observe each other;
//  - __syncthreads is a checked barrier: every thread of the block must reach the same __syncthreads (same
//    file:line) before any goes on; a thread that exits, or waits at another barrier or a warp collective,
//    while others wait is reported as divergence (undefined on the device, where it hangs or corrupts);
//  - warp collectives (__shfl*_sync, __syncwarp, __ballot_sync, __any_sync, __all_sync) exchange values among
//    the lanes named in the mask; the caller must be in the mask, every lane of the mask must take part with
//    the same mask, and a shuffle may not read a lane outside the mask (all undefined on the device);
//  - threadIdx/blockIdx/blockDim/gridDim; static __shared__ variables (one instance, blocks do not overlap);
//    dynamic shared memory through SDXL_DYNAMIC_SHARED (cuda_launch.cuh): a fresh buffer per block, filled
//    with 0xFF bytes (NaN as floats) so that reads of unwritten shared memory show;
//  - the device's limits, failing as CUDA does (cudaGetLastError after the launch): at most 1024 threads per
//    block (x, y <= 1024, z <= 64), grid x < 2^31, y and z <= 65535, no empty dimension
//    (cudaErrorInvalidConfiguration); more than 48 KB of dynamic shared memory needs the
//    cudaFuncAttributeMaxDynamicSharedMemorySize opt-in, at most 227 KB (cudaErrorInvalidValue).
// What it cannot check (a lent GPU and compute-sanitizer do): timing, occupancy, registers and spills (the
// ptxas report checks those), real interleavings inside a warp or between barriers (a race between two
// barriers is seen only by the ThreadSanitizer build, see emu_simt.cpp), memory ordering and atomics'
// contention, device math ulps (expf, erff, FMA contraction: the host's libm computes them), the
// __CUDA_ARCH__-only branches, and __launch_bounds__ (not recorded). Kernel loads and stores of device
// memory are plain host accesses: out-of-bounds writes are found by the allocation redzones
// (emu_runtime.cpp) or AddressSanitizer, not at the faulting instruction.
#pragma once

#include <cuda_runtime_api.h>  // the toolkit's host declarations: dim3, uint3, cudaError_t, cudaStream_t

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

// ---------------------------------------------------------------------------------------------- qualifiers
// The toolkit's host_defines.h maps these to GNU attributes nvcc reads; for host C++ they mean nothing, and
// __shared__ becomes a static: one instance that every thread of the (one running) block sees.
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __constant__
#undef __forceinline__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __constant__ static
#define __forceinline__ inline __attribute__((always_inline))
#define __launch_bounds__(...)

namespace sdxl_emu {

// The emulated thread that is running (kernels run one at a time under the emulator's lock).
struct ThreadState {
    uint3 thread_idx;
    unsigned linear;  // threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)
};
extern ThreadState* g_thread;
extern uint3 g_block_idx;
extern dim3 g_block_dim;
extern dim3 g_grid_dim;
extern unsigned char* g_dynamic_smem;

// What a kernel reads of its position. Under ThreadSanitizer these are calls into uninstrumented code
// (emu_simt.cpp): the scheduler writes them between the threads' turns, an order TSan cannot see.
#if defined(__SANITIZE_THREAD__) || defined(SDXL_EMU_TSAN)
uint3 thread_idx();
uint3 block_idx();
dim3 block_dim();
dim3 grid_dim();
unsigned char* dynamic_smem_base();
#else
inline uint3 thread_idx() { return g_thread->thread_idx; }
inline uint3 block_idx() { return g_block_idx; }
inline dim3 block_dim() { return g_block_dim; }
inline dim3 grid_dim() { return g_grid_dim; }
inline unsigned char* dynamic_smem_base() { return g_dynamic_smem; }
#endif

template <typename T>
T* dynamic_shared() {
    return reinterpret_cast<T*>(dynamic_smem_base());
}

// Barriers and warp collectives (emu_simt.cpp). `file`/`line` name the call site in messages.
void syncthreads_at(const char* file, int line);
enum class Collective { SHFL_IDX, SHFL_UP, SHFL_DOWN, SHFL_XOR, SYNCWARP, BALLOT, GATHER };
// Every lane of `mask` contributes `bits`; returns what this lane receives (for BALLOT: the mask of lanes whose
// bits were nonzero; SYNCWARP: 0).
uint64_t warp_collective(Collective kind, unsigned mask, uint64_t bits, int lane_arg, int width, const char* file,
                         int line);

// Runs `body(ctx)` as every thread of every block of the grid (emu_simt.cpp). Returns cudaSuccess or the launch's
// error; the error is also what the next cudaGetLastError() returns.
// A warp-collective gather for emulating warp-wide instructions (tensor-core mma fragments, ldmatrix): every lane
// of `mask` contributes `bytes` bytes at `mine`; when all have arrived, each receives all 32 lanes' contributions
// in `all` (32 * bytes; lanes outside the mask left untouched). Same mask rules as the shuffles.
void warp_gather(unsigned mask, const void* mine, size_t bytes, void* all, const char* file = __builtin_FILE(),
                 int line = __builtin_LINE());

// Ends the calling emulated thread with a device fault (e.g. cudaErrorMisalignedAddress from an emulated
// instruction): the launch fails with `code` and `what`, sticky as on a GPU. Never returns.
[[noreturn]] void kernel_fault(cudaError_t code, const std::string& what);

cudaError_t run_grid(const void* kernel, dim3 grid, dim3 block, size_t dynamic_smem, cudaStream_t stream,
                     void (*body)(void*), void* ctx);

// A launch on `stream`: the configuration is checked at once (as cudaLaunchKernel does); the grid then runs now,
// or, while the stream captures a graph, becomes a node that runs at every cudaGraphLaunch (ctx is kept alive).
cudaError_t submit_grid(const void* kernel, dim3 grid, dim3 block, size_t dynamic_smem, cudaStream_t stream,
                        void (*body)(void*), std::shared_ptr<void> ctx);

// A launch: the arguments are converted to the kernel's parameter types once (as CUDA copies them into the
// parameter space; a captured launch keeps that copy), and every thread calls the kernel with its own copy.
template <typename... Params, typename... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                   Args&&... args) {
    using Tuple = std::tuple<std::decay_t<Params>...>;
    struct Call {
        void (*kernel)(Params...);
        Tuple params;
        static void run(void* self) {
            Call* c = static_cast<Call*>(self);
            std::apply([c](const auto&... p) { c->kernel(p...); }, c->params);
        }
    };
    auto call = std::make_shared<Call>(Call{kernel, Tuple(std::forward<Args>(args)...)});
    return submit_grid(reinterpret_cast<const void*>(kernel), grid, block, smem, stream, &Call::run, std::move(call));
}

template <typename T>
uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "warp collectives move at most 64 bits");
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <typename T>
T from_bits(uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}

}  // namespace sdxl_emu

#define threadIdx (::sdxl_emu::thread_idx())
#define blockIdx (::sdxl_emu::block_idx())
#define blockDim (::sdxl_emu::block_dim())
#define gridDim (::sdxl_emu::grid_dim())
#define warpSize 32
#define __syncthreads() ::sdxl_emu::syncthreads_at(__FILE__, __LINE__)

// ---------------------------------------------------------------------------------------------- warp collectives
// The call site comes in through __builtin_FILE/__builtin_LINE default arguments (GCC), for messages.
#define SDXL_EMU_SHFL(name, kind)                                                                              \
    template <typename T>                                                                                      \
    inline T name(unsigned mask, T var, int arg, int width = 32, const char* file = __builtin_FILE(),          \
                  int line = __builtin_LINE()) {                                                               \
        return ::sdxl_emu::from_bits<T>(                                                                       \
            ::sdxl_emu::warp_collective(kind, mask, ::sdxl_emu::to_bits(var), arg, width, file, line));         \
    }
SDXL_EMU_SHFL(__shfl_sync, ::sdxl_emu::Collective::SHFL_IDX)
SDXL_EMU_SHFL(__shfl_up_sync, ::sdxl_emu::Collective::SHFL_UP)
SDXL_EMU_SHFL(__shfl_down_sync, ::sdxl_emu::Collective::SHFL_DOWN)
SDXL_EMU_SHFL(__shfl_xor_sync, ::sdxl_emu::Collective::SHFL_XOR)
#undef SDXL_EMU_SHFL

inline void __syncwarp(unsigned mask = 0xffffffffu, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    (void)::sdxl_emu::warp_collective(::sdxl_emu::Collective::SYNCWARP, mask, 0, 0, 32, file, line);
}
inline unsigned __ballot_sync(unsigned mask, int pred, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    return unsigned(::sdxl_emu::warp_collective(::sdxl_emu::Collective::BALLOT, mask, pred ? 1 : 0, 0, 32, file, line));
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == mask; }

// ---------------------------------------------------------------------------------------------- device math
// Bit casts and the IEEE round-to-nearest intrinsics; the host's libm stands in for the device's math (the
// ulps may differ, see the header comment).
inline float __int_as_float(int x) { return ::sdxl_emu::from_bits<float>(uint32_t(x)); }
inline float __uint_as_float(unsigned x) { return ::sdxl_emu::from_bits<float>(x); }
inline int __float_as_int(float x) { return int(uint32_t(::sdxl_emu::to_bits(x))); }
inline unsigned __float_as_uint(float x) { return unsigned(::sdxl_emu::to_bits(x)); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
using std::isinf;
using std::isnan;
// CUDA's global min/max overloads for device code.
#define SDXL_EMU_MINMAX(T)                                  \
    inline T min(T a, T b) { return b < a ? b : a; }       \
    inline T max(T a, T b) { return a < b ? b : a; }
SDXL_EMU_MINMAX(int)
SDXL_EMU_MINMAX(unsigned)
SDXL_EMU_MINMAX(long)
SDXL_EMU_MINMAX(unsigned long)
SDXL_EMU_MINMAX(long long)
SDXL_EMU_MINMAX(unsigned long long)
#undef SDXL_EMU_MINMAX
inline float min(float a, float b) { return std::fmin(a, b); }
inline float max(float a, float b) { return std::fmax(a, b); }
inline double min(double a, double b) { return std::fmin(a, b); }
inline double max(double a, double b) { return std::fmax(a, b); }

// ---------------------------------------------------------------------------------------------- runtime templates
// The C++ overloads that the toolkit's cuda_runtime.h adds on top of the C API (kernel pointers as entries).
template <class T>
inline cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, T* entry) {
    return ::cudaFuncGetAttributes(attr, reinterpret_cast<const void*>(entry));
}
template <class T>
inline cudaError_t cudaFuncSetAttribute(T* entry, cudaFuncAttribute attr, int value) {
    return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(entry), attr, value);
}
