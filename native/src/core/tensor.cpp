#include <atomic>
#include "core/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <sstream>

#include "core/device.h"
#include "core/half.h"
#include "core/op_profile.h"

namespace sdxl {

const char* dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
        case DType::I64: return "I64";
    }
    return "?";
}

const char* device_name(Device d) { return d == Device::CPU ? "cpu" : "cuda"; }

bool is_floating(DType t) { return t != DType::I64; }

std::string shape_str(const Shape& s) {
    std::ostringstream out;
    out << '[';
    for (size_t i = 0; i < s.size(); ++i) out << (i ? ", " : "") << s[i];
    out << ']';
    return out.str();
}

int64_t shape_numel(const Shape& s) {
    // Zero first: an empty shape may carry dims whose product alone would overflow.
    for (int64_t d : s)
        if (d == 0) return 0;
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

Shape contiguous_strides(const Shape& s) {
    // Unsigned: an empty tensor may have huge other dims; its strides are never used to address memory,
    // and the wrap-around of unsigned arithmetic is defined (signed overflow would not be).
    Shape st(s.size());
    uint64_t acc = 1;
    for (size_t i = s.size(); i-- > 0;) {
        st[i] = int64_t(acc);
        acc *= uint64_t(std::max<int64_t>(s[i], 1));
    }
    return st;
}

// ---------------------------------------------------------------------------------------------- Storage

Storage::Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> release)
    : data_(data), nbytes_(nbytes), device_(device), release_(std::move(release)) {}

Storage::~Storage() {
    if (release_) release_(data_);
}

namespace {
// Bytes held by storages that allocate() made (not memory-mapped weights), per device: lets tests prove that a
// run gives back everything it allocated.
std::atomic<int64_t> g_live_bytes[2];
}  // namespace

int64_t Storage::live_allocated_bytes(Device device) { return g_live_bytes[device == Device::CUDA ? 1 : 0].load(); }

std::shared_ptr<Storage> Storage::allocate(size_t nbytes, Device device) {
    if (device == Device::CUDA) {
        void* p = device::cuda_malloc(nbytes);
        g_live_bytes[1] += int64_t(nbytes);
        return std::make_shared<Storage>(p, nbytes, device, [nbytes](void* q) {
            device::cuda_free(q);
            g_live_bytes[1] -= int64_t(nbytes);
        });
    }
    // 64-byte alignment for SIMD; at least one byte so that empty tensors still have storage.
    size_t rounded = ((std::max<size_t>(nbytes, 1) + 63) / 64) * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) fail(ErrorCode::OUT_OF_MEMORY, "cannot allocate ", nbytes, " bytes of host memory");
    g_live_bytes[0] += int64_t(rounded);
    return std::make_shared<Storage>(p, nbytes, device, [rounded](void* q) {
        std::free(q);
        g_live_bytes[0] -= int64_t(rounded);
    });
}

// ---------------------------------------------------------------------------------------------- Tensor

static void check_shape(const Shape& shape) {
    int64_t n = 1;
    for (int64_t d : shape) {
        if (d < 0) fail(ErrorCode::INVALID_ARGUMENT, "negative dimension in shape ", shape_str(shape));
        if (d > 0 && n > std::numeric_limits<int64_t>::max() / d)
            fail(ErrorCode::INVALID_ARGUMENT, "shape ", shape_str(shape), " has too many elements");
        n *= d;
    }
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
    check_shape(shape);
    int64_t n = shape_numel(shape);
    if (n > int64_t(std::numeric_limits<int64_t>::max() / 8))
        fail(ErrorCode::INVALID_ARGUMENT, "shape ", shape_str(shape), " is too large");
    Tensor t;
    t.storage_ = Storage::allocate(size_t(n) * dtype_size(dtype), device);
    t.shape_ = shape;
    t.strides_ = contiguous_strides(shape);
    t.dtype_ = dtype;
    return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
    Tensor t = empty(shape, dtype, device);
    if (device == Device::CPU) {
        std::memset(t.raw_data(), 0, size_t(t.numel()) * dtype_size(dtype));
    } else {  // a memset on the device's stream: no host buffer, and graph-capturable
        device::cuda_zero(t.raw_data(), size_t(t.numel()) * dtype_size(dtype));
    }
    return t;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, int64_t offset, const Shape& shape,
                            const Shape& strides, DType dtype) {
    if (!storage) fail(ErrorCode::INVALID_ARGUMENT, "from_storage: null storage");
    check_shape(shape);
    if (strides.size() != shape.size())
        fail(ErrorCode::INVALID_ARGUMENT, "from_storage: ", strides.size(), " strides for shape ", shape_str(shape));
    if (offset < 0) fail(ErrorCode::INVALID_ARGUMENT, "from_storage: negative offset");
    // The furthest element reached must lie inside the storage (checked arithmetic: shapes come from files).
    // An empty view reaches no element, whatever its dims.
    bool empty_tensor = shape_numel(shape) == 0;
    uint64_t last = uint64_t(offset);
    for (size_t i = 0; i < shape.size(); ++i) {
        if (strides[i] < 0) fail(ErrorCode::INVALID_ARGUMENT, "from_storage: negative stride");
        if (empty_tensor || shape[i] == 0) continue;
        uint64_t step;
        if (__builtin_mul_overflow(uint64_t(shape[i] - 1), uint64_t(strides[i]), &step) ||
            __builtin_add_overflow(last, step, &last))
            fail(ErrorCode::INVALID_ARGUMENT, "from_storage: view ", shape_str(shape), " overflows");
    }
    uint64_t need;
    if (__builtin_mul_overflow(empty_tensor ? last : last + 1, uint64_t(dtype_size(dtype)), &need))
        fail(ErrorCode::INVALID_ARGUMENT, "from_storage: view ", shape_str(shape), " overflows");
    if (need > storage->nbytes())
        fail(ErrorCode::INVALID_ARGUMENT, "from_storage: view ", shape_str(shape), " at offset ", offset,
             " needs ", need, " bytes, storage has ", storage->nbytes());
    Tensor t;
    t.storage_ = std::move(storage);
    t.offset_ = offset;
    t.shape_ = shape;
    t.strides_ = strides;
    t.dtype_ = dtype;
    return t;
}

Device Tensor::device() const { return storage_ ? storage_->device() : Device::CPU; }

int Tensor::norm_dim(int d, int ndim_plus) const {
    int n = dim() + ndim_plus;
    int r = d < 0 ? d + n : d;
    if (r < 0 || r >= n) fail(ErrorCode::INVALID_ARGUMENT, "dimension ", d, " out of range for ", describe());
    return r;
}

int64_t Tensor::size(int d) const { return shape_[norm_dim(d)]; }
int64_t Tensor::stride(int d) const { return strides_[norm_dim(d)]; }

bool Tensor::is_contiguous() const {
    if (numel() == 0) return true;  // no element is addressed (as in torch)
    int64_t expect = 1;
    for (size_t i = shape_.size(); i-- > 0;) {
        if (shape_[i] == 1) continue;
        if (strides_[i] != expect) return false;
        expect *= shape_[i];
    }
    return true;
}

void* Tensor::raw_data() const {
    if (!storage_) fail(ErrorCode::INVALID_ARGUMENT, "tensor is undefined");
    return static_cast<char*>(storage_->data()) + offset_ * int64_t(dtype_size(dtype_));
}

Tensor Tensor::view(const Shape& shape) const {
    if (!is_contiguous()) fail(ErrorCode::INVALID_ARGUMENT, "view of non-contiguous ", describe());
    Shape s = shape;
    int infer = -1;
    int64_t known = 1;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == -1) {
            if (infer >= 0) fail(ErrorCode::INVALID_ARGUMENT, "view: more than one -1 in ", shape_str(shape));
            infer = int(i);
        } else {
            if (s[i] < 0) fail(ErrorCode::INVALID_ARGUMENT, "view: bad shape ", shape_str(shape));
            known *= s[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || numel() % known != 0)
            fail(ErrorCode::INVALID_ARGUMENT, "view: cannot infer ", shape_str(shape), " from ", describe());
        s[infer] = numel() / known;
    }
    if (shape_numel(s) != numel())
        fail(ErrorCode::INVALID_ARGUMENT, "view: ", shape_str(shape), " does not match ", describe());
    Tensor t = *this;
    t.shape_ = s;
    t.strides_ = contiguous_strides(s);
    return t;
}

Tensor Tensor::permute(const std::vector<int>& dims) const {
    if (int(dims.size()) != dim()) fail(ErrorCode::INVALID_ARGUMENT, "permute: ", dims.size(), " dims for ", describe());
    std::vector<bool> seen(dims.size(), false);
    Tensor t = *this;
    for (size_t i = 0; i < dims.size(); ++i) {
        int d = norm_dim(dims[i]);
        if (seen[d]) fail(ErrorCode::INVALID_ARGUMENT, "permute: repeated dimension ", dims[i]);
        seen[d] = true;
        t.shape_[i] = shape_[d];
        t.strides_[i] = strides_[d];
    }
    return t;
}

Tensor Tensor::transpose(int a, int b) const {
    std::vector<int> dims(dim());
    for (int i = 0; i < dim(); ++i) dims[i] = i;
    std::swap(dims[norm_dim(a)], dims[norm_dim(b)]);
    return permute(dims);
}

Tensor Tensor::narrow(int d, int64_t start, int64_t length) const {
    int nd = norm_dim(d);
    if (start < 0 || length < 0 || start + length > shape_[nd])
        fail(ErrorCode::INVALID_ARGUMENT, "narrow: [", start, ", ", start + length, ") out of range for dim ", d,
             " of ", describe());
    Tensor t = *this;
    t.offset_ += start * strides_[nd];
    t.shape_[nd] = length;
    return t;
}

Tensor Tensor::unsqueeze(int d) const {
    int nd = norm_dim(d, 1);
    Tensor t = *this;
    int64_t st = nd < dim() ? strides_[nd] * shape_[nd] : 1;
    t.shape_.insert(t.shape_.begin() + nd, 1);
    t.strides_.insert(t.strides_.begin() + nd, st);
    return t;
}

namespace {
// A copy's profile scope (core/op_profile.h): reads n elements of `from`, writes n of `to_dtype`.
double copy_bytes(int64_t n, DType from, DType to_dtype) {
    return double(n) * double(dtype_size(from) + dtype_size(to_dtype));
}
}  // namespace

Tensor Tensor::clone() const {
    const profile::Scope scope(profile::Family::COPY, 0, 2.0 * double(numel()), copy_bytes(numel(), dtype_, dtype_),
                               device());
    if (profile::dry_run()) return empty(shape_, dtype_, device());
    if (device() != Device::CPU) {
        Tensor out = empty(shape_, dtype_, device());
        if (is_contiguous()) {
            device::copy_device_to_device(out.raw_data(), raw_data(), size_t(numel()) * dtype_size(dtype_));
        } else if (numel() > 0) {  // a strided view: gathered by a kernel, on the device
            device::cuda_strided_copy(out.raw_data(), raw_data(), dtype_, dim(), shape_.data(), strides_.data());
        }
        return out;
    }
    Tensor out = empty(shape_, dtype_, Device::CPU);
    copy_cpu(*this, out);
    return out;
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::reshape(const Shape& shape) const { return contiguous().view(shape); }

Tensor Tensor::to(DType dtype) const {
    if (dtype == dtype_) return *this;
    const profile::Scope scope(profile::Family::COPY, 0, 2.0 * double(numel()), copy_bytes(numel(), dtype_, dtype),
                               device());
    if (profile::dry_run()) return empty(shape_, dtype, device());
    if (device() != Device::CPU) {  // converted by a kernel, on the device
        Tensor src = contiguous();
        Tensor out = empty(shape_, dtype, device());
        if (numel() > 0) device::cuda_convert(out.raw_data(), dtype, src.raw_data(), dtype_, numel());
        return out;
    }
    Tensor out = empty(shape_, dtype, Device::CPU);
    copy_cpu(*this, out);
    return out;
}

Tensor Tensor::to(Device target) const {
    if (target == device()) return *this;
    const profile::Scope scope(profile::Family::COPY, 0, 2.0 * double(numel()), copy_bytes(numel(), dtype_, dtype_),
                               target == Device::CUDA ? target : device());
    if (profile::dry_run()) return empty(shape_, dtype_, target);
    if (target == Device::CUDA) {
        Tensor src = contiguous();  // on the host: a plain strided copy
        Tensor out = empty(shape_, dtype_, target);
        device::copy_host_to_device(out.raw_data(), src.raw_data(), size_t(numel()) * dtype_size(dtype_));
        return out;
    }
    // A strided device view is gathered on the device first (contiguous() runs a kernel there), then copied.
    const Tensor src = contiguous();
    Tensor out = empty(shape_, dtype_, target);
    device::copy_device_to_host(out.raw_data(), src.raw_data(), size_t(numel()) * dtype_size(dtype_));
    return out;
}

std::string Tensor::describe() const {
    if (!defined()) return "undefined tensor";
    return std::string(dtype_name(dtype_)) + shape_str(shape_) + " " + device_name(device());
}

// ---------------------------------------------------------------------------------------------- copy_cpu

namespace {

inline float load_float(const char* p, DType t) {
    uint16_t h;
    switch (t) {
        case DType::F32: { float v; std::memcpy(&v, p, 4); return v; }
        case DType::F16: std::memcpy(&h, p, 2); return f16_to_f32(h);
        case DType::BF16: std::memcpy(&h, p, 2); return bf16_to_f32(h);
        case DType::I64: { int64_t v; std::memcpy(&v, p, 8); return float(v); }
    }
    return 0;
}

inline void store_float(char* p, DType t, float v) {
    uint16_t h;
    switch (t) {
        case DType::F32: std::memcpy(p, &v, 4); return;
        case DType::F16: h = f32_to_f16(v); std::memcpy(p, &h, 2); return;
        case DType::BF16: h = f32_to_bf16(v); std::memcpy(p, &h, 2); return;
        case DType::I64: { int64_t i = int64_t(v); std::memcpy(p, &i, 8); return; }
    }
}

}  // namespace

void copy_cpu(const Tensor& src, const Tensor& dst) {
    if (src.shape() != dst.shape())
        fail(ErrorCode::INVALID_ARGUMENT, "copy: shape mismatch ", src.describe(), " -> ", dst.describe());
    if (src.device() != Device::CPU || dst.device() != Device::CPU)
        fail(ErrorCode::INVALID_ARGUMENT, "copy_cpu: both tensors must be on the cpu");
    int64_t n = src.numel();
    if (n == 0) return;
    const char* s = static_cast<const char*>(src.raw_data());
    char* d = static_cast<char*>(dst.raw_data());
    size_t ss = dtype_size(src.dtype()), ds = dtype_size(dst.dtype());
    if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
        std::memcpy(d, s, size_t(n) * ss);
        return;
    }
    // Odometer walk over the logical index; exact integer copy for I64 -> I64.
    const int nd = src.dim();
    std::vector<int64_t> idx(nd, 0);
    int64_t so = 0, dof = 0;
    const bool int_copy = src.dtype() == DType::I64 && dst.dtype() == DType::I64;
    for (int64_t i = 0; i < n; ++i) {
        if (int_copy || src.dtype() == dst.dtype()) std::memcpy(d + dof * ds, s + so * ss, ss);
        else store_float(d + dof * ds, dst.dtype(), load_float(s + so * ss, src.dtype()));
        for (int k = nd - 1; k >= 0; --k) {
            if (++idx[k] < src.shape()[k]) {
                so += src.strides()[k];
                dof += dst.strides()[k];
                break;
            }
            so -= (src.shape()[k] - 1) * src.strides()[k];
            dof -= (dst.shape()[k] - 1) * dst.strides()[k];
            idx[k] = 0;
        }
    }
}

}  // namespace sdxl
