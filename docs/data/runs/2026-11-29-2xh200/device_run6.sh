#!/usr/bin/env bash
# Device run 6 (2xH200): nccl-tests all_reduce_perf -g 2 with NCCL alone and with libnvlar
# preloaded, eager and in CUDA graphs, results checked (-c 1). Both binaries are built on the
# developer machine and carried in .carry/ (nccl-tests is not part of the repository).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export LD_LIBRARY_PATH=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl/lib
for graph in 0 1; do
  for who in nccl nvlar; do
    preload=(); [ $who = nvlar ] && preload=(LD_PRELOAD=$PWD/.carry/libnvlar.so NVLAR_DEBUG=INFO)
    env "${preload[@]}" timeout 100 .carry/all_reduce_perf -b 8 -e 64M -f 4 -g 2 -c 1 -n 50 -w 10 -G $graph \
      >"$OUT/nccl-tests-$who-G$graph.txt" 2>&1
    echo "== $who -G $graph exit $?: $(grep -E 'wrong|Avg bus' "$OUT/nccl-tests-$who-G$graph.txt" | tr -s ' ' | tr '\n' ' ')"
    grep -E 'run on nvlar|WARN' "$OUT/nccl-tests-$who-G$graph.txt" | head -3
    grep -E '^ +[0-9]+ +[0-9]+ +float' "$OUT/nccl-tests-$who-G$graph.txt" | awk '{print $1, $6, $10}' | tr '\n' ';'
    echo
  done
done
