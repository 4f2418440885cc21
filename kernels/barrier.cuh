// The pull kernels' barrier (one-shot, two-shot, TMA two-shot).
//
// Synchronisation: a barrier is a flag per (source rank, CTA) in every rank's signal area.
// CTA b of rank r, having finished its part of a phase, writes the barrier's sequence number
// into flag [r][b] of every rank; it then waits until every flag [p][c] of its own area, for
// all ranks p and all CTAs c of the launch, has reached that number. Sequence numbers only
// grow (per-rank state, advanced by the kernel itself), so nothing is ever reset.
#pragma once

#include "nvlar_kernels.h"
#include "wait.cuh"

namespace nvlar {

// Waits for barrier `seq` of this launch. Returns false when a peer did not come in time (or
// the host aborted).
__device__ __forceinline__ bool barrier(const nvlar_allreduce_args &a, int block, int nblocks,
                                        uint64_t seq, CtaWait *cta) {
  __syncthreads();  // this CTA's part of the phase is done (its writes and its reads)
  if (threadIdx.x < a.nranks) {
    store_release_sys(a.signals[threadIdx.x] + a.rank * NVLAR_MAX_BLOCKS + block, seq);
  }
  const uint64_t *own_area = a.signals[a.rank];
  int flags = a.nranks * nblocks;
  for (int i = threadIdx.x; i < flags; i += blockDim.x) {
    int peer = i / nblocks, peer_cta = i - peer * nblocks;
    const uint64_t *flag = own_area + peer * NVLAR_MAX_BLOCKS + peer_cta;
    if (!wait_until(a, cta, [&] { return load_acquire_sys(flag) >= seq; }, peer, peer_cta, seq)) break;
  }
  __syncthreads();  // every flag this CTA depends on has been seen
  return cta->gave_up == 0;
}

}  // namespace nvlar
