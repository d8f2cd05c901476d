#pragma once

#include <cstddef>
#include <cstdint>

namespace sdxl {

// Numbers match sdxl::api::DType and io.sdxl4j.DType.
enum class DType : int32_t { F32 = 0, F16 = 1, BF16 = 2, I64 = 3 };
enum class Device : int32_t { CPU = 0, CUDA = 1 };

inline size_t dtype_size(DType t) {
    switch (t) {
        case DType::F32: return 4;
        case DType::F16: return 2;
        case DType::BF16: return 2;
        case DType::I64: return 8;
    }
    return 0;
}

const char* dtype_name(DType t);
const char* device_name(Device d);
bool is_floating(DType t);

}  // namespace sdxl
