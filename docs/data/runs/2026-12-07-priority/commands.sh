#!/usr/bin/env bash
# One GPU (nvidia-h100-x1 or nvidia-h200), 2026-12-07 (third session): the gpu suite in full
# mode after the built-in budget rows, and every kernel beside a GEMM with the all-reduces'
# stream at the default and at the greatest priority (nvlar-bench --stream-priority). Usage on
# the device machine, from the repository root:
#   COMMIT=<hash> [DEADLINE=s] bash docs/data/runs/2026-12-07-priority/commands.sh STEP...
# Steps: build (build-dev/); full (meson test --suite gpu, full mode; its testlog kept);
# low, high (nvlar-bench --emulate 2 --overlap, every kernel or ALGOS's at its 8-128 CTAs,
# bf16, 4 and 64 MiB per rank, the all-reduces' stream at that priority; a step given again
# writes overlap-<p>-2.*; clocks sampled beside); attr (the same with the stream at the default
# priority and NVLAR_PRIORITY=high: each kernel launched at the greatest, as libnvlar does). A step that would start after DEADLINE
# seconds (default 540) is skipped. Logs in /tmp/logs, packed into $OUT/logs.tgz. NVLink
# multicast off (one GPU anyway).
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
stamp() { while IFS= read -r line; do printf '%s\t%s\n' "$(date +%H:%M:%S.%3N)" "$line"; done; }
sample_clocks() {  # $1: file; runs until killed
  nvidia-smi --query-gpu=timestamp,clocks.sm,clocks.mem,power.draw,temperature.gpu,clocks_event_reasons.active \
    --format=csv -lms 100 > "$1" 2>&1
}
declare -A runs
for step in "$@"; do
  if [ "$(left)" -le 20 ]; then echo "== $step SKIPPED at $SECONDS s (deadline $deadline)"; continue; fi
  echo "== $step at $SECONDS s"
  case "$step" in
    build)
      [ -d "$B" ] || meson setup "$B" -Dnccl_home="$nccl_dir" >"$L/setup.log" 2>&1
      ninja -C "$B" >"$L/build.log" 2>&1 || { tail -30 "$L/build.log"; exit 1; } ;;
    full)
      (cd "$B" && timeout "$(left)" meson test --suite gpu --no-rebuild --print-errorlogs) >"$L/gpu-full.txt" 2>&1
      echo "full gpu suite exit $?"; grep -E '^ *[0-9]+/[0-9]+ ' "$L/gpu-full.txt"
      cp "$B/meson-logs/testlog.txt" "$L/testlog-full.txt" 2>/dev/null ;;
    low|high|attr)
      runs[$step]=$(( ${runs[$step]:-0} + 1 )); name=overlap-$step
      [ "${runs[$step]}" -gt 1 ] && name=$name-${runs[$step]}
      priority=$step; kernels=stream
      [ "$step" = attr ] && { priority=low; kernels=high; }
      sample_clocks "$L/$name-clocks.csv" & sampler=$!
      NVLAR_PRIORITY=$kernels timeout "$(left)" stdbuf -oL "$B/tools/nvlar-bench" --emulate 2 --algo "${ALGOS:-oneshot,push,twoshot,tma,pushtwoshot,cetwoshot,tmapush}" \
        --dtype bfloat16 --overlap --stream-priority "$priority" --min-bytes 4M --max-bytes 64M --step 16 --trials 3 \
        --csv "$L/$name.csv" 2>&1 | stamp >"$L/$name.txt"
      echo "$name exit ${PIPESTATUS[0]}"; cut -f2- "$L/$name.txt" | grep -A120 '^# overlap'
      pkill -P $sampler; kill $sampler; wait $sampler 2>/dev/null ;;  # nvidia-smi, then its shell
  esac
  pack
done
echo "done at $SECONDS s"
