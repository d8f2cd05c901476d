// A minimal test harness for the native runner (no JVM, no third-party framework): each test file
// registers functions with SDXL_TEST; CHECK records a failure with file:line and continues.
#pragma once

#include <functional>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

namespace sdxl_test {

struct TestCase {
    const char* name;
    std::function<void()> body;
};

std::vector<TestCase>& registry();
int& failures();

struct Registrar {
    Registrar(const char* name, std::function<void()> body) { registry().push_back({name, std::move(body)}); }
};

}  // namespace sdxl_test

#define SDXL_TEST_CAT2(a, b) a##b
#define SDXL_TEST_CAT(a, b) SDXL_TEST_CAT2(a, b)
#define SDXL_TEST(name)                                                                      \
    static void name();                                                                      \
    static ::sdxl_test::Registrar SDXL_TEST_CAT(registrar_, name)(#name, name);              \
    static void name()

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            ++::sdxl_test::failures();                                                       \
            std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK failed: " #cond << "\n";    \
        }                                                                                    \
    } while (0)

#define CHECK_MSG(cond, msg)                                                                 \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            ++::sdxl_test::failures();                                                       \
            std::ostringstream os_;                                                          \
            os_ << msg;                                                                      \
            std::cerr << __FILE__ << ":" << __LINE__ << ": CHECK failed: " #cond << ": " << os_.str() << "\n"; \
        }                                                                                    \
    } while (0)

// Expects `expr` to throw sdxl::Error with the given code.
#define CHECK_THROWS_CODE(expr, error_code)                                                  \
    do {                                                                                     \
        bool thrown_ = false;                                                                \
        try {                                                                                \
            (void)(expr);                                                                    \
        } catch (const ::sdxl::Error& e_) {                                                  \
            thrown_ = true;                                                                  \
            CHECK_MSG(e_.code() == (error_code), "wrong code: " << e_.what());               \
        }                                                                                    \
        CHECK_MSG(thrown_, "expected an error from " #expr);                                 \
    } while (0)
