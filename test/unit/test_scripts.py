#!/usr/bin/env python3
"""scripts/compare-nccl-tests against a stand-in for all_reduce_perf (it prints nccl-tests'
table, faster when libnvlar is preloaded, and a wrong result on request), scripts/plot on
synthetic benchmark CSVs, and scripts/bench-table's three tables on a synthetic emulated
CSV. plot and bench-table name kernels from `nvlar-table --algorithms`: every algorithm it lists
gets its column and its title, and without nvlar-table they say so instead of guessing."""
import os
import subprocess
import sys
import tempfile

compare, plot, libnvlar, bench_table, nvlar_table = sys.argv[1:6]
TABLE = ["--nvlar-table", nvlar_table]
# [(name, title)] in the table's order.
ALGORITHMS = [tuple(line.split("\t")[0:3:2]) for line in subprocess.run(
    [nvlar_table, "--algorithms"], capture_output=True, text=True, check=True).stdout.splitlines()[1:]]

FAKE = r'''#!/usr/bin/env python3
import os, sys
nvlar = "libnvlar" in os.environ.get("LD_PRELOAD", "")
wrong = "1" if nvlar and os.environ.get("FAKE_WRONG") else "0"
print("# nThread 1 nGpus 8 minBytes 8 maxBytes 1024 step: 4(factor) warmup iters: 5 iters: 20")
print("#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong")
print("#        (B)    (elements)                               (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)")
for size in (8, 32, 128, 512):
    t = 10.0 if nvlar else 20.0
    print(f"{size:12d} {size // 4:13d}     float     sum      -1 {t:8.2f}    0.00    0.00 {wrong:>6} {t * 1.1:8.2f}    0.00    0.00      0")
print("# Avg bus bandwidth    : 0.0")
'''

failures = 0
with tempfile.TemporaryDirectory() as tmp:
    fake = os.path.join(tmp, "all_reduce_perf")
    with open(fake, "w") as f:
        f.write(FAKE)
    os.chmod(fake, 0o755)
    prefix = os.path.join(tmp, "cmp")
    env = dict(os.environ)
    env.pop("FAKE_WRONG", None)
    result = subprocess.run([compare, "--lib", libnvlar, "--out", prefix, fake, "-b", "8", "-e",
                             "512", "-c", "1"], capture_output=True, text=True, env=env)
    table = open(prefix + ".md").read() if os.path.exists(prefix + ".md") else ""
    if result.returncode != 0 or "| 512 | 20.00 | 10.00 | 0.500 | 22.00 | 11.00 | 0.500 |" not in table:
        print("compare-nccl-tests, good run:", result.returncode, result.stdout, result.stderr, table)
        failures += 1
    env["FAKE_WRONG"] = "1"
    result = subprocess.run([compare, "--lib", libnvlar, "--out", prefix, fake, "-c", "1"],
                            capture_output=True, text=True, env=env)
    if result.returncode != 1 or "#wrong 1" not in result.stderr:
        print("compare-nccl-tests, wrong results not caught:", result.returncode, result.stderr)
        failures += 1

    # The same table from two logs made earlier.
    logs = []
    for preload in ("", libnvlar):
        env.pop("FAKE_WRONG", None)
        env["LD_PRELOAD"] = preload
        log = os.path.join(tmp, f"log{len(logs)}.txt")
        with open(log, "w") as f:
            f.write(subprocess.run([fake], capture_output=True, text=True, env=env).stdout)
        logs.append(log)
    env.pop("LD_PRELOAD", None)
    result = subprocess.run([compare, "--from-logs", logs[0], logs[1], "--out", prefix + "-logs"],
                            capture_output=True, text=True, env=env)
    table = open(prefix + "-logs.md").read() if os.path.exists(prefix + "-logs.md") else ""
    if result.returncode != 0 or "| 512 | 20.00 | 10.00 | 0.500 | 22.00 | 11.00 | 0.500 |" not in table:
        print("compare-nccl-tests --from-logs:", result.returncode, result.stdout, result.stderr, table)
        failures += 1

    # Any interpreter here that has matplotlib (Debian's python3-matplotlib goes with
    # /usr/bin/python3, which need not be the python3 first on PATH).
    interpreter = None
    for candidate in (sys.executable, "/usr/bin/python3"):
        if os.path.exists(candidate) and subprocess.run(
                [candidate, "-c", "import matplotlib"], capture_output=True).returncode == 0:
            interpreter = candidate
            break
    def plot_failures(label, arguments, pngs, table=TABLE):
        """Runs scripts/plot; one failure per PNG it did not write (or wrote empty)."""
        result = subprocess.run([interpreter, plot, *arguments, *table], capture_output=True,
                                text=True)
        missing = 0
        for name in pngs:
            path = os.path.join(tmp, name)
            if result.returncode != 0 or not os.path.exists(path) or os.path.getsize(path) < 1000:
                print(f"{label}:", result.returncode, result.stderr)
                missing += 1
        return missing

    if interpreter is None:
        print("matplotlib not installed: scripts/plot not exercised")
    else:
        bench_csv = os.path.join(tmp, "bench.csv")
        with open(bench_csv, "w") as f:
            f.write("device,ngpus,dtype,op,bytes,count,kernel,mode,nvlar_us,nccl_us,ratio,"
                    "nvlar_algbw,nvlar_busbw,nccl_algbw,nccl_busbw\n")
            for size in (8, 1024, 1 << 20):
                for mode in ("eager", "graph"):
                    f.write(f"GPU,8,bfloat16,sum,{size},{size // 2},oneshot,{mode},5,10,0.5,1,1.75,0.5,0.875\n")
        # Real mode's ratio and busBW plots name no kernel: no nvlar-table needed.
        failures += plot_failures("plot", [bench_csv, "--out", os.path.join(tmp, "p")],
                                  ("p-ratio.png", "p-busbw.png"),
                                  table=["--nvlar-table", os.path.join(tmp, "none")])
        sweep_csv = os.path.join(tmp, "sweep.csv")
        with open(sweep_csv, "w") as f:
            f.write("device,nranks,dtype,op,bytes,count,algo,ctas,time_us,empty_us,traffic_gbps,"
                    "copy_gbps,ratio,series,pdl\n")
            for algo in ("twoshot", "tma"):
                for ctas in (1, 2, 4, 8):
                    f.write(f"GPU,8,float32,sum,67108864,16777216,{algo},{ctas},100,1,{ctas * 300},"
                            "3000,0.1,sweep,1\n")
        failures += plot_failures("plot --sweep", ["--sweep", sweep_csv, "--out",
                                                   os.path.join(tmp, "s")], ("s-ctas.png",))
        real_sweep_csv = os.path.join(tmp, "real-sweep.csv")
        with open(real_sweep_csv, "w") as f:
            f.write("device,ngpus,dtype,op,bytes,count,kernel,ctas,mode,nvlar_us,nccl_us,ratio,"
                    "nvlar_algbw,nvlar_busbw,nccl_algbw,nccl_busbw\n")
            for size in (1 << 20, 1 << 30):
                for ctas in (1, 2, 4):
                    for mode in ("eager", "graph"):
                        f.write(f"GPU,2,bfloat16,sum,{size},{size // 2},pushtwoshot,{ctas},{mode},"
                                f"10,5,2,{ctas * 10},{ctas * 10},20,20\n")
        failures += plot_failures("plot --sweep (real)", ["--sweep", real_sweep_csv, "--out",
                                                          os.path.join(tmp, "r")], ("r-ctas.png",))
        # An emulated CSV (one GPU): device time per kernel against size; its sweep and PDL
        # rows are left out.
        emulated_csv = os.path.join(tmp, "emulated-sizes.csv")
        with open(emulated_csv, "w") as f:
            f.write("device,nranks,dtype,op,bytes,count,algo,ctas,time_us,empty_us,traffic_gbps,"
                    "copy_gbps,ratio,series,pdl\n")
            for algo, _ in ALGORITHMS:
                for size in (8, 1024, 1 << 20):
                    f.write(f"GPU,8,float32,sum,{size},{size // 4},{algo},4,5,1,1,3000,0.001,size,1\n")
            f.write("GPU,8,float32,sum,67108864,16777216,tma,8,990,1.7,2713,3000,0.905,sweep,1\n")
        failures += plot_failures("plot (emulated)", [emulated_csv, "--out", os.path.join(tmp, "e")],
                                  ("e-time.png",))
        # Its kernels' titles come from nvlar-table: without it, a message that says so.
        result = subprocess.run([interpreter, plot, emulated_csv, "--out", os.path.join(tmp, "n"),
                                 "--nvlar-table", os.path.join(tmp, "none")],
                                capture_output=True, text=True)
        if result.returncode == 0 or "no nvlar-table at" not in result.stderr:
            print("plot (emulated) without nvlar-table:", result.returncode, result.stderr)
            failures += 1
        # --overlap rows: emulated (against CTAs) and real (nvlar and NCCL against size).
        overlap_csv = os.path.join(tmp, "emulated-overlap.csv")
        with open(overlap_csv, "w") as f:
            f.write("device,nranks,dtype,op,bytes,count,algo,ctas,time_us,empty_us,traffic_gbps,"
                    "copy_gbps,ratio,series,pdl,time_us_alone,gemm_tflops_alone,"
                    "gemm_tflops_beside,gemms_inside,gemm_outlasted,gpu_ctas\n")
            for algo in ("push", "pushtwoshot"):
                for ctas in (8, 16, 64):
                    f.write(f"GPU,2,bfloat16,sum,4194304,2097152,{algo},{ctas},{20 + ctas},,,,,"
                            f"overlap,0,15,700,{700 - 4 * ctas},20,1,{2 * ctas}\n")
        failures += plot_failures("plot (emulated overlap)",
                                  [overlap_csv, "--out", os.path.join(tmp, "o")], ("o-overlap.png",))
        real_overlap_csv = os.path.join(tmp, "real-overlap.csv")
        with open(real_overlap_csv, "w") as f:
            f.write("device,ngpus,dtype,op,bytes,count,kernel,ctas,mode,nvlar_us,nccl_us,ratio,"
                    "nvlar_algbw,nvlar_busbw,nccl_algbw,nccl_busbw,gemm_tflops_alone,"
                    "gemm_tflops_nvlar,gemm_tflops_nccl,nvlar_us_alone,nccl_us_alone,"
                    "gemm_outlasted\n")
            for size in (1 << 16, 1 << 24):
                f.write(f"GPU,2,bfloat16,sum,{size},{size // 2},push,16,graph,5,10,0.5,1,1,1,1,,,,,,\n")
                f.write(f"GPU,2,bfloat16,sum,{size},{size // 2},push,16,overlap,6,12,0.5,1,1,1,1,"
                        "700,650,600,5,10,1\n")
        failures += plot_failures("plot (real overlap)",
                                  [real_overlap_csv, "--out", os.path.join(tmp, "ro")],
                                  ("ro-ratio.png", "ro-overlap.png"))
        if failures == 0:
            print(f"plot: the eight PNGs written ({interpreter})")
    # bench-table: the size, sweep and PDL tables of one emulated CSV.
    emulated = os.path.join(tmp, "emulated.csv")
    with open(emulated, "w") as f:
        f.write("device,nranks,dtype,op,bytes,count,algo,ctas,time_us,empty_us,traffic_gbps,"
                "copy_gbps,ratio,series,pdl\n")
        f.write("GPU,8,float32,sum,8,2,oneshot,1,4.45,1.01,0.2,3000,0.0001,size,1\n")
        f.write("GPU,8,float32,sum,8,2,push,1,3.10,1.01,0.5,3000,0.0002,size,1\n")
        f.write("GPU,8,float32,sum,67108864,16777216,tma,8,990,1.7,2713,3000,0.905,sweep,1\n")
        for series, pdl, us in (("pdl-b2b", 0, 3.61), ("pdl-b2b", 1, 3.10),
                                ("pdl-after", 0, 4.65), ("pdl-after", 1, 4.53)):
            f.write(f"GPU,8,float32,sum,8,2,push,1,{us},,,3000,,{series},{pdl}\n")
    expectations = {
        (): ["| 8 B | 4.45 (1) | 3.10 (1) | 1.01 | 0.00 | 0.00 |"],
        ("--sweep",): ["| 8 | 2713 | 0.905 |"],
        ("--pdl",): ["| 8 B | push one-shot | 1 | 3.61 | 3.10 | +0.51 | 4.65 | 4.53 | +0.12 |"],
    }
    for option, lines in expectations.items():
        result = subprocess.run([sys.executable, bench_table, *option, emulated, *TABLE],
                                capture_output=True, text=True)
        missing = [line for line in lines if line not in result.stdout]
        if result.returncode != 0 or missing:
            print("bench-table", *option, ":", result.returncode, result.stderr, result.stdout,
                  "missing:", missing)
            failures += 1
    # Every algorithm that nvlar-table lists gets its column, titled and in the table's order,
    # and a kernel the table lacks (a CSV from another build) comes last under its own name.
    every = os.path.join(tmp, "every.csv")
    with open(every, "w") as f:
        f.write("device,nranks,dtype,op,bytes,count,algo,ctas,time_us,empty_us,traffic_gbps,"
                "copy_gbps,ratio,series,pdl\n")
        for algo in ["futureshot"] + [name for name, _ in reversed(ALGORITHMS)]:
            f.write(f"GPU,8,float32,sum,8,2,{algo},1,4.45,1.01,0.2,3000,0.0001,size,1\n")
    result = subprocess.run([sys.executable, bench_table, every, *TABLE], capture_output=True,
                            text=True)
    header = ("| bytes per rank | " + " | ".join(f"{title} µs (CTAs)" for _, title in ALGORITHMS)
              + " | futureshot µs (CTAs) | empty kernel µs |")
    if result.returncode != 0 or header not in result.stdout:
        print("bench-table, every algorithm:", result.returncode, result.stderr, result.stdout,
              "wanted:", header)
        failures += 1
    result = subprocess.run([sys.executable, bench_table, every, "--nvlar-table",
                             os.path.join(tmp, "none")], capture_output=True, text=True)
    if result.returncode == 0 or "no nvlar-table at" not in result.stderr:
        print("bench-table without nvlar-table:", result.returncode, result.stderr)
        failures += 1
print("scripts:", "ok" if failures == 0 else f"{failures} failures")
sys.exit(1 if failures else 0)
