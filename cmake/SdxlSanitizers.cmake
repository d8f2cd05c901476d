# -DSDXL_SANITIZE=address,undefined builds every target with those sanitizers (native tests, fuzzing).
set(SDXL_SANITIZE "" CACHE STRING "Comma-separated sanitizers (address, undefined, ...) for all targets")
if(SDXL_SANITIZE)
  # -fno-sanitize-recover: a UBSan finding fails the test run instead of only printing.
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=${SDXL_SANITIZE}> $<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-sanitize-recover=all>)
  add_link_options(-fsanitize=${SDXL_SANITIZE})
endif()
