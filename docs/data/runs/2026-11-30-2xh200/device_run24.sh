#!/usr/bin/env bash
# Device run 24 (2xH200): the push one-shot's CTA counts on real NVLink now that graph mode is
# device time per call: nvlar-bench --sweep-blocks, one process, bf16, 512 B-1 MiB; the gpu
# suite's preload test (its tuner line changed with the architecture query); compute-sanitizer
# memcheck on nvlar-bench --procs (real ranks) without NCCL's own API-error reports.
source "$(dirname "$0")/device_common.sh" 24
timeout 200 /tmp/b/scripts/nvlar-bench -g 2 --dtype bfloat16 --min-bytes 512 --max-bytes 1M --step 2 --trials 5 --sweep-blocks --csv $L/sweep-push.csv >$L/sweep-push.txt 2>&1
echo "sweep exit $? at $SECONDS s"
awk -F, 'NR>1 && $9=="graph" {printf "%s/%s:%s ", $5, $8, $10} NR>1 && $9=="graph" && $8==128 {print ""}' $L/sweep-push.csv
pack
(cd /tmp/b && timeout 60 meson test --suite gpu --no-rebuild --print-errorlogs preload >$L/preload.txt 2>&1)
echo "preload exit $? at $SECONDS s"; grep -E '^ *[0-9]+/[0-9]+ ' $L/preload.txt
NVLAR_TIMEOUT_MS=60000 timeout 150 compute-sanitizer --tool memcheck --report-api-errors no --print-limit 20 /tmp/b/scripts/nvlar-bench -g 2 --procs --min-bytes 8 --max-bytes 1M --step 8 --trials 1 >$L/san-memcheck-bench.txt 2>&1
echo "memcheck bench --procs exit $? at $SECONDS s"; grep -E "ERROR SUMMARY|verdict" $L/san-memcheck-bench.txt | tail -6
pack
