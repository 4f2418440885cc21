#!/usr/bin/env bash
# Device run 20 (2xH200): HEAD's README main job (nvlar-bench --plot: verdict and PNGs), the
# multigpu tests bench-ctas and vllm_loader (libnvlar with the tuner's architecture query and
# the 15-row built-in table). Logs and PNGs in $OUT/run20.tgz.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
L=/tmp/logs20; rm -rf $L; mkdir -p $L
pack() { tar czf $OUT/run20.tgz -C /tmp logs20; }
if [ ! -x /tmp/b/scripts/nvlar-bench ]; then rm -rf /tmp/b; meson setup /tmp/b -Dnccl_home="$nccl_dir" >$L/setup.log 2>&1; fi
ninja -C /tmp/b >$L/build.log 2>&1 || { tail -30 $L/build.log; pack; exit 1; }
echo "built at $SECONDS s"
(cd $L && timeout 90 /tmp/b/scripts/nvlar-bench --plot nvlar-bench >main-job.txt 2>&1)
echo "main job exit $? at $SECONDS s"; grep -E '^# (verdict|worst)|^nvlar-bench: |^plot: ' $L/main-job.txt; ls $L/*.png
pack
timeout 60 python3 test/multigpu/test_bench_ctas.py /tmp/b/scripts/nvlar-bench >$L/bench-ctas.txt 2>&1
echo "bench-ctas exit $? at $SECONDS s"; cat $L/bench-ctas.txt
timeout 100 python3 test/multigpu/test_vllm_loader.py scripts/torch_allreduce.py /tmp/b/libnvlar.so >$L/vllm-loader.txt 2>&1
echo "vllm loader exit $? at $SECONDS s"; grep -E "destroyed:|checks passed|ok$|FAIL" $L/vllm-loader.txt | head -6
pack
