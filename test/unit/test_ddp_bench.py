#!/usr/bin/env python3
"""scripts/ddp-bench without GPUs. Its options and its word without PyTorch or without a GPU
(stand-in torch modules) run everywhere; then, with the first interpreter here that has
PyTorch (this one, or Debian's /usr/bin/python3 with python3-torch), the real job on the CPU
over gloo: two ranks and every configuration (CSV, logs, plot, losses bit for bit), a rank's
gradient perturbed before the all-reduce (the loss check must fail), a rank's parameter
perturbed (the check across ranks must fail), and three ranks (the tolerance check). Skips
(77) after the first part where no interpreter has PyTorch.

usage: test_ddp_bench.py SCRIPTS_DDP_BENCH"""
import csv
import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import tempfile

script = sys.argv[1]
failures = 0
# Tiny sizes: the job's logic, not its speed. fp32 parameters under autocast, since the gloo of
# torch 1.13 has no bf16.
TINY = ["--backend", "gloo", "--device", "cpu", "--precision", "amp", "--layers", "2",
        "--hidden", "64", "--heads", "2", "--seq", "16", "--batch", "2", "--warmup", "2",
        "--iters", "3", "--bucket-mb", "0.01"]


def check(condition, what, detail=""):
    global failures
    if not condition:
        print(f"FAIL: {what}\n{detail}")
        failures += 1


def run(args, interpreter=sys.executable, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([interpreter, script] + args, capture_output=True, text=True, env=env,
                          timeout=600)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def interpreter_with_torch():
    for interpreter in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(interpreter) and subprocess.run(
                [interpreter, "-c", "import torch.distributed as d; assert d.is_gloo_available()"],
                capture_output=True).returncode == 0:
            return interpreter
    return None


result = run(["--help"])
check(result.returncode == 0 and "--bucket-mb" in result.stdout and "no_sync()" in result.stdout,
      "--help", result.stdout + result.stderr)
for bad in (["--configs", "fast"], ["--configs", ""], ["--backend", "nccl", "--device", "cpu"],
            ["--backend", "gloo", "--device", "cuda"], ["--hidden", "100", "--heads", "3"],
            ["--layers", "0"], ["--bucket-mb", "0"], ["--precision", "fp8"]):
    result = run(bad)
    check(result.returncode == 2, f"{bad} is refused", result.stdout + result.stderr)

with tempfile.TemporaryDirectory() as tmp:
    for name, body in (("absent", "raise ImportError('stand-in')\n"),
                       ("no_gpu", "class cuda:\n"
                                  "    is_available = staticmethod(lambda: False)\n"
                                  "    device_count = staticmethod(lambda: 0)\n")):
        os.makedirs(os.path.join(tmp, name, "torch"))
        with open(os.path.join(tmp, name, "torch", "__init__.py"), "w") as f:
            f.write(body)
    result = run([], env_extra={"PYTHONPATH": os.path.join(tmp, "absent")})
    check(result.returncode == 0 and "PyTorch is not installed" in result.stdout,
          "without PyTorch", result.stdout + result.stderr)
    result = run([], env_extra={"PYTHONPATH": os.path.join(tmp, "no_gpu")})
    check(result.returncode == 0 and "found no GPU" in result.stdout,
          "without a GPU", result.stdout + result.stderr)

# What only a GPU run produces, from synthetic input: nvlar's log read for its use, and the
# loss tolerance of more than 2 ranks exceeded.
loader = importlib.machinery.SourceFileLoader("ddp_bench", script)
spec = importlib.util.spec_from_loader("ddp_bench", loader)
ddp_bench = importlib.util.module_from_spec(spec)
loader.exec_module(ddp_bench)
log = ("h:1:1 NVLAR INFO comm 0x1 rank 0/2 on GPU 0: all-reduces run on nvlar (table built-in)\n"
       "h:2:2 NVLAR INFO comm 0x2 rank 1/2 on GPU 1: all-reduces run on nvlar (table built-in)\n"
       "h:1:1 NVLAR INFO comm 0x1 rank 0/2 destroyed: 40 all-reduces on nvlar (oneshot 0, "
       "pushtwoshot 40), 2 on NCCL\n"
       "h:2:2 NVLAR INFO comm 0x2 rank 1/2 aborted: 41 all-reduces on nvlar (oneshot 1, "
       "pushtwoshot 40), 1 on NCCL\n")
check(ddp_bench.nvlar_use(log, 2) == (2, 81, 3), "nvlar's log read",
      str(ddp_bench.nvlar_use(log, 2)))
check(ddp_bench.nvlar_use("no nvlar here", 2) == (0, None, None), "no nvlar log",
      str(ddp_bench.nvlar_use("no nvlar here", 2)))
check(ddp_bench.nvlar_use("comm 0x1: 1 rank: its all-reduces are copies, made by nvlar", 1)[0]
      == 1, "one rank's nvlar line")


def runs(*per_rank_losses):
    return [{"losses": [value.hex() for value in losses]} for losses in per_rank_losses]


nccl = runs([2.0, 1.9, 1.8], [2.1, 2.0, 1.9], [2.2, 2.1, 2.0])
close = runs([2.0, 1.9, 1.8001], [2.1, 2.0, 1.9], [2.2, 2.1, 2.0])
far = runs([2.0, 1.9, 1.8], [2.1, 2.01, 1.9], [2.2, 2.1, 2.0])
check(ddp_bench.loss_check(nccl, close, False, 1e-3)[0], "within the tolerance",
      str(ddp_bench.loss_check(nccl, close, False, 1e-3)))
passed, text = ddp_bench.loss_check(nccl, far, False, 1e-3)
check(not passed and text.startswith("DIFFER by 5.00e-03"), "beyond the tolerance", text)
passed, text = ddp_bench.loss_check(nccl, close, True, 1e-3)
check(not passed and text.startswith("DIFFER from step 2 on rank 0"), "bits differ", text)

python = interpreter_with_torch()
if python is None:
    print(f"ddp-bench: {failures} failures in the checks without PyTorch")
    if failures:
        sys.exit(1)
    print("SKIP: no interpreter here has PyTorch with gloo: the job itself not run")
    sys.exit(77)
print(f"running the job with {python}")

with tempfile.TemporaryDirectory() as tmp:
    table, png, logs = (os.path.join(tmp, name) for name in ("ddp.csv", "ddp.png", "logs"))
    result = run(TINY + ["--csv", table, "--plot", png, "--logs", logs], python)
    output = result.stdout + result.stderr
    check(result.returncode == 0, "two ranks, every configuration: exit 0", output)
    check("second run of each configuration is gloo again" in result.stdout,
          "it says the second run is not nvlar", output)
    check("are the same bits with gloo again as with gloo (4 configuration(s) x 5 steps)"
          in result.stdout, "it says the losses are the same bits", output)
    check(result.stdout.count("ddp-bench: gloo default: step") == 1 and
          result.stdout.count("ddp-bench: max-ctas: step gloo") == 1,
          "a progress line per run and per configuration", output)
    rows = read_csv(table) if os.path.exists(table) else []
    check([r["config"] for r in rows] == ["default", "bucket-view", "static-graph", "max-ctas"],
          "a CSV row per configuration", str(rows))
    for r in rows:
        what = f"CSV row {r['config']}"
        check(r["loss_check"] == "same bits" and r["params_same_across_ranks"] == "yes" and
              r["backend"] == "gloo" and r["nvlar_preloaded"] == "no" and r["ranks"] == "2" and
              r["device"] == "cpu" and r["torch"] and r["date"] and r["steps"] == "5", what,
              str(r))
        check(all(float(r[c]) > 0 for c in ("nccl_step_ms", "nvlar_step_ms", "nccl_nosync_ms",
                                            "nvlar_nosync_ms", "ratio", "nccl_tokens_per_s")),
              f"{what}: times, ratio and tokens/s are positive", str(r))
        check(abs(float(r["ratio"]) - float(r["nvlar_step_ms"]) / float(r["nccl_step_ms"]))
              < 1e-3, f"{what}: ratio is nvlar / NCCL", str(r))
        share = 1 - float(r["nccl_nosync_ms"]) / float(r["nccl_step_ms"])
        check(abs(float(r["nccl_unhidden_share"]) - share) < 1e-3,
              f"{what}: unhidden share is (step - step without sync) / step", str(r))
        check(r["max_ctas"] == ("8" if r["config"] == "max-ctas" else ""),
              f"{what}: max_ctas", str(r))
    check(sorted(os.listdir(logs)) == sorted(f"{c}-{leg}.log" for c in
                                             ("default", "bucket-view", "static-graph",
                                              "max-ctas") for leg in ("gloo", "gloo-again"))
          if os.path.isdir(logs) else False, "--logs keeps every run's output",
          str(os.listdir(logs)) if os.path.isdir(logs) else "no logs")
    has_matplotlib = subprocess.run([python, "-c", "import matplotlib"],
                                    capture_output=True).returncode == 0
    if has_matplotlib:
        check(os.path.exists(png) and os.path.getsize(png) > 1000, "plot written", output)
    else:
        check("matplotlib is not installed" in result.stdout, "no plot, and it says so", output)

    for kind, problem, column, value in (
            ("gradient", "losses DIFFER from step", "params_same_across_ranks", "yes"),
            ("parameter", "parameters differ across ranks", "params_same_across_ranks", "no")):
        result = run(TINY + ["--configs", "default", "--csv", table, "--perturb-rank", "1",
                             "--perturb", kind], python)
        output = result.stdout + result.stderr
        check(result.returncode == 1 and problem in result.stderr,
              f"perturbed {kind}: exit 1 and '{problem}'", output)
        rows = read_csv(table)
        check(len(rows) == 1 and rows[0]["loss_check"].startswith("DIFFER") and
              rows[0][column] == value, f"perturbed {kind}: CSV", str(rows))

    result = run(TINY + ["--configs", "static-graph", "--ranks", "3", "--csv", table], python)
    output = result.stdout + result.stderr
    check(result.returncode == 0 and "parameters the same bits on all 3 ranks" in result.stdout,
          "three ranks: exit 0, parameters checked across ranks", output)
    rows = read_csv(table)
    check(len(rows) == 1 and rows[0]["loss_check"].startswith("within 0.001"),
          "three ranks: losses checked within the tolerance", str(rows))
    result = run(TINY + ["--perturb-rank", "2"], python)
    check(result.returncode == 2 and "not one of the 2 ranks" in result.stderr,
          "--perturb-rank beyond the ranks is refused", result.stdout + result.stderr)

print(f"ddp-bench: {failures} failures")
sys.exit(1 if failures else 0)
