#!/usr/bin/env bash
# One GPU (nvidia-h100-x1 or nvidia-h200), 2026-12-07 (fifth session): whether the copy-engine
# two-shot's copies need SMs, and what its call does beside a GEMM once they need none. Usage on
# the device machine, from the repository root:
#   COMMIT=<hash> [DEADLINE=s] bash docs/data/runs/2026-12-07-copies/commands.sh STEP...
# Steps: build (build-dev/); probe (experiments/copy_beside.cu: each way of copying while a
# kernel holds every SM, whether a copy batch can be captured, and the call's chain of copies
# and kernels beside a GEMM fed as nvlar-bench feeds it, each way of copying, both priorities,
# eager and in a graph); ce (nvlar-bench --emulate 2 --overlap: the copy-engine two-shot at 16
# CTAs, 4 and 64 MiB per rank, eager and in graphs, its stream at the default and the greatest
# priority; the push two-shot beside it for reference); beside (the probe's part 2 again, with
# more columns, and ncu's launch statistics of the GEMM); pdl (the push two-shot beside the
# GEMM with programmatic dependent launch on and off, greatest priority); streamwait
# (experiments/streamwait_beside.cu: the call's waits as the stream's own, beside the GEMM); full (meson test --suite gpu, full
# mode; its testlog kept); memcheck (compute-sanitizer memcheck over the quick matrix of each
# algorithm in MEMCHECK_ALGOS, default "5 4"); one (the gpu test TEST, default
# bench-overlap). A step that would start after DEADLINE seconds (default 540) is skipped. Logs
# in /tmp/logs, packed into $OUT/logs.tgz. NVLink multicast off (one GPU anyway).
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
    probe)
      nvcc -O3 -arch=sm_90 -std=c++17 -o /tmp/copy_beside experiments/copy_beside.cu -lcublas -lcuda >"$L/probe-build.txt" 2>&1 &&
        timeout "$(left)" /tmp/copy_beside 8192 >"$L/copy-beside.txt" 2>&1
      echo "probe exit $?"; cat "$L/copy-beside.txt" ;;
    beside)
      # Part 2 of the probe again (its chains beside the GEMM, with the reduce kernel as a
      # programmatic dependent launch too, and each repetition told by whether a GEMM started
      # during it), and ncu's launch statistics of the GEMM kernel (grid, CTA size, registers,
      # shared memory).
      nvcc -O3 -arch=sm_90 -std=c++17 -o /tmp/copy_beside experiments/copy_beside.cu -lcublas -lcuda >"$L/probe-build.txt" 2>&1 &&
        timeout "$(left)" /tmp/copy_beside 8192 beside >"$L/copy-beside-2.txt" 2>&1
      echo "beside exit $?"; cat "$L/copy-beside-2.txt"
      timeout 120 ncu --launch-skip 5 --launch-count 1 --section LaunchStats --section Occupancy /tmp/copy_beside 8192 gemm \
        >"$L/ncu-gemm.txt" 2>&1
      echo "ncu exit $?"; grep -vE '^==PROF==' "$L/ncu-gemm.txt" | tail -45 ;;
    streamwait)
      # experiments/streamwait_beside.cu: whether a stream wait holds an SM and can be released
      # from outside while every SM is held; the call's flags as stream waits, captured per
      # rank and replayed; the call on two streams beside the GEMM, stream waits against
      # one-CTA waiting kernels (added in the sixth session).
      nvcc -O3 -arch=sm_90 -std=c++17 -o /tmp/streamwait_beside experiments/streamwait_beside.cu -lcublas -lcuda >"$L/streamwait-build.txt" 2>&1 &&
        timeout "$(left)" /tmp/streamwait_beside 8192 >"$L/streamwait-beside.txt" 2>&1
      echo "streamwait exit $?"; cat "$L/streamwait-build.txt" | tail -5; cat "$L/streamwait-beside.txt" ;;
    pdl)
      # The push two-shot beside the GEMM with programmatic dependent launch on and off, its
      # stream at the greatest priority, eager and in graphs: 4 and 64 MiB per rank, 16 CTAs.
      for launch in eager graph; do
        for pdl in 1 0; do
          name=pdl$pdl-$launch
          timeout "$(left)" "$B/tools/nvlar-bench" --emulate 2 --algo pushtwoshot --dtype bfloat16 --overlap --pdl $pdl \
            --overlap-launch $launch --stream-priority high --min-bytes 4M --max-bytes 64M --step 16 --blocks 16 --trials 3 \
            --csv "$L/$name.csv" >"$L/$name.txt" 2>&1
          echo "$name exit $?"; grep -A4 '^# overlap' "$L/$name.txt"
        done
      done ;;
    ce)
      for launch in eager graph; do
        for priority in low high; do
          name=ce-$launch-$priority
          timeout "$(left)" "$B/tools/nvlar-bench" --emulate 2 --algo "${ALGOS:-cetwoshot,pushtwoshot}" --dtype bfloat16 --overlap \
            --overlap-launch $launch --stream-priority $priority --min-bytes 4M --max-bytes 64M --step 16 --blocks 16 --trials 3 \
            --csv "$L/$name.csv" >"$L/$name.txt" 2>&1
          echo "$name exit $?"; grep -A8 '^# overlap' "$L/$name.txt"
        done
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
      for algo in ${MEMCHECK_ALGOS:-5 4}; do
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
