// The pull one-shot (NVLAR_ALGO_ONESHOT).
#pragma once

#include "barrier.cuh"
#include "chunking.cuh"
#include "staged.cuh"

namespace nvlar {

// One-shot: per chunk, copy this CTA's range of the input into staging, barrier, then reduce
// the same range from every rank's staging into the output. Latency: one barrier per chunk.
template <typename T, int Op>
__device__ void oneshot(const nvlar_allreduce_args &a, int block, int nblocks, uint64_t seq0,
                        uint64_t chunk0, CtaWait *cta, uint64_t *chunks_out) {
  constexpr size_t V = Pack<T>::kElems;
  const size_t chunk_elems = (a.staging_bytes / 2) / sizeof(T) / V * V;
  const T *input = static_cast<const T *>(a.input);
  T *output = static_cast<T *>(a.output);
  uint64_t chunks = (a.count + chunk_elems - 1) / chunk_elems;
  *chunks_out = chunks;
  for (uint64_t j = 0; j < chunks; j++) {
    const StagedChunk<T> c = staged_chunk<T>(a, chunk_elems, chunk0, j);
    const size_t offset = c.offset, length = c.length;
    T *const *stage = c.stage;
    Range mine = split(length, block, nblocks, V);
    copy_to_staging(stage[a.rank] + mine.begin, input + offset + mine.begin, mine.size());
    if (!barrier(a, block, nblocks, seq0 + j + 1, cta)) return;
    reduce_staged<T, Op>(output + offset + mine.begin, nullptr, stage, mine.begin, mine.size(),
                         a.nranks);
  }
}

}  // namespace nvlar
