#!/usr/bin/env bash
# Device run 2 (2xH200): the fixes at work as users run nvlar: nvlar-bench one process and
# --procs (eager and graph), the multigpu suite in quick mode, the PyTorch jobs. Logs in $OUT.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
{ meson setup /tmp/b -Dnccl_home="$nccl_dir" && ninja -C /tmp/b; } >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
echo "built in $SECONDS s"
bench=/tmp/b/scripts/nvlar-bench
for mode in "" --procs; do
  for dtype in float32 bfloat16; do
    echo "== nvlar-bench -g 2 $mode --dtype $dtype"
    timeout 120 $bench -g 2 $mode --dtype $dtype --min-bytes 8 --max-bytes 64M --step 4 --trials 5 \
      --csv "$OUT/bench${mode:+-procs}-$dtype.csv"
  done
done 2>&1 | tee "$OUT/bench.txt" | grep -E '^#|^ +[0-9]+ +[a-z]+ +graph' | head -80
echo "bench done at $SECONDS s"
timeout 200 python3 test/multigpu/test_torch_job.py test/multigpu/torch_job.py /tmp/b/libnvlar.so >"$OUT/torch.txt" 2>&1
echo "torch exit $? at $SECONDS s"; grep -E '^==|^ +rank|^ +[0-9 .]+$|jobs failed' "$OUT/torch.txt" | head -60
NVLAR_TEST_QUICK=1 timeout 300 /tmp/b/test/multigpu/test_multigpu >"$OUT/multigpu.txt" 2>&1
echo "multigpu exit $? at $SECONDS s"; grep -E '^==|^   |scenarios failed' "$OUT/multigpu.txt"
