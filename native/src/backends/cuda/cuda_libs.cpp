// Run-time loading of cuBLAS, cuBLASLt and cuDNN (see cuda_libs.h for the search order).
#include "backends/cuda/cuda_libs.h"

#include <dlfcn.h>
#include <glob.h>
#include <limits.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>
#include <set>
#include <sstream>

#include <cuda_runtime.h>

#include "core/device.h"
#include "core/error.h"

namespace sdxl::cuda::libs {

namespace {

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

std::vector<std::string> split_path_list(const std::string& s) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= s.size()) {
        size_t end = s.find(':', start);
        if (end == std::string::npos) end = s.size();
        if (end > start) out.push_back(s.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

bool is_dir(const std::string& p) {
    struct stat st {};
    return !p.empty() && ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

std::string canonical(const std::string& p) {
    char buf[PATH_MAX];
    return ::realpath(p.c_str(), buf) ? std::string(buf) : p;
}

std::string parent(const std::string& p) {
    size_t slash = p.find_last_of('/');
    if (slash == std::string::npos) return ".";
    return slash == 0 ? "/" : p.substr(0, slash);
}

std::vector<std::string> glob_dirs(const std::string& pattern) {
    std::vector<std::string> out;
    glob_t g{};
    if (::glob(pattern.c_str(), GLOB_ONLYDIR | GLOB_NOSORT, nullptr, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; ++i) out.emplace_back(g.gl_pathv[i]);
    }
    ::globfree(&g);
    return out;
}

// Adds the site-packages / dist-packages folders of a Python prefix (the folder holding bin/ and lib/).
void add_prefix_sites(const std::string& prefix, std::vector<std::string>& out) {
    if (prefix.empty()) return;
    for (const char* kind : {"site-packages", "dist-packages"}) {
        for (const char* lib : {"lib", "lib64", "local/lib"}) {
            for (auto& d : glob_dirs(prefix + "/" + lib + "/python3*/" + kind)) out.push_back(d);
        }
    }
    if (is_dir(prefix + "/lib/python3/dist-packages")) out.push_back(prefix + "/lib/python3/dist-packages");
}

void add_unique(std::vector<std::string>& out, std::set<std::string>& seen, const std::string& dir) {
    if (!is_dir(dir)) return;
    if (seen.insert(canonical(dir)).second) out.push_back(dir);
}

// Folder of a loaded library (from its handle), or "" when unknown.
std::string origin_of(void* handle) {
    char buf[PATH_MAX] = {0};
    if (handle && ::dlinfo(handle, RTLD_DI_ORIGIN, buf) == 0) return std::string(buf);
    return std::string();
}

Attempt try_open(const std::string& path, int flags, void** handle) {
    // A path that does not exist says so plainly (dlerror's wording differs between loaders).
    if (path.find('/') != std::string::npos && !is_file(path)) return {path, "not found"};
    ::dlerror();
    void* h = ::dlopen(path.c_str(), flags);
    if (h) {
        *handle = h;
        return {path, "loaded"};
    }
    const char* e = ::dlerror();
    std::string why = e ? std::string(e) : std::string("dlopen failed");
    if (why.compare(0, path.size() + 2, path + ": ") == 0) why.erase(0, path.size() + 2);  // glibc repeats the path
    return {path, why};
}

}  // namespace

std::vector<std::string> python_site_packages() {
    std::vector<std::string> raw;
    add_prefix_sites(env("VIRTUAL_ENV"), raw);
    add_prefix_sites(env("CONDA_PREFIX"), raw);
    // Every python3 on PATH: its prefix as written (a venv's bin/python3 is a link to the base interpreter, and
    // the venv's packages live under the unresolved prefix) and as resolved.
    for (const auto& dir : split_path_list(env("PATH"))) {
        for (const char* exe : {"python3", "python"}) {
            const std::string p = dir + "/" + exe;
            if (::access(p.c_str(), X_OK) != 0) continue;
            add_prefix_sites(parent(dir), raw);
            add_prefix_sites(parent(parent(canonical(p))), raw);
        }
    }
    const std::string home = env("HOME");
    if (!home.empty()) {
        for (auto& d : glob_dirs(home + "/.local/lib/python3*/site-packages")) raw.push_back(d);
    }
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (auto& d : raw) add_unique(out, seen, d);
    return out;
}

std::vector<std::string> search_dirs(const std::vector<std::string>& wheel_subdirs) {
    std::vector<std::string> out;
    std::set<std::string> seen;
    for (auto& d : split_path_list(env("SDXL4J_CUDA_LIBS"))) add_unique(out, seen, d);
    for (const char* var : {"CUDA_HOME", "CUDA_PATH"}) {
        const std::string root = env(var);
        if (!root.empty()) add_unique(out, seen, root + "/lib64");
    }
    add_unique(out, seen, "/usr/local/cuda/lib64");
    for (auto& d : split_path_list(env("LD_LIBRARY_PATH"))) add_unique(out, seen, d);
    for (auto& site : python_site_packages()) {
        for (auto& sub : wheel_subdirs) add_unique(out, seen, site + "/" + sub);
    }
    return out;
}

Library open_library(const char* name, const std::string& soname, const std::vector<std::string>& dirs,
                     bool plain_first, const std::vector<std::string>& companions_before,
                     const std::vector<std::string>& companions_after) {
    Library lib;
    lib.name = name;
    // The override folders come first, before the plain name: count them.
    const auto overrides = split_path_list(env("SDXL4J_CUDA_LIBS"));
    std::set<std::string> override_set;
    for (auto& d : overrides) override_set.insert(canonical(d));

    auto try_dir = [&](const std::string& dir) {
        if (!is_file(dir + "/" + soname)) {
            lib.tried.push_back({dir + "/" + soname, "not found"});
            return;
        }
        for (auto& c : companions_before) {
            void* h = nullptr;
            Attempt a = try_open(dir + "/" + c, RTLD_NOW | RTLD_GLOBAL, &h);
            if (a.outcome != "not found") lib.extras.push_back(a);  // a missing companion is not worth a line
        }
        Attempt a = try_open(dir + "/" + soname, RTLD_NOW | RTLD_LOCAL, &lib.handle);
        lib.tried.push_back(a);
        if (lib.handle) lib.path = a.path;
    };

    size_t i = 0;
    for (; i < dirs.size() && !lib.handle && override_set.count(canonical(dirs[i])); ++i) try_dir(dirs[i]);
    if (!lib.handle && plain_first) {
        Attempt a = try_open(soname, RTLD_NOW | RTLD_LOCAL, &lib.handle);
        if (a.outcome != "loaded") a.outcome = "not found by the system loader (" + a.outcome + ")";
        lib.tried.push_back(a);
        if (lib.handle) {
            const std::string origin = origin_of(lib.handle);
            lib.path = origin.empty() ? soname : origin + "/" + soname;
        }
    }
    for (; i < dirs.size() && !lib.handle; ++i) {
        if (override_set.count(canonical(dirs[i]))) continue;
        try_dir(dirs[i]);
    }
    if (lib.handle) {
        const std::string origin = origin_of(lib.handle);
        for (auto& c : companions_after) {
            void* h = nullptr;
            lib.extras.push_back(try_open(origin.empty() ? c : origin + "/" + c, RTLD_NOW | RTLD_GLOBAL, &h));
        }
    }
    return lib;
}

std::string Library::report() const {
    std::ostringstream out;
    if (ok()) {
        out << name << " loaded from " << path;
    } else {
        out << name << " was not found; searched (set SDXL4J_CUDA_LIBS=dir1:dir2 to point at the folder holding it, "
            << "or install the nvidia-* Python wheels):";
        if (tried.empty()) out << " nothing to search";
        for (auto& a : tried) out << "\n  " << a.path << ": " << a.outcome;
    }
    for (auto& e : extras) out << "\n  companion " << e.path << ": " << e.outcome;
    return out.str();
}

namespace {

// Sub-libraries of cuDNN 9 that conv2d calls into (graph: handles and descriptors, ops: tensor ops,
// cnn: convolution). The shim finds them itself through its RPATH; preloading them by full path makes sure
// the ones next to the shim are the ones used, and reports clearly when one cannot load (e.g. libz missing).
const std::vector<std::string> kCudnnSubLibraries = {"libcudnn_graph.so.9", "libcudnn_ops.so.9",
                                                     "libcudnn_cnn.so.9"};

}  // namespace

const Library& cublas() {
    static const Library lib = [] {
        auto dirs = search_dirs({"nvidia/cu13/lib", "nvidia/cublas/lib"});
        return open_library("cuBLAS", "libcublas.so.13", dirs, true, {"libcublasLt.so.13"}, {});
    }();
    return lib;
}

// cuBLASLt (linear's fused epilogues, cuda_gemm.cpp): the same folders as cuBLAS. libcublas.so.13 itself needs
// libcublasLt.so.13 and preloads it from its own folder (above), so the plain soname finds that copy.
const Library& cublaslt() {
    static const Library lib = [] {
        auto dirs = search_dirs({"nvidia/cu13/lib", "nvidia/cublas/lib"});
        return open_library("cuBLASLt", "libcublasLt.so.13", dirs, true, {}, {});
    }();
    return lib;
}

const Library& cudnn() {
    static const Library lib = [] {
        auto dirs = search_dirs({"nvidia/cudnn/lib"});
        return open_library("cuDNN", "libcudnn.so.9", dirs, true, {}, kCudnnSubLibraries);
    }();
    return lib;
}

void* symbol(const Library& lib, const char* name) {
    require(lib, name);
    ::dlerror();
    void* p = ::dlsym(lib.handle, name);
    if (!p) {
        const char* e = ::dlerror();
        fail(ErrorCode::DEVICE_ERROR, lib.name, " loaded from ", lib.path, " lacks the symbol ", name, " (",
             e ? e : "null", "); a different major version?");
    }
    return p;
}

void require(const Library& lib, const char* op) {
    if (!lib.ok()) fail(ErrorCode::DEVICE_ERROR, op, " on CUDA needs ", lib.name, ". ", lib.report());
}

void fail_call(const char* lib, int status, const char* status_name, ErrorCode code, const char* call,
               const char* file, int line) {
    fail(code, lib, " call ", call, " failed at ", file, ":", line, ": status ", status, " (",
         status_name ? status_name : "?", ")");
}

ErrorCode cudnn_error_code(int status) {
    if (status == 4003 || status == 4004) return ErrorCode::OUT_OF_MEMORY;  // HOST_/DEVICE_ALLOCATION_FAILED
    if (status >= 3000 && status < 4000) return ErrorCode::UNSUPPORTED;     // CUDNN_STATUS_NOT_SUPPORTED*
    return ErrorCode::DEVICE_ERROR;
}

}  // namespace sdxl::cuda::libs

namespace sdxl::device {

std::string cuda_versions() {
    using namespace sdxl::cuda::libs;
    std::ostringstream out;
    int driver = 0, runtime = 0;
    const bool have_driver = cudaDriverGetVersion(&driver) == cudaSuccess;
    const bool have_runtime = cudaRuntimeGetVersion(&runtime) == cudaSuccess;
    (void)cudaGetLastError();
    out << "CUDA driver API " << (have_driver ? std::to_string(driver) : "unknown") << ", runtime "
        << (have_runtime ? std::to_string(runtime) : "unknown") << "; " << cuda_status() << "\n";
    const Library& bl = cublas();
    if (bl.ok()) {
        // cublasGetProperty(libraryPropertyType, int*): MAJOR_VERSION 0, MINOR_VERSION 1, PATCH_LEVEL 2.
        using GetProperty = int (*)(int, int*);
        auto get = reinterpret_cast<GetProperty>(::dlsym(bl.handle, "cublasGetProperty"));
        int v[3] = {-1, -1, -1};
        for (int i = 0; get && i < 3; ++i) (void)get(i, &v[i]);
        out << "cuBLAS " << v[0] << "." << v[1] << "." << v[2] << " from " << bl.path << "\n";
    } else {
        out << bl.report() << "\n";
    }
    const Library& lt = cublaslt();
    if (lt.ok()) {
        using GetVersion = size_t (*)();  // cublasLtGetVersion: major * 10000 + minor * 100 + patch
        auto get = reinterpret_cast<GetVersion>(::dlsym(lt.handle, "cublasLtGetVersion"));
        out << "cuBLASLt " << (get ? std::to_string(get()) : std::string("(no cublasLtGetVersion)")) << " from "
            << lt.path << "\n";
    } else {
        out << lt.report() << "\n";
    }
    const Library& dn = cudnn();
    if (dn.ok()) {
        using GetVersion = size_t (*)();
        auto get = reinterpret_cast<GetVersion>(::dlsym(dn.handle, "cudnnGetVersion"));
        out << "cuDNN " << (get ? std::to_string(get()) : std::string("(no cudnnGetVersion)")) << " from " << dn.path
            << "\n";
    } else {
        out << dn.report() << "\n";
    }
    return out.str();
}

}  // namespace sdxl::device
