#!/usr/bin/env bash
# Device run 18 (2xH200, carry .carry: nccl-tests programs): the BUILT-IN table's nccl rows
# through the plugin alone (NCCL_TUNER_PLUGIN, no NVLAR_TUNING_FILE, no preload): all-reduce,
# all-gather, reduce-scatter and broadcast without and with it, alternately, twice each; one
# run with NCCL_DEBUG=INFO for the plugin's lines (architecture, rows, decisions).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
L=/tmp/logs18; rm -rf $L; mkdir -p $L
pack() { tar czf $OUT/run18.tgz -C /tmp logs18; }
if [ ! -x /tmp/b/scripts/nvlar-bench ]; then rm -rf /tmp/b; meson setup /tmp/b -Dnccl_home="$nccl_dir" >$L/setup.log 2>&1; fi
ninja -C /tmp/b >$L/build.log 2>&1 || { tail -30 $L/build.log; pack; exit 1; }
echo "built at $SECONDS s"
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
