#!/usr/bin/env bash
# Device run 8 (2xH200): the push two-shot's first run. Emulated kernel tests for it (matrix of
# 2-8 ranks, epochs across algorithms, timeout, IPC), the multigpu scenarios that force it,
# then nvlar-bench real mode with it forced (--procs, eager and graph) and a CTA sweep at
# 64 MiB and 1 GiB. Logs in $OUT (tarball).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
L=/tmp/logs; mkdir -p $L
if [ ! -x /tmp/b/scripts/nvlar-bench ]; then rm -rf /tmp/b; meson setup /tmp/b -Dnccl_home="$nccl_dir" >$L/setup.log 2>&1; fi
ninja -C /tmp/b >$L/build.log 2>&1 || { tail -30 $L/build.log; exit 1; }
echo "built at $SECONDS s"
export NVLAR_TIMEOUT_MS=20000
NVLAR_TEST_ALGO=4 timeout 150 /tmp/b/test/gpu/test_gpu_allreduce >$L/allreduce.txt 2>&1
echo "allreduce (algo 4) exit $? at $SECONDS s"; grep -E "cases|FAIL" $L/allreduce.txt | head -12
timeout 90 /tmp/b/test/gpu/test_gpu_epochs >$L/epochs.txt 2>&1; echo "epochs exit $? at $SECONDS s"; tail -4 $L/epochs.txt
NVLAR_TIMEOUT_MS=300 timeout 60 /tmp/b/test/gpu/test_gpu_timeout >$L/timeout.txt 2>&1; echo "timeout exit $?"; tail -7 $L/timeout.txt
timeout 60 /tmp/b/test/gpu/test_gpu_ipc >$L/ipc.txt 2>&1; echo "ipc exit $? at $SECONDS s"; tail -2 $L/ipc.txt
unset NVLAR_TIMEOUT_MS
NVLAR_TEST_QUICK=1 NVLAR_TEST_SCENARIOS=single,procs,stress timeout 150 /tmp/b/test/multigpu/test_multigpu >$L/multigpu.txt 2>&1
echo "multigpu exit $? at $SECONDS s"; grep -E '^==|^   stress|scenarios failed' $L/multigpu.txt
for args in "--procs --dtype bfloat16" "--dtype float32"; do
  NVLAR_ALGO=pushtwoshot timeout 100 /tmp/b/scripts/nvlar-bench -g 2 $args --min-bytes 512K --max-bytes 1G --step 4 --trials 5
  echo "bench $args exit $? at $SECONDS s"
done >$L/bench.txt 2>$L/bench.err
grep -vE '^#' $L/bench.txt | head -40; grep -E '^# (verdict|worst)|exit' $L/bench.txt
NVLAR_ALGO=pushtwoshot timeout 120 /tmp/b/scripts/nvlar-bench -g 2 --dtype bfloat16 --min-bytes 64M --max-bytes 1G --step 16 --trials 3 --sweep-blocks >$L/sweep.txt 2>$L/sweep.err
echo "sweep exit $? at $SECONDS s"; grep -E ' eager ' $L/sweep.txt
tar czf $OUT/run8.tgz -C /tmp logs
