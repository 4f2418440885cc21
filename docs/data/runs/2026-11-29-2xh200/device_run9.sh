#!/usr/bin/env bash
# Device run 9 (2xH200): the push two-shot with its reduce unrolled (several packs of every
# source in flight per thread). Emulated matrix for it, the IPC test (its case table was too
# small for five kernels), then CTA sweeps (bf16, --procs) at 512K..1G and the default rule.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
L=/tmp/logs9; mkdir -p $L
if [ ! -x /tmp/b/scripts/nvlar-bench ]; then rm -rf /tmp/b; meson setup /tmp/b -Dnccl_home="$nccl_dir" >$L/setup.log 2>&1; fi
ninja -C /tmp/b >$L/build.log 2>&1 || { tail -30 $L/build.log; exit 1; }
echo "built at $SECONDS s"
NVLAR_TIMEOUT_MS=20000 NVLAR_TEST_ALGO=4 timeout 100 /tmp/b/test/gpu/test_gpu_allreduce >$L/allreduce.txt 2>&1
echo "allreduce (algo 4) exit $? at $SECONDS s"; tail -1 $L/allreduce.txt
NVLAR_TIMEOUT_MS=20000 timeout 200 /tmp/b/test/gpu/test_gpu_ipc >$L/ipc.txt 2>&1 &
ipc=$!
wait $ipc; echo "ipc exit $? at $SECONDS s"; tail -3 $L/ipc.txt
NVLAR_ALGO=pushtwoshot timeout 150 /tmp/b/scripts/nvlar-bench -g 2 --procs --dtype bfloat16 --min-bytes 512K --max-bytes 1G --step 8 --trials 3 --sweep-blocks --csv $L/sweep.csv >$L/sweep.txt 2>$L/sweep.err
echo "sweep exit $? at $SECONDS s"; grep -E ' graph ' $L/sweep.txt
tar czf $OUT/run9.tgz -C /tmp logs9
