// What every CUDA file of the backend shares: the backend's one stream, and the registration hooks through
// which each op family (one .cu/.cpp pair per family) fills its entries of the backend table.
#pragma once

#include <cuda_runtime.h>

namespace sdxl {
struct Backend;
}

namespace sdxl::cuda {

// The backend's single stream (created on first use, blocking w.r.t. the legacy default stream, so plain
// cudaMemcpy on the default stream stays ordered with it). Every kernel and library call runs on it.
// While a thread captures a CUDA graph (cuda_graph.cpp) its work goes to its capture stream instead.
cudaStream_t stream();
// Makes the calling thread's current device the process's one (device::select_cuda_device); stream() and every
// allocation or copy call it, so a thread (e.g. a new Java thread) never issues work to device 0 by default.
void bind_thread();
void bind_thread_quietly() noexcept;  // the same for frees and destructors, which must not throw
cudaStream_t main_stream();                      // the backend's stream, whatever this thread captures
void set_thread_stream(cudaStream_t s) noexcept;  // this thread's override of stream() (null: none)

// Each op family registers its implementations (cuda_backend.cpp calls all of them once).
void register_elementwise_ops(Backend& table);  // cuda_elementwise_ops.cpp: unary/binary/scale/concat/...
void register_norm_ops(Backend& table);         // cuda_norm_ops.cpp: group_norm(_silu), layer_norm, softmax
void register_gemm_ops(Backend& table);         // cuda_gemm.cpp: linear, matmul (cuBLAS/cuBLASLt)
void register_conv_ops(Backend& table);         // cuda_conv.cpp: conv2d (cuDNN)
void register_attention_ops(Backend& table);    // cuda_attention_ops.cpp: attention (flash-style + simple)

}  // namespace sdxl::cuda
