#!/usr/bin/env bash
# Device run 20 (2xH200): HEAD's README main job (nvlar-bench --plot: verdict and PNGs), the
# multigpu tests bench-ctas and vllm_loader (libnvlar with the tuner's architecture query and
# the 15-row built-in table). Logs and PNGs in $OUT/run20.tgz.
source "$(dirname "$0")/device_common.sh" 20
(cd $L && timeout 90 /tmp/b/scripts/nvlar-bench --plot nvlar-bench >main-job.txt 2>&1)
echo "main job exit $? at $SECONDS s"; grep -E '^# (verdict|worst)|^nvlar-bench: |^plot: ' $L/main-job.txt; ls $L/*.png
pack
timeout 60 python3 test/multigpu/test_bench_ctas.py /tmp/b/scripts/nvlar-bench >$L/bench-ctas.txt 2>&1
echo "bench-ctas exit $? at $SECONDS s"; cat $L/bench-ctas.txt
timeout 100 python3 test/multigpu/test_vllm_loader.py scripts/torch_allreduce.py /tmp/b/libnvlar.so >$L/vllm-loader.txt 2>&1
echo "vllm loader exit $? at $SECONDS s"; grep -E "destroyed:|checks passed|ok$|FAIL" $L/vllm-loader.txt | head -6
pack
