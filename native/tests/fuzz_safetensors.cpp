// libFuzzer target for the safetensors reader (built with -DSDXL_BUILD_FUZZERS=ON and clang; ASan + UBSan on).
// Each input is used twice:
//   1. as bare header JSON, parse_header(input, data_size = 16);
//   2. as a whole file (in a memfd, opened through /proc/self/fd): open(), then get() and get_f32() of every
//      tensor, reading every byte of each returned tensor.
// Anything but sdxl::Error with the expected code, or an accepted header that breaks the format's promises
// (checked here independently of the parser), traps.
//
// Run (a seed corpus of valid files and headers helps; the tokens below make a useful -dict file):
//   ./fuzz_safetensors -max_total_time=60 -max_len=4096 -dict=safetensors.dict corpus/
// safetensors.dict:
//   "{" "}" "[" "]" ":" "," "\"dtype\"" "\"shape\"" "\"data_offsets\"" "\"__metadata__\"" "\"F32\"" "\"F16\""
//   "\"BF16\"" "\"I64\"" "\"F64\"" "\"BOOL\"" "\\u" "\\ud83d\\ude00" "\\udc00" "18446744073709551615"
//   "9223372036854775807" ",0"
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace {

using sdxl::DType;
using sdxl::Error;
using sdxl::ErrorCode;
using sdxl::Tensor;
using sdxl::io::Header;
using sdxl::io::SafetensorsFile;
using sdxl::io::TensorInfo;

constexpr uint64_t kBareDataSize = 16;

void require(bool ok) {
    if (!ok) __builtin_trap();
}

void check_invariants(const Header& h, uint64_t data_size) {
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (size_t i = 0; i < h.tensors.size(); ++i) {
        const TensorInfo& t = h.tensors[i];
        require(i == 0 || h.tensors[i - 1].name < t.name);
        require(t.begin <= t.end && t.end <= data_size);
        using u128 = unsigned __int128;
        u128 numel = 1;
        for (int64_t d : t.shape) {
            require(d >= 0);
            numel *= uint64_t(d);
            if (numel > ~uint64_t(0)) numel = u128(~uint64_t(0)) + 1;  // keep it from wrapping
        }
        require(numel * t.element_size == t.end - t.begin);
        ranges.push_back({t.begin, t.end});
    }
    std::sort(ranges.begin(), ranges.end());
    uint64_t pos = 0;
    for (const auto& r : ranges) {
        require(r.first == pos);
        pos = r.second;
    }
    require(pos == data_size);
}

// Reads every byte of a CPU tensor and checks that they lie inside its storage.
void touch(const Tensor& t, size_t element_size) {
    const char* p = static_cast<const char*>(t.raw_data());
    size_t n = size_t(t.numel()) * element_size;
    const char* lo = static_cast<const char*>(t.storage()->data());
    require(p >= lo && p + n <= lo + t.storage()->nbytes());
    volatile unsigned char sum = 0;
    for (size_t i = 0; i < n; ++i) sum = sum + static_cast<unsigned char>(p[i]);
    (void)sum;
}

int memfd() {
    static int fd = memfd_create("fuzz.safetensors", MFD_CLOEXEC);
    return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const char* bytes = reinterpret_cast<const char*>(data);
    try {
        Header h = sdxl::io::parse_header(bytes, size, kBareDataSize, "fuzz");
        check_invariants(h, kBareDataSize);
    } catch (const Error& e) {
        require(e.code() == ErrorCode::BAD_MODEL_FILE);
    }

    int fd = memfd();
    require(fd >= 0);
    require(ftruncate(fd, 0) == 0);
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fd, bytes + done, size - done, off_t(done));
        require(w > 0);
        done += size_t(w);
    }
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    std::shared_ptr<SafetensorsFile> file;
    try {
        file = SafetensorsFile::open(path);
    } catch (const Error& e) {
        require(e.code() == ErrorCode::BAD_MODEL_FILE);
        return 0;
    }
    require(size >= 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
    check_invariants(file->header(), size - 8 - n);
    for (const TensorInfo& info : file->header().tensors) {
        require(file->find(info.name) == &info);
        try {
            Tensor t = file->get(info.name);
            require(info.supported && t.dtype() == info.dtype && t.shape() == info.shape);
            touch(t, info.element_size);
            if (info.dtype != DType::I64) {
                Tensor f = file->get_f32(info.name);
                require(f.dtype() == DType::F32 && f.shape() == info.shape);
                touch(f, 4);
            }
        } catch (const Error& e) {
            require(!info.supported && e.code() == ErrorCode::UNSUPPORTED);
        }
    }
    return 0;
}
