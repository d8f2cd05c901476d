// Mutated .safetensors files for the loaders' never-crash tests (single-file checkpoints, VAE files, LoRA files).
// A file is a list of tensors whose data point into a base file's bytes, so a mutant copies only what it changes
// and is written without being concatenated in memory. Each mutant applies one kind of damage to one random tensor
// (or to the header text); a Tally counts what the loader made of them, by error code and by kind.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace sdxl_test::mutants {

struct FileTensor {
    std::string name, dtype;
    sdxl::Shape shape;
    const char* data = nullptr;
    size_t size = 0;
    std::string extra;             // appended bytes
    int64_t begin = -1, end = -1;  // data_offsets written instead of the real ones
};

struct Base {
    std::string what;                    // for messages: "single-file fp16", ...
    std::vector<FileTensor> tensors;     // sorted by name
    std::shared_ptr<std::string> blob;   // owns the data
};

// name, dtype, shape, raw bytes
struct RawTensor {
    std::string name, dtype;
    sdxl::Shape shape;
    std::string bytes;
};

inline Base make_base(const std::string& what, const std::vector<RawTensor>& raw) {
    Base b;
    b.what = what;
    b.blob = std::make_shared<std::string>();
    for (const RawTensor& r : raw) *b.blob += r.bytes;
    size_t off = 0;
    for (const RawTensor& r : raw) {
        b.tensors.push_back(FileTensor{r.name, r.dtype, r.shape, b.blob->data() + off, r.bytes.size(), "", -1, -1});
        off += r.bytes.size();
    }
    std::sort(b.tensors.begin(), b.tensors.end(),
              [](const FileTensor& x, const FileTensor& y) { return x.name < y.name; });
    return b;
}

inline std::string header_of(const std::vector<FileTensor>& ts) {
    std::string h = "{";
    uint64_t off = 0;
    for (size_t i = 0; i < ts.size(); ++i) {
        const FileTensor& t = ts[i];
        const uint64_t n = t.size + t.extra.size();
        h += (i ? "," : "") + std::string("\"") + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[";
        for (size_t d = 0; d < t.shape.size(); ++d) h += (d ? "," : "") + std::to_string(t.shape[d]);
        h += "],\"data_offsets\":[" + std::to_string(t.begin >= 0 ? uint64_t(t.begin) : off) + "," +
             std::to_string(t.end >= 0 ? uint64_t(t.end) : off + n) + "]}";
        off += n;
    }
    h += "}";
    while (h.size() % 8) h += ' ';
    return h;
}

inline size_t data_size(const std::vector<FileTensor>& ts) {
    size_t n = 0;
    for (const auto& t : ts) n += t.size + t.extra.size();
    return n;
}

struct Mutant {
    int kind = 0;
    std::string note;  // for messages: the kind and the tensor it hit
    std::vector<FileTensor> tensors;
    std::string header;
    uint64_t length_field = 0;  // the 8-byte header length as written
    size_t limit = SIZE_MAX;    // the file is cut after this many bytes
};

// Writes the 8-byte length, the header and the data, cut after `limit` bytes.
inline void write(const std::string& path, const Mutant& m) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) return;
    size_t written = 0;
    auto put = [&](const char* p, size_t n) {
        n = std::min(n, m.limit - std::min(m.limit, written));
        if (n) std::fwrite(p, 1, n, f);
        written += n;
    };
    char len[8];
    for (int i = 0; i < 8; ++i) len[i] = char((m.length_field >> (8 * i)) & 0xff);
    put(len, 8);
    put(m.header.data(), m.header.size());
    for (const FileTensor& t : m.tensors) {
        put(t.data, t.size);
        put(t.extra.data(), t.extra.size());
    }
    std::fclose(f);
}

// The base file itself, unmutated.
inline Mutant unmutated(const Base& b) {
    Mutant m;
    m.tensors = b.tensors;
    m.header = header_of(m.tensors);
    m.length_field = m.header.size();
    m.kind = -1;
    return m;
}

constexpr int kKindCount = 12;
inline const char* kind_name(int kind) {
    static const char* kNames[kKindCount] = {
        "missing key",       "renamed key",          "foreign key",     "wrong shape",
        "dtype (same size)", "dtype (other size)",   "extra row",       "truncated",
        "flipped header bytes", "bad header JSON",   "offsets out of range", "zero/huge dim"};
    return kind >= 0 && kind < kKindCount ? kNames[kind] : "unmutated";
}

// A dtype of the same element size (the file stays valid): non-float ones must be refused at load, float ones
// reinterpret the bytes.
inline std::string same_size_dtype(const std::string& d, uint64_t r) {
    static const std::vector<std::string> one = {"U8", "I8", "BOOL", "F8_E8M0", "F8_E4M3", "F8_E5M2"};
    static const std::vector<std::string> two = {"I16", "U16", "F16", "BF16"};
    static const std::vector<std::string> four = {"I32", "U32", "F32"};
    const auto& set = (d == "F32") ? four : (d == "F16" || d == "BF16") ? two : one;
    std::string out = set[r % set.size()];
    return out == d ? set[(r + 1) % set.size()] : out;
}

// One mutant of `base` with damage of `kind` (0..kKindCount-1); `foreign` are key prefixes of other formats that a
// "foreign key" mutant puts in front of a tensor's name.
inline Mutant mutate(const Base& base, int kind, std::mt19937_64& rng, const std::vector<std::string>& foreign) {
    auto pick = [&](size_t n) { return n ? size_t(rng() % n) : 0; };
    Mutant m;
    m.kind = kind;
    std::vector<FileTensor>& ts = m.tensors;
    ts = base.tensors;
    const size_t ti = pick(ts.size());
    FileTensor& t = ts[ti];
    m.note = std::string(kind_name(kind)) + " at '" + t.name + "'";
    switch (kind) {
        case 0: ts.erase(ts.begin() + long(ti)); break;
        case 1: {  // a name changed inside (an unknown module) or at its end (an unknown part)
            const size_t dot = t.name.find('.', pick(t.name.size()));
            t.name.insert(dot == std::string::npos ? t.name.size() : dot, "_x");
            break;
        }
        case 2: t.name = foreign[pick(foreign.size())] + t.name; break;
        case 3:  // same bytes, another shape
            if (t.shape.size() >= 2) std::swap(t.shape[0], t.shape[t.shape.size() - 1]);
            else t.shape = {1, t.shape.empty() ? 1 : t.shape[0]};
            if (t.shape.size() == 4 && (rng() & 1)) t.shape = {t.shape[0] * t.shape[1], t.shape[2] * t.shape[3]};
            break;
        case 4: t.dtype = same_size_dtype(t.dtype, rng()); break;
        case 5: t.dtype = t.dtype == "F32" ? ((rng() & 1) ? "F16" : "F8_E4M3") : ((rng() & 1) ? "F32" : "I64"); break;
        case 6:  // one more row of data
            if (!t.shape.empty() && t.shape[0] > 0) {
                t.extra.assign(t.size / size_t(t.shape[0]), char(rng()));
                t.shape[0] += 1;
            } else {
                t.shape = {2};
                t.extra.assign(t.size, '\0');
            }
            break;
        case 10: {
            const size_t total = data_size(ts);
            switch (pick(4)) {
                case 0: t.begin = int64_t(total + 1 + pick(100)); t.end = t.begin + int64_t(t.size); break;
                case 1: t.end = int64_t(total + 1 + pick(1 << 20)); break;
                case 2: t.begin = int64_t(t.size + 1); t.end = 0; break;  // begin > end
                default:                                                   // overlapping another tensor, same size
                    t.begin = int64_t(pick(std::max<size_t>(1, total - t.size)));
                    t.end = t.begin + int64_t(t.size);
                    break;
            }
            break;
        }
        case 11:
            if (t.shape.empty()) t.shape = {0};
            else t.shape[pick(t.shape.size())] = (rng() & 1) ? 0 : (int64_t(1) << (40 + pick(23)));
            break;
        default: break;  // 7, 8, 9: below
    }
    std::string& header = m.header;
    header = header_of(ts);
    m.length_field = header.size();
    if (kind == 8)
        for (int i = 0; i < 1 + int(pick(4)); ++i) header[pick(header.size())] = char(rng());
    if (kind == 9) {
        bool keep_length = false;
        switch (pick(6)) {
            case 0: {  // a structural character blanked
                size_t at = header.find_first_of("{}[]:,\"", pick(header.size()));
                header[at == std::string::npos ? 0 : at] = ' ';
                break;
            }
            case 1: header.insert(header.rfind('}'), ","); break;                                     // trailing comma
            case 2: header.insert(1, "\"" + ts[0].name + "\":{\"dtype\":\"F16\"},"); break;  // duplicate key
            case 3: {                                                                                  // ':' -> '='
                const size_t at = header.find(':', pick(header.size()));
                header[at == std::string::npos ? header.find(':') : at] = '=';
                break;
            }
            case 4: m.length_field = header.size() + 1 + pick(64); keep_length = true; break;  // past the header
            default:
                m.length_field = (rng() & 1) ? (uint64_t(1) << 62) : pick(header.size());
                keep_length = true;
                break;
        }
        if (!keep_length) m.length_field = header.size();
    }
    if (kind == 7) {  // cut anywhere in the data, or in the header
        const size_t into_data = pick(data_size(ts) + 1);
        m.limit = 8 + header.size() + into_data - ((rng() & 1) ? 0 : pick(header.size()));
    }
    return m;
}

// What a loader made of the mutants.
struct Tally {
    int refused = 0, loaded = 0;
    std::map<std::string, int> by_code;
    std::map<std::string, std::pair<int, int>> by_kind;  // kind -> (refused, loaded)

    void refuse(int kind, sdxl::ErrorCode code) {
        ++refused;
        ++by_code[sdxl::error_code_name(code)];
        ++by_kind[kind_name(kind)].first;
    }
    void load(int kind) {
        ++loaded;
        ++by_kind[kind_name(kind)].second;
    }
    void print(const std::string& what) const {
        std::cout << "  " << what << ": " << refused << " refused (";
        for (const auto& [code, n] : by_code) std::cout << code << " " << n << ";";
        std::cout << "), " << loaded << " loaded; refused/loaded by mutation:";
        for (const auto& [k, n] : by_kind) std::cout << " " << k << " " << n.first << "/" << n.second << ";";
        std::cout << "\n";
    }
};

}  // namespace sdxl_test::mutants
