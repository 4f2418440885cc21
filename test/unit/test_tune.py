#!/usr/bin/env python3
"""scripts/tune --from-csv on synthetic measurements: the table it writes picks the fastest
path per size, merges neighbouring sizes, and parses cleanly with nvlar-table. With a stand-in
nvlar-bench it measures every algorithm that `nvlar-table --algorithms` lists, and no other."""
import csv
import os
import subprocess
import sys
import tempfile

tune, nvlar_table = sys.argv[1], sys.argv[2]
# tune finds nvlar-table next to nvlar-bench by default; the stand-ins below are elsewhere.
TABLE = ["--nvlar-table", nvlar_table]
ALGORITHMS = [line.split("\t")[0] for line in subprocess.run(
    [nvlar_table, "--algorithms"], capture_output=True, text=True, check=True).stdout.splitlines()[1:]]
if "oneshot" not in ALGORITHMS:
    print(f"{nvlar_table} --algorithms lists no one-shot: {ALGORITHMS}", file=sys.stderr)
    sys.exit(1)
FIELDS = ["device", "ngpus", "dtype", "op", "bytes", "count", "kernel", "ctas", "mode", "nvlar_us",
          "nccl_us", "ratio", "nvlar_algbw", "nvlar_busbw", "nccl_algbw", "nccl_busbw"]
SIZES = [8, 1024, 65536, 1 << 20, 16 << 20, 256 << 20]


def write(path, times, ctas=8):
    """times: {size: (nvlar_us, nccl_us[, kernel])}; the kernel column (what routing ran) is
    the file's algorithm unless the size says another (ctas-<kernel>-N.csv: <kernel>;
    nccl-*.csv: nccl)."""
    name = os.path.basename(path)[:-4]
    if name.startswith("budget"):  # budget<B>-<name>: measured under NCCL_MAX_CTAS=B
        name = name.split("-", 1)[1]
    own = "nccl" if name.startswith("nccl-") else name.split("-")[1] if name.startswith("ctas-") else name
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        for size, (nvlar_us, nccl_us, *kernel) in times.items():
            for mode in ("eager", "graph"):
                writer.writerow({"device": "GPU", "ngpus": 8, "dtype": "bfloat16", "op": "sum",
                                 "bytes": size, "count": size // 2, "kernel": kernel[0] if kernel else own,
                                 "ctas": ctas, "mode": mode,
                                 "nvlar_us": nvlar_us, "nccl_us": nccl_us, "ratio": 1,
                                 "nvlar_algbw": 0, "nvlar_busbw": 0, "nccl_algbw": 0,
                                 "nccl_busbw": 0})


with tempfile.TemporaryDirectory() as tmp:
    # One-shot beats two-shot up to 64 KiB, two-shot at 1 MiB and 16 MiB, NCCL at 256 MiB.
    write(os.path.join(tmp, "oneshot.csv"),
          {8: (3, 20), 1024: (3, 20), 65536: (5, 25), 1 << 20: (40, 50), 16 << 20: (400, 300), 256 << 20: (9000, 5000)})
    write(os.path.join(tmp, "twoshot.csv"),
          {8: (9, 20), 1024: (9, 20), 65536: (12, 25), 1 << 20: (20, 50), 16 << 20: (200, 300), 256 << 20: (6000, 5000)})
    # Push wins up to 1 KiB; its 16 MiB row is the one-shot in disguise (above its largest
    # message, 1 MiB, NVLAR_ALGO=push runs the one-shot, and the kernel column says so) and
    # must be ignored.
    write(os.path.join(tmp, "push.csv"),
          {8: (2, 20), 1024: (2, 20), 65536: (6, 25), 1 << 20: (60, 50), 16 << 20: (1, 300, "oneshot")})
    # The TMA two-shot on a GPU below sm_90: the two-shot ran in its place at every size, so
    # its fast times count for nothing.
    write(os.path.join(tmp, "tma.csv"), {s: (1, 300, "twoshot") for s in SIZES})
    # The copy-engine two-shot ran (no faster than the push two-shot) at 16 MiB; nvlar was not
    # set up at 256 MiB (kernel nccl), where its time is NCCL's own and must not count.
    write(os.path.join(tmp, "cetwoshot.csv"), {16 << 20: (160, 300), 256 << 20: (1, 5000, "nccl")})
    # The push two-shot wins from 16 MiB, NCCL included.
    write(os.path.join(tmp, "pushtwoshot.csv"),
          {65536: (14, 25), 1 << 20: (25, 50), 16 << 20: (150, 300), 256 << 20: (4000, 5000)})
    # CTA runs of the push two-shot: 64 CTAs 10% faster at 16 MiB (a ctas=64 row); at 256 MiB
    # 7.5% faster, but NCCL's time in the 128-CTA run differs by 8.7% from the others', so that
    # is noise (no ctas); 128 CTAs slower.
    write(os.path.join(tmp, "ctas-pushtwoshot-64.csv"),
          {16 << 20: (135, 300), 256 << 20: (3700, 5000)}, ctas=64)
    write(os.path.join(tmp, "ctas-pushtwoshot-128.csv"),
          {16 << 20: (140, 300), 256 << 20: (4100, 4600)}, ctas=128)
    # NCCL forced: ring/LL best small, tree/Simple best large.
    for algo in ("ring", "tree"):
        for proto in ("LL", "LL128", "Simple"):
            best_small = algo == "ring" and proto == "LL"
            best_large = algo == "tree" and proto == "Simple"
            write(os.path.join(tmp, f"nccl-{algo}-{proto}.csv"),
                  {s: (0, (10 if best_small else 30) if s <= 65536 else (100 if best_large else 300)) for s in SIZES})
    # Under NCCL_MAX_CTAS=8 (--budgets 8,16): push still wins up to 1 KiB, and above it no
    # kernel beats NCCL within 8 CTAs, so those sizes go to NCCL. Within 16 CTAs the
    # copy-engine two-shot wins from 16 MiB and is 20% faster still on 8 CTAs at 256 MiB; its
    # 32-CTA run (above the limit) does not exist. The runs without a limit decide as before.
    write(os.path.join(tmp, "budget8-push.csv"), {8: (2, 20), 1024: (2, 20), 65536: (30, 25)}, ctas=8)
    write(os.path.join(tmp, "budget8-pushtwoshot.csv"),
          {65536: (40, 25), 16 << 20: (400, 300), 256 << 20: (9000, 5000)}, ctas=8)
    write(os.path.join(tmp, "budget16-push.csv"), {8: (2, 20)}, ctas=8)
    write(os.path.join(tmp, "budget16-pushtwoshot.csv"), {16 << 20: (320, 300), 256 << 20: (6000, 5000)}, ctas=16)
    write(os.path.join(tmp, "budget16-cetwoshot.csv"), {16 << 20: (200, 300), 256 << 20: (3000, 5000)}, ctas=16)
    write(os.path.join(tmp, "budget16-ctas-cetwoshot-8.csv"), {16 << 20: (205, 300), 256 << 20: (2400, 5000)}, ctas=8)
    table = subprocess.run([tune, "--from-csv", tmp, *TABLE], capture_output=True, text=True,
                           check=True).stdout
    rows = [line for line in table.splitlines() if line and not line.startswith("#")]
    expected = [
        "nvlar 0-1K 8 * push budget=1-8",
        "nvlar 1025-inf 8 * nccl budget=1-8",
        "nvlar 0-8 8 * push budget=9-16",
        "nvlar 9-16M 8 * cetwoshot budget=9-16",
        "nvlar 16777217-inf 8 * cetwoshot ctas=8 budget=9-16",
        "nvlar 0-1K 8 * push",
        "nvlar 1025-64K 8 * oneshot",
        "nvlar 65537-1M 8 * twoshot",
        "nvlar 1048577-16M 8 * pushtwoshot ctas=64",
        "nvlar 16777217-inf 8 * pushtwoshot",
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

# A kernel faster by less than the noise (here the 2% floor: NCCL's times agree) does not take
# one size from its neighbours' choice; faster by more, it does.
with tempfile.TemporaryDirectory() as tmp:
    write(os.path.join(tmp, "push.csv"), {8: (5.0, 20), 1024: (5.0, 20), 65536: (5.0, 20)})
    write(os.path.join(tmp, "oneshot.csv"), {8: (5.2, 20), 1024: (4.95, 20), 65536: (4.5, 20)})
    table = subprocess.run([tune, "--from-csv", tmp, *TABLE], capture_output=True, text=True,
                           check=True).stdout
    rows = [line for line in table.splitlines() if line and not line.startswith("#")]
    if rows != ["nvlar 0-1K 8 * push", "nvlar 1025-inf 8 * oneshot"]:
        print("unexpected table (noise margin between kernels):\n" + table, file=sys.stderr)
        sys.exit(1)

# --nccl-tests --nccl-only with stand-ins for nccl-tests' programs: NCCL's default runs differ by
# 3% from each other at every size (the noise); ring/LL128 with 16 channels is 30% faster than
# the default from 1 MiB on (a row), tree/Simple 2% faster everywhere (within the noise: no
# row); tree is refused for all-gather (the run fails); broadcast reports a wrong result for
# ring/LL (never chosen) and is 40% faster with it at 8 bytes. All-gather with ring/Simple and
# 16 channels looks 10% faster at 1 KiB when forced, but through the plugin it is 20% slower
# (the check runs refute it: no row). Sizes of all-gather rows are NCCL's (one rank's share:
# nccl-tests prints the whole buffer). With NCCL_TUNER_PLUGIN the stand-in applies the table's
# row for the size as NCCL would.
FAKE_NCCL_TESTS = r'''#!/usr/bin/env python3
import os, sys
program = os.path.basename(sys.argv[0])
algo, proto = os.environ.get("NCCL_ALGO", ""), os.environ.get("NCCL_PROTO", "")
channels = os.environ.get("NCCL_MAX_NCHANNELS", "")
plugin = bool(os.environ.get("NCCL_TUNER_PLUGIN"))
collective = {"all_reduce_perf": "allreduce", "all_gather_perf": "allgather",
              "broadcast_perf": "broadcast"}[program]
def size_of(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
def row_for(size):
    nbytes = size // 2 if collective == "allgather" else size
    for line in open(os.environ["NVLAR_TUNING_FILE"]):
        f = line.split()
        if len(f) >= 7 and f[0] == "nccl" and f[1] == collective:
            low, high = f[2].split("-")
            if size_of(low) <= nbytes and (high == "inf" or nbytes <= size_of(high)):
                ch = [x.split("=")[1] for x in f[7:] if x.startswith("channels=")]
                return f[5], {"ll": "LL", "ll128": "LL128", "simple": "Simple"}[f[6]], ch[0] if ch else ""
    return "", "", ""
if program == "all_gather_perf" and algo == "tree":
    sys.exit(1)
state = os.path.join(os.path.dirname(sys.argv[0]), "runs-" + program)
runs = int(open(state).read()) if os.path.exists(state) else 0
open(state, "w").write(str(runs + 1))
print("# nThread 1 nGpus 2 minBytes 8 maxBytes 4194304 step: 2(factor) warmup iters: 5 iters: 20")
for size in (8, 1 << 10, 1 << 20, 4 << 20):
    a, p, c = row_for(size) if plugin else (algo, proto, channels)
    t = 100.0 if size < (1 << 20) else 1000.0
    wrong = 0
    if not a:
        t *= 1.03 if runs % 2 else 1.0
    elif a == "ring" and p == "LL128" and c == "16" and size >= (1 << 20):
        t *= 0.7
    elif a == "tree" and p == "Simple":
        t *= 0.98
    elif program == "broadcast_perf" and a == "ring" and p == "LL":
        t, wrong = t * 0.6, 1
    elif program == "all_gather_perf" and a == "ring" and p == "Simple" and c == "16" and size == 1024:
        t *= 1.2 if plugin else 0.9
    else:
        t *= 1.5
    print(f"{size:12d} {size // 4:13d}     float     sum      -1 {t:8.2f}    0.00    0.00 {wrong:6d} {t:8.2f}    0.00    0.00      0")
'''
with tempfile.TemporaryDirectory() as tmp:
    programs = os.path.join(tmp, "nccl-tests")
    os.makedirs(programs)
    for program in ("all_reduce_perf", "all_gather_perf", "broadcast_perf"):
        path = os.path.join(programs, program)
        with open(path, "w") as f:
            f.write(FAKE_NCCL_TESTS)
        os.chmod(path, 0o755)
    result = subprocess.run([tune, "--nccl-tests", programs, "--nccl-only", "--channels", "0,16",
                             "--gpus", "2", "--tuner-plugin", "libnccl-tuner-nvlar.so", "--min-bytes", "8", "--max-bytes", "4M",
                             "--workdir", os.path.join(tmp, "w")], capture_output=True, text=True)
    rows = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    expected = [
        "nccl allreduce 1025-inf 2 1 ring ll128 channels=16",
        "nccl allgather 513-inf 2 1 ring ll128 channels=16",
        "nccl broadcast 1025-inf 2 1 ring ll128 channels=16",
    ]
    if result.returncode != 0 or rows != expected:
        print("unexpected --nccl-tests table:\n" + result.stdout + result.stderr, file=sys.stderr)
        sys.exit(1)
    # Without the check runs the refuted all-gather candidate would have become a row.
    unchecked = subprocess.run([tune, "--nccl-tests", programs, "--nccl-only", "--channels", "0,16",
                                "--gpus", "2", "--no-check", "--min-bytes", "8", "--max-bytes", "4M",
                                "--workdir", os.path.join(tmp, "unchecked")], capture_output=True,
                               text=True)
    if "nccl allgather 5-512 2 1 ring simple channels=16" not in unchecked.stdout.splitlines():
        print("--no-check table:\n" + unchecked.stdout + unchecked.stderr, file=sys.stderr)
        sys.exit(1)
    # The same table again from the files it kept, and nvlar-table accepts it.
    again = subprocess.run([tune, "--from-csv", os.path.join(tmp, "w"), *TABLE],
                           capture_output=True, text=True)
    if again.returncode != 0 or [l for l in again.stdout.splitlines() if l and not l.startswith("#")] != expected:
        print("--from-csv of nccl-tests outputs:\n" + again.stdout + again.stderr, file=sys.stderr)
        sys.exit(1)
    path = os.path.join(tmp, "nccl-table.txt")
    with open(path, "w") as f:
        f.write(result.stdout)
    checked = subprocess.run([nvlar_table, path], capture_output=True, text=True)
    if checked.returncode != 0:
        print(checked.stdout + checked.stderr, file=sys.stderr)
        sys.exit(1)

# --kernels-only with a stand-in nvlar-bench: push wins 1K-64K, the push two-shot 256K-1M, and
# the push two-shot is 25% faster with 16 CTAs; tune must time every algorithm of nvlar-table
# --algorithms at its default CTAs, CTA counts of each winner over the sizes it won only, run
# no NCCL-forced configuration, and write the ctas=16 row.
FAKE_BENCH = r'''#!/usr/bin/env python3
import csv, os, sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
algo, ctas = os.environ["NVLAR_ALGO"], os.environ.get("NVLAR_CTAS", "")
with open(os.path.join(os.path.dirname(sys.argv[0]), "invocations"), "a") as log:
    log.write(f"{algo} {ctas or '-'} {args['--min-bytes']} {args['--max-bytes']} {args['--step']}"
              f" {os.environ.get('NCCL_MAX_CTAS', '-')}\n")
low, high, step = int(args["--min-bytes"]), int(args["--max-bytes"]), int(args["--step"])
limited = "NCCL_MAX_CTAS" in os.environ
with open(args["--csv"], "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["device", "ngpus", "dtype", "op", "bytes", "count", "kernel", "ctas", "mode",
                "nvlar_us", "nccl_us"])
    size = low
    while size <= high:
        if limited:  # within the limit only push, and only up to 64 KiB, beats NCCL
            t = 5.0 if algo == "push" and size <= 65536 else 40.0
        elif algo == "push":
            t = 5.0 if size <= 65536 else 20.0
        elif algo == "pushtwoshot":
            t = 10.0 if size <= 65536 else (6.0 if ctas == "16" else 8.0)
        else:
            t = 20.0
        for mode in ("eager", "graph"):
            w.writerow(["GPU", 2, "bfloat16", "sum", size, size // 2, algo, ctas or 8, mode, t, 30.0])
        size *= step
'''
with tempfile.TemporaryDirectory() as tmp:
    bench = os.path.join(tmp, "nvlar-bench")
    with open(bench, "w") as f:
        f.write(FAKE_BENCH)
    os.chmod(bench, 0o755)
    result = subprocess.run([tune, "--bench", bench, *TABLE, "--kernels-only", "--min-bytes", "1024",
                             "--max-bytes", "1048576", "--step", "4", "--ctas", "4,16",
                             "--workdir", os.path.join(tmp, "w")], capture_output=True, text=True)
    rows = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    expected = ["nvlar 0-64K 2 * push", "nvlar 65537-inf 2 * pushtwoshot ctas=16"]
    with open(os.path.join(tmp, "invocations")) as f:
        runs = sorted(f.read().splitlines())
    expected_runs = sorted([f"{name} - 1024 1048576 4 -" for name in ALGORITHMS] +
                           ["push 4 1024 65536 4 -", "push 16 1024 65536 4 -",
                            "pushtwoshot 4 262144 1048576 4 -", "pushtwoshot 16 262144 1048576 4 -"])
    if result.returncode != 0 or rows != expected or runs != expected_runs:
        print("--kernels-only:\n" + result.stdout + result.stderr + "\nruns:\n" + "\n".join(runs),
              file=sys.stderr)
        sys.exit(1)
    # --budgets 8: every algorithm again under NCCL_MAX_CTAS=8, CTA runs of the winner there
    # (push) only with counts within the limit (4, not 16), and budget=1-8 rows first.
    os.remove(os.path.join(tmp, "invocations"))
    result = subprocess.run([tune, "--bench", bench, *TABLE, "--kernels-only", "--min-bytes", "1024",
                             "--max-bytes", "1048576", "--step", "4", "--ctas", "4,16",
                             "--budgets", "8", "--workdir", os.path.join(tmp, "b")],
                            capture_output=True, text=True)
    rows = [line for line in result.stdout.splitlines() if line and not line.startswith("#")]
    with open(os.path.join(tmp, "invocations")) as f:
        runs = sorted(f.read().splitlines())
    expected_runs = sorted(expected_runs + [f"{name} - 1024 1048576 4 8" for name in ALGORITHMS] +
                           ["push 4 1024 65536 4 8"])
    if result.returncode != 0 or runs != expected_runs or rows != [
            "nvlar 0-64K 2 * push budget=1-8", "nvlar 65537-inf 2 * nccl budget=1-8"] + expected:
        print("--budgets 8:\n" + result.stdout + result.stderr + "\nruns:\n" + "\n".join(runs),
              file=sys.stderr)
        sys.exit(1)
    path = os.path.join(tmp, "budget-table.txt")
    with open(path, "w") as f:
        f.write(result.stdout)
    checked = subprocess.run([nvlar_table, path], capture_output=True, text=True)
    if checked.returncode != 0 or "budget=1-8" not in checked.stdout:
        print(checked.stdout + checked.stderr, file=sys.stderr)
        sys.exit(1)
    for bad in ("0", "65", "8,x"):
        refused = subprocess.run([tune, "--bench", bench, *TABLE, "--budgets", bad],
                                 capture_output=True, text=True)
        if refused.returncode == 0:
            print(f"--budgets {bad} was accepted", file=sys.stderr)
            sys.exit(1)
    clash = subprocess.run([tune, "--kernels-only", "--nccl-tests", tmp], capture_output=True,
                           text=True)
    if clash.returncode == 0:
        print("--kernels-only with --nccl-tests was accepted", file=sys.stderr)
        sys.exit(1)

# An nvlar-bench that measures nothing (no GPU: it says so, exits 0 and writes no CSV): tune
# stops with its message, not a traceback.
with tempfile.TemporaryDirectory() as tmp:
    bench = os.path.join(tmp, "nvlar-bench")
    with open(bench, "w") as f:
        f.write("#!/bin/sh\necho 'nvlar-bench: no GPU is present; nothing to measure'\n")
    os.chmod(bench, 0o755)
    result = subprocess.run([tune, "--bench", bench, *TABLE, "--kernels-only", "--budgets", "8",
                             "--workdir", os.path.join(tmp, "w")], capture_output=True, text=True)
    if result.returncode == 0 or "Traceback" in result.stderr or "needs 2" not in result.stderr:
        print("tune with a bench that measures nothing:\n" + result.stdout + result.stderr,
              file=sys.stderr)
        sys.exit(1)

# Without nvlar-table tune does not guess a list: it says where it looked (by default next to
# --bench) and how to get one.
with tempfile.TemporaryDirectory() as tmp:
    for options, where in ((["--from-csv", tmp, "--nvlar-table", os.path.join(tmp, "none")],
                            os.path.join(tmp, "none")),
                           (["--bench", os.path.join(tmp, "nvlar-bench"), "--kernels-only"],
                            os.path.join(tmp, "nvlar-table"))):
        missing = subprocess.run([tune, *options], capture_output=True, text=True)
        if missing.returncode == 0 or f"no nvlar-table at {where}" not in missing.stderr:
            print(f"tune {' '.join(options)} without nvlar-table:\n" + missing.stdout +
                  missing.stderr, file=sys.stderr)
            sys.exit(1)
# The tables docs/tuning.md shows (its code blocks made only of rows and comments) are tables
# nvlar-table accepts, so that no example there has a field the parser refuses.
docs = os.path.join(os.path.dirname(os.path.realpath(tune)), "..", "docs", "tuning.md")
with open(docs) as f:
    blocks = f.read().split("```")[1::2]
tables = [b for b in blocks  # the format's own block names its fields in capitals: not a table
          if any(l.split()[:1] in (["nvlar"], ["nccl"]) for l in b.splitlines()) and "BYTES" not in b
          and all(not l.strip() or l.lstrip().startswith("#") or l.split()[0] in ("nvlar", "nccl")
                  for l in b.splitlines()[1:])]
if len(tables) < 3:
    print(f"{docs}: found {len(tables)} example tables, expected the built-in table, the "
          "budget rows and the TMA row at least", file=sys.stderr)
    sys.exit(1)
with tempfile.TemporaryDirectory() as tmp:
    for i, block in enumerate(tables):
        path = os.path.join(tmp, f"example-{i}.txt")
        with open(path, "w") as f:
            f.write("\n".join(block.splitlines()[1:]) + "\n")
        checked = subprocess.run([nvlar_table, path], capture_output=True, text=True)
        if checked.returncode != 0:
            print(f"{docs}, example table {i + 1}:\n{block}\n{checked.stdout}{checked.stderr}",
                  file=sys.stderr)
            sys.exit(1)
print("tune: tables as expected, every algorithm of nvlar-table measured, and nvlar-table "
      "accepts the tables and docs/tuning.md's examples")
