#!/usr/bin/env bash
# Device run 5 (2xH200): after the adoption of split children (grouped, non-blocking): the
# multigpu suite (quick), the PyTorch jobs (also with non-blocking communicators), nvlar-bench
# at this commit, and the gpu suite's kernel tests in quick mode. Logs in $OUT.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
rm -rf /tmp/b
{ meson setup /tmp/b -Dnccl_home="$nccl_dir" && ninja -C /tmp/b; } >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
echo "built at $SECONDS s"
NVLAR_TEST_QUICK=1 timeout 200 /tmp/b/test/multigpu/test_multigpu >"$OUT/multigpu.txt" 2>&1
echo "multigpu exit $? at $SECONDS s"; grep -E '^==|^   (stress|churn)|scenarios failed' "$OUT/multigpu.txt"
timeout 200 python3 test/multigpu/test_torch_job.py test/multigpu/torch_job.py /tmp/b/libnvlar.so >"$OUT/torch.txt" 2>&1
echo "torch exit $? at $SECONDS s"; grep -E '^==|^ +rank.*(MiB|ok)|jobs failed' "$OUT/torch.txt"
TORCH_NCCL_USE_COMM_NONBLOCKING=1 timeout 150 python3 test/multigpu/test_torch_job.py test/multigpu/torch_job.py /tmp/b/libnvlar.so >"$OUT/torch-nb.txt" 2>&1
echo "torch non-blocking exit $? at $SECONDS s"; grep -E '^==|jobs failed|non-blocking' "$OUT/torch-nb.txt" | head
for args in "--procs --dtype float32" "--dtype bfloat16"; do
  timeout 90 /tmp/b/scripts/nvlar-bench -g 2 $args --min-bytes 8 --max-bytes 64M --step 4 --trials 5 --fail-above 2
  echo "nvlar-bench $args exit $?"
done >"$OUT/bench.txt" 2>&1
grep -E '^# worst|exit' "$OUT/bench.txt"
cd /tmp/b && NVLAR_TEST_QUICK=1 timeout 150 meson test --suite gpu --no-rebuild --print-errorlogs >"$OUT/gpu-suite.txt" 2>&1
echo "gpu suite exit $? at $SECONDS s"; grep -E '^ *[0-9]+/[0-9]+ ' "$OUT/gpu-suite.txt"
