#!/usr/bin/env bash
# Device run 16 (2xH200): the vLLM-style loader test (ctypes, one process per GPU, graph capture),
# tp-bench (NCCL against nvlar preloaded, decode and prefill, eager and graph), and nvlar-bench
# with the built-in table for the plots still missing: one process bf16, --procs float32.
# Logs in $OUT/run16.tgz.
source "$(dirname "$0")/device_common.sh" 16
timeout 120 python3 test/multigpu/test_vllm_loader.py scripts/torch_allreduce.py /tmp/b/libnvlar.so >$L/vllm-loader.txt 2>&1
echo "vllm loader exit $? at $SECONDS s"; tail -15 $L/vllm-loader.txt
pack
timeout 170 python3 scripts/tp-bench --lib /tmp/b/libnvlar.so --csv $L/tp-bench.csv --plot $L/tp-bench.png >$L/tp-bench.txt 2>&1
echo "tp-bench exit $? at $SECONDS s"; tail -25 $L/tp-bench.txt
pack
timeout 50 /tmp/b/scripts/nvlar-bench -g 2 --dtype bfloat16 --min-bytes 8 --max-bytes 1G --step 2 --trials 5 --csv $L/real-2xh200-bfloat16.csv >$L/bench-1p-bf16.txt 2>/dev/null
echo "bench one process bf16 exit $? at $SECONDS s"; grep -E '^# (verdict|worst)' $L/bench-1p-bf16.txt
timeout 70 /tmp/b/scripts/nvlar-bench -g 2 --procs --dtype float32 --min-bytes 8 --max-bytes 1G --step 2 --trials 5 --csv $L/real-2xh200-procs-float32.csv >$L/bench-procs-f32.txt 2>/dev/null
echo "bench --procs f32 exit $? at $SECONDS s"; grep -E '^# (verdict|worst)' $L/bench-procs-f32.txt
pack
