#!/usr/bin/env bash
# Device run 4 (2xH200, right after run 3 on the warm machine): compute-sanitizer over the
# 2-GPU per-process scenarios (every kernel class, the departure protocol, the stress).
set -u
export NCCL_NVLS_ENABLE=0 NVLAR_TIMEOUT_MS=120000 NVLAR_TEST_QUICK=1 NVLAR_TEST_STRESS_CALLS=300
[ -x /tmp/b/test/multigpu/test_multigpu ] || { echo "no build: run 3 first"; exit 1; }
SECONDS=0
for tool in memcheck synccheck racecheck; do
  NVLAR_TEST_SCENARIOS=destroy-late,stress timeout 170 compute-sanitizer --tool $tool \
    --target-processes all --report-api-errors no --error-exitcode 99 \
    /tmp/b/test/multigpu/test_multigpu >"$OUT/sanitizer-$tool.txt" 2>&1
  echo "$tool exit $? at $SECONDS s: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitizer-$tool.txt" | sort | uniq -c | tr '\n' ' ')"
  grep -E '^==|scenarios failed' "$OUT/sanitizer-$tool.txt"
done
