// Error checks for CUDA calls that name the call, file and line, and throw instead of aborting.
#pragma once

#include <cuda_runtime.h>

#include "core/error.h"

#define SDXL_CUDA_CHECK(call)                                                                           \
    do {                                                                                                \
        cudaError_t err_ = (call);                                                                      \
        if (err_ != cudaSuccess) {                                                                      \
            (void)cudaGetLastError(); /* clear the sticky-free error state for the next call */         \
            ::sdxl::fail(err_ == cudaErrorMemoryAllocation ? ::sdxl::ErrorCode::OUT_OF_MEMORY           \
                                                            : ::sdxl::ErrorCode::DEVICE_ERROR,         \
                         #call " failed at " __FILE__ ":", __LINE__, ": ", cudaGetErrorName(err_), " (", \
                         cudaGetErrorString(err_), ")");                                                \
        }                                                                                               \
    } while (0)
