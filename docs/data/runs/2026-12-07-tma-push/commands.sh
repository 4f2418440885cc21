#!/usr/bin/env bash
# One GPU (device kind nvidia-h100-x1 or nvidia-h200), 2026-12-07: the TMA push two-shot's first
# runs (its correctness, CTA sweeps and GEMM beside it, emulated ranks), the gpu suite in full
# mode at HEAD, memcheck, the GPU mutations, and what a GEMM loses to neighbours that only hold
# SMs (experiments/gemm_beside.cu). Usage on the device machine, from the repository root:
#   COMMIT=<hash> [DEADLINE=s] bash docs/data/runs/2026-12-07-tma-push/commands.sh STEP...
# Steps: build (build-dev/); stress (test_push_stress in quick and full mode); quick (the TMA
# push two-shot's matrix, or QUICK_ALGO's, epochs and timeout tests in quick mode, a short
# timeout: a first look); full (meson test --suite gpu, full mode); sweep
# (nvlar-bench --emulate 2 and 8, bf16, 64 MiB per rank, the push two-shot, TMA push two-shot
# and copy-engine two-shot at 1, 2, 4, ... CTAs); overlap (nvlar-bench --emulate 2 --overlap,
# bf16, 4 and 64 MiB, those three kernels at 8-128 CTAs); memcheck (compute-sanitizer memcheck
# over the quick matrix of the push two-shot and TMA push two-shot, or of the algorithms in
# MEMCHECK_ALGOS); mutations (the GPU lines of test/mutations/mutations.tsv, or those in
# MUTATIONS=g1,g6); gemm (experiments/gemm_beside.cu). A step that would start
# after DEADLINE seconds (default 540) is skipped and says so, so the logs come back.
# Logs in /tmp/logs, packed into $OUT/logs.tgz. NVLink multicast off (one GPU anyway).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
L=/tmp/logs; mkdir -p "$L"
B=$PWD/build-dev
SECONDS=0
deadline=${DEADLINE:-540}
pack() { cp "$B/meson-logs/testlog.txt" "$L/testlog-$$.txt" 2>/dev/null; tar czf "$OUT/logs.tgz" -C /tmp logs; }
trap pack EXIT
{ echo "commit ${COMMIT:-unknown}"; date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } >> "$L/commit.txt" 2>&1
left() { echo $((deadline - SECONDS)); }
for step in "$@"; do
  if [ "$(left)" -le 20 ]; then echo "== $step SKIPPED at $SECONDS s (deadline $deadline)"; continue; fi
  echo "== $step at $SECONDS s"
  case "$step" in
    build)
      [ -d "$B" ] || meson setup "$B" -Dnccl_home="$nccl_dir" >"$L/setup.log" 2>&1
      ninja -C "$B" >"$L/build.log" 2>&1 || { tail -30 "$L/build.log"; exit 1; } ;;
    quick)
      for t in allreduce epochs timeout; do
        NVLAR_TEST_QUICK=1 NVLAR_TEST_ALGO=${QUICK_ALGO:-6} NVLAR_TIMEOUT_MS=3000 timeout 90 "$B/test/gpu/test_gpu_$t" >"$L/quick-$t.txt" 2>&1
        echo "quick $t exit $?: $(tail -1 "$L/quick-$t.txt")"
      done ;;
    full)
      (cd "$B" && timeout "$(left)" meson test --suite gpu --no-rebuild --print-errorlogs) >"$L/gpu-full.txt" 2>&1
      echo "full gpu suite exit $?"; grep -E '^ *[0-9]+/[0-9]+ ' "$L/gpu-full.txt" ;;
    sweep)
      for n in 2 8; do
        timeout 120 "$B/tools/nvlar-bench" --emulate "$n" --algo pushtwoshot,tmapush,cetwoshot --dtype bfloat16 \
          --sweep-blocks --min-bytes 64M --max-bytes 64M --trials 5 --csv "$L/sweep-$n.csv" >"$L/sweep-$n.txt" 2>&1
        echo "sweep $n exit $?"; grep -A40 '^# CTA sweep' "$L/sweep-$n.txt" | head -40
      done ;;
    overlap)
      timeout 200 "$B/tools/nvlar-bench" --emulate 2 --algo pushtwoshot,tmapush,cetwoshot --dtype bfloat16 \
        --overlap --min-bytes 4M --max-bytes 64M --step 16 --trials 3 --csv "$L/overlap-2.csv" \
        --plot "$L/overlap-2" >"$L/overlap-2.txt" 2>&1
      echo "overlap exit $?"; grep -A40 '^# overlap' "$L/overlap-2.txt" | head -40 ;;
    stress)
      for mode in quick full; do
        NVLAR_TEST_QUICK=$([ $mode = quick ] && echo 1 || echo 0) timeout 120 "$B/test/gpu/test_gpu_push_stress" \
          >"$L/stress-$mode.txt" 2>&1
        echo "push-stress $mode exit $?: $(tail -1 "$L/stress-$mode.txt")"
      done ;;
    memcheck)
      for algo in ${MEMCHECK_ALGOS:-4 6}; do
        limit=$(left); [ "$limit" -gt 150 ] && limit=150; [ "$limit" -le 5 ] && { echo "memcheck algo $algo SKIPPED"; continue; }
        NVLAR_TEST_QUICK=1 NVLAR_TEST_ALGO=$algo NVLAR_TIMEOUT_MS=60000 timeout "$limit" compute-sanitizer --tool memcheck \
          --report-api-errors no --error-exitcode 99 "$B/test/gpu/test_gpu_allreduce" >"$L/memcheck-algo$algo.txt" 2>&1
        echo "memcheck algo $algo exit $?: $(grep 'ERROR SUMMARY' "$L/memcheck-algo$algo.txt" | tail -1)"
      done ;;
    mutations)
      timeout "$(left)" python3 test/mutations/run-mutations "$B" --gpu --log "$L" \
        ${MUTATIONS:+--only $MUTATIONS} 2>&1 | tee "$L/mutations.txt" ;;
    gemm)
      nvcc -O3 -arch=sm_90 -std=c++17 -o /tmp/gemm_beside experiments/gemm_beside.cu -lcublas >"$L/gemm-build.txt" 2>&1 &&
        timeout 120 /tmp/gemm_beside 8192 >"$L/gemm-beside.txt" 2>&1
      echo "gemm exit $?"; cat "$L/gemm-beside.txt" ;;
  esac
  pack
done
echo "done at $SECONDS s"
