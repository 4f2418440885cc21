#!/usr/bin/env bash
# One GPU (nvidia-h100-x1 or nvidia-h200), 2026-12-07 (fourth session): what waits when the
# copy-engine two-shot runs beside a GEMM, eager all-reduces beside a GEMM at each priority,
# and the gpu suite in full mode with memcheck at the session's first commit. Usage on the
# device machine, from the repository root:
#   COMMIT=<hash> [DEADLINE=s] bash docs/data/runs/2026-12-07-eager/commands.sh STEP...
# Steps: build (build-dev/); chain (experiments/chain_beside.cu: short kernels, device-to-device
# copies and the copy-engine two-shot's chain of both, alone and beside a GEMM, eager and in a
# graph, at the default and the greatest priority); eager-low, eager-high, eager-attr
# (nvlar-bench --emulate 2 --overlap --overlap-launch eager, the kernels of ALGOS (default push
# two-shot, TMA push two-shot, copy-engine two-shot) at 8-128 CTAs, bf16, MIN to MAX by STEP (default 4 and 64 MiB
# per rank):
# the all-reduces' stream at the default priority, at the greatest, or at the default with
# NVLAR_PRIORITY=high, each kernel launched at the greatest; clocks sampled beside); full (meson
# test --suite gpu, full mode; its testlog kept); memcheck (compute-sanitizer memcheck over the
# quick matrix of each algorithm in MEMCHECK_ALGOS, default "4 5 2", with the priority
# alternated as the matrix does); cechunks (the copy-engine two-shot beside the GEMM at 4 MiB
# with 1, 2 and 8 chunks per call, and with PDL off); one (the gpu test TEST, default
# bench-overlap). A step that would start after DEADLINE seconds (default 540)
# is skipped. Logs in /tmp/logs, packed into $OUT/logs.tgz. NVLink multicast off (one GPU
# anyway).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
L=/tmp/logs; mkdir -p "$L"
B=$PWD/build-dev
SECONDS=0
deadline=${DEADLINE:-540}
pack() { tar czf "$OUT/logs.tgz" -C /tmp logs; }
trap pack EXIT
{ echo "commit ${COMMIT:-unknown}"; date -u; nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv,noheader; } >> "$L/commit.txt" 2>&1
left() { echo $((deadline - SECONDS)); }
stamp() { while IFS= read -r line; do printf '%s\t%s\n' "$(date +%H:%M:%S.%3N)" "$line"; done; }
sample_clocks() {  # $1: file; runs until killed
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active \
    --format=csv -lms 100 > "$1" 2>&1
}
for step in "$@"; do
  if [ "$(left)" -le 20 ]; then echo "== $step SKIPPED at $SECONDS s (deadline $deadline)"; continue; fi
  echo "== $step at $SECONDS s"
  case "$step" in
    build)
      [ -d "$B" ] || meson setup "$B" -Dnccl_home="$nccl_dir" >"$L/setup.log" 2>&1
      ninja -C "$B" >"$L/build.log" 2>&1 || { tail -30 "$L/build.log"; exit 1; } ;;
    chain)
      nvcc -O3 -arch=sm_90 -std=c++17 -o /tmp/chain_beside experiments/chain_beside.cu -lcublas >"$L/chain-build.txt" 2>&1 &&
        timeout 120 /tmp/chain_beside 8192 >"$L/chain-beside.txt" 2>&1
      echo "chain exit $?"; cat "$L/chain-beside.txt" ;;
    eager-low|eager-high|eager-attr)
      name=overlap-$step; priority=${step#eager-}; kernels=stream
      [ "$step" = eager-attr ] && { priority=low; kernels=high; }
      sample_clocks "$L/$name-clocks.csv" & sampler=$!
      NVLAR_PRIORITY=$kernels timeout "$(left)" stdbuf -oL "$B/tools/nvlar-bench" --emulate 2 --algo "${ALGOS:-pushtwoshot,tmapush,cetwoshot}" \
        --dtype bfloat16 --overlap --overlap-launch eager --stream-priority "$priority" --min-bytes "${MIN:-4M}" --max-bytes "${MAX:-64M}" --step "${STEP:-16}" --trials 3 \
        --csv "$L/$name.csv" 2>&1 | stamp >"$L/$name.txt"
      echo "$name exit ${PIPESTATUS[0]}"; cut -f2- "$L/$name.txt" | grep -A60 '^# overlap'
      pkill -P $sampler; kill $sampler; wait $sampler 2>/dev/null ;;  # nvidia-smi, then its shell
    cechunks)
      # The copy-engine two-shot at 4 MiB per rank, 16 CTAs, eager, its stream at the greatest
      # priority, beside the GEMM: staging of 64, 4 and 1 MiB per rank (1, 2 and 8 chunks per
      # call: 4, 6 and 18 kernels), and at 64 MiB of staging with PDL off.
      for variant in 64M:1 4M:1 1M:1 64M:0; do
        bb=${variant%:*}; pdl=${variant#*:}
        timeout 60 "$B/tools/nvlar-bench" --emulate 2 --algo cetwoshot --dtype bfloat16 --overlap --overlap-launch eager \
          --stream-priority high --min-bytes 4M --max-bytes 4M --blocks 16 --buffer-bytes "$bb" --pdl "$pdl" --trials 3 \
          >"$L/cechunks-$bb-pdl$pdl.txt" 2>&1
        echo "staging $bb pdl $pdl exit $?: $(grep -A2 '^# overlap' "$L/cechunks-$bb-pdl$pdl.txt" | tail -1)"
      done ;;
    one)
      # One gpu test (TEST, default bench-overlap), full mode.
      (cd "$B" && timeout "$(left)" meson test --no-rebuild --print-errorlogs "${TEST:-bench-overlap}") >"$L/test-${TEST:-bench-overlap}.txt" 2>&1
      echo "test ${TEST:-bench-overlap} exit $?"; grep -E '^ *[0-9]+/[0-9]+ ' "$L/test-${TEST:-bench-overlap}.txt"
      cp "$B/meson-logs/testlog.txt" "$L/testlog-${TEST:-bench-overlap}.txt" 2>/dev/null
      grep -E '^--overlap-launch' "$L/testlog-${TEST:-bench-overlap}.txt" ;;
    full)
      (cd "$B" && timeout "$(left)" meson test --suite gpu --no-rebuild --print-errorlogs) >"$L/gpu-full.txt" 2>&1
      echo "full gpu suite exit $?"; grep -E '^ *[0-9]+/[0-9]+ ' "$L/gpu-full.txt"
      cp "$B/meson-logs/testlog.txt" "$L/testlog-full.txt" 2>/dev/null ;;
    memcheck)
      for algo in ${MEMCHECK_ALGOS:-4 5 2}; do
        limit=$(left); [ "$limit" -gt 150 ] && limit=150; [ "$limit" -le 5 ] && { echo "memcheck algo $algo SKIPPED"; continue; }
        NVLAR_TEST_QUICK=1 NVLAR_TEST_ALGO=$algo NVLAR_TIMEOUT_MS=60000 timeout "$limit" compute-sanitizer --tool memcheck \
          --report-api-errors no --error-exitcode 99 "$B/test/gpu/test_gpu_allreduce" >"$L/memcheck-algo$algo.txt" 2>&1
        echo "memcheck algo $algo exit $?: $(grep 'ERROR SUMMARY' "$L/memcheck-algo$algo.txt" | tail -1)"
      done ;;
    *) echo "unknown step $step" ;;
  esac
  pack
done
echo "done at $SECONDS s"
