#!/usr/bin/env bash
# Device run 23 (2xH200, carry .carry): nvlar-bench's graph mode timing a graph's second launch
# (run 22 timed the first, which uploads it), one process and --procs, bf16 8 B-1 MiB;
# nccl-tests -g 2 graphs launched once (-G 1) and ten times (-G 10), nvlar and NCCL; the gpu
# suite and the multigpu C test (quick); compute-sanitizer memcheck on the emulated push
# one-shot (quick, 2-8 ranks) and on nvlar-bench --procs (real ranks, 8 B-1 MiB).
source "$(dirname "$0")/device_common.sh" 23
pack() { cp /tmp/b/meson-logs/testlog.txt $L/ 2>/dev/null; tar czf "$OUT/run23.tgz" -C /tmp logs23; }
for mode in "" "--procs"; do
  timeout 150 /tmp/b/scripts/nvlar-bench -g 2 $mode --dtype bfloat16 --min-bytes 8 --max-bytes 1M --step 2 --trials 7 --csv $L/bench$mode.csv >$L/bench$mode.txt 2>&1
  echo "bench $mode exit $? at $SECONDS s"; grep " graph " $L/bench$mode.txt | awk '{print $1, $2, $3, $5, $6}' | tr '\n' ';'; echo
done
pack
t="-b 8 -e 1M -f 4 -g 2 -c 1 -n 200 -w 20"
for g in 1 10; do
  LD_LIBRARY_PATH=$nccl_dir/lib timeout 60 .carry/all_reduce_perf $t -G $g >$L/nt-nccl-G$g.txt 2>&1
  LD_LIBRARY_PATH=$nccl_dir/lib LD_PRELOAD=/tmp/b/libnvlar.so timeout 60 .carry/all_reduce_perf $t -G $g >$L/nt-nvlar-G$g.txt 2>&1
done
echo "nccl-tests done at $SECONDS s"
for f in $L/nt-*-G*.txt; do echo "$(basename $f): $(awk '$1 ~ /^[0-9]+$/ && NF>=12 {printf "%s:%s ", $1, $6}' $f)"; done
pack
(cd /tmp/b && NVLAR_TEST_QUICK=1 timeout 200 meson test --suite gpu --no-rebuild --print-errorlogs >$L/gpu-suite.txt 2>&1)
echo "gpu suite (quick) exit $? at $SECONDS s"; grep -E '^ *[0-9]+/[0-9]+ ' $L/gpu-suite.txt
NVLAR_TEST_QUICK=1 timeout 120 /tmp/b/test/multigpu/test_multigpu >$L/multigpu.txt 2>&1
echo "multigpu (quick) exit $? at $SECONDS s"; grep -E 'scenarios failed' $L/multigpu.txt | tail -3
pack
CUDA_VISIBLE_DEVICES=0 NVLAR_TIMEOUT_MS=60000 NVLAR_TEST_QUICK=1 NVLAR_TEST_ALGO=2 timeout 150 compute-sanitizer --tool memcheck --print-limit 20 /tmp/b/test/gpu/test_gpu_allreduce >$L/san-memcheck-push.txt 2>&1
echo "memcheck emulated push exit $? at $SECONDS s"; grep -E "failed|ERROR SUMMARY" $L/san-memcheck-push.txt | tail -8
NVLAR_TIMEOUT_MS=60000 timeout 150 compute-sanitizer --tool memcheck --print-limit 20 /tmp/b/scripts/nvlar-bench -g 2 --procs --min-bytes 8 --max-bytes 1M --step 8 --trials 1 >$L/san-memcheck-bench.txt 2>&1
echo "memcheck bench --procs exit $? at $SECONDS s"; grep -E "ERROR SUMMARY|verdict" $L/san-memcheck-bench.txt | tail -6
pack
