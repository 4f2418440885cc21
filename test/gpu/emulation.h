/* N ranks on one GPU in one process: each rank gets its own nvlar buffers (through
 * plugin/peer_buffers.c, as in production), a stream, and input/output buffers with poisoned
 * guard bytes on both sides. */
#ifndef NVLAR_TEST_EMULATION_H
#define NVLAR_TEST_EMULATION_H

#include <stddef.h>
#include <stdint.h>

#include "allreduce_check.h"
#include "nvlar_emulation.h"
#include "nvlar_kernels.h"
#include "peer_buffers.h"

struct emulation {
  int nranks;
  struct nvlar_local_buffers buffers[NVLAR_MAX_RANKS];
  struct nvlar_peer_buffers views[NVLAR_MAX_RANKS];
  cudaStream_t streams[NVLAR_MAX_RANKS];
  unsigned char *input[NVLAR_MAX_RANKS];  /* data_bytes + guards */
  unsigned char *output[NVLAR_MAX_RANKS];
  size_t data_bytes;
  uint64_t timeout_ns;                    /* from NVLAR_TIMEOUT_MS */
  int multiprocessors;
  int blocks_per_sm[NVLAR_ALGO_COUNT];    /* per algorithm, its heaviest instantiation (the
                                             TMA two-shot: one, for its shared memory) */
};

/* Returns cudaSuccess or the first CUDA error. max_data_bytes: the largest message. */
cudaError_t emulation_create(struct emulation *e, int nranks, size_t staging_bytes,
                             size_t max_data_bytes);
void emulation_destroy(struct emulation *e);

/* The element-aligned user pointers of a case: `misalign` elements past a 256-byte boundary
 * (and past the leading guard). */
void *emulation_input(const struct emulation *e, int rank, size_t element_size, int misalign);
void *emulation_output(const struct emulation *e, int rank, size_t element_size, int misalign,
                       int in_place);

/* Poisons the bytes around and under a case's buffers (guards included), of every rank or of
 * one rank. */
cudaError_t emulation_poison(const struct emulation *e, size_t bytes, cudaStream_t stream);
cudaError_t emulation_poison_rank(const struct emulation *e, int rank, size_t bytes,
                                  cudaStream_t stream);

/* Fills rank `rank`'s kernel arguments for one call. */
void emulation_args(const struct emulation *e, int rank, int algo, int datatype, int op,
                    int nblocks, const void *input, void *output, size_t count,
                    struct nvlar_allreduce_args *args);

/* How many CTAs per rank of `algo` fit for `nranks` emulated ranks in one launch (all
 * co-resident). */
int emulation_max_blocks(const struct emulation *e, int nranks, int algo);

#endif
