# Warnings for our own C++ targets (not for CUDA device code, where nvcc has its own set).
function(sdxl_enable_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -Wnon-virtual-dtor>)
endfunction()
