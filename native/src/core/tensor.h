// Tensor: shape + strides (in elements) + dtype + device over refcounted storage.
// Copying a Tensor copies the handle, never the data; views (narrow, permute, view) share storage.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace sdxl {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

// A block of bytes on one device. `release` frees it (free, munmap-keepalive drop, cudaFree...).
class Storage {
public:
    Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> release);
    ~Storage();
    Storage(const Storage&) = delete;
    Storage& operator=(const Storage&) = delete;

    static std::shared_ptr<Storage> allocate(size_t nbytes, Device device);
    // Bytes currently held by allocate()d storages on a device (memory-mapped weights are not counted).
    static int64_t live_allocated_bytes(Device device);

    void* data() const { return data_; }
    size_t nbytes() const { return nbytes_; }
    Device device() const { return device_; }

    // Makes bytes [offset, offset + n) writable before an in-place write (LoRA fusing into weights). Storages
    // are writable except read-only file mappings, which install a hook here (mprotect of the pages: private
    // copy-on-write, so only the touched pages are copied and the file is never changed).
    void prepare_write(size_t offset, size_t n) const {
        if (prepare_write_) prepare_write_(offset, n);
    }
    void set_prepare_write(std::function<void(size_t, size_t)> hook) { prepare_write_ = std::move(hook); }

    // Storages whose bytes come from a file (the copy-on-write weight mappings) can give those bytes back after an
    // in-place write, so a LoRA fused into them needs no saved copy of what it overwrote: read_original copies the
    // file's bytes [offset, offset + n) out, restore_original puts them back in place (whole pages by dropping
    // their private copies, which also returns that memory). Other storages have no original (has_original false).
    bool has_original() const { return bool(read_original_); }
    void read_original(size_t offset, size_t n, void* dst) const { read_original_(offset, n, dst); }
    void restore_original(size_t offset, size_t n) const { restore_original_(offset, n); }
    void set_original(std::function<void(size_t, size_t, void*)> read, std::function<void(size_t, size_t)> restore) {
        read_original_ = std::move(read);
        restore_original_ = std::move(restore);
    }

private:
    std::function<void(size_t, size_t)> prepare_write_;
    std::function<void(size_t, size_t, void*)> read_original_;
    std::function<void(size_t, size_t)> restore_original_;
    void* data_;
    size_t nbytes_;
    Device device_;
    std::function<void(void*)> release_;
};

class Tensor {
public:
    Tensor() = default;

    // New uninitialised / zero-filled contiguous tensors.
    static Tensor empty(const Shape& shape, DType dtype, Device device = Device::CPU);
    static Tensor zeros(const Shape& shape, DType dtype, Device device = Device::CPU);
    // A view of existing storage; offset and strides in elements. Checked against the storage size.
    static Tensor from_storage(std::shared_ptr<Storage> storage, int64_t offset, const Shape& shape,
                               const Shape& strides, DType dtype);

    bool defined() const { return storage_ != nullptr; }
    const Shape& shape() const { return shape_; }
    const Shape& strides() const { return strides_; }
    int64_t offset() const { return offset_; }
    DType dtype() const { return dtype_; }
    Device device() const;
    int dim() const { return int(shape_.size()); }
    int64_t size(int d) const;    // negative d counts from the end
    int64_t stride(int d) const;
    int64_t numel() const { return shape_numel(shape_); }
    bool is_contiguous() const;
    const std::shared_ptr<Storage>& storage() const { return storage_; }

    // Pointer to element 0 (after offset). data<T>() also checks dtype and that it lives on the CPU.
    void* raw_data() const;
    template <typename T>
    T* data() const;

    // Views (no copy).
    Tensor view(const Shape& shape) const;  // contiguous only; one -1 allowed
    Tensor permute(const std::vector<int>& dims) const;
    Tensor transpose(int a, int b) const;
    Tensor narrow(int dim, int64_t start, int64_t length) const;
    Tensor unsqueeze(int dim) const;

    // Copies when needed.
    Tensor contiguous() const;           // same tensor if already contiguous
    Tensor reshape(const Shape& shape) const;
    Tensor to(DType dtype) const;        // same tensor if already that dtype
    Tensor to(Device device) const;      // same tensor if already there
    Tensor clone() const;                // always a fresh contiguous copy

    std::string describe() const;  // "F32[2, 320, 64, 64] cpu"

private:
    int norm_dim(int d, int ndim_plus = 0) const;

    std::shared_ptr<Storage> storage_;
    int64_t offset_ = 0;
    Shape shape_;
    Shape strides_;
    DType dtype_ = DType::F32;
};

// dtype of a C++ element type, for data<T>() checks.
template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of<uint16_t> { static constexpr DType value = DType::F16; };  // also BF16, see data()

template <typename T>
T* Tensor::data() const {
    if (!defined()) fail(ErrorCode::INVALID_ARGUMENT, "tensor is undefined");
    bool ok = dtype_ == dtype_of<T>::value ||
              (dtype_of<T>::value == DType::F16 && dtype_ == DType::BF16);
    if (!ok) fail(ErrorCode::INVALID_ARGUMENT, "tensor is ", dtype_name(dtype_), ", expected ",
                  dtype_name(dtype_of<T>::value));
    if (device() != Device::CPU) fail(ErrorCode::INVALID_ARGUMENT, "tensor is on ", device_name(device()),
                                       ", expected cpu");
    return static_cast<T*>(raw_data());
}

// Copies between any dtypes/strides on the CPU (dst must have src's shape). Used by contiguous/to.
void copy_cpu(const Tensor& src, const Tensor& dst);

}  // namespace sdxl
