#!/usr/bin/env bash
# Device run 22 (2xH200, carry .carry: nccl-tests programs and .carry/oldkernels, HEAD's
# kernels before issue 15's changes): the latency path after the changes, with the floors and
# NCCL in the same run. latency_floor (floors, nvlar's push one-shot) built against the kernels
# before and after, alternately, twice; nvlar-bench one process and --procs, bf16, 8 B-1 MiB,
# three modes and the host path; nccl-tests -g 2: NCCL, NCCL with symmetric windows (-R 2),
# nvlar preloaded, eager and -G, twice.
arch="-gencode=arch=compute_90a,code=sm_90a"
(nvcc -O3 -std=c++17 $arch -I kernels -o /tmp/latency_new scripts/experiments/latency_floor.cu &&
 nvcc -O3 -std=c++17 $arch -DRULE_BYTES=2048 -DRULE_MOST=32 -I .carry/oldkernels/kernels -o /tmp/latency_old \
   scripts/experiments/latency_floor.cu) >/tmp/latency-build.txt 2>&1 &
source "$(dirname "$0")/device_common.sh" 22
wait; cp /tmp/latency-build.txt $L/
for trial in 1 2; do
  for k in old new; do
    CUDA_MODULE_LOADING=EAGER timeout 60 /tmp/latency_$k 200 7 nvlar-only >$L/latency-$k-$trial.txt 2>&1
  done
done
echo "latency_floor done at $SECONDS s"; paste $L/latency-old-1.txt $L/latency-new-1.txt | cut -c1-150
pack
for mode in "" "--procs"; do
  timeout 150 /tmp/b/scripts/nvlar-bench -g 2 $mode --dtype bfloat16 --min-bytes 8 --max-bytes 1M --step 2 --trials 7 --csv $L/bench$mode.csv >$L/bench$mode.txt 2>&1
  echo "bench $mode exit $? at $SECONDS s"; grep "^#" $L/bench$mode.txt | tail -30
done
pack
export LD_LIBRARY_PATH=$nccl_dir/lib
t="-b 8 -e 1M -f 2 -g 2 -c 1 -n 200 -w 20"
for trial in 1 2; do
  timeout 60 .carry/all_reduce_perf $t >$L/nt-nccl-eager-$trial.txt 2>&1
  timeout 60 .carry/all_reduce_perf $t -G 1 >$L/nt-nccl-graph-$trial.txt 2>&1
  timeout 60 .carry/all_reduce_perf $t -R 2 >$L/nt-ncclsym-eager-$trial.txt 2>&1
  timeout 60 .carry/all_reduce_perf $t -R 2 -G 1 >$L/nt-ncclsym-graph-$trial.txt 2>&1
  LD_PRELOAD=/tmp/b/libnvlar.so timeout 60 .carry/all_reduce_perf $t >$L/nt-nvlar-eager-$trial.txt 2>&1
  LD_PRELOAD=/tmp/b/libnvlar.so timeout 60 .carry/all_reduce_perf $t -G 1 >$L/nt-nvlar-graph-$trial.txt 2>&1
done
echo "nccl-tests done at $SECONDS s"; grep -H "wrong\|Avg bus" $L/nt-*-1.txt | grep -v "size  *count" | head -12
pack
