# cuBLAS / cuDNN headers for the CUDA backend's GEMM and conv2d. libsdxl never links these libraries (it
# dlopens them at run time, see native/src/backends/cuda/cuda_libs.h), but it compiles against their headers,
# which the CUDA toolkit of the build machine may lack. Looked for, in order:
#   1. SDXL_CUDA_LIBS_INCLUDE (cache, a list of folders);
#   2. the CUDA toolkit's include folders and the system ones (/usr/include, cuDNN from apt);
#   3. the nvidia-* Python wheels installed for python3 (site-packages/nvidia/{cu13,cublas,cudnn}/include),
#      including $VIRTUAL_ENV;
#   4. with SDXL_CUDA_LIBS_DOWNLOAD (default ON): `pip download` of the wheels (nvidia-cublas 13.x,
#      nvidia-cudnn-cu13 9.x) from the configured pip index into <build>/cuda-wheels; only their include/
#      folders are unpacked, the wheels are deleted, and a later configure reuses the headers at once.
# A family whose headers are not found is compiled out: its ops stay unsupported on CUDA (UNSUPPORTED at run
# time) and a STATUS line says so. The build never fails for lack of them.
#
# sdxl_cuda_libs(<target>) adds the include folders (SYSTEM, PRIVATE) and SDXL_HAVE_CUBLAS=1 /
# SDXL_HAVE_CUDNN=1 to the target.

set(SDXL_CUDA_LIBS_INCLUDE "" CACHE STRING "Folders holding cublas_v2.h and cudnn.h (a ;-list); empty: look elsewhere")
option(SDXL_CUDA_LIBS_DOWNLOAD "Fetch the cuBLAS/cuDNN headers with pip download when not found" ON)

# The major versions the code is written for: it dlopens libcublas.so.13 and libcudnn.so.9 and checks at run time
# that the library's major version is the headers' (cuda_libs.cpp, cuda_gemm.cpp, cuda_conv.cpp). Headers of another
# major version (a CUDA 12 toolkit's cuBLAS, apt's cuDNN 8) are skipped: they would make the ops fail at run time,
# or (cuDNN 8) not compile.
set(_SDXL_CUBLAS_MAJOR 13)
set(_SDXL_CUDNN_MAJOR 9)

# The first of `macro`'s value in dir/file1 or dir/file2 ("" when neither defines it).
function(_sdxl_header_major out_var dir macro)
  foreach(file ${ARGN})
    if(EXISTS "${dir}/${file}")
      file(STRINGS "${dir}/${file}" lines REGEX "^#[ \t]*define[ \t]+${macro}[ \t]+[0-9]+")
      if(lines)
        list(GET lines 0 line)
        string(REGEX REPLACE "^#[ \t]*define[ \t]+${macro}[ \t]+([0-9]+).*" "\\1" major "${line}")
        set(${out_var} "${major}" PARENT_SCOPE)
        return()
      endif()
    endif()
  endforeach()
  set(${out_var} "" PARENT_SCOPE)
endfunction()

# The first candidate folder holding `header` of the expected major version (cublas_v2.h: cuBLAS 13, cudnn.h:
# cuDNN 9).
function(_sdxl_find_header var header)
  set(candidates ${ARGN})
  foreach(dir IN LISTS candidates)
    if(dir AND EXISTS "${dir}/${header}")
      if(header STREQUAL "cublas_v2.h")
        _sdxl_header_major(major "${dir}" CUBLAS_VER_MAJOR cublas_api.h)
        set(want ${_SDXL_CUBLAS_MAJOR})
      elseif(header STREQUAL "cudnn.h")
        _sdxl_header_major(major "${dir}" CUDNN_MAJOR cudnn_version.h cudnn.h)
        set(want ${_SDXL_CUDNN_MAJOR})
      else()
        set(major "")
        set(want "")
      endif()
      if(major STREQUAL want)
        set(${var} "${dir}" PARENT_SCOPE)
        return()
      endif()
      if(major STREQUAL "")
        set(major "unknown")
      endif()
      message(STATUS "sdxl4j: skipping ${dir}/${header}: major version ${major}, not ${want}")
    endif()
  endforeach()
  set(${var} "" PARENT_SCOPE)
endfunction()

# Candidate include folders inside the given site-packages folders.
function(_sdxl_wheel_includes out_var)
  set(result "")
  foreach(site IN LISTS ARGN)
    foreach(sub nvidia/cu13/include nvidia/cublas/include nvidia/cudnn/include)
      if(EXISTS "${site}/${sub}")
        list(APPEND result "${site}/${sub}")
      endif()
    endforeach()
  endforeach()
  set(${out_var} "${result}" PARENT_SCOPE)
endfunction()

function(_sdxl_python_sites out_var python)
  set(sites "")
  if(DEFINED ENV{VIRTUAL_ENV})
    file(GLOB venv_sites "$ENV{VIRTUAL_ENV}/lib/python3*/site-packages")
    list(APPEND sites ${venv_sites})
  endif()
  if(python)
    execute_process(
      COMMAND "${python}" -c "import site, sys; print(';'.join(site.getsitepackages() + [site.getusersitepackages()]))"
      OUTPUT_VARIABLE py_sites OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc TIMEOUT 30)
    if(rc EQUAL 0)
      list(APPEND sites ${py_sites})
    endif()
  endif()
  set(${out_var} "${sites}" PARENT_SCOPE)
endfunction()

# pip download + unpack of the include folders into <build>/cuda-wheels/include; reused when already done.
function(_sdxl_download_headers out_var python)
  set(root "${CMAKE_BINARY_DIR}/cuda-wheels")
  set(stamp "${root}/headers.stamp")
  set(${out_var} "" PARENT_SCOPE)
  if(EXISTS "${stamp}")
    file(READ "${stamp}" dirs)
    set(all_there TRUE)
    foreach(dir IN LISTS dirs)
      if(NOT EXISTS "${dir}")
        set(all_there FALSE)
      endif()
    endforeach()
    if(dirs AND all_there)
      set(${out_var} "${dirs}" PARENT_SCOPE)
      return()
    endif()
    file(REMOVE "${stamp}")  # stale (the build folder moved): fetch again
  endif()
  if(NOT python)
    message(STATUS "sdxl4j: no python3 to download the cuBLAS/cuDNN headers with")
    return()
  endif()
  message(STATUS "sdxl4j: downloading the nvidia-cublas / nvidia-cudnn-cu13 wheels for their headers (pip)")
  file(REMOVE_RECURSE "${root}/dl")
  execute_process(
    COMMAND "${python}" -m pip download --no-deps --only-binary=:all: --retries 1 --timeout 30 --disable-pip-version-check
            -d "${root}/dl" "nvidia-cublas>=13,<14" "nvidia-cudnn-cu13>=9,<10"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 600)
  if(NOT rc EQUAL 0)
    string(REGEX REPLACE "\n+$" "" err "${err}")
    string(LENGTH "${err}" err_len)
    if(err_len GREATER 600)
      math(EXPR start "${err_len} - 600")
      string(SUBSTRING "${err}" ${start} 600 err)
    endif()
    message(STATUS "sdxl4j: pip download of the cuBLAS/cuDNN wheels failed (${rc}): ${err}")
    file(REMOVE_RECURSE "${root}/dl")
    return()
  endif()
  # Wheels are zips: unpack only */include/* with Python's zipfile (cmake -E tar would extract 1 GB of .so).
  execute_process(
    COMMAND "${python}" -c [=[
import glob, os, sys, zipfile
root = sys.argv[1]
for whl in glob.glob(os.path.join(root, "dl", "*.whl")):
    with zipfile.ZipFile(whl) as z:
        for name in z.namelist():
            parts = name.split("/")
            if len(parts) >= 4 and parts[0] == "nvidia" and parts[2] == "include" and not name.endswith("/"):
                z.extract(name, os.path.join(root, "include"))
]=] "${root}"
    RESULT_VARIABLE rc ERROR_VARIABLE err TIMEOUT 300)
  file(REMOVE_RECURSE "${root}/dl")
  if(NOT rc EQUAL 0)
    message(STATUS "sdxl4j: unpacking the cuBLAS/cuDNN headers failed: ${err}")
    return()
  endif()
  _sdxl_wheel_includes(dirs "${root}/include")
  if(dirs)
    file(WRITE "${stamp}" "${dirs}")
  endif()
  set(${out_var} "${dirs}" PARENT_SCOPE)
endfunction()

function(sdxl_cuda_libs target)
  set(cublas_dir "")
  set(cudnn_dir "")

  # 1. explicit folders
  if(SDXL_CUDA_LIBS_INCLUDE)
    _sdxl_find_header(cublas_dir cublas_v2.h ${SDXL_CUDA_LIBS_INCLUDE})
    _sdxl_find_header(cudnn_dir cudnn.h ${SDXL_CUDA_LIBS_INCLUDE})
    if(NOT cublas_dir OR NOT cudnn_dir)
      message(STATUS "sdxl4j: SDXL_CUDA_LIBS_INCLUDE=${SDXL_CUDA_LIBS_INCLUDE} lacks "
                     "cublas_v2.h or cudnn.h; looking elsewhere")
    endif()
  endif()

  # 2. toolkit and system folders
  set(system_dirs ${CUDAToolkit_INCLUDE_DIRS} /usr/local/cuda/include /usr/include /usr/include/x86_64-linux-gnu)
  if(NOT cublas_dir)
    _sdxl_find_header(cublas_dir cublas_v2.h ${system_dirs})
  endif()
  if(NOT cudnn_dir)
    _sdxl_find_header(cudnn_dir cudnn.h ${system_dirs})
  endif()

  # 3. installed Python wheels
  find_program(SDXL_PYTHON3 NAMES python3 python)
  if(NOT cublas_dir OR NOT cudnn_dir)
    _sdxl_python_sites(sites "${SDXL_PYTHON3}")
    _sdxl_wheel_includes(wheel_dirs ${sites})
    if(NOT cublas_dir)
      _sdxl_find_header(cublas_dir cublas_v2.h ${wheel_dirs})
    endif()
    if(NOT cudnn_dir)
      _sdxl_find_header(cudnn_dir cudnn.h ${wheel_dirs})
    endif()
  endif()

  # 4. download
  if((NOT cublas_dir OR NOT cudnn_dir) AND SDXL_CUDA_LIBS_DOWNLOAD)
    _sdxl_download_headers(dl_dirs "${SDXL_PYTHON3}")
    if(NOT cublas_dir)
      _sdxl_find_header(cublas_dir cublas_v2.h ${dl_dirs})
    endif()
    if(NOT cudnn_dir)
      _sdxl_find_header(cudnn_dir cudnn.h ${dl_dirs})
    endif()
  endif()

  if(cublas_dir)
    target_include_directories(${target} SYSTEM PRIVATE "${cublas_dir}")
    target_compile_definitions(${target} PRIVATE SDXL_HAVE_CUBLAS=1)
    message(STATUS "sdxl4j: cuBLAS headers: ${cublas_dir} (linear/matmul on CUDA; libcublas is loaded at run time)")
  else()
    message(STATUS "sdxl4j: cuBLAS headers not found: linear/matmul are compiled out of the CUDA backend "
                   "(set SDXL_CUDA_LIBS_INCLUDE to the folder holding cublas_v2.h)")
  endif()
  if(cudnn_dir)
    target_include_directories(${target} SYSTEM PRIVATE "${cudnn_dir}")
    target_compile_definitions(${target} PRIVATE SDXL_HAVE_CUDNN=1)
    message(STATUS "sdxl4j: cuDNN headers: ${cudnn_dir} (conv2d on CUDA; libcudnn is loaded at run time)")
  else()
    message(STATUS "sdxl4j: cuDNN headers not found: conv2d is compiled out of the CUDA backend "
                   "(set SDXL_CUDA_LIBS_INCLUDE to the folder holding cudnn.h)")
  endif()
endfunction()
