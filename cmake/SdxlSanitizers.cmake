# -DSDXL_SANITIZE=address,undefined builds every target with those sanitizers (native tests, fuzzing).
set(SDXL_SANITIZE "" CACHE STRING "Comma-separated sanitizers (address, undefined, ...) for all targets")
if(SDXL_SANITIZE)
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${SDXL_SANITIZE}> $<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>)
  add_link_options(-fsanitize=${SDXL_SANITIZE})
endif()
