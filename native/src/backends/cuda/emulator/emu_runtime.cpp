// The fake CUDA runtime of the emulator build: the cudart entry points the backend calls, with the documented
// semantics of the CUDA Runtime API (declarations from the toolkit's cuda_runtime_api.h), on host memory.
//
//  - One device, sm_90 limits, capacity 80 GiB (SDXL4J_EMU_DEVICE_BYTES or set_device_capacity to change):
//    cudaMalloc beyond it fails with cudaErrorMemoryAllocation, so OOM handling and recovery are testable.
//    SDXL4J_EMU_DEVICES=N shows N such devices (one memory underneath): cudaSetDevice sets the calling thread's
//    current device, each stream belongs to the device current when it was made, and a kernel or library call on
//    a stream of another device than the thread's current one fails as on a GPU (Programming Guide, "Stream and
//    Event Behavior"), so a thread that forgot cudaSetDevice is caught.
//  - Device memory is tracked: 256-byte aligned blocks, filled with 0xFF bytes (NaN as floats) when allocated,
//    followed by a 64-byte redzone (0xFE) that is checked after every kernel launch, on free and at every
//    synchronising call; freed blocks are poisoned and quarantined (up to 256 MiB), so a pointer into one is
//    reported as a use after free. cudaFree of an unknown or freed pointer is cudaErrorInvalidValue.
//  - cudaMemcpy checks its kind: each side must be device memory (a whole live range) or host memory (not
//    device memory) as the kind says; cudaMemcpyDefault infers them.
//  - Streams and events: one in-order device, so every call completes before it returns; streams are
//    checked handles, events record host time.
//  - Graphs (stream capture, CUDA Runtime API "Stream Management" / "Graph Management"): while a stream captures,
//    the work issued to it (kernels, cudaMemcpyAsync/cudaMemsetAsync, event records, the fake libraries' calls) is
//    recorded as nodes holding copies of their arguments instead of run; cudaGraphLaunch runs the nodes in capture
//    order. The capture rules are enforced as documented, so that graph-unsafe code fails in CI: "potentially
//    unsafe" calls (cudaMalloc, cudaFree, cudaDeviceSynchronize, synchronous cudaMemcpy/cudaMemset) are refused
//    with cudaErrorStreamCaptureUnsupported according to the thread's interaction mode
//    (cudaThreadExchangeStreamCaptureMode: global, thread-local, relaxed) and the captures' modes, and invalidate
//    the captures they conflict with; synchronising or querying a capturing stream is refused and invalidates
//    it; work on the legacy stream while a blocking stream captures is cudaErrorStreamCaptureImplicit; an
//    asynchronous copy with a host side during capture is refused (host memory here is pageable, which a graph
//    cannot hold); cudaStreamEndCapture of an invalidated capture returns cudaErrorStreamCaptureInvalidated.
//  - Errors: cudaGetLastError returns and clears the last error; launch failures and bad device addresses in
//    kernels or the fake libraries are sticky (every later call fails with them) until reset_device(), as a
//    corrupted context is on a GPU. cudaGetErrorString gives the detailed message of the last error.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/cuda/emulator/emu_internal.h"
#include "backends/cuda/emulator/emu_runtime.h"

namespace sdxl_emu {
namespace {
// A recorded piece of work (see enqueue) and what it was, for messages.
struct Node {
    std::string what;
    std::function<cudaError_t()> work;
};
using Nodes = std::vector<Node>;

// One capture sequence (cudaStreamBeginCapture .. cudaStreamEndCapture).
struct Capture {
    cudaStreamCaptureMode mode;
    std::thread::id thread;
    unsigned long long id;
    std::shared_ptr<Nodes> nodes = std::make_shared<Nodes>();
    bool invalidated = false;
    std::string why;  // what invalidated it
};
}  // namespace
}  // namespace sdxl_emu

struct CUstream_st {
    int id;
    unsigned flags;  // cudaStreamNonBlocking or 0 (blocking: implicitly ordered with the legacy stream)
    int device;      // current device of the thread that made it
    std::unique_ptr<sdxl_emu::Capture> capture;
};
struct CUevent_st {
    bool recorded;
    bool captured;  // last recorded inside a capture
    std::chrono::steady_clock::time_point when;
};
struct CUgraph_st {
    std::shared_ptr<const sdxl_emu::Nodes> nodes;
};
struct CUgraphExec_st {
    std::shared_ptr<const sdxl_emu::Nodes> nodes;
};

namespace sdxl_emu {

namespace {

constexpr size_t kAlign = 256;      // cudaMalloc's documented alignment (at least 256 bytes)
constexpr size_t kRedzone = 64;
constexpr unsigned char kFresh = 0xFF, kRed = 0xFE, kFreed = 0xFD;
constexpr size_t kQuarantineBytes = size_t(256) << 20;

struct Block {
    size_t bytes;     // as requested
    size_t reserved;  // bytes + redzone, rounded to kAlign
    uint64_t serial;  // allocation number, for messages
};

struct Runtime {
    std::recursive_mutex lock;
    std::map<uintptr_t, Block> live;
    std::map<uintptr_t, Block> freed;
    std::deque<uintptr_t> freed_order;
    size_t freed_bytes = 0;
    size_t in_use = 0;
    size_t capacity = [] {
        const char* v = std::getenv("SDXL4J_EMU_DEVICE_BYTES");
        return v && *v ? size_t(std::strtoull(v, nullptr, 10)) : (size_t(80) << 30);
    }();
    uint64_t serial = 0;
    cudaError_t last = cudaSuccess;
    cudaError_t sticky = cudaSuccess;
    std::map<int, const char*> messages;  // code -> detailed text of its last occurrence
    std::deque<std::string> texts;        // owns the texts (pointers handed out stay valid)
    std::set<cudaStream_t> streams;
    std::set<cudaEvent_t> events;
    std::map<const void*, size_t> smem_limits;
    int next_stream = 1;
    std::set<cudaGraph_t> graphs;
    std::set<cudaGraphExec_t> execs;
    unsigned long long next_capture = 1;
    uint64_t graph_launches = 0, graph_nodes_run = 0;
};

// The calling thread's stream capture interaction mode (cudaThreadExchangeStreamCaptureMode; global by default).
thread_local cudaStreamCaptureMode t_capture_mode = cudaStreamCaptureModeGlobal;
// The calling thread's current device (cudaSetDevice; 0 on a new thread, as in CUDA).
thread_local int t_device = 0;

int device_count() {  // read at each call, so a test can change it
    const char* v = std::getenv("SDXL4J_EMU_DEVICES");
    const int k = v && *v ? std::atoi(v) : 1;
    return k < 1 ? 1 : (k > 16 ? 16 : k);
}

// Copies, memsets and event records may go to any device's stream; kernels and library calls may not.
bool device_bound(const char* what) {
    return std::strcmp(what, "cudaMemcpyAsync") != 0 && std::strcmp(what, "cudaMemsetAsync") != 0 &&
           std::strcmp(what, "cudaEventRecord") != 0;
}

Runtime& rt() {
    static Runtime* r = new Runtime();  // never destroyed: frees may come during static destruction
    return *r;
}

std::string describe(uintptr_t start, const Block& b) {
    std::ostringstream o;
    o << "allocation #" << b.serial << " of " << b.bytes << " bytes at 0x" << std::hex << start;
    return o.str();
}

// The live block holding p (or ending exactly at p), or end().
std::map<uintptr_t, Block>::iterator find_block(std::map<uintptr_t, Block>& m, uintptr_t p) {
    auto it = m.upper_bound(p);
    if (it == m.begin()) return m.end();
    --it;
    return p <= it->first + it->second.bytes ? it : m.end();
}

bool redzone_intact(uintptr_t start, const Block& b) {
    const auto* z = reinterpret_cast<const unsigned char*>(start + b.bytes);
    for (size_t i = 0; i < b.reserved - b.bytes; ++i)
        if (z[i] != kRed) return false;
    return true;
}

cudaError_t fail(cudaError_t code, const std::string& message, bool sticky = false) {
    set_error(code, message, sticky);
    return code;
}

// The sticky error, if any, for calls that must fail once the context is broken.
#define SDXL_EMU_STICKY_GUARD()                                   \
    do {                                                          \
        if (rt().sticky != cudaSuccess) return rt().sticky;       \
    } while (0)

const char* mode_name(cudaStreamCaptureMode m) {
    switch (m) {
        case cudaStreamCaptureModeGlobal: return "global";
        case cudaStreamCaptureModeThreadLocal: return "thread-local";
        case cudaStreamCaptureModeRelaxed: return "relaxed";
    }
    return "?";
}

bool is_legacy(cudaStream_t s) { return s == nullptr || s == cudaStreamLegacy; }

void invalidate(Capture& c, const std::string& why) {
    if (!c.invalidated) {
        c.invalidated = true;
        c.why = why;
    }
}

// A "potentially unsafe" call (cudaThreadExchangeStreamCaptureMode's documentation): prohibited when the calling
// thread's mode is not relaxed and it has a capture of its own not begun in relaxed mode, or, for a thread in
// global mode, when another thread has a capture begun in global mode. The conflicting captures are invalidated.
// Lock held.
cudaError_t unsafe_call(const std::string& call) {
    Runtime& r = rt();
    const cudaStreamCaptureMode tm = t_capture_mode;
    if (tm == cudaStreamCaptureModeRelaxed) return cudaSuccess;
    const auto self = std::this_thread::get_id();
    std::string which;
    for (cudaStream_t s : r.streams) {
        if (!s->capture) continue;
        Capture& c = *s->capture;
        const bool mine = c.thread == self && c.mode != cudaStreamCaptureModeRelaxed;
        const bool others = tm == cudaStreamCaptureModeGlobal && c.thread != self && c.mode == cudaStreamCaptureModeGlobal;
        if (!mine && !others) continue;
        invalidate(c, call + " during the capture");
        which += std::string(which.empty() ? "" : ", ") + "#" + std::to_string(c.id) + " (" + mode_name(c.mode) +
                 (mine ? " mode, this thread)" : " mode, another thread)");
    }
    if (which.empty()) return cudaSuccess;
    return fail(cudaErrorStreamCaptureUnsupported,
                "operation not permitted when stream is capturing: " + call +
                    " is a potentially unsafe call while capture " + which + " is in progress (the calling thread is in " +
                    mode_name(tm) + " mode); the capture is invalidated");
}

// Work on the legacy stream waits for every blocking stream: a capturing one cannot be waited for. Lock held.
cudaError_t legacy_implicit(const std::string& call) {
    Runtime& r = rt();
    std::string which;
    for (cudaStream_t s : r.streams) {
        if (!s->capture || (s->flags & cudaStreamNonBlocking)) continue;
        invalidate(*s->capture, call + " on the legacy stream during the capture");
        which += std::string(which.empty() ? "" : ", ") + "#" + std::to_string(s->capture->id);
    }
    if (which.empty()) return cudaSuccess;
    return fail(cudaErrorStreamCaptureImplicit,
                "operation would make the legacy stream depend on a capturing blocking stream: " + call +
                    " while capture " + which + " is in progress; the capture is invalidated");
}

}  // namespace

cudaError_t enqueue(cudaStream_t stream, const char* what, std::function<cudaError_t()> work) {
    Runtime& r = rt();
    std::lock_guard<std::recursive_mutex> g(r.lock);
    if (r.sticky != cudaSuccess) return r.sticky;
    if (!stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle, std::string("invalid resource handle: ") + what + " on an invalid stream");
    if (!is_legacy(stream) && stream != cudaStreamPerThread && stream->device != t_device && device_bound(what))
        return fail(cudaErrorInvalidResourceHandle, std::string("invalid resource handle: ") + what + " on a stream of "
                    "device " + std::to_string(stream->device) + " while the thread's current device is " +
                    std::to_string(t_device) + " (cudaSetDevice missing on this thread?)");
    if (is_legacy(stream)) {
        if (const cudaError_t e = legacy_implicit(what); e != cudaSuccess) return e;
    } else if (stream != cudaStreamPerThread && stream->capture) {
        Capture& c = *stream->capture;
        if (c.invalidated)
            return fail(cudaErrorStreamCaptureInvalidated, std::string("operation failed due to a previous error during "
                        "capture: ") + what + " on a stream whose capture #" + std::to_string(c.id) +
                        " was invalidated by " + c.why);
        c.nodes->push_back(Node{what, std::move(work)});
        return cudaSuccess;
    }
    return work();
}

bool stream_capturing(cudaStream_t stream) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    return !is_legacy(stream) && stream != cudaStreamPerThread && rt().streams.count(stream) && stream->capture;
}

uint64_t graph_launches() {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    return rt().graph_launches;
}
uint64_t graph_nodes_run() {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    return rt().graph_nodes_run;
}

std::recursive_mutex& device_lock() { return rt().lock; }

void set_error(cudaError_t code, const std::string& message, bool sticky) {
    Runtime& r = rt();
    std::lock_guard<std::recursive_mutex> g(r.lock);
    r.last = code;
    if (sticky && r.sticky == cudaSuccess) r.sticky = code;
    if (r.texts.size() < 100000) {
        r.texts.push_back(message);
        r.messages[int(code)] = r.texts.back().c_str();
    }
    if (sticky) std::fprintf(stderr, "sdxl emulator: %s\n", message.c_str());
}

cudaError_t sticky_error() { return rt().sticky; }

size_t max_dynamic_smem(const void* kernel) {
    Runtime& r = rt();
    std::lock_guard<std::recursive_mutex> g(r.lock);
    auto it = r.smem_limits.find(kernel);
    return it == r.smem_limits.end() ? kDefaultSmem : it->second;
}

void set_max_dynamic_smem(const void* kernel, size_t bytes) {
    Runtime& r = rt();
    std::lock_guard<std::recursive_mutex> g(r.lock);
    r.smem_limits[kernel] = bytes;
}

bool check_redzones() {
    Runtime& r = rt();
    std::lock_guard<std::recursive_mutex> g(r.lock);
    for (const auto& [start, b] : r.live) {
        if (!redzone_intact(start, b)) {
            set_error(cudaErrorIllegalAddress,
                      "an illegal memory access was encountered: bytes past the end of " + describe(start, b) +
                          " were written (a kernel or library wrote out of bounds)",
                      true);
            // Repair it so that one overrun is reported once.
            std::memset(reinterpret_cast<void*>(start + b.bytes), kRed, b.reserved - b.bytes);
            return false;
        }
    }
    return true;
}

bool device_range_ok(const void* p, size_t bytes, std::string* why) {
    Runtime& r = rt();
    std::lock_guard<std::recursive_mutex> g(r.lock);
    if (!p) {
        if (bytes == 0) return true;
        if (why) *why = "null pointer";
        return false;
    }
    const auto u = reinterpret_cast<uintptr_t>(p);
    auto it = find_block(r.live, u);
    if (it != r.live.end()) {
        if (u + bytes <= it->first + it->second.bytes) return true;
        if (why) {
            std::ostringstream o;
            o << bytes << " bytes at offset " << (u - it->first) << " run " << (u + bytes - it->first - it->second.bytes)
              << " bytes past the end of " << describe(it->first, it->second);
            *why = o.str();
        }
        return false;
    }
    auto f = find_block(r.freed, u);
    if (why) *why = f != r.freed.end() ? "use after free: the pointer is inside freed " + describe(f->first, f->second)
                                       : "not device memory (a host pointer, or not from cudaMalloc)";
    return false;
}

void report_device_error(int code, const std::string& message) { set_error(cudaError_t(code), message, true); }

void set_device_capacity(size_t bytes) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    rt().capacity = bytes;
}
size_t device_capacity() {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    return rt().capacity;
}
size_t device_bytes_in_use() {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    return rt().in_use;
}

void reset_device() {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    rt().sticky = cudaSuccess;
    rt().last = cudaSuccess;
}

bool stream_valid(cudaStream_t s) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    return s == nullptr || s == cudaStreamLegacy || s == cudaStreamPerThread || rt().streams.count(s) != 0;
}

}  // namespace sdxl_emu

using sdxl_emu::fail;
using sdxl_emu::rt;

extern "C" {

// ------------------------------------------------------------------------------------------------ errors

cudaError_t cudaGetLastError(void) {
    auto& r = rt();
    std::lock_guard<std::recursive_mutex> g(r.lock);
    const cudaError_t e = r.last;
    r.last = r.sticky;  // a sticky error is returned again by later calls
    return e;
}

cudaError_t cudaPeekAtLastError(void) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    return rt().last;
}

const char* cudaGetErrorName(cudaError_t error) {
    switch (error) {
        case cudaSuccess: return "cudaSuccess";
        case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
        case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
        case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
        case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
        case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
        case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
        case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
        case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
        case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
        case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
        case cudaErrorLaunchOutOfResources: return "cudaErrorLaunchOutOfResources";
        case cudaErrorNotSupported: return "cudaErrorNotSupported";
        case cudaErrorIllegalState: return "cudaErrorIllegalState";
        case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
        case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
        case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
        case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
        case cudaErrorCapturedEvent: return "cudaErrorCapturedEvent";
        default: return "cudaErrorUnknown (emulator: code not named)";
    }
}

const char* cudaGetErrorString(cudaError_t error) {
    auto& r = rt();
    std::lock_guard<std::recursive_mutex> g(r.lock);
    auto it = r.messages.find(int(error));
    if (it != r.messages.end()) return it->second;
    return error == cudaSuccess ? "no error" : "emulated CUDA error";
}

// ------------------------------------------------------------------------------------------------ device

cudaError_t cudaGetDeviceCount(int* count) {
    if (!count) return fail(cudaErrorInvalidValue, "cudaGetDeviceCount: null count");
    *count = sdxl_emu::device_count();
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
    if (!device) return fail(cudaErrorInvalidValue, "cudaGetDevice: null device");
    *device = sdxl_emu::t_device;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    if (device < 0 || device >= sdxl_emu::device_count())
        return fail(cudaErrorInvalidDevice, "invalid device ordinal " + std::to_string(device));
    sdxl_emu::t_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp* prop, int device) {
    if (!prop) return fail(cudaErrorInvalidValue, "cudaGetDeviceProperties: null prop");
    if (device < 0 || device >= sdxl_emu::device_count()) return fail(cudaErrorInvalidDevice, "invalid device ordinal " + std::to_string(device));
    std::memset(prop, 0, sizeof *prop);
    std::snprintf(prop->name, sizeof prop->name, "sdxl4j SIMT emulator (sm_90 limits)");
    prop->totalGlobalMem = sdxl_emu::device_capacity();
    prop->sharedMemPerBlock = sdxl_emu::kDefaultSmem;
    prop->sharedMemPerBlockOptin = sdxl_emu::kOptinSmem;
    prop->regsPerBlock = 65536;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    prop->maxThreadsDim[0] = 1024;
    prop->maxThreadsDim[1] = 1024;
    prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 2147483647;
    prop->maxGridSize[1] = 65535;
    prop->maxGridSize[2] = 65535;
    prop->major = 9;
    prop->minor = 0;
    prop->multiProcessorCount = 1;
    prop->maxThreadsPerMultiProcessor = 2048;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, enum cudaDeviceAttr attr, int device) {
    if (!value) return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: null value");
    if (device < 0 || device >= sdxl_emu::device_count()) return fail(cudaErrorInvalidDevice, "invalid device ordinal " + std::to_string(device));
    switch (attr) {
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = int(sdxl_emu::kOptinSmem); break;
        case cudaDevAttrMaxSharedMemoryPerBlock: *value = int(sdxl_emu::kDefaultSmem); break;
        case cudaDevAttrMaxThreadsPerBlock: *value = 1024; break;
        case cudaDevAttrWarpSize: *value = 32; break;
        case cudaDevAttrComputeCapabilityMajor: *value = 9; break;
        case cudaDevAttrComputeCapabilityMinor: *value = 0; break;
        case cudaDevAttrMultiProcessorCount: *value = 1; break;
        default: return fail(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute " + std::to_string(int(attr)) +
                                                        " is not emulated");
    }
    return cudaSuccess;
}

cudaError_t cudaDriverGetVersion(int* v) {
    if (!v) return fail(cudaErrorInvalidValue, "cudaDriverGetVersion: null");
    *v = 13000;
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int* v) {
    if (!v) return fail(cudaErrorInvalidValue, "cudaRuntimeGetVersion: null");
    *v = 13000;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    SDXL_EMU_STICKY_GUARD();
    std::lock_guard<std::recursive_mutex> g(sdxl_emu::device_lock());
    if (const cudaError_t e = sdxl_emu::unsafe_call("cudaDeviceSynchronize"); e != cudaSuccess) return e;
    return sdxl_emu::check_redzones() ? cudaSuccess : rt().sticky;
}

cudaError_t cudaFuncGetAttributes(struct cudaFuncAttributes* attr, const void* func) {
    if (!attr || !func) return fail(cudaErrorInvalidDeviceFunction, "cudaFuncGetAttributes: null argument");
    std::memset(attr, 0, sizeof *attr);
    attr->maxThreadsPerBlock = 1024;
    attr->sharedSizeBytes = 0;  // the emulator does not know a kernel's static shared memory (see emu_simt.h)
    attr->maxDynamicSharedSizeBytes = int(sdxl_emu::max_dynamic_smem(func));
    attr->binaryVersion = 90;
    attr->ptxVersion = 90;
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, enum cudaFuncAttribute attr, int value) {
    if (!func) return fail(cudaErrorInvalidDeviceFunction, "cudaFuncSetAttribute: null function");
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
        return cudaSuccess;  // other attributes (carveout, cluster dims) have no effect in the emulator
    if (value < 0 || size_t(value) > sdxl_emu::kOptinSmem)
        return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize, " +
                                               std::to_string(value) + "): above the device's opt-in limit of " +
                                               std::to_string(sdxl_emu::kOptinSmem) + " bytes");
    sdxl_emu::set_max_dynamic_smem(func, size_t(value));
    return cudaSuccess;
}

// ------------------------------------------------------------------------------------------------ memory

cudaError_t cudaMalloc(void** devPtr, size_t size) {
    SDXL_EMU_STICKY_GUARD();
    if (!devPtr) return fail(cudaErrorInvalidValue, "cudaMalloc: null devPtr");
    auto& r = rt();
    std::lock_guard<std::recursive_mutex> g(r.lock);
    if (const cudaError_t e = sdxl_emu::unsafe_call("cudaMalloc(" + std::to_string(size) + ")"); e != cudaSuccess) {
        *devPtr = nullptr;
        return e;
    }
    if (size == 0) {  // nothing to allocate: success and a null pointer, as the runtime does
        *devPtr = nullptr;
        return cudaSuccess;
    }
    if (size > r.capacity || r.in_use > r.capacity - size) {
        std::ostringstream m;
        m << "out of memory: cudaMalloc(" << size << ") with " << r.in_use << " of " << r.capacity
          << " bytes of the emulated device in use";
        return fail(cudaErrorMemoryAllocation, m.str());
    }
    const size_t reserved = (size + sdxl_emu::kRedzone + sdxl_emu::kAlign - 1) / sdxl_emu::kAlign * sdxl_emu::kAlign;
    void* p = std::aligned_alloc(sdxl_emu::kAlign, reserved);
    if (!p) return fail(cudaErrorMemoryAllocation, "out of memory: the host cannot back cudaMalloc(" + std::to_string(size) + ")");
    std::memset(p, sdxl_emu::kFresh, size);
    std::memset(static_cast<char*>(p) + size, sdxl_emu::kRed, reserved - size);
    r.live[reinterpret_cast<uintptr_t>(p)] = {size, reserved, ++r.serial};
    r.in_use += size;
    *devPtr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void* devPtr) {
    if (!devPtr) return cudaSuccess;
    auto& r = rt();
    std::lock_guard<std::recursive_mutex> g(r.lock);
    if (const cudaError_t e = sdxl_emu::unsafe_call("cudaFree"); e != cudaSuccess) return e;
    const auto u = reinterpret_cast<uintptr_t>(devPtr);
    auto it = r.live.find(u);
    if (it == r.live.end()) {
        const bool freed = r.freed.count(u) != 0;
        return fail(cudaErrorInvalidValue, freed ? "cudaFree: double free of " + sdxl_emu::describe(u, r.freed.at(u))
                                                 : "cudaFree: not the start of a device allocation");
    }
    const sdxl_emu::Block b = it->second;
    const bool intact = sdxl_emu::redzone_intact(u, b);
    r.live.erase(it);
    r.in_use -= b.bytes;
    std::memset(devPtr, sdxl_emu::kFreed, b.bytes);
    r.freed[u] = b;
    r.freed_order.push_back(u);
    r.freed_bytes += b.reserved;
    while (r.freed_bytes > sdxl_emu::kQuarantineBytes && !r.freed_order.empty()) {
        const uintptr_t old = r.freed_order.front();
        r.freed_order.pop_front();
        r.freed_bytes -= r.freed.at(old).reserved;
        r.freed.erase(old);
        std::free(reinterpret_cast<void*>(old));
    }
    if (!intact)
        return fail(cudaErrorIllegalAddress,
                    "an illegal memory access was encountered: bytes past the end of " + sdxl_emu::describe(u, b) +
                        " were written (found when it was freed)",
                    true);
    return rt().sticky;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total) {
    if (!free_bytes || !total) return fail(cudaErrorInvalidValue, "cudaMemGetInfo: null argument");
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    *total = rt().capacity;
    *free_bytes = rt().capacity - std::min(rt().capacity, rt().in_use);
    return cudaSuccess;
}

// Checks a copy's arguments; `run` false: only checks (a copy being recorded), and reports whether a side is host
// memory through *host_side.
static cudaError_t copy_checked(void* dst, const void* src, size_t count, cudaMemcpyKind kind, const char* call,
                                bool run = true, bool* host_side = nullptr) {
    SDXL_EMU_STICKY_GUARD();
    std::lock_guard<std::recursive_mutex> g(sdxl_emu::device_lock());
    if (count == 0) return cudaSuccess;
    if (!dst || !src) return fail(cudaErrorInvalidValue, std::string(call) + ": null pointer");
    std::string why;
    const bool dst_dev = sdxl_emu::device_range_ok(dst, 0), src_dev = sdxl_emu::device_range_ok(src, 0);
    bool want_dst_dev = false, want_src_dev = false;
    switch (kind) {
        case cudaMemcpyHostToHost: break;
        case cudaMemcpyHostToDevice: want_dst_dev = true; break;
        case cudaMemcpyDeviceToHost: want_src_dev = true; break;
        case cudaMemcpyDeviceToDevice: want_dst_dev = want_src_dev = true; break;
        case cudaMemcpyDefault: want_dst_dev = dst_dev; want_src_dev = src_dev; break;
        default: return fail(cudaErrorInvalidMemcpyDirection, std::string(call) + ": invalid cudaMemcpyKind " + std::to_string(int(kind)));
    }
    auto side = [&](const void* p, bool want_dev, const char* name) -> std::string {
        std::string w;
        if (want_dev) {
            if (!sdxl_emu::device_range_ok(p, count, &w)) return std::string(name) + " " + w;
        } else if (sdxl_emu::device_range_ok(p, 0)) {
            return std::string(name) + " is device memory, but the copy's kind says host memory";
        }
        return "";
    };
    std::string bad = side(dst, want_dst_dev, "dst");
    if (bad.empty()) bad = side(src, want_src_dev, "src");
    if (!bad.empty()) {
        std::ostringstream m;
        m << "invalid argument: " << call << "(" << count << " bytes, kind " << int(kind) << "): " << bad;
        return fail(cudaErrorInvalidValue, m.str());
    }
    if (host_side) *host_side = !want_dst_dev || !want_src_dev;
    if (!run) return cudaSuccess;
    std::memmove(dst, src, count);
    if (want_src_dev && !want_dst_dev && !sdxl_emu::check_redzones()) return rt().sticky;
    return cudaSuccess;
}

// Synchronous copies and sets run on the legacy stream and block the host: potentially unsafe during capture.
cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind) {
    SDXL_EMU_STICKY_GUARD();
    std::lock_guard<std::recursive_mutex> g(sdxl_emu::device_lock());
    if (const cudaError_t e = sdxl_emu::unsafe_call("cudaMemcpy"); e != cudaSuccess) return e;
    if (const cudaError_t e = sdxl_emu::legacy_implicit("cudaMemcpy"); e != cudaSuccess) return e;
    return copy_checked(dst, src, count, kind, "cudaMemcpy");
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream) {
    if (!sdxl_emu::stream_valid(stream)) return fail(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: invalid stream");
    std::lock_guard<std::recursive_mutex> g(sdxl_emu::device_lock());
    bool host_side = false;
    if (const cudaError_t e = copy_checked(dst, src, count, kind, "cudaMemcpyAsync", false, &host_side); e != cudaSuccess)
        return e;
    if (host_side && count && sdxl_emu::stream_capturing(stream)) {
        sdxl_emu::invalidate(*stream->capture, "a cudaMemcpyAsync with pageable host memory");
        return fail(cudaErrorStreamCaptureUnsupported,
                    "operation not permitted when stream is capturing: cudaMemcpyAsync from or to pageable host memory "
                    "(the emulator has no pinned memory); the capture is invalidated");
    }
    return sdxl_emu::enqueue(stream, "cudaMemcpyAsync",
                             [=] { return copy_checked(dst, src, count, kind, "cudaMemcpyAsync (graph node)"); });
}

static cudaError_t set_checked(void* devPtr, int value, size_t count, const char* call) {
    SDXL_EMU_STICKY_GUARD();
    std::string why;
    if (count && !sdxl_emu::device_range_ok(devPtr, count, &why))
        return fail(cudaErrorInvalidValue, "invalid argument: " + std::string(call) + "(" + std::to_string(count) +
                                               " bytes): " + why);
    std::lock_guard<std::recursive_mutex> g(sdxl_emu::device_lock());
    if (count) std::memset(devPtr, value, count);
    return cudaSuccess;
}

cudaError_t cudaMemset(void* devPtr, int value, size_t count) {
    SDXL_EMU_STICKY_GUARD();
    std::lock_guard<std::recursive_mutex> g(sdxl_emu::device_lock());
    if (const cudaError_t e = sdxl_emu::unsafe_call("cudaMemset"); e != cudaSuccess) return e;
    if (const cudaError_t e = sdxl_emu::legacy_implicit("cudaMemset"); e != cudaSuccess) return e;
    return set_checked(devPtr, value, count, "cudaMemset");
}

cudaError_t cudaMemsetAsync(void* devPtr, int value, size_t count, cudaStream_t stream) {
    if (!sdxl_emu::stream_valid(stream)) return fail(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: invalid stream");
    std::string why;
    if (count && !sdxl_emu::device_range_ok(devPtr, count, &why))
        return fail(cudaErrorInvalidValue, "invalid argument: cudaMemsetAsync(" + std::to_string(count) + " bytes): " + why);
    return sdxl_emu::enqueue(stream, "cudaMemsetAsync",
                             [=] { return set_checked(devPtr, value, count, "cudaMemsetAsync (graph node)"); });
}

// ------------------------------------------------------------------------------------------------ streams, events

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* pStream, unsigned int flags) {
    if (!pStream) return fail(cudaErrorInvalidValue, "cudaStreamCreate: null pStream");
    if (flags & ~unsigned(cudaStreamNonBlocking)) return fail(cudaErrorInvalidValue, "cudaStreamCreateWithFlags: bad flags");
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    auto* s = new CUstream_st{rt().next_stream++, flags, sdxl_emu::t_device, nullptr};
    rt().streams.insert(s);
    *pStream = s;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* pStream) { return cudaStreamCreateWithFlags(pStream, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (sdxl_emu::is_legacy(stream) || stream == cudaStreamPerThread || !rt().streams.erase(stream))
        return fail(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: invalid stream");
    delete stream;  // a capture in progress is abandoned with it
    return cudaSuccess;
}

// Synchronising (or querying) a capturing stream is not permitted and invalidates its capture; the legacy
// stream waits for blocking streams, so it cannot be synchronised while one of them captures.
static cudaError_t sync_guard(cudaStream_t stream, const char* call) {
    if (sdxl_emu::is_legacy(stream)) return sdxl_emu::legacy_implicit(call);
    if (stream != cudaStreamPerThread && stream->capture) {
        sdxl_emu::invalidate(*stream->capture, std::string(call) + " of the capturing stream");
        return fail(cudaErrorStreamCaptureUnsupported, std::string("operation not permitted when stream is capturing: ") +
                                                           call + " of a capturing stream; the capture is invalidated");
    }
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    if (!sdxl_emu::stream_valid(stream)) return fail(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: invalid stream");
    {
        std::lock_guard<std::recursive_mutex> g(rt().lock);
        if (const cudaError_t e = sync_guard(stream, "cudaStreamSynchronize"); e != cudaSuccess) return e;
    }
    SDXL_EMU_STICKY_GUARD();
    std::lock_guard<std::recursive_mutex> g(sdxl_emu::device_lock());
    return sdxl_emu::check_redzones() ? cudaSuccess : rt().sticky;
}

cudaError_t cudaStreamQuery(cudaStream_t stream) {
    if (!sdxl_emu::stream_valid(stream)) return fail(cudaErrorInvalidResourceHandle, "cudaStreamQuery: invalid stream");
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (const cudaError_t e = sync_guard(stream, "cudaStreamQuery"); e != cudaSuccess) return e;
    return rt().sticky;  // everything issued has completed
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (!sdxl_emu::stream_valid(stream) || !rt().events.count(event))
        return fail(cudaErrorInvalidResourceHandle, "cudaStreamWaitEvent: invalid stream or event");
    return cudaSuccess;  // in order already
}

// ------------------------------------------------------------------------------------------------ stream capture, graphs

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (!sdxl_emu::stream_valid(stream)) return fail(cudaErrorInvalidResourceHandle, "cudaStreamBeginCapture: invalid stream");
    if (sdxl_emu::is_legacy(stream) || stream == cudaStreamPerThread)
        return fail(cudaErrorStreamCaptureUnsupported, "operation not permitted when stream is capturing: "
                                                       "cudaStreamBeginCapture on the legacy/per-thread default stream");
    if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal && mode != cudaStreamCaptureModeRelaxed)
        return fail(cudaErrorInvalidValue, "cudaStreamBeginCapture: invalid mode " + std::to_string(int(mode)));
    if (stream->capture) return fail(cudaErrorIllegalState, "cudaStreamBeginCapture: the stream is already capturing");
    auto* capture = new sdxl_emu::Capture();
    capture->mode = mode;
    capture->thread = std::this_thread::get_id();
    capture->id = rt().next_capture++;
    stream->capture.reset(capture);
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* pGraph) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (!pGraph) return fail(cudaErrorInvalidValue, "cudaStreamEndCapture: null pGraph");
    if (!sdxl_emu::stream_valid(stream) || sdxl_emu::is_legacy(stream) || stream == cudaStreamPerThread)
        return fail(cudaErrorInvalidResourceHandle, "cudaStreamEndCapture: invalid stream");
    if (!stream->capture) return fail(cudaErrorIllegalState, "cudaStreamEndCapture: the stream is not capturing");
    sdxl_emu::Capture& c = *stream->capture;
    if (c.mode != cudaStreamCaptureModeRelaxed && c.thread != std::this_thread::get_id())
        return fail(cudaErrorStreamCaptureWrongThread,
                    std::string("cudaStreamEndCapture from another thread than the one that began the ") +
                        sdxl_emu::mode_name(c.mode) + " mode capture");
    std::unique_ptr<sdxl_emu::Capture> ended = std::move(stream->capture);
    *pGraph = nullptr;
    if (ended->invalidated)
        return fail(cudaErrorStreamCaptureInvalidated, "capture #" + std::to_string(ended->id) +
                                                           " was invalidated by " + ended->why);
    auto* graph = new CUgraph_st{ended->nodes};
    rt().graphs.insert(graph);
    *pGraph = graph;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus* pCaptureStatus) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (!pCaptureStatus) return fail(cudaErrorInvalidValue, "cudaStreamIsCapturing: null status");
    if (!sdxl_emu::stream_valid(stream)) return fail(cudaErrorInvalidResourceHandle, "cudaStreamIsCapturing: invalid stream");
    if (sdxl_emu::is_legacy(stream)) {  // documented: an error while a blocking stream captures
        for (cudaStream_t s : rt().streams)
            if (s->capture && !(s->flags & cudaStreamNonBlocking))
                return fail(cudaErrorStreamCaptureImplicit,
                            "cudaStreamIsCapturing(legacy stream) while a blocking stream captures");
        *pCaptureStatus = cudaStreamCaptureStatusNone;
        return cudaSuccess;
    }
    *pCaptureStatus = stream == cudaStreamPerThread || !stream->capture ? cudaStreamCaptureStatusNone
                      : stream->capture->invalidated ? cudaStreamCaptureStatusInvalidated
                                                     : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

cudaError_t cudaStreamGetCaptureInfo(cudaStream_t stream, enum cudaStreamCaptureStatus* captureStatus_out,
                                     unsigned long long* id_out, cudaGraph_t* graph_out,
                                     const cudaGraphNode_t** dependencies_out, const cudaGraphEdgeData** edgeData_out,
                                     size_t* numDependencies_out) {
    if (const cudaError_t e = cudaStreamIsCapturing(stream, captureStatus_out); e != cudaSuccess) return e;
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    const bool on = *captureStatus_out != cudaStreamCaptureStatusNone;
    if (id_out && on) *id_out = stream->capture->id;
    if (graph_out) *graph_out = nullptr;  // the graph under construction is not exposed by the emulator
    if (dependencies_out) *dependencies_out = nullptr;
    if (edgeData_out) *edgeData_out = nullptr;
    if (numDependencies_out) *numDependencies_out = 0;
    return cudaSuccess;
}

cudaError_t cudaThreadExchangeStreamCaptureMode(enum cudaStreamCaptureMode* mode) {
    if (!mode) return fail(cudaErrorInvalidValue, "cudaThreadExchangeStreamCaptureMode: null mode");
    if (*mode != cudaStreamCaptureModeGlobal && *mode != cudaStreamCaptureModeThreadLocal &&
        *mode != cudaStreamCaptureModeRelaxed)
        return fail(cudaErrorInvalidValue, "cudaThreadExchangeStreamCaptureMode: invalid mode");
    std::swap(*mode, sdxl_emu::t_capture_mode);
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* pGraphExec, cudaGraph_t graph, unsigned long long flags) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (!pGraphExec || !rt().graphs.count(graph))
        return fail(cudaErrorInvalidValue, "cudaGraphInstantiate: null pGraphExec or invalid graph");
    const unsigned long long known = cudaGraphInstantiateFlagAutoFreeOnLaunch | cudaGraphInstantiateFlagUpload |
                                     cudaGraphInstantiateFlagDeviceLaunch | cudaGraphInstantiateFlagUseNodePriority;
    if (flags & ~known) return fail(cudaErrorInvalidValue, "cudaGraphInstantiate: unknown flags " + std::to_string(flags));
    auto* exec = new CUgraphExec_st{graph->nodes};  // the exec keeps the nodes: the graph may be destroyed first
    rt().execs.insert(exec);
    *pGraphExec = exec;
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (!rt().execs.count(graphExec)) return fail(cudaErrorInvalidValue, "cudaGraphLaunch: invalid graph exec");
    std::shared_ptr<const sdxl_emu::Nodes> nodes = graphExec->nodes;
    return sdxl_emu::enqueue(stream, "cudaGraphLaunch", [nodes] {
        rt().graph_launches += 1;
        for (const sdxl_emu::Node& n : *nodes) {
            rt().graph_nodes_run += 1;
            if (const cudaError_t e = n.work(); e != cudaSuccess) return e;
        }
        return cudaSuccess;
    });
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t graphExec) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (!rt().execs.erase(graphExec)) return fail(cudaErrorInvalidValue, "cudaGraphExecDestroy: invalid graph exec");
    delete graphExec;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (!rt().graphs.erase(graph)) return fail(cudaErrorInvalidValue, "cudaGraphDestroy: invalid graph");
    delete graph;
    return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* numNodes) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (!numNodes || !rt().graphs.count(graph)) return fail(cudaErrorInvalidValue, "cudaGraphGetNodes: invalid argument");
    if (nodes) {  // node handles are not emulated: only the count is
        return fail(cudaErrorNotSupported, "cudaGraphGetNodes: the emulator reports only the node count (nodes = NULL)");
    }
    *numNodes = graph->nodes->size();
    return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
    if (!event) return fail(cudaErrorInvalidValue, "cudaEventCreate: null event");
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    auto* e = new CUevent_st{false, false, {}};
    rt().events.insert(e);
    *event = e;
    return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int) { return cudaEventCreate(event); }

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (!rt().events.count(event) || !sdxl_emu::stream_valid(stream))
        return fail(cudaErrorInvalidResourceHandle, "cudaEventRecord: invalid event or stream");
    const bool capturing = sdxl_emu::stream_capturing(stream);
    const cudaError_t e = sdxl_emu::enqueue(stream, "cudaEventRecord", [event] {
        event->recorded = true;  // (an event destroyed before a replay is the caller's bug, as on a GPU)
        event->captured = false;
        event->when = std::chrono::steady_clock::now();
        return cudaSuccess;
    });
    if (e == cudaSuccess && capturing) event->captured = true;
    return e;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (!rt().events.count(event)) return fail(cudaErrorInvalidResourceHandle, "cudaEventSynchronize: invalid event");
    if (event->captured)
        return fail(cudaErrorCapturedEvent, "cudaEventSynchronize of an event last recorded in a capturing stream");
    return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (!ms) return fail(cudaErrorInvalidValue, "cudaEventElapsedTime: null ms");
    if (!rt().events.count(start) || !rt().events.count(end))
        return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: invalid event");
    if (!start->recorded || !end->recorded)
        return fail(cudaErrorInvalidResourceHandle, "cudaEventElapsedTime: an event was not recorded");
    *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
    std::lock_guard<std::recursive_mutex> g(rt().lock);
    if (!rt().events.erase(event)) return fail(cudaErrorInvalidResourceHandle, "cudaEventDestroy: invalid event");
    delete event;
    return cudaSuccess;
}

}  // extern "C"
