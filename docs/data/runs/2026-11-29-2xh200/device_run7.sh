#!/usr/bin/env bash
# Device run 7 (2xH200): the movers probe (scripts/experiments/movers.cu: GB/s per direction of
# thread stores, bulk copies push/pull and the copy engine against CTAs), then the multigpu
# suite's C test in full mode (12 dtypes, up to 256 MiB, 100 000-call stress). Logs in $OUT.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
nvcc -O3 -arch=sm_90 -o /tmp/movers scripts/experiments/movers.cu && timeout 120 /tmp/movers 256 >"$OUT/movers.txt" 2>&1
echo "movers exit $? at $SECONDS s"; cat "$OUT/movers.txt"
rm -rf /tmp/b
{ meson setup /tmp/b -Dnccl_home="$nccl_dir" && ninja -C /tmp/b; } >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
echo "built at $SECONDS s"
timeout 420 /tmp/b/test/multigpu/test_multigpu >"$OUT/multigpu-full.txt" 2>&1
echo "multigpu full exit $? at $SECONDS s"; grep -E '^==|^   (stress|churn)|scenarios failed|passed' "$OUT/multigpu-full.txt" | tail -30
