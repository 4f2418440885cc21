#!/usr/bin/env bash
# Device run 28 (2xH200): the multigpu suite's Python tests at the final routing, as far as
# the session's device time goes: bench-ctas (nvlar-bench's three modes honour NVLAR_CTAS),
# then vLLM's loader.
source "$(dirname "$0")/device_common.sh" 28
timeout 60 python3 test/multigpu/test_bench_ctas.py /tmp/b/scripts/nvlar-bench >$L/bench-ctas.txt 2>&1
echo "bench-ctas exit $? at $SECONDS s"; cat $L/bench-ctas.txt | tail -3
pack
timeout $((250 - SECONDS)) python3 test/multigpu/test_vllm_loader.py scripts/torch_allreduce.py /tmp/b/libnvlar.so >$L/vllm-loader.txt 2>&1
echo "vllm loader exit $? at $SECONDS s"; grep -E "destroyed:|checks passed|ok$|FAIL" $L/vllm-loader.txt | head -6
pack
