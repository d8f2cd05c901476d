# Per-kernel resource report from ptxas, checked by CTest (no second compile):
#  * the CUDA sources of `target` compile with --resource-usage (= -Xptxas -v: registers, static shared
#    memory, stack frame, spill stores/loads per kernel and architecture), through the compiler launcher
#    sdxl_ptxas_log.sh, which passes nvcc's stderr through and keeps a copy as <object>.ptxas.txt;
#  * CTest cuda_resources (nvcc builds only) runs sdxl_cuda_resources.py over those logs: it writes the table
#    to <build>/cuda_resources.txt, prints it, and fails on any spill or on static shared memory > 48 KiB;
#  * CTest cuda_resources_selftest (every build with Python 3) feeds the checker canned logs: a spilling
#    kernel and a 50000 B smem kernel must fail, a clean log must pass.
# Call after enable_testing().

function(sdxl_cuda_resource_check target)
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(NOT Python3_Interpreter_FOUND)
    message(STATUS "sdxl4j: no Python 3, CUDA resource report (cuda_resources test) disabled")
    return()
  endif()
  set(checker "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/sdxl_cuda_resources.py")
  add_test(NAME cuda_resources_selftest COMMAND "${Python3_EXECUTABLE}" "${checker}" --self-test)

  if(NOT SDXL_WITH_CUDA OR NOT CMAKE_CUDA_COMPILER_ID STREQUAL "NVIDIA")
    return()
  endif()
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:--resource-usage>)
  # Run through /bin/sh (no reliance on the exec bit); a launcher the user set comes after it (e.g.
  # -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache: ccache replays the compiler's stderr on a hit, so the log is kept).
  set(launcher /bin/sh "${CMAKE_CURRENT_FUNCTION_LIST_DIR}/sdxl_ptxas_log.sh")
  get_target_property(user_launcher ${target} CUDA_COMPILER_LAUNCHER)
  if(user_launcher)
    list(APPEND launcher ${user_launcher})
  endif()
  set_target_properties(${target} PROPERTIES CUDA_COMPILER_LAUNCHER "${launcher}")
  # The checker gets every object of the target and reads the logs of the .cu ones (a missing log fails).
  add_test(NAME cuda_resources
           COMMAND "${Python3_EXECUTABLE}" "${checker}" --out "${CMAKE_CURRENT_BINARY_DIR}/cuda_resources.txt"
                   "$<TARGET_OBJECTS:${target}>")
endfunction()
