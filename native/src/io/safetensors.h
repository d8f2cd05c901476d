// Reader for .safetensors weight files (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length N, N bytes of UTF-8 JSON describing the tensors, then the raw data section.
//
// These files come from anywhere, so the header is parsed by a strict parser that accepts exactly the
// safetensors schema (as the reference Rust implementation validates it) and checks every size and offset
// against the file before anything is read. Any deviation is Error(BAD_MODEL_FILE) naming the file, the tensor
// and what is wrong; nothing here aborts or reads outside the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace sdxl::io {

// Largest header accepted (the reference implementation's limit).
constexpr uint64_t kMaxHeaderSize = 100000000;

struct TensorInfo {
    std::string name;
    // As in the file: "F32", "F16", "BF16", "I64", "F64", "I32", "I16", "I8", "U8", "BOOL", "U16", "U32", "U64",
    // "F8_E4M3", "F8_E5M2", "F8_E8M0", "C64".
    std::string dtype_name;
    size_t element_size = 0;  // bytes per element of dtype_name
    bool supported = false;   // dtype is one of F32/F16/BF16/I64 (then `dtype` is valid)
    DType dtype = DType::F32;
    // F8_E4M3 (float8_e4m3fn) / F8_E5M2: storage-only formats of fp8 checkpoints, read through get_f32 (widened once).
    enum class Float8 : uint8_t { NONE, E4M3FN, E5M2 } float8 = Float8::NONE;
    // A floating-point tensor get_f32 can widen: F32, F16, BF16, F8_E4M3 or F8_E5M2.
    bool loads_as_f32() const { return (supported && dtype != DType::I64) || float8 != Float8::NONE; }
    Shape shape;
    uint64_t begin = 0, end = 0;  // data_offsets, relative to the start of the data section
};

struct Header {
    std::vector<TensorInfo> tensors;                            // sorted by name
    std::vector<std::pair<std::string, std::string>> metadata;  // __metadata__, in file order
};

// Strictly parses and validates a header (the JSON bytes) against a data section of data_size bytes.
// `file` is only used in messages. Throws Error(BAD_MODEL_FILE, "<file>: ... tensor '<name>' ...").
// Memory used is a small multiple of len (no DOM is built).
Header parse_header(const char* json, size_t len, uint64_t data_size, const std::string& file);

// A memory-mapped safetensors file. Tensors returned by get() point into the mapping and keep it alive
// (the mapping is one Storage shared by all of them), so they outlive this object. The mapping is read-only:
// writing through a tensor from get() faults; copy it (clone()) to modify it.
// If another process truncates the file while it is mapped, reading the lost pages raises SIGBUS: that is
// the one failure mmap cannot turn into an error; weight files are not expected to change under a reader.
class SafetensorsFile {
public:
    // NOT_FOUND if missing/unreadable or a directory, BAD_MODEL_FILE if malformed or not a regular file.
    static std::shared_ptr<SafetensorsFile> open(const std::string& path);

    const std::string& path() const { return path_; }
    const Header& header() const { return header_; }
    const TensorInfo* find(const std::string& name) const;  // nullptr if absent

    // Zero-copy CPU tensor over the mapping in the file's dtype (a copy only if the data is not aligned to
    // the element size; zero-size tensors are fresh empty tensors). NOT_FOUND naming file and tensor if absent;
    // UNSUPPORTED if the dtype is not F32/F16/BF16/I64 (F8_* ones: use get_f32).
    Tensor get(const std::string& name) const;
    // F16/BF16/F8_E4M3/F8_E5M2 widened (exactly) to a new F32 tensor; F32 returned as get() does;
    // I64 -> INVALID_ARGUMENT; other dtypes UNSUPPORTED.
    Tensor get_f32(const std::string& name) const;
    // Rows [row_begin, row_end) of dimension 0, as get_f32 gives them (F32: a view; others: only those rows widened).
    // After widening, the whole pages of the bytes read are dropped from this process's resident set (the mapping
    // is private and those bytes are never written, so a later read simply maps the file's page again): a widened
    // load keeps only its F32 copy resident, not the file's pages as well.
    Tensor get_f32_rows(const std::string& name, int64_t row_begin, int64_t row_end) const;

private:
    SafetensorsFile() = default;
    const TensorInfo& require(const std::string& name, bool float8_ok = false) const;
    const char* bytes_of(const TensorInfo& info) const;
    void release_pages(const char* begin, size_t n) const;  // MADV_DONTNEED of the whole pages inside

    std::string path_;
    Header header_;
    std::shared_ptr<Storage> mapping_;  // the whole file; its release callback unmaps it
    uint64_t data_start_ = 0;           // 8 + N: file offset of the data section
};

}  // namespace sdxl::io
