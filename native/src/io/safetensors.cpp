#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>
#include <system_error>

#include "core/half.h"
#include "core/parallel.h"

// Tensor data is used in place, so the file's little-endian bytes must be the host's order.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors zero-copy loading needs a little-endian host");

namespace sdxl::io {

namespace {

struct DTypeEntry {
    const char* name;
    size_t size;
    bool supported;
    DType dtype;
};

// Every byte-sized dtype of the format. Sub-byte ones (F4, F6_*) are not listed and so rejected as unknown.
constexpr DTypeEntry kDTypes[] = {
    {"F32", 4, true, DType::F32},      {"F16", 2, true, DType::F16},       {"BF16", 2, true, DType::BF16},
    {"I64", 8, true, DType::I64},      {"F64", 8, false, DType::F32},      {"I32", 4, false, DType::F32},
    {"I16", 2, false, DType::F32},     {"I8", 1, false, DType::F32},       {"U8", 1, false, DType::F32},
    {"BOOL", 1, false, DType::F32},    {"U16", 2, false, DType::F32},      {"U32", 4, false, DType::F32},
    {"U64", 8, false, DType::F32},     {"F8_E4M3", 1, false, DType::F32},  {"F8_E5M2", 1, false, DType::F32},
    {"F8_E8M0", 1, false, DType::F32}, {"C64", 8, false, DType::F32},
};

// A name as it appears in messages: quoted, non-printable bytes escaped, long names cut (a hostile file may
// hold a 100 MB name).
std::string quoted(const std::string& s) {
    constexpr size_t kMax = 160;
    std::string out = "'";
    size_t n = std::min(s.size(), kMax);
    // Do not cut a multi-byte UTF-8 sequence in half.
    if (n < s.size())
        while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
    static const char* hex = "0123456789abcdef";
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '\'' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += char(c);
        }
    }
    if (n < s.size()) out += "...(" + std::to_string(s.size()) + " bytes)";
    out += "'";
    return out;
}

// Strict UTF-8 (Unicode 15, table 3-7): no overlong forms, no surrogates, nothing above U+10FFFF.
// Returns the offset of the first invalid byte, or len if all is valid.
size_t find_invalid_utf8(const unsigned char* s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t extra;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
            cp = c & 0x07;
        } else {
            return i;  // continuation byte as lead, C0/C1 (always overlong), F5..FF
        }
        if (len - i - 1 < extra) return i;
        for (size_t k = 1; k <= extra; ++k) {
            unsigned b = s[i + k];
            if ((b & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (b & 0x3F);
        }
        if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000)) return i;  // overlong
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += extra + 1;
    }
    return len;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

// A recursive-descent parser for exactly the safetensors schema:
//   header   = ws '{' [ entry *( ',' entry ) ] '}' ws
//   entry    = string ':' ( tensor | metadata )     ("__metadata__" -> metadata)
//   tensor   = '{' "dtype": string, "shape": [uint...], "data_offsets": [uint, uint] '}' (any order)
//   metadata = '{' [ string ':' string *( ',' string ':' string ) ] '}'
// with RFC 8259 tokens. Every production is also JSON's, so whatever it accepts is valid JSON; values of any
// other type are rejected where they appear. The schema is at most three levels deep and the parser never
// descends further, so a hostile nesting depth cannot exhaust the stack: no separate depth counter needed.
class Parser {
public:
    Parser(const char* json, size_t len, const std::string& file)
        : begin_(reinterpret_cast<const unsigned char*>(json)), p_(begin_), end_(begin_ + len), file_(file) {}

    Header parse(uint64_t data_size) {
        size_t bad = find_invalid_utf8(begin_, size_t(end_ - begin_));
        if (bad != size_t(end_ - begin_))
            fail(ErrorCode::BAD_MODEL_FILE, file_, ": safetensors header is not valid UTF-8 (byte ", bad, " of ",
                 end_ - begin_, ")");
        Header h;
        bool seen_metadata = false;
        ws();
        expect('{', "the header must be a JSON object");
        ws();
        if (!consume('}')) {
            for (;;) {
                ws();
                if (peek() != '"') syntax("expected a string key");
                std::string key = string();
                ws();
                expect(':', "expected ':' after a key");
                ws();
                if (key == "__metadata__") {
                    if (seen_metadata) fail(ErrorCode::BAD_MODEL_FILE, file_, ": duplicate key '__metadata__'");
                    seen_metadata = true;
                    metadata(h.metadata);
                } else {
                    h.tensors.push_back(tensor(std::move(key), data_size));
                }
                ws();
                if (consume(',')) continue;
                expect('}', "expected ',' or '}' after a value in the header object");
                break;
            }
        }
        ws();  // trailing padding (writers pad with spaces to 8-byte alignment)
        if (p_ != end_) syntax("unexpected bytes after the header object");

        check_unique_metadata(h.metadata);
        std::sort(h.tensors.begin(), h.tensors.end(),
                  [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
        for (size_t i = 1; i < h.tensors.size(); ++i)
            if (h.tensors[i].name == h.tensors[i - 1].name)
                fail(ErrorCode::BAD_MODEL_FILE, file_, ": duplicate tensor ", quoted(h.tensors[i].name));
        check_tiling(h.tensors, data_size);
        return h;
    }

private:
    int peek() const { return p_ < end_ ? *p_ : -1; }

    bool consume(char c) {
        if (p_ < end_ && *p_ == static_cast<unsigned char>(c)) {
            ++p_;
            return true;
        }
        return false;
    }

    void ws() {
        while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
    }

    // show_found: say what token is at the error position (not useful inside a string or number).
    [[noreturn]] void syntax(const char* what, bool show_found = true) const {
        std::string where = context_.empty() ? "" : "tensor " + quoted(context_) + ": ";
        std::string after = show_found ? " (found " + found() + ")" : "";
        fail(ErrorCode::BAD_MODEL_FILE, file_, ": ", where, "invalid safetensors header at byte ", p_ - begin_,
             " of ", end_ - begin_, ": ", what, after);
    }

    bool at_literal(const char* lit) const {
        size_t n = std::strlen(lit);
        return size_t(end_ - p_) >= n && std::memcmp(p_, lit, n) == 0;
    }

    // The kind of token at p_, for messages.
    std::string found() const {
        if (p_ >= end_) return "end of header";
        unsigned char c = *p_;
        switch (c) {
            case '{': return "an object";
            case '[': return "an array";
            case '"': return "a string";
            case 't': if (at_literal("true")) return "a boolean"; break;
            case 'f': if (at_literal("false")) return "a boolean"; break;
            case 'n': if (at_literal("null")) return "null"; break;
            case '-': return "a negative number";
            default: break;
        }
        if (c >= '0' && c <= '9') return "a number";
        if (c >= 0x20 && c < 0x7f) return std::string("'") + char(c) + "'";
        static const char* hex = "0123456789abcdef";
        return std::string("byte 0x") + hex[c >> 4] + hex[c & 15];
    }

    void expect(char c, const char* what) {
        if (!consume(c)) syntax(what);
    }

    unsigned hex4() {
        if (end_ - p_ < 4) syntax("truncated \\u escape", false);
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
            unsigned char c = *p_;
            unsigned d;
            if (c >= '0' && c <= '9') d = c - '0';
            else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
            else syntax("bad hex digit in \\u escape", false);
            v = v * 16 + d;
            ++p_;
        }
        return v;
    }

    // A JSON string with all escapes decoded. The raw bytes were already checked to be valid UTF-8.
    std::string string() {
        expect('"', "expected a string");
        std::string out;
        for (;;) {
            if (p_ >= end_) syntax("unterminated string", false);
            unsigned char c = *p_;
            if (c == '"') {
                ++p_;
                return out;
            }
            if (c < 0x20) syntax("raw control character in a string", false);
            if (c != '\\') {
                out += char(c);
                ++p_;
                continue;
            }
            ++p_;
            if (p_ >= end_) syntax("unterminated escape", false);
            char e = char(*p_);
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    ++p_;
                    uint32_t cp = hex4();
                    if (cp >= 0xDC00 && cp <= 0xDFFF) syntax("lone low surrogate in a \\u escape", false);
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u')
                            syntax("high surrogate not followed by a \\u low surrogate", false);
                        p_ += 2;
                        uint32_t lo = hex4();
                        if (lo < 0xDC00 || lo > 0xDFFF)
                            syntax("high surrogate not followed by a low surrogate", false);
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    }
                    append_utf8(out, cp);
                    continue;  // p_ already past the escape
                }
                default: syntax("invalid escape in a string", false);
            }
            ++p_;
        }
    }

    // Non-negative integer without sign, fraction, exponent or leading zeros, fitting in 64 bits.
    uint64_t uint(const char* what) {
        unsigned char c = static_cast<unsigned char>(peek());
        if (peek() < 0 || c < '0' || c > '9') syntax(what);
        uint64_t v = 0;
        if (c == '0') {
            ++p_;
            if (p_ < end_ && *p_ >= '0' && *p_ <= '9') syntax("leading zero in a number", false);
        } else {
            while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
                uint64_t d = *p_ - '0';
                if (v > (std::numeric_limits<uint64_t>::max() - d) / 10)
                    syntax("integer does not fit in 64 bits", false);
                v = v * 10 + d;
                ++p_;
            }
        }
        if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E'))
            syntax("expected an integer, not a fraction or exponent", false);
        return v;
    }

    std::vector<uint64_t> uint_array(const char* what_array, const char* what_item) {
        expect('[', what_array);
        std::vector<uint64_t> out;
        ws();
        if (consume(']')) return out;
        for (;;) {
            ws();
            out.push_back(uint(what_item));
            ws();
            if (consume(',')) continue;
            expect(']', "expected ',' or ']' in an array of integers");
            return out;
        }
    }

    void metadata(std::vector<std::pair<std::string, std::string>>& out) {
        context_.clear();
        expect('{', "__metadata__ must be an object of string values");
        ws();
        if (consume('}')) return;
        for (;;) {
            ws();
            if (peek() != '"') syntax("expected a string key in __metadata__");
            std::string key = string();
            ws();
            expect(':', "expected ':' after a key in __metadata__");
            ws();
            if (peek() != '"') syntax("__metadata__ values must be strings");
            std::string value = string();
            out.emplace_back(std::move(key), std::move(value));
            ws();
            if (consume(',')) continue;
            expect('}', "expected ',' or '}' in __metadata__");
            return;
        }
    }

    [[noreturn]] void bad_tensor(const TensorInfo& t, const std::string& what) const {
        fail(ErrorCode::BAD_MODEL_FILE, file_, ": tensor ", quoted(t.name), ": ", what);
    }

    TensorInfo tensor(std::string name, uint64_t data_size) {
        TensorInfo t;
        t.name = std::move(name);
        context_ = t.name;
        expect('{', "a tensor entry must be an object with dtype, shape and data_offsets");
        bool have_dtype = false, have_shape = false, have_offsets = false;
        std::vector<uint64_t> dims, offsets;
        ws();
        if (!consume('}')) {
            for (;;) {
                ws();
                if (peek() != '"') syntax("expected a string key");
                std::string key = string();
                ws();
                expect(':', "expected ':' after a key");
                ws();
                if (key == "dtype") {
                    if (have_dtype) bad_tensor(t, "duplicate field \"dtype\"");
                    have_dtype = true;
                    if (peek() != '"') syntax("\"dtype\" must be a string");
                    t.dtype_name = string();
                } else if (key == "shape") {
                    if (have_shape) bad_tensor(t, "duplicate field \"shape\"");
                    have_shape = true;
                    dims = uint_array("\"shape\" must be an array of integers",
                                      "\"shape\" entries must be non-negative integers");
                } else if (key == "data_offsets") {
                    if (have_offsets) bad_tensor(t, "duplicate field \"data_offsets\"");
                    have_offsets = true;
                    offsets = uint_array("\"data_offsets\" must be an array of two integers",
                                         "\"data_offsets\" entries must be non-negative integers");
                } else {
                    bad_tensor(t, "unknown field " + quoted(key) + " (expected dtype, shape, data_offsets)");
                }
                ws();
                if (consume(',')) continue;
                expect('}', "expected ',' or '}' in a tensor entry");
                break;
            }
        }
        context_.clear();
        if (!have_dtype) bad_tensor(t, "missing field \"dtype\"");
        if (!have_shape) bad_tensor(t, "missing field \"shape\"");
        if (!have_offsets) bad_tensor(t, "missing field \"data_offsets\"");

        const DTypeEntry* entry = nullptr;
        for (const DTypeEntry& e : kDTypes)
            if (t.dtype_name == e.name) entry = &e;
        if (!entry) bad_tensor(t, "unknown dtype " + quoted(t.dtype_name));
        t.element_size = entry->size;
        t.supported = entry->supported;
        t.dtype = entry->dtype;
        if (t.dtype_name == "F8_E4M3") t.float8 = TensorInfo::Float8::E4M3FN;
        if (t.dtype_name == "F8_E5M2") t.float8 = TensorInfo::Float8::E5M2;

        if (offsets.size() != 2)
            bad_tensor(t, "\"data_offsets\" must have exactly 2 entries, has " + std::to_string(offsets.size()));
        t.begin = offsets[0];
        t.end = offsets[1];

        // numel fits in u64, and the product of the non-zero dims fits in int64 so that Tensor accepts the shape
        // whatever the order of its dims.
        constexpr uint64_t kI64Max = uint64_t(std::numeric_limits<int64_t>::max());
        uint64_t nonzero_product = 1;
        bool has_zero = false;
        t.shape.reserve(dims.size());
        for (uint64_t d : dims) {
            if (d > kI64Max) bad_tensor(t, "dimension " + std::to_string(d) + " is too large");
            if (d == 0) {
                has_zero = true;
            } else {
                if (nonzero_product > kI64Max / d) bad_tensor(t, "shape " + dims_str(dims) + " overflows");
                nonzero_product *= d;
            }
            t.shape.push_back(int64_t(d));
        }
        uint64_t numel = has_zero ? 0 : nonzero_product;
        if (numel > std::numeric_limits<uint64_t>::max() / t.element_size)
            bad_tensor(t, "shape " + dims_str(dims) + " of " + t.dtype_name + " overflows the byte size");
        uint64_t nbytes = numel * t.element_size;
        if (t.begin > t.end)
            bad_tensor(t, "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                              "] end before they begin");
        if (t.end > data_size)
            bad_tensor(t, "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                              "] run past the end of the data section (" + std::to_string(data_size) + " bytes)");
        if (t.end - t.begin != nbytes)
            bad_tensor(t, "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "] span " +
                              std::to_string(t.end - t.begin) + " bytes but shape " + dims_str(dims) + " of " +
                              t.dtype_name + " needs " + std::to_string(nbytes));
        return t;
    }

    static std::string dims_str(const std::vector<uint64_t>& dims) {
        std::string s = "[";
        for (size_t i = 0; i < dims.size() && i < 16; ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
        if (dims.size() > 16) s += ", ...";
        return s + "]";
    }

    void check_unique_metadata(const std::vector<std::pair<std::string, std::string>>& md) const {
        std::vector<const std::string*> keys;
        keys.reserve(md.size());
        for (const auto& kv : md) keys.push_back(&kv.first);
        std::sort(keys.begin(), keys.end(), [](const std::string* a, const std::string* b) { return *a < *b; });
        for (size_t i = 1; i < keys.size(); ++i)
            if (*keys[i] == *keys[i - 1])
                fail(ErrorCode::BAD_MODEL_FILE, file_, ": duplicate key ", quoted(*keys[i]), " in __metadata__");
    }

    // As the reference implementation requires: sorted by offsets, the tensors cover the data section
    // exactly, each starting where the previous one ends. No overlap (aliasing tensors), no gap (hidden bytes).
    void check_tiling(const std::vector<TensorInfo>& tensors, uint64_t data_size) const {
        std::vector<const TensorInfo*> order;
        order.reserve(tensors.size());
        for (const TensorInfo& t : tensors) order.push_back(&t);
        std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
            if (a->begin != b->begin) return a->begin < b->begin;
            if (a->end != b->end) return a->end < b->end;
            return a->name < b->name;
        });
        uint64_t pos = 0;
        const TensorInfo* prev = nullptr;
        for (const TensorInfo* t : order) {
            if (t->begin != pos) {
                std::string what = t->begin < pos ? "overlaps" : "leaves a gap of " + std::to_string(t->begin - pos) +
                                                                      " bytes after";
                std::string other = prev ? "tensor " + quoted(prev->name) + ", which ends at byte " +
                                                std::to_string(pos)
                                          : "the start of the data section";
                fail(ErrorCode::BAD_MODEL_FILE, file_, ": tensor ", quoted(t->name), " (data_offsets [", t->begin,
                     ", ", t->end, "]) ", what, " ", other);
            }
            pos = t->end;
            prev = t;
        }
        if (pos != data_size)
            fail(ErrorCode::BAD_MODEL_FILE, file_, ": the tensors cover ", pos, " bytes but the data section has ",
                 data_size, " bytes (", data_size - pos, " bytes belong to no tensor)");
    }

    const unsigned char* begin_;
    const unsigned char* p_;
    const unsigned char* end_;
    const std::string& file_;
    std::string context_;  // the tensor being parsed, for syntax messages
};

uint64_t read_le64(const unsigned char* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

std::string errno_text(int e) { return std::system_category().message(e); }

struct FdCloser {
    int fd;
    ~FdCloser() {
        if (fd >= 0) ::close(fd);
    }
};

}  // namespace

Header parse_header(const char* json, size_t len, uint64_t data_size, const std::string& file) {
    if (len > kMaxHeaderSize)
        fail(ErrorCode::BAD_MODEL_FILE, file, ": safetensors header of ", len, " bytes exceeds the limit of ",
             kMaxHeaderSize);
    if (!json && len) fail(ErrorCode::INVALID_ARGUMENT, "parse_header: null header bytes");
    if (!json) json = "";
    try {
        return Parser(json, len, file).parse(data_size);
    } catch (const std::bad_alloc&) {
        fail(ErrorCode::OUT_OF_MEMORY, file, ": out of memory while reading the safetensors header (", len,
             " bytes)");
    } catch (const std::length_error&) {
        fail(ErrorCode::OUT_OF_MEMORY, file, ": safetensors header too large to hold in memory");
    }
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
    // O_NONBLOCK: opening a FIFO must not hang; it is rejected below as not a regular file.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        fail(ErrorCode::NOT_FOUND, path, ": cannot open safetensors file: ", errno_text(e));
    }
    FdCloser closer{fd};
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        int e = errno;
        fail(ErrorCode::NOT_FOUND, path, ": cannot stat safetensors file: ", errno_text(e));
    }
    if (S_ISDIR(st.st_mode)) fail(ErrorCode::NOT_FOUND, path, ": is a directory, not a .safetensors file");
    if (!S_ISREG(st.st_mode)) fail(ErrorCode::BAD_MODEL_FILE, path, ": not a regular file");
    if (st.st_size < 8)
        fail(ErrorCode::BAD_MODEL_FILE, path, ": file has ", uint64_t(st.st_size),
             " bytes, too short for a safetensors file (at least an 8-byte header length)");
    if (uint64_t(st.st_size) > uint64_t(std::numeric_limits<size_t>::max()))
        fail(ErrorCode::BAD_MODEL_FILE, path, ": file too large to map");
    const size_t size = size_t(st.st_size);

    void* base = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (base == MAP_FAILED) {
        int e = errno;
        if (e == ENOMEM) fail(ErrorCode::OUT_OF_MEMORY, path, ": cannot map ", size, " bytes: ", errno_text(e));
        fail(ErrorCode::NOT_FOUND, path, ": cannot map safetensors file: ", errno_text(e));
    }
    // From here the mapping is owned by a Storage (so every error path below unmaps it); the fd is closed
    // by `closer` on return, the mapping does not need it.
    std::shared_ptr<Storage> mapping;
    try {
        mapping = std::make_shared<Storage>(base, size, Device::CPU, [size](void* p) { ::munmap(p, size); });
        // The mapping is MAP_PRIVATE: pages made writable are copied on first write, the file stays unchanged.
        auto prepare_write = [base, size, path](size_t off, size_t n) {
            if (n == 0) return;
            if (off > size || n > size - off) fail(ErrorCode::INTERNAL, path, ": write range outside the mapping");
            const size_t page = size_t(::sysconf(_SC_PAGESIZE));
            const size_t b = off / page * page, e = std::min(size, (off + n + page - 1) / page * page);
            if (::mprotect(static_cast<char*>(base) + b, e - b, PROT_READ | PROT_WRITE) != 0) {
                int err = errno;
                fail(ErrorCode::OUT_OF_MEMORY, path, ": cannot make weights writable: ", errno_text(err));
            }
        };
        mapping->set_prepare_write(prepare_write);
        // So the file still holds every byte a write replaced: read back with pread (the file is reopened; it must
        // be the file that was mapped), or, for whole pages, by dropping the private copies (MADV_DONTNEED on a
        // private file mapping: the next access reads the file's page again).
        auto read_file = [size, path](size_t off, size_t n, void* dst) {
            if (off > size || n > size - off) fail(ErrorCode::INTERNAL, path, ": read range outside the mapping");
            const int rfd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
            if (rfd < 0) {
                int e = errno;
                fail(ErrorCode::NOT_FOUND, path, ": cannot reopen the weight file to restore weights: ", errno_text(e));
            }
            struct stat now {};
            const bool same_size = ::fstat(rfd, &now) == 0 && uint64_t(now.st_size) == uint64_t(size);
            size_t done = 0;
            while (same_size && done < n) {
                const ssize_t got = ::pread(rfd, static_cast<char*>(dst) + done, n - done, off_t(off + done));
                if (got <= 0) break;
                done += size_t(got);
            }
            ::close(rfd);
            if (done != n)
                fail(ErrorCode::BAD_MODEL_FILE, path, ": the weight file changed on disk since it was loaded (cannot read ",
                     "back the original weights); load the model again");
        };
        mapping->set_original(read_file, [base, size, path, prepare_write, read_file](size_t off, size_t n) {
            if (n == 0) return;
            if (off > size || n > size - off) fail(ErrorCode::INTERNAL, path, ": restore range outside the mapping");
            char* p = static_cast<char*>(base);
            const size_t page = size_t(::sysconf(_SC_PAGESIZE));
            const size_t pb = (off + page - 1) / page * page, pe = (off + n) / page * page;  // whole pages inside
            if (pb < pe && ::madvise(p + pb, pe - pb, MADV_DONTNEED) == 0) {
                if (off < pb) read_file(off, pb - off, p + off);  // the partial first page (other bytes may be
                if (pe < off + n) read_file(pe, off + n - pe, p + pe);  // written by a neighbour: copy ours only)
                return;
            }
            prepare_write(off, n);
            read_file(off, n, p + off);
        });
    } catch (...) {
        ::munmap(base, size);
        fail(ErrorCode::OUT_OF_MEMORY, path, ": out of memory");
    }

    const unsigned char* bytes = static_cast<const unsigned char*>(base);
    uint64_t n = read_le64(bytes);
    if (n < 2)
        fail(ErrorCode::BAD_MODEL_FILE, path, ": header length ", n, " is too small for a JSON object");
    if (n > kMaxHeaderSize)
        fail(ErrorCode::BAD_MODEL_FILE, path, ": header length ", n, " exceeds the limit of ", kMaxHeaderSize,
             " bytes (not a safetensors file?)");
    if (n > size - 8)
        fail(ErrorCode::BAD_MODEL_FILE, path, ": header length ", n, " runs past the end of the file (", size,
             " bytes; truncated?)");

    std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
    file->path_ = path;
    file->header_ = parse_header(reinterpret_cast<const char*>(bytes + 8), size_t(n), size - 8 - n, path);
    file->mapping_ = std::move(mapping);
    file->data_start_ = 8 + n;
    return file;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
    auto it = std::lower_bound(header_.tensors.begin(), header_.tensors.end(), name,
                               [](const TensorInfo& t, const std::string& n) { return t.name < n; });
    if (it == header_.tensors.end() || it->name != name) return nullptr;
    return &*it;
}

const TensorInfo& SafetensorsFile::require(const std::string& name, bool float8_ok) const {
    const TensorInfo* info = find(name);
    if (!info)
        fail(ErrorCode::NOT_FOUND, path_, ": no tensor ", quoted(name), " in this file (it has ",
             header_.tensors.size(), " tensors)");
    if (info->float8 != TensorInfo::Float8::NONE && !float8_ok)
        fail(ErrorCode::UNSUPPORTED, path_, ": tensor ", quoted(name), " is ", info->dtype_name,
             ", an 8-bit float that is only read widened to F32");
    if (!info->supported && !(float8_ok && info->float8 != TensorInfo::Float8::NONE))
        fail(ErrorCode::UNSUPPORTED, path_, ": tensor ", quoted(name), " has dtype ", info->dtype_name,
             ", which cannot be loaded (supported: F32, F16, BF16, I64, and F8_E4M3 / F8_E5M2 widened to F32)");
    return *info;
}

const char* SafetensorsFile::bytes_of(const TensorInfo& info) const {
    // In range: parse_header checked end <= data size, and data_start_ + data size == file size.
    return static_cast<const char*>(mapping_->data()) + data_start_ + info.begin;
}

Tensor SafetensorsFile::get(const std::string& name) const {
    const TensorInfo& info = require(name);
    // Nothing to share, and a view's index arithmetic could overflow on a valid shape such as [2^63-1, 0].
    if (info.begin == info.end) return Tensor::empty(info.shape, info.dtype);
    const uint64_t offset = data_start_ + info.begin;  // file offset; the mapping is page-aligned
    if (offset % info.element_size == 0)
        return Tensor::from_storage(mapping_, int64_t(offset / info.element_size), info.shape,
                                    contiguous_strides(info.shape), info.dtype);
    // Misaligned for its element type (a header length that is not a multiple of 8): a copy is the only
    // portable way to hand out typed data.
    Tensor t = Tensor::empty(info.shape, info.dtype);
    std::memcpy(t.raw_data(), bytes_of(info), size_t(info.end - info.begin));
    return t;
}

namespace {

// The 256 values of an 8-bit float format, decoded once.
struct Float8Table {
    float values[256];
    explicit Float8Table(float (*decode)(uint8_t)) {
        for (int i = 0; i < 256; ++i) values[i] = decode(uint8_t(i));
    }
};

}  // namespace

Tensor SafetensorsFile::get_f32(const std::string& name) const {
    const TensorInfo& info = require(name, true);
    return get_f32_rows(name, 0, info.shape.empty() ? 1 : info.shape[0]);
}

Tensor SafetensorsFile::get_f32_rows(const std::string& name, int64_t row_begin, int64_t row_end) const {
    const TensorInfo& info = require(name, true);
    const int64_t rows = info.shape.empty() ? 1 : info.shape[0];
    if (row_begin < 0 || row_end < row_begin || row_end > rows)
        fail(ErrorCode::INVALID_ARGUMENT, path_, ": rows [", row_begin, ", ", row_end, ") of tensor ", quoted(name),
             " with ", rows, " rows");
    const bool all = row_begin == 0 && row_end == rows;
    if (info.dtype == DType::I64 && info.float8 == TensorInfo::Float8::NONE)
        fail(ErrorCode::INVALID_ARGUMENT, path_, ": tensor ", quoted(name), " is I64, not a floating-point tensor");
    if (info.dtype == DType::F32 && info.float8 == TensorInfo::Float8::NONE) {
        const Tensor t = get(name);
        return all ? t : t.narrow(0, row_begin, row_end - row_begin);
    }
    Shape shape = info.shape;
    if (!shape.empty()) shape[0] = row_end - row_begin;
    Tensor out = Tensor::empty(shape, DType::F32);
    const int64_t n = out.numel();
    if (n == 0) return out;
    const int64_t row_elems = rows > 0 ? int64_t(shape_numel(info.shape) / rows) : 0;
    float* dst = out.data<float>();
    const char* src = bytes_of(info) + size_t(row_begin * row_elems) * info.element_size;
    if (info.float8 != TensorInfo::Float8::NONE) {
        static const Float8Table e4m3(f8e4m3fn_to_f32), e5m2(f8e5m2_to_f32);
        const float* table = info.float8 == TensorInfo::Float8::E4M3FN ? e4m3.values : e5m2.values;
        const uint8_t* s8 = reinterpret_cast<const uint8_t*>(src);
        parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) dst[i] = table[s8[i]];
        });
    } else {
        const bool bf16 = info.dtype == DType::BF16;
        // Source may be misaligned, hence memcpy per element (compiles to a plain load).
        parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) {
                uint16_t h;
                std::memcpy(&h, src + 2 * i, 2);
                dst[i] = bf16 ? bf16_to_f32(h) : f16_to_f32(h);
            }
        });
    }
    release_pages(src, size_t(n) * info.element_size);
    return out;
}

void SafetensorsFile::release_pages(const char* begin, size_t n) const {
    const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
    const uintptr_t b = (uintptr_t(begin) + page - 1) / page * page, e = (uintptr_t(begin) + n) / page * page;
    if (b < e) (void)::madvise(reinterpret_cast<void*>(b), size_t(e - b), MADV_DONTNEED);  // advice only
}

}  // namespace sdxl::io
