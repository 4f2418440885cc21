// The two-shots' schedule, and the pull two-shot (NVLAR_ALGO_TWOSHOT) over it.
#pragma once

#include "barrier.cuh"
#include "chunking.cuh"
#include "staged.cuh"

namespace nvlar {

// The two-shots' schedule, one for the pull two-shot and the TMA two-shot: per chunk, copy in,
// barrier, reduce this rank's slice (rank r owns slice r) into the output and into this
// rank's staging "result" area, barrier, then copy every other rank's reduced slice from its
// result area into the output. Each byte crosses NVLink about twice instead of nranks-1
// times. `Moves` moves the bytes (addresses in elements, every staging address 16-byte
// aligned):
//   copy_in(staging, input, n)            this CTA's range of the input into its staging
//   reduce(output, result, stage, at, n)  n elements at `at` of every rank's staging half,
//                                         in rank order, into the output and the result area
//   gather(output, result, n)             n reduced elements from a peer's result area
//   settle()                              this CTA's moves so far are complete and ordered
//                                         before the barrier that follows
//   chunk_done(cta)                       the end of a chunk; false: a wait gave up
template <typename T, typename Moves>
__device__ void twoshot_schedule(const nvlar_allreduce_args &a, int block, int nblocks,
                                 uint64_t seq0, uint64_t chunk0, CtaWait *cta,
                                 uint64_t *chunks_out, Moves &moves) {
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
    moves.copy_in(stage[a.rank] + in.begin, input + offset + in.begin, in.size());
    moves.settle();
    if (!barrier(a, block, nblocks, seq0 + 2 * j + 1, cta)) return;

    Range part = owned_piece(length, a.nranks, a.rank, block, nblocks, V);
    size_t at = part.begin;
    moves.reduce(output + offset + at, stage[a.rank] + chunk_elems + at, stage, at, part.size());
    moves.settle();
    if (!barrier(a, block, nblocks, seq0 + 2 * j + 2, cta)) return;

    for (int s = 1; s < a.nranks; s++) {
      int owner = (a.rank + s) % a.nranks;  // start with the next rank: spreads the load
      Range piece = owned_piece(length, a.nranks, owner, block, nblocks, V);
      size_t from = piece.begin;
      moves.gather(output + offset + from, stage[owner] + chunk_elems + from, piece.size());
    }
    if (!moves.chunk_done(cta)) return;
  }
}

// The pull two-shot (NVLAR_ALGO_TWOSHOT): its threads move every byte.
template <typename T, int Op> struct ThreadMoves {
  int nranks;
  __device__ void copy_in(T *staging, const T *input, size_t n) { copy_to_staging(staging, input, n); }
  __device__ void reduce(T *output, T *result, T *const *stage, size_t at, size_t n) {
    reduce_staged<T, Op>(output, result, stage, at, n, nranks);
  }
  __device__ void gather(T *output, const T *result, size_t n) { copy_from_staging(output, result, n); }
  __device__ void settle() {}
  __device__ bool chunk_done(CtaWait *) { return true; }
};

template <typename T, int Op>
__device__ void twoshot(const nvlar_allreduce_args &a, int block, int nblocks, uint64_t seq0,
                        uint64_t chunk0, CtaWait *cta, uint64_t *chunks_out) {
  ThreadMoves<T, Op> moves{a.nranks};
  twoshot_schedule<T>(a, block, nblocks, seq0, chunk0, cta, chunks_out, moves);
}

}  // namespace nvlar
