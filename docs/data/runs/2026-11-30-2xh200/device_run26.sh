#!/usr/bin/env bash
# Device run 26 (2xH200): the push one-shot against nvlar's other kernels at 8 B-1 MiB in
# nvlar-bench's device-timed graph mode (NVLAR_ALGO=oneshot, push, pushtwoshot; one process,
# bf16); the emulated all-reduce test in full (not quick) for the push one-shot, 2-8 ranks,
# sizes up to 64 MiB (several 1 MiB chunks).
source "$(dirname "$0")/device_common.sh" 26
for algo in push oneshot pushtwoshot; do
  NVLAR_ALGO=$algo timeout 60 /tmp/b/scripts/nvlar-bench -g 2 --dtype bfloat16 --min-bytes 8 --max-bytes 1M --step 2 --trials 5 --csv $L/algo-$algo.csv >$L/algo-$algo.txt 2>&1
  echo "$algo exit $? at $SECONDS s: $(awk -F, 'NR>1 && $9=="graph" {printf "%s:%s ", $5, $10}' $L/algo-$algo.csv)"
done
pack
NVLAR_TEST_ALGO=2 timeout 300 /tmp/b/test/gpu/test_gpu_allreduce >$L/allreduce-push-full.txt 2>&1
echo "emulated push (full) exit $? at $SECONDS s"; tail -9 $L/allreduce-push-full.txt
pack
