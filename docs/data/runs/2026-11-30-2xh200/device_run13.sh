#!/usr/bin/env bash
# Device run 13 (2xH200): HEAD after the kernel header split and the emulation library split
# (neither run on GPUs before): the gpu suite (quick), the multigpu C test (quick); CTA sweeps at
# 64 MiB and 1 GiB of the pull two-shot and the TMA two-shot (--procs, bf16) beside NCCL;
# compute-sanitizer memcheck over the emulated push two-shot. Logs packed in $OUT/run13.tgz.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
L=/tmp/logs13; rm -rf $L; mkdir -p $L
pack() { cp /tmp/b/meson-logs/testlog.txt $L/ 2>/dev/null; tar czf $OUT/run13.tgz -C /tmp logs13; }
rm -rf /tmp/b
{ meson setup /tmp/b -Dnccl_home="$nccl_dir" && ninja -C /tmp/b; } >$L/build.log 2>&1 || { tail -30 $L/build.log; pack; exit 1; }
echo "built at $SECONDS s"
(cd /tmp/b && NVLAR_TEST_QUICK=1 timeout 200 meson test --suite gpu --no-rebuild --print-errorlogs >$L/gpu-suite.txt 2>&1)
echo "gpu suite (quick) exit $? at $SECONDS s"; grep -E '^ *[0-9]+/[0-9]+ ' $L/gpu-suite.txt
NVLAR_TEST_QUICK=1 timeout 120 /tmp/b/test/multigpu/test_multigpu >$L/multigpu.txt 2>&1
echo "multigpu (quick) exit $? at $SECONDS s"; grep -E '^==|scenarios failed' $L/multigpu.txt | tail -20
for algo in twoshot tma; do
  [ $SECONDS -lt 430 ] || { echo "sweep $algo skipped (time)"; continue; }
  NVLAR_ALGO=$algo timeout 75 /tmp/b/scripts/nvlar-bench -g 2 --procs --dtype bfloat16 --min-bytes 64M --max-bytes 1G --step 16 --trials 3 --sweep-blocks --csv $L/sweep-$algo.csv >$L/sweep-$algo.txt 2>&1
  echo "sweep $algo exit $? at $SECONDS s"; grep -E ' eager ' $L/sweep-$algo.txt | awk '{print $1, $2, $3, $5, $6, $10, $11}'
done
if [ $SECONDS -lt 500 ]; then
  CUDA_VISIBLE_DEVICES=0 NVLAR_TIMEOUT_MS=60000 NVLAR_TEST_QUICK=1 NVLAR_TEST_ALGO=4 timeout $((570 - SECONDS)) compute-sanitizer --tool memcheck --print-limit 20 /tmp/b/test/gpu/test_gpu_allreduce >$L/san-memcheck.txt 2>&1
  echo "memcheck exit $? at $SECONDS s"; tail -3 $L/san-memcheck.txt
fi
pack
