#include "emulation.h"

#include <string.h>

#include "params.h"

#define GUARD_OFFSET 256 /* user buffers start here: past CHECK_GUARD_BYTES, 256-aligned */

/* CTAs per SM of the emulated kernel of `algo` for its most demanding instantiation, which
 * bounds every case (fp64 max is as heavy as any). */
static cudaError_t fewest_blocks_per_sm(int algo, int *fewest) {
  cudaError_t error = cudaSuccess;
  *fewest = 1 << 30;
  for (int type = 0; type < 12 && error == cudaSuccess; type++) {
    for (int op = 0; op < 5 && error == cudaSuccess; op++) {
      int blocks = 0;
      error = nvlar_emulated_occupancy(algo, type, op, &blocks);
      if (blocks < *fewest) *fewest = blocks;
    }
  }
  return error;
}

cudaError_t emulation_create(struct emulation *e, int nranks, size_t staging_bytes,
                             size_t max_data_bytes) {
  memset(e, 0, sizeof(*e));
  e->nranks = nranks;
  e->data_bytes = max_data_bytes + 2 * GUARD_OFFSET + 64;
  e->timeout_ns = (uint64_t)nvlar_param_number(NVLAR_P_TIMEOUT_MS) * 1000000ull;
  cudaError_t error = cudaDeviceGetAttribute(&e->multiprocessors, cudaDevAttrMultiProcessorCount, 0);
  /* Ranks on separate streams wait for each other: no kernel may load lazily at its first
   * launch, since loading can wait for the GPU to go idle (nvlar_kernels_load). */
  if (error == cudaSuccess) error = nvlar_kernels_load();
  if (error == cudaSuccess) error = nvlar_emulated_kernels_load();
  if (error == cudaSuccess) error = check_load();
  for (int algo = 0; algo < NVLAR_ALGO_COUNT && error == cudaSuccess; algo++) {
    error = fewest_blocks_per_sm(algo, &e->blocks_per_sm[algo]);
  }
  for (int r = 0; r < nranks && error == cudaSuccess; r++) {
    error = nvlar_buffers_create(&e->buffers[r], staging_bytes);
    if (error == cudaSuccess) nvlar_buffers_view(&e->buffers[r], &e->views[r]);
    if (error == cudaSuccess) error = cudaStreamCreateWithFlags(&e->streams[r], cudaStreamNonBlocking);
    if (error == cudaSuccess) error = cudaMalloc((void **)&e->input[r], e->data_bytes);
    if (error == cudaSuccess) error = cudaMalloc((void **)&e->output[r], e->data_bytes);
  }
  if (error != cudaSuccess) emulation_destroy(e);
  return error;
}

void emulation_destroy(struct emulation *e) {
  cudaDeviceSynchronize();
  for (int r = 0; r < NVLAR_MAX_RANKS; r++) {
    if (e->streams[r] != NULL) cudaStreamDestroy(e->streams[r]);
    if (e->input[r] != NULL) cudaFree(e->input[r]);
    if (e->output[r] != NULL) cudaFree(e->output[r]);
    if (e->buffers[r].shared_base != NULL) nvlar_buffers_destroy(&e->buffers[r]);
  }
  memset(e, 0, sizeof(*e));
}

void *emulation_input(const struct emulation *e, int rank, size_t element_size, int misalign) {
  return e->input[rank] + GUARD_OFFSET + (size_t)misalign * element_size;
}

void *emulation_output(const struct emulation *e, int rank, size_t element_size, int misalign,
                       int in_place) {
  if (in_place) return emulation_input(e, rank, element_size, misalign);
  return e->output[rank] + GUARD_OFFSET + (size_t)misalign * element_size;
}

cudaError_t emulation_poison_rank(const struct emulation *e, int rank, size_t bytes,
                                  cudaStream_t stream) {
  size_t span = bytes + 2 * GUARD_OFFSET + 16;
  if (span > e->data_bytes) return cudaErrorInvalidValue; /* the case does not fit the buffers */
  cudaError_t error = cudaMemsetAsync(e->input[rank], CHECK_POISON_BYTE, span, stream);
  if (error == cudaSuccess) error = cudaMemsetAsync(e->output[rank], CHECK_POISON_BYTE, span, stream);
  return error;
}

cudaError_t emulation_poison(const struct emulation *e, size_t bytes, cudaStream_t stream) {
  cudaError_t error = cudaSuccess;
  for (int r = 0; r < e->nranks && error == cudaSuccess; r++) {
    error = emulation_poison_rank(e, r, bytes, stream);
  }
  return error;
}

void emulation_args(const struct emulation *e, int rank, int algo, int datatype, int op,
                    int nblocks, const void *input, void *output, size_t count,
                    struct nvlar_allreduce_args *args) {
  memset(args, 0, sizeof(*args));
  nvlar_buffers_fill_args(&e->buffers[rank], e->views, rank, e->nranks, args);
  args->algo = algo;
  args->datatype = datatype;
  args->op = op;
  args->nblocks = nblocks;
  args->input = input;
  args->output = output;
  args->count = count;
  args->timeout_ns = e->timeout_ns;
}

int emulation_max_blocks(const struct emulation *e, int nranks, int algo) {
  int per_sm = e->blocks_per_sm[algo];
  int fit = per_sm * e->multiprocessors / nranks;
  return fit > NVLAR_MAX_BLOCKS ? NVLAR_MAX_BLOCKS : fit;
}
