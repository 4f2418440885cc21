#!/usr/bin/env bash
# One GPU (device kind nvidia-h200 or nvidia-h100-x1), 2026-12-05: what a bf16 GEMM loses to a
# neighbour on another stream that holds SMs without traffic, polls a flag, streams memory, runs
# as short kernels back to back, or is the copy engine (experiments/gemm_beside.cu).
# Usage on the device machine, from the repository root:
#   COMMIT=<hash> bash docs/data/runs/2026-12-05-gemm-beside/commands.sh
# Writes $OUT/gemm-beside.txt. No nvlar code runs; no NVLink (one GPU).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
log=$OUT/gemm-beside.txt
{ echo "# commit ${COMMIT:-unknown}"; date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader; } > "$log"
nvcc -O3 -arch=sm_90 -std=c++17 -o /tmp/gemm_beside experiments/gemm_beside.cu -lcublas >>"$log" 2>&1 || exit 1
timeout 120 /tmp/gemm_beside 8192 >>"$log" 2>&1
echo "exit $?" >> "$log"
cat "$log"
