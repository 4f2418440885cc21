/* nvlar-bench: device time of nvlar's all-reduce kernels.
 *
 * On several GPUs (real mode, tools/bench_real.c) it times nvlar against NCCL in the same
 * run. --emulate N (or a machine with one GPU) runs N ranks on this one GPU, all in one
 * launch, and times each kernel per message size with CUDA graphs (so host launch cost does
 * not count). In the same run it measures a device-to-device cudaMemcpy (the bandwidth ceiling
 * for emulated ranks, which all share this GPU's memory) and an empty kernel of the same grid
 * (the launch floor), and reports the kernels' memory traffic as a fraction of the copy
 * bandwidth. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bench_overlap.h"
#include "bytes.h"
#include "nvlar_emulation.h"
#include "nvlar_kernels.h"
#include "params.h"
#include "peer_buffers.h"
#include "selection.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: nvlar-bench [-g N] [options]         nvlar against NCCL on the local GPUs\n"
          "       nvlar-bench --emulate N [options]    nvlar's kernels, N ranks on one GPU\n"
          "With two GPUs or more, times every size with nvlar (ncclAllReduce through libnvlar)\n"
          "and with NCCL alone (its pncclAllReduce), alternating, in one process driving all\n"
          "GPUs, in three modes: eager (calls back to back, host-timed to the end of the last,\n"
          "as nccl-tests), graph (many calls captured in one graph: device time per call) and\n"
          "graph1 (one call per graph, the graph launched again and again, host-timed); prints\n"
          "time, algBW, busBW and the nvlar/NCCL time ratio, then per mode the sizes where nvlar\n"
          "is faster, within 5%%, slower, and the worst ratio, and the host time per call of\n"
          "nvlar's ncclAllReduce beside a bare launch of the same kernel. With one GPU it says\n"
          "so and runs --emulate 8; with none it says so.\n"
          "  -g, --gpus N       use the first N GPUs (default: all, at most 8)\n"
          "  --procs            one process per GPU instead of one process for all\n"
          "  --dtype T          int8 uint8 int32 uint32 int64 uint64 float16 float32 float64\n"
          "                     bfloat16 fp8e4m3 fp8e5m2 (default float32)\n"
          "  --op OP            sum prod max min avg (default sum)\n"
          "  --algo A           emulated: oneshot, twoshot, push, tma, pushtwoshot, cetwoshot,\n"
          "                     tmapush, several of them (A,B,...) or all (default all)\n"
          "  --min-bytes B      smallest message per rank (default 8)\n"
          "  --max-bytes B      largest message per rank (default 1G, emulated 256M)\n"
          "  --step F           size multiplier (default 4)\n"
          "  --blocks C         emulated: CTAs per rank (default: per size, at most what fits)\n"
          "  --sweep-blocks     emulated: also time the two-shots (pull, TMA, push, CE, TMA push) at\n"
          "                     --max-bytes for 1, 2, 4, ... CTAs per rank, up to all that fit;\n"
          "                     real: time every size with 1, 2, 4, ... CTAs per rank up to the\n"
          "                     SM count (the kernel that NVLAR_ALGO or the table picks), each\n"
          "                     beside NCCL at its own default\n"
          "  --pdl 0|1          emulated: programmatic dependent launch (default NVLAR_PDL)\n"
          "  --pdl-gain         emulated: also time every size with PDL off and on, for calls\n"
          "                     back to back and for calls each behind an empty kernel\n"
          "  --buffer-bytes B   staging buffer per rank (default NVLAR_BUFFER_BYTES)\n"
          "  --trials K         timed trials per point; the median is reported (default 7)\n"
          "  --csv FILE         also write every point as CSV\n"
          "  --plot PREFIX      at the end, plot the CSV (default PREFIX.csv) with scripts/plot:\n"
          "                     PREFIX-ratio.png and PREFIX-busbw.png (two GPUs or more),\n"
          "                     PREFIX-time.png (emulated); needs Python with matplotlib\n"
          "  --overlap          also time each size beside a bf16 GEMM (cuBLAS) running without a\n"
          "                     break on a second stream of each GPU: the GEMM's TFLOP/s alone\n"
          "                     and beside the all-reduces, and the all-reduce's time alone and\n"
          "                     beside the GEMM (real: nvlar and NCCL, in graphs unless\n"
          "                     --overlap-launch eager, at the routing's CTAs or each\n"
          "                     --sweep-blocks count; emulated: every kernel at 8, 16, 24, 32,\n"
          "                     64 and 128 CTAs per rank, or --blocks)\n"
          "  --gemm N           the overlap GEMM's side (default 8192: N x N x N)\n"
          "  --overlap-launch graph|eager\n"
          "                     how --overlap issues the all-reduces beside the GEMM: captured\n"
          "                     in graphs (default; as a model's forward pass, where a graph runs\n"
          "                     at its launch stream's priority) or eagerly, call by call (as\n"
          "                     DDP's gradient buckets; where NVLAR_PRIORITY=high reaches them);\n"
          "                     the times alone are then of the same kind; CSV series overlap or\n"
          "                     overlap-eager\n"
          "  --stream-priority low|high\n"
          "                     the all-reduces' streams at the default (lowest) priority or at\n"
          "                     the greatest, as PyTorch's NCCL streams with\n"
          "                     is_high_priority_stream; the GEMM's stays at the default\n"
          "  --fail-above R     real mode: exit 1 if any size's nvlar/NCCL time ratio is above\n"
          "                     R (the last lines name each mode's worst ratio and its size)\n"
          "Sizes are bytes, or with K, M or G (KiB, KB: powers of 1024). Emulated output: one row per size and kernel with the\n"
          "device time per call, the empty-kernel time of the same grid, the kernel's memory\n"
          "traffic (GB/s) and its ratio to the same run's device-to-device copy bandwidth.\n"
          "CSV rows name their series: size, sweep, pdl-b2b / pdl-after (--pdl-gain), or overlap\n"
          "/ overlap-eager (its time_us is beside the GEMM, time_us_alone alone). Emulated ranks\n"
          "share one GPU: an emulated call of C CTAs per rank holds N x C CTAs of it, which the\n"
          "table shows.\n"
          "Real mode keeps NCCL_NVLS_ENABLE=0 unless it is set.\n");
}

_Static_assert(sizeof(size_t) == sizeof(uint64_t), "a byte count fits in a size_t");

/* The byte count of `option` (bytes.h, as NVLAR_BUFFER_BYTES and tuning tables read one), or
 * false with a message. */
static bool parse_bytes_option(const char *option, const char *value, size_t *bytes) {
  uint64_t parsed = 0;
  const char *bad = nvlar_parse_bytes(value, &parsed);
  if (bad != NULL) {
    fprintf(stderr, "nvlar-bench: %s %s: %s\n", option, value, bad);
    return false;
  }
  *bytes = (size_t)parsed;
  return true;
}

static int find_name(const char *const *names, int n, const char *text) {
  for (int i = 0; i < n; i++) {
    if (strcasecmp(names[i], text) == 0) return i;
  }
  return -1;
}

/* "--algo A,B,...": the algorithms named, each once, in their order; 0 if a name is none. */
static int parse_algo_list(const char *text, int *algos) {
  int n = 0;
  while (*text != '\0') {
    size_t len = strcspn(text, ",");
    int algo = -1;
    for (int k = 0; k < NVLAR_ALGO_COUNT; k++) {
      const char *name = nvlar_algo_name(k);
      if (strlen(name) == len && strncmp(text, name, len) == 0) algo = k;
    }
    if (algo < 0) return 0;
    for (int k = 0; k < n; k++) {
      if (algos[k] == algo) return 0;
    }
    if (n == NVLAR_ALGO_COUNT) return 0;
    algos[n++] = algo;
    text += len;
    if (*text == ',') text++;
  }
  return n;
}

static int parse_options(int argc, char **argv, struct options *o) {
  memset(o, 0, sizeof(*o));
  o->datatype = 7;
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) o->algos[algo] = algo; /* all */
  o->nalgos = NVLAR_ALGO_COUNT;
  o->pdl = (int)nvlar_param_number(NVLAR_P_PDL);
  o->min_bytes = 8;
  o->max_bytes = 256u << 20;
  o->step = 4;
  o->buffer_bytes = (size_t)nvlar_param_number(NVLAR_P_BUFFER_BYTES);
  o->trials = 7;
  o->gemm = 8192;
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    const char *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      usage(stdout);
      exit(0);
    } else if (strcmp(arg, "--sweep-blocks") == 0) {
      o->sweep_blocks = 1;
      continue;
    } else if (strcmp(arg, "--procs") == 0) {
      o->procs = 1;
      continue;
    } else if (strcmp(arg, "--pdl-gain") == 0) {
      o->pdl_gain = 1;
      continue;
    } else if (strcmp(arg, "--overlap") == 0) {
      o->overlap = 1;
      continue;
    }
    if (value == NULL) {
      fprintf(stderr, "nvlar-bench: %s needs a value\n", arg);
      return -1;
    }
    i++;
    if (strcmp(arg, "--emulate") == 0) {
      o->emulate = atoi(value);
    } else if (strcmp(arg, "-g") == 0 || strcmp(arg, "--gpus") == 0) {
      o->gpus = atoi(value);
    } else if (strcmp(arg, "--dtype") == 0) {
      o->datatype = find_name(bench_type_names, 12, value);
    } else if (strcmp(arg, "--op") == 0) {
      o->op = find_name(bench_op_names, 5, value);
    } else if (strcmp(arg, "--algo") == 0) {
      if (strcmp(value, "all") != 0) o->nalgos = parse_algo_list(value, o->algos);
    } else if (strcmp(arg, "--min-bytes") == 0) {
      if (!parse_bytes_option(arg, value, &o->min_bytes)) return -1;
    } else if (strcmp(arg, "--max-bytes") == 0) {
      if (!parse_bytes_option(arg, value, &o->max_bytes)) return -1;
      o->max_bytes_given = 1;
    } else if (strcmp(arg, "--step") == 0) {
      o->step = atoi(value);
    } else if (strcmp(arg, "--blocks") == 0) {
      o->blocks = atoi(value);
    } else if (strcmp(arg, "--buffer-bytes") == 0) {
      if (!parse_bytes_option(arg, value, &o->buffer_bytes)) return -1;
    } else if (strcmp(arg, "--pdl") == 0) {
      o->pdl = atoi(value);
    } else if (strcmp(arg, "--trials") == 0) {
      o->trials = atoi(value);
    } else if (strcmp(arg, "--gemm") == 0) {
      o->gemm = atoi(value);
    } else if (strcmp(arg, "--overlap-launch") == 0) {
      if (strcmp(value, "graph") != 0 && strcmp(value, "eager") != 0) {
        fprintf(stderr, "nvlar-bench: --overlap-launch takes graph or eager, not %s\n", value);
        return -1;
      }
      o->overlap_eager = strcmp(value, "eager") == 0;
    } else if (strcmp(arg, "--stream-priority") == 0) {
      if (strcmp(value, "high") != 0 && strcmp(value, "low") != 0) {
        fprintf(stderr, "nvlar-bench: --stream-priority takes low or high, not %s\n", value);
        return -1;
      }
      o->high_priority = strcmp(value, "high") == 0;
    } else if (strcmp(arg, "--csv") == 0) {
      o->csv = value;
    } else if (strcmp(arg, "--plot") == 0) {
      o->plot = value;
    } else if (strcmp(arg, "--fail-above") == 0) {
      o->fail_above = strtod(value, NULL);
    } else {
      fprintf(stderr, "nvlar-bench: unknown option %s\n", arg);
      return -1;
    }
  }
  if (o->overlap && !bench_overlap_available()) {
    fprintf(stderr, "nvlar-bench: --overlap needs cuBLAS, which this build did not find\n");
    return -1;
  }
  if (o->plot != NULL && o->plot[0] == '\0') {
    fprintf(stderr, "nvlar-bench: --plot needs a file name prefix\n");
    return -1;
  }
  if (o->datatype < 0 || o->op < 0 || o->nalgos == 0 || o->step < 2 || o->trials < 1 ||
      o->min_bytes == 0 || o->max_bytes < o->min_bytes || o->blocks < 0 ||
      o->blocks > NVLAR_MAX_BLOCKS || (o->pdl != 0 && o->pdl != 1) || o->fail_above < 0 || o->gemm < 256 ||
      o->gemm > 32768) {
    fprintf(stderr, "nvlar-bench: invalid option value (see --help)\n");
    return -1;
  }
  return 0;
}


typedef void (*launch_fn)(void *ctx, cudaStream_t stream);

/* `calls` launches captured in one graph, instantiated and uploaded (launched once, which also
 * warms it up); the caller destroys the executable graph. */
static cudaGraphExec_t capture_calls(launch_fn launch, void *ctx, int calls, cudaStream_t stream) {
  cudaGraph_t captured;
  cudaGraphExec_t exec;
  CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < calls; i++) launch(ctx, stream);
  CHECK_CUDA(cudaStreamEndCapture(stream, &captured));
  CHECK_CUDA(cudaGraphInstantiate(&exec, captured, 0));
  CHECK_CUDA(cudaGraphDestroy(captured));
  CHECK_CUDA(cudaGraphLaunch(exec, stream));
  CHECK_CUDA(cudaStreamSynchronize(stream));
  return exec;
}

/* Median over trials of the per-call time (µs) of `calls` launches, between events on the
 * stream: captured in one graph (`graph`; the first launch, which uploads it, untimed), or
 * issued one by one (device time, with whatever gaps the host leaves between launches). */
static float time_calls(launch_fn launch, void *ctx, int calls, int trials, cudaStream_t stream,
                        bool graph) {
  cudaGraphExec_t exec = NULL;
  if (graph) {
    exec = capture_calls(launch, ctx, calls, stream);
  } else {
    launch(ctx, stream); /* warm-up */
  }
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  float samples[64];
  if (trials > 64) trials = 64;
  for (int t = 0; t < trials; t++) {
    CHECK_CUDA(cudaEventRecord(start, stream));
    if (graph) {
      CHECK_CUDA(cudaGraphLaunch(exec, stream));
    } else {
      for (int i = 0; i < calls; i++) launch(ctx, stream);
    }
    CHECK_CUDA(cudaEventRecord(stop, stream));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float ms = 0;
    CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
    samples[t] = ms * 1000.0f / calls;
  }
  qsort(samples, trials, sizeof(float), bench_compare_floats);
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  if (graph) CHECK_CUDA(cudaGraphExecDestroy(exec));
  return samples[trials / 2];
}

static float time_graph(launch_fn launch, void *ctx, int calls, int trials, cudaStream_t stream) {
  return time_calls(launch, ctx, calls, trials, stream, true);
}

struct bench {
  int nranks;
  struct nvlar_local_buffers buffers[NVLAR_MAX_RANKS];
  struct nvlar_peer_buffers views[NVLAR_MAX_RANKS];
  void *input[NVLAR_MAX_RANKS], *output[NVLAR_MAX_RANKS];
  struct nvlar_allreduce_args args[NVLAR_MAX_RANKS];
  int empty_blocks;
  int sm_count;         /* the grid of the kernel that precedes each call in the "after" series */
  int kernel_priority;  /* args.priority: the greatest under NVLAR_PRIORITY=high, else 0 */
  void *copy_src, *copy_dst;
  size_t copy_bytes;
};

static void launch_allreduce(void *ctx, cudaStream_t stream) {
  struct bench *b = ctx;
  CHECK_CUDA(nvlar_allreduce_launch_emulated(b->args, b->nranks, stream));
}

/* An all-reduce behind another kernel (an empty one, a CTA per SM), as behind a model's
 * kernel: what programmatic dependent launch can overlap. */
static void launch_after_kernel(void *ctx, cudaStream_t stream) {
  struct bench *b = ctx;
  CHECK_CUDA(nvlar_empty_launch(b->sm_count, 1, stream));
  CHECK_CUDA(nvlar_allreduce_launch_emulated(b->args, b->nranks, stream));
}

static void launch_empty(void *ctx, cudaStream_t stream) {
  struct bench *b = ctx;
  CHECK_CUDA(nvlar_empty_launch(b->empty_blocks, b->nranks, stream));
}

static void launch_copy(void *ctx, cudaStream_t stream) {
  struct bench *b = ctx;
  CHECK_CUDA(cudaMemcpyAsync(b->copy_dst, b->copy_src, b->copy_bytes, cudaMemcpyDeviceToDevice, stream));
}

/* Bytes the emulated ranks together read and write in device memory per call. */
static double traffic_bytes(int algo, int nranks, size_t bytes) {
  double s = (double)bytes, n = nranks;
  if (algo == NVLAR_ALGO_ONESHOT) return n * (n + 3) * s; /* copy in (2S), read n x S, write S */
  /* Push: read input twice (send, own share), write 2S of packets to each of n-1 peers, read
   * them back, write S. */
  if (algo == NVLAR_ALGO_PUSH) return n * (2 * s + 4 * (n - 1) * s + s);
  /* Push two-shots: scatter reads and writes S(n-1)/n, reduce reads S, writes S/n to the output
   * and S(n-1)/n to peers, gather reads and writes S(n-1)/n. */
  if (algo == NVLAR_ALGO_PUSH_TWOSHOT || algo == NVLAR_ALGO_TMA_PUSH) return n * (6 * (n - 1) / n + 2 / n) * s;
  /* Copy-engine two-shot: scatter copies read and write S(n-1)/n, the reduce reads S and
   * writes S/n, the gather copies read the result n-1 times and write S(n-1)/n, the local
   * copies read and write S(n-1)/n. */
  if (algo == NVLAR_ALGO_CETWOSHOT) return n * (6 * (n - 1) / n + 1 + 1 / n) * s;
  return n * 5 * s; /* both pull two-shots: copy in 2S, reduce S + 2S/n, gather 2S(n-1)/n */
}

/* CTAs per rank for a size when --blocks is not given. */
static int default_blocks(int algo, size_t bytes, int fit, int nranks, int arch) {
  if (algo != NVLAR_ALGO_ONESHOT && algo != NVLAR_ALGO_TWOSHOT) {
    /* Routing's own rule (plugin/selection.c), capped at what fits here. */
    struct nvlar_policy policy = {
        .nranks = nranks, .arch = arch,
        .forced = nvlar_forced_value(algo),
        .max_bytes = 0, .max_blocks = fit, .table = NULL};
    return nvlar_select(&policy, bytes).nblocks;
  }
  /* About 32 KiB per CTA, up to the largest power of two that fits: on the H100 with 8 ranks,
   * 32 CTAs per rank beat 33 (the full 2 CTAs per SM) by 10% (docs/results.md). */
  size_t want = (bytes + (32u << 10) - 1) / (32u << 10);
  int cap = 1;
  while (cap * 2 <= fit) cap *= 2;
  int blocks = want > (size_t)cap ? cap : (int)want;
  return blocks < 1 ? 1 : blocks;
}

static void set_args(struct bench *b, const struct options *o, int algo, int blocks, size_t count,
                     int pdl) {
  for (int r = 0; r < b->nranks; r++) {
    struct nvlar_allreduce_args *args = &b->args[r];
    memset(args, 0, sizeof(*args));
    nvlar_buffers_fill_args(&b->buffers[r], b->views, r, b->nranks, args);
    args->algo = algo;
    args->datatype = o->datatype;
    args->op = o->op;
    args->nblocks = blocks;
    args->input = b->input[r];
    args->output = b->output[r];
    args->count = count;
    args->timeout_ns = (uint64_t)nvlar_param_number(NVLAR_P_TIMEOUT_MS) * 1000000ull;
    args->pdl = pdl;
    args->priority = b->kernel_priority;
  }
  b->empty_blocks = blocks;
}

/* --overlap, emulated: one captured graph of `calls` all-reduces, launched batch after batch
 * on the all-reduce stream once the GEMM runs; or, with --overlap-launch eager, the batch's
 * `calls` all-reduces launched one by one. */
struct emulated_overlap {
  cudaStream_t stream;
  cudaGraphExec_t exec; /* NULL: eager */
  struct bench *bench;
  int calls;
};

static void emulated_overlap_wait(void *ctx, const cudaEvent_t *gates) {
  struct emulated_overlap *e = ctx;
  CHECK_CUDA(cudaStreamWaitEvent(e->stream, gates[0], 0));
}

static void emulated_overlap_run(void *ctx) {
  struct emulated_overlap *e = ctx;
  if (e->exec == NULL) {
    for (int i = 0; i < e->calls; i++) launch_allreduce(e->bench, e->stream);
  } else {
    CHECK_CUDA(cudaGraphLaunch(e->exec, e->stream));
  }
}

/* Every kernel at every size, at 8, 16, 24, 32, 64 and 128 CTAs per rank (those that fit
 * with every emulated rank resident) or --blocks, beside the GEMM. The GEMM competes for this
 * GPU's SMs as on a real one; the all-reduce's traffic stays in this GPU's memory. */
static void overlap_emulated(struct bench *b, const struct options *o, const int *fits,
                             const struct cudaDeviceProp *prop, FILE *csv, cudaStream_t stream) {
  struct bench_gemm *gemm = bench_gemm_create(0, o->gemm);
  if (gemm == NULL) {
    fprintf(stderr, "nvlar-bench: no memory for the overlap GEMM\n");
    exit(1);
  }
  printf("# overlap: a bf16 GEMM of %d (cuBLAS, fp32 accumulation) on a second stream: "
         "%.0f TFLOP/s alone; the all-reduces' stream at %s priority, %s\n", o->gemm,
         bench_gemm_tflops_alone(gemm), o->high_priority ? "the greatest" : "the default",
         o->overlap_eager ? "eager calls (alone: eager too)" : "in graphs");
  printf("%12s %8s %5s %8s %10s %10s %8s %10s %10s %7s\n", "bytes", "algo", "ctas", "gpu_ctas",
         "alone_us", "beside_us", "slowdown", "gemm_alone", "gemm_beside", "kept");
  static const int ctas_list[] = {8, 16, 24, 32, 64, 128};
  size_t element = bench_type_sizes[o->datatype];
  for (size_t bytes = o->min_bytes; bytes <= o->max_bytes; bytes *= (size_t)o->step) {
    size_t count = bytes / element;
    if (count == 0) continue;
    for (int a = 0; a < o->nalgos; a++) {
      int algo = o->algos[a];
      for (int k = 0; k < 6; k++) {
        int blocks = o->blocks ? o->blocks : ctas_list[k];
        if (blocks > fits[algo] || (o->blocks && k > 0)) continue;
        int calls = bytes >= (16u << 20) ? 5 : 50;
        set_args(b, o, algo, blocks, count, o->pdl);
        float alone_us = time_calls(launch_allreduce, b, calls, o->trials, stream, !o->overlap_eager);
        struct emulated_overlap e = {.stream = stream, .bench = b, .calls = calls};
        if (!o->overlap_eager) e.exec = capture_calls(launch_allreduce, b, calls, stream);
        struct bench_overlap_work work = {
            .ctx = &e, .wait = emulated_overlap_wait, .run = emulated_overlap_run,
            .timed_stream = stream, .calls = calls,
            .batches = bench_overlap_batches(bytes, calls), .adapt_window_ms = 50};
        struct bench_overlap_result r;
        bench_overlap_measure(&gemm, 1, &work, o->trials > 3 ? 3 : o->trials, &r);
        if (e.exec != NULL) CHECK_CUDA(cudaGraphExecDestroy(e.exec));
        printf("%12zu %8s %5d %8d %10.2f %10.2f %8.2f %10.0f %10.0f %6.1f%%%s\n", count * element,
               nvlar_algo_name(algo), blocks, blocks * b->nranks, alone_us, r.allreduce_us_beside,
               r.allreduce_us_beside / alone_us, r.gemm_tflops_alone, r.gemm_tflops_beside,
               100.0 * r.gemm_tflops_beside / r.gemm_tflops_alone,
               r.gemm_outlasted ? "" : " (the GEMMs ended first)");
        if (csv != NULL) {
          fprintf(csv, "%s,%d,%s,%s,%zu,%zu,%s,%d,%.3f,,,,,%s,%d,%.3f,%.1f,%.1f,%d,%d,%d,%s\n",
                  prop->name, b->nranks, bench_type_names[o->datatype], bench_op_names[o->op],
                  count * element, count, nvlar_algo_name(algo), blocks, r.allreduce_us_beside,
                  bench_overlap_series(o),
                  o->pdl, alone_us, r.gemm_tflops_alone, r.gemm_tflops_beside, r.gemms_inside,
                  r.gemm_outlasted ? 1 : 0, blocks * b->nranks, o->high_priority ? "high" : "low");
        }
      }
    }
  }
  bench_gemm_destroy(gemm);
}

static int bench_emulated(struct options o) {
  struct cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  CHECK_CUDA(nvlar_kernels_load()); /* before any launch: the TMA kernels' shared memory */
  CHECK_CUDA(nvlar_emulated_kernels_load());
  const int arch = prop.major * 10 + prop.minor;
  struct bench b;
  memset(&b, 0, sizeof(b));
  b.nranks = o.emulate;
  b.sm_count = prop.multiProcessorCount;
  if (nvlar_param_number(NVLAR_P_PRIORITY) == 1) { /* as libnvlar launches under it */
    int least = 0;
    CHECK_CUDA(cudaDeviceGetStreamPriorityRange(&least, &b.kernel_priority));
  }
  size_t element = bench_type_sizes[o.datatype];
  size_t max_count = o.max_bytes / element;
  for (int r = 0; r < b.nranks; r++) {
    CHECK_CUDA(nvlar_buffers_create(&b.buffers[r], o.buffer_bytes));
    nvlar_buffers_view(&b.buffers[r], &b.views[r]);
    CHECK_CUDA(cudaMalloc(&b.input[r], max_count * element + 16));
    CHECK_CUDA(cudaMalloc(&b.output[r], max_count * element + 16));
    CHECK_CUDA(cudaMemset(b.input[r], 0x3c, max_count * element)); /* 1.0 in fp16/bf16 pairs */
  }
  /* CTAs per rank that fit with every emulated rank resident, per algorithm. */
  int fits[NVLAR_ALGO_COUNT];
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) {
    int per_sm = 0;
    CHECK_CUDA(nvlar_emulated_occupancy(algo, o.datatype, o.op, &per_sm));
    fits[algo] = per_sm * prop.multiProcessorCount / b.nranks;
    if (fits[algo] > NVLAR_MAX_BLOCKS) fits[algo] = NVLAR_MAX_BLOCKS;
  }
  for (int a = 0; a < o.nalgos; a++) {
    if (o.blocks > fits[o.algos[a]]) {
      fprintf(stderr, "nvlar-bench: %d CTAs per rank of %s do not fit for %d ranks (at most %d)\n",
              o.blocks, nvlar_algo_name(o.algos[a]), b.nranks, fits[o.algos[a]]);
      return 2;
    }
  }
  cudaStream_t stream;
  CHECK_CUDA(bench_stream_create(&stream, o.high_priority));

  /* Copy bandwidth: 256 MiB device to device, read + written. */
  b.copy_bytes = 256u << 20;
  CHECK_CUDA(cudaMalloc(&b.copy_src, b.copy_bytes));
  CHECK_CUDA(cudaMalloc(&b.copy_dst, b.copy_bytes));
  float copy_us = time_graph(launch_copy, &b, 10, o.trials, stream);
  double copy_gbps = 2.0 * b.copy_bytes / (copy_us * 1e3);
  printf("# nvlar-bench --emulate %d: %s %s, %s, %d SMs, staging %zu bytes per rank, PDL %s, "
         "kernels at priority %d (NVLAR_PRIORITY), stream at %s\n",
         b.nranks, bench_type_names[o.datatype], bench_op_names[o.op], prop.name,
         prop.multiProcessorCount, o.buffer_bytes, o.pdl ? "on" : "off", b.kernel_priority,
         o.high_priority ? "the greatest priority" : "the default priority");
  printf("# device-to-device copy: %.0f GB/s (bytes read + written); CTAs fitting per rank: %d "
         "(TMA two-shot %d)\n", copy_gbps, fits[NVLAR_ALGO_ONESHOT], fits[NVLAR_ALGO_TMA]);
  FILE *csv = NULL;
  if (o.csv != NULL) {
    csv = fopen(o.csv, "w");
    if (csv == NULL) {
      perror(o.csv);
      return 1;
    }
    fprintf(csv, "device,nranks,dtype,op,bytes,count,algo,ctas,time_us,empty_us,traffic_gbps,"
                 "copy_gbps,ratio,series,pdl,time_us_alone,gemm_tflops_alone,gemm_tflops_beside,"
                 "gemms_inside,gemm_outlasted,gpu_ctas,stream_priority\n");
  }

  /* Pass 0: every size. Pass 1 (--sweep-blocks): both two-shots at --max-bytes for 1, 2, 4,
   * ... CTAs and the most that fit. Pass 2 (--pdl-gain): every size, PDL off and on. */
  static const char *const series_names[] = {"size", "sweep"};
  for (int pass = 0; pass < 3; pass++) {
    if ((pass == 1 && !o.sweep_blocks) || (pass == 2 && !o.pdl_gain)) continue;
    if (pass == 0) {
      printf("%12s %12s %8s %6s %10s %10s %10s %8s\n", "bytes", "count", "algo", "ctas",
             "time_us", "empty_us", "traffic", "ratio");
    } else if (pass == 1) {
      printf("# CTA sweep at %zu bytes per rank\n", o.max_bytes);
    } else {
      printf("# programmatic dependent launch: us per call, back to back (b2b) and each behind "
             "an empty kernel of %d CTAs (after)\n", b.sm_count);
      printf("%12s %8s %6s %10s %10s %10s %10s %10s\n", "bytes", "algo", "ctas", "b2b_off",
             "b2b_on", "after_off", "after_on", "gain_us");
    }
    size_t first = pass == 1 ? o.max_bytes : o.min_bytes;
    for (size_t bytes = first; bytes <= o.max_bytes; bytes *= (size_t)o.step) {
      size_t count = bytes / element;
      if (count == 0) continue;
      for (int a = 0; a < o.nalgos; a++) {
        int algo = o.algos[a], fit = fits[algo];
        if (pass == 1 && (algo == NVLAR_ALGO_ONESHOT || algo == NVLAR_ALGO_PUSH)) {
          continue;
        }
        int calls = bytes >= (16u << 20) ? 5 : 50;
        if (pass == 2) {
          int blocks = o.blocks ? o.blocks : default_blocks(algo, bytes, fit, b.nranks, arch);
          float t[2][2]; /* [after a kernel][pdl] */
          for (int pdl = 0; pdl < 2; pdl++) {
            set_args(&b, &o, algo, blocks, count, pdl);
            t[0][pdl] = time_graph(launch_allreduce, &b, calls, o.trials, stream);
            t[1][pdl] = time_graph(launch_after_kernel, &b, calls, o.trials, stream);
          }
          printf("%12zu %8s %6d %10.2f %10.2f %10.2f %10.2f %10.2f\n", count * element,
                 nvlar_algo_name(algo), blocks, t[0][0], t[0][1], t[1][0], t[1][1],
                 t[1][0] - t[1][1]);
          for (int after = 0; csv != NULL && after < 2; after++) {
            for (int pdl = 0; pdl < 2; pdl++) {
              fprintf(csv, "%s,%d,%s,%s,%zu,%zu,%s,%d,%.3f,,,%.1f,,%s,%d,,,,,,%d,%s\n", prop.name, b.nranks,
                      bench_type_names[o.datatype], bench_op_names[o.op], count * element, count,
                      nvlar_algo_name(algo), blocks, t[after][pdl], copy_gbps,
                      after ? "pdl-after" : "pdl-b2b", pdl, blocks * b.nranks,
                      o.high_priority ? "high" : "low");
            }
          }
          continue;
        }
        /* The sweep: 1, 2, 4, ... and, if not a power of two, the most that fit. */
        int sweep[16], nsweep = 0;
        if (pass == 1) {
          for (int ctas = 1; ctas <= fit; ctas *= 2) sweep[nsweep++] = ctas;
          if (sweep[nsweep - 1] != fit) sweep[nsweep++] = fit;
        } else {
          sweep[nsweep++] = o.blocks ? o.blocks : default_blocks(algo, bytes, fit, b.nranks, arch);
        }
        for (int k = 0; k < nsweep; k++) {
          int blocks = sweep[k];
          set_args(&b, &o, algo, blocks, count, o.pdl);
          float us = time_graph(launch_allreduce, &b, calls, o.trials, stream);
          float empty_us = time_graph(launch_empty, &b, calls, o.trials, stream);
          double traffic = traffic_bytes(algo, b.nranks, count * element) / (us * 1e3);
          const char *algo_name = nvlar_algo_name(algo);
          printf("%12zu %12zu %8s %6d %10.2f %10.2f %10.0f %8.3f\n", count * element, count,
                 algo_name, blocks, us, empty_us, traffic, traffic / copy_gbps);
          if (csv != NULL) {
            fprintf(csv, "%s,%d,%s,%s,%zu,%zu,%s,%d,%.3f,%.3f,%.1f,%.1f,%.4f,%s,%d,,,,,,%d,%s\n", prop.name,
                    b.nranks, bench_type_names[o.datatype], bench_op_names[o.op], count * element,
                    count, algo_name, blocks, us, empty_us, traffic, copy_gbps, traffic / copy_gbps,
                    series_names[pass], o.pdl, blocks * b.nranks, o.high_priority ? "high" : "low");
          }
        }
      }
      if (pass == 1) break;
    }
  }
  if (o.overlap) overlap_emulated(&b, &o, fits, &prop, csv, stream);
  for (int r = 0; r < b.nranks; r++) {
    if (b.buffers[r].error_host->code != NVLAR_KERNEL_OK) {
      fprintf(stderr, "nvlar-bench: rank %d timed out waiting for rank %d: numbers are invalid\n",
              r, b.buffers[r].error_host->peer);
      return 1;
    }
  }
  if (csv != NULL) fclose(csv);
  return 0;
}

/* GPUs visible, counted in a child process so that this one can still fork CUDA users. */
static int count_gpus_in_child(void) {
  fflush(NULL);
  pid_t child = fork();
  if (child == 0) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) count = 0;
    _exit(count > 255 ? 255 : count);
  }
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) return 0;
  return WEXITSTATUS(status);
}

/* Runs argv (a program found on PATH, and its arguments) and returns its exit status (127 if
 * it could not run); `quiet` sends its output to /dev/null. */
static int run_quietly(char *const argv[], bool quiet) {
  fflush(NULL);
  pid_t child = fork();
  if (child == 0) {
    if (quiet && (freopen("/dev/null", "w", stdout) == NULL ||
                  freopen("/dev/null", "w", stderr) == NULL)) {
      _exit(127);
    }
    execvp(argv[0], argv);
    _exit(127);
  }
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status)) return 127;
  return WEXITSTATUS(status);
}

/* The nvlar-table built and installed next to this program (scripts/plot reads the algorithm
 * table from it), in `path`; "" if this program's own path is unknown. */
static void nvlar_table_beside(char *path, size_t size) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  path[0] = '\0';
  if (n <= 0) return;
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (slash == NULL) return;
  *slash = '\0';
  int written = snprintf(path, size, "%s/nvlar-table", self);
  if (written < 0 || (size_t)written >= size) path[0] = '\0';
}

/* --plot: scripts/plot on the CSV just written, with the first Python that has matplotlib
 * (a user's python3 may lack it where the system's has it: install-deps installs Debian's).
 * A plot that cannot be made is reported, and leaves the benchmark's exit status alone. */
static void plot_csv(const struct options *o) {
  static const char script[] = NVLAR_PLOT_SCRIPT;
  if (access(o->csv, R_OK) != 0) return; /* nothing was measured (no GPU) */
  if (access(script, R_OK) != 0) {
    printf("nvlar-bench: no plot: %s is not there (run scripts/plot %s --out %s from the "
           "source tree)\n", script, o->csv, o->plot);
    return;
  }
  char table[4096 + 16];
  nvlar_table_beside(table, sizeof(table));
  static const char *const interpreters[] = {"python3", "/usr/bin/python3"};
  for (int i = 0; i < 2; i++) {
    char *check[] = {(char *)interpreters[i], "-c", "import matplotlib", NULL};
    if (run_quietly(check, true) != 0) continue;
    char *plot[] = {(char *)interpreters[i], (char *)script, (char *)o->csv, "--out",
                    (char *)o->plot, "--nvlar-table", table, NULL};
    if (table[0] == '\0') plot[5] = NULL; /* scripts/plot's own default */
    if (run_quietly(plot, false) != 0) printf("nvlar-bench: scripts/plot failed on %s\n", o->csv);
    return;
  }
  printf("nvlar-bench: no plot: no python3 with matplotlib (scripts/install-deps installs it)\n");
}

/* The benchmark proper: emulated on one GPU (or --emulate), real on two or more. */
static int run(struct options o, int devices) {
  if (o.emulate != 0) {
    if (o.emulate < 2 || o.emulate > NVLAR_MAX_RANKS) {
      fprintf(stderr, "nvlar-bench: --emulate N takes 2 to %d ranks\n", NVLAR_MAX_RANKS);
      return 2;
    }
    return bench_emulated(o);
  }
  int gpus = o.gpus > 0 ? o.gpus : (devices > NVLAR_MAX_RANKS ? NVLAR_MAX_RANKS : devices);
  if (gpus > devices || gpus > NVLAR_MAX_RANKS) {
    fprintf(stderr, "nvlar-bench: -g %d, but %d GPUs are visible (nvlar runs at most %d)\n",
            gpus, devices, NVLAR_MAX_RANKS);
    return 2;
  }
  if (gpus < 2) {
    printf("nvlar-bench: one GPU: nvlar and NCCL cannot be compared; running the emulated mode "
           "with 8 ranks (--emulate 8)\n");
    o.emulate = 8;
    return bench_emulated(o);
  }
  if (!o.max_bytes_given) o.max_bytes = (size_t)1 << 30;
  return o.procs ? bench_real_procs(&o, gpus) : bench_real(&o, gpus);
}

int main(int argc, char **argv) {
  struct options o;
  if (parse_options(argc, argv, &o) != 0) {
    usage(stderr);
    return 2;
  }
  int devices = count_gpus_in_child();
  if (devices == 0) {
    printf("nvlar-bench: no GPU is present; nothing to measure\n");
    return 0;
  }
  static char csv_path[4096];
  if (o.plot != NULL && o.csv == NULL) {
    snprintf(csv_path, sizeof(csv_path), "%s.csv", o.plot);
    o.csv = csv_path;
  }
  int status = run(o, devices);
  if (o.plot != NULL && status != 2) plot_csv(&o);
  return status;
}
