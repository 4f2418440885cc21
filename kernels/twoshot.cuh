// The pull two-shot (NVLAR_ALGO_TWOSHOT).
#pragma once

#include "barrier.cuh"
#include "chunking.cuh"
#include "staged.cuh"

namespace nvlar {

// Two-shot: per chunk, copy in, barrier, reduce this rank's slice (rank r owns slice r) into
// the output and into this rank's staging "result" area, barrier, then copy every other
// rank's reduced slice from its result area into the output. Each byte crosses NVLink about
// twice instead of nranks-1 times.
template <typename T, int Op>
__device__ void twoshot(const nvlar_allreduce_args &a, int block, int nblocks, uint64_t seq0,
                        uint64_t chunk0, CtaWait *cta, uint64_t *chunks_out) {
  constexpr size_t V = Pack<T>::kElems;
  const size_t chunk_elems = twoshot_chunk_elems<T>(a);
  const T *input = static_cast<const T *>(a.input);
  T *output = static_cast<T *>(a.output);
  uint64_t chunks = (a.count + chunk_elems - 1) / chunk_elems;
  *chunks_out = chunks;
  for (uint64_t j = 0; j < chunks; j++) {
    const StagedChunk<T> c = staged_chunk<T>(a, chunk_elems, chunk0, j);
    const size_t offset = c.offset, length = c.length;
    T *const *stage = c.stage;

    Range in = split(length, block, nblocks, V);
    copy_to_staging(stage[a.rank] + in.begin, input + offset + in.begin, in.size());
    if (!barrier(a, block, nblocks, seq0 + 2 * j + 1, cta)) return;

    Range part = owned_piece(length, a.nranks, a.rank, block, nblocks, V);
    size_t at = part.begin;
    reduce_staged<T, Op>(output + offset + at, stage[a.rank] + chunk_elems + at, stage, at,
                         part.size(), a.nranks);
    if (!barrier(a, block, nblocks, seq0 + 2 * j + 2, cta)) return;

    for (int s = 1; s < a.nranks; s++) {
      int owner = (a.rank + s) % a.nranks;  // start with the next rank: spreads the load
      Range piece = owned_piece(length, a.nranks, owner, block, nblocks, V);
      size_t from = piece.begin;
      copy_from_staging(output + offset + from, stage[owner] + chunk_elems + from, piece.size());
    }
  }
}

}  // namespace nvlar
