#!/usr/bin/env python3
"""PyTorch all-reduces through nvlar, checked against a CPU reference.

usage:
  LD_PRELOAD=build/libnvlar.so NVLAR_DEBUG=INFO \\
      torchrun --nproc-per-node N scripts/torch_allreduce.py            (PyTorch's NCCL)
  torchrun --nproc-per-node N scripts/torch_allreduce.py --vllm-style build/libnvlar.so

The first form runs torch.distributed.all_reduce over several sizes, dtypes and ops on the
"nccl" backend; with LD_PRELOAD the calls reach nvlar first. The second loads the library by
path through ctypes, as vLLM does with VLLM_NCCL_SO_PATH, and drives its ncclAllReduce directly
on torch tensors (ranks exchange the NCCL unique id over a gloo group). Each rank checks every
result exactly against a reference computed on the CPU and prints one summary line; with
NVLAR_DEBUG=INFO, nvlar prints its setup outcome and, when the communicator is destroyed, how
many all-reduces took each path. Exit status 0 when every check passed.
"""
import argparse
import ctypes
import os
import sys

import torch
import torch.distributed as dist

SIZES = [1, 7, 1000, 65536, (1 << 20) + 3, 4 << 20]
DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64, torch.int32, torch.int64,
          torch.int8, torch.uint8]


def inputs(count, dtype, rank, op):
    """Small integers, so that sums and products are exact in every dtype."""
    base = torch.arange(count, dtype=torch.int64)
    if op == "prod":
        values = torch.where((base + rank) % 3 == 0, -1, 1)
    else:
        values = (base * 7 + rank * 3) % 5 - 2
    if dtype == torch.uint8:
        values = values.abs()
    return values.to(dtype)


def reference(count, dtype, world, op):
    parts = [inputs(count, dtype, r, op).to(torch.float64 if dtype.is_floating_point else torch.int64)
             for r in range(world)]
    result = parts[0].clone()
    for part in parts[1:]:
        if op in ("sum", "avg"):
            result += part
        elif op == "prod":
            result *= part
        elif op == "max":
            result = torch.maximum(result, part)
        else:
            result = torch.minimum(result, part)
    if op == "avg":
        result = result / world
    return result.to(dtype)


def ops_for(dtype):
    ops = ["sum", "prod", "max", "min"]
    if dtype.is_floating_point:
        ops.append("avg")
    return ops


def check(got, want, what):
    if torch.equal(got.cpu(), want):
        return 0
    bad = (got.cpu() != want).nonzero()
    index = bad[0].item()
    print(f"FAIL {what}: {len(bad)} wrong, e.g. [{index}] = {got.cpu()[index].item()}, "
          f"want {want[index].item()}", flush=True)
    return 1


def run_torch(rank, world, device):
    reduce_ops = {"sum": dist.ReduceOp.SUM, "prod": dist.ReduceOp.PRODUCT, "max": dist.ReduceOp.MAX,
                  "min": dist.ReduceOp.MIN, "avg": dist.ReduceOp.AVG}
    checks = failures = 0
    for dtype in DTYPES:
        for op in ops_for(dtype):
            for count in SIZES:
                if op == "avg" and world & (world - 1):
                    continue  # avg is exact only for power-of-two rank counts
                tensor = inputs(count, dtype, rank, op).to(device)
                dist.all_reduce(tensor, op=reduce_ops[op])
                failures += check(tensor, reference(count, dtype, world, op), f"{dtype} {op} {count}")
                checks += 1
    # Captured into a CUDA graph and replayed.
    static = inputs(4096, torch.float32, rank, "sum").to(device)
    graph = torch.cuda.CUDAGraph()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        dist.all_reduce(static)  # warm-up outside the capture, as PyTorch requires
        torch.cuda.synchronize()
        static.copy_(inputs(4096, torch.float32, rank, "sum").to(device))
        with torch.cuda.graph(graph, stream=stream):
            dist.all_reduce(static)
    for _ in range(3):
        static.copy_(inputs(4096, torch.float32, rank, "sum").to(device))
        graph.replay()
        torch.cuda.synchronize()
        failures += check(static, reference(4096, torch.float32, world, "sum"), "graph replay")
        checks += 1
    return checks, failures


class UniqueId(ctypes.Structure):
    """ncclUniqueId: 128 bytes, passed to ncclCommInitRank by value."""
    _fields_ = [("internal", ctypes.c_byte * 128)]


NCCL_TYPES = {torch.int8: 0, torch.uint8: 1, torch.int32: 2, torch.int64: 4, torch.float16: 6,
              torch.float32: 7, torch.float64: 8, torch.bfloat16: 9}
NCCL_OPS = {"sum": 0, "prod": 1, "max": 2, "min": 3, "avg": 4}


def run_vllm_style(rank, world, device, library):
    nccl = ctypes.CDLL(library)  # RTLD_LOCAL, by path, as vLLM's loader does
    for name in ("ncclGetVersion", "ncclGetUniqueId", "ncclCommInitRank", "ncclAllReduce",
                 "ncclCommDestroy"):
        getattr(nccl, name).restype = ctypes.c_int
    version = ctypes.c_int()
    assert nccl.ncclGetVersion(ctypes.byref(version)) == 0
    unique_id = UniqueId()
    if rank == 0:
        assert nccl.ncclGetUniqueId(ctypes.byref(unique_id)) == 0
    shared = torch.tensor(list(bytes(unique_id)), dtype=torch.uint8)
    dist.broadcast(shared, src=0)  # over the gloo group
    ctypes.memmove(ctypes.byref(unique_id), bytes(shared.tolist()), 128)
    comm = ctypes.c_void_p()
    result = nccl.ncclCommInitRank(ctypes.byref(comm), world, unique_id, rank)
    assert result == 0, f"ncclCommInitRank: {result}"
    checks = failures = 0
    stream = torch.cuda.current_stream().cuda_stream
    for dtype in DTYPES:
        for op in ops_for(dtype):
            if op == "avg" and world & (world - 1):
                continue
            for count in SIZES:
                tensor = inputs(count, dtype, rank, op).to(device)
                result = nccl.ncclAllReduce(ctypes.c_void_p(tensor.data_ptr()),
                                            ctypes.c_void_p(tensor.data_ptr()),
                                            ctypes.c_size_t(count), NCCL_TYPES[dtype],
                                            NCCL_OPS[op], comm, ctypes.c_void_p(stream))
                assert result == 0, f"ncclAllReduce: {result}"
                torch.cuda.synchronize()
                failures += check(tensor, reference(count, dtype, world, op), f"{dtype} {op} {count}")
                checks += 1
    assert nccl.ncclCommDestroy(comm) == 0
    return checks, failures, version.value


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vllm-style", metavar="LIBRARY",
                        help="load this libnvlar.so (or libnccl.so.2) by path through ctypes")
    args = parser.parse_args()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    torch.cuda.set_device(local)
    device = torch.device("cuda", local)
    if args.vllm_style:
        dist.init_process_group("gloo")
        checks, failures, version = run_vllm_style(rank, world, device, args.vllm_style)
        label = f"vllm-style ({os.path.basename(args.vllm_style)}, NCCL version code {version})"
    else:
        dist.init_process_group("nccl", device_id=device)
        checks, failures = run_torch(rank, world, device)
        label = "torch.distributed"
    print(f"rank {rank}/{world}: {label}: {checks - failures} of {checks} checks passed", flush=True)
    dist.destroy_process_group()
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
