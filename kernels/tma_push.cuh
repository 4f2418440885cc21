// The TMA push two-shot (NVLAR_ALGO_TMA_PUSH, sm_90+): the push two-shot's schedule, layout
// and flags (push_twoshot.cuh), with its bytes moved by the bulk-copy pipeline (tma_pipe.cuh)
// instead of the CTA's threads: a few CTAs for the whole link, the other SMs left to the
// model's kernels.
//
// Why: a push two-shot CTA of 256 threads storing 16 bytes each keeps little in flight, and
// on two H200s the push two-shot reached 154 GB/s from 16 CTAs (about 10 GB/s per CTA) where
// it reached 360 from 128 (docs/results.md). A bulk copy keeps a whole 32 KiB stage in flight
// from one thread, and the pipeline several stages, so the link should fill from few CTAs
// (on H100, bulk copies filled NVLink from about 15 SMs in a published study); and since
// fewer CTAs own larger staging regions (push_twoshot_geometry.h), its slices grow to
// NVLAR_TMA_PUSH_SLICE_CAP_BYTES and each flag round trip carries more bytes.
//
// Moves of one step, rank r:
//   scatter: input slice p, bulk-loaded into shared memory, bulk-stored into rank p's
//            receive area (peer memory);
//   reduce:  its own input slice and the receive areas bulk-loaded, reduced in rank order by
//            the consumer warps in shared memory (reduce_packs: the bits of every other
//            kernel), bulk-stored into every peer's gather area and into its output;
//   gather:  each gather area bulk-loaded and bulk-stored into the output.
// Where this rank's input (or output) is not 16-byte aligned, its phases that read the input
// (or write the output) move with the threads instead, as the push two-shot does; the
// alignment is this rank's own, but it changes only how this rank's bytes move, never the
// steps, slots or flags, which every rank derives from the call alone. Tails of fewer than 16
// bytes (the message's end) move with the threads.
//
// Ordering: each mover's settle() (before every flag) waits until this CTA's bulk stores are
// complete, fences them against the generic proxy and synchronizes the CTA, so the flag's
// release covers them (tma_pipe.cuh); the consumers waited for every bulk load of the phase,
// so every read of a peer-written area is over before the flag that lets the peer rewrite it.
// The producer's fence.proxy.async.global at each phase orders its bulk loads of areas that
// peers wrote after the acquire of their flags. A wait of the pipeline that gives up (only if
// memory stops answering) makes settle() false, and the CTA stops before raising a flag, as
// when a flag does not come.
#pragma once

#include "push_twoshot.cuh"
#include "tma_pipe.cuh"

namespace nvlar {

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

template <typename T, int Op> struct PushTmaMoves {
  static constexpr int kSlots = NVLAR_TMA_PUSH_SLOTS;
  static constexpr size_t kSliceCapBytes = NVLAR_TMA_PUSH_SLICE_CAP_BYTES;
  static constexpr size_t V = Pack<T>::kElems;
  const nvlar_allreduce_args &a;
  TmaPipe &pipe;
  int block;
  CtaWait *cta;
  bool input_aligned, output_aligned;

  __device__ void scatter(T *peer_area, const T *src, size_t n) {
    const size_t bulk =
        tma_copy_bulk_part<T, Op>(a, peer_area, src, n, input_aligned, pipe, block, cta);
    copy_to_staging<T, kPushTwoshotDepth>(peer_area + bulk, src + bulk, n - bulk);
  }
  __device__ void reduce(T *dst, T *const *to_peer, const T *own, T *const *received, size_t n) {
    const int rank = a.rank, nranks = a.nranks;
    const size_t bulk = input_aligned ? n / V * V : 0;
    if (bulk > 0) {
      TmaJob<T> job = {};
      for (int p = 0; p < nranks; p++) {
        job.src[p] = reinterpret_cast<const unsigned char *>(p == rank ? own : received[p]);
      }
      job.nsrc = nranks;
      int d = 0;
      for (int p = 0; p < nranks; p++) {
        if (p != rank) job.dst[d++] = reinterpret_cast<unsigned char *>(to_peer[p]);
      }
      if (output_aligned) {
        job.dst[d] = reinterpret_cast<unsigned char *>(dst);
      } else {
        job.plain_out = dst;
      }
      job.bytes = bulk * sizeof(T);
      tma_run<T, Op>(a, job, pipe, block, cta);
    }
    if (bulk < n) {
      T *to_peer_rest[NVLAR_MAX_RANKS];
      T *received_rest[NVLAR_MAX_RANKS];
      for (int p = 0; p < nranks; p++) {
        to_peer_rest[p] = to_peer[p] + bulk;
        received_rest[p] = received[p] + bulk;
      }
      reduce_and_push<T, Op, NVLAR_MAX_RANKS>(dst + bulk, to_peer_rest, own + bulk, received_rest,
                                              n - bulk, rank, nranks);
    }
  }
  __device__ void gather(T *dst, const T *area, size_t n) {
    const size_t bulk = tma_copy_bulk_part<T, Op>(a, dst, area, n, output_aligned, pipe, block, cta);
    copy_from_staging<T, kPushTwoshotDepth>(dst + bulk, area + bulk, n - bulk);
  }
  __device__ bool settle(CtaWait *waits) {
    tma_stores_done(pipe);
    __syncthreads();
    return waits->gave_up == 0;
  }
};

template <typename T, int Op>
__device__ uint64_t tma_push_twoshot(const nvlar_allreduce_args &a, int block, int nblocks,
                                     uint64_t seq0, bool meet_first, CtaWait *cta) {
  extern __shared__ __align__(128) unsigned char tma_shared[];
  TmaPipe pipe;
  tma_pipe_init(pipe, tma_shared);
  PushTmaMoves<T, Op> moves{a, pipe, block, cta, aligned16(a.input), aligned16(a.output)};
  const uint64_t consumed = push_twoshot_schedule<T>(a, block, nblocks, seq0, meet_first, cta, moves);
  // The last gather's stores (or those of a phase cut short) are over before the CTA's shared
  // memory goes, and before its end counts (count_cta_over).
  moves.settle(cta);
  return consumed;
}

#else  // below sm_90: no bulk copies; the host never selects this kernel there

// The same schedule with the threads' moves but this variant's slots and slices, so that the
// flags would still be this variant's.
template <typename T, int Op> struct PushTmaMoves : PushThreadMoves<T, Op> {
  static constexpr int kSlots = NVLAR_TMA_PUSH_SLOTS;
  static constexpr size_t kSliceCapBytes = NVLAR_TMA_PUSH_SLICE_CAP_BYTES;
};

template <typename T, int Op>
__device__ uint64_t tma_push_twoshot(const nvlar_allreduce_args &a, int block, int nblocks,
                                     uint64_t seq0, bool meet_first, CtaWait *cta) {
  PushTmaMoves<T, Op> moves;
  moves.rank = a.rank;
  moves.nranks = a.nranks;
  return push_twoshot_schedule<T>(a, block, nblocks, seq0, meet_first, cta, moves);
}

#endif

}  // namespace nvlar
