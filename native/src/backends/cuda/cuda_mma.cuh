// Tensor-core building blocks for sm_80+ kernels: every PTX instruction the backend's tensor-core code uses sits
// behind one of these small device functions, so that the same kernel source runs on a GPU and on the CPU SIMT
// emulator (emulator/emu_simt.h).
//
//   ldmatrix_x4(r, row)            ldmatrix.sync.aligned.m8n8.x4.shared.b16        four 8x8 b16 matrices
//   ldmatrix_x4_trans(r, row)      ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16  the same, transposed
//   mma_m16n8k16<T>(acc, a, b0, b1) mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32, acc += A B
//   cp_async_16(dst, src, valid)   cp.async.cg.shared.global [dst], [src], 16, (valid ? 16 : 0)
//   cp_async_commit()              cp.async.commit_group
//   cp_async_wait<N>()             cp.async.wait_group N
//   pack2<T>(lo, hi)               two floats rounded to nearest-even f16/bf16 in one .b32 (lo in bits 0-15)
//
// Under nvcc they are inline asm (intrinsics for pack2). In the emulator build (SDXL_CUDA_EMULATOR) they are C++
// that follows the PTX ISA's documented fragment layouts exactly and warp-collectively, through
// sdxl_emu::warp_gather (every lane contributes bytes, every lane receives all 32 lanes' contributions):
//  * mma (PTX ISA 9.7.14.5.8 "Matrix Fragments for mma.m16n8k16 with floating point type"): each lane
//    contributes its A and B registers; every lane reads the 16x16 A and 16x8 B out of all 32 lanes' fragments
//    through the documented element maps (a_element, b_element below; inverted once into FragmentMaps, which
//    checks that they cover each matrix exactly once) -- the two rows of A and two columns of B it needs -- and
//    computes its own four D elements (c_element) as C + sum_k A[row][k] B[k][col] in fp32, k ascending (the
//    products of two f16 or two bf16 are exact in fp32; the hardware's summation order and internal precision
//    are not documented and may differ in the last bits). A lane's C never leaves the lane: D element i lies
//    where C element i does.
//  * ldmatrix (9.7.14.5.15 "Warp-level matrix load instruction: ldmatrix"): each lane contributes its row
//    address (lanes 8m..8m+7 give rows 0-7 of matrix m); lane l receives in register m the elements
//    (row l / 4, cols 2 (l % 4), 2 (l % 4) + 1) of matrix m, or with .trans those of its transpose,
//    (rows 2 (l % 4) and 2 (l % 4) + 1, col l / 4). Rows must be 16-byte aligned (checked).
//  * cp.async: a synchronous 16-byte copy (bytes past src-size, here all 16 when !valid, are zero-filled as
//    the PTX ISA specifies); commit_group / wait_group are no-ops. The emulator therefore cannot test the
//    asynchrony: a kernel that reads a buffer before waiting for its group passes here and fails on a GPU
//    (the barriers around the waits are still checked). Addresses must be 16-byte aligned (checked).
// A misaligned address fails the launch with cudaErrorMisalignedAddress in the emulator, as on a GPU.
//
// Conventions: blocks are 1-D (lane = threadIdx.x % 32); all 32 lanes of the warp call each warp-wide wrapper
// (ldmatrix, mma: .sync.aligned), as the PTX ISA requires and the emulator checks. Shared-memory pointers are
// generic pointers (converted with __cvta_generic_to_shared under nvcc).
#pragma once

#include <cstdint>

#if defined(SDXL_CUDA_EMULATOR)
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backends/cuda/emulator/emu_simt.h"
#include "core/half.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace sdxl::cuda::mma {

// The 16-bit multiplicand type of an mma (the accumulator is always f32 here).
enum class MmaType { F16, BF16 };

// Fragments of one m16n8k16 (PTX names): A 16x16 row-major in four .b32 (a0..a7), B 16x8 column-major in two
// .b32 (b0..b3), C/D 16x8 f32 in four floats (c0..c3). Element i of a .b32 pair lies in register i / 2, low
// half first.

__device__ __forceinline__ int lane_id() { return int(threadIdx.x % 32); }

#if !defined(SDXL_CUDA_EMULATOR)
// ============================================================================================ nvcc: PTX

__device__ __forceinline__ uint32_t shared_address(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(shared_address(row)));
}

template <MmaType T>
__device__ __forceinline__ void mma_m16n8k16(float (&acc)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    if constexpr (T == MmaType::F16) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                     "{%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
                     "{%8, %9}, {%0, %1, %2, %3};\n"
                     : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
}

// src-size 0 reads nothing and zero-fills the 16 bytes (rows past the end of a tensor); src must still be a
// valid address for the instruction's form, so callers pass an in-bounds one.
__device__ __forceinline__ void cp_async_16(void* dst, const void* src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(dst)), "l"(src),
                 "r"(valid ? 16 : 0)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

// Waits until at most N of this thread's committed groups are pending (other threads' copies need a barrier).
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

template <MmaType T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    if constexpr (T == MmaType::F16) {
        const __half2 h = __floats2half2_rn(lo, hi);  // .x (low half) = lo
        return *reinterpret_cast<const uint32_t*>(&h);
    } else {
        const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<const uint32_t*>(&h);
    }
}

#else
// ============================================================================================ emulator: C++

namespace emu {

// Element i of a lane's fragment -> (row, col) of its matrix, as PTX ISA 9.7.14.5.8 writes them.
struct RowCol {
    int row, col;
};
inline RowCol a_element(int lane, int i) {  // A 16x16, i = 0..7
    const int group = lane >> 2, in_group = lane % 4;
    const int row = (i < 2 || (i >= 4 && i < 6)) ? group : group + 8;
    const int col = in_group * 2 + (i & 1) + (i >= 4 ? 8 : 0);
    return {row, col};
}
inline RowCol b_element(int lane, int i) {  // B 16x8 (rows = k), i = 0..3
    const int group = lane >> 2, in_group = lane % 4;
    return {in_group * 2 + (i & 1) + (i >= 2 ? 8 : 0), group};
}
inline RowCol c_element(int lane, int i) {  // C/D 16x8, i = 0..3
    const int group = lane >> 2, in_group = lane % 4;
    return {i < 2 ? group : group + 8, in_group * 2 + (i & 1)};
}

// Where each element of A and B lives: (lane, element index), built once from a_element / b_element; the
// maps must cover each matrix exactly once (checked, so a wrong map fails loudly).
struct Slot {
    int lane, element;
};
struct FragmentMaps {
    Slot a[16][16];
    Slot b[16][8];
    bool ok = true;  // false: the maps are wrong (an emulator bug), every mma then faults
    FragmentMaps() {
        int a_hits[16][16] = {}, b_hits[16][8] = {};
        for (int lane = 0; lane < 32; ++lane) {
            for (int i = 0; i < 8; ++i) {
                const RowCol e = a_element(lane, i);
                if (e.row < 0 || e.row >= 16 || e.col < 0 || e.col >= 16) {
                    ok = false;
                    return;
                }
                a[e.row][e.col] = {lane, i};
                ++a_hits[e.row][e.col];
            }
            for (int i = 0; i < 4; ++i) {
                const RowCol e = b_element(lane, i);
                if (e.row < 0 || e.row >= 16 || e.col < 0 || e.col >= 8) {
                    ok = false;
                    return;
                }
                b[e.row][e.col] = {lane, i};
                ++b_hits[e.row][e.col];
            }
        }
        for (int r = 0; r < 16; ++r)
            for (int c = 0; c < 16; ++c)
                if (a_hits[r][c] != 1 || (c < 8 && b_hits[r][c] != 1)) ok = false;
    }
};
inline const FragmentMaps& fragment_maps() {
    static const FragmentMaps maps;
    return maps;
}

[[noreturn]] inline void misaligned(const char* what, const void* p) {
    char msg[160];
    std::snprintf(msg, sizeof msg, "misaligned address: %s: address %p is not 16-byte aligned", what, p);
    ::sdxl_emu::kernel_fault(cudaErrorMisalignedAddress, msg);
}

template <MmaType T>
inline float widen(uint16_t bits) {
    return T == MmaType::F16 ? f16_to_f32(bits) : bf16_to_f32(bits);
}

inline uint16_t half_of(uint32_t reg, int i) { return uint16_t(i % 2 ? reg >> 16 : reg & 0xffffu); }

inline uint16_t load_b16(const unsigned char* p) {
    uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// The warp's four 8x8 matrices: lane l receives register m from the rows whose addresses lanes 8m..8m+7 gave.
inline void ldmatrix_x4(uint32_t (&r)[4], const void* row, bool trans, const char* file, int line) {
    if (reinterpret_cast<uintptr_t>(row) % 16) misaligned("ldmatrix", row);
    const unsigned char* mine = static_cast<const unsigned char*>(row);
    const unsigned char* rows[32];
    ::sdxl_emu::warp_gather(0xffffffffu, &mine, sizeof mine, rows, file, line);
    const int lane = lane_id(), group = lane >> 2, in_group = lane % 4;
    for (int m = 0; m < 4; ++m) {
        const unsigned char* const* matrix = rows + 8 * m;
        uint16_t lo, hi;
        if (!trans) {  // row `group`, cols 2 in_group and 2 in_group + 1
            lo = load_b16(matrix[group] + 2 * (2 * in_group));
            hi = load_b16(matrix[group] + 2 * (2 * in_group + 1));
        } else {  // the transpose's row `group` = col `group` of rows 2 in_group and 2 in_group + 1
            lo = load_b16(matrix[2 * in_group] + 2 * group);
            hi = load_b16(matrix[2 * in_group + 1] + 2 * group);
        }
        r[m] = uint32_t(lo) | uint32_t(hi) << 16;
    }
}

}  // namespace emu

inline void ldmatrix_x4(uint32_t (&r)[4], const void* row, const char* file = __builtin_FILE(),
                        int line = __builtin_LINE()) {
    emu::ldmatrix_x4(r, row, false, file, line);
}

inline void ldmatrix_x4_trans(uint32_t (&r)[4], const void* row, const char* file = __builtin_FILE(),
                              int line = __builtin_LINE()) {
    emu::ldmatrix_x4(r, row, true, file, line);
}

template <MmaType T>
inline void mma_m16n8k16(float (&acc)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1,
                         const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    struct Operands {
        uint32_t a[4];
        uint32_t b[2];
    };
    const Operands mine{{a[0], a[1], a[2], a[3]}, {b0, b1}};
    Operands all[32];
    ::sdxl_emu::warp_gather(0xffffffffu, &mine, sizeof mine, all, file, line);
    // The rows of A and columns of B this lane's D elements need, element by element from the lane and register
    // the documented maps put them in.
    const emu::FragmentMaps& maps = emu::fragment_maps();
    if (!maps.ok) ::sdxl_emu::kernel_fault(cudaErrorLaunchFailure, "the emulated mma fragment maps do not cover A and B exactly once");
    const int lane = lane_id();
    for (int i = 0; i < 4; ++i) {
        const emu::RowCol e = emu::c_element(lane, i);
        float d = acc[i];
        for (int k = 0; k < 16; ++k) {
            const emu::Slot sa = maps.a[e.row][k], sb = maps.b[k][e.col];
            const float x = emu::widen<T>(emu::half_of(all[sa.lane].a[sa.element / 2], sa.element));
            const float y = emu::widen<T>(emu::half_of(all[sb.lane].b[sb.element / 2], sb.element));
            d += x * y;
        }
        acc[i] = d;
    }
}

inline void cp_async_16(void* dst, const void* src, bool valid) {
    if (reinterpret_cast<uintptr_t>(dst) % 16) emu::misaligned("cp.async (shared)", dst);
    if (reinterpret_cast<uintptr_t>(src) % 16) emu::misaligned("cp.async (global)", src);
    if (valid) std::memcpy(dst, src, 16);
    else std::memset(dst, 0, 16);
}

inline void cp_async_commit() {}

template <int N>
inline void cp_async_wait() {}

template <MmaType T>
inline uint32_t pack2(float lo, float hi) {
    const uint16_t l = T == MmaType::F16 ? f32_to_f16(lo) : f32_to_bf16(lo);
    const uint16_t h = T == MmaType::F16 ? f32_to_f16(hi) : f32_to_bf16(hi);
    return uint32_t(l) | uint32_t(h) << 16;
}

#endif

}  // namespace sdxl::cuda::mma
