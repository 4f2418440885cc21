#!/usr/bin/env bash
# One H200 (device kind nvidia-h200), 2026-12-05: the full gpu suite with the tests rewritten
# for "Tests that would catch a real failure" (quick and full mode), those tests under
# compute-sanitizer, and the SM-contention measurement (nvlar-bench --overlap, emulated ranks).
# Usage on the device machine, from the repository root:
#   COMMIT=<hash> bash docs/data/runs/2026-12-05-suite/commands.sh STEP...
# Steps: build; full (the gpu suite, full mode); quick (the gpu suite, NVLAR_TEST_QUICK=1);
# memcheck (allreduce, push_stress, epochs, one_rank under compute-sanitizer memcheck, quick);
# overlap2 / overlap8 (2 or 8 emulated ranks, bf16 sum, 256 KiB and 64 MiB per rank, every
# kernel at 8, 16, 24, 32, 64, 128 CTAs per rank where they fit, beside an 8192 bf16 GEMM).
# stress (test_push_stress full then quick); stress-diag, stress-diag2 (its hang, by knob);
# ce (the copy-engine two-shot); ddp (ddp-bench on one GPU).
# Logs in /tmp/logs, packed into $OUT/logs.tgz. The build directory is build-dev/ in the
# repository (kept between calls while the machine stays warm).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
L=/tmp/logs; mkdir -p "$L"
B=$PWD/build-dev
SECONDS=0
pack() { cp "$B/meson-logs/testlog.txt" "$L/testlog-$$.txt" 2>/dev/null; tar czf "$OUT/logs.tgz" -C /tmp logs; }
trap pack EXIT
{ echo "commit ${COMMIT:-unknown}"; date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } >> "$L/commit.txt" 2>&1
for step in "$@"; do
  echo "== $step at $SECONDS s"
  case "$step" in
    build)
      [ -d "$B" ] || meson setup "$B" -Dnccl_home="$nccl_dir" >"$L/setup.log" 2>&1
      ninja -C "$B" >"$L/build.log" 2>&1 || { tail -30 "$L/build.log"; exit 1; } ;;
    full)
      (cd "$B" && timeout "${FULL_LIMIT:-470}" meson test --suite gpu --no-rebuild --print-errorlogs) >"$L/gpu-full.txt" 2>&1
      echo "full gpu suite exit $?"; grep -E '^ *[0-9]+/[0-9]+ ' "$L/gpu-full.txt" ;;
    quick)
      (cd "$B" && NVLAR_TEST_QUICK=1 timeout 300 meson test --suite gpu --no-rebuild --print-errorlogs) >"$L/gpu-quick.txt" 2>&1
      echo "quick gpu suite exit $?"; grep -E '^ *[0-9]+/[0-9]+ ' "$L/gpu-quick.txt" ;;
    memcheck)
      for t in allreduce push_stress epochs one_rank; do
        NVLAR_TEST_QUICK=1 NVLAR_TIMEOUT_MS=60000 timeout 200 compute-sanitizer --tool memcheck \
          --report-api-errors no --error-exitcode 99 "$B/test/gpu/test_gpu_$t" >"$L/memcheck-$t.txt" 2>&1
        echo "memcheck $t exit $?: $(grep 'ERROR SUMMARY' "$L/memcheck-$t.txt" | tail -1)"
      done ;;
    stress-diag)
      # test_push_stress's full mode timed out (run 1): which knob makes the hang go away?
      for v in "default" "NVLAR_TEST_STRESS_BLOCKS=99" "NVLAR_TEST_STRESS_BLOCKS=64" \
               "NVLAR_TEST_STRESS_BLOCKS=98" "NVLAR_TEST_STRESS_DELAY_NS=0"; do
        env NVLAR_TEST_STRESS_CALLS=3000 NVLAR_TIMEOUT_MS=4000 ${v/default/NVLAR_X=1} timeout 60 \
          "$B/test/gpu/test_gpu_push_stress" >"$L/stress-$v.txt" 2>&1
        echo "stress $v exit $?: $(head -c 300 "$L/stress-$v.txt" | tr '\n' ' ')"
      done ;;
    stress-diag2)
      # Run 5 left the hang to residency or to the protocol: vary what each would depend on
      # (CTAs per rank against one per SM, the pull one-shot, the hardware queues, more skew).
      for v in "default" "NVLAR_TEST_STRESS_DELAY_NS=100000" "NVLAR_TEST_STRESS_BLOCKS=33" \
               "NVLAR_TEST_STRESS_BLOCKS=16" "NVLAR_TEST_STRESS_BLOCKS=8" "NVLAR_TEST_STRESS_ALGO=0" \
               "CUDA_DEVICE_MAX_CONNECTIONS=32" "CUDA_DEVICE_MAX_CONNECTIONS=16"; do
        env NVLAR_TEST_STRESS_CALLS=6000 NVLAR_TIMEOUT_MS=3000 ${v/default/NVLAR_X=1} timeout 60 \
          "$B/test/gpu/test_gpu_push_stress" >"$L/stress2-$v.txt" 2>&1
        echo "stress $v exit $? at $SECONDS s: $(head -c 400 "$L/stress2-$v.txt" | tr '\n' ' ')"
      done ;;
    stress)
      # test_push_stress alone, full mode then quick mode, as meson runs it.
      for mode in full quick; do
        q=0; [ "$mode" = quick ] && q=1
        (cd "$B" && NVLAR_TEST_QUICK=$q timeout 300 meson test --suite gpu --no-rebuild --print-errorlogs push-stress) >"$L/stress-$mode.txt" 2>&1
        echo "push-stress $mode exit $?"; grep -E '^ *[0-9]+/[0-9]+ |back-to-back' "$L/stress-$mode.txt"
      done ;;
    ce)
      # The copy-engine two-shot (algorithm 5, cetwoshot): its emulated matrix (quick), its own
      # test, the timeout and epochs tests, then memcheck of its own test (quick).
      (cd "$B" && NVLAR_TEST_QUICK=1 NVLAR_TEST_ALGO=5 timeout 150 meson test --suite gpu --no-rebuild \
        --print-errorlogs allreduce ce-twoshot timeout epochs) >"$L/ce-quick.txt" 2>&1
      echo "ce quick exit $?"; grep -E '^ *[0-9]+/[0-9]+ ' "$L/ce-quick.txt"
      NVLAR_TIMEOUT_MS=20000 NVLAR_TEST_QUICK=1 timeout 120 compute-sanitizer --tool memcheck \
        --report-api-errors no --error-exitcode 99 "$B/test/gpu/test_gpu_ce_twoshot" >"$L/memcheck-ce.txt" 2>&1
      echo "memcheck ce exit $?: $(grep 'ERROR SUMMARY' "$L/memcheck-ce.txt" | tail -1)"
      timeout 90 "$B/scripts/nvlar-bench" --emulate 2 --algo cetwoshot --dtype bfloat16 --min-bytes 4M \
        --max-bytes 64M --step 16 --overlap --trials 3 --csv "$L/ce-overlap.csv" >"$L/ce-overlap.txt" 2>&1
      echo "ce overlap exit $?"; grep -A30 '^# overlap' "$L/ce-overlap.txt" | head -30 ;;
    ddp)
      # (The unit test ddp-bench, the job on the CPU over gloo, runs in CI: minutes of CPU.)
      timeout 120 scripts/ddp-bench --ranks 1 --layers 2 --hidden 1024 --seq 512 --batch 2 --warmup 3 \
        --iters 5 --lib "$B/libnvlar.so" --csv "$L/ddp-1gpu.csv" --logs "$L/ddp-logs" >"$L/ddp-1gpu.txt" 2>&1
      echo "ddp 1 gpu exit $?"; tail -12 "$L/ddp-1gpu.txt" ;;
    overlap2|overlap8)
      n=${step#overlap}
      timeout "${OVERLAP_LIMIT:-200}" "$B/scripts/nvlar-bench" --emulate "$n" --dtype bfloat16 --overlap \
        --min-bytes 256K --max-bytes 64M --step 256 --trials 5 \
        --csv "$L/emulated$n-overlap.csv" --plot "$L/emulated$n" >"$L/emulated$n-overlap.txt" 2>&1
      echo "overlap $n ranks exit $?"; grep -A80 '^# overlap' "$L/emulated$n-overlap.txt" | head -80 ;;
  esac
done
echo "done at $SECONDS s"
