#!/usr/bin/env bash
# Device run 25 (2xH200, carry .carry: nccl-tests programs): issue 15's figures at the final
# routing (push one-shot to 1 MiB, one CTA per KiB up to 128), all from this one run: the floors
# and nvlar's push at five sizes (latency_floor); nvlar-bench one process and --procs, bf16,
# 8 B-1 MiB, three modes and the host path; nccl-tests -g 2 8 B-1 MiB, eager and graphs launched
# ten times (-G 10): NCCL, NCCL with symmetric windows (-R 2), nvlar preloaded; PyTorch (one
# process per GPU, 200 back-to-back all-reduces, eager and in one graph) with and without nvlar;
# then the gpu suite (quick), the multigpu C test (quick) and compute-sanitizer memcheck on the
# emulated push one-shot.
(nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I kernels -o /tmp/latency_floor \
   scripts/experiments/latency_floor.cu >/tmp/latency-build.txt 2>&1) &
source "$(dirname "$0")/device_common.sh" 25
pack() { cp /tmp/b/meson-logs/testlog.txt $L/ 2>/dev/null; tar czf "$OUT/run25.tgz" -C /tmp logs25; }
wait
CUDA_MODULE_LOADING=EAGER timeout 60 /tmp/latency_floor 200 7 nvlar-only >$L/latency-floor.txt 2>&1
echo "latency_floor exit $? at $SECONDS s"; cat $L/latency-floor.txt
for mode in "" "--procs"; do
  timeout 150 /tmp/b/scripts/nvlar-bench -g 2 $mode --dtype bfloat16 --min-bytes 8 --max-bytes 1M --step 2 --trials 7 --csv $L/bench$mode.csv >$L/bench$mode.txt 2>&1
  echo "bench $mode exit $? at $SECONDS s"; grep "^# [vw]" $L/bench$mode.txt
done
pack
t="-b 8 -e 1M -f 2 -g 2 -c 1 -n 100 -w 20"
export LD_LIBRARY_PATH=$nccl_dir/lib
for g in 0 10; do
  timeout 60 .carry/all_reduce_perf $t -G $g >$L/nt-nccl-G$g.txt 2>&1
  timeout 60 .carry/all_reduce_perf $t -G $g -R 2 >$L/nt-ncclsym-G$g.txt 2>&1
  LD_PRELOAD=/tmp/b/libnvlar.so timeout 60 .carry/all_reduce_perf $t -G $g >$L/nt-nvlar-G$g.txt 2>&1
done
unset LD_LIBRARY_PATH
echo "nccl-tests done at $SECONDS s"; grep -c "wrong" $L/nt-*.txt | head -3
for f in $L/nt-*.txt; do echo "$(basename $f): $(awk '$1 ~ /^[0-9]+$/ && NF>=12 {printf "%s:%s/%s ", $1, $6, $9}' $f)"; done
pack
for who in nccl nvlar; do
  pre=""; [ $who = nvlar ] && pre=/tmp/b/libnvlar.so
  LD_PRELOAD=$pre PYTHONUNBUFFERED=1 timeout 100 python3 -m torch.distributed.run --nproc-per-node 2 \
    test/multigpu/torch_job.py stall >$L/torch-stall-$who.txt 2>&1
  echo "torch stall $who exit $? at $SECONDS s"
done
pack
(cd /tmp/b && NVLAR_TEST_QUICK=1 timeout 200 meson test --suite gpu --no-rebuild --print-errorlogs >$L/gpu-suite.txt 2>&1)
echo "gpu suite (quick) exit $? at $SECONDS s"; grep -E '^ *[0-9]+/[0-9]+ ' $L/gpu-suite.txt | sort -u
NVLAR_TEST_QUICK=1 timeout 120 /tmp/b/test/multigpu/test_multigpu >$L/multigpu.txt 2>&1
echo "multigpu (quick) exit $? at $SECONDS s"; grep -E 'scenarios failed' $L/multigpu.txt | tail -3
pack
CUDA_VISIBLE_DEVICES=0 NVLAR_TIMEOUT_MS=60000 NVLAR_TEST_QUICK=1 NVLAR_TEST_ALGO=2 timeout 120 compute-sanitizer --tool memcheck --print-limit 20 /tmp/b/test/gpu/test_gpu_allreduce >$L/san-memcheck-push.txt 2>&1
echo "memcheck emulated push exit $? at $SECONDS s"; grep -E "cases, |ERROR SUMMARY" $L/san-memcheck-push.txt | tail -3
pack
