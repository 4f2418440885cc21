/* Test inputs and an independent reference for the all-reduce kernels, on the GPU so that
 * 64 MiB cases check every element in milliseconds.
 *
 * Rank r's input element i is a pure function of (seed, r, i, datatype, op). Floats get small
 * integers (or +-1, +-2 for prod) whose sums and products are exact in the type, as
 * nccl-tests does; integers get random bits, so that wrap-around is exercised. The reference
 * recomputes every rank's inputs and reduces them in double (floats) or 64-bit integers, by code
 * that shares nothing with the kernels. */
#ifndef NVLAR_TEST_ALLREDUCE_CHECK_H
#define NVLAR_TEST_ALLREDUCE_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CHECK_POISON_BYTE 0xA5
#define CHECK_GUARD_BYTES 64

struct check_result {
  unsigned long long mismatches;   /* elements that differ from the reference */
  unsigned long long first_bad;    /* one such element index */
  unsigned long long rank_diffs;   /* elements whose bits differ between ranks */
  unsigned long long guard_errors; /* bytes written outside [0, count) */
  double got, want;                /* the values at first_bad, for the message */
};

size_t check_type_size(int datatype);
const char *check_type_name(int datatype);
const char *check_op_name(int op);

/* Writes rank `rank`'s input into `buffer` (count elements). */
cudaError_t check_fill(void *buffer, size_t count, int datatype, int op, int rank, int nranks,
                       uint64_t seed, cudaStream_t stream);

/* Checks `noutputs` outputs (count elements each; each preceded and followed by
 * CHECK_GUARD_BYTES of CHECK_POISON_BYTE that must survive) against the reference for
 * `nranks` ranks, and against each other bit for bit. Accumulates into *result (device
 * memory, zero it first). Avg of floats is allowed 2 ulp; everything else must be exact. */
cudaError_t check_verify(void *const *outputs, int noutputs, size_t count, int datatype, int op,
                         int nranks, uint64_t seed, struct check_result *result,
                         cudaStream_t stream);

/* A kernel that only waits `ns` nanoseconds: makes one emulated rank late on purpose. */
cudaError_t check_spin(uint64_t ns, cudaStream_t stream);

/* Whether kernels on the `n` streams run at the same time, as emulated ranks on separate
 * streams need: one single-thread kernel per stream, each waiting (at most two seconds) until
 * all have started. *concurrent = 0 where CUDA runs kernels one at a time: under
 * compute-sanitizer (which serialises kernel launches), CUDA_LAUNCH_BLOCKING=1, or with fewer
 * hardware queues (CUDA_DEVICE_MAX_CONNECTIONS) than streams. Synchronises the device. */
cudaError_t check_concurrent(const cudaStream_t *streams, int n, int *concurrent);

/* Loads the kernels above without launching them (see nvlar_kernels_load). */
cudaError_t check_load(void);

#ifdef __cplusplus
}
#endif

#endif
