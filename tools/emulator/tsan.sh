#!/usr/bin/env bash
# ThreadSanitizer over the CUDA kernels on the SIMT emulator: every emulated thread of a block is a TSan fiber,
# and the only happens-before edges are CUDA's (launch, __syncthreads, __syncwarp, end of kernel), so a shared-
# memory race between two barriers is reported (native/src/backends/cuda/emulator/emu_simt.cpp).
#
#   bash tools/emulator/tsan.sh [BUILD_DIR]      (default native/build-tsan; about 4 minutes on 2 cores)
#
# 1. builds the emulated native tests with -fsanitize=thread (CPU backend + emulated CUDA backend),
# 2. runs the emulator's own tests and the tests of every kernel with shared memory and barriers (attention,
#    group/layer norm, softmax): must be race-free (TSan stops at the first report),
# 3. runs the planted race (a shared-memory exchange without its __syncthreads): TSan must report it.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${1:-$root/native/build-tsan}"
blas="$root/presets/target/openblas/org/bytedeco/openblas/linux-x86_64"
wheels="$root/presets/target/native-build/cuda-wheels/include/nvidia"
if [[ ! -d "$blas" ]]; then
    echo "needs OpenBLAS from the Maven build first: mvn -B -q -DskipTests package -pl presets" >&2
    exit 2
fi
extra=()
[[ -d "$wheels" ]] && extra+=("-DSDXL_CUDA_LIBS_INCLUDE=$wheels/cu13/include;$wheels/cudnn/include")
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
mkdir -p "$build"
cmake -S "$root/native" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSDXL_CUDA=OFF \
    -DSDXL_SANITIZE=thread -DSDXL_OPENBLAS_DIR="$blas" "${extra[@]}" > "$build/tsan-configure.log"
cmake --build "$build" -j "$(nproc)" --target sdxl_native_tests_emu > "$build/tsan-build.log" ||
    { tail -n 30 "$build/tsan-build.log"; exit 1; }
export SDXL4J_CUDA_LIBS="$build/emu/fakelibs"
# OpenBLAS is not instrumented: keep it to one thread so its internal hand-offs cannot look like races.
export OPENBLAS_NUM_THREADS=1 TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
echo "== race-free: the emulator's tests and every CUDA kernel that uses shared memory and barriers"
for filter in emulator_ test_cuda_attention test_cuda_kernels_group_norm test_cuda_kernels_layer_norm \
    test_cuda_kernels_softmax; do
    "$build/emu/sdxl_native_tests_emu" "$filter" 2> "$build/tsan-$filter.log" | grep -E "^(ok|FAIL)|failed checks"
done
echo "== the planted race must be reported"
if SDXL_EMU_PLANTED_RACE=1 "$build/emu/sdxl_native_tests_emu" emulator_missing_syncthreads > "$build/tsan-race.log" 2>&1; then
    echo "FAILED: ThreadSanitizer did not report the planted race" >&2
    exit 1
fi
grep -m1 "WARNING: ThreadSanitizer: data race" "$build/tsan-race.log"
grep -m2 "swap_pairs_kernel" "$build/tsan-race.log" || true
echo "tsan: clean, and the planted race was reported"
