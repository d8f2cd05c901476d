#!/usr/bin/env bash
# The CUDA backend's checks in one run on a lent GPU machine (no JVM there), logs under $OUT:
#   build (CMake, sm_90 only to save time) -> ctest -> op parity (CUDA vs CPU, all dtypes) -> the model-level
#   reference cases on CUDA in f32/f16/bf16 -> compute-sanitizer memcheck + racecheck -> op perf -> the
#   real-size SDXL base UNet per-step latency (1024x1024, CFG batch 2, fp16 and bf16).
# Run from the repo root through the device tool with carry=["presets/target/openblas"] (the CPU reference
# needs OpenBLAS; build it here first with `mvn -B -q -DskipTests package -pl presets`), e.g.
#   command: "bash tools/gpu/check.sh", timeout_s: 540
# Every step has its own time limit, so one slow step cannot eat the others' budget.
set -uo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${OUT:-$root/gpu-out}"
mkdir -p "$out"
blas="$root/presets/target/openblas/org/bytedeco/openblas/linux-x86_64"
build="$root/build-gpu"
jobs="$(nproc)"

step() {  # step NAME SECONDS COMMAND...: runs with a time limit, logs to $out/NAME.log, records the status
    local name="$1" limit="$2"
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    printf '%-28s rc=%-3s %4ss\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$out/summary.txt"
    tail -n 3 "$out/$name.log" | sed 's/^/    /' | tee -a "$out/summary.txt"
    return 0
}

: > "$out/summary.txt"
{ nvidia-smi; nvcc --version; cmake --version | head -1; } > "$out/machine.txt" 2>&1
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
step configure 120 cmake -S "$root/native" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DSDXL_OPENBLAS_DIR="$blas" -DSDXL_CUDA=ON -DSDXL_CUDA_ARCHITECTURES=90
step build 300 cmake --build "$build" -j "$jobs"
step ctest 120 ctest --test-dir "$build" --output-on-failure
step backend_ops 180 "$build/sdxl_backend_ops"
for dt in f32 f16 bf16; do
    step "model_cases_$dt" 120 "$build/sdxl_model_cases" --device cuda --dtype "$dt"
done
step memcheck_ops 240 compute-sanitizer --tool memcheck --leak-check full "$build/sdxl_backend_ops" --small
step racecheck_attention 240 compute-sanitizer --tool racecheck "$build/sdxl_backend_ops" --small --op attention
step racecheck_norm 120 compute-sanitizer --tool racecheck "$build/sdxl_backend_ops" --small --op group_norm
step memcheck_models 240 compute-sanitizer --tool memcheck "$build/sdxl_model_cases" --device cuda --dtype f16
step perf_ops 180 "$build/sdxl_backend_ops" --perf --dtype f16
step unet_perf_f16 240 "$build/sdxl_unet_perf" --device cuda --dtype f16 --size 1024 --batch 2 --iters 10
step unet_perf_bf16 240 "$build/sdxl_unet_perf" --device cuda --dtype bf16 --size 1024 --batch 2 --iters 5
echo "logs in $out"
