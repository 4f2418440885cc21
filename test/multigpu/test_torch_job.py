#!/usr/bin/env python3
"""PyTorch jobs on 2+ GPUs with libnvlar preloaded, one process per GPU (torchrun):
test/multigpu/torch_job.py's `lifecycle` (device_id init, every size class eager and in a graph,
SymmetricMemory tensors, dist.barrier, destroy_process_group) and `groups 50` (50 process groups
made, used, destroyed; GPU memory back). Each must exit 0 with every rank's "ok", and without
any NVLAR WARN line or CUDA error. Skips (77) without PyTorch or below 2 GPUs.

usage: test_torch_job.py TORCH_JOB_PY LIBNVLAR_SO"""
import os
import subprocess
import sys

job, libnvlar = sys.argv[1], sys.argv[2]
try:
    import torch
except ImportError:
    print("SKIP: no PyTorch")
    sys.exit(77)
gpus = min(torch.cuda.device_count(), 8) if torch.cuda.is_available() else 0
if gpus < 2:
    print(f"SKIP: needs 2 GPUs, found {gpus}")
    sys.exit(77)

BAD = ("NVLAR WARN", "Traceback", "illegal memory access", "CUDA error", "SIGABRT",
       "terminate called")


def run(mode_args, timeout):
    env = dict(os.environ, LD_PRELOAD=libnvlar, NVLAR_DEBUG="INFO", NCCL_NVLS_ENABLE="0",
               TORCH_SYMM_MEM_DISABLE_MULTICAST="1", NVSHMEM_DISABLE_NVLS="1",
               PYTHONUNBUFFERED="1")
    env.pop("NVLAR_DEBUG_FILE", None)
    env.setdefault("NVLAR_TIMEOUT_MS", "60000")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(gpus),
               "--master-port", str(29500 + os.getpid() % 1000), job] + mode_args
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    ok = output.count(f"{mode_args[0]} ok")
    bad = [line for line in output.splitlines() if any(b in line for b in BAD)]
    on_nvlar = output.count("all-reduces run on nvlar")
    failed = result.returncode != 0 or ok != gpus or bad or on_nvlar < gpus
    print(f"== torch_job.py {' '.join(mode_args)}: exit {result.returncode}, {ok}/{gpus} ranks ok, "
          f"{on_nvlar} communicators on nvlar, {len(bad)} bad lines: {'FAILED' if failed else 'ok'}")
    for line in output.splitlines():
        if failed or line.startswith(("rank", " ")) or "destroyed:" in line:
            print("   ", line)
    return 1 if failed else 0


failures = run(["lifecycle"], 600) + run(["groups", "50"], 600)
print(f"{failures} PyTorch jobs failed")
sys.exit(1 if failures else 0)
