// The SIMT emulator's engine (see emu_simt.h for the model): fibers for a block's threads, the checked
// __syncthreads barrier, warp collectives, launch limits.
//
// Fibers: each emulated thread runs on its own stack (256 KB, a guard page below it) and switches only to the
// block's scheduler, with a small x86-64 context switch (callee-saved registers, MXCSR and the x87 control
// word). The scheduler resumes ready threads in order until every thread is done, waiting at the block's
// barrier, or waiting at a warp collective; then it releases the barrier or reports the divergence.
//
// ThreadSanitizer build (-DSDXL_SANITIZE=thread): every emulated thread is a TSan fiber of its own and the
// switches carry no synchronisation, so TSan sees a block's threads as concurrent; the only happens-before
// edges are the ones CUDA guarantees: the launch before every thread, __syncthreads among a block's threads,
// __syncwarp among the lanes of its mask, every thread before the host's next call (and, because static
// __shared__ variables are one instance here, one block before the next: races between blocks are not
// reported). The emulator's own bookkeeping is excluded from race detection. Races on shared or global memory
// between two barriers of a block are then reported.
#include "backends/cuda/emulator/emu_simt.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "backends/cuda/emulator/emu_internal.h"
#include "backends/cuda/emulator/emu_runtime.h"

// In a ThreadSanitizer build this file itself is compiled without instrumentation (CMakeLists.txt passes
// -fno-sanitize=thread -DSDXL_EMU_TSAN=1): the engine's state is handed between fibers by the switches, an order
// TSan cannot see, and only the kernels' own accesses are to be checked.
#if defined(__SANITIZE_THREAD__) && !defined(SDXL_EMU_TSAN)
#define SDXL_EMU_TSAN 1
#endif
#if defined(SDXL_EMU_TSAN)
#include <sanitizer/tsan_interface.h>
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);
#endif
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define SDXL_EMU_ASAN 1
#endif

#if !defined(__x86_64__)
#error "the SIMT emulator's context switch is written for x86-64"
#endif

namespace sdxl_emu {

ThreadState* g_thread = nullptr;
uint3 g_block_idx{0, 0, 0};
dim3 g_block_dim;
dim3 g_grid_dim;
unsigned char* g_dynamic_smem = nullptr;

#if defined(SDXL_EMU_TSAN)
__attribute__((no_sanitize("thread"))) uint3 thread_idx() { return g_thread->thread_idx; }
__attribute__((no_sanitize("thread"))) uint3 block_idx() { return g_block_idx; }
__attribute__((no_sanitize("thread"))) dim3 block_dim() { return g_block_dim; }
__attribute__((no_sanitize("thread"))) dim3 grid_dim() { return g_grid_dim; }
__attribute__((no_sanitize("thread"))) unsigned char* dynamic_smem_base() { return g_dynamic_smem; }
#endif

}  // namespace sdxl_emu

// Saves the callee-saved state on the current stack, stores the stack pointer to *save_sp, and continues on
// the stack load_sp (which was saved the same way, or prepared by make_stack below).
extern "C" void sdxl_emu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .p2align 4
    .globl sdxl_emu_switch
    .hidden sdxl_emu_switch
    .type sdxl_emu_switch,@function
sdxl_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size sdxl_emu_switch,.-sdxl_emu_switch
)");

namespace sdxl_emu {

namespace {

constexpr unsigned kMaxThreads = 1024;
constexpr size_t kStackBytes = 256 * 1024;

enum class State { READY, AT_BARRIER, AT_WARP, DONE, FAULTED };

struct Fiber {
    ThreadState ts{};
    void* sp = nullptr;
    State state = State::DONE;
    bool started = false;
    const char* file = nullptr;  // where it waits (barrier or collective)
    int line = 0;
    // warp collective
    Collective kind = Collective::SYNCWARP;
    unsigned mask = 0;
    uint64_t bits = 0;
    int arg = 0, width = 32;
    uint64_t result = 0;
    const void* gather_src = nullptr;  // GATHER: this lane's contribution and where all lanes' go
    void* gather_dst = nullptr;
    size_t gather_bytes = 0;
#if defined(SDXL_EMU_TSAN)
    void* tsan_fiber = nullptr;
#endif
};

// Per-warp state of the collective being gathered.
struct Warp {
    unsigned arrived = 0;  // lanes waiting
    unsigned mask = 0;     // the mask they named
    unsigned gen = 0;      // completed collectives (TSan sync tokens)
};

// Excludes the emulator's own bookkeeping from TSan's race detection (it is ordered by the fiber switches).
struct IgnoreScope {
#if defined(SDXL_EMU_TSAN)
    IgnoreScope() { __tsan_ignore_thread_begin(); }
    ~IgnoreScope() { __tsan_ignore_thread_end(); }
#else
    IgnoreScope() {}  // user-provided: a scope object, not an unused variable
    ~IgnoreScope() {}
#endif
};

struct Engine {
    Fiber fibers[kMaxThreads];
    Warp warps[kMaxThreads / 32];
    unsigned n = 0;  // threads in the block
    void* scheduler_sp = nullptr;
    char* stacks = nullptr;  // kMaxThreads stacks, each above a guard page
    size_t stride = 0;
    void (*body)(void*) = nullptr;
    void* ctx = nullptr;
    bool faulted = false;
    std::string fault;
    cudaError_t fault_code = cudaErrorLaunchFailure;
    unsigned barrier_gen = 0;
    uint64_t block_seq = 0;  // blocks run so far (TSan tokens)
    std::vector<unsigned char> smem;
#if defined(SDXL_EMU_TSAN)
    void* tsan_scheduler = nullptr;
    // Sync tokens: addresses TSan keys its release/acquire on. Barrier and warp tokens alternate by generation
    // and rotate by block, so no edge leaks between blocks; thread tokens collect each thread's end of work.
    std::vector<unsigned char> tokens = std::vector<unsigned char>(4096 * 2 * (1 + kMaxThreads / 32) + kMaxThreads);
    void* barrier_token(unsigned gen) { return &tokens[((block_seq % 4096) * 2 + (gen & 1)) * (1 + kMaxThreads / 32)]; }
    void* warp_token(unsigned w, unsigned gen) {
        return &tokens[((block_seq % 4096) * 2 + (gen & 1)) * (1 + kMaxThreads / 32) + 1 + w];
    }
    void* done_token(unsigned t) { return &tokens[4096 * 2 * (1 + kMaxThreads / 32) + t]; }
#endif
#if defined(SDXL_EMU_ASAN)
    void* asan_fake_stack = nullptr;
    const void* host_stack_bottom = nullptr;
    size_t host_stack_size = 0;
#endif
};

Engine& engine() {
    static Engine* e = new Engine();  // never destroyed: kernels may run during static destruction
    return *e;
}

// The fiber stacks, reserved once; false (and nothing reserved) when the host refuses the mapping.
bool allocate_stacks(Engine& e) {
    if (e.stacks) return true;
    const size_t page = size_t(sysconf(_SC_PAGESIZE));
    e.stride = kStackBytes + page;
    void* p = mmap(nullptr, e.stride * kMaxThreads, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (p == MAP_FAILED) return false;
    e.stacks = static_cast<char*>(p);
    for (unsigned i = 0; i < kMaxThreads; ++i) mprotect(e.stacks + i * e.stride, page, PROT_NONE);  // overflow -> SIGSEGV
    return true;
}

[[noreturn]] void fiber_main();

// A fresh stack for thread t whose first switch "returns" into fiber_main.
void* make_stack(Engine& e, unsigned t, uint32_t mxcsr, uint16_t fpcw) {
    char* top = e.stacks + (t + 1) * e.stride;  // 16-byte aligned (page aligned)
    // Frame popped by sdxl_emu_switch: [csr 8][r15 r14 r13 r12 rbx rbp][return address]; after the ret the
    // stack pointer is top - 8, as at the entry of a called function (rsp + 8 aligned to 16).
    auto* sp = reinterpret_cast<uint64_t*>(top - 72);
    std::memset(sp, 0, 72);
    std::memcpy(reinterpret_cast<char*>(sp), &mxcsr, 4);
    std::memcpy(reinterpret_cast<char*>(sp) + 4, &fpcw, 2);
    sp[7] = reinterpret_cast<uint64_t>(&fiber_main);
    return sp;
}

// Switches from the running fiber to the scheduler.
void to_scheduler(Engine& e, Fiber& f) {
#if defined(SDXL_EMU_TSAN)
    // Everything this thread did so far happens before the host's next step (acquired at the end of the block),
    // also when the block is abandoned after a fault; it orders nothing between the block's threads.
    __tsan_release(e.done_token(f.ts.linear));
    __tsan_switch_to_fiber(e.tsan_scheduler, __tsan_switch_to_fiber_no_sync);
#endif
#if defined(SDXL_EMU_ASAN)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(f.state == State::DONE || f.state == State::FAULTED ? nullptr : &fake,
                                   e.host_stack_bottom, e.host_stack_size);
#endif
    sdxl_emu_switch(&f.sp, e.scheduler_sp);
#if defined(SDXL_EMU_ASAN)
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

// Switches from the scheduler to fiber t (started or not).
__attribute__((no_sanitize("thread"))) void set_current(ThreadState* t) { g_thread = t; }

void to_fiber(Engine& e, unsigned t) {
    Fiber& f = e.fibers[t];
    set_current(&f.ts);
#if defined(SDXL_EMU_TSAN)
    // The first switch carries the launch's happens-before (the host's writes before the kernel); later ones none.
    __tsan_switch_to_fiber(f.tsan_fiber, f.started ? __tsan_switch_to_fiber_no_sync : 0);
#endif
    f.started = true;
#if defined(SDXL_EMU_ASAN)
    __sanitizer_start_switch_fiber(&e.asan_fake_stack, e.stacks + t * e.stride, e.stride);
#endif
    sdxl_emu_switch(&e.scheduler_sp, f.sp);
#if defined(SDXL_EMU_ASAN)
    __sanitizer_finish_switch_fiber(e.asan_fake_stack, &e.host_stack_bottom, &e.host_stack_size);
#endif
}

void fault(Engine& e, const std::string& what) {
    if (!e.faulted) {
        e.faulted = true;
        std::ostringstream m;
        m << what << " (block (" << g_block_idx.x << "," << g_block_idx.y << "," << g_block_idx.z << ") of grid ("
          << g_grid_dim.x << "," << g_grid_dim.y << "," << g_grid_dim.z << "), block (" << g_block_dim.x << ","
          << g_block_dim.y << "," << g_block_dim.z << "))";
        e.fault = m.str();
    }
}

std::string where(const Fiber& f) {
    std::ostringstream o;
    o << "thread (" << f.ts.thread_idx.x << "," << f.ts.thread_idx.y << "," << f.ts.thread_idx.z << ")";
    return o.str();
}

std::string site(const char* file, int line) {
    std::string s = file ? file : "?";
    const size_t slash = s.rfind('/');
    if (slash != std::string::npos) s = s.substr(slash + 1);
    return s + ":" + std::to_string(line);
}

__attribute__((no_sanitize("thread"))) Fiber& current(Engine& e) { return e.fibers[g_thread->linear]; }

[[noreturn]] void fiber_main() {
    Engine& e = engine();
#if defined(SDXL_EMU_ASAN)
    __sanitizer_finish_switch_fiber(nullptr, &e.host_stack_bottom, &e.host_stack_size);
#endif
    Fiber& f = current(e);
    try {
        e.body(e.ctx);
        IgnoreScope ignore;
        f.state = State::DONE;
    } catch (const std::exception& ex) {  // kernels do not throw; a stand-in that does is a fault
        IgnoreScope ignore;
        fault(e, std::string("exception in kernel code: ") + ex.what());
        f.state = State::FAULTED;
    } catch (...) {
        IgnoreScope ignore;
        fault(e, "exception in kernel code");
        f.state = State::FAULTED;
    }
#if defined(SDXL_EMU_TSAN)
    __tsan_release(e.done_token(f.ts.linear));
#endif
    for (;;) to_scheduler(e, f);  // a finished fiber is never resumed; if it were, it only yields again
}

const char* kind_name(Collective k) {
    switch (k) {
        case Collective::SHFL_IDX: return "__shfl_sync";
        case Collective::SHFL_UP: return "__shfl_up_sync";
        case Collective::SHFL_DOWN: return "__shfl_down_sync";
        case Collective::SHFL_XOR: return "__shfl_xor_sync";
        case Collective::SYNCWARP: return "__syncwarp";
        case Collective::BALLOT: return "__ballot_sync";
        case Collective::GATHER: return "warp_gather";
    }
    return "?";
}

// The lanes of warp w that exist (a last, partial warp has fewer than 32).
unsigned existing_lanes(const Engine& e, unsigned w) {
    const unsigned first = w * 32, count = e.n - first < 32 ? e.n - first : 32;
    return count == 32 ? 0xffffffffu : ((1u << count) - 1u);
}

// All lanes of warp w named in its mask have arrived: compute every lane's result and make them ready.
void complete_collective(Engine& e, unsigned w) {
    Warp& wp = e.warps[w];
    const unsigned base = w * 32;
    for (unsigned lane = 0; lane < 32; ++lane) {
        if (!(wp.mask >> lane & 1u)) continue;
        Fiber& f = e.fibers[base + lane];
        uint64_t r = 0;
        if (f.kind == Collective::GATHER) {
            for (unsigned l = 0; l < 32; ++l) {
                const Fiber& src = e.fibers[base + l];
                if (!(wp.mask >> l & 1u)) continue;
                if (src.gather_bytes != f.gather_bytes) {
                    fault(e, "warp_gather at " + site(f.file, f.line) + ": lanes contribute different sizes");
                    return;
                }
                std::memcpy(static_cast<char*>(f.gather_dst) + l * f.gather_bytes, src.gather_src, f.gather_bytes);
            }
        } else if (f.kind == Collective::BALLOT) {
            for (unsigned l = 0; l < 32; ++l)
                if ((wp.mask >> l & 1u) && e.fibers[base + l].bits) r |= 1ull << l;
        } else if (f.kind != Collective::SYNCWARP) {
            // The CUDA C++ shuffle rules: lanes form segments of `width`; idx wraps within the segment, up/down
            // and xor keep the caller's own value when the source falls outside (xor may reach earlier
            // segments only).
            const int width = f.width, seg = int(lane) & ~(width - 1);
            int src = int(lane);
            switch (f.kind) {
                case Collective::SHFL_IDX: src = seg + (f.arg & (width - 1)); break;
                case Collective::SHFL_UP: src = int(lane) - f.arg < seg ? int(lane) : int(lane) - f.arg; break;
                case Collective::SHFL_DOWN: src = int(lane) + f.arg >= seg + width ? int(lane) : int(lane) + f.arg; break;
                case Collective::SHFL_XOR: src = (int(lane) ^ f.arg) >= seg + width ? int(lane) : (int(lane) ^ f.arg); break;
                default: break;
            }
            if (src < 0 || src > 31 || !(wp.mask >> src & 1u)) {
                fault(e, std::string(kind_name(f.kind)) + " at " + site(f.file, f.line) + ": lane " +
                             std::to_string(lane) + " reads lane " + std::to_string(src) +
                             ", which is not in the mask (undefined on the device)");
                return;
            }
            r = e.fibers[base + unsigned(src)].bits;
        }
        f.result = r;
    }
    for (unsigned lane = 0; lane < 32; ++lane)
        if (wp.mask >> lane & 1u) e.fibers[base + lane].state = State::READY;
    wp.arrived = 0;
    wp.mask = 0;
    ++wp.gen;
}

// A block's threads until all are done; returns false on a fault (recorded in e.fault).
bool run_block(Engine& e) {
    uint32_t mxcsr = 0;
    uint16_t fpcw = 0;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fpcw));
    {
        IgnoreScope ignore;
        for (unsigned t = 0; t < e.n; ++t) {
            Fiber& f = e.fibers[t];
            f.state = State::READY;
            f.started = false;
            f.sp = make_stack(e, t, mxcsr, fpcw);
            f.ts.linear = t;
            f.ts.thread_idx = uint3{t % g_block_dim.x, (t / g_block_dim.x) % g_block_dim.y, t / (g_block_dim.x * g_block_dim.y)};
#if defined(SDXL_EMU_TSAN)
            // One TSan fiber per thread slot, kept across blocks (blocks are ordered anyway, see run_block's end).
            if (!f.tsan_fiber) f.tsan_fiber = __tsan_create_fiber(0);
#endif
        }
        for (unsigned w = 0; w < (e.n + 31) / 32; ++w) e.warps[w] = Warp{};
        e.barrier_gen = 0;
    }
    bool ok = true;
    for (;;) {
        for (unsigned t = 0; t < e.n && !e.faulted; ++t) {
            if (e.fibers[t].state != State::READY) continue;
            to_fiber(e, t);
        }
        if (e.faulted) {
            ok = false;
            break;
        }
        IgnoreScope ignore;
        unsigned done = 0, at_barrier = 0, at_warp = 0;
        const Fiber* first_barrier = nullptr;
        for (unsigned t = 0; t < e.n; ++t) {
            const Fiber& f = e.fibers[t];
            if (f.state == State::DONE) ++done;
            else if (f.state == State::AT_BARRIER) {
                ++at_barrier;
                if (!first_barrier) first_barrier = &f;
            } else if (f.state == State::AT_WARP) ++at_warp;
        }
        if (done == e.n) break;
        bool any_ready = false;
        for (unsigned t = 0; t < e.n; ++t) any_ready = any_ready || e.fibers[t].state == State::READY;
        if (any_ready) continue;  // a collective completed during the pass
        // Nobody can run: the barrier completes, or the block diverged.
        if (at_barrier == e.n) {
            for (unsigned t = 0; t < e.n; ++t) {
                const Fiber& f = e.fibers[t];
                if (f.file != first_barrier->file || f.line != first_barrier->line) {
                    fault(e, "__syncthreads divergence: " + where(*first_barrier) + " waits at " +
                                 site(first_barrier->file, first_barrier->line) + " but " + where(f) + " at " +
                                 site(f.file, f.line));
                    break;
                }
            }
            if (e.faulted) {
                ok = false;
                break;
            }
            for (unsigned t = 0; t < e.n; ++t) e.fibers[t].state = State::READY;
            ++e.barrier_gen;
            continue;
        }
        std::ostringstream m;
        if (at_barrier > 0 && done > 0) {
            m << "__syncthreads at " << site(first_barrier->file, first_barrier->line) << ": " << at_barrier
              << " thread(s) wait while " << done << " thread(s) of the block have exited (e.g. ";
            for (unsigned t = 0; t < e.n; ++t)
                if (e.fibers[t].state == State::DONE) {
                    m << where(e.fibers[t]);
                    break;
                }
            m << ")";
        } else {
            m << "deadlock: ";
            if (at_barrier) m << at_barrier << " thread(s) at __syncthreads " << site(first_barrier->file, first_barrier->line) << "; ";
            for (unsigned t = 0; t < e.n; ++t) {
                const Fiber& f = e.fibers[t];
                if (f.state != State::AT_WARP) continue;
                const unsigned w = t / 32;
                m << where(f) << " waits at " << kind_name(f.kind) << " " << site(f.file, f.line) << " for lanes 0x"
                  << std::hex << (e.warps[w].mask & ~e.warps[w].arrived) << std::dec
                  << " of its warp, which are elsewhere or have exited";
                break;
            }
        }
        fault(e, m.str());
        ok = false;
        break;
    }
#if defined(SDXL_EMU_TSAN)
    for (unsigned t = 0; t < e.n; ++t) {
        // The block before the next one: one block's shared memory (static __shared__ is one instance here) is
        // the next block's, which on a GPU would be a different SM's; without this edge that reuse would look
        // like a race. So races between blocks of one grid are not reported, only those inside a block.
        __tsan_acquire(e.done_token(t));
    }
#endif
    return ok;
}

}  // namespace

void kernel_fault(cudaError_t code, const std::string& what) {
    Engine& e = engine();
    Fiber& f = current(e);
    {
        IgnoreScope ignore;
        if (!e.faulted) e.fault_code = code;
        fault(e, what + " by " + where(f));
        f.state = State::FAULTED;
    }
    for (;;) to_scheduler(e, f);  // a faulted thread is never resumed; if it were, it only yields again
}

void syncthreads_at(const char* file, int line) {
    Engine& e = engine();
    Fiber& f = current(e);
    {
        IgnoreScope ignore;
        f.state = State::AT_BARRIER;
        f.file = file;
        f.line = line;
    }
#if defined(SDXL_EMU_TSAN)
    void* token = e.barrier_token(e.barrier_gen);
    __tsan_release(token);
#endif
    to_scheduler(e, f);
#if defined(SDXL_EMU_TSAN)
    __tsan_acquire(token);
#endif
}

namespace {
uint64_t collective(Collective kind, unsigned mask, uint64_t bits, int lane_arg, int width, const char* file, int line,
                    const void* gather_src, void* gather_dst, size_t gather_bytes);
}  // namespace

uint64_t warp_collective(Collective kind, unsigned mask, uint64_t bits, int lane_arg, int width, const char* file,
                         int line) {
    return collective(kind, mask, bits, lane_arg, width, file, line, nullptr, nullptr, 0);
}

void warp_gather(unsigned mask, const void* mine, size_t bytes, void* all, const char* file, int line) {
    (void)collective(Collective::GATHER, mask, 0, 0, 32, file, line, mine, all, bytes);
}

namespace {
uint64_t collective(Collective kind, unsigned mask, uint64_t bits, int lane_arg, int width, const char* file, int line,
                    const void* gather_src, void* gather_dst, size_t gather_bytes) {
    Engine& e = engine();
    Fiber& f = current(e);
    const unsigned t = f.ts.linear, w = t / 32, lane = t % 32;
#if defined(SDXL_EMU_TSAN)
    void* token = nullptr;
#endif
    {
        IgnoreScope ignore;
        Warp& wp = e.warps[w];
        std::string bad;
        if (!(mask >> lane & 1u)) {
            bad = "the calling lane " + std::to_string(lane) + " is not in the mask";
        } else if (mask & ~existing_lanes(e, w)) {
            bad = "the mask names lanes that do not exist in this block's last warp";
        } else if (width < 1 || width > 32 || (width & (width - 1))) {
            bad = "width " + std::to_string(width) + " is not a power of two in [1, 32]";
        } else if (wp.arrived && wp.mask != mask) {
            std::ostringstream m;
            m << "lanes of one warp disagree on the mask (0x" << std::hex << wp.mask << " vs 0x" << mask << ")";
            bad = m.str();
        } else {
            for (unsigned l = 0; l < 32; ++l) {
                if ((mask >> l & 1u) && e.fibers[w * 32 + l].state == State::DONE) {
                    bad = "lane " + std::to_string(l) + " of the mask has exited";
                    break;
                }
            }
        }
        if (!bad.empty()) {
            fault(e, std::string(kind_name(kind)) + " at " + site(file, line) + " by " + where(f) + ": " + bad +
                         " (undefined on the device)");
            f.state = State::FAULTED;
        } else {
            f.kind = kind;
            f.mask = mask;
            f.bits = bits;
            f.arg = lane_arg;
            f.width = width;
            f.file = file;
            f.line = line;
            f.gather_src = gather_src;
            f.gather_dst = gather_dst;
            f.gather_bytes = gather_bytes;
            f.state = State::AT_WARP;
            wp.mask = mask;
            wp.arrived |= 1u << lane;
#if defined(SDXL_EMU_TSAN)
            if (kind == Collective::SYNCWARP) token = e.warp_token(w, wp.gen);
#endif
        }
    }
#if defined(SDXL_EMU_TSAN)
    if (token) __tsan_release(token);
#endif
    {
        IgnoreScope ignore;
        Warp& wp = e.warps[w];
        if (f.state == State::AT_WARP && wp.arrived == wp.mask) complete_collective(e, w);
    }
    // Wait until the collective completes (the last lane to arrive completes it and goes on at once).
    while (f.state != State::READY) to_scheduler(e, f);
#if defined(SDXL_EMU_TSAN)
    if (token) __tsan_acquire(token);
#endif
    IgnoreScope ignore;
    return f.result;
}
}  // namespace

namespace {
// The launch's configuration against the device's limits (lock held).
cudaError_t check_launch(const void* kernel, dim3 grid, dim3 block, size_t dynamic_smem) {
    std::ostringstream cfg;
    cfg << "grid (" << grid.x << "," << grid.y << "," << grid.z << "), block (" << block.x << "," << block.y << ","
        << block.z << ")";
    const uint64_t threads = uint64_t(block.x) * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 || block.y == 0 || block.z == 0 ||
        block.x > 1024 || block.y > 1024 || block.z > 64 || threads > kMaxThreads || grid.x > 2147483647u ||
        grid.y > 65535 || grid.z > 65535) {
        set_error(cudaErrorInvalidConfiguration,
                  "invalid configuration argument: kernel launch with " + cfg.str() +
                      " (limits: 1024 threads per block, block (1024,1024,64), grid (2^31-1,65535,65535))",
                  false);
        return cudaErrorInvalidConfiguration;
    }
    const size_t limit = max_dynamic_smem(kernel);
    if (dynamic_smem > limit) {
        set_error(cudaErrorInvalidValue,
                  "invalid argument: kernel launch with " + std::to_string(dynamic_smem) +
                      " bytes of dynamic shared memory, above the kernel's limit of " + std::to_string(limit) +
                      (limit == kDefaultSmem ? " (more than 48 KB needs cudaFuncSetAttribute("
                                               "cudaFuncAttributeMaxDynamicSharedMemorySize))"
                                             : ""),
                  false);
        return cudaErrorInvalidValue;
    }
    return cudaSuccess;
}
}  // namespace

cudaError_t submit_grid(const void* kernel, dim3 grid, dim3 block, size_t dynamic_smem, cudaStream_t stream,
                        void (*body)(void*), std::shared_ptr<void> ctx) {
    std::lock_guard<std::recursive_mutex> lock(device_lock());
    if (const cudaError_t sticky = sticky_error(); sticky != cudaSuccess) return sticky;
    if (!stream_valid(stream)) {  // one in-order device: every valid stream runs in issue order
        set_error(cudaErrorInvalidResourceHandle, "invalid resource handle: kernel launch on a destroyed stream", false);
        return cudaErrorInvalidResourceHandle;
    }
    if (const cudaError_t e = check_launch(kernel, grid, block, dynamic_smem); e != cudaSuccess) return e;
    // The node runs on whatever stream the graph is launched on: the capturing stream may be gone by then.
    return enqueue(stream, "kernel launch", [=] { return run_grid(kernel, grid, block, dynamic_smem, nullptr, body, ctx.get()); });
}

cudaError_t run_grid(const void* kernel, dim3 grid, dim3 block, size_t dynamic_smem, cudaStream_t stream,
                     void (*body)(void*), void* ctx) {
    std::lock_guard<std::recursive_mutex> lock(device_lock());
    if (const cudaError_t sticky = sticky_error(); sticky != cudaSuccess) return sticky;
    if (!stream_valid(stream)) {
        set_error(cudaErrorInvalidResourceHandle, "invalid resource handle: kernel launch on a destroyed stream", false);
        return cudaErrorInvalidResourceHandle;
    }
    if (const cudaError_t e = check_launch(kernel, grid, block, dynamic_smem); e != cudaSuccess) return e;
    const uint64_t threads = uint64_t(block.x) * block.y * block.z;
    Engine& e = engine();
    if (!allocate_stacks(e)) {
        set_error(cudaErrorLaunchOutOfResources, "too many resources requested for launch: the emulator cannot "
                  "reserve its fiber stacks (mmap failed)", false);
        return cudaErrorLaunchOutOfResources;
    }
#if defined(SDXL_EMU_TSAN)
    e.tsan_scheduler = __tsan_get_current_fiber();
#endif
    e.body = body;
    e.ctx = ctx;
    e.n = unsigned(threads);
    e.faulted = false;
    e.fault.clear();
    e.fault_code = cudaErrorLaunchFailure;
    e.smem.assign(dynamic_smem + 16, 0xFF);  // fresh per launch and block (below); 0xFF bytes read as NaN
    g_grid_dim = grid;
    g_block_dim = block;
    bool ok = true;
    for (unsigned z = 0; z < grid.z && ok; ++z) {
        for (unsigned y = 0; y < grid.y && ok; ++y) {
            for (unsigned x = 0; x < grid.x && ok; ++x) {
                g_block_idx = uint3{x, y, z};
                std::memset(e.smem.data(), 0xFF, e.smem.size());
                g_dynamic_smem = e.smem.data();
                ok = run_block(e);
                ++e.block_seq;
            }
        }
    }
    g_thread = nullptr;
    if (!ok) {
        const char* what = e.fault_code == cudaErrorLaunchFailure ? "unspecified launch failure: " : "";
        set_error(e.fault_code, what + e.fault, true);
        return e.fault_code;
    }
    return check_redzones() ? cudaSuccess : sticky_error();  // an overrun is charged to the kernel that made it
}

}  // namespace sdxl_emu
