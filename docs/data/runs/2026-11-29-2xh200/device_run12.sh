#!/usr/bin/env bash
# Device run 12 (2xH200): the push two-shot with 8 packs per thread in flight. Emulated matrix
# for it, the multigpu stress on it, a CTA sweep (bf16, --procs) at 512K, 4M, 32M, 256M and the
# routed benchmark (--procs bf16) from 512K to 1G.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
L=$OUT
rm -rf /tmp/b; meson setup /tmp/b -Dnccl_home="$nccl_dir" >/tmp/setup.log 2>&1
ninja -C /tmp/b >/tmp/build.log 2>&1 || { tail -30 /tmp/build.log; exit 1; }
echo "built at $SECONDS s"
NVLAR_TIMEOUT_MS=20000 NVLAR_TEST_ALGO=4 timeout 60 /tmp/b/test/gpu/test_gpu_allreduce >$L/allreduce.txt 2>&1
echo "allreduce (algo 4) exit $? at $SECONDS s: $(tail -1 $L/allreduce.txt)"
NVLAR_TEST_QUICK=1 NVLAR_TEST_SCENARIOS=stress timeout 40 /tmp/b/test/multigpu/test_multigpu >$L/stress.txt 2>&1
echo "stress exit $? at $SECONDS s"; grep -E '^   stress|scenarios failed' $L/stress.txt
NVLAR_ALGO=pushtwoshot timeout 90 /tmp/b/scripts/nvlar-bench -g 2 --procs --dtype bfloat16 --min-bytes 512K --max-bytes 256M --step 8 --trials 3 --sweep-blocks --csv $L/sweep-depth8.csv >$L/sweep-depth8.txt 2>/dev/null
echo "sweep exit $? at $SECONDS s"; grep -E ' eager ' $L/sweep-depth8.txt | awk '{print $1, $3, $5, $6, $7, $9}'
timeout 60 /tmp/b/scripts/nvlar-bench -g 2 --procs --dtype bfloat16 --min-bytes 256K --max-bytes 1G --step 2 --trials 3 --csv $L/bench-depth8.csv >$L/bench-depth8.txt 2>/dev/null
echo "bench exit $? at $SECONDS s"; grep -E '^ +[0-9]+ ' $L/bench-depth8.txt | awk '{print $1, $2, $3, $4, $7, $9}'; grep -E '^# (verdict|worst)' $L/bench-depth8.txt
