#!/usr/bin/env python3
"""PyTorch all-reduces through nvlar, checked against a CPU reference.

usage:
  LD_PRELOAD=build/libnvlar.so NVLAR_DEBUG=INFO \\
      torchrun --nproc-per-node N scripts/torch_allreduce.py            (PyTorch's NCCL)
  torchrun --nproc-per-node N scripts/torch_allreduce.py --vllm-style build/libnvlar.so

The first form runs torch.distributed.all_reduce over several sizes, dtypes and ops on the
"nccl" backend; with LD_PRELOAD the calls reach nvlar first. The second loads the library by
path through ctypes, as vLLM's pynccl wrapper does with VLLM_NCCL_SO_PATH (binding every
function that wrapper binds), and drives it as vLLM does: ncclGetUniqueId on rank 0, the id sent
to the other ranks over a gloo group, ncclCommInitRank, ncclAllReduce on torch tensors' data
pointers on the current torch stream (out of place and in place, every size, dtype and op), a
few of those calls captured in one CUDA graph (torch.cuda.graph) and replayed several times with
the inputs changed in place before each replay, then ncclCommDestroy. Each rank checks every
result exactly against a reference computed on the CPU and prints one summary line (the second
form first prints how many ncclAllReduce calls it made); with NVLAR_DEBUG=INFO, nvlar prints
its setup outcome and, when the communicator is destroyed, how many all-reduces took each path.
Exit status 0 when every check passed.
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


def inputs(count, dtype, rank, op, salt=0):
    """Small integers, so that sums and products are exact in every dtype. Another salt gives
    other values: new inputs for each replay of a graph."""
    base = torch.arange(count, dtype=torch.int64)
    if op == "prod":
        values = torch.where((base + rank + salt) % 3 == 0, -1, 1)
    else:
        values = (base * 7 + rank * 3 + salt) % 5 - 2
    if dtype == torch.uint8:
        values = values.abs()
    return values.to(dtype)


def reference(count, dtype, world, op, salt=0):
    wide = torch.float64 if dtype.is_floating_point else torch.int64
    parts = [inputs(count, dtype, r, op, salt).to(wide) for r in range(world)]
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


# One more size: just above the push one-shot's 256 KiB in 1-byte types (with 2 ranks on sm_90,
# the push two-shot's first size), an odd count with a ragged tail.
VLLM_SIZES = sorted(SIZES + [(256 << 10) + 1])

# Captured in one CUDA graph: (dtype, op, count, in place). 4 bytes to 16 MiB, so that every
# kernel the built-in table gives 2 ranks runs in the graph (on sm_90 the push one-shot up to
# 256 KiB, the push two-shot above); sum and max, in place and out of place, odd counts.
GRAPH_CASES = [
    (torch.float32, "sum", 1, True),
    (torch.bfloat16, "max", 7, False),
    (torch.float16, "sum", 1000, False),
    (torch.int32, "max", 65536, True),
    (torch.bfloat16, "sum", (1 << 20) + 3, False),
    (torch.float32, "max", (1 << 20) + 3, True),
    (torch.int32, "sum", 4 << 20, True),
]
GRAPH_REPLAYS = 4

# Written into every output buffer before the call that must fill it, so that a call that wrote
# nothing cannot pass on what an earlier call left there. No result is 99: each rank's values
# are at most 2 in magnitude, so sums stay below 99 up to 49 ranks. 99 is exact in every dtype
# here, int8 and uint8 included.
POISON = 99

# What vLLM's pynccl wrapper (vllm/distributed/device_communicators/pynccl_wrapper.py) binds
# when it loads the library, with its argument types: it looks every name up at load and so
# refuses a library that lacks one. The list has grown over vLLM's versions; these are the
# calls it has bound for its collectives, send/recv and groups.
_int, _size, _pointer = ctypes.c_int, ctypes.c_size_t, ctypes.c_void_p
VLLM_BINDINGS = {
    "ncclGetErrorString": (ctypes.c_char_p, [_int]),
    "ncclGetVersion": (_int, [ctypes.POINTER(_int)]),
    "ncclGetUniqueId": (_int, [ctypes.POINTER(UniqueId)]),
    "ncclCommInitRank": (_int, [ctypes.POINTER(_pointer), _int, UniqueId, _int]),
    "ncclAllReduce": (_int, [_pointer, _pointer, _size, _int, _int, _pointer, _pointer]),
    "ncclAllGather": (_int, [_pointer, _pointer, _size, _int, _pointer, _pointer]),
    "ncclReduceScatter": (_int, [_pointer, _pointer, _size, _int, _int, _pointer, _pointer]),
    "ncclBroadcast": (_int, [_pointer, _pointer, _size, _int, _int, _pointer, _pointer]),
    "ncclSend": (_int, [_pointer, _size, _int, _int, _pointer, _pointer]),
    "ncclRecv": (_int, [_pointer, _size, _int, _int, _pointer, _pointer]),
    "ncclGroupStart": (_int, []),
    "ncclGroupEnd": (_int, []),
    "ncclCommDestroy": (_int, [_pointer]),
}


class VllmStyleNccl:
    """The library loaded by path and called the way vLLM's pynccl wrapper does."""

    def __init__(self, library):
        self.library = ctypes.CDLL(library)  # RTLD_LOCAL, by path, as vLLM's loader does
        self.functions = {}
        for name, (restype, argtypes) in VLLM_BINDINGS.items():
            function = getattr(self.library, name)  # AttributeError names a missing export
            function.restype, function.argtypes = restype, argtypes
            self.functions[name] = function
        self.all_reduce_calls = 0

    def call(self, name, *args):
        result = self.functions[name](*args)
        if result != 0:
            text = self.functions["ncclGetErrorString"](result).decode(errors="replace")
            raise RuntimeError(f"{name}: NCCL error {result}: {text}")

    def all_reduce(self, comm, send, recv, op):
        """vLLM's all_reduce: data pointers, on torch's current stream (the capture stream
        inside torch.cuda.graph)."""
        self.call("ncclAllReduce", send.data_ptr(), recv.data_ptr(), send.numel(),
                  NCCL_TYPES[send.dtype], NCCL_OPS[op], comm,
                  torch.cuda.current_stream().cuda_stream)
        self.all_reduce_calls += 1


def eager_all_reduces(nccl, comm, rank, world, device):
    """Every dtype, op and size, out of place (vLLM's default) and in place, each result
    waited for and checked."""
    checks = failures = 0
    for dtype in DTYPES:
        for op in ops_for(dtype):
            if op == "avg" and world & (world - 1):
                continue  # avg is exact only for power-of-two rank counts
            for count in VLLM_SIZES:
                what = f"{dtype} {op} {count}"
                mine = inputs(count, dtype, rank, op)
                want = reference(count, dtype, world, op)
                send = mine.to(device)
                recv = torch.full_like(send, POISON)
                nccl.all_reduce(comm, send, recv, op)
                torch.cuda.synchronize()
                failures += check(recv, want, f"{what} out of place")
                failures += check(send, mine, f"{what} out of place: the input changed")
                nccl.all_reduce(comm, send, send, op)
                torch.cuda.synchronize()
                failures += check(send, want, f"{what} in place")
                checks += 3
    return checks, failures


def graph_all_reduces(nccl, comm, rank, world, device):
    """GRAPH_CASES captured in one CUDA graph, as vLLM captures its decode steps, then replayed
    GRAPH_REPLAYS times, each time with new inputs written in place into the tensors the graph
    reads (and the outputs poisoned), every result checked."""
    sends = [inputs(count, dtype, rank, op).to(device) for dtype, op, count, _ in GRAPH_CASES]
    graph = torch.cuda.CUDAGraph()
    capture_stream = torch.cuda.Stream()  # vLLM captures on a stream of its own
    torch.cuda.synchronize()
    with torch.cuda.graph(graph, stream=capture_stream):
        recvs = []
        for (dtype, op, count, in_place), send in zip(GRAPH_CASES, sends):
            recv = send if in_place else torch.empty_like(send)  # from the graph's pool, as in vLLM
            nccl.all_reduce(comm, send, recv, op)
            recvs.append(recv)
    checks = failures = 0
    for replay in range(1, GRAPH_REPLAYS + 1):
        for (dtype, op, count, in_place), send, recv in zip(GRAPH_CASES, sends, recvs):
            send.copy_(inputs(count, dtype, rank, op, salt=replay))
            if not in_place:
                recv.fill_(POISON)
        graph.replay()
        torch.cuda.synchronize()
        for (dtype, op, count, in_place), recv in zip(GRAPH_CASES, recvs):
            placement = "in place" if in_place else "out of place"
            failures += check(recv, reference(count, dtype, world, op, salt=replay),
                              f"graph replay {replay}: {dtype} {op} {count} {placement}")
            checks += 1
    # The graph goes before the communicator: its kernels use the communicator's buffers.
    del graph, recvs
    torch.cuda.synchronize()
    return checks, failures


def run_vllm_style(rank, world, device, library):
    nccl = VllmStyleNccl(library)
    version = ctypes.c_int()
    nccl.call("ncclGetVersion", ctypes.byref(version))
    unique_id = UniqueId()
    if rank == 0:
        nccl.call("ncclGetUniqueId", ctypes.byref(unique_id))
    shared = torch.tensor(list(bytes(unique_id)), dtype=torch.uint8)
    dist.broadcast(shared, src=0)  # over the gloo group, as vLLM sends it over its CPU group
    ctypes.memmove(ctypes.byref(unique_id), bytes(shared.tolist()), 128)
    comm = ctypes.c_void_p()
    with torch.cuda.device(device):
        nccl.call("ncclCommInitRank", ctypes.byref(comm), world, unique_id, rank)
    checks, failures = eager_all_reduces(nccl, comm, rank, world, device)
    graph_checks, graph_failures = graph_all_reduces(nccl, comm, rank, world, device)
    nccl.call("ncclCommDestroy", comm)
    # Read by test/multigpu/test_vllm_loader.py, which compares it with nvlar's own count.
    print(f"rank {rank}/{world}: vllm-style: {nccl.all_reduce_calls} ncclAllReduce calls, "
          f"{len(GRAPH_CASES)} of them captured in a CUDA graph replayed {GRAPH_REPLAYS} times",
          flush=True)
    return checks + graph_checks, failures + graph_failures, version.value


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
