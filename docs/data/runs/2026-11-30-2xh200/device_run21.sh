#!/usr/bin/env bash
# Device run 21 (2xH200, carry .carry: nccl-tests programs): where a small all-reduce's time
# goes (issue 15), before any change. scripts/experiments/latency_floor.cu (floors, nvlar's
# push one-shot, LL variants, stage timestamps); nccl-tests -g 2 8 B-1 MiB: NCCL, NCCL with
# symmetric registered windows (-R 2), nvlar preloaded, each eager and -G (graphs); nvlar-bench
# one process and --procs at 8 B-1 MiB.
source "$(dirname "$0")/device_common.sh" 21
export CUDA_MODULE_LOADING=EAGER
nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I kernels -o /tmp/latency_floor \
  scripts/experiments/latency_floor.cu >$L/latency-build.txt 2>&1 || cat $L/latency-build.txt
timeout 120 /tmp/latency_floor 200 7 >$L/latency-floor.txt 2>&1
echo "latency_floor exit $? at $SECONDS s"; cat $L/latency-floor.txt
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
echo "nccl-tests done at $SECONDS s"; grep -H "wrong\|Avg bus" $L/nt-*-1.txt | head -12
pack
unset LD_LIBRARY_PATH
for mode in "" "--procs"; do
  timeout 120 /tmp/b/scripts/nvlar-bench -g 2 $mode --dtype bfloat16 --min-bytes 8 --max-bytes 1M --step 2 --trials 7 --csv $L/bench$mode.csv >$L/bench$mode.txt 2>&1
  echo "bench $mode exit $? at $SECONDS s"
done
pack
