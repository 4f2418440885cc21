#!/usr/bin/env bash
# Device run 18 (2xH200, carry .carry: nccl-tests programs): the BUILT-IN table's nccl rows
# through the plugin alone (NCCL_TUNER_PLUGIN, no NVLAR_TUNING_FILE, no preload): all-reduce,
# all-gather, reduce-scatter and broadcast without and with it, alternately, twice each; one
# run with NCCL_DEBUG=INFO for the plugin's lines (architecture, rows, decisions).
source "$(dirname "$0")/device_common.sh" 18
export LD_LIBRARY_PATH=$nccl_dir/lib
unset NVLAR_TUNING_FILE
for trial in 1 2; do
  for program in all_reduce_perf all_gather_perf reduce_scatter_perf broadcast_perf; do
    timeout 30 .carry/$program -b 8 -e 1G -f 2 -g 2 -c 1 -n 20 -w 5 >$L/$program-default-$trial.txt 2>&1
    NCCL_TUNER_PLUGIN=/tmp/b/libnccl-tuner-nvlar.so timeout 30 .carry/$program -b 8 -e 1G -f 2 -g 2 -c 1 -n 20 -w 5 >$L/$program-plugin-$trial.txt 2>&1
  done
done
echo "comparisons done at $SECONDS s"; grep -H "Avg bus\|wrong" $L/*_perf-*.txt | grep -v "#  Out of bounds values : 0 OK" | head -20
NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,TUNING NCCL_TUNER_PLUGIN=/tmp/b/libnccl-tuner-nvlar.so \
  timeout 30 .carry/all_gather_perf -b 8 -e 64M -f 2 -g 2 -c 1 -n 5 -w 2 >$L/all_gather_perf-plugin-debug.txt 2>&1
grep -h "TUNER" $L/all_gather_perf-plugin-debug.txt | sed 's/^[^ ]* //' | sort -u | head -12
pack
