/* nvlar-bench --overlap: all-reduces beside a bf16 GEMM (bench_overlap.h says what is
 * measured). The GEMMs are fed by the host while the all-reduce window runs, a few queued
 * ahead, so that they run without a break across the whole window and stop soon after it. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "bench_overlap.h"

#ifdef NVLAR_BENCH_HAVE_CUBLAS
#include <cublas_v2.h>

#define CHECK_CUBLAS(call)                                                                   \
  do {                                                                                       \
    cublasStatus_t bench_status = (call);                                                    \
    if (bench_status != CUBLAS_STATUS_SUCCESS) {                                             \
      fprintf(stderr, "nvlar-bench: %s: cuBLAS status %d\n", #call, (int)bench_status);      \
      exit(1);                                                                               \
    }                                                                                        \
  } while (0)

/* GEMMs a window may hold (events bracket each); a window that needs more ends the feed, and
 * the result says the GEMMs did not outlast it. */
#define MAX_GEMMS 4096
/* GEMMs kept queued ahead of the one running, so that the host's polling never leaves the
 * GPU without one. */
#define GEMMS_AHEAD 3
/* No window may take longer than this (an all-reduce kernel gives up after NVLAR_TIMEOUT_MS,
 * so this is reached only if something is badly wrong). */
#define WINDOW_LIMIT_S 300.0

struct bench_gemm {
  int device;
  int n;
  cublasHandle_t handle;
  cudaStream_t stream;
  void *a, *b, *c;
  cudaEvent_t marks[MAX_GEMMS + 1]; /* marks[i]: before GEMM i, i.e. after GEMM i-1 */
  cudaEvent_t gate;
  int launched;
  double flops;
  float ms_alone; /* median per GEMM */
};

bool bench_overlap_available(void) { return true; }

static void launch_gemm(struct bench_gemm *g) {
  const float alpha = 1.0f, beta = 0.0f;
  CHECK_CUBLAS(cublasGemmEx(g->handle, CUBLAS_OP_N, CUBLAS_OP_N, g->n, g->n, g->n, &alpha, g->a,
                            CUDA_R_16BF, g->n, g->b, CUDA_R_16BF, g->n, &beta, g->c, CUDA_R_16BF,
                            g->n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  CHECK_CUDA(cudaEventRecord(g->marks[g->launched + 1], g->stream));
  g->launched++;
}

static float elapsed_ms(cudaEvent_t from, cudaEvent_t to) {
  float ms = 0;
  CHECK_CUDA(cudaEventElapsedTime(&ms, from, to));
  return ms;
}

/* Values in [-1, 1) (not zeros, whose multiplications draw less power and so run at higher
 * clocks than a model's), the same on every GPU. */
static void fill_random_bf16(void *device_buffer, size_t elements) {
  uint16_t *host = malloc(elements * sizeof(uint16_t));
  if (host == NULL) {
    fprintf(stderr, "nvlar-bench: out of host memory for the GEMM's inputs\n");
    exit(1);
  }
  uint32_t state = 12345u;
  for (size_t i = 0; i < elements; i++) {
    state = state * 1664525u + 1013904223u;
    float value = (float)(state >> 8) / (float)(1u << 23) - 1.0f;
    uint32_t bits;
    memcpy(&bits, &value, sizeof(bits));
    host[i] = (uint16_t)(bits >> 16);
  }
  CHECK_CUDA(cudaMemcpy(device_buffer, host, elements * sizeof(uint16_t), cudaMemcpyHostToDevice));
  free(host);
}

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* GEMMs alone: ALONE_WARM to warm up (cuBLAS picks its kernel, the clocks reach the state
 * that the power limit holds them in), then the median of ALONE_TIMED. Fewer, right after a
 * window, caught the GPU between power states: 15 of them (about 20 ms) varied by 8% either
 * way from point to point on an H100 (docs/data/runs/2026-12-07-budget, run 4). */
#define ALONE_WARM 10
#define ALONE_TIMED 60
static float gemm_alone_ms(struct bench_gemm *g) {
  CHECK_CUDA(cudaSetDevice(g->device));
  g->launched = 0;
  CHECK_CUDA(cudaEventRecord(g->marks[0], g->stream));
  for (int i = 0; i < ALONE_WARM + ALONE_TIMED; i++) launch_gemm(g);
  CHECK_CUDA(cudaStreamSynchronize(g->stream));
  double ms[ALONE_TIMED];
  for (int i = 0; i < ALONE_TIMED; i++) {
    ms[i] = elapsed_ms(g->marks[ALONE_WARM + i], g->marks[ALONE_WARM + i + 1]);
  }
  qsort(ms, ALONE_TIMED, sizeof(double), compare_doubles);
  return (float)ms[ALONE_TIMED / 2];
}

struct bench_gemm *bench_gemm_create(int device, int n) {
  struct bench_gemm *g = calloc(1, sizeof(*g));
  if (g == NULL) return NULL;
  g->device = device;
  g->n = n;
  g->flops = 2.0 * n * n * (double)n;
  CHECK_CUDA(cudaSetDevice(device));
  CHECK_CUDA(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking));
  CHECK_CUBLAS(cublasCreate(&g->handle));
  CHECK_CUBLAS(cublasSetStream(g->handle, g->stream));
  size_t elements = (size_t)n * n;
  CHECK_CUDA(cudaMalloc(&g->a, elements * 2));
  CHECK_CUDA(cudaMalloc(&g->b, elements * 2));
  CHECK_CUDA(cudaMalloc(&g->c, elements * 2));
  fill_random_bf16(g->a, elements);
  fill_random_bf16(g->b, elements);
  for (int i = 0; i <= MAX_GEMMS; i++) CHECK_CUDA(cudaEventCreate(&g->marks[i]));
  CHECK_CUDA(cudaEventCreateWithFlags(&g->gate, cudaEventDisableTiming));
  g->ms_alone = gemm_alone_ms(g);
  return g;
}

void bench_gemm_destroy(struct bench_gemm *g) {
  if (g == NULL) return;
  CHECK_CUDA(cudaSetDevice(g->device));
  CHECK_CUDA(cudaStreamSynchronize(g->stream));
  for (int i = 0; i <= MAX_GEMMS; i++) CHECK_CUDA(cudaEventDestroy(g->marks[i]));
  CHECK_CUDA(cudaEventDestroy(g->gate));
  CHECK_CUBLAS(cublasDestroy(g->handle));
  CHECK_CUDA(cudaFree(g->a));
  CHECK_CUDA(cudaFree(g->b));
  CHECK_CUDA(cudaFree(g->c));
  CHECK_CUDA(cudaStreamDestroy(g->stream));
  free(g);
}

double bench_gemm_tflops_alone(const struct bench_gemm *g) {
  return g->flops / (g->ms_alone * 1e-3) / 1e12;
}

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* One window: returns the GEMM throughput inside it (TFLOP/s) and the all-reduce's µs per
 * call, from GPU 0's clock. */
static void measure_once(struct bench_gemm *const *gemms, int ngpus,
                         const struct bench_overlap_work *work, double *tflops, float *us,
                         int *inside, bool *outlasted) {
  cudaEvent_t gates[8];
  for (int g = 0; g < ngpus; g++) {
    struct bench_gemm *gemm = gemms[g];
    CHECK_CUDA(cudaSetDevice(gemm->device));
    gemm->launched = 0;
    CHECK_CUDA(cudaEventRecord(gemm->marks[0], gemm->stream));
    /* The all-reduces start once the second GEMM has ended: the GEMM stream is busy by then,
     * and its first GEMM (which may pay for a cold start) is not in the window. */
    for (int i = 0; i < 2; i++) launch_gemm(gemm);
    CHECK_CUDA(cudaEventRecord(gemm->gate, gemm->stream));
    gates[g] = gemm->gate;
    while (gemm->launched < 2 + GEMMS_AHEAD) launch_gemm(gemm);
  }
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaSetDevice(gemms[0]->device));
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  work->wait(work->ctx, gates);
  CHECK_CUDA(cudaSetDevice(gemms[0]->device));
  CHECK_CUDA(cudaEventRecord(start, work->timed_stream));
  for (int b = 0; b < work->batches; b++) work->run(work->ctx);
  CHECK_CUDA(cudaSetDevice(gemms[0]->device));
  CHECK_CUDA(cudaEventRecord(stop, work->timed_stream));
  /* Feed the GEMMs until the window has ended, keeping GEMMS_AHEAD queued on every GPU. */
  double deadline = now_seconds() + WINDOW_LIMIT_S;
  for (;;) {
    CHECK_CUDA(cudaSetDevice(gemms[0]->device));
    cudaError_t state = cudaEventQuery(stop);
    if (state == cudaSuccess) break;
    if (state != cudaErrorNotReady) CHECK_CUDA(state);
    if (now_seconds() > deadline) {
      fprintf(stderr, "nvlar-bench: an overlap window took over %.0f s; giving up\n",
              WINDOW_LIMIT_S);
      exit(1);
    }
    for (int g = 0; g < ngpus; g++) {
      struct bench_gemm *gemm = gemms[g];
      if (gemm->launched >= MAX_GEMMS) continue;
      CHECK_CUDA(cudaSetDevice(gemm->device));
      /* marks[launched - GEMMS_AHEAD + 1] has passed: fewer than GEMMS_AHEAD are left. */
      cudaError_t done = cudaEventQuery(gemm->marks[gemm->launched - GEMMS_AHEAD + 1]);
      if (done == cudaSuccess) launch_gemm(gemm);
      else if (done != cudaErrorNotReady) CHECK_CUDA(done);
    }
  }
  for (int g = 0; g < ngpus; g++) {
    CHECK_CUDA(cudaSetDevice(gemms[g]->device));
    CHECK_CUDA(cudaStreamSynchronize(gemms[g]->stream));
  }
  const struct bench_gemm *gemm = gemms[0];
  CHECK_CUDA(cudaSetDevice(gemm->device));
  float window_start = elapsed_ms(gemm->marks[0], start);
  float window_end = elapsed_ms(gemm->marks[0], stop);
  double busy_ms = 0;
  int count = 0;
  for (int i = 0; i < gemm->launched; i++) {
    float begin = elapsed_ms(gemm->marks[0], gemm->marks[i]);
    float end = elapsed_ms(gemm->marks[0], gemm->marks[i + 1]);
    if (begin >= window_start && end <= window_end) {
      busy_ms += end - begin;
      count++;
    }
  }
  *tflops = count > 0 ? count * gemm->flops / (busy_ms * 1e-3) / 1e12 : NAN;
  *us = (window_end - window_start) * 1000.0f / ((float)work->batches * work->calls);
  *inside = count;
  *outlasted = elapsed_ms(gemm->marks[0], gemm->marks[gemm->launched]) >= window_end;
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
}

void bench_overlap_measure(struct bench_gemm *const *gemms, int ngpus,
                           const struct bench_overlap_work *work, int trials,
                           struct bench_overlap_result *out) {
  if (trials > 15) trials = 15;
  if (trials < 1) trials = 1;
  struct bench_overlap_work sized = *work;
  if (work->adapt_window_ms > 0) {
    double pilot_tflops;
    float pilot_us = 0;
    int pilot_count;
    bool pilot_outlasted;
    sized.batches = 1;
    measure_once(gemms, ngpus, &sized, &pilot_tflops, &pilot_us, &pilot_count, &pilot_outlasted);
    double batch_ms = pilot_us * work->calls / 1000.0;
    double batches = batch_ms > 0 ? ceil(work->adapt_window_ms / batch_ms) : work->batches;
    sized.batches = batches < 2 ? 2 : batches > work->batches ? work->batches : (int)batches;
  }
  double tflops[15], us[15], inside[15];
  bool outlasted = true;
  for (int t = 0; t < trials; t++) {
    float window_us = 0;
    int count = 0;
    bool this_outlasted = false;
    measure_once(gemms, ngpus, &sized, &tflops[t], &window_us, &count, &this_outlasted);
    us[t] = window_us;
    inside[t] = count;
    outlasted &= this_outlasted;
  }
  qsort(tflops, trials, sizeof(double), compare_doubles);
  qsort(us, trials, sizeof(double), compare_doubles);
  qsort(inside, trials, sizeof(double), compare_doubles);
  /* The GEMM alone again, right after the windows: a GPU at its power limit moves its clocks
   * by several percent from one measurement to the next (docs/results.md, "What one held SM
   * costs"), so the share kept is taken against this one, not the one at the start. */
  out->gemm_tflops_alone = gemms[0]->flops / (gemm_alone_ms(gemms[0]) * 1e-3) / 1e12;
  out->gemm_tflops_beside = tflops[trials / 2];
  out->allreduce_us_beside = (float)us[trials / 2];
  out->gemms_inside = (int)inside[trials / 2];
  out->gemm_outlasted = outlasted;
}

#else /* no cuBLAS in this build */

bool bench_overlap_available(void) { return false; }
struct bench_gemm *bench_gemm_create(int device, int n) {
  (void)device;
  (void)n;
  return NULL;
}
void bench_gemm_destroy(struct bench_gemm *gemm) { (void)gemm; }
double bench_gemm_tflops_alone(const struct bench_gemm *gemm) {
  (void)gemm;
  return 0;
}
void bench_overlap_measure(struct bench_gemm *const *gemms, int ngpus,
                           const struct bench_overlap_work *work, int trials,
                           struct bench_overlap_result *out) {
  (void)gemms;
  (void)ngpus;
  (void)work;
  (void)trials;
  memset(out, 0, sizeof(*out));
}

#endif

int bench_overlap_batches(size_t bytes, int calls) {
  /* About 25 ms of all-reduces at a pessimistic 4 µs + 150 GB/s per call alone: long enough
   * to hold over ten GEMMs of 8192 (about 1.4 ms each alone on an H200), and more where the
   * GEMM slows the all-reduces down. */
  double estimate_us = 4.0 + (double)bytes / 150e3;
  double batches = ceil(25000.0 / (estimate_us * calls));
  if (batches < 2) batches = 2;
  if (batches > 2000) batches = 2000;
  return (int)batches;
}
