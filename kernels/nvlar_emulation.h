/* Ranks emulated on one GPU, for tests and the benchmark's --emulate mode: the kernels of
 * nvlar_kernels.h built as one launch that runs every rank (CTA (b, r) of the grid runs CTA b
 * of rank r). They live in the library nvlar_emulation (kernels/meson.build), built from the
 * same sources as libnvlar's kernels with NVLAR_EMULATED_BUILD=1; libnvlar.so does not
 * contain them. Link nvlar_emulation and nvlar's kernels together (nvlar_allreduce_check). */
#ifndef NVLAR_EMULATION_H
#define NVLAR_EMULATION_H

#include "nvlar_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* All ranks of one call in a single launch. Every rank's arguments must pass
 * nvlar_allreduce_check, have rank r at index r, and agree on the call. All nranks * nblocks
 * CTAs must fit on the GPU at once, or the ranks wait for CTAs that cannot start (and time
 * out). */
cudaError_t nvlar_allreduce_launch_emulated(const struct nvlar_allreduce_args *ranks, int nranks,
                                            cudaStream_t stream);

/* Loads every emulated kernel (and the empty kernel) onto the current device, as
 * nvlar_kernels_load does for the real ranks' kernels: call both before the first launch. */
cudaError_t nvlar_emulated_kernels_load(void);

/* How many CTAs of the emulated kernel for this algorithm, type and op fit on one
 * multiprocessor at once: emulation needs nranks * nblocks <= this times the SM count. */
cudaError_t nvlar_emulated_occupancy(int algo, int datatype, int op, int *blocks_per_sm);

/* An empty kernel with the same grid as a call of `nblocks` CTAs for `nranks` emulated ranks:
 * the launch floor that the benchmark reports next to each kernel. */
cudaError_t nvlar_empty_launch(int nblocks, int nranks, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
