#!/usr/bin/env python3
"""nvlar-bench --emulate 2 --overlap runs both ways of issuing the all-reduces beside the GEMM
(--overlap-launch graph and eager) and writes one overlap row per point, named by its series,
with the times and throughputs it measured (never asserted on: only that they were measured).
Skips (77) without a GPU or without cuBLAS in the build.

usage: test_bench_overlap.py NVLAR_BENCH"""
import csv
import math
import os
import subprocess
import sys
import tempfile

bench = sys.argv[1]
env = dict(os.environ, NCCL_NVLS_ENABLE="0")
failures = 0
with tempfile.TemporaryDirectory() as tmp:
    for launch, series in (("graph", "overlap"), ("eager", "overlap-eager")):
        path = os.path.join(tmp, f"{launch}.csv")
        command = [bench, "--emulate", "2", "--algo", "pushtwoshot", "--dtype", "bfloat16",
                   "--overlap", "--overlap-launch", launch, "--blocks", "8", "--gemm", "2048",
                   "--min-bytes", "1M", "--max-bytes", "1M", "--trials", "1", "--csv", path]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        output = result.stdout + result.stderr
        if "no GPU" in output:
            print(f"SKIP: needs a GPU ({output.strip()[:200]})")
            sys.exit(77)
        if "needs cuBLAS" in output:
            print("SKIP: this build has no cuBLAS")
            sys.exit(77)
        if result.returncode != 0 or not os.path.exists(path):
            print(f"FAIL: {' '.join(command)} exited {result.returncode}\n{output}")
            sys.exit(1)
        with open(path) as f:
            rows = [r for r in csv.DictReader(f) if r["series"].startswith("overlap")]
        measured = lambda r, key: not math.isnan(float(r[key] or "nan")) and float(r[key]) > 0
        good = [r for r in rows
                if r["series"] == series and r["algo"] == "pushtwoshot" and r["ctas"] == "8"
                and r["bytes"] == str(1 << 20)
                and all(measured(r, k) for k in ("time_us", "time_us_alone", "gemm_tflops_alone"))]
        ok = len(rows) == 1 and len(good) == 1
        print(f"--overlap-launch {launch}: {len(rows)} overlap rows, {len(good)} as expected"
              f"{'' if ok else ': ' + repr(rows)}")
        failures += not ok
sys.exit(1 if failures else 0)
