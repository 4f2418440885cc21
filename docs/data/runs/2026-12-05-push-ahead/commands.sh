#!/usr/bin/env bash
# One GPU (device kind nvidia-h200 or nvidia-h100-x1), 2026-12-05: the push two-shot with steps
# scattered ahead of the reduce (NVLAR_PUSH_TWOSHOT_AHEAD 0, 1, 2; 0 is the default build) by
# CTA count, emulated ranks, and the variants' correctness (the emulated matrix of the push
# two-shot in full mode, and the epochs test, whose push two-shot sequence count depends on
# the slots). Usage on the device machine, from the repository root, after build-dev/ exists
# (docs/data/runs/2026-12-05-kernel-fold/commands.sh build):
#   COMMIT=<hash> bash docs/data/runs/2026-12-05-push-ahead/commands.sh [AHEAD...]
# Logs in /tmp/logs-ahead, packed into $OUT/ahead.tgz. NVLink multicast off (one GPU anyway).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
L=/tmp/logs-ahead; mkdir -p "$L"
SECONDS=0
pack() { tar czf "$OUT/ahead.tgz" -C /tmp logs-ahead; }
trap pack EXIT
{ echo "commit ${COMMIT:-unknown}"; date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; } >> "$L/commit.txt" 2>&1
for ahead in ${*:-0 1 2}; do
  B=$PWD/build-dev
  if [ "$ahead" != 0 ]; then
    B=$PWD/build-a$ahead
    [ -d "$B" ] || meson setup "$B" -Dnccl_home="$nccl_dir" -Dcuda_args="-DNVLAR_PUSH_TWOSHOT_AHEAD=$ahead" -Dc_args="-DNVLAR_PUSH_TWOSHOT_AHEAD=$ahead" >"$L/setup-a$ahead.log" 2>&1
    ninja -C "$B" tools/nvlar-bench test/gpu/test_gpu_allreduce test/gpu/test_gpu_epochs >"$L/build-a$ahead.log" 2>&1 || { tail -20 "$L/build-a$ahead.log"; continue; }
    echo "built ahead $ahead at $SECONDS s"
  fi
  for n in 2 8; do
    timeout 150 "$B/tools/nvlar-bench" --emulate "$n" --algo pushtwoshot --sweep-blocks --min-bytes 4M \
      --max-bytes 64M --step 16 --trials 5 --csv "$L/sweep-$n-a$ahead.csv" >"$L/sweep-$n-a$ahead.txt" 2>&1
    echo "ahead $ahead emulate $n exit $? at $SECONDS s"
  done
  if [ "$ahead" != 0 ]; then
    NVLAR_TEST_ALGO=4 timeout 200 "$B/test/gpu/test_gpu_allreduce" >"$L/allreduce-a$ahead.txt" 2>&1
    echo "ahead $ahead allreduce (push two-shot, full) exit $?: $(tail -1 "$L/allreduce-a$ahead.txt")"
    timeout 120 "$B/test/gpu/test_gpu_epochs" >"$L/epochs-a$ahead.txt" 2>&1
    echo "ahead $ahead epochs (full) exit $?: $(tail -1 "$L/epochs-a$ahead.txt")"
  fi
  pack
done
echo "done at $SECONDS s"
