#!/usr/bin/env python3
"""nvlar-bench on 2 GPUs honours NVLAR_CTAS (scripts/tune's CTA runs rely on it): with
NVLAR_ALGO=pushtwoshot NVLAR_CTAS=4, every point of its CSV, one process for both GPUs and one
process per GPU, ran the push two-shot with 4 CTAs per rank. Skips (77) below 2 GPUs.

usage: test_bench_ctas.py NVLAR_BENCH"""
import csv
import os
import subprocess
import sys
import tempfile

bench = sys.argv[1]
env = dict(os.environ, NVLAR_ALGO="pushtwoshot", NVLAR_CTAS="4", NCCL_NVLS_ENABLE="0")
failures = 0
with tempfile.TemporaryDirectory() as tmp:
    for mode in ([], ["--procs"]):
        path = os.path.join(tmp, "points.csv")
        command = [bench, "-g", "2", *mode, "--min-bytes", "1M", "--max-bytes", "4M", "--step", "4",
                   "--trials", "1", "--csv", path]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        if "no GPU is present" in result.stdout or "-g 2, but" in result.stderr:
            print(f"SKIP: needs 2 GPUs ({(result.stdout + result.stderr).strip()})")
            sys.exit(77)
        if result.returncode != 0 or not os.path.exists(path):
            print(f"FAIL: {' '.join(command)} exited {result.returncode}\n{result.stdout}{result.stderr}")
            sys.exit(1)
        with open(path) as f:
            points = [(row["bytes"], row["mode"], row["kernel"], row["ctas"]) for row in csv.DictReader(f)]
        wrong = [p for p in points if p[2] != "pushtwoshot" or p[3] != "4"]
        print(f"nvlar-bench {' '.join(mode) or '(one process)'}: {len(points)} points, "
              f"{len(wrong)} not on the push two-shot with 4 CTAs {wrong}")
        failures += len(wrong) > 0 or len(points) == 0
sys.exit(1 if failures else 0)
