#!/usr/bin/env bash
# The CUDA backend's checks on a lent GPU machine (no JVM there), as two device calls that each fit the
# device tool's limits (15 minutes of device time per session, at most 540 s per call including the machine
# start). Logs go under $OUT as each phase runs, so a call that is killed still returns what it did.
#
#   call 1: bash tools/gpu/check.sh 1    versions -> configure + build (sm_90, four runners only) -> the real
#                                        SDXL base UNet step latency at 1024x1024, CFG batch 2, fp16 (+ the op
#                                        profile of one eager step per op family) then bf16
#                                        (random weights made on the device), each eager and as one CUDA graph
#                                        (--graph both) -> the real SDXL VAE decode at 1024x1024, batch 1, bf16
#                                        -> op parity (CUDA vs CPU, all dtypes)
#                                        -> the attention kernels timed at SDXL's shapes (--perf)
#   call 2: bash tools/gpu/check.sh 2    (re)build if the machine is fresh -> the model reference cases in
#                                        f32/f16/bf16 -> compute-sanitizer memcheck (caching allocator off,
#                                        SDXL4J_CUDA_CACHE=0) and racecheck -> ctest, if time is left
#
# Device tool arguments: carry=["presets/target/openblas"] (the CPU reference needs OpenBLAS: run
# `mvn -B -q -DskipTests package -pl presets` here first), timeout_s=520, e.g. command "bash tools/gpu/check.sh 1".
# Each call stops starting new phases at its budget (SDXL_CHECK_BUDGET seconds, default 480), and every phase
# also has its own limit, so one slow phase cannot eat the others' time.
#
# Rehearsal on a machine without a GPU (so that only the GPU is new on the device):
#   SDXL_CHECK_REHEARSAL=1 bash tools/gpu/check.sh 1   (and 2): the same build and phases; the CUDA phases run
#   on the CPU SIMT emulator (README: "The CUDA backend without a GPU") with the same flags, the real-size UNet
#   and VAE on the CPU backend at 128 px, and the sanitizer phases run their runner without the sanitizer when
#   compute-sanitizer is not installed. Logs under ./gpu-out unless $OUT is set.
set -uo pipefail
call="${1:-}"
if [[ "$call" != 1 && "$call" != 2 ]]; then
    echo "usage: bash tools/gpu/check.sh 1|2   (see the header of this script)" >&2
    exit 2
fi
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="${OUT:-$root/gpu-out}"
mkdir -p "$out"
blas="$root/presets/target/openblas/org/bytedeco/openblas/linux-x86_64"
build="$root/build-gpu"
jobs="$(nproc)"
budget="${SDXL_CHECK_BUDGET:-480}"
rehearsal="${SDXL_CHECK_REHEARSAL:-0}"
summary="$out/summary-$call.txt"
started=$SECONDS

step() {  # step NAME SECONDS COMMAND...: time-limited, logs to $out/NAME.log, one summary line per phase
    local name="$1" limit="$2"
    shift 2
    local left=$((budget - (SECONDS - started)))
    if ((left < 10)); then
        printf '%-26s skipped: call budget of %ss spent\n' "$name" "$budget" | tee -a "$summary"
        return 0
    fi
    ((limit > left)) && limit=$left
    local t0=$SECONDS
    timeout --kill-after=5 "$limit" "$@" > "$out/$name.log" 2>&1
    local rc=$?
    local verdict="ok"
    ((rc != 0)) && verdict="FAILED"
    ((rc == 124 || rc == 137)) && verdict="TIMED OUT after ${limit}s"
    printf '%-26s %-6s rc=%-3s %4ss\n' "$name" "${verdict%% *}" "$rc" "$((SECONDS - t0))" | tee -a "$summary"
    [[ "$verdict" != ok ]] && [[ "$verdict" != FAILED ]] && echo "    $verdict" | tee -a "$summary"
    tail -n 3 "$out/$name.log" | sed 's/^/    /' | tee -a "$summary"
    return 0
}

# The runners and their device arguments. In rehearsal the CUDA phases run on the CPU SIMT emulator (the
# emulator build of the same runners, with the fake CUDA runtime/cuBLAS/cuDNN), so that the very commands of the
# device call, CUDA path included, have run before; the real-size UNet runs on the CPU backend (too big for
# the emulator) at a small size.
emu_flag=OFF
ops_bin="$build/sdxl_backend_ops"
cases_bin="$build/sdxl_model_cases"
if [[ "$rehearsal" == 1 ]]; then
    emu_flag=ON
    ops_bin="$build/emu/sdxl_backend_ops_emu"
    cases_bin="$build/emu/sdxl_model_cases_emu"
    export SDXL4J_CUDA_LIBS="$build/emu/fakelibs"
    unet_dev=(--device cpu)
    ops_args=(--emulator)
    perf_extra=(--small)  # timing on the emulator means nothing; only the command line is rehearsed
    unet_args=(--size 64 --iters 1 --graph both)  # 2 x 3 CPU steps: the command line, not the timing
    vae_args=(--dtype f32 --size 128 --iters 2)  # the CPU backend computes in F32 only
    half_dtypes=(f32 f32)  # the CPU backend computes in F32 only
else
    unet_dev=(--device cuda)
    ops_args=()
    perf_extra=()
    unet_args=(--size 1024 --batch 2 --iters 8 --graph both)  # 2 x (2 warm-up + 8) steps per dtype
    vae_args=(--dtype bf16 --size 1024 --batch 1 --iters 5)  # bf16: the SDXL VAE without the fp32 upcast
    half_dtypes=(f16 bf16)
fi
dev=(--device cuda)
model_dtypes=(f32 f16 bf16)
memcheck_dtype=f16

sanitizer() {  # sanitizer TOOL ARGS... -- COMMAND...
    local tool="$1"
    shift
    local args=()
    while [[ "$1" != -- ]]; do args+=("$1"); shift; done
    shift
    if command -v compute-sanitizer > /dev/null; then
        compute-sanitizer --tool "$tool" "${args[@]}" --error-exitcode 3 "$@"
    elif [[ "$rehearsal" == 1 ]]; then
        echo "(rehearsal: compute-sanitizer not installed, running the command alone)"
        "$@"
    else
        echo "compute-sanitizer not found on PATH"
        return 127
    fi
}

build_runners() {  # configure (if needed) + build the three runners (+ the native tests in call 2)
    local targets=(sdxl_unet_perf sdxl_vae_perf sdxl_backend_ops sdxl_model_cases)
    [[ "$call" == 2 ]] && targets+=(sdxl_native_tests)
    [[ "$rehearsal" == 1 ]] && targets+=(sdxl_backend_ops_emu sdxl_model_cases_emu sdxl_native_tests_emu)
    local generator=()
    command -v ninja > /dev/null && generator=(-G Ninja)
    if [[ ! -f "$build/CMakeCache.txt" ]]; then
        step configure 90 cmake -S "$root/native" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
            -DSDXL_OPENBLAS_DIR="$blas" -DSDXL_CUDA=ON -DSDXL_CUDA_ARCHITECTURES=90 \
            -DSDXL_CUDA_EMULATOR="$emu_flag"
    fi
    step "build-$call" 240 cmake --build "$build" -j "$jobs" --target "${targets[@]}"
}

: > "$summary"
echo "check.sh call $call$( [[ "$rehearsal" == 1 ]] && echo ' (REHEARSAL on the CPU)'), budget ${budget}s, $(date -u +%FT%TZ)" \
    | tee -a "$summary"

if [[ "$call" == 1 ]]; then
    { nvidia-smi; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv;
      nvcc --version; cmake --version | head -1; } > "$out/machine.txt" 2>&1
    build_runners
    step versions 30 "$ops_bin" --versions
    # fp16 also prints the op profile of one more (eager) step: time, TFLOP/s and GB/s per op family.
    step unet_perf_f16 120 "$build/sdxl_unet_perf" "${unet_dev[@]}" --dtype "${half_dtypes[0]}" "${unet_args[@]}" --profile
    step unet_perf_bf16 120 "$build/sdxl_unet_perf" "${unet_dev[@]}" --dtype "${half_dtypes[1]}" "${unet_args[@]}"
    step vae_perf_bf16 60 "$build/sdxl_vae_perf" "${unet_dev[@]}" "${vae_args[@]}"
    step backend_ops 150 "$ops_bin" "${ops_args[@]}"
    # The attention kernels (tensor-core F16/BF16 at head dim 64/80, SIMT otherwise) timed at SDXL's shapes.
    step perf_attention 60 "$ops_bin" --perf "${ops_args[@]}" --op attention --dtype "${half_dtypes[0]}" "${perf_extra[@]}"
else
    build_runners
    for dt in "${model_dtypes[@]}"; do
        step "model_cases_$dt" 90 "$cases_bin" "${dev[@]}" --dtype "$dt"
    done
    step memcheck_ops 120 env SDXL4J_CUDA_CACHE=0 bash -c "$(declare -f sanitizer); rehearsal=$rehearsal; \
        sanitizer memcheck --leak-check full -- \"$ops_bin\" ${ops_args[*]} --small"
    step memcheck_models 120 env SDXL4J_CUDA_CACHE=0 bash -c "$(declare -f sanitizer); rehearsal=$rehearsal; \
        sanitizer memcheck -- \"$cases_bin\" ${dev[*]} --dtype $memcheck_dtype"
    step racecheck_attention 90 bash -c "$(declare -f sanitizer); rehearsal=$rehearsal; \
        sanitizer racecheck -- \"$ops_bin\" ${ops_args[*]} --small --op attention"
    step racecheck_norm 60 bash -c "$(declare -f sanitizer); rehearsal=$rehearsal; \
        sanitizer racecheck -- \"$ops_bin\" ${ops_args[*]} --small --op group_norm"
    if [[ "$rehearsal" == 1 ]]; then
        step ctest 90 ctest --test-dir "$build" --output-on-failure -R "^(native_tests|emu_native_tests)$"
    else
        step ctest 90 ctest --test-dir "$build" --output-on-failure -R "^native_tests$"
    fi
fi
echo "call $call done in $((SECONDS - started))s; logs in $out" | tee -a "$summary"
