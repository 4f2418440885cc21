#!/usr/bin/env bash
# Prepared for the two-GPU run (issue 28; device kind nvidia-h200-x2 or any 2-GPU kind), not yet
# run on two GPUs: what "Full speed from few SMs" needs measured on NVLink, the suites in full
# mode, and users' jobs. Usage on the device machine, from the repository root:
#   COMMIT=<hash> [DEADLINE=s] bash docs/data/runs/two-gpu-next/commands.sh STEP...
# Steps (in the order worth running them):
#   build     meson + ninja in build-2g/ against PyTorch's NCCL
#   suite     meson test --suite gpu, then --suite multigpu, full mode (failure cases: death,
#             destroy orders, disable-one, setup out of memory, churn of 50 communicators; the
#             bench-budget and bench-ctas tests; the PyTorch and vLLM-loader jobs)
#   budget    nvlar-bench -g 2 --procs, bf16, 8 B-1 GiB (step 4), routed, under no limit and
#             NCCL_MAX_CTAS=8 and 16 (nvlar and NCCL both within the limit; the built-in
#             budget rows); then under 8 with the built-in table less its budget rows (clamped)
#   ctas      per bandwidth kernel (pushtwoshot, tmapush, cetwoshot, twoshot, tma): NVLAR_ALGO=K
#             nvlar-bench -g 2 --procs --sweep-blocks, bf16, 64 MiB and 1 GiB, beside NCCL
#   overlap   nvlar-bench -g 2 --procs --overlap, bf16, 4 MiB-256 MiB (step 4), routed, then under
#             NCCL_MAX_CTAS=8, with --stream-priority high, eagerly (--overlap-launch eager)
#             with and without NVLAR_PRIORITY=high; then the three bandwidth kernels at 64 MiB
#             by --sweep-blocks
#   tune      scripts/tune --gpus 2 --kernels-only --budgets 8,16, 1 MiB-1 GiB: the rows the
#             built-in 2-rank table should follow (tune-table.txt)
#   memcheck  compute-sanitizer memcheck over nvlar-bench --procs on real ranks, small sizes
#   jobs      scripts/ddp-bench (also with NVLAR_PRIORITY=high) and scripts/tp-bench (NCCL and
#             nvlar in one invocation each);
#             nccl-tests all_reduce_perf -g 2 eager and -G 10, with and without the preload, if
#             .carry/all_reduce_perf exists (build it there: see the brief)
# A step that would start after DEADLINE seconds (default 540) is skipped and says so; each
# step's own commands are bounded by the time left. Logs in /tmp/logs, packed into
# $OUT/logs.tgz after every step. NVLink multicast off in every run.
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nccl_dir=$(python3 -c "import nvidia,os;print(nvidia.__path__[0])")/nccl
L=/tmp/logs; mkdir -p "$L"
B=$PWD/build-2g
bench=$B/tools/nvlar-bench
SECONDS=0
deadline=${DEADLINE:-540}
pack() { cp "$B/meson-logs/testlog.txt" "$L/testlog-$SECONDS.txt" 2>/dev/null; tar czf "$OUT/logs.tgz" -C /tmp logs; }
trap pack EXIT
{ echo "commit ${COMMIT:-unknown}"; date -u; nvidia-smi --query-gpu=name,driver_version,power.limit --format=csv,noheader; nvidia-smi topo -m; } >> "$L/commit.txt" 2>&1
left() { echo $((deadline - SECONDS)); }
# Runs "$@" with at most the time left (and at most $1 seconds), output to the log named $2.
bounded() {
  local most=$1 log=$2; shift 2
  local limit; limit=$(left); [ "$limit" -gt "$most" ] && limit=$most
  if [ "$limit" -le 5 ]; then echo "  $log SKIPPED (deadline)"; return 0; fi
  timeout "$limit" "$@" >"$L/$log" 2>&1
  echo "  $log exit $? at $SECONDS s"
}
for step in "$@"; do
  if [ "$(left)" -le 20 ]; then echo "== $step SKIPPED at $SECONDS s (deadline $deadline)"; continue; fi
  echo "== $step at $SECONDS s"
  case "$step" in
    build)
      [ -d "$B" ] || meson setup "$B" -Dnccl_home="$nccl_dir" >"$L/setup.log" 2>&1
      ninja -C "$B" >"$L/build.log" 2>&1 || { tail -30 "$L/build.log"; exit 1; } ;;
    suite)
      (cd "$B" && bounded 330 gpu-full.txt meson test --suite gpu --no-rebuild --print-errorlogs)
      grep -E '^ *[0-9]+/[0-9]+ ' "$L/gpu-full.txt"
      (cd "$B" && bounded 1800 multigpu-full.txt meson test --suite multigpu --no-rebuild --print-errorlogs)
      grep -E '^ *[0-9]+/[0-9]+ ' "$L/multigpu-full.txt" ;;
    budget)
      for limit in none 8 16; do
        env_limit=(); [ "$limit" = none ] || env_limit=(NCCL_MAX_CTAS=$limit)
        bounded 240 "budget-$limit.txt" env "${env_limit[@]}" "$bench" -g 2 --procs --dtype bfloat16 \
          --min-bytes 8 --max-bytes 1G --step 4 --trials 5 --csv "$L/budget-$limit.csv"
        grep -E '^# (verdict|worst|nvlar)' "$L/budget-$limit.txt" | head -6
      done
      # The budget rows are built in (NCCL beyond the sizes nvlar won at the budget's fewest
      # CTAs), so budget-8 above runs them. Against them: the built-in table without its budget
      # rows, nvlar's unlimited choices clamped to 8 CTAs, to tell which sizes they give up.
      python3 - "$L/clamped-rows.txt" <<'PY'
import sys
table = open("docs/tuning.md").read().split("## The built-in table")[1].split("```")[1]
rows = [line for line in table.splitlines() if line.strip() and "budget=" not in line]
open(sys.argv[1], "w").write("\n".join(rows) + "\n")
PY
      bounded 240 budget-8-clamped.txt env NCCL_MAX_CTAS=8 NVLAR_TUNING_FILE="$L/clamped-rows.txt" "$bench" -g 2 \
        --procs --dtype bfloat16 --min-bytes 8 --max-bytes 1G --step 4 --trials 5 --csv "$L/budget-8-clamped.csv"
      grep -E '^# (verdict|worst|nvlar)' "$L/budget-8-clamped.txt" | head -6 ;;
    ctas)
      for kernel in pushtwoshot tmapush cetwoshot twoshot tma; do
        bounded 120 "ctas-$kernel.txt" env NVLAR_ALGO=$kernel "$bench" -g 2 --procs --dtype bfloat16 \
          --sweep-blocks --min-bytes 64M --max-bytes 1G --step 16 --trials 3 --csv "$L/ctas-$kernel.csv"
      done ;;
    overlap)
      bounded 200 overlap-routed.txt "$bench" -g 2 --procs --dtype bfloat16 --overlap \
        --min-bytes 4M --max-bytes 256M --step 4 --trials 3 --csv "$L/overlap-routed.csv"
      bounded 200 overlap-max8.txt env NCCL_MAX_CTAS=8 "$bench" -g 2 --procs --dtype bfloat16 --overlap \
        --min-bytes 4M --max-bytes 256M --step 4 --trials 3 --csv "$L/overlap-max8.csv"
      # Both paths' streams at the greatest priority (as PyTorch's is_high_priority_stream). Not
      # NVLAR_PRIORITY: overlap runs graphs, whose kernels take the launch stream's priority
      # (one H100, docs/data/runs/2026-12-07-priority/); the ddp-bench run of `jobs` has it.
      bounded 200 overlap-stream-high.txt "$bench" -g 2 --procs --dtype bfloat16 --overlap \
        --stream-priority high --min-bytes 4M --max-bytes 256M --step 4 --trials 3 \
        --csv "$L/overlap-stream-high.csv"
      # Eager calls (as DDP's buckets) beside the GEMM, the streams at the default priority:
      # as they are, and with NVLAR_PRIORITY=high (nvlar's kernels at the greatest, NCCL's at
      # the stream's), which on one GPU made the SM kernels 1.1-1.5x slower than alone instead
      # of up to 57x (docs/data/runs/2026-12-07-eager/). On real ranks a kernel that gets its
      # SMs early may spin on them until the peer's kernel gets its own.
      bounded 200 overlap-eager.txt "$bench" -g 2 --procs --dtype bfloat16 --overlap --overlap-launch eager \
        --min-bytes 4M --max-bytes 256M --step 4 --trials 3 --csv "$L/overlap-eager.csv"
      bounded 200 overlap-eager-attr.txt env NVLAR_PRIORITY=high "$bench" -g 2 --procs --dtype bfloat16 \
        --overlap --overlap-launch eager --min-bytes 4M --max-bytes 256M --step 4 --trials 3 \
        --csv "$L/overlap-eager-attr.csv"
      for kernel in pushtwoshot tmapush cetwoshot; do
        bounded 150 "overlap-$kernel.txt" env NVLAR_ALGO=$kernel "$bench" -g 2 --procs --dtype bfloat16 \
          --overlap --sweep-blocks --min-bytes 64M --max-bytes 64M --trials 3 --csv "$L/overlap-$kernel.csv"
      done ;;
    tune)
      bounded 900 tune.txt python3 scripts/tune --bench "$bench" --gpus 2 --kernels-only --budgets 8,16 \
        --min-bytes 1M --max-bytes 1G --step 4 --trials 3 --ctas 4,8,16,32,64 --workdir "$L/tune" \
        --out "$L/tune-table.txt"
      cat "$L/tune-table.txt" 2>/dev/null
      "$B/tools/nvlar-table" "$L/tune-table.txt" >"$L/tune-table-check.txt" 2>&1; echo "  nvlar-table exit $?" ;;
    memcheck)
      bounded 200 memcheck-procs.txt compute-sanitizer --tool memcheck --report-api-errors no --target-processes all \
        --error-exitcode 99 "$bench" -g 2 --procs --dtype bfloat16 --min-bytes 8 --max-bytes 4M --step 16 --trials 1
      grep 'ERROR SUMMARY' "$L/memcheck-procs.txt" | tail -3 ;;
    jobs)
      bounded 300 ddp-bench.txt python3 scripts/ddp-bench --lib "$B/libnvlar.so" --ranks 2 --csv "$L/ddp-bench.csv" \
        --logs "$L/ddp-logs"
      # DDP's all-reduces are eager: there NVLAR_PRIORITY=high reaches the GPU (nvlar's kernels
      # ahead of the backward pass's queued CTAs)
      bounded 300 ddp-bench-priority.txt env NVLAR_PRIORITY=high python3 scripts/ddp-bench --lib "$B/libnvlar.so" \
        --ranks 2 --csv "$L/ddp-bench-priority.csv" --logs "$L/ddp-logs-priority"
      bounded 300 tp-bench.txt python3 scripts/tp-bench --lib "$B/libnvlar.so" --gpus 2 --csv "$L/tp-bench.csv"
      if [ -x .carry/all_reduce_perf ]; then
        t="-b 8 -e 1G -f 2 -g 2 -c 1 -n 20 -w 5"
        for g in 0 10; do
          bounded 120 "nt-nccl-G$g.txt" env LD_LIBRARY_PATH="$nccl_dir/lib" .carry/all_reduce_perf $t -G $g
          bounded 120 "nt-nvlar-G$g.txt" env LD_LIBRARY_PATH="$nccl_dir/lib" LD_PRELOAD="$B/libnvlar.so" \
            .carry/all_reduce_perf $t -G $g
        done
      else
        echo "  no .carry/all_reduce_perf: nccl-tests not run"
      fi ;;
    *) echo "unknown step $step" ;;
  esac
  pack
done
echo "done at $SECONDS s"
