#include "core/error.h"

namespace sdxl {

const char* error_code_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
        case ErrorCode::NOT_FOUND: return "NOT_FOUND";
        case ErrorCode::BAD_MODEL_FILE: return "BAD_MODEL_FILE";
        case ErrorCode::OUT_OF_MEMORY: return "OUT_OF_MEMORY";
        case ErrorCode::DEVICE_ERROR: return "DEVICE_ERROR";
        case ErrorCode::CANCELLED: return "CANCELLED";
        case ErrorCode::UNSUPPORTED: return "UNSUPPORTED";
        case ErrorCode::INTERNAL: return "INTERNAL";
    }
    return "INTERNAL";
}

Error::Error(ErrorCode code, const std::string& message)
    : std::runtime_error(std::string("SDXL:") + error_code_name(code) + ": " + message),
      code_(code),
      message_(message) {}

}  // namespace sdxl
