#!/usr/bin/env python3
"""Routing by CTA budget on 2 GPUs, as users set it: with a tuning file whose rows hand a
budget of 1-8 CTAs to NCCL and give larger budgets the push two-shot, nvlar-bench under
NCCL_MAX_CTAS=8 runs every point on NCCL (its CSV's kernel column, and each rank's count of
calls at destroy: none on nvlar), and under NCCL_MAX_CTAS=16 every point on the push two-shot
with at most 16 CTAs per rank (the calls counted on nvlar). One process for both GPUs and one
process per GPU. Skips (77) below 2 GPUs.

usage: test_bench_budget.py NVLAR_BENCH"""
import csv
import os
import re
import subprocess
import sys
import tempfile

bench = sys.argv[1]
TABLE = ("nvlar 0-inf 2 * nccl budget=1-8\n"
         "nvlar 0-inf 2 * pushtwoshot\n")
failures = 0
with tempfile.TemporaryDirectory() as tmp:
    table = os.path.join(tmp, "table.txt")
    with open(table, "w") as f:
        f.write(TABLE)
    for limit, want_kernel in (("8", "nccl"), ("16", "pushtwoshot")):
        for mode in ([], ["--procs"]):
            env = dict(os.environ, NVLAR_TUNING_FILE=table, NCCL_MAX_CTAS=limit, NVLAR_DEBUG="INFO",
                       NCCL_NVLS_ENABLE="0")
            env.pop("NVLAR_ALGO", None)
            env.pop("NVLAR_CTAS", None)
            path = os.path.join(tmp, "points.csv")
            command = [bench, "-g", "2", *mode, "--min-bytes", "64K", "--max-bytes", "16M",
                       "--step", "16", "--trials", "1", "--csv", path]
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
            output = result.stdout + result.stderr
            if "no GPU is present" in result.stdout or "-g 2, but" in result.stderr:
                print(f"SKIP: needs 2 GPUs ({output.strip()[:200]})")
                sys.exit(77)
            label = f"NCCL_MAX_CTAS={limit} {' '.join(mode) or '(one process)'}"
            if result.returncode != 0 or not os.path.exists(path):
                print(f"FAIL: {label}: {' '.join(command)} exited {result.returncode}\n{output}")
                failures += 1
                continue
            with open(path) as f:
                points = [(row["bytes"], row["mode"], row["kernel"], int(row["ctas"]))
                          for row in csv.DictReader(f)]
            wrong = [p for p in points
                     if p[2] != want_kernel or (want_kernel != "nccl" and not 1 <= p[3] <= int(limit))]
            # Each rank's count at destroy: "N all-reduces on nvlar (...), M on NCCL".
            counts = [(int(a), int(b)) for a, b in
                      re.findall(r"(\d+) all-reduces on nvlar \([^)]*\), (\d+) on NCCL", output)]
            if want_kernel == "nccl":
                counted_wrong = not counts or any(on_nvlar != 0 or on_nccl == 0 for on_nvlar, on_nccl in counts)
            else:
                counted_wrong = not counts or any(on_nvlar == 0 for on_nvlar, _ in counts)
            print(f"{label}: {len(points)} points, {len(wrong)} not on {want_kernel} within "
                  f"{limit} CTAs {wrong}; calls per rank (nvlar, NCCL) at destroy {counts}")
            if wrong or not points or counted_wrong:
                print(output[-4000:])
                failures += 1
sys.exit(1 if failures else 0)
