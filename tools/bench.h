/* Shared pieces of nvlar-bench's two modes. */
#ifndef NVLAR_BENCH_H
#define NVLAR_BENCH_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "nvlar_kernels.h"

#define CHECK_CUDA(call)                                                                     \
  do {                                                                                       \
    cudaError_t bench_error = (call);                                                        \
    if (bench_error != cudaSuccess) {                                                        \
      fprintf(stderr, "nvlar-bench: %s: %s\n", #call, cudaGetErrorString(bench_error));      \
      exit(1);                                                                               \
    }                                                                                        \
  } while (0)

struct options {
  int emulate;          /* ranks; 0: not given */
  int gpus;             /* real mode: 0 = all */
  int procs;            /* real mode: one process per GPU */
  int datatype, op;
  int algos[NVLAR_ALGO_COUNT], nalgos;
  size_t min_bytes, max_bytes;
  int max_bytes_given;  /* real mode defaults to 1 GiB, emulated to 256 MiB */
  int step;             /* size multiplier */
  int blocks;           /* 0: automatic */
  int sweep_blocks;     /* also time both two-shots at max_bytes for 1, 2, 4, ... CTAs */
  int pdl;              /* emulated: programmatic dependent launch (NVLAR_PDL) */
  int pdl_gain;         /* emulated: also time every point with PDL off and on */
  int overlap;          /* also time every point beside a GEMM (bench_overlap.h) */
  int gemm;             /* the overlap GEMM's side */
  int high_priority;    /* the all-reduces' streams at the device's greatest priority */
  int overlap_eager;    /* --overlap-launch eager: the calls beside the GEMM issued one by one */
  size_t buffer_bytes;
  int trials;
  double fail_above;    /* real mode: exit 1 when an nvlar/NCCL time ratio exceeds it (0: never) */
  const char *csv;
  const char *plot;     /* PNG prefix: run scripts/plot on the CSV at the end (NULL: no plot) */
};

extern const char *const bench_type_names[];
extern const size_t bench_type_sizes[];
extern const char *const bench_op_names[];

int bench_compare_floats(const void *a, const void *b);

/* The CSV name of --overlap's rows (series emulated, mode real): how the calls were issued. */
static inline const char *bench_overlap_series(const struct options *o) {
  return o->overlap_eager ? "overlap-eager" : "overlap";
}

/* The stream the all-reduces run on: non-blocking, at the device's greatest priority with
 * --stream-priority high (as PyTorch gives its NCCL streams with is_high_priority_stream), at
 * the default (lowest) otherwise. A GEMM's pending CTAs then wait behind the all-reduce's. */
cudaError_t bench_stream_create(cudaStream_t *stream, int high_priority);

/* Real mode: nvlar against NCCL on `gpus` GPUs driven by this process. */
int bench_real(const struct options *o, int gpus);

/* Real mode, one process per GPU (forked; the caller must not have initialised CUDA). */
int bench_real_procs(const struct options *o, int gpus);

#endif
