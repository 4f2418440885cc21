#!/usr/bin/env bash
# One H200 (device kind nvidia-h200), 2026-12-04: what nvlar's all-reduces cost a GEMM running
# beside them, and what the GEMM costs them (nvlar-bench --overlap), ranks emulated on the one
# GPU. Usage on the device machine, from the repository root:
#   bash docs/data/runs/2026-12-04-overlap/commands.sh STEP...
# Steps: build; overlap2 / overlap8 (2 or 8 emulated ranks, bf16 sum, 256 KiB, 4 MiB and
# 64 MiB per rank, every kernel at 8, 16, 24, 32, 64, 128 CTAs per rank where they fit).
# Output in /tmp/out (CSV, log, PNG where matplotlib is there), packed into $OUT/overlap.tgz.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
L=/tmp/out; mkdir -p "$L"
B=/tmp/b
SECONDS=0
trap 'tar czf "$OUT/overlap.tgz" -C /tmp out' EXIT
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader > "$L/device.txt" 2>&1
for step in "$@"; do
  echo "== $step at $SECONDS s"
  case "$step" in
    build)
      [ -d "$B" ] || meson setup "$B" -Dnccl_home="$nccl_dir" >"$L/setup.log" 2>&1
      ninja -C "$B" scripts/nvlar-bench >"$L/build.log" 2>&1 || { tail -30 "$L/build.log"; exit 1; } ;;
    overlap2|overlap8)
      n=${step#overlap}
      timeout 400 "$B/scripts/nvlar-bench" --emulate "$n" --dtype bfloat16 --overlap \
        --min-bytes 256K --max-bytes 64M --step 16 --trials 5 \
        --csv "$L/emulated$n-overlap.csv" --plot "$L/emulated$n" >"$L/emulated$n-overlap.txt" 2>&1
      echo "overlap $n ranks exit $?"; grep -A200 '^# overlap' "$L/emulated$n-overlap.txt" | head -100 ;;
  esac
done
echo "done at $SECONDS s"
