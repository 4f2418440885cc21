/* nvlar-bench real mode: nvlar against NCCL on the local GPUs, one process driving them all,
 * or (--procs) one process per GPU.
 *
 * nvlar-bench links nvlar's code itself (the internal library), so its ncclAllReduce is nvlar's
 * wrapper: eligible calls run on nvlar's kernels. NCCL alone is timed through the real NCCL's
 * own entry point (pncclAllReduce), on the same communicators and buffers, alternating with
 * nvlar trial by trial so that both see the same machine state. */
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nccl.h>

#include "bench.h"
#include "bench_overlap.h"
#include "comm_registry.h"
#include "real_nccl.h"
#include "route.h"
#include "selection.h"

/* The route nvlar's setup attached to `comm`, or NULL (on NCCL). The benchmark holds its
 * communicators until the end, and with them their routes. */
static struct nvlar_route *route_of(ncclComm_t comm) {
  struct nvlar_comm *entry = nvlar_registry_get(comm);
  struct nvlar_route *route = entry != NULL ? atomic_load(&entry->route) : NULL;
  nvlar_comm_put(entry);
  return route;
}

#define MAX_GPUS 8
#define CALLS_SMALL 50
#define CALLS_LARGE 5

#define CHECK_NCCL(call)                                                                     \
  do {                                                                                       \
    ncclResult_t bench_result = (call);                                                      \
    if (bench_result != ncclSuccess) {                                                       \
      fprintf(stderr, "nvlar-bench: %s: %s\n", #call, ncclGetErrorString(bench_result));     \
      exit(1);                                                                               \
    }                                                                                        \
  } while (0)

typedef ncclResult_t (*all_reduce_fn)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t,
                                      ncclComm_t, cudaStream_t);
typedef ncclResult_t (*group_fn)(void);

struct gpu {
  int device;
  ncclComm_t comm;
  cudaStream_t stream;
  void *input, *output;
  cudaEvent_t start, stop;
};

struct path {
  all_reduce_fn all_reduce;
  group_fn group_start, group_end;
};

/* One call on every GPU, as one group (one thread drives all GPUs). */
static void issue(const struct path *path, struct gpu *gpus, int n, size_t count, int datatype,
                  int op) {
  CHECK_NCCL(path->group_start());
  for (int g = 0; g < n; g++) {
    CHECK_NCCL(path->all_reduce(gpus[g].input, gpus[g].output, count, (ncclDataType_t)datatype,
                                (ncclRedOp_t)op, gpus[g].comm, gpus[g].stream));
  }
  CHECK_NCCL(path->group_end());
}

/* The three ways a job issues its all-reduces, each timed per call (µs):
 * - eager: `calls` calls issued back to back, host-timed from the first call to the end of the
 *   last (synchronized), as nccl-tests times them;
 * - graph: `calls` calls captured in one graph per GPU, as a model's forward pass is: device
 *   time per call, between events captured after a first (warm-up) call, so that the skew
 *   between the GPUs' graph launches falls on that call and not on the timed ones, in the
 *   graph's second launch (the first uploads it);
 * - graph1: one call captured per graph, the graph launched `calls` times, host-timed. */
enum { MODE_EAGER, MODE_GRAPH, MODE_GRAPH1, MODES };
static const char *const mode_names[MODES] = {"eager", "graph", "graph1"};

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

static void synchronize_all(struct gpu *gpus, int n) {
  for (int g = 0; g < n; g++) {
    CHECK_CUDA(cudaSetDevice(gpus[g].device));
    CHECK_CUDA(cudaStreamSynchronize(gpus[g].stream));
  }
}

/* Captures `calls` calls on every GPU, with the events around all but the first if `events`. */
static void capture(const struct path *path, struct gpu *gpus, int n, size_t count, int datatype,
                    int op, int calls, bool events, cudaGraphExec_t *execs) {
  for (int g = 0; g < n; g++) {
    CHECK_CUDA(cudaSetDevice(gpus[g].device));
    CHECK_CUDA(cudaStreamBeginCapture(gpus[g].stream, cudaStreamCaptureModeRelaxed));
  }
  for (int i = 0; i < calls; i++) {
    if (events && i == 1) {
      /* External event nodes: without the flag, an event recorded during capture only orders
       * streams and is never timed. */
      for (int g = 0; g < n; g++) {
        CHECK_CUDA(cudaSetDevice(gpus[g].device));
        CHECK_CUDA(cudaEventRecordWithFlags(gpus[g].start, gpus[g].stream, cudaEventRecordExternal));
      }
    }
    issue(path, gpus, n, count, datatype, op);
  }
  for (int g = 0; g < n; g++) {
    cudaGraph_t captured;
    CHECK_CUDA(cudaSetDevice(gpus[g].device));
    if (events) CHECK_CUDA(cudaEventRecordWithFlags(gpus[g].stop, gpus[g].stream, cudaEventRecordExternal));
    CHECK_CUDA(cudaStreamEndCapture(gpus[g].stream, &captured));
    CHECK_CUDA(cudaGraphInstantiate(&execs[g], captured, 0));
    CHECK_CUDA(cudaGraphDestroy(captured));
  }
}

static void destroy_graphs(cudaGraphExec_t *execs, struct gpu *gpus, int n) {
  for (int g = 0; g < n; g++) {
    CHECK_CUDA(cudaSetDevice(gpus[g].device));
    CHECK_CUDA(cudaGraphExecDestroy(execs[g]));
  }
}

static void launch_graphs(cudaGraphExec_t *execs, struct gpu *gpus, int n) {
  for (int g = 0; g < n; g++) {
    CHECK_CUDA(cudaSetDevice(gpus[g].device));
    CHECK_CUDA(cudaGraphLaunch(execs[g], gpus[g].stream));
  }
}

static float time_calls(const struct path *path, struct gpu *gpus, int n, size_t count,
                        int datatype, int op, int calls, int mode) {
  cudaGraphExec_t execs[MAX_GPUS];
  if (mode == MODE_GRAPH) {
    capture(path, gpus, n, count, datatype, op, 1 + calls, true, execs);
    /* The first launch of a graph uploads it; the second is timed. */
    launch_graphs(execs, gpus, n);
    synchronize_all(gpus, n);
    launch_graphs(execs, gpus, n);
    float slowest = 0;
    for (int g = 0; g < n; g++) {
      float ms = 0;
      CHECK_CUDA(cudaSetDevice(gpus[g].device));
      CHECK_CUDA(cudaEventSynchronize(gpus[g].stop));
      CHECK_CUDA(cudaEventElapsedTime(&ms, gpus[g].start, gpus[g].stop));
      if (ms > slowest) slowest = ms;
    }
    destroy_graphs(execs, gpus, n);
    return slowest * 1000.0f / calls;
  }
  if (mode == MODE_GRAPH1) {
    capture(path, gpus, n, count, datatype, op, 1, false, execs);
    launch_graphs(execs, gpus, n); /* the first launch uploads the graph */
  }
  synchronize_all(gpus, n);
  double start = now_us();
  for (int i = 0; i < calls; i++) {
    if (mode == MODE_GRAPH1) launch_graphs(execs, gpus, n);
    else issue(path, gpus, n, count, datatype, op);
  }
  synchronize_all(gpus, n);
  double elapsed = now_us() - start;
  if (mode == MODE_GRAPH1) destroy_graphs(execs, gpus, n);
  return (float)(elapsed / calls);
}

/* Host time per call (µs) to enqueue `calls` calls on every GPU without a group: through
 * ncclAllReduce (nvlar's path: lookup, routing, launch) or, with `bare`, by launching the same
 * kernel with the same arguments straight away (nvlar_allreduce_launch). Each GPU's calls
 * pair with the other GPUs' as in a job, so the kernels run and meet as usual. */
static float time_host_path(struct gpu *gpus, int n, size_t count, int datatype, int op, int calls,
                            bool bare) {
  struct nvlar_allreduce_args args[MAX_GPUS];
  for (int g = 0; g < n; g++) {
    struct nvlar_route *route = route_of(gpus[g].comm);
    struct nvlar_choice choice = nvlar_select(&route->policy, count * bench_type_sizes[datatype]);
    nvlar_route_call_args(route, choice, gpus[g].input, gpus[g].output, count, datatype, op, &args[g]);
  }
  synchronize_all(gpus, n);
  int device = 0;
  CHECK_CUDA(cudaGetDevice(&device));
  double start = now_us();
  for (int i = 0; i < calls; i++) {
    for (int g = 0; g < n; g++) {
      if (bare) {
        if (n > 1) CHECK_CUDA(cudaSetDevice(gpus[g].device));
        CHECK_CUDA(nvlar_allreduce_launch(&args[g], gpus[g].stream));
      } else {
        CHECK_NCCL(ncclAllReduce(gpus[g].input, gpus[g].output, count, (ncclDataType_t)datatype,
                                 (ncclRedOp_t)op, gpus[g].comm, gpus[g].stream));
      }
    }
  }
  double elapsed = now_us() - start;
  if (bare && n > 1) CHECK_CUDA(cudaSetDevice(device));
  synchronize_all(gpus, n);
  return (float)(elapsed / calls / n);
}

/* Which path nvlar takes for this size on this communicator, and with how many CTAs (0 on
 * NCCL). */
static const char *nvlar_kernel(ncclComm_t comm, size_t bytes, int *ctas) {
  struct nvlar_route *route = route_of(comm);
  *ctas = 0;
  if (route == NULL) return "nccl";
  struct nvlar_choice choice = nvlar_select(&route->policy, bytes);
  if (!choice.nvlar) return "nccl";
  *ctas = choice.nblocks;
  return nvlar_algo_name(choice.algo);
}

/* --sweep-blocks: every rank of the benchmark sets the same CTA count (what NVLAR_CTAS does),
 * so the ranks still choose alike. */
static void force_ctas(struct gpu *gpus, int n_local, int ctas) {
  for (int g = 0; g < n_local; g++) {
    struct nvlar_route *route = route_of(gpus[g].comm);
    if (route != NULL) route->policy.ctas = ctas;
  }
}

/* The CTA count setup chose for every call (NVLAR_CTAS; 0: the table's or the algorithm's
 * rule), and the most CTAs a call may have on this communicator (0 if it is on NCCL): the SMs,
 * and NCCL's maxCTAs (NCCL_MAX_CTAS; 64 by default). */
static int routing_ctas(struct gpu *gpus, int n_local, int *cap) {
  *cap = 0;
  for (int g = 0; g < n_local; g++) {
    struct nvlar_route *route = route_of(gpus[g].comm);
    if (route == NULL) continue;
    *cap = route->policy.max_blocks < NVLAR_MAX_BLOCKS ? route->policy.max_blocks : NVLAR_MAX_BLOCKS;
    if (route->policy.max_ctas > 0 && route->policy.max_ctas < *cap) *cap = route->policy.max_ctas;
    return route->policy.ctas;
  }
  return 0;
}

/* What one process measured: per size, the median time of each path in each mode. */
#define MAX_POINTS 160
struct point {
  size_t bytes, count;
  char kernel[16];
  int ctas; /* nvlar's CTAs per rank */
  float us[MODES][2]; /* [mode][nvlar, nccl] */
  float host_us[2];   /* host µs per call to enqueue: [nvlar's ncclAllReduce, bare launch] */
  /* --overlap (graph mode): each path's µs per call beside the GEMM, and the GEMM's TFLOP/s
   * [alone, beside nvlar, beside NCCL]; `overlap_outlasted` is 0 when a window outlived the
   * GEMMs. */
  float overlap_us[2];
  double gemm_tflops[3];
  int overlap_measured, overlap_outlasted;
};
struct results {
  char device[256];
  int version;
  char nccl_path[4096];
  int on_nvlar;
  int npoints;
  struct point points[MAX_POINTS];
  int failed;
};

static struct path nvlar_path(void) {
  return (struct path){ncclAllReduce, ncclGroupStart, ncclGroupEnd};
}
static struct path nccl_path(const struct nvlar_real_nccl *nccl) {
  return (struct path){nccl->ncclAllReduce, nccl->ncclGroupStart, nccl->ncclGroupEnd};
}

static void setup_gpu(struct gpu *gpu, int device, ncclComm_t comm, size_t bytes,
                      int high_priority) {
  CHECK_CUDA(cudaSetDevice(device));
  gpu->device = device;
  gpu->comm = comm;
  CHECK_CUDA(bench_stream_create(&gpu->stream, high_priority));
  CHECK_CUDA(cudaMalloc(&gpu->input, bytes + 16));
  CHECK_CUDA(cudaMalloc(&gpu->output, bytes + 16));
  CHECK_CUDA(cudaMemset(gpu->input, 0x3c, bytes)); /* not zeros */
  CHECK_CUDA(cudaEventCreate(&gpu->start));
  CHECK_CUDA(cudaEventCreate(&gpu->stop));
}

/* Times both paths at one size (and the CTA count now forced, if any), alternating trial by
 * trial. */
/* --overlap: the graph of one path's calls, launched batch after batch on every GPU; or, with
 * --overlap-launch eager (execs NULL), the batch's calls issued one by one. */
struct real_overlap {
  struct gpu *gpus;
  int n;
  cudaGraphExec_t *execs;
  const struct path *path;
  size_t count;
  int datatype, op, calls;
};

static void real_overlap_wait(void *ctx, const cudaEvent_t *gates) {
  struct real_overlap *r = ctx;
  for (int g = 0; g < r->n; g++) {
    CHECK_CUDA(cudaSetDevice(r->gpus[g].device));
    CHECK_CUDA(cudaStreamWaitEvent(r->gpus[g].stream, gates[g], 0));
  }
}

static void real_overlap_run(void *ctx) {
  struct real_overlap *r = ctx;
  if (r->execs == NULL) {
    for (int i = 0; i < r->calls; i++) issue(r->path, r->gpus, r->n, r->count, r->datatype, r->op);
    return;
  }
  for (int g = 0; g < r->n; g++) {
    CHECK_CUDA(cudaSetDevice(r->gpus[g].device));
    CHECK_CUDA(cudaGraphLaunch(r->execs[g], r->gpus[g].stream));
  }
}

/* Both paths beside the GEMM, in graph mode (how a model's all-reduces run beside its
 * compute) or eagerly (--overlap-launch eager: as DDP's buckets), nvlar first then NCCL; every
 * rank runs the same number of calls. */
static void measure_overlap(const struct options *o, const struct path *paths, struct gpu *gpus,
                            int n_local, size_t count, struct bench_gemm *const *gemms,
                            struct point *point) {
  int calls = point->bytes >= (16u << 20) ? CALLS_LARGE : CALLS_SMALL;
  point->overlap_outlasted = 1;
  for (int p = 0; p < 2; p++) {
    cudaGraphExec_t execs[MAX_GPUS];
    if (!o->overlap_eager) {
      capture(&paths[p], gpus, n_local, count, o->datatype, o->op, calls, false, execs);
      launch_graphs(execs, gpus, n_local); /* the first launch uploads the graph */
      synchronize_all(gpus, n_local);
    }
    struct real_overlap ctx = {gpus, n_local, o->overlap_eager ? NULL : execs, &paths[p], count,
                               o->datatype, o->op, calls};
    struct bench_overlap_work work = {
        .ctx = &ctx, .wait = real_overlap_wait, .run = real_overlap_run,
        .timed_stream = gpus[0].stream, .calls = calls,
        .batches = bench_overlap_batches(point->bytes, calls)};
    struct bench_overlap_result r;
    bench_overlap_measure(gemms, n_local, &work, o->trials > 5 ? 5 : o->trials, &r);
    if (!o->overlap_eager) destroy_graphs(execs, gpus, n_local);
    point->overlap_us[p] = r.allreduce_us_beside;
    point->gemm_tflops[0] = r.gemm_tflops_alone;
    point->gemm_tflops[1 + p] = r.gemm_tflops_beside;
    point->overlap_outlasted &= r.gemm_outlasted;
  }
  point->overlap_measured = 1;
}

static void measure_point(const struct options *o, const struct path *paths, struct gpu *gpus,
                          int n_local, size_t count, struct bench_gemm *const *gemms,
                          struct point *point, bool show_progress) {
  point->bytes = count * bench_type_sizes[o->datatype];
  point->count = count;
  snprintf(point->kernel, sizeof(point->kernel), "%s",
           nvlar_kernel(gpus[0].comm, point->bytes, &point->ctas));
  if (show_progress) {
    fprintf(stderr, "nvlar-bench: %zu bytes (%s, %d CTAs)\n", point->bytes, point->kernel,
            point->ctas);
  }
  int calls = point->bytes >= (16u << 20) ? CALLS_LARGE : CALLS_SMALL;
  int trials = o->trials > 64 ? 64 : o->trials;
  for (int mode = 0; mode < MODES; mode++) {
    float samples[2][64];
    for (int p = 0; p < 2; p++) time_calls(&paths[p], gpus, n_local, count, o->datatype, o->op, 2, mode);
    for (int t = 0; t < trials; t++) {
      for (int p = 0; p < 2; p++) {
        samples[p][t] = time_calls(&paths[p], gpus, n_local, count, o->datatype, o->op, calls, mode);
      }
    }
    for (int p = 0; p < 2; p++) {
      qsort(samples[p], trials, sizeof(float), bench_compare_floats);
      point->us[mode][p] = samples[p][trials / 2];
    }
  }
  point->host_us[0] = point->host_us[1] = 0;
  if (point->ctas > 0) {
    /* Host path against a bare launch, alternating trial by trial. */
    float samples[2][64];
    for (int t = 0; t < trials; t++) {
      for (int bare = 0; bare < 2; bare++) {
        samples[bare][t] = time_host_path(gpus, n_local, count, o->datatype, o->op, calls, bare);
      }
    }
    for (int bare = 0; bare < 2; bare++) {
      qsort(samples[bare], trials, sizeof(float), bench_compare_floats);
      point->host_us[bare] = samples[bare][trials / 2];
    }
  }
  point->overlap_measured = 0;
  if (gemms != NULL) measure_overlap(o, paths, gpus, n_local, count, gemms, point);
}

/* Times both paths at every size, alternating trial by trial, on the GPUs this process drives
 * (all of them, or its own in one-process-per-GPU mode). */
static void measure(const struct options *o, const struct nvlar_real_nccl *nccl,
                    struct gpu *gpus, int n_local, struct results *out, bool show_progress) {
  struct path paths[2] = {nvlar_path(), nccl_path(nccl)};
  size_t element = bench_type_sizes[o->datatype];
  struct cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  snprintf(out->device, sizeof(out->device), "%s", prop.name);
  nccl->ncclGetVersion(&out->version);
  snprintf(out->nccl_path, sizeof(out->nccl_path), "%s", nccl->path);
  out->on_nvlar = route_of(gpus[0].comm) != NULL;
  /* CTA counts per size: the routing's own (NVLAR_CTAS or the rule), or with --sweep-blocks
   * 1, 2, 4, ... and the cap (the SM count) if it is not a power of two. */
  int cap = 0;
  const int own_ctas = routing_ctas(gpus, n_local, &cap);
  int sweep[16] = {own_ctas}, nsweep = 1;
  if (o->sweep_blocks && cap > 0) {
    nsweep = 0;
    for (int ctas = 1; ctas <= cap; ctas *= 2) sweep[nsweep++] = ctas;
    if (sweep[nsweep - 1] != cap) sweep[nsweep++] = cap;
  }
  /* --overlap: one GEMM per GPU this process drives, on a stream of its own. */
  struct bench_gemm *gemms[MAX_GPUS] = {NULL};
  for (int g = 0; o->overlap && g < n_local; g++) {
    gemms[g] = bench_gemm_create(gpus[g].device, o->gemm);
    if (gemms[g] == NULL) {
      fprintf(stderr, "nvlar-bench: no memory for the overlap GEMM\n");
      exit(1);
    }
  }
  for (size_t bytes = o->min_bytes; bytes <= o->max_bytes; bytes *= (size_t)o->step) {
    size_t count = bytes / element;
    if (count == 0) continue;
    for (int k = 0; k < nsweep && out->npoints < MAX_POINTS; k++) {
      force_ctas(gpus, n_local, sweep[k]);
      measure_point(o, paths, gpus, n_local, count, o->overlap ? gemms : NULL,
                    &out->points[out->npoints++], show_progress);
    }
  }
  force_ctas(gpus, n_local, own_ctas);
  for (int g = 0; g < n_local; g++) bench_gemm_destroy(gemms[g]);
  for (int g = 0; g < n_local; g++) {
    ncclResult_t async_error = ncclSuccess;
    CHECK_NCCL(ncclCommGetAsyncError(gpus[g].comm, &async_error));
    if (async_error != ncclSuccess) {
      fprintf(stderr, "nvlar-bench: a GPU reports %s: the numbers are invalid\n",
              ncclGetErrorString(async_error));
      out->failed = 1;
    }
  }
}

static int report(const struct options *o, int n, const char *how, const struct results *r) {
  printf("# nvlar-bench: %d x %s (%s), %s %s, NCCL %d (%s), NCCL_NVLS_ENABLE=%s; communicator "
         "%s\n", n, r->device, how, bench_type_names[o->datatype], bench_op_names[o->op],
         r->version, r->nccl_path, getenv("NCCL_NVLS_ENABLE"),
         r->on_nvlar ? "on nvlar" : "on NCCL (NVLAR_DEBUG=INFO says why)");
  printf("%12s %11s %4s %6s %9s %9s %7s %9s %9s %9s %9s\n", "bytes", "kernel", "ctas", "mode", "nvlar_us",
         "nccl_us", "ratio", "nvlar_alg", "nvlar_bus", "nccl_alg", "nccl_bus");
  FILE *csv = NULL;
  if (o->csv != NULL && (csv = fopen(o->csv, "w")) == NULL) {
    perror(o->csv);
    return 1;
  }
  if (csv != NULL) {
    fprintf(csv, "device,ngpus,dtype,op,bytes,count,kernel,ctas,mode,nvlar_us,nccl_us,ratio,"
                 "nvlar_algbw,nvlar_busbw,nccl_algbw,nccl_busbw,gemm_tflops_alone,"
                 "gemm_tflops_nvlar,gemm_tflops_nccl,nvlar_us_alone,nccl_us_alone,"
                 "gemm_outlasted\n");
  }
  double bus_factor = 2.0 * (n - 1) / n;
  for (int i = 0; i < r->npoints; i++) {
    const struct point *p = &r->points[i];
    for (int m = 0; m < MODES; m++) {
      const float *us = p->us[m];
      double alg[2] = {p->bytes / (us[0] * 1e3), p->bytes / (us[1] * 1e3)};
      const char *mode = mode_names[m];
      printf("%12zu %11s %4d %6s %9.2f %9.2f %7.3f %9.1f %9.1f %9.1f %9.1f\n", p->bytes,
             p->kernel, p->ctas, mode, us[0], us[1], us[0] / us[1], alg[0], alg[0] * bus_factor, alg[1],
             alg[1] * bus_factor);
      if (csv != NULL) {
        fprintf(csv, "%s,%d,%s,%s,%zu,%zu,%s,%d,%s,%.3f,%.3f,%.4f,%.2f,%.2f,%.2f,%.2f,,,,,,\n",
                r->device, n, bench_type_names[o->datatype], bench_op_names[o->op], p->bytes,
                p->count, p->kernel, p->ctas, mode, us[0], us[1], us[0] / us[1], alg[0], alg[0] * bus_factor,
                alg[1], alg[1] * bus_factor);
      }
    }
  }
  /* --overlap: the GEMM's throughput beside each path, and each path's time beside it, set
   * against the same kind of call alone. */
  bool overlap_header = false;
  const int alone_mode = o->overlap_eager ? MODE_EAGER : MODE_GRAPH;
  for (int i = 0; i < r->npoints; i++) {
    const struct point *p = &r->points[i];
    if (!p->overlap_measured) continue;
    if (!overlap_header) {
      printf("# overlap: a bf16 GEMM of %d on a second stream of each GPU, %.0f TFLOP/s alone "
             "(GPU 0); %s mode; kept = the GEMM's TFLOP/s beside the all-reduces / alone; "
             "the all-reduces' streams at %s priority\n",
             o->gemm, p->gemm_tflops[0], mode_names[alone_mode],
             o->high_priority ? "the greatest" : "the default");
      printf("# overlap %10s %11s %4s %9s %9s %9s %9s %8s %8s\n", "bytes", "kernel", "ctas",
             "nvlar_us", "nccl_us", "alone_nv", "alone_nc", "kept_nv", "kept_nc");
      overlap_header = true;
    }
    printf("# overlap %10zu %11s %4d %9.2f %9.2f %9.2f %9.2f %7.1f%% %7.1f%%%s\n", p->bytes,
           p->kernel, p->ctas, p->overlap_us[0], p->overlap_us[1], p->us[alone_mode][0],
           p->us[alone_mode][1], 100.0 * p->gemm_tflops[1] / p->gemm_tflops[0],
           100.0 * p->gemm_tflops[2] / p->gemm_tflops[0],
           p->overlap_outlasted ? "" : " (the GEMMs ended first)");
    if (csv != NULL) {
      double alg[2] = {p->bytes / (p->overlap_us[0] * 1e3), p->bytes / (p->overlap_us[1] * 1e3)};
      fprintf(csv, "%s,%d,%s,%s,%zu,%zu,%s,%d,%s,%.3f,%.3f,%.4f,%.2f,%.2f,%.2f,%.2f,%.1f,"
                   "%.1f,%.1f,%.3f,%.3f,%d\n",
              r->device, n, bench_type_names[o->datatype], bench_op_names[o->op], p->bytes,
              p->count, p->kernel, p->ctas, bench_overlap_series(o),
              p->overlap_us[0], p->overlap_us[1], p->overlap_us[0] / p->overlap_us[1], alg[0], alg[0] * bus_factor, alg[1],
              alg[1] * bus_factor, p->gemm_tflops[0], p->gemm_tflops[1], p->gemm_tflops[2],
              p->us[alone_mode][0], p->us[alone_mode][1], p->overlap_outlasted);
    }
  }
  if (csv != NULL) fclose(csv);
  /* The host path: what ncclAllReduce costs the calling thread beyond launching the kernel. */
  bool host_header = false;
  for (int i = 0; i < r->npoints; i++) {
    const struct point *p = &r->points[i];
    if (p->ctas == 0 || p->host_us[1] <= 0) continue;
    if (!host_header) {
      printf("# host us per call to enqueue (no group): nvlar's ncclAllReduce, the same kernel "
             "launched bare, difference\n");
      host_header = true;
    }
    printf("# host %10zu %11s %8.2f %8.2f %+8.2f\n", p->bytes, p->kernel, p->host_us[0],
           p->host_us[1], p->host_us[0] - p->host_us[1]);
  }
  /* The worst point of each mode (a stall shows here as a ratio far above its neighbours'),
   * and the verdict: the sizes where nvlar is faster than NCCL by more than 5%, within 5%,
   * slower by more than 5%. */
  int above = 0;
  for (int m = 0; m < MODES; m++) {
    static const char *const verdicts[] = {"faster", "within 5%", "slower"};
    char lists[3][512] = {"", "", ""};
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < r->npoints; i++) {
      double ratio = r->points[i].us[m][0] / r->points[i].us[m][1];
      int v = ratio < 0.95 ? 0 : ratio <= 1.05 ? 1 : 2;
      char size[32];
      size_t b = r->points[i].bytes;
      if (b >= (1u << 30) && b % (1u << 30) == 0) snprintf(size, sizeof(size), "%zuG", b >> 30);
      else if (b >= (1u << 20) && b % (1u << 20) == 0) snprintf(size, sizeof(size), "%zuM", b >> 20);
      else if (b >= (1u << 10) && b % (1u << 10) == 0) snprintf(size, sizeof(size), "%zuK", b >> 10);
      else snprintf(size, sizeof(size), "%zu", b);
      size_t used = strlen(lists[v]);
      snprintf(lists[v] + used, sizeof(lists[v]) - used, "%s%s", counts[v] ? " " : "", size);
      counts[v]++;
    }
    printf("# verdict, %s: nvlar", mode_names[m]);
    for (int v = 0; v < 3; v++) {
      printf("%s %s at %d size%s%s%s%s", v ? "," : "", verdicts[v], counts[v],
             counts[v] == 1 ? "" : "s", counts[v] ? " (" : "", lists[v], counts[v] ? ")" : "");
    }
    printf("\n");
  }
  for (int m = 0; m < MODES; m++) {
    double worst = 0;
    size_t worst_bytes = 0;
    for (int i = 0; i < r->npoints; i++) {
      double ratio = r->points[i].us[m][0] / r->points[i].us[m][1];
      if (ratio > worst) {
        worst = ratio;
        worst_bytes = r->points[i].bytes;
      }
    }
    bool fails = o->fail_above > 0 && worst > o->fail_above;
    above |= fails;
    printf("# worst nvlar/NCCL time ratio, %s: %.3f at %zu bytes%s\n", mode_names[m],
           worst, worst_bytes, fails ? " (above --fail-above)" : "");
  }
  return r->failed || above ? 1 : 0;
}

static const struct nvlar_real_nccl *find_nccl(void) {
  if (getenv("NCCL_NVLS_ENABLE") == NULL) setenv("NCCL_NVLS_ENABLE", "0", 1);
  const struct nvlar_real_nccl *nccl = nvlar_real_nccl();
  if (nccl == NULL) {
    fprintf(stderr, "nvlar-bench: no NCCL to compare with (%s)\n", nvlar_missing_nccl_message());
  }
  return nccl;
}

int bench_real(const struct options *o, int n) {
  const struct nvlar_real_nccl *nccl = find_nccl();
  if (nccl == NULL) return 1;
  ncclComm_t comms[MAX_GPUS];
  CHECK_NCCL(ncclCommInitAll(comms, n, NULL));
  size_t bytes = o->max_bytes / bench_type_sizes[o->datatype] * bench_type_sizes[o->datatype];
  struct gpu gpus[MAX_GPUS];
  for (int g = 0; g < n; g++) setup_gpu(&gpus[g], g, comms[g], bytes, o->high_priority);
  struct results *results = calloc(1, sizeof(*results));
  if (results == NULL) return 1;
  measure(o, nccl, gpus, n, results, true);
  int status = report(o, n, "one process", results);
  free(results);
  for (int g = 0; g < n; g++) {
    CHECK_CUDA(cudaSetDevice(g));
    CHECK_CUDA(cudaFree(gpus[g].input));
    CHECK_CUDA(cudaFree(gpus[g].output));
  }
  for (int g = 0; g < n; g++) CHECK_NCCL(ncclCommDestroy(comms[g]));
  return status;
}

struct shared_run {
  atomic_int id_ready;
  ncclUniqueId id;
  struct results ranks[MAX_GPUS];
};

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static int rank_main(const struct options *o, int rank, int n, struct shared_run *shared) {
  const struct nvlar_real_nccl *nccl = find_nccl();
  if (nccl == NULL) return 1;
  if (rank == 0) {
    CHECK_NCCL(ncclGetUniqueId(&shared->id));
    atomic_store(&shared->id_ready, 1);
  }
  for (double deadline = now_seconds() + 60; !atomic_load(&shared->id_ready);) {
    if (now_seconds() > deadline) return 1;
    usleep(1000);
  }
  CHECK_CUDA(cudaSetDevice(rank));
  ncclComm_t comm;
  CHECK_NCCL(ncclCommInitRank(&comm, n, shared->id, rank));
  struct gpu gpu;
  setup_gpu(&gpu, rank, comm, o->max_bytes / bench_type_sizes[o->datatype] * bench_type_sizes[o->datatype],
            o->high_priority);
  measure(o, nccl, &gpu, 1, &shared->ranks[rank], rank == 0);
  CHECK_NCCL(ncclCommDestroy(comm));
  return shared->ranks[rank].failed;
}

int bench_real_procs(const struct options *o, int n) {
  struct shared_run *shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shared == MAP_FAILED) return 1;
  memset(shared, 0, sizeof(*shared));
  fflush(NULL);
  pid_t children[MAX_GPUS];
  for (int r = 0; r < n; r++) {
    children[r] = fork();
    if (children[r] == 0) _exit(rank_main(o, r, n, shared));
  }
  int failed = 0;
  for (int r = 0; r < n; r++) {
    int status = 0;
    if (waitpid(children[r], &status, 0) != children[r] || !WIFEXITED(status) || WEXITSTATUS(status)) {
      failed = 1;
    }
  }
  if (failed) {
    fprintf(stderr, "nvlar-bench: a rank failed; no results\n");
    munmap(shared, sizeof(*shared));
    return 1;
  }
  /* Each point's time is the slowest rank's: a collective ends when its last rank does. */
  struct results *merged = &shared->ranks[0];
  for (int r = 1; r < n; r++) {
    merged->on_nvlar &= shared->ranks[r].on_nvlar;
    for (int i = 0; i < merged->npoints; i++) {
      for (int m = 0; m < MODES; m++) {
        for (int p = 0; p < 2; p++) {
          float other = shared->ranks[r].points[i].us[m][p];
          if (other > merged->points[i].us[m][p]) merged->points[i].us[m][p] = other;
        }
      }
      for (int bare = 0; bare < 2; bare++) {
        float other = shared->ranks[r].points[i].host_us[bare];
        if (other > merged->points[i].host_us[bare]) merged->points[i].host_us[bare] = other;
      }
      /* Beside the GEMM: the slowest rank's all-reduce, the slowest rank's GEMM. */
      const struct point *theirs = &shared->ranks[r].points[i];
      struct point *ours = &merged->points[i];
      for (int p = 0; p < 2; p++) {
        if (theirs->overlap_us[p] > ours->overlap_us[p]) ours->overlap_us[p] = theirs->overlap_us[p];
      }
      for (int k = 0; k < 3; k++) {
        if (theirs->gemm_tflops[k] < ours->gemm_tflops[k]) ours->gemm_tflops[k] = theirs->gemm_tflops[k];
      }
      ours->overlap_outlasted &= theirs->overlap_outlasted;
    }
  }
  int status = report(o, n, "one process per GPU", merged);
  munmap(shared, sizeof(*shared));
  return status;
}
