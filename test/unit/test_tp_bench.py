#!/usr/bin/env python3
"""scripts/tp-bench without GPUs: its options, what it says without PyTorch or with one GPU
(stand-in torch modules), and its report (table, CSV, plot) from synthetic results.

usage: test_tp_bench.py SCRIPTS_TP_BENCH"""
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import tempfile

script = sys.argv[1]
failures = 0


def check(condition, what, detail=""):
    global failures
    if not condition:
        print(f"FAIL: {what}\n{detail}")
        failures += 1


def run(args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([sys.executable, script] + args, capture_output=True, text=True, env=env)


result = run(["--help"])
check(result.returncode == 0 and "--decode-tokens" in result.stdout, "--help", result.stderr)
for bad in (["--decode-tokens", "0"], ["--prefill-tokens", "x"], ["--modes", "fast"],
            ["--layers", "0"]):
    result = run(bad)
    check(result.returncode == 2, f"{bad} is refused", result.stdout + result.stderr)

with tempfile.TemporaryDirectory() as tmp:
    # Stand-in torch packages: one that cannot be imported, one with a single GPU.
    for name, body in (("absent", "raise ImportError('stand-in')\n"),
                       ("one_gpu", "class cuda:\n"
                                   "    is_available = staticmethod(lambda: True)\n"
                                   "    device_count = staticmethod(lambda: 1)\n")):
        os.makedirs(os.path.join(tmp, name, "torch"))
        with open(os.path.join(tmp, name, "torch", "__init__.py"), "w") as f:
            f.write(body)
    result = run([], {"PYTHONPATH": os.path.join(tmp, "absent")})
    check(result.returncode == 0 and "PyTorch is not installed" in result.stdout,
          "without PyTorch", result.stdout + result.stderr)
    result = run([], {"PYTHONPATH": os.path.join(tmp, "one_gpu")})
    check(result.returncode == 0 and "found 1 GPU(s)" in result.stdout and "2 or more" in result.stdout,
          "with one GPU", result.stdout + result.stderr)

    loader = importlib.machinery.SourceFileLoader("tp_bench", script)
    spec = importlib.util.spec_from_loader("tp_bench", loader)
    tp_bench = importlib.util.module_from_spec(spec)
    loader.exec_module(tp_bench)
    args = tp_bench.parse_args(["--decode-tokens", "1,16", "--prefill-tokens", "512",
                                "--modes", "graph"])
    configs = tp_bench.configurations(args)
    check(configs == [("decode", 1, "graph"), ("decode", 16, "graph"), ("prefill", 512, "graph")],
          "configurations", str(configs))
    nccl = [{"phase": p, "tokens": t, "mode": m, "step_us": 100.0, "allreduce_us": 40.0,
             "output_sha1": f"h{t}"} for p, t, m in configs]
    nvlar = [dict(r, step_us=80.0, allreduce_us=20.0) for r in nccl]
    digests = [[r["output_sha1"] for r in nccl]] * 2
    other = [["h1", "other", "h512"], ["h1", "h16", "h512"]]  # rank 0 of nvlar differs at 16
    rows = tp_bench.combine(nccl, nvlar, digests, other)
    check(abs(rows[0]["speedup"] - 1.25) < 1e-9, "speed-up", str(rows[0]))
    check(abs(rows[0]["nccl_allreduce_share"] - 0.4) < 1e-9 and
          abs(rows[0]["nvlar_allreduce_share"] - 0.25) < 1e-9, "all-reduce shares", str(rows[0]))
    check([r["same_bits"] for r in rows] == [True, False, True], "bits compared per configuration",
          str(rows))
    table = tp_bench.format_table(rows)
    check("DIFFER" in table and "1.250" in table, "table", table)
    csv = os.path.join(tmp, "tp.csv")
    tp_bench.write_csv(rows, csv)
    lines = open(csv).read().splitlines()
    check(lines[0] == ",".join(tp_bench.CSV_COLUMNS) and len(lines) == 4 and
          lines[2] == "decode,16,graph,100.0000,80.0000,1.2500,40.0000,20.0000,0.4000,0.2500,no",
          "CSV", "\n".join(lines))
    # The plot, with any interpreter here that has matplotlib.
    for interpreter in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(interpreter) and subprocess.run(
                [interpreter, "-c", "import matplotlib"], capture_output=True).returncode == 0:
            png = os.path.join(tmp, "tp.png")
            code = ("import importlib.machinery, importlib.util, sys\n"
                    f"loader = importlib.machinery.SourceFileLoader('tp_bench', {script!r})\n"
                    "spec = importlib.util.spec_from_loader('tp_bench', loader)\n"
                    "m = importlib.util.module_from_spec(spec); loader.exec_module(m)\n"
                    f"m.plot({rows!r}, {png!r}, 'test')\n")
            result = subprocess.run([interpreter, "-c", code], capture_output=True, text=True)
            check(result.returncode == 0 and os.path.getsize(png) > 1000, "plot", result.stderr)
            break
    else:
        print("matplotlib not installed: the plot not exercised")

print(f"tp-bench: {failures} failures")
sys.exit(1 if failures else 0)
