/* nvlar-bench real mode: nvlar against NCCL on the local GPUs, one process driving them all.
 *
 * nvlar-bench links nvlar's code itself (the internal library), so its ncclAllReduce is nvlar's
 * wrapper: eligible calls run on nvlar's kernels. NCCL alone is timed through the real NCCL's
 * own entry point (pncclAllReduce), on the same communicators and buffers, alternating with
 * nvlar trial by trial so that both see the same machine state. */
#include <string.h>

#include <nccl.h>

#include "bench.h"
#include "comm_registry.h"
#include "real_nccl.h"
#include "selection.h"
#include "setup.h"

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
  ncclComm_t comm;
  cudaStream_t stream;
  void *input, *output;
  cudaEvent_t start, stop;
};

struct path {
  const char *name;
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

/* Time per call (µs) of `calls` calls: the slowest GPU's span between its events. With
 * `graph`, the calls are captured into one graph per GPU first and the graphs are timed. */
static float time_calls(const struct path *path, struct gpu *gpus, int n, size_t count,
                        int datatype, int op, int calls, int graph) {
  cudaGraphExec_t execs[MAX_GPUS];
  if (graph) {
    for (int g = 0; g < n; g++) {
      CHECK_CUDA(cudaSetDevice(g));
      CHECK_CUDA(cudaStreamBeginCapture(gpus[g].stream, cudaStreamCaptureModeRelaxed));
    }
    for (int i = 0; i < calls; i++) issue(path, gpus, n, count, datatype, op);
    for (int g = 0; g < n; g++) {
      cudaGraph_t captured;
      CHECK_CUDA(cudaSetDevice(g));
      CHECK_CUDA(cudaStreamEndCapture(gpus[g].stream, &captured));
      CHECK_CUDA(cudaGraphInstantiate(&execs[g], captured, 0));
      CHECK_CUDA(cudaGraphDestroy(captured));
    }
  }
  for (int g = 0; g < n; g++) {
    CHECK_CUDA(cudaSetDevice(g));
    CHECK_CUDA(cudaEventRecord(gpus[g].start, gpus[g].stream));
  }
  if (graph) {
    for (int g = 0; g < n; g++) {
      CHECK_CUDA(cudaSetDevice(g));
      CHECK_CUDA(cudaGraphLaunch(execs[g], gpus[g].stream));
    }
  } else {
    for (int i = 0; i < calls; i++) issue(path, gpus, n, count, datatype, op);
  }
  float slowest = 0;
  for (int g = 0; g < n; g++) {
    CHECK_CUDA(cudaSetDevice(g));
    CHECK_CUDA(cudaEventRecord(gpus[g].stop, gpus[g].stream));
  }
  for (int g = 0; g < n; g++) {
    float ms = 0;
    CHECK_CUDA(cudaSetDevice(g));
    CHECK_CUDA(cudaEventSynchronize(gpus[g].stop));
    CHECK_CUDA(cudaEventElapsedTime(&ms, gpus[g].start, gpus[g].stop));
    if (ms > slowest) slowest = ms;
    if (graph) CHECK_CUDA(cudaGraphExecDestroy(execs[g]));
  }
  return slowest * 1000.0f / calls;
}

/* Which path nvlar takes for this size on this communicator. */
static const char *nvlar_kernel(ncclComm_t comm, size_t bytes) {
  struct nvlar_comm *entry = nvlar_registry_find(comm);
  if (entry == NULL || entry->route == NULL) return "nccl";
  struct nvlar_choice choice = nvlar_select(&entry->route->policy, bytes);
  if (!choice.nvlar) return "nccl";
  return choice.algo == NVLAR_ALGO_TWOSHOT ? "twoshot" : "oneshot";
}

int bench_real(const struct options *o, int n) {
  if (getenv("NCCL_NVLS_ENABLE") == NULL) setenv("NCCL_NVLS_ENABLE", "0", 1);
  const struct nvlar_real_nccl *nccl = nvlar_real_nccl();
  if (nccl == NULL) {
    fprintf(stderr, "nvlar-bench: no NCCL to compare with (%s)\n", nvlar_missing_nccl_message());
    return 1;
  }
  struct path paths[2] = {
      {"nvlar", ncclAllReduce, ncclGroupStart, ncclGroupEnd},
      {"nccl", nccl->ncclAllReduce, nccl->ncclGroupStart, nccl->ncclGroupEnd},
  };
  ncclComm_t comms[MAX_GPUS];
  CHECK_NCCL(ncclCommInitAll(comms, n, NULL));
  size_t element = bench_type_sizes[o->datatype];
  size_t max_count = o->max_bytes / element;
  struct gpu gpus[MAX_GPUS];
  for (int g = 0; g < n; g++) {
    CHECK_CUDA(cudaSetDevice(g));
    gpus[g].comm = comms[g];
    CHECK_CUDA(cudaStreamCreateWithFlags(&gpus[g].stream, cudaStreamNonBlocking));
    CHECK_CUDA(cudaMalloc(&gpus[g].input, max_count * element + 16));
    CHECK_CUDA(cudaMalloc(&gpus[g].output, max_count * element + 16));
    CHECK_CUDA(cudaMemset(gpus[g].input, 0x3c, max_count * element)); /* not zeros */
    CHECK_CUDA(cudaEventCreate(&gpus[g].start));
    CHECK_CUDA(cudaEventCreate(&gpus[g].stop));
  }
  struct cudaDeviceProp prop;
  CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
  int version = 0;
  nccl->ncclGetVersion(&version);
  struct nvlar_comm *entry = nvlar_registry_find(comms[0]);
  printf("# nvlar-bench: %d x %s, %s %s, NCCL %d (%s), NCCL_NVLS_ENABLE=%s; communicator %s\n", n,
         prop.name, bench_type_names[o->datatype], bench_op_names[o->op], version, nccl->path,
         getenv("NCCL_NVLS_ENABLE"),
         entry != NULL && entry->route != NULL ? "on nvlar"
                                               : "on NCCL (NVLAR_DEBUG=INFO says why)");
  printf("%12s %8s %6s %9s %9s %7s %9s %9s %9s %9s\n", "bytes", "kernel", "mode", "nvlar_us",
         "nccl_us", "ratio", "nvlar_alg", "nvlar_bus", "nccl_alg", "nccl_bus");
  FILE *csv = NULL;
  if (o->csv != NULL && (csv = fopen(o->csv, "w")) == NULL) {
    perror(o->csv);
    return 1;
  }
  if (csv != NULL) {
    fprintf(csv, "device,ngpus,dtype,op,bytes,count,kernel,mode,nvlar_us,nccl_us,ratio,"
                 "nvlar_algbw,nvlar_busbw,nccl_algbw,nccl_busbw\n");
  }
  double bus_factor = 2.0 * (n - 1) / n;
  for (size_t bytes = o->min_bytes; bytes <= o->max_bytes; bytes *= (size_t)o->step) {
    size_t count = bytes / element;
    if (count == 0) continue;
    int calls = bytes >= (16u << 20) ? CALLS_LARGE : CALLS_SMALL;
    const char *kernel = nvlar_kernel(comms[0], count * element);
    for (int graph = 0; graph < 2; graph++) {
      float samples[2][64];
      int trials = o->trials > 64 ? 64 : o->trials;
      for (int p = 0; p < 2; p++) time_calls(&paths[p], gpus, n, count, o->datatype, o->op, 2, graph);
      for (int t = 0; t < trials; t++) {
        for (int p = 0; p < 2; p++) {
          samples[p][t] = time_calls(&paths[p], gpus, n, count, o->datatype, o->op, calls, graph);
        }
      }
      float us[2];
      for (int p = 0; p < 2; p++) {
        qsort(samples[p], trials, sizeof(float), bench_compare_floats);
        us[p] = samples[p][trials / 2];
      }
      double bytes_moved = (double)(count * element);
      double alg[2] = {bytes_moved / (us[0] * 1e3), bytes_moved / (us[1] * 1e3)};
      const char *mode = graph ? "graph" : "eager";
      printf("%12zu %8s %6s %9.2f %9.2f %7.3f %9.1f %9.1f %9.1f %9.1f\n", count * element, kernel,
             mode, us[0], us[1], us[0] / us[1], alg[0], alg[0] * bus_factor, alg[1],
             alg[1] * bus_factor);
      if (csv != NULL) {
        fprintf(csv, "%s,%d,%s,%s,%zu,%zu,%s,%s,%.3f,%.3f,%.4f,%.2f,%.2f,%.2f,%.2f\n", prop.name,
                n, bench_type_names[o->datatype], bench_op_names[o->op], count * element, count,
                kernel, mode, us[0], us[1], us[0] / us[1], alg[0], alg[0] * bus_factor, alg[1],
                alg[1] * bus_factor);
      }
    }
  }
  if (csv != NULL) fclose(csv);
  int failures = 0;
  for (int g = 0; g < n; g++) {
    ncclResult_t async_error = ncclSuccess;
    CHECK_NCCL(ncclCommGetAsyncError(comms[g], &async_error));
    if (async_error != ncclSuccess) {
      fprintf(stderr, "nvlar-bench: GPU %d reports %s: the numbers are invalid\n", g,
              ncclGetErrorString(async_error));
      failures++;
    }
    CHECK_CUDA(cudaSetDevice(g));
    CHECK_CUDA(cudaFree(gpus[g].input));
    CHECK_CUDA(cudaFree(gpus[g].output));
  }
  for (int g = 0; g < n; g++) CHECK_NCCL(ncclCommDestroy(comms[g]));
  return failures ? 1 : 0;
}
