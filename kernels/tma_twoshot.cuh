// The TMA two-shot (sm_90+): the two-shot's algorithm, chunks, staging layout and barriers
// (twoshot_schedule), with the data moved by the bulk-copy pipeline (tma_pipe.cuh). Its
// ordering beyond the two-shot's barrier argument (chunking.cuh) is the pipeline's: bulk loads
// after the barrier that published their data, bulk stores complete before the barrier that
// announces them (settle, chunk_done).
#pragma once

#include "barrier.cuh"
#include "chunking.cuh"
#include "reduce_ops.cuh"
#include "staged.cuh"
#include "tma_pipe.cuh"
#include "twoshot.cuh"
#include "wait.cuh"

namespace nvlar {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

// The TMA two-shot's moves (twoshot_schedule): each range's 16-byte-multiple part through the
// pipeline, its tail and any user buffer that is not 16-byte aligned by the threads.
template <typename T, int Op> struct TmaMoves {
  static constexpr size_t V = Pack<T>::kElems;
  const nvlar_allreduce_args &a;
  TmaPipe &pipe;
  int block;
  CtaWait *cta;
  bool input_aligned, output_aligned;

  __device__ void copy_in(T *staging, const T *input, size_t n) {
    const size_t bulk =
        tma_copy_bulk_part<T, Op>(a, staging, input, n, input_aligned, pipe, block, cta);
    copy_to_staging(staging + bulk, input + bulk, n - bulk);
  }
  __device__ void reduce(T *output, T *result, T *const *stage, size_t at, size_t n) {
    size_t bulk = n / V * V;
    if (bulk > 0) {
      TmaJob<T> job = {};
      for (int p = 0; p < a.nranks; p++) job.src[p] = reinterpret_cast<const unsigned char *>(stage[p] + at);
      job.nsrc = a.nranks;
      job.dst[0] = reinterpret_cast<unsigned char *>(result);
      if (output_aligned) {
        job.dst[1] = reinterpret_cast<unsigned char *>(output);
      } else {
        job.plain_out = output;
      }
      job.bytes = bulk * sizeof(T);
      tma_run<T, Op>(a, job, pipe, block, cta);
    }
    reduce_staged<T, Op>(output + bulk, result + bulk, stage, at + bulk, n - bulk, a.nranks);
  }
  __device__ void gather(T *output, const T *result, size_t n) {
    const size_t bulk =
        tma_copy_bulk_part<T, Op>(a, output, result, n, output_aligned, pipe, block, cta);
    copy_from_staging(output + bulk, result + bulk, n - bulk);
  }
  __device__ void settle() { tma_stores_done(pipe); }
  // The next chunk's reads of this chunk's half come after its first barrier, which waits
  // for this CTA's reads to be done: the consumers consumed every tile they were sent.
  __device__ bool chunk_done(CtaWait *waits) {
    tma_stores_done(pipe);
    __syncthreads();
    return waits->gave_up == 0;
  }
};

template <typename T, int Op>
__device__ void tma_twoshot(const nvlar_allreduce_args &a, int block, int nblocks, uint64_t seq0,
                            uint64_t chunk0, CtaWait *cta, uint64_t *chunks_out) {
  extern __shared__ __align__(128) unsigned char tma_shared[];
  TmaPipe pipe;
  tma_pipe_init(pipe, tma_shared);
  TmaMoves<T, Op> moves{a, pipe, block, cta, aligned16(a.input), aligned16(a.output)};
  twoshot_schedule<T>(a, block, nblocks, seq0, chunk0, cta, chunks_out, moves);
}

#else  // below sm_90: no bulk copies; the host never selects this kernel there

template <typename T, int Op>
__device__ void tma_twoshot(const nvlar_allreduce_args &a, int block, int nblocks, uint64_t seq0,
                            uint64_t chunk0, CtaWait *cta, uint64_t *chunks_out) {
  twoshot<T, Op>(a, block, nblocks, seq0, chunk0, cta, chunks_out);
}

#endif

}  // namespace nvlar
