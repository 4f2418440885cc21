#!/usr/bin/env bash
# Device run 15 (2xH200, carry .carry: nccl-tests' all_reduce_perf, all_gather_perf,
# reduce_scatter_perf, broadcast_perf built against NCCL 2.28): scripts/tune --nccl-only, NCCL's
# own options (ring/tree x LL/LL128/Simple x NCCL's channel count or 32) for the four
# collectives against NCCL's default measured twice; then all-reduce, all-gather and
# reduce-scatter with and without nvlar as NCCL's tuner plugin alone (no preload) using the rows
# it wrote. Logs in $OUT/run15.tgz.
source "$(dirname "$0")/device_common.sh" 15
export LD_LIBRARY_PATH=$nccl_dir/lib:/tmp/b
timeout 400 python3 scripts/tune --nccl-tests $PWD/.carry --nccl-only --gpus 2 --channels 0,32 --workdir $L/tune --out $L/nccl-table-2xh200.txt 2>$L/tune.err
echo "tune exit $? at $SECONDS s"; grep -c "^tune:" $L/tune.err; grep -E "failed|no " $L/tune.err | head; cat $L/nccl-table-2xh200.txt
pack
for program in all_reduce_perf all_gather_perf reduce_scatter_perf; do
  for plugin in off on; do
    [ $SECONDS -lt 560 ] || break 2
    if [ $plugin = on ]; then
      NCCL_TUNER_PLUGIN=nvlar NVLAR_TUNING_FILE=$L/nccl-table-2xh200.txt NVLAR_DEBUG=INFO NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=TUNING \
        timeout 40 .carry/$program -b 8 -e 1G -f 2 -g 2 -c 1 -n 20 -w 5 >$L/$program-plugin.txt 2>&1
    else
      timeout 40 .carry/$program -b 8 -e 1G -f 2 -g 2 -c 1 -n 20 -w 5 >$L/$program-default.txt 2>&1
    fi
    echo "$program plugin $plugin exit $? at $SECONDS s"
  done
done
grep -h "Avg bus" $L/*-default.txt $L/*-plugin.txt; grep -h "nvlar" $L/*-plugin.txt | sort | uniq -c | head -20
pack
