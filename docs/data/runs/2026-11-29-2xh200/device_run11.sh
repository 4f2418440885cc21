#!/usr/bin/env bash
# Device run 11 (2xH200): the IPC test with its larger staging, the gpu suite in quick mode,
# and the multigpu stress at full size (100 000 calls, auto and the push two-shot).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
L=/tmp/logs11; mkdir -p $L
if [ ! -x /tmp/b/scripts/nvlar-bench ]; then rm -rf /tmp/b; meson setup /tmp/b -Dnccl_home="$nccl_dir" >$L/setup.log 2>&1; fi
ninja -C /tmp/b >$L/build.log 2>&1 || { tail -30 $L/build.log; exit 1; }
echo "built at $SECONDS s"
NVLAR_TEST_SCENARIOS=stress timeout 60 /tmp/b/test/multigpu/test_multigpu >$L/stress.txt 2>&1
echo "multigpu stress exit $? at $SECONDS s"; grep -E '^==|^   stress|scenarios failed' $L/stress.txt
cd /tmp/b && NVLAR_TEST_QUICK=1 timeout 300 meson test --suite gpu --no-rebuild --print-errorlogs >$L/gpu-suite.txt 2>&1
echo "gpu suite (quick) exit $? at $SECONDS s"; grep -E '^ *[0-9]+/[0-9]+ ' $L/gpu-suite.txt
grep -E "processes|cases" /tmp/b/meson-logs/testlog.txt | head -8
cp /tmp/b/meson-logs/testlog.txt $L/
tar czf $OUT/run11.tgz -C /tmp logs11
