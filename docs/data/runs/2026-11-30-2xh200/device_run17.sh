#!/usr/bin/env bash
# Device run 17 (2xH200, carry .carry: nccl-tests programs): scripts/tune --nccl-only with its
# check runs (NCCL's options for the four collectives, sizes in NCCL's units, each candidate row
# checked through the plugin), then all-reduce, all-gather and reduce-scatter without and with
# nvlar as NCCL's tuner plugin alone (no preload) on the checked rows, alternately, twice each;
# one plugin run with NCCL_DEBUG=INFO for its decision lines. Logs in $OUT/run17.tgz.
source "$(dirname "$0")/device_common.sh" 17
export LD_LIBRARY_PATH=$nccl_dir/lib
timeout 330 python3 scripts/tune --nccl-tests $PWD/.carry --nccl-only --gpus 2 --channels 0,32 --tuner-plugin /tmp/b/libnccl-tuner-nvlar.so --workdir $L/tune --out $L/nccl-table-2xh200.txt 2>$L/tune.err
echo "tune exit $? at $SECONDS s"; grep -c "^tune:" $L/tune.err; cat $L/nccl-table-2xh200.txt
pack
for trial in 1 2; do
  for program in all_reduce_perf all_gather_perf reduce_scatter_perf; do
    [ $SECONDS -lt 540 ] || break 2
    timeout 30 .carry/$program -b 8 -e 1G -f 2 -g 2 -c 1 -n 20 -w 5 >$L/$program-default-$trial.txt 2>&1
    NCCL_TUNER_PLUGIN=/tmp/b/libnccl-tuner-nvlar.so NVLAR_TUNING_FILE=$L/nccl-table-2xh200.txt \
      timeout 30 .carry/$program -b 8 -e 1G -f 2 -g 2 -c 1 -n 20 -w 5 >$L/$program-plugin-$trial.txt 2>&1
  done
done
echo "comparisons done at $SECONDS s"; grep -H "Avg bus" $L/*_perf-*.txt
NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,TUNING NCCL_TUNER_PLUGIN=/tmp/b/libnccl-tuner-nvlar.so NVLAR_TUNING_FILE=$L/nccl-table-2xh200.txt \
  timeout 30 .carry/all_reduce_perf -b 8 -e 1G -f 2 -g 2 -c 1 -n 5 -w 2 >$L/all_reduce_perf-plugin-debug.txt 2>&1
grep -h "TUNER/nvlar\|Plugin" $L/all_reduce_perf-plugin-debug.txt | sort -u | head -30
pack
