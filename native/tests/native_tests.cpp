// The native test runner: runs every registered test (or those whose name contains argv[1]).
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
        try {
            t.body();
        } catch (const std::exception& e) {
            ++failures();
            std::cerr << t.name << ": unexpected exception: " << e.what() << "\n";
        }
        std::cout << (failures() == before ? "ok   " : "FAIL ") << t.name << "\n";
        ++ran;
    }
    std::cout << ran << " tests, " << failures() << " failed checks\n";
    return failures() == 0 ? 0 : 1;
}
