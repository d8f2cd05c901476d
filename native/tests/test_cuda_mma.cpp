// The tensor-core wrappers of backends/cuda/cuda_mma.cuh alone, one warp at a time, on the SIMT emulator, so that a
// wrong fragment layout fails here rather than only inside the attention kernel. The expectations are written
// from the PTX ISA independently of the emulator's code (which maps fragment element -> matrix position): here
// matrix position -> (lane, register, half), as the ISA's figures draw it:
//  * ldmatrix (9.7.14.5.15): row r of matrix m comes from the address of lane 8 m + r; the b16 pair
//    (row r, cols 2 w, 2 w + 1) lands in register m of lane 4 r + w (of the transposed matrix with .trans);
//  * mma.m16n8k16 f16/bf16 (9.7.14.5.8): A (row, col) in lane 4 (row % 8) + (col % 8) / 2, register
//    2 (col / 8) + row / 8, half col % 2; B (k, n) in lane 4 n + (k % 8) / 2, register k / 8, half k % 2;
//    C/D (row, n) in lane 4 (row % 8) + n / 2, element 2 (row / 8) + n % 2.
// Values are small multiples of 1/2, so every product and sum is exact in fp32 and results compare bit-exactly.
// Emulator build only: under nvcc these wrappers are PTX, checked on a GPU by the attention tests
// (test_cuda_attention.cpp, test_cuda_attention_mma) through the kernel that uses them.
#include <cstdint>
#include <cstring>
#include <iostream>
#include <vector>

#include "check.h"
#include "core/half.h"

#if defined(SDXL_CUDA_EMULATOR)
#include <cuda_runtime.h>

#include "backends/cuda/cuda_launch.cuh"
#include "backends/cuda/cuda_mma.cuh"

using namespace sdxl;
using namespace sdxl::cuda::mma;
using sdxl::cuda::launch;

namespace {

// ---- kernels (one warp; dynamic shared memory, which the emulator fills with 0xFF bytes)

constexpr int kPitch = 24;  // elements per shared row in the kernels below (48 bytes: 16-byte aligned rows)

// Four 8x8 b16 matrices from `src` ([4][8][8]) into shared memory with rows scattered (row r of matrix m at
// shared row 4 r + 3 - m: neither contiguous nor in matrix order), then ldmatrix.x4 (.trans): out [32 lanes][4].
template <bool kTrans>
__global__ void ldmatrix_kernel(const uint16_t* src, uint32_t* out) {
    SDXL_DYNAMIC_SHARED(uint4, smem_raw);
    uint16_t* const sm = reinterpret_cast<uint16_t*>(smem_raw);
    const int lane = int(threadIdx.x);
    for (int i = lane; i < 4 * 64; i += 32) {
        const int m = i / 64, r = (i / 8) % 8, c = i % 8;
        sm[(4 * r + 3 - m) * kPitch + c] = src[i];
    }
    __syncthreads();
    const int m = lane / 8, r = lane % 8;
    uint32_t reg[4];
    if (kTrans) ldmatrix_x4_trans(reg, sm + (4 * r + 3 - m) * kPitch);
    else ldmatrix_x4(reg, sm + (4 * r + 3 - m) * kPitch);
    for (int i = 0; i < 4; ++i) out[lane * 4 + i] = reg[i];
}

// One mma on fragments given per lane: d = c + a b (a [32][4], b [32][2], c and d [32][4]).
template <MmaType T>
__global__ void mma_kernel(const uint32_t* a, const uint32_t* b, const float* c, float* d) {
    const int lane = int(threadIdx.x);
    const uint32_t af[4] = {a[lane * 4], a[lane * 4 + 1], a[lane * 4 + 2], a[lane * 4 + 3]};
    float acc[4] = {c[lane * 4], c[lane * 4 + 1], c[lane * 4 + 2], c[lane * 4 + 3]};
    mma_m16n8k16<T>(acc, af, b[lane * 2], b[lane * 2 + 1]);
    for (int i = 0; i < 4; ++i) d[lane * 4 + i] = acc[i];
}

// The attention kernel's pattern end to end: x [16][16] (A), kt [16 n][16 k] (B stored n-major, as K) and
// v [16 k][16 n] (B stored k-major, as V), all row-major, copied to shared memory with cp.async (plus a 17th
// row of each with src-size 0, which must come back as zeros); A by ldmatrix, B by ldmatrix from kt and by
// ldmatrix.trans from v. out: [2][16][16] = x kt^T, x v (fp32, from the C fragments), then the 3 zero rows.
template <MmaType T>
__global__ void ldmatrix_mma_kernel(const uint16_t* x, const uint16_t* kt, const uint16_t* v, float* out) {
    SDXL_DYNAMIC_SHARED(uint4, smem_raw);
    uint16_t* const sx = reinterpret_cast<uint16_t*>(smem_raw);
    uint16_t* const sk = sx + 17 * kPitch;
    uint16_t* const sv = sk + 17 * kPitch;
    const int lane = int(threadIdx.x);
    for (int i = lane; i < 17 * 2; i += 32) {  // 17 rows x 2 chunks of 8 elements per matrix
        const int r = i / 2, chunk = i % 2;
        const bool valid = r < 16;
        const int src = (valid ? r : 0) * 16 + chunk * 8;
        cp_async_16(sx + r * kPitch + chunk * 8, x + src, valid);
        cp_async_16(sk + r * kPitch + chunk * 8, kt + src, valid);
        cp_async_16(sv + r * kPitch + chunk * 8, v + src, valid);
    }
    cp_async_commit();
    cp_async_wait<0>();
    __syncthreads();

    uint32_t a[4], bk[4], bv[4];
    ldmatrix_x4(a, sx + (lane % 16) * kPitch + (lane / 16) * 8);
    ldmatrix_x4(bk, sk + ((lane / 16) * 8 + lane % 8) * kPitch + ((lane / 8) % 2) * 8);
    ldmatrix_x4_trans(bv, sv + (((lane / 8) % 2) * 8 + lane % 8) * kPitch + (lane / 16) * 8);
    float dk[2][4] = {}, dv[2][4] = {};
    for (int t = 0; t < 2; ++t) {  // n-tiles 0-7 and 8-15
        mma_m16n8k16<T>(dk[t], a, bk[2 * t], bk[2 * t + 1]);
        mma_m16n8k16<T>(dv[t], a, bv[2 * t], bv[2 * t + 1]);
    }
    const int group = lane / 4, in_group = lane % 4;
    for (int t = 0; t < 2; ++t)
        for (int i = 0; i < 4; ++i) {
            const int row = group + 8 * (i / 2), col = 8 * t + 2 * in_group + i % 2;
            out[row * 16 + col] = dk[t][i];
            out[256 + row * 16 + col] = dv[t][i];
        }
    for (int i = lane; i < 3 * 16; i += 32) {
        const uint16_t* zero_row = (i < 16 ? sx : i < 32 ? sk : sv) + 16 * kPitch;
        out[512 + i] = float(zero_row[i % 16]);  // bits, 0 when zero-filled (0xFFFF otherwise)
    }
}

// ---- host helpers

template <typename T>
T* to_device(const std::vector<T>& h) {
    void* p = nullptr;
    if (cudaMalloc(&p, h.size() * sizeof(T)) != cudaSuccess) return nullptr;
    cudaMemcpy(p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
    return static_cast<T*>(p);
}

template <typename T>
std::vector<T> to_host(const T* d, size_t n) {
    std::vector<T> h(n);
    cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
}

// Deterministic multiples of 1/2 in [-4, 4], exact in f16 and bf16.
float half_step(uint32_t i, uint32_t salt) {
    const uint32_t h = (i + 1) * 2654435761u ^ (salt * 40503u);
    return float(int((h >> 13) % 17) - 8) * 0.5f;
}

uint16_t to_bits(MmaType t, float x) { return t == MmaType::F16 ? f32_to_f16(x) : f32_to_bf16(x); }

const char* name(MmaType t) { return t == MmaType::F16 ? "f16" : "bf16"; }

template <MmaType T>
void check_mma_layout() {
    constexpr MmaType kType = T;
    float A[16][16], B[16][8], C[16][8];
    for (int r = 0; r < 16; ++r)
        for (int c = 0; c < 16; ++c) A[r][c] = half_step(uint32_t(r * 16 + c), 1);
    for (int k = 0; k < 16; ++k)
        for (int n = 0; n < 8; ++n) B[k][n] = half_step(uint32_t(k * 8 + n), 2);
    for (int r = 0; r < 16; ++r)
        for (int n = 0; n < 8; ++n) C[r][n] = half_step(uint32_t(r * 8 + n), 3) * 4.0f;
    std::vector<uint32_t> a(32 * 4, 0), b(32 * 2, 0);
    std::vector<float> c(32 * 4, 0.0f);
    auto put = [](uint32_t& reg, int half, uint16_t bits) { reg |= uint32_t(bits) << (16 * half); };
    for (int r = 0; r < 16; ++r)
        for (int col = 0; col < 16; ++col)
            put(a[size_t(4 * (4 * (r % 8) + (col % 8) / 2) + 2 * (col / 8) + r / 8)], col % 2,
                to_bits(kType, A[r][col]));
    for (int k = 0; k < 16; ++k)
        for (int n = 0; n < 8; ++n) put(b[size_t(2 * (4 * n + (k % 8) / 2) + k / 8)], k % 2, to_bits(kType, B[k][n]));
    for (int r = 0; r < 16; ++r)
        for (int n = 0; n < 8; ++n) c[size_t(4 * (4 * (r % 8) + n / 2) + 2 * (r / 8) + n % 2)] = C[r][n];
    uint32_t *da = to_device(a), *db = to_device(b);
    float *dc = to_device(c), *dd = to_device(std::vector<float>(32 * 4, 0.0f));
    launch(mma_kernel<T>, 1, 32, 0, da, db, dc, dd);
    CHECK(cudaGetLastError() == cudaSuccess);
    const std::vector<float> d = to_host(dd, 32 * 4);
    int wrong = 0;
    for (int r = 0; r < 16; ++r)
        for (int n = 0; n < 8; ++n) {
            double want = C[r][n];
            for (int k = 0; k < 16; ++k) want += double(A[r][k]) * B[k][n];
            const float got = d[size_t(4 * (4 * (r % 8) + n / 2) + 2 * (r / 8) + n % 2)];
            if (double(got) != want && wrong++ < 4)
                std::cerr << "  " << name(kType) << " D[" << r << "][" << n << "] = " << got << ", want " << want
                          << "\n";
        }
    CHECK_MSG(wrong == 0, name(kType) << " mma: " << wrong << " of 128 D elements wrong");
    cudaFree(da), cudaFree(db), cudaFree(dc), cudaFree(dd);
}

template <MmaType T>
void check_ldmatrix_mma() {
    constexpr MmaType kType = T;
    std::vector<float> x(256), kt(256), v(256);
    for (uint32_t i = 0; i < 256; ++i) x[i] = half_step(i, 4), kt[i] = half_step(i, 5), v[i] = half_step(i, 6);
    auto bits = [kType](const std::vector<float>& f) {
        std::vector<uint16_t> b(f.size());
        for (size_t i = 0; i < f.size(); ++i) b[i] = to_bits(kType, f[i]);
        return b;
    };
    uint16_t *dx = to_device(bits(x)), *dk = to_device(bits(kt)), *dv = to_device(bits(v));
    float* dout = to_device(std::vector<float>(512 + 48, -1.0f));
    launch(ldmatrix_mma_kernel<T>, 1, 32, size_t(3 * 17 * kPitch * 2), dx, dk, dv, dout);
    CHECK(cudaGetLastError() == cudaSuccess);
    const std::vector<float> out = to_host(dout, 512 + 48);
    int wrong_k = 0, wrong_v = 0, nonzero = 0;
    for (int r = 0; r < 16; ++r)
        for (int n = 0; n < 16; ++n) {
            double want_k = 0, want_v = 0;
            for (int k = 0; k < 16; ++k) {
                want_k += double(x[size_t(r * 16 + k)]) * kt[size_t(n * 16 + k)];  // x kt^T
                want_v += double(x[size_t(r * 16 + k)]) * v[size_t(k * 16 + n)];   // x v
            }
            wrong_k += double(out[size_t(r * 16 + n)]) != want_k;
            wrong_v += double(out[size_t(256 + r * 16 + n)]) != want_v;
        }
    for (int i = 0; i < 48; ++i) nonzero += out[size_t(512 + i)] != 0.0f;
    CHECK_MSG(wrong_k == 0, name(kType) << " ldmatrix + mma (B n-major, as K): " << wrong_k << " of 256 wrong");
    CHECK_MSG(wrong_v == 0, name(kType) << " ldmatrix.trans + mma (B k-major, as V): " << wrong_v << " of 256 wrong");
    CHECK_MSG(nonzero == 0, "cp.async with src-size 0: " << nonzero << " of 48 elements not zero-filled");
    cudaFree(dx), cudaFree(dk), cudaFree(dv), cudaFree(dout);
}

}  // namespace

SDXL_TEST(test_cuda_mma_ldmatrix_layout) {
    std::vector<uint16_t> m(4 * 64);  // matrix m, row r, col c: distinct bit patterns
    for (int i = 0; i < 4 * 64; ++i) m[size_t(i)] = uint16_t(0x1000 * (i / 64) + 0x10 * ((i / 8) % 8) + i % 8 + 1);
    auto at = [&m](int mat, int r, int c) { return uint32_t(m[size_t(mat * 64 + r * 8 + c)]); };
    for (bool trans : {false, true}) {
        uint16_t* dsrc = to_device(m);
        uint32_t* dout = to_device(std::vector<uint32_t>(32 * 4, 0));
        launch(trans ? ldmatrix_kernel<true> : ldmatrix_kernel<false>, 1, 32, size_t(32 * kPitch * 2), dsrc, dout);
        CHECK(cudaGetLastError() == cudaSuccess);
        const std::vector<uint32_t> got = to_host(dout, 32 * 4);
        int wrong = 0;
        for (int mat = 0; mat < 4; ++mat)
            for (int r = 0; r < 8; ++r)      // row r of the matrix as loaded (of its transpose with .trans)
                for (int w = 0; w < 4; ++w) {  // b16 pair (cols 2 w, 2 w + 1) -> lane 4 r + w, register mat
                    const uint32_t want = trans ? at(mat, 2 * w, r) | at(mat, 2 * w + 1, r) << 16
                                                : at(mat, r, 2 * w) | at(mat, r, 2 * w + 1) << 16;
                    wrong += got[size_t((4 * r + w) * 4 + mat)] != want;
                }
        CHECK_MSG(wrong == 0, "ldmatrix.x4" << (trans ? ".trans" : "") << ": " << wrong << " of 128 registers wrong");
        cudaFree(dsrc), cudaFree(dout);
    }
}

SDXL_TEST(test_cuda_mma_fragment_layout) {
    check_mma_layout<MmaType::F16>();
    check_mma_layout<MmaType::BF16>();
}

SDXL_TEST(test_cuda_mma_ldmatrix_cp_async_pipeline) {
    check_ldmatrix_mma<MmaType::F16>();
    check_ldmatrix_mma<MmaType::BF16>();
}

// pack2: round to nearest even, lo in bits 0-15 (as __floats2half2_rn / __floats2bfloat162_rn).
SDXL_TEST(test_cuda_mma_pack2) {
    CHECK(pack2<MmaType::F16>(1.0f, -2.0f) == 0xC0003C00u);
    CHECK(pack2<MmaType::BF16>(1.0f, -2.0f) == 0xC0003F80u);
    const float f16_tie = 1.0f + 1.0f / 2048.0f, bf16_tie = 1.0f + 1.0f / 256.0f;  // halfway: to even (1.0)
    CHECK(pack2<MmaType::F16>(f16_tie, 3.0f * f16_tie) == (uint32_t(f32_to_f16(3.0f * f16_tie)) << 16 | 0x3C00u));
    CHECK(pack2<MmaType::BF16>(bf16_tie, 0.0f) == 0x3F80u);
}

#else

SDXL_TEST(test_cuda_mma_wrappers) {
    std::cout << "  (skipped: the tensor-core wrappers are tested on the SIMT emulator build; on a GPU the attention "
                 "tests exercise them)\n";
}

#endif
