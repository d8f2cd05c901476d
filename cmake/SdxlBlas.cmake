# CBLAS for the CPU backend. The Maven build passes SDXL_OPENBLAS_DIR = the folder unpacked from the
# org.bytedeco:openblas platform jar (include/cblas.h, libopenblas.so.0); at run time JavaCPP's Loader
# loads that same library first. A native-only build may use the system's OpenBLAS instead.
set(SDXL_OPENBLAS_DIR "" CACHE PATH "Folder with include/cblas.h and libopenblas.so.0 (from the bytedeco jar)")

if(SDXL_OPENBLAS_DIR)
  find_path(SDXL_CBLAS_INCLUDE cblas.h PATHS "${SDXL_OPENBLAS_DIR}/include" NO_DEFAULT_PATH REQUIRED)
  find_file(SDXL_OPENBLAS_LIB NAMES libopenblas.so.0 libopenblas.so PATHS "${SDXL_OPENBLAS_DIR}" "${SDXL_OPENBLAS_DIR}/lib"
            NO_DEFAULT_PATH REQUIRED)
  get_filename_component(SDXL_OPENBLAS_LIBDIR "${SDXL_OPENBLAS_LIB}" DIRECTORY)
  add_library(sdxl_blas INTERFACE)
  target_include_directories(sdxl_blas INTERFACE "${SDXL_CBLAS_INCLUDE}")
  # libopenblas.so.0 needs libgfortran.so.5 from the same folder when linking executables. No -rpath here:
  # the packaged libsdxl.so must not name this build folder (JavaCPP preloads OpenBLAS); CMake still gives
  # build-tree binaries (the native test runner) an RPATH to it.
  target_link_libraries(sdxl_blas INTERFACE "${SDXL_OPENBLAS_LIB}" "-Wl,-rpath-link,${SDXL_OPENBLAS_LIBDIR}")
else()
  find_path(SDXL_CBLAS_INCLUDE cblas.h PATH_SUFFIXES openblas)
  find_library(SDXL_OPENBLAS_LIB NAMES openblas)
  if(NOT SDXL_CBLAS_INCLUDE OR NOT SDXL_OPENBLAS_LIB)
    message(FATAL_ERROR "OpenBLAS not found: pass -DSDXL_OPENBLAS_DIR=<folder from the org.bytedeco:openblas jar> "
                        "or install libopenblas-dev")
  endif()
  add_library(sdxl_blas INTERFACE)
  target_include_directories(sdxl_blas INTERFACE "${SDXL_CBLAS_INCLUDE}")
  target_link_libraries(sdxl_blas INTERFACE "${SDXL_OPENBLAS_LIB}")
endif()
