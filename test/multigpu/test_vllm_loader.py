#!/usr/bin/env python3
"""vLLM's way of loading NCCL, on two ranks: scripts/torch_allreduce.py --vllm-style LIBNVLAR_SO,
one process per GPU (GPUs 0 and 1), started by this script itself as vLLM starts its own workers
(no torchrun, no LD_PRELOAD). Each rank loads libnvlar.so by path through ctypes, as vLLM's
pynccl wrapper does with VLLM_NCCL_SO_PATH; rank 0 makes the unique id and the ranks share it
over gloo; ncclCommInitRank; ncclAllReduce on torch tensors on the current stream, eager and
captured in a CUDA graph replayed with new inputs; ncclCommDestroy. The script checks every
result exactly against a CPU reference.

Passes when, for each rank: the process exits 0; its summary line says every check passed; and
nvlar's NVLAR_DEBUG=INFO log shows that this library is nvlar (the line naming the NCCL it
forwards to), that it recorded the communicator made by ncclCommInitRank and set it up on nvlar
("all-reduces run on nvlar"), and, at destroy, that it counted every ncclAllReduce call the rank
made (on its kernels or passed to NCCL), with some on its kernels and some on a two-shot kernel
(the sizes above 1 MiB). No NVLAR WARN line, traceback, failed check or CUDA error anywhere.
Prints what failed, then each rank's output. Skips (77) without PyTorch, without CUDA, or below
2 GPUs.

usage: test_vllm_loader.py TORCH_ALLREDUCE_PY LIBNVLAR_SO
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

RANKS = 2
TIMEOUT_S = 600
# Once a rank has failed, the others get this long to finish (or to fail: a peer that died
# leaves them waiting in a collective until NVLAR_TIMEOUT_MS, set to 60 s below) before they
# are killed.
GRACE_AFTER_FAILURE_S = 90

# nvlar's INFO lines (plugin/real_nccl.c, plugin/api_comm.c, plugin/setup.c), after the
# "host:pid:tid " prefix. Pointers are whatever %p prints.
FORWARDING = re.compile(r"NVLAR INFO nvlar \S+ forwarding to NCCL (\S+) \((.*)\)")
CREATED = re.compile(r"NVLAR INFO comm (\S+) created by ncclCommInitRank\b")
ON_NVLAR = re.compile(r"NVLAR INFO comm (\S+) rank (\d+)/(\d+) on GPU (\d+): "
                      r"all-reduces run on nvlar")
STAYS_ON_NCCL = re.compile(r"NVLAR (?:INFO|WARN) comm \S+: all-reduces stay on NCCL: (.*)")
CALL_COUNTS = re.compile(r"NVLAR INFO comm (\S+) rank (\d+)/(\d+) destroyed: (\d+) all-reduces "
                         r"on nvlar \(([^)]*)\), (\d+) on NCCL")
# scripts/torch_allreduce.py's own lines.
SUMMARY = re.compile(r"rank (\d+)/(\d+): vllm-style \((.*)\): (\d+) of (\d+) checks passed")
CALLS_MADE = re.compile(r"rank (\d+)/(\d+): vllm-style: (\d+) ncclAllReduce calls")
BAD = ("NVLAR WARN", "Traceback", "illegal memory access", "CUDA error", "FAIL ")


def skip_reason():
    try:
        import torch
    except Exception as error:  # ImportError, or a broken install (OSError on a missing library)
        return f"PyTorch is not importable ({type(error).__name__}: {error})"
    if not torch.cuda.is_available():
        return "PyTorch sees no CUDA device"
    gpus = torch.cuda.device_count()
    if gpus < RANKS:
        return f"needs {RANKS} GPUs, {gpus} visible"
    return None


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def job_environment():
    env = dict(os.environ, NVLAR_DEBUG="INFO", NCCL_NVLS_ENABLE="0",
               TORCH_SYMM_MEM_DISABLE_MULTICAST="1", NVSHMEM_DISABLE_NVLS="1",
               PYTHONUNBUFFERED="1")
    env.setdefault("NVLAR_TIMEOUT_MS", "60000")
    # The test checks nvlar's own choices and reads its log from standard output: settings that
    # would send the log elsewhere or the calls to NCCL are not the user's to pass in here.
    for name in ("NVLAR_DEBUG_FILE", "NVLAR_DISABLE", "NVLAR_ALGO", "NVLAR_MAX_BYTES",
                 "NVLAR_TUNING_FILE"):
        env.pop(name, None)
    # The library must be reached by path only, as vLLM reaches it, not through a preload.
    preload = [p for p in re.split(r"[:\s]+", env.pop("LD_PRELOAD", "")) if p and "nvlar" not in p]
    if preload:
        env["LD_PRELOAD"] = ":".join(preload)
    return env


def run_ranks(script, libnvlar):
    """Starts one process per rank, each in its own session (so that a stuck one and anything it
    started can be killed), and waits for all. Returns [(exit status or None if killed, output)]."""
    env = job_environment()
    port = str(free_port())
    ranks = []
    for rank in range(RANKS):
        rank_env = dict(env, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(RANKS),
                        LOCAL_WORLD_SIZE=str(RANKS), MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
        output = tempfile.TemporaryFile(mode="w+")
        process = subprocess.Popen([sys.executable, script, "--vllm-style", libnvlar],
                                   env=rank_env, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        ranks.append((process, output))
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and any(p.poll() is None for p, _ in ranks):
        if any(p.poll() not in (None, 0) for p, _ in ranks):
            deadline = min(deadline, time.monotonic() + GRACE_AFTER_FAILURE_S)
        time.sleep(0.5)
    results = []
    for process, output in ranks:
        status = process.poll()
        if status is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        output.seek(0)
        results.append((status, output.read()))
        output.close()
    return results


def check_rank(rank, status, output):
    """The problems seen in one rank's output, as sentences; none when it passed."""
    problems = []
    if status is None:
        problems.append(f"did not finish: killed after {TIMEOUT_S} s, or "
                        f"{GRACE_AFTER_FAILURE_S} s after another rank failed")
    elif status != 0:
        problems.append(f"exited with status {status}")
    lines = output.splitlines()
    bad = [line for line in lines if any(word in line for word in BAD)]
    if bad:
        problems.append(f"{len(bad)} bad lines, the first: {bad[0].strip()}")

    summaries = [m for m in map(SUMMARY.search, lines) if m and int(m.group(1)) == rank]
    if not summaries:
        problems.append("no summary line (\"rank R/W: vllm-style (...): X of Y checks passed\")")
    else:
        passed, checks = int(summaries[-1].group(4)), int(summaries[-1].group(5))
        if checks == 0 or passed != checks:
            problems.append(f"{checks - passed} of {checks} checks failed")

    if not any(FORWARDING.search(line) for line in lines):
        problems.append("no \"NVLAR INFO nvlar ... forwarding to NCCL\" line: the library loaded "
                        "by path is not nvlar, or NVLAR_DEBUG=INFO did not reach it")
    if not any(CREATED.search(line) for line in lines):
        problems.append("nvlar never recorded a communicator made by ncclCommInitRank")
    stays = [m.group(1) for m in map(STAYS_ON_NCCL.search, lines) if m]
    set_up = [m for m in map(ON_NVLAR.search, lines) if m and int(m.group(2)) == rank]
    if stays:
        problems.append(f"the communicator stays on NCCL: {stays[0]}")
    elif not set_up:
        problems.append(f"no \"comm ... rank {rank}/{RANKS} on GPU ...: all-reduces run on nvlar\" "
                        f"line")

    made = [int(m.group(3)) for m in map(CALLS_MADE.search, lines) if m and int(m.group(1)) == rank]
    counts = [m for m in map(CALL_COUNTS.search, lines) if m and int(m.group(2)) == rank]
    if not counts:
        problems.append(f"no \"comm ... rank {rank}/{RANKS} destroyed: N all-reduces on nvlar "
                        f"(...), M on NCCL\" line (nvlar prints it when ncclCommDestroy frees a "
                        f"communicator it set up)")
    else:
        on_nvlar, on_nccl = int(counts[-1].group(4)), int(counts[-1].group(6))
        per_kernel = {name: int(n) for name, n in re.findall(r"(\w+) (\d+)", counts[-1].group(5))}
        two_shot = sum(n for name, n in per_kernel.items() if "twoshot" in name or name == "tma")
        if on_nvlar == 0:
            problems.append("no all-reduce ran on nvlar's kernels")
        if two_shot == 0:
            problems.append(f"no all-reduce ran on a two-shot kernel (per kernel: {per_kernel}), "
                            f"though sizes above 1 MiB were called")
        if not made:
            problems.append("the script did not say how many ncclAllReduce calls it made")
        elif on_nvlar + on_nccl != made[-1]:
            problems.append(f"the rank made {made[-1]} ncclAllReduce calls but nvlar counted "
                            f"{on_nvlar} on nvlar + {on_nccl} on NCCL")
    return problems


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    script, libnvlar = sys.argv[1], sys.argv[2]
    reason = skip_reason()
    if reason is not None:
        print(f"SKIP: {reason}")
        return 77
    for path in (script, libnvlar):
        if not os.path.isfile(path):
            print(f"FAILED: {path} does not exist")
            return 1
    results = run_ranks(script, os.path.abspath(libnvlar))
    failed = False
    for rank, (status, output) in enumerate(results):
        problems = check_rank(rank, status, output)
        failed = failed or bool(problems)
        for problem in problems:
            print(f"FAILED rank {rank}: {problem}")
    for rank, (status, output) in enumerate(results):
        for line in output.splitlines():
            # The whole output of a failed job; of a passed one, nvlar's INFO lines and the
            # script's own.
            if failed or "NVLAR INFO" in line or line.startswith("rank "):
                print(f"rank {rank}| {line}")
    print(f"vLLM-style loading of {os.path.basename(libnvlar)} on {RANKS} ranks: "
          f"{'FAILED' if failed else 'ok'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
