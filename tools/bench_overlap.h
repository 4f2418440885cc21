/* nvlar-bench --overlap: all-reduces beside a model's GEMM, as DDP's gradient all-reduces run
 * beside the backward pass and tensor-parallel all-reduces beside the next layer's GEMMs.
 *
 * A bf16 GEMM (cuBLAS, fp32 accumulation) runs back to back on its own stream of each GPU
 * while a window of all-reduces runs on theirs. Each GEMM is bracketed by events, so the
 * GEMMs that ran wholly inside the all-reduce window give the GEMM's throughput beside the
 * all-reduces; the window gives the all-reduce's time per call beside the GEMM. Both are set
 * against the same numbers measured alone. */
#ifndef NVLAR_BENCH_OVERLAP_H
#define NVLAR_BENCH_OVERLAP_H

#include <stdbool.h>
#include <stddef.h>

#include <cuda_runtime_api.h>

/* Whether this build has cuBLAS (nvlar-bench builds without --overlap where it has not). */
bool bench_overlap_available(void);

/* A square bf16 GEMM of side `n` on `device` with its own stream, and its time alone. */
struct bench_gemm;
struct bench_gemm *bench_gemm_create(int device, int n);
void bench_gemm_destroy(struct bench_gemm *gemm);
double bench_gemm_tflops_alone(const struct bench_gemm *gemm);

/* The all-reduce side of one measurement. */
struct bench_overlap_work {
  void *ctx;
  /* Makes every all-reduce stream wait for gates[g], recorded on GPU g's GEMM stream once
   * its GEMMs run (one gate per GEMM given to bench_overlap_measure, in that order). */
  void (*wait)(void *ctx, const cudaEvent_t *gates);
  /* Enqueues one batch of `calls` all-reduces (one launch of a captured graph). */
  void (*run)(void *ctx);
  cudaStream_t timed_stream; /* the all-reduce stream on gemms[0]'s GPU: the window's clock */
  int calls;                 /* all-reduces per batch */
  int batches;               /* batches per window; the same on every rank of a collective */
  /* Where nonzero (one process drives every rank, so no rank can disagree), a pilot window of
   * one batch first measures how slow the all-reduces are beside the GEMM, and the windows
   * then hold about this many milliseconds (at least 2 batches, at most `batches`). Beside a
   * GEMM an all-reduce can be 10 to 100 times slower than alone; a window sized from its time
   * alone would then last seconds. */
  float adapt_window_ms;
};

struct bench_overlap_result {
  double gemm_tflops_alone;  /* GPU 0's GEMM alone, measured right after the windows */
  double gemm_tflops_beside; /* of the GEMMs wholly inside the all-reduce window, on GPU 0 */
  float allreduce_us_beside; /* the window over its all-reduces */
  int gemms_inside;          /* how many GEMMs that is (median trial) */
  bool gemm_outlasted;       /* the GEMMs ran until the window ended, in every trial */
};

/* Batches per window for a message of `bytes`: a rule of the size alone (never a timing),
 * so that every rank of a collective runs the same number of all-reduces. */
int bench_overlap_batches(size_t bytes, int calls);

/* Runs the measurement `trials` times (the median is kept), with one GEMM per GPU. */
void bench_overlap_measure(struct bench_gemm *const *gemms, int ngpus,
                           const struct bench_overlap_work *work, int trials,
                           struct bench_overlap_result *out);

#endif
