#!/usr/bin/env python3
"""PyTorch with nvlar: scripts/torch_allreduce.py under torchrun, one process per visible GPU,
(1) torch.distributed on the nccl backend with LD_PRELOAD=libnvlar.so, (2) the library loaded
by path through ctypes as vLLM does. nvlar's log must show that nvlar ran the communicator's
all-reduces (one GPU: one-rank copies; more: its kernels). Skips (77) without PyTorch or a
GPU."""
import os
import subprocess
import sys

script, libnvlar = sys.argv[1], sys.argv[2]
try:
    import torch
except ImportError:
    print("SKIP: no PyTorch")
    sys.exit(77)
if not torch.cuda.is_available():
    print("SKIP: no GPU")
    sys.exit(77)
gpus = min(torch.cuda.device_count(), 8)


def torchrun(extra_args, env_changes):
    env = dict(os.environ, NVLAR_DEBUG="INFO", NCCL_NVLS_ENABLE="0", **env_changes)
    env.pop("NVLAR_DEBUG_FILE", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(gpus),
               "--master-port", str(29500 + os.getpid() % 1000), script] + extra_args
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    print(output)
    passed = output.count("checks passed") - output.count(": 0 of")
    if result.returncode != 0 or passed < gpus or "FAIL" in output:
        print(f"FAILED: exit {result.returncode}, {passed} ranks reported success", file=sys.stderr)
        sys.exit(1)
    return output


output = torchrun([], {"LD_PRELOAD": libnvlar})
if "NVLAR INFO nvlar " not in output:
    print("FAILED: the preloaded libnvlar never reported the NCCL it forwards to", file=sys.stderr)
    sys.exit(1)
# nvlar's own line for the communicator it ran the all-reduces of ("stay on NCCL" is no proof).
ran_by_nvlar = ("1 rank: its all-reduces are copies, made by nvlar" if gpus == 1
                else "all-reduces run on nvlar")
if ran_by_nvlar not in output:
    print(f"FAILED: nvlar did not say '{ran_by_nvlar}'", file=sys.stderr)
    sys.exit(1)
output = torchrun(["--vllm-style", libnvlar], {})
if "vllm-style (libnvlar" not in output:
    sys.exit(1)
print(f"PyTorch with nvlar on {gpus} GPU(s): both ways passed")
