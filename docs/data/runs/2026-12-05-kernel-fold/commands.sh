#!/usr/bin/env bash
# One GPU (device kind nvidia-h100-x1 or nvidia-h200), 2026-12-05: the kernel vocabulary fold
# (one rank-order reduction, one two-shot schedule, one kernel-kind derivation) against the
# kernels before it. Usage on the device machine, from the repository root, with the sources
# before the fold in base-src/ (git archive BASE | tar x -C base-src; ignored by git):
#   BASE=<hash> COMMIT=<hash> bash docs/data/runs/2026-12-05-kernel-fold/commands.sh STEP...
# Steps: build (build-dev/ from this tree, build-base/ from base-src/: nvlar-bench only);
# timing (nvlar-bench --emulate 2 and 8, every kernel, 16 CTAs per rank, 64 KiB-32 MiB,
# base/new/base/new, then compare.py: each kernel and size, new against base, beside the
# spread between the two runs of each); full (the gpu suite in full mode: the emulated
# matrix at 2-8 ranks and every other gpu test); memcheck (compute-sanitizer memcheck over
# the emulated matrix, quick, per folded algorithm, MEMCHECK_ALGOS to narrow); mutations (the
# GPU lines of test/mutations/mutations.tsv, each caught or not).
# Logs in /tmp/logs, packed into $OUT/logs.tgz. NVLink multicast off.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
here=$(cd "$(dirname "$0")" && pwd)
L=/tmp/logs; mkdir -p "$L"
B=$PWD/build-dev; BB=$PWD/build-base
SECONDS=0
pack() { cp "$B/meson-logs/testlog.txt" "$L/testlog-$$.txt" 2>/dev/null; tar czf "$OUT/logs.tgz" -C /tmp logs; }
trap pack EXIT
{ echo "commit ${COMMIT:-unknown} base ${BASE:-unknown}"; date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } >> "$L/commit.txt" 2>&1
for step in "$@"; do
  echo "== $step at $SECONDS s"
  case "$step" in
    build)
      [ -d "$B" ] || meson setup "$B" -Dnccl_home="$nccl_dir" >"$L/setup.log" 2>&1
      ninja -C "$B" >"$L/build.log" 2>&1 || { tail -30 "$L/build.log"; exit 1; }
      # The base tree is needed by the timing step only; without base-src/ it is not built.
      [ -d base-src ] || { echo "no base-src/: base not built"; continue; }
      [ -d "$BB" ] || (cd base-src && meson setup "$BB" -Dnccl_home="$nccl_dir" -Dtests=disabled) >"$L/setup-base.log" 2>&1
      ninja -C "$BB" scripts/nvlar-bench >"$L/build-base.log" 2>&1 || { tail -30 "$L/build-base.log"; exit 1; } ;;
    timing)
      for n in 2 8; do
        for run in 1 2; do
          for tree in base new; do
            bench=$B/tools/nvlar-bench; [ "$tree" = base ] && bench=$BB/scripts/nvlar-bench
            timeout 200 "$bench" --emulate "$n" --algo all --blocks 16 --min-bytes 64K \
              --max-bytes 32M --step 8 --trials 5 --csv "$L/time-$n-$tree-$run.csv" >"$L/time-$n-$tree-$run.txt" 2>&1
            echo "emulate $n $tree run $run exit $? at $SECONDS s"
          done
        done
      done
      python3 "$here/compare.py" "$L" | tee "$L/compare.txt" ;;
    full)
      (cd "$B" && timeout "${FULL_LIMIT:-470}" meson test --suite gpu --no-rebuild --print-errorlogs) >"$L/gpu-full.txt" 2>&1
      echo "full gpu suite exit $?"; grep -E '^ *[0-9]+/[0-9]+ ' "$L/gpu-full.txt" ;;
    memcheck)
      for algo in ${MEMCHECK_ALGOS:-0 1 3 4 5}; do
        NVLAR_TEST_QUICK=1 NVLAR_TEST_ALGO=$algo NVLAR_TIMEOUT_MS=60000 timeout "${MEMCHECK_LIMIT:-150}" compute-sanitizer --tool memcheck \
          --report-api-errors no --error-exitcode 99 "$B/test/gpu/test_gpu_allreduce" >"$L/memcheck-algo$algo.txt" 2>&1
        echo "memcheck algo $algo exit $?: $(grep 'ERROR SUMMARY' "$L/memcheck-algo$algo.txt" | tail -1)"
      done ;;
    mutations)
      # The tests against deliberate bugs (test/mutations): the GPU ones, MUTATIONS to narrow.
      timeout "${MUTATION_LIMIT:-300}" python3 test/mutations/run-mutations "$B" --gpu --log "$L" \
        ${MUTATIONS:+--only $MUTATIONS} 2>&1 | tee "$L/mutations.txt" ;;
  esac
  pack
done
echo "done at $SECONDS s"
