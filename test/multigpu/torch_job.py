#!/usr/bin/env python3
"""A PyTorch job on real GPUs, one process per GPU, as users run one with nvlar preloaded.

usage (one rank per GPU, e.g. under torchrun, with or without LD_PRELOAD=libnvlar.so):
  torch_job.py lifecycle   init_process_group(device_id=...), all-reduces of every size class
                           (eager, and many calls in one CUDA graph) checked exactly,
                           SymmetricMemory tensors used next to them, dist.barrier(),
                           destroy_process_group(); prints per-call times
  torch_job.py groups N    N process groups created (new_group, a split of the default
                           communicator), used and destroyed in turn; prints the GPU memory in
                           use before and after
  torch_job.py stall       back-to-back all-reduces of every size, eager and in one graph:
                           per-call times only (no checks); what nvlar-bench measures, in torch

Each rank prints "rank R: <mode> ok" when every check passed, and exits 0; any failure exits 1.
Nothing here asserts on time: times are printed for the reader.
"""
import os
import sys
import time

import torch
import torch.distributed as dist

# size classes: push one-shot, pull one-shot, two-shot (and beyond), NCCL
SIZES = [8, 4096, 24 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, (1 << 20) + 6,
         4 << 20, 16 << 20]


def values(count, dtype, rank, salt):
    """Small integers: sums are exact in every dtype and in any order."""
    base = torch.arange(count, dtype=torch.int64, device="cpu")
    return ((base * 7 + rank * 3 + salt) % 9 - 4).to(dtype)


def expected(count, dtype, world, salt):
    total = sum(values(count, torch.float64, r, salt) for r in range(world))
    return total.to(dtype)


def check(tensor, want, what):
    got = tensor.cpu()
    if torch.equal(got, want):
        return 0
    bad = (got != want).nonzero()
    index = bad[0].item()
    print(f"FAIL {what}: {len(bad)} wrong, e.g. [{index}] = {got[index].item()}, "
          f"want {want[index].item()}", flush=True)
    return 1


def per_call_us(fn, calls):
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1e6 / calls


def timed_sizes(rank, world, device, dtype, calls, verify):
    """Back-to-back all-reduces of each size, eager and captured in one graph."""
    failures = 0
    rows = []
    for nbytes in SIZES:
        count = max(1, nbytes // dtype.itemsize)
        data = values(count, dtype, rank, 1).to(device)

        def eager():
            for _ in range(calls):
                dist.all_reduce(data)

        data.copy_(values(count, dtype, rank, 1).to(device))
        dist.all_reduce(data)  # warm-up, and a check of one call
        if verify:
            failures += check(data, expected(count, dtype, world, 1), f"eager {nbytes} B")
        eager_us = per_call_us(eager, calls)
        graph = torch.cuda.CUDAGraph()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            with torch.cuda.graph(graph, stream=stream):
                for _ in range(calls):
                    dist.all_reduce(data)
        torch.cuda.current_stream().wait_stream(stream)
        graph_us = per_call_us(graph.replay, calls)
        if verify:
            # One replay of a graph of one call, from known inputs.
            single = torch.cuda.CUDAGraph()
            with torch.cuda.stream(stream):
                with torch.cuda.graph(single, stream=stream):
                    dist.all_reduce(data)
            torch.cuda.current_stream().wait_stream(stream)
            data.copy_(values(count, dtype, rank, 2).to(device))
            single.replay()
            torch.cuda.synchronize()
            failures += check(data, expected(count, dtype, world, 2), f"graph {nbytes} B")
            del single
        del graph
        rows.append((count * dtype.itemsize, eager_us, graph_us))
    if rank == 0:
        print(f"{'bytes':>10} {'eager_us':>9} {'graph_us':>9}   ({dtype}, {calls} back-to-back calls)")
        for nbytes, eager_us, graph_us in rows:
            print(f"{nbytes:>10} {eager_us:9.2f} {graph_us:9.2f}")
    return failures


def symmetric_memory_work(rank, world, device):
    """SymmetricMemory tensors next to the all-reduces: an all-reduce of their own, and a
    dist.all_reduce on a symmetric tensor."""
    import torch.distributed._symmetric_memory as symm_mem
    group_name = dist.group.WORLD.group_name
    count = 8192
    tensor = symm_mem.empty(count, dtype=torch.bfloat16, device=device)
    handle = symm_mem.rendezvous(tensor, group_name)
    failures = 0
    tensor.copy_(values(count, torch.bfloat16, rank, 3).to(device))
    handle.barrier()
    out = torch.ops.symm_mem.one_shot_all_reduce(tensor, "sum", group_name)
    failures += check(out, expected(count, torch.bfloat16, world, 3), "symm_mem one_shot_all_reduce")
    tensor.copy_(values(count, torch.bfloat16, rank, 4).to(device))
    dist.all_reduce(tensor)
    failures += check(tensor, expected(count, torch.bfloat16, world, 4), "all_reduce on a symmetric tensor")
    handle.barrier()
    return failures


def gpu_memory_in_use():
    """GPU memory this process holds on every GPU (NVML's per-process accounting: a context it
    made on a peer's GPU counts too); without NVML, the memory in use on its own GPU, which
    other processes' allocations there blur."""
    try:
        import pynvml
        pynvml.nvmlInit()
        mine = None
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            for process in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if process.pid == os.getpid() and process.usedGpuMemory is not None:
                    mine = (mine or 0) + process.usedGpuMemory
        if mine is not None:
            return mine
    except Exception:  # no NVML: fall back to the device-wide figure
        pass
    free, total = torch.cuda.mem_get_info()
    return total - free


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "lifecycle"
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    torch.cuda.set_device(local)
    device = torch.device("cuda", local)
    dist.init_process_group("nccl", device_id=device)
    failures = 0
    if mode == "lifecycle":
        failures += timed_sizes(rank, world, device, torch.bfloat16, 50, True)
        failures += symmetric_memory_work(rank, world, device)
        dist.barrier()
    elif mode == "groups":
        rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 50
        data = values(65536, torch.float32, rank, 5).to(device)
        dist.all_reduce(data)
        torch.cuda.synchronize()
        before = gpu_memory_in_use()
        for i in range(rounds):
            group = dist.new_group(list(range(world)))
            data.copy_(values(65536, torch.float32, rank, i).to(device))
            dist.all_reduce(data, group=group)
            failures += check(data, expected(65536, torch.float32, world, i), f"group {i}")
            dist.destroy_process_group(group)
        torch.cuda.synchronize()
        after = gpu_memory_in_use()
        grown = after - before
        print(f"rank {rank}: GPU memory in use {before >> 20} MiB before {rounds} groups, "
              f"{after >> 20} MiB after ({grown / 2**20:+.1f} MiB)", flush=True)
        # One leaked set of nvlar buffers is 64 MiB of staging or more: anything near that is
        # a leak, not allocator noise.
        if grown > (32 << 20):
            print(f"FAIL rank {rank}: {grown >> 20} MiB more GPU memory in use after "
                  f"{rounds} groups", flush=True)
            failures += 1
    elif mode == "stall":
        for dtype in (torch.bfloat16, torch.float32):
            timed_sizes(rank, world, device, dtype, 200, False)
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    dist.destroy_process_group()
    if failures == 0:
        print(f"rank {rank}: {mode} ok", flush=True)
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
