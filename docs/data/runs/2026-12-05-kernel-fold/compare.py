#!/usr/bin/env python3
"""The fold's timing verdict: for each emulated rank count, kernel and size, the median device
time of the kernels after the fold (new) against before (base), each run twice, beside the
spread between the two runs of the same build. usage: compare.py LOGDIR"""
import csv, glob, os, sys
from collections import defaultdict

times = defaultdict(list)  # (nranks, algo, bytes, tree) -> [time_us per run]
for path in sorted(glob.glob(os.path.join(sys.argv[1], "time-*-*-*.csv"))):
    _, n, tree, run = os.path.basename(path)[:-4].split("-")
    with open(path) as f:
        for row in csv.DictReader(f):
            if row.get("series", "size") == "size":
                times[(int(n), row["algo"], int(row["bytes"]), tree)].append(float(row["time_us"]))
print(f"{'ranks':>5} {'kernel':<12} {'bytes':>9} {'base us':>16} {'new us':>16} {'new/base':>8} {'runs spread':>11}")
worst = 0.0
for key in sorted({k[:3] for k in times}):
    base, new = times.get(key + ("base",), []), times.get(key + ("new",), [])
    if not base or not new:
        continue
    mb, mn = sum(base) / len(base), sum(new) / len(new)
    spread = max((max(v) - min(v)) / min(v) for v in (base, new))
    ratio = mn / mb
    beyond = abs(ratio - 1) > spread
    worst = max(worst, abs(ratio - 1) - spread) if beyond else worst
    print(f"{key[0]:>5} {key[1]:<12} {key[2]:>9} {' '.join(f'{t:7.2f}' for t in base):>16} "
          f"{' '.join(f'{t:7.2f}' for t in new):>16} {ratio:8.3f} {spread:10.1%}{'  *' if beyond else ''}")
print(f"* beyond the spread between runs of one build; the largest excess: {worst:.1%}")
