#!/usr/bin/env bash
# Device run 19 (2xH200): nvlar-bench now honours NVLAR_CTAS (run 14's CTA runs did not: its
# cap query reset the count), checked by the multigpu test bench-ctas; then scripts/tune
# --kernels-only again (kernels at default CTAs, then CTA counts 2-128 of each winner), bf16, and
# nvlar-bench --procs with the table it wrote. Logs in $OUT/run19.tgz.
source "$(dirname "$0")/device_common.sh" 19
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
