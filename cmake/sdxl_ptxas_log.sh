#!/bin/sh
# CUDA compiler launcher (CUDA_COMPILER_LAUNCHER, see SdxlCudaResources.cmake): runs the compile command it is
# given ("$@", nvcc or another launcher then nvcc), passes its stderr through, and keeps a copy of that
# stderr -- ptxas's --resource-usage lines -- next to the object file as <object>.ptxas.txt.
set -u
obj=""
prev=""
for a in "$@"; do
  case "$prev" in -o|--output-file) obj="$a" ;; esac
  case "$a" in -o=*|--output-file=*) obj="${a#*=}" ;; esac
  prev="$a"
done
[ -n "$obj" ] || exec "$@"  # no object (e.g. a CMake probe): nothing to log

log="$obj.ptxas.txt"
tmp="$log.$$.tmp"
status=0
"$@" 2>"$tmp" || status=$?
cat "$tmp" >&2
if [ "$status" -eq 0 ]; then
  mv -f "$tmp" "$log"
else
  rm -f "$tmp" "$log"  # a failed compile leaves no report behind (the object is stale too)
fi
exit "$status"
