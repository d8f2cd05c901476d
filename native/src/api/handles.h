// Conversions between the public handles of sdxl.h and the core's types, shared by the facade's files.
#pragma once

#include "core/tensor.h"
#include "sdxl/sdxl.h"

namespace sdxl::api {

const sdxl::Tensor& core(const Tensor& t);
Tensor wrap(sdxl::Tensor t);

}  // namespace sdxl::api
