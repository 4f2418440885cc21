#!/usr/bin/env python3
"""scripts/ddp-bench on 2 GPUs with small sizes: every configuration with NCCL and with
libnvlar preloaded. It must exit 0 and say that the losses and parameters were the same bits;
every run's CSV row must say so; nvlar's own log (NVLAR_DEBUG=INFO, kept by --logs) must show
each rank's communicator on nvlar and all-reduces counted by nvlar at its destroy (in the
max-ctas configuration, within 8 CTAs, counted on nvlar or NCCL: the built-in rows send calls
above 64 KiB to NCCL there), with no NVLAR WARN line; the NCCL runs' logs must have no NVLAR
line at all. Skips (77) without PyTorch or below 2 GPUs. No timing is asserted: the table is
printed for the reader.

usage: test_ddp_bench.py SCRIPTS_DDP_BENCH LIBNVLAR_SO"""
import csv
import os
import re
import subprocess
import sys
import tempfile

script, libnvlar = sys.argv[1], sys.argv[2]
try:
    import torch
except ImportError:
    print("SKIP: no PyTorch")
    sys.exit(77)
gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
if gpus < 2:
    print(f"SKIP: needs 2 GPUs, found {gpus}")
    sys.exit(77)

CONFIGS = ["default", "bucket-view", "static-graph", "max-ctas"]
BAD = ("NVLAR WARN", "Traceback", "illegal memory access", "CUDA error", "SIGABRT",
       "terminate called")
failures = 0


def check(condition, what, detail=""):
    global failures
    if not condition:
        print(f"FAIL: {what}\n{detail}")
        failures += 1


with tempfile.TemporaryDirectory() as tmp:
    table, logs = os.path.join(tmp, "ddp.csv"), os.path.join(tmp, "logs")
    env = dict(os.environ)
    env.setdefault("NVLAR_TIMEOUT_MS", "60000")
    command = [sys.executable, script, "--lib", libnvlar, "--ranks", "2", "--layers", "2",
               "--hidden", "1024", "--seq", "512", "--batch", "2", "--warmup", "3",
               "--iters", "5", "--csv", table, "--logs", logs]
    print(" ".join(command))
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    print(output)
    check(result.returncode == 0, f"exit {result.returncode}")
    check("are the same bits with nvlar as with NCCL (4 configuration(s) x 8 steps)"
          in result.stdout, "the losses and parameters the same bits")
    rows = []
    if os.path.exists(table):
        with open(table) as f:
            rows = list(csv.DictReader(f))
    check([r["config"] for r in rows] == CONFIGS, "a CSV row per configuration", str(rows))
    for r in rows:
        check(r["loss_check"] == "same bits" and r["params_same_across_ranks"] == "yes" and
              r["nvlar_preloaded"] == "yes" and r["nccl"] and r["device"] != "cpu",
              f"CSV row {r['config']}", str(r))
    for config in CONFIGS:
        for leg in ("nccl", "nvlar"):
            path = os.path.join(logs, f"{config}-{leg}.log")
            if not os.path.exists(path):
                check(False, f"{path} kept")
                continue
            with open(path) as f:
                log = f.read()
            bad = [line for line in log.splitlines() if any(b in line for b in BAD)]
            check(not bad, f"{config} {leg}: no bad lines", "\n".join(bad))
            if leg == "nccl":
                check("NVLAR" not in log, f"{config}: the NCCL run has no nvlar in it")
                continue
            check(log.count("all-reduces run on nvlar") >= 2,
                  f"{config}: nvlar says both ranks' communicators run on nvlar")
            on_nvlar, on_nccl = {"0": 0, "1": 0}, {"0": 0, "1": 0}
            for rank, calls, nccl_calls in re.findall(
                    r"rank (\d)/2 (?:destroyed|aborted): (\d+) all-reduces on nvlar \([^)]*\), "
                    r"(\d+) on NCCL", log):
                on_nvlar[rank] += int(calls)
                on_nccl[rank] += int(nccl_calls)
            if config == "max-ctas":
                # Within 8 CTAs the built-in rows keep nvlar to all-reduces up to 64 KiB and hand
                # larger ones (every gradient bucket here) to NCCL within the same limit; each
                # rank must say it set up within 8 CTAs and count its calls somewhere.
                check(len(re.findall(r"\d+-8 CTAs per call", log)) >= 2,
                      f"{config}: both ranks' communicators within 1-8 CTAs")
                check(all(on_nvlar[r] + on_nccl[r] > 0 for r in on_nvlar),
                      f"{config}: both ranks counted their all-reduces", f"{on_nvlar} {on_nccl}")
            else:
                check(all(calls > 0 for calls in on_nvlar.values()),
                      f"{config}: nvlar counted all-reduces on both ranks", str(on_nvlar))

print(f"ddp-bench on 2 GPUs: {failures} failures")
sys.exit(1 if failures else 0)
