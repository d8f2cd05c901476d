// Tests of the safetensors reader: valid files of every loadable dtype, zero-copy views that keep the mapping
// alive, exact widening, a table of malformed headers that must all be BAD_MODEL_FILE, and a seeded mutation
// loop that must never crash (run it under ASan+UBSan too: -DSDXL_SANITIZE=address,undefined).
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/half.h"
#include "io/safetensors.h"

using sdxl::DType;
using sdxl::Error;
using sdxl::ErrorCode;
using sdxl::Shape;
using sdxl::Tensor;
using sdxl::io::Header;
using sdxl::io::parse_header;
using sdxl::io::SafetensorsFile;
using sdxl::io::TensorInfo;

namespace {

// ------------------------------------------------------------------------------------------ writer helpers

struct TensorSpec {
    std::string name;
    std::string dtype;
    Shape shape;
    std::string bytes;  // raw little-endian data
};

std::string json_escape(const std::string& s) {
    std::string out;
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += char(c);
        }
    }
    return out;
}

std::string le64(uint64_t v) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = char((v >> (8 * i)) & 0xff);
    return s;
}

// The header JSON for tensors laid out back to back in the given order. extra_pad spaces are appended
// after padding to a multiple of `align` (so tests can misalign the data section on purpose).
std::string build_header(const std::vector<TensorSpec>& tensors,
                         const std::vector<std::pair<std::string, std::string>>& metadata, size_t align = 8,
                         size_t extra_pad = 0) {
    std::string h = "{";
    bool first = true;
    if (!metadata.empty()) {
        h += "\"__metadata__\":{";
        for (size_t i = 0; i < metadata.size(); ++i)
            h += (i ? "," : "") + ("\"" + json_escape(metadata[i].first) + "\":\"" + json_escape(metadata[i].second) +
                                   "\"");
        h += "}";
        first = false;
    }
    uint64_t offset = 0;
    for (const TensorSpec& t : tensors) {
        h += first ? "" : ",";
        first = false;
        h += "\"" + json_escape(t.name) + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
        for (size_t i = 0; i < t.shape.size(); ++i) h += (i ? "," : "") + std::to_string(t.shape[i]);
        h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.bytes.size()) + "]}";
        offset += t.bytes.size();
    }
    h += "}";
    while (h.size() % align) h += ' ';
    h += std::string(extra_pad, ' ');
    return h;
}

std::string build_file(const std::vector<TensorSpec>& tensors,
                       const std::vector<std::pair<std::string, std::string>>& metadata = {}, size_t align = 8,
                       size_t extra_pad = 0) {
    std::string h = build_header(tensors, metadata, align, extra_pad);
    std::string file = le64(h.size()) + h;
    for (const TensorSpec& t : tensors) file += t.bytes;
    return file;
}

template <typename T>
std::string bytes_of(const std::vector<T>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// A scratch folder removed with its files at the end of each test.
struct TempDir {
    std::string path;
    std::vector<std::string> files;
    TempDir() {
        char tmpl[] = "/tmp/sdxl_safetensors_test_XXXXXX";
        const char* p = mkdtemp(tmpl);
        path = p ? p : "/tmp";
    }
    ~TempDir() {
        for (const std::string& f : files) ::unlink(f.c_str());
        ::rmdir(path.c_str());
    }
    std::string write(const std::string& name, const std::string& bytes) {
        std::string f = path + "/" + name;
        std::ofstream out(f, std::ios::binary | std::ios::trunc);
        out.write(bytes.data(), std::streamsize(bytes.size()));
        out.close();
        files.push_back(f);
        return f;
    }
};

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// Returns the error code thrown by parse_header, or -1 if it accepted the header.
int parse_code(const std::string& json, uint64_t data_size, std::string* message = nullptr) {
    try {
        parse_header(json.data(), json.size(), data_size, "t.safetensors");
        return -1;
    } catch (const Error& e) {
        if (message) *message = e.message();
        return int(e.code());
    }
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t b,
                  uint64_t e) {
    return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
           std::to_string(b) + "," + std::to_string(e) + "]}";
}

// Checks, independently of the parser, what an accepted header promises to its users.
bool header_invariants_hold(const Header& h, uint64_t data_size) {
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (size_t i = 0; i < h.tensors.size(); ++i) {
        const TensorInfo& t = h.tensors[i];
        if (i > 0 && !(h.tensors[i - 1].name < t.name)) return false;
        if (t.begin > t.end || t.end > data_size) return false;
        long double numel = 1;
        for (int64_t d : t.shape) {
            if (d < 0) return false;
            numel *= (long double)d;
        }
        if (numel * (long double)t.element_size != (long double)(t.end - t.begin)) return false;
        ranges.push_back({t.begin, t.end});
    }
    std::sort(ranges.begin(), ranges.end());
    uint64_t pos = 0;
    for (auto& r : ranges) {
        if (r.first != pos) return false;
        pos = r.second;
    }
    return pos == data_size;
}

// The standard four-dtype fixture.
std::vector<TensorSpec> fixture_tensors() {
    std::vector<float> f32 = {1.5f, -2.25f, 3.0e-8f, 65504.0f, -0.0f, 1e30f};
    std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x0001, 0x7BFF};  // 1, -2, 2^-24, 65504
    std::vector<uint16_t> bf16 = {0x3F80, 0xC040, 0x0001};         // 1, -3, 2^-133
    std::vector<int64_t> i64 = {std::numeric_limits<int64_t>::min(), (int64_t(1) << 53) + 1, -7};
    return {
        // In file order; every tensor aligned to its element size, as writers lay them out.
        {"unet.weight", "F32", {2, 3}, bytes_of(f32)},
        {"empty.bias", "F32", {0, 5}, ""},
        {"ids", "I64", {3}, bytes_of(i64)},
        {"scalar", "F32", {}, bytes_of(std::vector<float>{42.0f})},
        {"half", "F16", {4}, bytes_of(f16)},
        {"brain", "BF16", {3, 1}, bytes_of(bf16)},
        {"zero_at_end", "F16", {7, 0}, ""},
    };
}

}  // namespace

// ---------------------------------------------------------------------------------------------- valid files

SDXL_TEST(test_safetensors_reads_all_loadable_dtypes) {
    TempDir dir;
    std::string path = dir.write("m.safetensors",
                                 build_file(fixture_tensors(), {{"format", "pt"}, {"note", "a \"quoted\"\nline"}}));
    auto f = SafetensorsFile::open(path);
    CHECK(f->path() == path);
    const Header& h = f->header();
    CHECK(h.tensors.size() == 7);
    for (size_t i = 1; i < h.tensors.size(); ++i) CHECK(h.tensors[i - 1].name < h.tensors[i].name);
    CHECK(h.metadata.size() == 2);
    CHECK(h.metadata[0].first == "format" && h.metadata[0].second == "pt");
    CHECK(h.metadata[1].first == "note" && h.metadata[1].second == "a \"quoted\"\nline");

    Tensor w = f->get("unet.weight");
    CHECK(w.dtype() == DType::F32);
    CHECK((w.shape() == Shape{2, 3}));
    CHECK(w.is_contiguous());
    const float* wv = w.data<float>();
    CHECK(wv[0] == 1.5f && wv[1] == -2.25f && wv[2] == 3.0e-8f && wv[3] == 65504.0f);
    CHECK(wv[4] == 0.0f && std::signbit(wv[4]) && wv[5] == 1e30f);

    Tensor half = f->get("half");
    CHECK(half.dtype() == DType::F16);
    const uint16_t* hv = half.data<uint16_t>();
    CHECK(hv[0] == 0x3C00 && hv[1] == 0xC000 && hv[2] == 0x0001 && hv[3] == 0x7BFF);

    Tensor brain = f->get("brain");
    CHECK(brain.dtype() == DType::BF16);
    CHECK((brain.shape() == Shape{3, 1}));
    CHECK(brain.data<uint16_t>()[1] == 0xC040);

    Tensor ids = f->get("ids");
    CHECK(ids.dtype() == DType::I64);
    const int64_t* iv = ids.data<int64_t>();
    CHECK(iv[0] == std::numeric_limits<int64_t>::min() && iv[1] == (int64_t(1) << 53) + 1 && iv[2] == -7);

    Tensor empty = f->get("empty.bias");
    CHECK((empty.shape() == Shape{0, 5}) && empty.numel() == 0);
    Tensor zero_end = f->get("zero_at_end");
    CHECK(zero_end.numel() == 0 && zero_end.dtype() == DType::F16);
    Tensor scalar = f->get("scalar");
    CHECK(scalar.dim() == 0 && scalar.numel() == 1 && scalar.data<float>()[0] == 42.0f);

    const TensorInfo* info = f->find("ids");
    CHECK(info && info->dtype_name == "I64" && info->element_size == 8 && info->supported);
    CHECK(info && info->end - info->begin == 24);
    CHECK(f->find("nope") == nullptr);
    CHECK(f->find("") == nullptr);
}

SDXL_TEST(test_safetensors_get_is_zero_copy_and_keeps_mapping_alive) {
    TempDir dir;
    std::string path = dir.write("m.safetensors", build_file(fixture_tensors()));
    Tensor w, ids;
    {
        auto f = SafetensorsFile::open(path);
        w = f->get("unet.weight");
        ids = f->get("ids");
        const TensorInfo* wi = f->find("unet.weight");
        // Both views share one Storage: the whole mapped file.
        CHECK(w.storage() == ids.storage());
        CHECK(w.storage()->nbytes() == 8 + build_header(fixture_tensors(), {}).size() + 6 * 4 + 4 * 2 + 3 * 2 +
                                             3 * 8 + 4);
        const char* base = static_cast<const char*>(w.storage()->data());
        const uint64_t n = build_header(fixture_tensors(), {}).size();
        CHECK(static_cast<const char*>(w.raw_data()) == base + 8 + n + wi->begin);
        CHECK(std::memcmp(base, le64(n).data(), 8) == 0);  // really the file's bytes, not a copy
        CHECK(reinterpret_cast<uintptr_t>(w.raw_data()) % 4 == 0);
        for (const TensorInfo& t : f->header().tensors)  // every non-empty loadable tensor views the mapping
            if (t.supported && t.end > t.begin) CHECK_MSG(f->get(t.name).storage() == w.storage(), t.name);
        CHECK(f->get_f32("unet.weight").storage() == w.storage());  // F32 get_f32 is the same view
    }
    // The SafetensorsFile is gone; the tensors still own the mapping.
    CHECK(w.storage().use_count() >= 2);
    CHECK(w.data<float>()[1] == -2.25f);
    CHECK(ids.data<int64_t>()[2] == -7);
    Tensor copy = w.clone();
    w = Tensor();
    CHECK(ids.data<int64_t>()[1] == (int64_t(1) << 53) + 1);
    CHECK(copy.data<float>()[0] == 1.5f);
}

SDXL_TEST(test_safetensors_misaligned_data_is_copied) {
    TempDir dir;
    std::vector<float> f32 = {1.0f, 2.0f, 3.0f};
    std::vector<uint16_t> f16 = {0x3C00, 0x4000};
    std::vector<TensorSpec> ts = {{"a", "F32", {3}, bytes_of(f32)}, {"b", "F16", {2}, bytes_of(f16)}};
    // 8 + N = 8k + 2: F32 data at an address that is 2 mod 4, F16 still 2-aligned.
    std::string path = dir.write("odd.safetensors", build_file(ts, {}, 8, 2));
    auto f = SafetensorsFile::open(path);
    Tensor a = f->get("a");
    Tensor b = f->get("b");
    CHECK(a.storage() != b.storage());  // a was copied, b is a view
    CHECK(a.storage()->nbytes() == 12);
    CHECK(a.data<float>()[0] == 1.0f && a.data<float>()[2] == 3.0f);
    CHECK(b.data<uint16_t>()[1] == 0x4000);
    Tensor b32 = f->get_f32("b");
    CHECK(b32.data<float>()[0] == 1.0f && b32.data<float>()[1] == 2.0f);
    // An odd header length makes even F16 misaligned: still correct values.
    std::string path2 = dir.write("odd2.safetensors", build_file(ts, {}, 8, 1));
    auto f2 = SafetensorsFile::open(path2);
    CHECK(f2->get("b").data<uint16_t>()[0] == 0x3C00);
    CHECK(f2->get_f32("b").data<float>()[1] == 2.0f);
    CHECK(f2->get_f32("a").data<float>()[1] == 2.0f);
}

// Every F16 and BF16 bit pattern widens to exactly the value the format defines (computed here with ldexp,
// independently of core/half.h).
SDXL_TEST(test_safetensors_get_f32_widening_is_exact) {
    std::vector<uint16_t> all(65536);
    for (uint32_t i = 0; i < 65536; ++i) all[i] = uint16_t(i);
    TempDir dir;
    std::string path = dir.write("all.safetensors", build_file({{"h", "F16", {256, 256}, bytes_of(all)},
                                                                {"b", "BF16", {65536}, bytes_of(all)}}));
    auto f = SafetensorsFile::open(path);
    Tensor h = f->get_f32("h");
    Tensor b = f->get_f32("b");
    CHECK(h.dtype() == DType::F32 && (h.shape() == Shape{256, 256}));
    CHECK(b.dtype() == DType::F32 && (b.shape() == Shape{65536}));
    const float* hv = h.data<float>();
    const float* bv = b.data<float>();
    int bad_h = 0, bad_b = 0;
    for (uint32_t i = 0; i < 65536; ++i) {
        bool neg = i & 0x8000;
        // F16: 5 exponent bits (bias 15), 10 mantissa bits.
        uint32_t e = (i >> 10) & 0x1f, m = i & 0x3ff;
        if (e == 0x1f) {
            if (m == 0 ? !(std::isinf(hv[i]) && std::signbit(hv[i]) == neg) : !std::isnan(hv[i])) ++bad_h;
        } else {
            double v = e == 0 ? std::ldexp(double(m), -24) : std::ldexp(double(1024 + m), int(e) - 25);
            if (neg) v = -v;
            if (double(hv[i]) != v || std::signbit(hv[i]) != neg) ++bad_h;
        }
        // BF16: 8 exponent bits (bias 127), 7 mantissa bits.
        e = (i >> 7) & 0xff;
        m = i & 0x7f;
        if (e == 0xff) {
            if (m == 0 ? !(std::isinf(bv[i]) && std::signbit(bv[i]) == neg) : !std::isnan(bv[i])) ++bad_b;
        } else {
            double v = e == 0 ? std::ldexp(double(m), -133) : std::ldexp(double(128 + m), int(e) - 134);
            if (neg) v = -v;
            if (double(bv[i]) != v || std::signbit(bv[i]) != neg) ++bad_b;
        }
    }
    CHECK_MSG(bad_h == 0, bad_h << " F16 patterns widened wrongly");
    CHECK_MSG(bad_b == 0, bad_b << " BF16 patterns widened wrongly");
    CHECK(h.storage() != f->get("h").storage());  // a new F32 tensor, not a view
}

// get_f32_rows widens only the rows asked for (an F32 tensor gives a view), equal to those rows of get_f32; the
// pages it read are released after widening, and reading them again gives the same values.
SDXL_TEST(test_safetensors_get_f32_rows) {
    std::vector<uint16_t> h(96 * 1024);  // 3 x [32, 1024] F16: 64 KiB per part, whole pages inside each
    for (size_t i = 0; i < h.size(); ++i) h[i] = uint16_t((i * 2654435761u) & 0x7bff);  // finite halves
    std::vector<float> w(6 * 5);
    for (size_t i = 0; i < w.size(); ++i) w[i] = float(i) * 0.5f - 3.0f;
    TempDir dir;
    const std::string path = dir.write("rows.safetensors", build_file({{"in_proj", "F16", {96, 1024}, bytes_of(h)},
                                                                      {"w", "F32", {6, 5}, bytes_of(w)}}));
    auto f = SafetensorsFile::open(path);
    const Tensor whole = f->get_f32("in_proj").clone();
    for (int pass = 0; pass < 2; ++pass) {  // the second pass reads pages the first one released
        for (int part = 0; part < 3; ++part) {
            const Tensor rows = f->get_f32_rows("in_proj", 32 * part, 32 * (part + 1));
            CHECK(rows.shape() == (Shape{32, 1024}) && rows.dtype() == DType::F32);
            CHECK_MSG(std::memcmp(rows.raw_data(), whole.data<float>() + part * 32 * 1024, 32 * 1024 * 4) == 0,
                      "pass " << pass << " part " << part);
        }
    }
    const Tensor v = f->get_f32_rows("w", 2, 4);
    CHECK(v.shape() == (Shape{2, 5}) && v.storage() == f->get("w").storage());  // F32: a view
    CHECK(v.contiguous().data<float>()[0] == w[10]);
    for (auto [b, e] : {std::pair<int64_t, int64_t>{-1, 2}, {3, 2}, {0, 7}}) {
        try {
            (void)f->get_f32_rows("w", b, e);
            CHECK_MSG(false, "rows [" << b << ", " << e << ") accepted");
        } catch (const Error& err) {
            CHECK(err.code() == ErrorCode::INVALID_ARGUMENT);
        }
    }
}

// Every F8_E4M3 (float8_e4m3fn) and F8_E5M2 code widens to the value its format defines, computed here from the
// definitions with ldexp (independently of core/half.h): e4m3fn = sign, 4 exponent bits (bias 7), 3 mantissa bits,
// subnormals m * 2^-9, no infinities, only S.1111.111 is NaN (max 448); e5m2 = sign, 5 exponent bits (bias 15),
// 2 mantissa bits, subnormals m * 2^-16, exponent 31 Inf (m = 0) or NaN. Also through the file reader, and get()
// refuses them (they have no core dtype).
SDXL_TEST(test_safetensors_float8_widening_is_exact) {
    std::string codes(256, '\0');
    for (int i = 0; i < 256; ++i) codes[size_t(i)] = char(i);
    TempDir dir;
    const std::string path = dir.write("fp8.safetensors", build_file({{"e4", "F8_E4M3", {16, 16}, codes},
                                                                      {"e5", "F8_E5M2", {256}, codes},
                                                                      {"empty", "F8_E4M3", {0, 3}, ""}}));
    auto f = SafetensorsFile::open(path);
    const Tensor e4 = f->get_f32("e4"), e5 = f->get_f32("e5");
    CHECK(e4.dtype() == DType::F32 && (e4.shape() == Shape{16, 16}));
    CHECK(e5.dtype() == DType::F32 && (e5.shape() == Shape{256}));
    CHECK(f->get_f32("empty").numel() == 0);
    CHECK(f->find("e4")->loads_as_f32() && !f->find("e4")->supported);
    int bad4 = 0, bad5 = 0, nan4 = 0, inf5 = 0;
    double max4 = 0;
    for (int i = 0; i < 256; ++i) {
        const bool neg = i & 0x80;
        const float direct4 = sdxl::f8e4m3fn_to_f32(uint8_t(i)), direct5 = sdxl::f8e5m2_to_f32(uint8_t(i));
        const float got4 = e4.data<float>()[i], got5 = e5.data<float>()[i];
        int e = (i >> 3) & 0xf, m = i & 0x7;
        if (e == 15 && m == 7) {
            ++nan4;
            if (!std::isnan(got4) || !std::isnan(direct4)) ++bad4;
        } else {
            double v = e == 0 ? std::ldexp(double(m), -9) : std::ldexp(double(8 + m), e - 7 - 3);
            if (neg) v = -v;
            max4 = std::max(max4, v);
            if (double(got4) != v || std::signbit(got4) != neg || std::memcmp(&got4, &direct4, 4) != 0) ++bad4;
        }
        e = (i >> 2) & 0x1f;
        m = i & 0x3;
        if (e == 31) {
            if (m == 0) {
                ++inf5;
                if (!std::isinf(got5) || std::signbit(got5) != neg) ++bad5;
            } else if (!std::isnan(got5)) {
                ++bad5;
            }
        } else {
            double v = e == 0 ? std::ldexp(double(m), -16) : std::ldexp(double(4 + m), e - 15 - 2);
            if (neg) v = -v;
            if (double(got5) != v || std::signbit(got5) != neg || std::memcmp(&got5, &direct5, 4) != 0) ++bad5;
        }
    }
    CHECK_MSG(bad4 == 0, bad4 << " F8_E4M3 codes widened wrongly");
    CHECK_MSG(bad5 == 0, bad5 << " F8_E5M2 codes widened wrongly");
    CHECK(nan4 == 2 && max4 == 448.0 && inf5 == 2);
    CHECK(e4.data<float>()[0x01] == std::ldexp(1.0f, -9) && e4.data<float>()[0x38] == 1.0f);  // spot values
    CHECK(e5.data<float>()[0x3c] == 1.0f && e5.data<float>()[0x7b] == 57344.0f);
    CHECK_THROWS_CODE(f->get("e4"), ErrorCode::UNSUPPORTED);
    CHECK_THROWS_CODE(f->get("e5"), ErrorCode::UNSUPPORTED);
}

SDXL_TEST(test_safetensors_get_errors_name_file_and_tensor) {
    TempDir dir;
    std::vector<TensorSpec> ts = fixture_tensors();
    ts.push_back({"doubles", "F64", {2}, bytes_of(std::vector<double>{1.0, 2.0})});
    ts.push_back({"flags", "BOOL", {3}, std::string("\1\0\1", 3)});
    ts.push_back({"fp8", "F8_E4M3", {1}, std::string("\x38", 1)});
    std::string path = dir.write("m.safetensors", build_file(ts));
    auto f = SafetensorsFile::open(path);

    const TensorInfo* d = f->find("doubles");
    CHECK(d && !d->supported && d->element_size == 8 && d->dtype_name == "F64");
    const TensorInfo* fl = f->find("flags");
    CHECK(fl && !fl->supported && fl->element_size == 1);
    CHECK_THROWS_CODE(f->get("doubles"), ErrorCode::UNSUPPORTED);
    CHECK_THROWS_CODE(f->get_f32("doubles"), ErrorCode::UNSUPPORTED);
    CHECK_THROWS_CODE(f->get("flags"), ErrorCode::UNSUPPORTED);
    CHECK_THROWS_CODE(f->get("fp8"), ErrorCode::UNSUPPORTED);
    CHECK_THROWS_CODE(f->get_f32("ids"), ErrorCode::INVALID_ARGUMENT);
    CHECK_THROWS_CODE(f->get("missing.weight"), ErrorCode::NOT_FOUND);
    CHECK_THROWS_CODE(f->get_f32("missing.weight"), ErrorCode::NOT_FOUND);
    try {
        f->get("missing.weight");
    } catch (const Error& e) {
        CHECK(contains(e.message(), path));
        CHECK(contains(e.message(), "'missing.weight'"));
    }
    try {
        f->get("doubles");
    } catch (const Error& e) {
        CHECK(contains(e.message(), path) && contains(e.message(), "'doubles'") && contains(e.message(), "F64"));
    }
}

// Zero-size tensors with huge dims are valid; loading them must not overflow any index arithmetic.
SDXL_TEST(test_safetensors_zero_size_tensors_with_huge_dims) {
    TempDir dir;
    std::string h = "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("z", "F32", "[9223372036854775807,0]", 8, 8) +
                    "," + entry("y", "F16", "[0,9223372036854775807]", 8, 8) + "," +
                    entry("x", "I64", "[3,0,3074457345618258602]", 8, 8) + "}";
    while (h.size() % 8) h += ' ';
    std::string path = dir.write("z.safetensors", le64(h.size()) + h + std::string(8, '\0'));
    auto f = SafetensorsFile::open(path);
    for (const char* name : {"z", "y", "x"}) {
        Tensor t = f->get(name);
        CHECK_MSG(t.numel() == 0 && t.shape() == f->find(name)->shape, name);
        if (t.dtype() != DType::I64) CHECK_MSG(f->get_f32(name).numel() == 0, name);
    }
    CHECK(f->get("a").numel() == 2);
}

// ---------------------------------------------------------------------------------------------- open()

SDXL_TEST(test_safetensors_open_rejects_bad_files) {
    TempDir dir;
    CHECK_THROWS_CODE(SafetensorsFile::open(dir.path + "/does_not_exist.safetensors"), ErrorCode::NOT_FOUND);
    CHECK_THROWS_CODE(SafetensorsFile::open(dir.path), ErrorCode::NOT_FOUND);  // a directory
    CHECK_THROWS_CODE(SafetensorsFile::open(""), ErrorCode::NOT_FOUND);
    CHECK_THROWS_CODE(SafetensorsFile::open("/dev/null"), ErrorCode::BAD_MODEL_FILE);  // not a regular file
    std::string fifo = dir.path + "/fifo";
    if (::mkfifo(fifo.c_str(), 0600) == 0) {
        dir.files.push_back(fifo);
        CHECK_THROWS_CODE(SafetensorsFile::open(fifo), ErrorCode::BAD_MODEL_FILE);  // must not block either
    }

    const std::string good_header = "{" + entry("a", "F32", "[1]", 0, 4) + "}";
    const std::string data(4, '\0');
    struct Case {
        const char* what;
        std::string bytes;
    };
    std::vector<Case> cases = {
        {"empty file", ""},
        {"7 bytes", std::string(7, '\0')},
        {"length only, N = 0", le64(0)},
        {"N = 0 with data", le64(0) + "{}"},
        {"N = 1", le64(1) + "{}"},
        {"N past the end of the file", le64(good_header.size() + 5) + good_header + data},
        {"N = 2^64 - 1", le64(~uint64_t(0)) + good_header + data},
        {"N = 2^63", le64(uint64_t(1) << 63) + good_header + data},
        {"N just over the 100 MB limit", le64(100000001) + good_header + data},
        {"data section shorter than the tensors", le64(good_header.size()) + good_header + "\0\0"},
        {"data section longer than the tensors", le64(good_header.size()) + good_header + data + "x"},
        {"N one short (header cut)", le64(good_header.size() - 1) + good_header + data},
        {"not a safetensors file at all", "PK\3\4 this is a zip file, not weights"},
        {"header of nulls", le64(8) + std::string(8, '\0')},
    };
    for (const Case& c : cases) {
        std::string path = dir.write("bad.safetensors", c.bytes);
        try {
            SafetensorsFile::open(path);
            CHECK_MSG(false, "accepted: " << c.what);
        } catch (const Error& e) {
            CHECK_MSG(e.code() == ErrorCode::BAD_MODEL_FILE, c.what << ": " << e.what());
            CHECK_MSG(contains(e.message(), path), c.what << ": message does not name the file: " << e.message());
        }
    }
    // The same file with the right length is fine.
    CHECK(SafetensorsFile::open(dir.write("ok.safetensors", le64(good_header.size()) + good_header + data))
              ->header()
              .tensors.size() == 1);
    // A header of exactly "{}" and no data: an empty but valid file.
    CHECK(SafetensorsFile::open(dir.write("empty.safetensors", le64(2) + "{}"))->header().tensors.empty());
}

// ---------------------------------------------------------------------------------------------- parse_header

SDXL_TEST(test_safetensors_accepts_valid_edge_cases) {
    struct Case {
        const char* what;
        std::string json;
        uint64_t data_size;
    };
    const std::string a4 = entry("a", "F32", "[1]", 0, 4);
    std::vector<Case> cases = {
        {"empty object", "{}", 0},
        {"whitespace everywhere",
         " \t\r\n{ \"a\" :\n{ \"dtype\" : \"F32\" ,\t\"shape\" : [ 1 , 2 ] , \"data_offsets\" : [ 0 , 8 ] }\r\n}\n\t ",
         8},
        {"space padding", "{" + a4 + "}" + std::string(13, ' '), 4},
        {"fields in any order", "{\"a\":{\"data_offsets\":[0,4],\"shape\":[1],\"dtype\":\"F32\"}}", 4},
        {"tensors out of offset order", "{" + entry("b", "F32", "[1]", 4, 8) + "," + a4 + "}", 8},
        {"scalar", "{" + entry("s", "F32", "[]", 0, 4) + "}", 4},
        {"zero-size first/middle/last",
         "{" + entry("z0", "F16", "[0]", 0, 0) + "," + a4 + "," + entry("z1", "I64", "[3,0]", 4, 4) + "," +
             entry("b", "F16", "[1]", 4, 6) + "," + entry("z2", "BF16", "[0,0,0]", 6, 6) + "}",
         6},
        {"only zero-size tensors", "{" + entry("z", "F32", "[0]", 0, 0) + "}", 0},
        {"huge dim times zero", "{" + entry("z", "F32", "[9223372036854775807,0]", 0, 0) + "}", 0},
        {"metadata first", "{\"__metadata__\":{\"format\":\"pt\"}," + a4 + "}", 4},
        {"metadata last and empty", "{" + a4 + ",\"__metadata__\":{}}", 4},
        {"escaped metadata", "{\"__metadata__\":{\"k\\n\":\"\\\"v\\\\\\/\\b\\f\\r\\t\\u00e9\"}}", 0},
        {"escaped name", "{" + entry("w\\u00e9ight\\ud83d\\ude00", "F32", "[1]", 0, 4) + "}", 4},
        {"raw UTF-8 name", "{" + entry("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "F32", "[1]", 0, 4) + "}", 4},
        {"NUL in a name via escape", "{" + entry("a\\u0000b", "F32", "[1]", 0, 4) + "}", 4},
        {"empty name", "{" + entry("", "F32", "[1]", 0, 4) + "}", 4},
        {"escaped key of __metadata__", "{\"\\u005f_metadata__\":{\"x\":\"y\"}}", 0},
        {"all byte-sized dtypes",
         "{" + entry("f64", "F64", "[1]", 0, 8) + "," + entry("i32", "I32", "[1]", 8, 12) + "," +
             entry("i16", "I16", "[1]", 12, 14) + "," + entry("i8", "I8", "[1]", 14, 15) + "," +
             entry("u8", "U8", "[1]", 15, 16) + "," + entry("bool", "BOOL", "[1]", 16, 17) + "," +
             entry("u16", "U16", "[1]", 17, 19) + "," + entry("u32", "U32", "[1]", 19, 23) + "," +
             entry("u64", "U64", "[1]", 23, 31) + "," + entry("e4", "F8_E4M3", "[1]", 31, 32) + "," +
             entry("e5", "F8_E5M2", "[1]", 32, 33) + "}",
         33},
        {"rank 8", "{" + entry("r", "U8", "[1,1,1,1,1,1,1,2]", 0, 2) + "}", 2},
    };
    for (const Case& c : cases) {
        std::string msg;
        int code = parse_code(c.json, c.data_size, &msg);
        CHECK_MSG(code == -1, c.what << " rejected: " << msg);
    }
    // Spot-check decoded content.
    Header h = parse_header(cases[12].json.data(), cases[12].json.size(), 4, "x");
    CHECK(h.tensors.size() == 1 && h.tensors[0].name == "w\xc3\xa9ight\xf0\x9f\x98\x80");
    h = parse_header(cases[14].json.data(), cases[14].json.size(), 4, "x");
    CHECK(h.tensors.size() == 1 && h.tensors[0].name == std::string("a\0b", 3));
    h = parse_header(cases[11].json.data(), cases[11].json.size(), 0, "x");
    CHECK(h.metadata.size() == 1 && h.metadata[0].first == "k\n" &&
          h.metadata[0].second == "\"v\\/\b\f\r\t\xc3\xa9");
    h = parse_header(cases[16].json.data(), cases[16].json.size(), 0, "x");
    CHECK(h.tensors.empty() && h.metadata.size() == 1);
    h = parse_header(cases[6].json.data(), cases[6].json.size(), 6, "x");
    CHECK(h.tensors.size() == 5 && header_invariants_hold(h, 6));
    CHECK(h.tensors[3].name == "z1" && (h.tensors[3].shape == Shape{3, 0}) && h.tensors[3].dtype == DType::I64);
    h = parse_header(cases[17].json.data(), cases[17].json.size(), 33, "x");
    CHECK(h.tensors.size() == 11);
    for (const TensorInfo& t : h.tensors) CHECK(!t.supported && t.end - t.begin == t.element_size);
}

SDXL_TEST(test_safetensors_rejects_malformed_headers) {
    struct Case {
        const char* what;
        std::string json;
        uint64_t data_size;
        const char* expect_in_message;  // nullptr: any message
    };
    const std::string a4 = entry("a", "F32", "[1]", 0, 4);
    auto one = [](const std::string& body) { return "{\"a\":{" + body + "}}"; };
    const std::string dt = "\"dtype\":\"F32\"", sh = "\"shape\":[1]", of = "\"data_offsets\":[0,4]";
    std::vector<Case> cases = {
        {"empty", "", 0, nullptr},
        {"only whitespace", "   ", 0, nullptr},
        {"truncated object", "{", 0, nullptr},
        {"truncated after a tensor", "{" + a4, 4, nullptr},
        {"truncated inside a string", "{\"a", 0, "unterminated"},
        {"top level is an array", "[]", 0, nullptr},
        {"top level is a string", "\"{}\"", 0, nullptr},
        {"trailing garbage", "{" + a4 + "}x", 4, "after the header object"},
        {"two objects", "{}{}", 0, nullptr},
        {"NUL padding", "{" + a4 + "}" + std::string(3, '\0'), 4, nullptr},
        {"byte order mark", "\xef\xbb\xbf{}", 0, nullptr},
        {"comment", "{/* no */}", 0, nullptr},
        {"trailing comma in object", "{" + a4 + ",}", 4, nullptr},
        {"trailing comma in array", one(dt + ",\"shape\":[1,]," + of), 4, nullptr},
        {"missing colon", "{\"a\"" + a4.substr(4) + "}", 4, nullptr},
        {"single quotes", "{'a':{}}", 0, nullptr},
        {"unquoted key", "{a:{}}", 0, nullptr},
        {"overlap", "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[1]", 4, 8) + "}", 8, "overlaps"},
        {"identical ranges", "{" + a4 + "," + entry("b", "F32", "[1]", 0, 4) + "}", 4, "'b'"},
        {"gap", "{" + a4 + "," + entry("b", "F32", "[1]", 8, 12) + "}", 12, "gap"},
        {"first tensor not at 0", "{" + entry("a", "F32", "[1]", 4, 8) + "}", 8, "gap"},
        {"bytes after the last tensor", "{" + a4 + "}", 8, "belong to no tensor"},
        {"no tensors but data", "{}", 4, "belong to no tensor"},
        {"offset past the end", "{" + entry("a", "F32", "[2]", 0, 8) + "}", 4, "past the end"},
        {"wrong byte size", "{" + entry("a", "F32", "[2]", 0, 4) + "}", 4, "needs 8"},
        {"F16 size as F32", "{" + entry("a", "F16", "[1]", 0, 4) + "}", 4, nullptr},
        {"begin after end", "{" + entry("a", "F32", "[1]", 8, 4) + "}", 8, nullptr},
        {"zero-size inside another", "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("z", "F32", "[0]", 4, 4) + "}",
         8, "'z'"},
        {"zero-size past the end", "{" + a4 + "," + entry("z", "F32", "[0]", 12, 12) + "}", 4, "past the end"},
        {"duplicate tensor", "{" + a4 + "," + a4 + "}", 8, "duplicate"},
        {"duplicate tensor after escapes", "{" + a4 + "," + entry("\\u0061", "F32", "[1]", 4, 8) + "}", 8,
         "duplicate"},
        {"duplicate dtype field", one(dt + "," + dt + "," + sh + "," + of), 4, "duplicate"},
        {"duplicate data_offsets field", one(dt + "," + sh + "," + of + "," + of), 4, "duplicate"},
        {"duplicate __metadata__", "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate"},
        {"duplicate metadata key", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate"},
        {"unknown dtype", one("\"dtype\":\"F31\"," + sh + "," + of), 4, "unknown dtype"},
        {"lower-case dtype", one("\"dtype\":\"f32\"," + sh + "," + of), 4, "unknown dtype"},
        {"sub-byte dtype", one("\"dtype\":\"F4\"," + sh + "," + of), 4, "unknown dtype"},
        {"dtype is a number", one("\"dtype\":4," + sh + "," + of), 4, nullptr},
        {"dtype is null", one("\"dtype\":null," + sh + "," + of), 4, nullptr},
        {"unknown field", one(dt + "," + sh + "," + of + ",\"foo\":1"), 4, "unknown field"},
        {"misspelt field", one(dt + ",\"Shape\":[1]," + of), 4, "unknown field"},
        {"missing dtype", one(sh + "," + of), 4, "missing field \"dtype\""},
        {"missing shape", one(dt + "," + of), 4, "missing field \"shape\""},
        {"missing data_offsets", one(dt + "," + sh), 4, "missing field \"data_offsets\""},
        {"tensor is empty object", "{\"a\":{}}", 0, "missing"},
        {"tensor is a string", "{\"a\":\"F32\"}", 0, "'a'"},
        {"tensor is null", "{\"a\":null}", 0, nullptr},
        {"negative dim", one(dt + ",\"shape\":[-1]," + of), 4, nullptr},
        {"negative zero", one(dt + ",\"shape\":[-0,1],\"data_offsets\":[0,0]"), 0, nullptr},
        {"fraction", one(dt + ",\"shape\":[1.0]," + of), 4, "fraction"},
        {"exponent", one(dt + ",\"shape\":[1e0]," + of), 4, "fraction or exponent"},
        {"upper-case exponent", one(dt + "," + sh + ",\"data_offsets\":[0,4E0]"), 4, nullptr},
        {"leading zero", one(dt + ",\"shape\":[01]," + of), 4, "leading zero"},
        {"plus sign", one(dt + ",\"shape\":[+1]," + of), 4, nullptr},
        {"hex number", one(dt + ",\"shape\":[0x1]," + of), 4, nullptr},
        {"number as string", one(dt + ",\"shape\":[\"1\"]," + of), 4, nullptr},
        {"boolean dim", one(dt + ",\"shape\":[true]," + of), 4, nullptr},
        {"shape is a number", one(dt + ",\"shape\":1," + of), 4, "array"},
        {"shape is an object", one(dt + ",\"shape\":{}," + of), 4, "array"},
        {"nested shape", one(dt + ",\"shape\":[[1]]," + of), 4, nullptr},
        {"one data offset", one(dt + "," + sh + ",\"data_offsets\":[4]"), 4, "exactly 2"},
        {"three data offsets", one(dt + "," + sh + ",\"data_offsets\":[0,4,4]"), 4, "exactly 2"},
        {"no data offsets", one(dt + ",\"shape\":[0],\"data_offsets\":[]"), 0, "exactly 2"},
        {"dim does not fit in u64", one(dt + ",\"shape\":[18446744073709551616]," + of), 4, "64 bits"},
        {"offset does not fit in u64", one(dt + "," + sh + ",\"data_offsets\":[0,99999999999999999999]"), 4, nullptr},
        {"dim above int64", one(dt + ",\"shape\":[9223372036854775808,0],\"data_offsets\":[0,0]"), 0, "too large"},
        {"shape product overflows", one(dt + ",\"shape\":[4294967296,4294967296,2],\"data_offsets\":[0,0]"), 0,
         "overflow"},
        {"product overflows after a zero dim", one(dt + ",\"shape\":[4294967296,0,4294967296],\"data_offsets\":[0,0]"),
         0, "overflow"},
        {"byte size overflows", one(dt + ",\"shape\":[4611686018427387904],\"data_offsets\":[0,0]"), 0, "overflow"},
        {"byte size wraps to the span", one(dt + ",\"shape\":[4611686018427387905],\"data_offsets\":[0,4]"), 4, nullptr},
        {"metadata value is a number", "{\"__metadata__\":{\"k\":1}}", 0, "strings"},
        {"metadata value is null", "{\"__metadata__\":{\"k\":null}}", 0, "strings"},
        {"metadata value is an object", "{\"__metadata__\":{\"k\":{}}}", 0, "strings"},
        {"metadata is an array", "{\"__metadata__\":[]}", 0, "__metadata__"},
        {"metadata is a string", "{\"__metadata__\":\"x\"}", 0, "__metadata__"},
        {"invalid UTF-8 byte", "{\"a\xff\":{}}", 0, "UTF-8"},
        {"truncated UTF-8 sequence", "{\"a\xe2\x82\":{}}", 0, "UTF-8"},
        {"UTF-8 at the very end", "{}\xc3", 0, "UTF-8"},
        {"overlong UTF-8 '/'", "{\"\xc0\xaf\":{}}", 0, "UTF-8"},
        {"overlong 3-byte UTF-8", "{\"\xe0\x80\xaf\":{}}", 0, "UTF-8"},
        {"UTF-8 encoded surrogate", "{\"\xed\xa0\x80\":{}}", 0, "UTF-8"},
        {"UTF-8 above U+10FFFF", "{\"\xf4\x90\x80\x80\":{}}", 0, "UTF-8"},
        {"stray continuation byte", "{\"\x80\":{}}", 0, "UTF-8"},
        {"lone high surrogate", "{" + entry("\\ud800", "F32", "[1]", 0, 4) + "}", 4, "surrogate"},
        {"lone high surrogate at end of string", "{" + entry("x\\ud83d", "F32", "[1]", 0, 4) + "}", 4, "surrogate"},
        {"lone low surrogate", "{" + entry("\\udc00", "F32", "[1]", 0, 4) + "}", 4, "surrogate"},
        {"high surrogate then non-surrogate", "{" + entry("\\ud800\\u0041", "F32", "[1]", 0, 4) + "}", 4,
         "surrogate"},
        {"reversed surrogate pair", "{" + entry("\\ude00\\ud83d", "F32", "[1]", 0, 4) + "}", 4, "surrogate"},
        {"bad hex in \\u", "{" + entry("\\u00g0", "F32", "[1]", 0, 4) + "}", 4, "hex"},
        {"truncated \\u", "{\"\\u00", 0, nullptr},
        {"invalid escape", "{" + entry("\\x41", "F32", "[1]", 0, 4) + "}", 4, "escape"},
        {"raw tab in a string", "{" + entry("a\tb", "F32", "[1]", 0, 4) + "}", 4, "control"},
        {"raw newline in a string", "{\"__metadata__\":{\"k\":\"a\nb\"}}", 0, "control"},
        {"unescaped quote", "{" + entry("a\"b", "F32", "[1]", 0, 4) + "}", 4, nullptr},
        {"non-JSON whitespace (form feed)", "{\f}", 0, nullptr},
        {"non-JSON whitespace (NBSP)", "{\xc2\xa0}", 0, nullptr},
        {"deep nesting in a tensor", "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}", 0,
         nullptr},
        {"deep nesting in metadata", "{\"__metadata__\":{\"k\":" + std::string(100000, '{') + "}}", 0, nullptr},
        {"deep nesting at the top", std::string(100000, '{'), 0, nullptr},
    };
    CHECK(cases.size() >= 30);
    for (const Case& c : cases) {
        std::string msg;
        int code = parse_code(c.json, c.data_size, &msg);
        if (code == -1) {
            CHECK_MSG(false, "accepted malformed header: " << c.what);
            continue;
        }
        CHECK_MSG(code == int(ErrorCode::BAD_MODEL_FILE), c.what << ": wrong code " << code << ": " << msg);
        CHECK_MSG(contains(msg, "t.safetensors"), c.what << ": message does not name the file: " << msg);
        if (c.expect_in_message)
            CHECK_MSG(contains(msg, c.expect_in_message), c.what << ": expected '" << c.expect_in_message
                                                                 << "' in: " << msg);
    }
    // Messages name the tensor.
    std::string msg;
    parse_code("{" + entry("down_blocks.1.weight", "F32", "[3]", 0, 8) + "}", 8, &msg);
    CHECK_MSG(contains(msg, "'down_blocks.1.weight'") && contains(msg, "t.safetensors"), msg);
    // A name too long to print in full is cut.
    parse_code("{\"" + std::string(5000, 'n') + "\":{\"dtype\":\"X\",\"shape\":[],\"data_offsets\":[0,0]}}", 0, &msg);
    CHECK_MSG(msg.size() < 1000 && contains(msg, "5000 bytes"), msg.size());
    // The 100 MB limit holds for parse_header too (without reading the bytes).
    static const char dummy = '{';
    CHECK_THROWS_CODE(parse_header(&dummy, 100000001, 0, "big"), ErrorCode::BAD_MODEL_FILE);
}

// Seeded mutations of valid headers: every outcome is either an accepted header whose promises hold (checked
// independently) or BAD_MODEL_FILE; some also go through open()/get()/get_f32() as whole files.
SDXL_TEST(test_safetensors_mutated_headers_never_crash) {
    struct Seed {
        std::string header;
        uint64_t data_size;
    };
    std::vector<Seed> seeds;
    {
        std::vector<TensorSpec> ts = fixture_tensors();
        std::string h = build_header(ts, {{"format", "pt"}});
        uint64_t size = 0;
        for (auto& t : ts) size += t.bytes.size();
        seeds.push_back({h, size});
    }
    seeds.push_back({"{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("b\\u00e9\\ud83d\\ude00", "F16", "[2,1]", 4, 8) +
                         ",\"__metadata__\":{\"k\\n\":\"v\"}}  ",
                     8});
    seeds.push_back({"{" + entry("z", "I64", "[0,3]", 0, 0) + "," + entry("x", "BF16", "[2]", 0, 4) + "}", 4});

    const char* tokens[] = {"{", "}", "[", "]", "\"", ":", ",", "0", "1", "9", "-", "+", ".", "e", "E", "\\",
                            "\\u", "\\ud800", "\\udc00", "\\u0000", " ", "\t", "\n", "\"dtype\"", "\"shape\"",
                            "\"data_offsets\"", "\"__metadata__\"", "\"F32\"", "\"F64\"", "\"BOOL\"", "null", "true",
                            "18446744073709551615", "18446744073709551616", "9223372036854775807", "9223372036854775808",
                            "4294967296", ",0",
                            "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82\xac", "\xff", "\x80"};
    const int n_tokens = int(sizeof(tokens) / sizeof(tokens[0]));

    std::mt19937_64 rng(20240229);
    auto pick = [&](uint64_t n) { return n == 0 ? uint64_t(0) : rng() % n; };
    TempDir dir;
    std::string path = dir.path + "/mutant.safetensors";
    dir.files.push_back(path);

    int accepted = 0, rejected = 0, files_opened = 0, wrong = 0;
    const int kIterations = 6000;
    for (int it = 0; it < kIterations; ++it) {
        const Seed& seed = seeds[pick(seeds.size())];
        std::string h = seed.header;
        uint64_t data_size = seed.data_size;
        int n_mut = 1 + int(pick(4));
        for (int m = 0; m < n_mut; ++m) {
            size_t pos = size_t(pick(h.size() + 1));
            switch (pick(8)) {
                case 0:  // random byte
                    if (!h.empty()) h[pos % h.size()] = char(pick(256));
                    break;
                case 1:  // insert a token
                    h.insert(pos, tokens[pick(n_tokens)]);
                    break;
                case 2: {  // delete a range
                    size_t len = size_t(pick(8)) + 1;
                    if (pos < h.size()) h.erase(pos, len);
                    break;
                }
                case 3: {  // duplicate a range elsewhere
                    if (h.empty()) break;
                    size_t from = size_t(pick(h.size()));
                    size_t len = size_t(pick(40)) + 1;
                    std::string piece = h.substr(from, len);
                    h.insert(pos, piece);
                    break;
                }
                case 4:  // truncate
                    h.resize(pos);
                    break;
                case 5: {  // change a digit
                    std::vector<size_t> digits;
                    for (size_t i = 0; i < h.size(); ++i)
                        if (h[i] >= '0' && h[i] <= '9') digits.push_back(i);
                    if (!digits.empty()) h[digits[pick(digits.size())]] = char('0' + pick(10));
                    break;
                }
                case 6:  // change the data size
                    data_size = pick(3) == 0 ? 0 : data_size + pick(9) - 4;
                    break;
                default:  // flip one bit
                    if (!h.empty()) h[pos % h.size()] ^= char(1 << pick(8));
                    break;
            }
        }
        try {
            Header parsed = parse_header(h.data(), h.size(), data_size, "mutant");
            ++accepted;
            if (!header_invariants_hold(parsed, data_size)) {
                ++wrong;
                CHECK_MSG(false, "accepted a header that breaks the invariants: " << h);
            }
        } catch (const Error& e) {
            ++rejected;
            if (e.code() != ErrorCode::BAD_MODEL_FILE) {
                ++wrong;
                CHECK_MSG(false, "wrong code for a mutant: " << e.what());
            }
        }
        // Every 8th mutant also as a whole file (data bytes are a repeating pattern).
        if (it % 8 == 0 && data_size < (1u << 20)) {
            std::string bytes = le64(h.size()) + h;
            for (uint64_t i = 0; i < data_size; ++i) bytes += char(i * 37);
            {
                std::ofstream out(path, std::ios::binary | std::ios::trunc);
                out.write(bytes.data(), std::streamsize(bytes.size()));
            }
            try {
                auto f = SafetensorsFile::open(path);
                ++files_opened;
                for (const TensorInfo& t : f->header().tensors) {
                    try {
                        Tensor x = f->get(t.name);
                        if (x.numel() > 0 && t.dtype != DType::I64) {
                            Tensor y = f->get_f32(t.name);
                            volatile float sink = y.data<float>()[y.numel() - 1];
                            (void)sink;
                        }
                    } catch (const Error& e) {
                        if (e.code() != ErrorCode::UNSUPPORTED) {
                            ++wrong;
                            CHECK_MSG(false, "get failed on an accepted file: " << e.what());
                        }
                    }
                }
            } catch (const Error& e) {
                if (e.code() != ErrorCode::BAD_MODEL_FILE) {
                    ++wrong;
                    CHECK_MSG(false, "wrong code from open: " << e.what());
                }
            }
        }
    }
    std::cout << "  mutation loop: " << kIterations << " headers, " << accepted << " accepted, " << rejected
              << " rejected, " << files_opened << " files opened\n";
    CHECK(accepted + rejected == kIterations);
    CHECK(accepted > 0 && rejected > 0);  // the loop explores both sides
    CHECK(wrong == 0);
}
