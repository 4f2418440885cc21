#!/usr/bin/env bash
# One H200 (device kind nvidia-h200), 2026-12-04: the lifecycle rewrite of "Fail the way NCCL
# fails". Usage on the device machine, from the repository root:
#   bash docs/data/runs/2026-12-04-lifecycle/commands.sh STEP...
# Steps: build; lifetimes (test_gpu_lifetimes, then under compute-sanitizer memcheck, quick);
# one-rank (test_gpu_one_rank, then under memcheck, quick);
# quick (the gpu suite with NVLAR_TEST_QUICK=1); full (the gpu suite in full); memcheck (every
# gpu test under memcheck, quick matrix). Logs in /tmp/logs, packed into $OUT/logs.tgz.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
L=/tmp/logs; mkdir -p "$L"
B=/tmp/b
SECONDS=0
pack() { cp "$B/meson-logs/testlog.txt" "$L/" 2>/dev/null; tar czf "$OUT/logs.tgz" -C /tmp logs; }
trap pack EXIT
: > "$L/commit.txt" # the commit: from the caller (the machine's copy of .git can be stale)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> "$L/commit.txt" 2>&1
for step in "$@"; do
  echo "== $step at $SECONDS s"
  case "$step" in
    build)
      [ -d "$B" ] || meson setup "$B" -Dnccl_home="$nccl_dir" >"$L/setup.log" 2>&1
      ninja -C "$B" >"$L/build.log" 2>&1 || { tail -30 "$L/build.log"; exit 1; } ;;
    lifetimes)
      NVLAR_TIMEOUT_MS=20000 timeout 120 "$B/test/gpu/test_gpu_lifetimes" >"$L/lifetimes.txt" 2>&1
      echo "lifetimes exit $?"; tail -5 "$L/lifetimes.txt"
      NVLAR_TEST_QUICK=1 NVLAR_TIMEOUT_MS=20000 timeout 300 compute-sanitizer --tool memcheck \
        --report-api-errors no --error-exitcode 99 "$B/test/gpu/test_gpu_lifetimes" \
        >"$L/memcheck-lifetimes.txt" 2>&1
      echo "memcheck lifetimes exit $?"; grep -E 'ERROR SUMMARY|CHECK failed' "$L/memcheck-lifetimes.txt" | tail -3 ;;
    quick)
      (cd "$B" && NVLAR_TEST_QUICK=1 timeout 400 meson test --suite gpu --no-rebuild --print-errorlogs) >"$L/gpu-quick.txt" 2>&1
      echo "quick gpu suite exit $?"; grep -E '^ *[0-9]+/[0-9]+ ' "$L/gpu-quick.txt" ;;
    full)
      (cd "$B" && timeout 560 meson test --suite gpu --no-rebuild --print-errorlogs) >"$L/gpu-full.txt" 2>&1
      echo "full gpu suite exit $?"; grep -E '^ *[0-9]+/[0-9]+ ' "$L/gpu-full.txt" ;;
    one-rank)
      timeout 200 "$B/test/gpu/test_gpu_one_rank" >"$L/one-rank.txt" 2>&1
      echo "one-rank exit $?"; tail -2 "$L/one-rank.txt"
      NVLAR_TEST_QUICK=1 timeout 300 compute-sanitizer --tool memcheck --report-api-errors no \
        --error-exitcode 99 "$B/test/gpu/test_gpu_one_rank" >"$L/memcheck-one-rank.txt" 2>&1
      echo "memcheck one-rank exit $?"; grep -E 'ERROR SUMMARY|CHECK failed' "$L/memcheck-one-rank.txt" | tail -2 ;;
    memcheck)
      for t in "$B"/test/gpu/test_gpu_*; do
        case "$t" in *timeout*) continue ;; esac
        NVLAR_TEST_QUICK=1 NVLAR_TIMEOUT_MS=60000 timeout 300 compute-sanitizer --tool memcheck \
          --report-api-errors no --error-exitcode 99 "$t" >"$L/memcheck-$(basename "$t").txt" 2>&1
        echo "memcheck $(basename "$t") exit $?: $(grep 'ERROR SUMMARY' "$L/memcheck-$(basename "$t").txt" | tail -1)"
      done ;;
  esac
done
echo "done at $SECONDS s"
