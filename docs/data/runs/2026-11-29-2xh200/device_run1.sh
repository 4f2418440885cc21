#!/usr/bin/env bash
# Device run 1 (2xH200): where the push one-shot's stall comes from, and the lifecycle failures
# reproduced at the starting commit. Logs go to $OUT/run1.tar.gz.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
logs=/tmp/run1; mkdir -p "$logs"
nvidia-smi topo -m >"$logs/topo.txt" 2>&1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
( nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o /tmp/push_stall \
    scripts/experiments/push_stall.cu && timeout 120 /tmp/push_stall 50 ) >"$logs/push_stall.txt" 2>&1 &
meson setup /tmp/b -Dnccl_home="$nccl_dir" >"$logs/setup.log" 2>&1 && ninja -C /tmp/b >"$logs/build.log" 2>&1 || { tail -30 "$logs/build.log"; }
wait
cat "$logs/push_stall.txt"
bench=/tmp/b/scripts/nvlar-bench
run_bench() { # name, env..., -- args
  local name=$1; shift
  local envs=(); while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  env "${envs[@]}" timeout 150 "$bench" -g 2 --dtype float32 --min-bytes 8K --max-bytes 512K --step 2 --trials 5 "$@" >"$logs/bench-$name.txt" 2>&1
  echo "== $name (exit $?)"; grep -E '^ +[0-9]+ ' "$logs/bench-$name.txt" | awk '{printf "%s %s %s %s %s | ", $1,$2,$3,$4,$5} NR%2==0{print ""}'
}
run_bench push-1p NVLAR_ALGO=push --
run_bench push-procs NVLAR_ALGO=push -- --procs
run_bench push-nopdl NVLAR_ALGO=push NVLAR_PDL=0 --
run_bench oneshot-1p NVLAR_ALGO=oneshot --
printf 'nvlar 0-256K 2 * push ctas=1\nnvlar 256K-inf * * oneshot\n' >/tmp/ctas1.txt
printf 'nvlar 0-256K 2 * push ctas=4\nnvlar 256K-inf * * oneshot\n' >/tmp/ctas4.txt
run_bench push-ctas1 NVLAR_TUNING_FILE=/tmp/ctas1.txt --
run_bench push-ctas4 NVLAR_TUNING_FILE=/tmp/ctas4.txt --
# The PyTorch job as users run it, before any fix: teardown, WARNs, crash.
torchrun_job() { # name, env..., -- args
  local name=$1; shift
  local envs=(); while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  env "${envs[@]}" PYTHONUNBUFFERED=1 timeout 240 python3 -m torch.distributed.run --nproc-per-node 2 \
    --master-port $((29500 + RANDOM % 1000)) test/multigpu/torch_job.py "$@" >"$logs/torch-$name.txt" 2>&1
  echo "== torch $name (exit $?)"; grep -E 'NVLAR WARN|FAIL|ok$|Error|error|^ +[0-9]+ ' "$logs/torch-$name.txt" | head -40
}
torchrun_job lifecycle-nvlar LD_PRELOAD=/tmp/b/libnvlar.so NVLAR_DEBUG=INFO NVLAR_TIMEOUT_MS=20000 -- lifecycle
torchrun_job lifecycle-nccl NCCL_DEBUG=WARN -- lifecycle
torchrun_job groups-nvlar LD_PRELOAD=/tmp/b/libnvlar.so NVLAR_TIMEOUT_MS=20000 -- groups 10
tar czf "$OUT/run1.tar.gz" -C /tmp run1
