#!/usr/bin/env python3
"""scripts/tune --from-csv on synthetic measurements: the table it writes picks the fastest
path per size, merges neighbouring sizes, and parses cleanly with nvlar-table."""
import csv
import os
import subprocess
import sys
import tempfile

tune, nvlar_table = sys.argv[1], sys.argv[2]
FIELDS = ["device", "ngpus", "dtype", "op", "bytes", "count", "kernel", "ctas", "mode", "nvlar_us",
          "nccl_us", "ratio", "nvlar_algbw", "nvlar_busbw", "nccl_algbw", "nccl_busbw"]
SIZES = [8, 1024, 65536, 1 << 20, 16 << 20, 256 << 20]


def write(path, times):
    """times: {size: (nvlar_us, nccl_us)}"""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        for size, (nvlar_us, nccl_us) in times.items():
            for mode in ("eager", "graph"):
                writer.writerow({"device": "GPU", "ngpus": 8, "dtype": "bfloat16", "op": "sum",
                                 "bytes": size, "count": size // 2, "kernel": "x", "ctas": 8, "mode": mode,
                                 "nvlar_us": nvlar_us, "nccl_us": nccl_us, "ratio": 1,
                                 "nvlar_algbw": 0, "nvlar_busbw": 0, "nccl_algbw": 0,
                                 "nccl_busbw": 0})


with tempfile.TemporaryDirectory() as tmp:
    # One-shot beats two-shot up to 64 KiB, two-shot at 1 MiB and 16 MiB, NCCL at 256 MiB.
    write(os.path.join(tmp, "oneshot.csv"),
          {8: (3, 20), 1024: (3, 20), 65536: (5, 25), 1 << 20: (40, 50), 16 << 20: (400, 300), 256 << 20: (9000, 5000)})
    write(os.path.join(tmp, "twoshot.csv"),
          {8: (9, 20), 1024: (9, 20), 65536: (12, 25), 1 << 20: (20, 50), 16 << 20: (200, 300), 256 << 20: (6000, 5000)})
    # Push wins up to 1 KiB; its 1 MiB row is the one-shot in disguise (above its largest
    # message NVLAR_ALGO=push runs the one-shot) and must be ignored.
    write(os.path.join(tmp, "push.csv"),
          {8: (2, 20), 1024: (2, 20), 65536: (6, 25), 1 << 20: (1, 50)})
    # The push two-shot wins from 16 MiB, NCCL included.
    write(os.path.join(tmp, "pushtwoshot.csv"),
          {65536: (14, 25), 1 << 20: (25, 50), 16 << 20: (150, 300), 256 << 20: (4000, 5000)})
    # NCCL forced: ring/LL best small, tree/Simple best large.
    for algo in ("ring", "tree"):
        for proto in ("LL", "LL128", "Simple"):
            best_small = algo == "ring" and proto == "LL"
            best_large = algo == "tree" and proto == "Simple"
            write(os.path.join(tmp, f"nccl-{algo}-{proto}.csv"),
                  {s: (0, (10 if best_small else 30) if s <= 65536 else (100 if best_large else 300)) for s in SIZES})
    table = subprocess.run([tune, "--from-csv", tmp], capture_output=True, text=True, check=True).stdout
    rows = [line for line in table.splitlines() if line and not line.startswith("#")]
    expected = [
        "nvlar 0-1K 8 * push",
        "nvlar 1025-64K 8 * oneshot",
        "nvlar 65537-1M 8 * twoshot",
        "nvlar 1048577-inf 8 * pushtwoshot",
        "nccl allreduce 0-64K 8 1 ring ll",
        "nccl allreduce 65537-inf 8 1 tree simple",
    ]
    if rows != expected:
        print("unexpected table:\n" + table, file=sys.stderr)
        sys.exit(1)
    path = os.path.join(tmp, "table.txt")
    with open(path, "w") as f:
        f.write(table)
    checked = subprocess.run([nvlar_table, path], capture_output=True, text=True)
    if checked.returncode != 0:
        print(checked.stdout + checked.stderr, file=sys.stderr)
        sys.exit(1)
print("tune: table as expected, and nvlar-table accepts it")
