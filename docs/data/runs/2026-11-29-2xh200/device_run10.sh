#!/usr/bin/env bash
# Device run 10 (2xH200): the push two-shot with a fixed layout and no handshake after itself,
# routed by the built-in table (2 ranks, sm_90: push up to 256 KiB, push two-shot above).
# Correctness (emulated matrix and epochs on GPU 0 while the IPC test runs on GPU 1, multigpu
# scenarios, PyTorch job), performance (nvlar-bench auto --procs bf16 and one process f32,
# nccl-tests -g 2 with and without nvlar), then compute-sanitizer over the new kernel.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
SECONDS=0
L=/tmp/logs10; mkdir -p $L
if [ ! -x /tmp/b/scripts/nvlar-bench ]; then rm -rf /tmp/b; meson setup /tmp/b -Dnccl_home="$nccl_dir" >$L/setup.log 2>&1; fi
ninja -C /tmp/b >$L/build.log 2>&1 || { tail -30 $L/build.log; exit 1; }
echo "built at $SECONDS s ($(git rev-parse --short HEAD 2>/dev/null))"
(CUDA_VISIBLE_DEVICES=1 NVLAR_TIMEOUT_MS=20000 timeout 150 /tmp/b/test/gpu/test_gpu_ipc >$L/ipc.txt 2>&1; echo "ipc exit $?" >>$L/ipc.txt) &
ipc=$!
CUDA_VISIBLE_DEVICES=0 NVLAR_TIMEOUT_MS=20000 NVLAR_TEST_ALGO=4 timeout 100 /tmp/b/test/gpu/test_gpu_allreduce >$L/allreduce.txt 2>&1
echo "allreduce (algo 4) exit $? at $SECONDS s: $(tail -1 $L/allreduce.txt)"
CUDA_VISIBLE_DEVICES=0 NVLAR_TIMEOUT_MS=20000 timeout 90 /tmp/b/test/gpu/test_gpu_epochs >$L/epochs.txt 2>&1; echo "epochs exit $? at $SECONDS s"; tail -3 $L/epochs.txt
wait $ipc; tail -3 $L/ipc.txt
NVLAR_TEST_QUICK=1 NVLAR_TEST_SCENARIOS=single,procs,stress timeout 120 /tmp/b/test/multigpu/test_multigpu >$L/multigpu.txt 2>&1
echo "multigpu exit $? at $SECONDS s"; grep -E '^==|^   stress|scenarios failed' $L/multigpu.txt
for args in "--procs --dtype bfloat16" "--dtype float32"; do
  timeout 120 /tmp/b/scripts/nvlar-bench -g 2 $args --min-bytes 8 --max-bytes 1G --step 2 --trials 5 --csv $L/bench-$(echo $args | tr -d ' -').csv
  echo "bench $args exit $? at $SECONDS s"
done >$L/bench.txt 2>$L/bench.err
grep -E '^ +[0-9]+ ' $L/bench.txt | awk '$1>=262144' | head -60; grep -E '^# (verdict|worst)|exit' $L/bench.txt
export LD_LIBRARY_PATH=$nccl_dir/lib
for who in nccl nvlar; do
  pre=(); [ $who = nvlar ] && pre=(LD_PRELOAD=/tmp/b/libnvlar.so)
  env "${pre[@]}" timeout 120 .carry/all_reduce_perf -b 8 -e 1G -f 2 -g 2 -c 1 -n 20 -w 5 >$L/nccl-tests-$who.txt 2>&1
  echo "nccl-tests $who exit $? at $SECONDS s: $(grep -E 'wrong|Avg bus' $L/nccl-tests-$who.txt | tr -s ' ' | tr '\n' ' ')"
done
paste <(grep -E '^ +[0-9]+ +[0-9]+ +float' $L/nccl-tests-nccl.txt | awk '{print $1, $6}') <(grep -E '^ +[0-9]+ +[0-9]+ +float' $L/nccl-tests-nvlar.txt | awk '{print $6, $9}') | awk '$1>=262144{printf "%s nccl %s nvlar %s ratio %.3f wrong %s\n",$1,$2,$3,$3/$2,$4}'
timeout 120 python3 test/multigpu/test_torch_job.py test/multigpu/torch_job.py /tmp/b/libnvlar.so >$L/torch.txt 2>&1
echo "torch exit $? at $SECONDS s"; grep -E '^==|jobs failed' $L/torch.txt | head
CUDA_VISIBLE_DEVICES=0 NVLAR_TIMEOUT_MS=60000 NVLAR_TEST_QUICK=1 NVLAR_TEST_ALGO=4 timeout 120 compute-sanitizer --tool memcheck --print-limit 20 /tmp/b/test/gpu/test_gpu_allreduce >$L/san-memcheck.txt 2>&1
echo "memcheck exit $? at $SECONDS s: $(grep -E 'ERROR SUMMARY' $L/san-memcheck.txt | tail -1)"
CUDA_VISIBLE_DEVICES=0 NVLAR_TIMEOUT_MS=60000 NVLAR_TEST_QUICK=1 NVLAR_TEST_ALGO=4 NVLAR_TEST_NRANKS=3 timeout 100 compute-sanitizer --tool racecheck --print-limit 20 /tmp/b/test/gpu/test_gpu_allreduce >$L/san-racecheck.txt 2>&1
echo "racecheck exit $? at $SECONDS s: $(grep -E 'RACECHECK SUMMARY|ERROR SUMMARY' $L/san-racecheck.txt | tail -1)"
tar czf $OUT/run10.tgz -C /tmp logs10
