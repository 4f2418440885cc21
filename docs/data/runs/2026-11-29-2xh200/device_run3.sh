#!/usr/bin/env bash
# Device run 3 (2xH200): the multigpu suite (quick), the PyTorch jobs, PyTorch per-call times
# with nvlar, and the gpu suite's timeout/epochs tests (the shared wait changed). Logs in $OUT.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
if [ ! -x /tmp/b/test/multigpu/test_multigpu ] || [ "${REBUILD:-1}" = 1 ]; then
  rm -rf /tmp/b
  { meson setup /tmp/b -Dnccl_home="$nccl_dir" && ninja -C /tmp/b; } >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
fi
echo "built at $SECONDS s; $(git log --oneline -1 2>/dev/null)"
NVLAR_TEST_QUICK=1 timeout 240 /tmp/b/test/multigpu/test_multigpu >"$OUT/multigpu.txt" 2>&1
echo "multigpu exit $? at $SECONDS s"; grep -E '^==|^   [a-z]|scenarios failed' "$OUT/multigpu.txt"
timeout 200 python3 test/multigpu/test_torch_job.py test/multigpu/torch_job.py /tmp/b/libnvlar.so >"$OUT/torch.txt" 2>&1
echo "torch exit $? at $SECONDS s"; grep -E '^==|^ +rank|jobs failed' "$OUT/torch.txt" | head -30
LD_PRELOAD=/tmp/b/libnvlar.so PYTHONUNBUFFERED=1 timeout 100 python3 -m torch.distributed.run --nproc-per-node 2 \
  test/multigpu/torch_job.py stall >"$OUT/torch-stall.txt" 2>&1
echo "torch stall exit $? at $SECONDS s"; grep -E '^ +[0-9]+ |bytes' "$OUT/torch-stall.txt"
for t in timeout epochs; do
  NVLAR_TIMEOUT_MS=$([ $t = timeout ] && echo 300 || echo 20000) timeout 60 /tmp/b/test/gpu/test_gpu_$t >>"$OUT/gpu-tests.txt" 2>&1
  echo "gpu test $t exit $? at $SECONDS s"
done
tail -5 "$OUT/gpu-tests.txt"
