// Run-time loading of the CUDA math libraries (cuBLAS, cuBLASLt, cuDNN). libsdxl never links them: it must load on
// machines without them (CI, CPU-only users). The first GEMM / conv on CUDA looks for them with dlopen, and
// when they are missing the op fails with an sdxl::Error that lists every place that was searched.
//
// Search order (first hit wins; duplicates are tried once):
//   1. each folder of $SDXL4J_CUDA_LIBS (dir1:dir2:...), the explicit override;
//   2. the plain soname (a library already in the process, or one the system loader finds: its cache,
//      RUNPATH, the LD_LIBRARY_PATH the process started with);
//   3. $CUDA_HOME/lib64, $CUDA_PATH/lib64, /usr/local/cuda/lib64;
//   4. each folder of $LD_LIBRARY_PATH (as it is now: it may have been changed after start);
//   5. Python wheel folders (nvidia/cu13/lib, nvidia/cublas/lib, nvidia/cudnn/lib) under the site-packages of
//      $VIRTUAL_ENV, $CONDA_PREFIX, every python3 found on $PATH, and the user site (~/.local).
// cuDNN 9 is a small shim (libcudnn.so.9) that dlopens its sub-libraries (graph, ops, cnn, engines...) from
// its own folder; the ones we call into are preloaded from that folder with RTLD_GLOBAL.
//
// This header needs no cuBLAS/cuDNN headers: the files that use the libraries (cuda_gemm.cpp, cuda_conv.cpp)
// include those themselves, when CMake found them (SDXL_HAVE_CUBLAS / SDXL_HAVE_CUDNN).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace sdxl::cuda::libs {

// One try of one path (or plain soname) and what came of it ("loaded", "not found", or dlerror()).
struct Attempt {
    std::string path;
    std::string outcome;
};

// The result of looking for one library family.
struct Library {
    const char* name = "";       // "cuBLAS", "cuBLASLt", "cuDNN"
    void* handle = nullptr;      // dlopen handle of the main library, null when not found
    std::string path;            // where it was loaded from (as dlopen was given it)
    std::vector<Attempt> tried;  // every attempt, in order
    std::vector<Attempt> extras; // companion libraries (cublasLt, cuDNN sub-libraries) and their outcome
    bool ok() const { return handle != nullptr; }
    // Multi-line report: where it was found, or every place searched and why each failed.
    std::string report() const;
};

// Folders to search for libraries of a family, in the order above. wheel_subdirs: relative folders inside a
// site-packages (e.g. "nvidia/cudnn/lib"). Only existing folders are returned, each once.
std::vector<std::string> search_dirs(const std::vector<std::string>& wheel_subdirs);
// Python site-packages folders found as described in (5), existing ones only.
std::vector<std::string> python_site_packages();

// Opens `soname` (e.g. "libcublas.so.13"): first `plain_first` ? the bare name : nothing, then dir/soname for
// each dir. Every try is recorded. companions: sonames preloaded (RTLD_GLOBAL) from the folder where the
// main library was found, before it is opened (cuBLASLt), or after (cuDNN sub-libraries, see cuda_libs.cpp).
Library open_library(const char* name, const std::string& soname, const std::vector<std::string>& dirs,
                     bool plain_first, const std::vector<std::string>& companions_before,
                     const std::vector<std::string>& companions_after);

// The process-wide libraries, searched once (thread-safe), never unloaded.
const Library& cublas();
const Library& cublaslt();  // optional: linear falls back to cuBLAS without it (cuda_gemm.cpp)
const Library& cudnn();

// A symbol of a loaded library; DEVICE_ERROR naming the symbol and the library when it is missing.
void* symbol(const Library& lib, const char* name);
// Throws DEVICE_ERROR "<op> on CUDA needs <lib>, which was not found" + report() when !lib.ok().
void require(const Library& lib, const char* op);

// Throws `code` for a failed library call; the message names the library, the call, the status (number and
// name) and the file:line.
[[noreturn]] void fail_call(const char* lib, int status, const char* status_name, ErrorCode code, const char* call,
                            const char* file, int line);

// The error code for a failed cuDNN 9 status (cudnnStatus_t as int; no cuDNN headers needed here, cuda_conv.cpp
// static_asserts the values): the *_ALLOCATION_FAILED ones are OUT_OF_MEMORY, every CUDNN_STATUS_NOT_SUPPORTED*
// (3000-3999: data type, layout, shape, arch...) is UNSUPPORTED, anything else DEVICE_ERROR.
ErrorCode cudnn_error_code(int status);

// Whether this build compiled the cuBLAS / cuDNN paths (headers were found at build time).
bool gemm_compiled();
bool conv_compiled();

// Which path CUDA linear took (cuda_gemm.cpp): counts since the start, for tests and logs. lt: one
// cublasLtMatmul with the bias/residual epilogue; cublas: the cuBLAS fallback (bias fill + GEMM with beta = 1).
struct LinearPaths {
    uint64_t lt = 0;
    uint64_t cublas = 0;
};
LinearPaths linear_paths();
// Test hook: true sends every linear to the cuBLAS fallback (as SDXL4J_CUDA_CUBLASLT=0 does at start).
void force_cublas_linear(bool on);

}  // namespace sdxl::cuda::libs
