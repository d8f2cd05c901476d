// The native test runner: runs every registered test (or those whose name contains argv[1]).
#include <chrono>
#include <cstring>

#include "check.h"
#include "core/error.h"

namespace sdxl_test {
std::vector<TestCase>& registry() {
    static std::vector<TestCase> r;
    return r;
}
int& failures() {
    static int f = 0;
    return f;
}
}  // namespace sdxl_test

int main(int argc, char** argv) {
    using namespace sdxl_test;
    int ran = 0;
    for (auto& t : registry()) {
        if (argc > 1 && !std::strstr(t.name, argv[1])) continue;
        int before = failures();
        const auto t0 = std::chrono::steady_clock::now();
        try {
            t.body();
        } catch (const std::exception& e) {
            ++failures();
            std::cerr << t.name << ": unexpected exception: " << e.what() << "\n";
        }
        const long ms = long(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        std::cout << (failures() == before ? "ok   " : "FAIL ") << t.name << " (" << ms << " ms)\n";
        ++ran;
    }
    std::cout << ran << " tests, " << failures() << " failed checks\n";
    return failures() == 0 ? 0 : 1;
}
