#!/usr/bin/env bash
# Device run 19 (2xH200): nvlar-bench now honours NVLAR_CTAS (run 14's CTA runs did not: its
# cap query reset the count), checked by the multigpu test bench-ctas; then scripts/tune
# --kernels-only again (kernels at default CTAs, then CTA counts 2-128 of each winner), bf16, and
# nvlar-bench --procs with the table it wrote. Logs in $OUT/run19.tgz.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
L=/tmp/logs19; rm -rf $L; mkdir -p $L
pack() { tar czf $OUT/run19.tgz -C /tmp logs19; }
if [ ! -x /tmp/b/scripts/nvlar-bench ]; then rm -rf /tmp/b; meson setup /tmp/b -Dnccl_home="$nccl_dir" >$L/setup.log 2>&1; fi
ninja -C /tmp/b >$L/build.log 2>&1 || { tail -30 $L/build.log; pack; exit 1; }
echo "built at $SECONDS s"
timeout 100 python3 test/multigpu/test_bench_ctas.py /tmp/b/scripts/nvlar-bench >$L/bench-ctas.txt 2>&1
echo "bench-ctas exit $? at $SECONDS s"; cat $L/bench-ctas.txt
timeout 330 python3 scripts/tune --bench /tmp/b/scripts/nvlar-bench --gpus 2 --kernels-only --trials 3 --ctas 2,4,8,16,32,64,128 --workdir $L/tune --out $L/table-2xh200.txt 2>$L/tune.err
echo "tune exit $? at $SECONDS s"; grep -c "^tune:" $L/tune.err; cat $L/table-2xh200.txt
pack
if [ -s $L/table-2xh200.txt ] && [ $SECONDS -lt 480 ]; then
  NVLAR_TUNING_FILE=$L/table-2xh200.txt timeout $((560 - SECONDS)) /tmp/b/scripts/nvlar-bench -g 2 --procs --dtype bfloat16 --min-bytes 8 --max-bytes 1G --step 2 --trials 3 --csv $L/bench-tuned.csv >$L/bench-tuned.txt 2>&1
  echo "bench with the tuned table exit $? at $SECONDS s"; grep -E '^ +[0-9]+ ' $L/bench-tuned.txt | awk '{print $1, $2, $3, $4, $7}' | paste - - | head -30; grep -E '^# (verdict|worst)' $L/bench-tuned.txt
fi
pack
