#!/usr/bin/env bash
# One GPU (nvidia-h100-x1 or nvidia-h200), 2026-12-07, after routing by CTA budget: the gpu
# suite in full mode and memcheck (run 1, through ../2026-12-07-tma-push/commands.sh), then
# what a GEMM keeps beside the bandwidth kernels on 1, 2 and 4 CTAs per rank, and the GPU's
# clocks and power while a GEMM runs beside neighbours (run 2). Usage on the device machine,
# from the repository root:
#   COMMIT=<hash> [DEADLINE=s] bash docs/data/runs/2026-12-07-budget/commands.sh STEP...
# Steps: build (build-dev/); gemm (experiments/gemm_beside.cu 8192 $GEMMS, GEMMS GEMMs per
# cell, default 20, each output line stamped with the time (a second gemm step writes gemm-beside-2.*), nvidia-smi sampling SM clock,
# power and clock-event reasons every 100 ms beside it); fewctas (nvlar-bench --emulate 2 --overlap --blocks B for B in 1 2 4, the push
# two-shot, TMA push two-shot and copy-engine two-shot, bf16, 4 and 64 MiB per rank, clocks
# sampled likewise); overlap (nvlar-bench --emulate 2 --overlap, every kernel or ALGOS's, at
# its 8-128 CTAs, bf16, 4 and 64 MiB per rank, clocks sampled). A step that would start after DEADLINE seconds (default 540) is skipped.
# Logs in /tmp/logs, packed into $OUT/logs.tgz. NVLink multicast off (one GPU anyway).
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
L=/tmp/logs; mkdir -p "$L"
B=$PWD/build-dev
SECONDS=0
deadline=${DEADLINE:-540}
pack() { tar czf "$OUT/logs.tgz" -C /tmp logs; }
trap pack EXIT
{ echo "commit ${COMMIT:-unknown}"; date -u; nvidia-smi --query-gpu=name,driver_version,power.limit,clocks.max.sm --format=csv,noheader; } >> "$L/commit.txt" 2>&1
left() { echo $((deadline - SECONDS)); }
# Stamps every line of standard input with the wall-clock time (to match the clock samples).
stamp() { while IFS= read -r line; do printf '%s\t%s\n' "$(date +%H:%M:%S.%3N)" "$line"; done; }
sample_clocks() {  # $1: file; runs until killed
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active \
    --format=csv -lms 100 > "$1" 2>&1
}
for step in "$@"; do
  if [ "$(left)" -le 20 ]; then echo "== $step SKIPPED at $SECONDS s (deadline $deadline)"; continue; fi
  echo "== $step at $SECONDS s"
  case "$step" in
    build)
      [ -d "$B" ] || meson setup "$B" -Dnccl_home="$nccl_dir" >"$L/setup.log" 2>&1
      ninja -C "$B" >"$L/build.log" 2>&1 || { tail -30 "$L/build.log"; exit 1; } ;;
    gemm)
      nvcc -O3 -arch=sm_90 -std=c++17 -o /tmp/gemm_beside experiments/gemm_beside.cu -lcublas >"$L/gemm-build.txt" 2>&1
      gemm_runs=$(( ${gemm_runs:-0} + 1 )); name=gemm-beside; [ "$gemm_runs" -gt 1 ] && name=gemm-beside-$gemm_runs
      sample_clocks "$L/$name-clocks.csv" & sampler=$!
      timeout 240 stdbuf -oL /tmp/gemm_beside 8192 "${GEMMS:-20}" 2>&1 | stamp >"$L/$name.txt"
      kill $sampler; wait $sampler 2>/dev/null
      echo "gemm done ($name)"; cut -f2- "$L/$name.txt" ;;
    overlap)
      sample_clocks "$L/overlap-clocks.csv" & sampler=$!
      timeout "$(left)" stdbuf -oL "$B/tools/nvlar-bench" --emulate 2 --algo "${ALGOS:-oneshot,push,twoshot,tma,pushtwoshot,cetwoshot,tmapush}" \
        --dtype bfloat16 --overlap --min-bytes 4M --max-bytes 64M --step 16 --trials 3 --csv "$L/overlap-2.csv" 2>&1 | stamp >"$L/overlap-2.txt"
      echo "overlap exit ${PIPESTATUS[0]}"; cut -f2- "$L/overlap-2.txt" | grep -A120 '^# overlap'
      kill $sampler; wait $sampler 2>/dev/null ;;
    fewctas)
      sample_clocks "$L/fewctas-clocks.csv" & sampler=$!
      for blocks in 1 2 4; do
        timeout 100 stdbuf -oL "$B/tools/nvlar-bench" --emulate 2 --algo pushtwoshot,tmapush,cetwoshot --dtype bfloat16 \
          --overlap --blocks "$blocks" --min-bytes 4M --max-bytes 64M --step 16 --trials 3 \
          --csv "$L/fewctas-$blocks.csv" 2>&1 | stamp >"$L/fewctas-$blocks.txt"
        echo "fewctas $blocks exit ${PIPESTATUS[0]}"; cut -f2- "$L/fewctas-$blocks.txt" | grep -A8 '^# overlap'
      done
      kill $sampler; wait $sampler 2>/dev/null ;;
  esac
  pack
done
echo "done at $SECONDS s"
