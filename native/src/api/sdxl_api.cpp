// The facade behind include/sdxl/sdxl.h: converts between the public handles and the core's types.
// No logic lives here beyond argument plumbing and the checks that raw pointers + lengths agree.
#include "sdxl/sdxl.h"

#include "api/handles.h"

#include <cmath>
#include <cstring>
#include <memory>

#include "core/device.h"
#include "core/error.h"
#include "core/half.h"
#include "core/op_profile.h"
#include "core/parallel.h"
#include "core/tensor.h"
#include "io/safetensors.h"
#include "ops/ops.h"

namespace sdxl {
namespace api {

namespace {

sdxl::Tensor& impl(void* p) { return *static_cast<sdxl::Tensor*>(p); }

DType dtype_from_code(int code) {
    if (code < 0 || code > 3) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "unknown dtype code ", code, " (0=F32, 1=F16, 2=BF16, 3=I64)");
    return static_cast<DType>(code);
}

Device device_from_code(int code) {
    if (code != 0 && code != 1) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "unknown device code ", code, " (0=CPU, 1=CUDA)");
    return static_cast<Device>(code);
}

void check_count(const char* what, int64_t given, int64_t expected) {
    if (given != expected)
        fail(sdxl::ErrorCode::INVALID_ARGUMENT, what, ": buffer holds ", given, " but the tensor needs ", expected);
}

}  // namespace

// Friend-free access: Tensor's impl_ is private, so wrap/unwrap go through these two helpers,
// defined as members-by-construction below.
struct TensorAccess {
    static const sdxl::Tensor& get(const Tensor& t) { return *static_cast<const sdxl::Tensor*>(t.impl_); }
    static Tensor wrap(sdxl::Tensor t) {
        Tensor out;
        impl(out.impl_) = std::move(t);
        return out;
    }
};

const sdxl::Tensor& core(const Tensor& t) { return TensorAccess::get(t); }
Tensor wrap(sdxl::Tensor t) { return TensorAccess::wrap(std::move(t)); }

// ---------------------------------------------------------------------------------------------- Tensor

Tensor::Tensor() : impl_(new sdxl::Tensor()) {}
Tensor::Tensor(const Tensor& other) : impl_(new sdxl::Tensor(core(other))) {}
Tensor::~Tensor() { delete static_cast<sdxl::Tensor*>(impl_); }
Tensor& Tensor::operator=(const Tensor& other) {
    impl(impl_) = core(other);
    return *this;
}

bool Tensor::defined() const { return core(*this).defined(); }
int Tensor::dtype() const { return int(core(*this).dtype()); }
int Tensor::device() const { return int(core(*this).device()); }
int Tensor::ndim() const { return core(*this).dim(); }
std::vector<int64_t> Tensor::shape() const { return core(*this).shape(); }
std::vector<int64_t> Tensor::strides() const { return core(*this).strides(); }
int64_t Tensor::numel() const { return core(*this).numel(); }
bool Tensor::is_contiguous() const { return core(*this).is_contiguous(); }
std::string Tensor::describe() const { return core(*this).describe(); }

Tensor Tensor::from_floats(const float* data, const std::vector<int64_t>& shape) {
    sdxl::Tensor t = sdxl::Tensor::empty(shape, DType::F32);
    if (t.numel() > 0) {
        if (!data) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "from_floats: null data");
        std::memcpy(t.raw_data(), data, size_t(t.numel()) * 4);
    }
    return wrap(t);
}

Tensor Tensor::from_longs(const int64_t* data, const std::vector<int64_t>& shape) {
    sdxl::Tensor t = sdxl::Tensor::empty(shape, DType::I64);
    if (t.numel() > 0) {
        if (!data) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "from_longs: null data");
        std::memcpy(t.raw_data(), data, size_t(t.numel()) * 8);
    }
    return wrap(t);
}

Tensor Tensor::from_bytes(const int8_t* data, int64_t nbytes, int dtype, const std::vector<int64_t>& shape) {
    sdxl::Tensor t = sdxl::Tensor::empty(shape, dtype_from_code(dtype));
    check_count("from_bytes", nbytes, t.numel() * int64_t(dtype_size(t.dtype())));
    if (nbytes > 0) {
        if (!data) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "from_bytes: null data");
        std::memcpy(t.raw_data(), data, size_t(nbytes));
    }
    return wrap(t);
}

void Tensor::copy_to_floats(float* out, int64_t count) const {
    const sdxl::Tensor& t = core(*this);
    check_count("copy_to_floats", count, t.numel());
    if (count == 0) return;
    sdxl::Tensor host = t.to(Device::CPU).to(DType::F32).contiguous();
    std::memcpy(out, host.raw_data(), size_t(count) * 4);
}

void Tensor::copy_to_longs(int64_t* out, int64_t count) const {
    const sdxl::Tensor& t = core(*this);
    if (t.dtype() != DType::I64) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "copy_to_longs: tensor is ", t.describe());
    check_count("copy_to_longs", count, t.numel());
    if (count == 0) return;
    sdxl::Tensor host = t.to(Device::CPU).contiguous();
    std::memcpy(out, host.raw_data(), size_t(count) * 8);
}

void Tensor::copy_to_bytes(char* out, int64_t nbytes) const {
    const sdxl::Tensor& t = core(*this);
    check_count("copy_to_bytes", nbytes, t.numel() * int64_t(dtype_size(t.dtype())));
    if (nbytes == 0) return;
    sdxl::Tensor host = t.to(Device::CPU).contiguous();
    std::memcpy(out, host.raw_data(), size_t(nbytes));
}

Tensor Tensor::to_dtype(int dtype) const { return wrap(core(*this).to(dtype_from_code(dtype))); }
Tensor Tensor::to_device(int device) const { return wrap(core(*this).to(device_from_code(device))); }
Tensor Tensor::contiguous() const { return wrap(core(*this).contiguous()); }
Tensor Tensor::reshape(const std::vector<int64_t>& shape) const { return wrap(core(*this).reshape(shape)); }
Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
    return wrap(core(*this).permute(std::vector<int>(dims.begin(), dims.end())));
}
Tensor Tensor::narrow(int dim, int64_t start, int64_t length) const {
    return wrap(core(*this).narrow(dim, start, length));
}
bool Tensor::shares_storage_with(const Tensor& other) const {
    return core(*this).defined() && core(*this).storage() == core(other).storage();
}

// ---------------------------------------------------------------------------------------------- TensorList

using CoreList = std::vector<sdxl::Tensor>;
static CoreList& list(void* p) { return *static_cast<CoreList*>(p); }

TensorList::TensorList() : impl_(new CoreList()) {}
TensorList::TensorList(const TensorList& other) : impl_(new CoreList(list(other.impl_))) {}
TensorList::~TensorList() { delete static_cast<CoreList*>(impl_); }
TensorList& TensorList::operator=(const TensorList& other) {
    list(impl_) = list(other.impl_);
    return *this;
}
void TensorList::add(const Tensor& t) { list(impl_).push_back(core(t)); }
int64_t TensorList::size() const { return int64_t(list(impl_).size()); }
Tensor TensorList::get(int64_t index) const {
    if (index < 0 || index >= size()) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "TensorList index ", index, " of ", size());
    return wrap(list(impl_)[size_t(index)]);
}

// ---------------------------------------------------------------------------------------------- SafetensorsFile

using FilePtr = std::shared_ptr<io::SafetensorsFile>;
static const io::SafetensorsFile& file(void* p) { return **static_cast<FilePtr*>(p); }

SafetensorsFile::SafetensorsFile() : impl_(new FilePtr()) {}
SafetensorsFile::SafetensorsFile(const SafetensorsFile& other)
    : impl_(new FilePtr(*static_cast<FilePtr*>(other.impl_))) {}
SafetensorsFile::~SafetensorsFile() { delete static_cast<FilePtr*>(impl_); }
SafetensorsFile& SafetensorsFile::operator=(const SafetensorsFile& other) {
    *static_cast<FilePtr*>(impl_) = *static_cast<FilePtr*>(other.impl_);
    return *this;
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
    SafetensorsFile f;
    *static_cast<FilePtr*>(f.impl_) = io::SafetensorsFile::open(path);
    return f;
}

std::string SafetensorsFile::path() const { return file(impl_).path(); }

std::vector<std::string> SafetensorsFile::names() const {
    std::vector<std::string> out;
    for (const auto& t : file(impl_).header().tensors) out.push_back(t.name);
    return out;
}

bool SafetensorsFile::contains(const std::string& name) const { return file(impl_).find(name) != nullptr; }

static const io::TensorInfo& info_or_throw(const io::SafetensorsFile& f, const std::string& name) {
    const io::TensorInfo* info = f.find(name);
    if (!info) fail(sdxl::ErrorCode::NOT_FOUND, f.path(), ": no tensor named '", name, "'");
    return *info;
}

std::string SafetensorsFile::dtype_name(const std::string& name) const {
    return info_or_throw(file(impl_), name).dtype_name;
}

std::vector<int64_t> SafetensorsFile::shape(const std::string& name) const {
    return info_or_throw(file(impl_), name).shape;
}

std::vector<std::string> SafetensorsFile::metadata_keys() const {
    std::vector<std::string> out;
    for (const auto& kv : file(impl_).header().metadata) out.push_back(kv.first);
    return out;
}

std::string SafetensorsFile::metadata_value(const std::string& key) const {
    for (const auto& kv : file(impl_).header().metadata)
        if (kv.first == key) return kv.second;
    fail(sdxl::ErrorCode::NOT_FOUND, file(impl_).path(), ": no metadata key '", key, "'");
}

Tensor SafetensorsFile::get(const std::string& name) const { return wrap(file(impl_).get(name)); }
Tensor SafetensorsFile::get_f32(const std::string& name) const { return wrap(file(impl_).get_f32(name)); }

// ---------------------------------------------------------------------------------------------- ops

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) { return wrap(ops::linear(core(x), core(w), core(b))); }
Tensor matmul(const Tensor& a, const Tensor& b) { return wrap(ops::matmul(core(a), core(b))); }
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int padding) {
    return wrap(ops::conv2d(core(x), core(w), core(b), stride, padding));
}
Tensor upsample_nearest(const Tensor& x, int64_t out_h, int64_t out_w) {
    return wrap(ops::upsample_nearest(core(x), out_h, out_w));
}
Tensor upsample_nearest2x(const Tensor& x) { return wrap(ops::upsample_nearest2x(core(x))); }
Tensor group_norm(const Tensor& x, int groups, const Tensor& gamma, const Tensor& beta, float eps) {
    return wrap(ops::group_norm(core(x), groups, core(gamma), core(beta), eps));
}
Tensor layer_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, float eps) {
    return wrap(ops::layer_norm(core(x), core(gamma), core(beta), eps));
}
Tensor silu(const Tensor& x) { return wrap(ops::silu(core(x))); }
Tensor gelu(const Tensor& x) { return wrap(ops::gelu(core(x))); }
Tensor gelu_tanh(const Tensor& x) { return wrap(ops::gelu_tanh(core(x))); }
Tensor quick_gelu(const Tensor& x) { return wrap(ops::quick_gelu(core(x))); }
Tensor geglu(const Tensor& x) { return wrap(ops::geglu(core(x))); }
Tensor softmax(const Tensor& x) { return wrap(ops::softmax(core(x))); }
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& key_mask, bool causal,
                 float scale) {
    return wrap(ops::attention(core(q), core(k), core(v), core(key_mask), causal, scale));
}
Tensor add(const Tensor& a, const Tensor& b) { return wrap(ops::add(core(a), core(b))); }
Tensor sub(const Tensor& a, const Tensor& b) { return wrap(ops::sub(core(a), core(b))); }
Tensor mul(const Tensor& a, const Tensor& b) { return wrap(ops::mul(core(a), core(b))); }
Tensor scale(const Tensor& x, float alpha, float beta) { return wrap(ops::scale(core(x), alpha, beta)); }
Tensor concat(const TensorList& parts, int dim) {
    std::vector<sdxl::Tensor> v;
    for (int64_t i = 0; i < parts.size(); ++i) v.push_back(core(parts.get(i)));
    return wrap(ops::concat(v, dim));
}
Tensor slice(const Tensor& x, int dim, int64_t start, int64_t length) {
    return wrap(ops::slice(core(x), dim, start, length));
}
Tensor timestep_embedding(const Tensor& t, int dim, bool flip_sin_to_cos, float downscale_freq_shift,
                          float scale, float max_period) {
    return wrap(ops::timestep_embedding(core(t), dim, flip_sin_to_cos, downscale_freq_shift, scale, max_period));
}

// ---------------------------------------------------------------------------------------------- scalars, runtime

uint16_t float_to_f16_bits(float value) { return f32_to_f16(value); }
float f16_bits_to_float(uint16_t bits) { return f16_to_f32(bits); }
uint16_t float_to_bf16_bits(float value) { return f32_to_bf16(value); }
float bf16_bits_to_float(uint16_t bits) { return bf16_to_f32(bits); }

std::string version() { return "0.1.0"; }
int num_threads() { return sdxl::num_threads(); }
void set_num_threads(int n) {
    if (n < 1) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "set_num_threads: need at least 1 thread, got ", n);
    sdxl::set_num_threads(n);
}
bool cuda_compiled() { return device::cuda_compiled(); }
bool cuda_available() { return device::cuda_available(); }
std::string cuda_status() { return device::cuda_status(); }
int cuda_device() { return device::cuda_device(); }
void select_cuda_device(int ordinal) { device::select_cuda_device(ordinal); }
int64_t live_allocated_bytes(int device) {
    if (device != DEVICE_CPU && device != DEVICE_CUDA) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "unknown device ", device);
    return sdxl::Storage::live_allocated_bytes(device == DEVICE_CUDA ? sdxl::Device::CUDA : sdxl::Device::CPU);
}

void profile_start(bool count_only, int device) {
    if (device != DEVICE_CPU && device != DEVICE_CUDA) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "unknown device ", device);
    sdxl::profile::start(count_only, device == DEVICE_CUDA ? sdxl::Device::CUDA : sdxl::Device::CPU);
}

std::string profile_stop(double bytes_per_element, const std::string& predict_for) {
    SDXL_CHECK(predict_for.empty() || predict_for == "h100" || predict_for == "h200",
               "profile_stop: predict_for must be \"\", \"h100\" or \"h200\", got \"", predict_for, "\"");
    SDXL_CHECK(std::isfinite(bytes_per_element) && bytes_per_element >= 0,
               "profile_stop: bytes_per_element must be >= 0, got ", bytes_per_element);
    const sdxl::profile::Report r = sdxl::profile::stop();
    std::string out = sdxl::profile::format(r, bytes_per_element);
    if (predict_for == "h100") out += sdxl::profile::format_prediction(r, bytes_per_element, "H100 SXM", 989.0, 3350.0);
    if (predict_for == "h200") out += sdxl::profile::format_prediction(r, bytes_per_element, "H200", 989.0, 4800.0);
    return out;
}

void noop() {}
void raise_error(int code, const std::string& message) {
    if (code < 1 || code > 8) fail(sdxl::ErrorCode::INVALID_ARGUMENT, "raise_error: unknown error code ", code);
    throw sdxl::Error(static_cast<sdxl::ErrorCode>(code), message);
}

}  // namespace api
}  // namespace sdxl
