#include "backends/backend.h"

namespace sdxl {

const Backend& backend_for(Device device) { return device == Device::CUDA ? cuda_backend() : cpu_backend(); }

}  // namespace sdxl
