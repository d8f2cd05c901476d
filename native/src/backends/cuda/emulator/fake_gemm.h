// The GEMM core that the fake cuBLAS (fake_cublas.cpp) and the fake cuBLASLt (fake_cublaslt.cpp) share: input
// rounding for the _FAST compute types, packing op(X) into fp32 panels, the fp32 accumulation in order of
// increasing k, and the device-pointer checks that make a bad operand look like a faulting kernel.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>

#include "backends/cuda/emulator/emu_runtime.h"
#include "backends/cuda/emulator/fake_common.h"
#include "core/half.h"

namespace sdxl_emu {

// How the inputs are rounded before multiplying (the _FAST compute types).
enum class InputRounding { None, TF32, F16, BF16 };

// TF32 keeps fp32's sign and 8-bit exponent and 10 of its 23 mantissa bits. The PTX ISA's only float->tf32
// conversion (cvt.rna.tf32.f32) rounds to nearest, ties away from zero; Inf and NaN pass through.
inline float round_tf32(float f) {
    uint32_t u = sdxl::float_bits(f);
    if ((u & 0x7f800000u) == 0x7f800000u) return f;
    u = (u + 0x1000u) & 0xffffe000u;  // add half an ulp of the 13 dropped bits to the magnitude, truncate
    return sdxl::bits_float(u);
}

inline void round_inputs(float* p, size_t count, InputRounding r) {
    switch (r) {
        case InputRounding::None: return;
        case InputRounding::TF32:
            for (size_t i = 0; i < count; ++i) p[i] = round_tf32(p[i]);
            return;
        case InputRounding::F16:
            for (size_t i = 0; i < count; ++i) p[i] = sdxl::f16_to_f32(sdxl::f32_to_f16(p[i]));
            return;
        case InputRounding::BF16:
            for (size_t i = 0; i < count; ++i) p[i] = sdxl::bf16_to_f32(sdxl::f32_to_bf16(p[i]));
            return;
    }
}

// op(X), a rows x cols matrix, as a packed column-major float panel: dst[c * rows + r] = op(X)(r, c).
// X is column-major with leading dimension ld; trans: op(X) = X^T (CUBLAS_OP_T and, for real data, CUBLAS_OP_C).
template <typename T, typename Conv>
void fill_panel_t(float* dst, const T* src, bool trans, int64_t rows, int64_t cols, int64_t ld, Conv conv) {
    if (!trans) {
        for (int64_t c = 0; c < cols; ++c) {
            const T* s = src + c * ld;
            float* d = dst + c * rows;
            for (int64_t r = 0; r < rows; ++r) d[r] = conv(s[r]);
        }
    } else {  // op(X)(r, c) = X(c, r) = src[c + r * ld]: read rows of op(X) contiguously
        for (int64_t r = 0; r < rows; ++r) {
            const T* s = src + r * ld;
            for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = conv(s[c]);
        }
    }
}

inline void fill_panel(float* dst, const void* src, Ty t, bool trans, int64_t rows, int64_t cols, int64_t ld) {
    switch (t) {
        case Ty::F32:
            fill_panel_t(dst, static_cast<const float*>(src), trans, rows, cols, ld, [](float v) { return v; });
            return;
        case Ty::F16:
            fill_panel_t(dst, static_cast<const uint16_t*>(src), trans, rows, cols, ld,
                         [](uint16_t v) { return sdxl::f16_to_f32(v); });
            return;
        case Ty::BF16:
            fill_panel_t(dst, static_cast<const uint16_t*>(src), trans, rows, cols, ld,
                         [](uint16_t v) { return sdxl::bf16_to_f32(v); });
            return;
    }
}

// acc (m x n, packed column-major) += Af (m x k, packed column-major) * Bf (k x n, packed column-major).
// Blocked for the cache; every output element still sums its k products in order p = 0, 1, ..., k - 1, in fp32.
inline void gemm_accumulate(int64_t m, int64_t n, int64_t k, const float* __restrict Af, const float* __restrict Bf,
                     float* __restrict acc) {
    constexpr int64_t NB = 32, KB = 128, MB = 256;
    for (int64_t j0 = 0; j0 < n; j0 += NB) {
        const int64_t j1 = std::min(n, j0 + NB);
        for (int64_t p0 = 0; p0 < k; p0 += KB) {
            const int64_t p1 = std::min(k, p0 + KB);
            for (int64_t i0 = 0; i0 < m; i0 += MB) {
                const int64_t mb = std::min(m, i0 + MB) - i0;
                for (int64_t j = j0; j < j1; ++j) {
                    float* __restrict c = acc + j * m + i0;
                    const float* __restrict b = Bf + j * k;
                    for (int64_t p = p0; p < p1; ++p) {
                        const float bv = b[p];
                        const float* __restrict a = Af + p * m + i0;
                        for (int64_t i = 0; i < mb; ++i) c[i] += a[i] * bv;
                    }
                }
            }
        }
    }
}

// Checks that [p, p + bytes) is live device memory; otherwise reports an illegal address naming the call and
// the operand, as a faulting kernel would.
inline bool device_ok(const char* call, const char* operand, const void* p, size_t bytes,
                      const std::string& extent) {
    std::string why;
    if (sdxl_emu::device_range_ok(p, bytes, &why)) return true;
    std::ostringstream msg;
    msg << call << ": operand " << operand << " (" << extent << ", " << bytes << " bytes from " << p
        << ") is not valid device memory: " << why;
    sdxl_emu::report_device_error(700 /* cudaErrorIllegalAddress */, msg.str());
    return false;
}

// alpha/beta as the libraries read them: __half for CUBLAS_COMPUTE_16F, float otherwise (the scale type).
inline float read_scalar(const void* p, bool half) {
    if (half) {
        uint16_t h;
        std::memcpy(&h, p, 2);
        return sdxl::f16_to_f32(h);
    }
    float f;
    std::memcpy(&f, p, 4);
    return f;
}

// The element range one operand touches over all batches: the batch-0 matrix spans [0, span) elements; batch i
// starts at i * stride (stride may be 0, broadcasting, or negative). Returns the lowest offset and the byte count.
inline void operand_extent(int64_t span, int64_t stride, int64_t batch, size_t elem, int64_t* lo, size_t* bytes) {
    const int64_t last = (batch - 1) * stride;
    const int64_t low = std::min<int64_t>(0, last), high = std::max<int64_t>(0, last) + span;
    *lo = low;
    *bytes = size_t(high - low) * elem;
}

}  // namespace sdxl_emu
