#!/usr/bin/env bash
# Device run 14 (2xH200): scripts/tune --kernels-only on both GPUs (nvlar's five kernels at their
# default CTA counts from 8 B to 1 GiB, then CTA counts 4-128 for each kernel that won), bf16;
# then nvlar-bench --procs with the table it wrote (NVLAR_TUNING_FILE). Logs in $OUT/run14.tgz.
source "$(dirname "$0")/device_common.sh" 14
timeout 420 python3 scripts/tune --bench /tmp/b/scripts/nvlar-bench --gpus 2 --kernels-only --trials 3 --ctas 4,8,16,32,64,128 --workdir $L/tune --out $L/table-2xh200.txt 2>$L/tune.err
echo "tune exit $? at $SECONDS s"; grep -c "^tune:" $L/tune.err; grep -v "^tune:" $L/tune.err | tail -5; cat $L/table-2xh200.txt
pack
if [ -s $L/table-2xh200.txt ] && [ $SECONDS -lt 520 ]; then
  NVLAR_TUNING_FILE=$L/table-2xh200.txt timeout $((580 - SECONDS)) /tmp/b/scripts/nvlar-bench -g 2 --procs --dtype bfloat16 --min-bytes 256K --max-bytes 1G --step 2 --trials 3 --csv $L/bench-tuned.csv >$L/bench-tuned.txt 2>&1
  echo "bench with the tuned table exit $? at $SECONDS s"; grep -E '^ +[0-9]+ ' $L/bench-tuned.txt | awk '{print $1, $2, $3, $4, $7}' | paste - - | head -30; grep -E '^# (verdict|worst)' $L/bench-tuned.txt
fi
pack
