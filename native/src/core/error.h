// sdxl::Error: the one exception type of the native core. Never abort(): the JVM would die with us.
// The facade (api/) lets it propagate; JavaCPP turns it into a Java exception whose message starts
// with "SDXL:<CODE>: ", which the Java side maps back to SdxlException(ErrorCode).
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace sdxl {

// Keep in sync with io.sdxl4j.ErrorCode and sdxl::api::ErrorCode (same names and numbers).
enum class ErrorCode : int {
    INVALID_ARGUMENT = 1,
    NOT_FOUND = 2,
    BAD_MODEL_FILE = 3,
    OUT_OF_MEMORY = 4,
    DEVICE_ERROR = 5,
    CANCELLED = 6,
    UNSUPPORTED = 7,
    INTERNAL = 8,
};

const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string& message);
    ErrorCode code() const { return code_; }
    // The message without the "SDXL:<CODE>: " prefix.
    const std::string& message() const { return message_; }

private:
    ErrorCode code_;
    std::string message_;
};

namespace detail {
inline void append_all(std::ostringstream&) {}
template <typename T, typename... Rest>
void append_all(std::ostringstream& out, const T& first, const Rest&... rest) {
    out << first;
    append_all(out, rest...);
}
}  // namespace detail

// Builds a message from any streamable pieces: fail(ErrorCode::INVALID_ARGUMENT, "conv2d: x has ", n, " dims").
template <typename... Parts>
[[noreturn]] void fail(ErrorCode code, const Parts&... parts) {
    std::ostringstream out;
    detail::append_all(out, parts...);
    throw Error(code, out.str());
}

}  // namespace sdxl

// Argument checks that name the op: SDXL_CHECK(x.dim() == 4, "conv2d: x must be 4-D, got ", x.dim()).
#define SDXL_CHECK(cond, ...)                                               \
    do {                                                                    \
        if (!(cond)) ::sdxl::fail(::sdxl::ErrorCode::INVALID_ARGUMENT, __VA_ARGS__); \
    } while (0)
