#!/usr/bin/env python3
"""Plots the latency path's figures from one device run (docs/data/runs/2026-11-30-2xh200/latency-2xh200/, run 25).

  plot_latency.py DATA_DIR OUT.png

Left: time per call in graphs (nvlar-bench's graph mode: device time per call of many calls in
one graph, one process per GPU, bf16; nccl-tests -G 10: host-timed launches of a graph of 100
iterations, float32), with the floors measured in the same run (latency_floor: an empty kernel,
and one flag exchange between the GPUs). Right: eager calls, host-timed (nvlar-bench --procs
eager, nccl-tests without graphs), with half of NCCL's time, the target.
Needs matplotlib."""
import csv
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def bench(path, mode):
    """{bytes: (nvlar_us, nccl_us)} of an nvlar-bench CSV's rows of one mode."""
    with open(path) as f:
        return {int(r["bytes"]): (float(r["nvlar_us"]), float(r["nccl_us"]))
                for r in csv.DictReader(f) if r["mode"] == mode}


def nccl_tests(path):
    """{bytes: out-of-place time in us} of an nccl-tests log."""
    points = {}
    with open(path) as f:
        for line in f:
            cols = line.split()
            if len(cols) >= 12 and cols[0].isdigit():
                points[int(cols[0])] = float(cols[5])
    return points


def floors(path):
    text = open(path).read()
    empty = float(re.search(r"floor empty-kernel graph [\d.]+ \| pdl ([\d.]+)", text).group(1))
    flag = float(re.search(r"floor flag-exchange graph [\d.]+ \| pdl ([\d.]+)", text).group(1))
    return empty, flag


def series(ax, points, label, style):
    xs = sorted(points)
    ax.plot(xs, [points[x] for x in xs], style, label=label, markersize=4)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    data, out = sys.argv[1], sys.argv[2]
    empty, flag = floors(os.path.join(data, "latency-floor.txt"))
    fig, (graph_ax, eager_ax) = plt.subplots(1, 2, figsize=(13, 5))

    procs_graph = bench(os.path.join(data, "bench-procs.csv"), "graph")
    series(graph_ax, {b: v[0] for b, v in procs_graph.items()}, "nvlar (nvlar-bench graph, bf16)", "o-")
    series(graph_ax, {b: v[1] for b, v in procs_graph.items()}, "NCCL (nvlar-bench graph, bf16)", "s-")
    series(graph_ax, nccl_tests(os.path.join(data, "nt-nvlar-G10.txt")), "nvlar (nccl-tests -G 10, f32)", "o--")
    series(graph_ax, nccl_tests(os.path.join(data, "nt-nccl-G10.txt")), "NCCL (nccl-tests -G 10, f32)", "s--")
    series(graph_ax, nccl_tests(os.path.join(data, "nt-ncclsym-G10.txt")),
           "NCCL, symmetric windows (nccl-tests -R 2 -G 10, f32)", "^--")
    graph_ax.axhline(flag, color="gray", linestyle=":", label=f"floor: one flag exchange ({flag:.2f} us)")
    graph_ax.axhline(empty, color="black", linestyle=":", label=f"floor: empty kernel ({empty:.2f} us)")
    targets = [(8, 8 << 10, 2.5), (64 << 10, 64 << 10, 3.5), (256 << 10, 256 << 10, 6), (1 << 20, 1 << 20, 10)]
    for lo, hi, us in targets:
        graph_ax.plot([lo, hi], [us, us], "r_" if lo == hi else "r-", markersize=14, linewidth=2)
    graph_ax.plot([], [], "r-", label="issue 15's targets")
    graph_ax.set_title("CUDA graphs: time per call, 2 x H200 (NV18), NVLS off")

    procs_eager = bench(os.path.join(data, "bench-procs.csv"), "eager")
    series(eager_ax, {b: v[0] for b, v in procs_eager.items()}, "nvlar (nvlar-bench --procs eager, bf16)", "o-")
    series(eager_ax, {b: v[1] for b, v in procs_eager.items()}, "NCCL (nvlar-bench --procs eager, bf16)", "s-")
    series(eager_ax, {b: v[1] / 2 for b, v in procs_eager.items()}, "half of NCCL's time (target up to 256 KiB)", "k:")
    series(eager_ax, nccl_tests(os.path.join(data, "nt-nvlar-G0.txt")), "nvlar (nccl-tests -g 2, f32)", "o--")
    series(eager_ax, nccl_tests(os.path.join(data, "nt-nccl-G0.txt")), "NCCL (nccl-tests -g 2, f32)", "s--")
    series(eager_ax, nccl_tests(os.path.join(data, "nt-ncclsym-G0.txt")), "NCCL, symmetric windows (-R 2)", "^--")
    eager_ax.set_title("Eager calls, host-timed")

    for ax in (graph_ax, eager_ax):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("bytes per rank")
        ax.set_ylabel("us per call")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"plot: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
