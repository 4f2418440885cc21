// The bulk-copy pipeline (sm_90+) of nvlar's TMA kernels, the TMA two-shot (tma_twoshot.cuh)
// and the TMA push two-shot (tma_push.cuh): the Tensor Memory Accelerator's bulk copies
// (cp.async.bulk) through a pipeline of shared-memory stages, so that a few CTAs keep enough
// bytes in flight for full bandwidth and the other SMs stay free for the model's own kernels.
//
// Roles: in every CTA, one thread of warp 0 (the producer) issues the bulk loads, global ->
// shared, of a "tile" from every source into a stage, and announces the bytes on the stage's
// `full` mbarrier; the other 7 warps (the consumers) wait for the stage, reduce it in shared
// memory if there are several sources, and one of them issues the bulk stores, shared ->
// global (this GPU's memory or a peer's), then frees the stage on its `empty` mbarrier once
// the stores have read it. With kTmaStages stages the producer is up to kTmaStages tiles
// ahead, so the loads of all sources for the next stages are in flight while the consumers
// reduce this one.
//
// A kernel's phase is a "job" (one or several sources of equal length, up to NVLAR_MAX_RANKS
// destinations): its 16-byte-multiple part goes through the pipeline; the kernels move its
// tail (fewer than 16 bytes) and any user buffer that is not 16-byte aligned with their
// threads, in the same kernel.
//
// Memory ordering, beyond each kernel's own flags:
// - Bulk copies run in the async proxy. Before the producer loads data that other GPUs wrote
//   and this CTA acquired through flags (generic proxy), it issues fence.proxy.async.global,
//   so that the loads are ordered after that acquire.
// - Before a flag announces this rank's writes, the thread that issued the bulk stores waits
//   for them to complete (cp.async.bulk.wait_group 0) and issues fence.proxy.async.global
//   (tma_stores_done), so they are ordered before the __syncthreads() and the release store of
//   the flag (release is cumulative).
// - Consumers write reduced values into shared memory with ordinary stores, which a bulk store
//   (async proxy) then reads: every writer issues fence.proxy.async.shared::cta before the
//   named barrier after which one thread issues the store.
// - A stage is refilled only after the stores that read it are done reading
//   (cp.async.bulk.wait_group.read before the `empty` arrival).
#pragma once

#include "chunking.cuh"
#include "reduce_ops.cuh"
#include "staged.cuh"
#include "wait.cuh"

namespace nvlar {

constexpr int kTmaStages = NVLAR_TMA_STAGES;
// The storing thread frees a stage kTmaStoresInFlight tiles after storing it (once the store
// has read it): it does not stall on each store, and the producer stays
// kTmaStages - kTmaStoresInFlight stages ahead. Must be below kTmaStages, or the producer
// would wait for a stage that is freed only after a tile it has yet to load.
#ifndef NVLAR_TMA_STORES_IN_FLIGHT
#define NVLAR_TMA_STORES_IN_FLIGHT 2
#endif
constexpr int kTmaStoresInFlight = NVLAR_TMA_STORES_IN_FLIGHT;
static_assert(kTmaStoresInFlight < kTmaStages, "a stage must be freed before it is needed");
constexpr uint32_t kTmaStageBytes = 32u << 10;
constexpr int kTmaConsumerThreads = NVLAR_THREADS - 32;  // warps 1..7
constexpr int kTmaBarrierBytes = 128;                    // 2 x kTmaStages mbarriers, rounded
constexpr size_t kTmaSharedBytes = kTmaBarrierBytes + (size_t)kTmaStages * kTmaStageBytes;
static_assert(kTmaSharedBytes == NVLAR_TMA_SHARED_BYTES, "nvlar_kernels.h states the size");
static_assert(2 * kTmaStages * sizeof(uint64_t) <= kTmaBarrierBytes, "barriers fit");

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900

__device__ __forceinline__ uint32_t shared_address(const void *p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mbarrier_init(uint64_t *bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(shared_address(bar)), "r"(count)
               : "memory");
}

__device__ __forceinline__ void mbarrier_arrive_expect(uint64_t *bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(shared_address(bar)),
               "r"(bytes)
               : "memory");
}

__device__ __forceinline__ void mbarrier_arrive(uint64_t *bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(shared_address(bar)) : "memory");
}

__device__ __forceinline__ bool mbarrier_try_wait(uint64_t *bar, uint32_t parity) {
  uint32_t done;
  asm volatile(
      "{\n\t.reg .pred p;\n\t"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
      "selp.u32 %0, 1, 0, p;\n\t}"
      : "=r"(done)
      : "r"(shared_address(bar)), "r"(parity)
      : "memory");
  return done != 0;
}

// Bulk load of `bytes` (a multiple of 16; both addresses 16-byte aligned) from global memory,
// this GPU's or a peer's, into shared memory; completion is counted on `bar`.
__device__ __forceinline__ void bulk_load(void *dst, const void *src, uint32_t bytes, uint64_t *bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(
          shared_address(dst)),
      "l"(src), "r"(bytes), "r"(shared_address(bar))
      : "memory");
}

__device__ __forceinline__ void bulk_store(void *dst, const void *src, uint32_t bytes) {
  asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(dst),
               "r"(shared_address(src)), "r"(bytes)
               : "memory");
}

__device__ __forceinline__ void bulk_commit() { asm volatile("cp.async.bulk.commit_group;" ::: "memory"); }
// All but the newest `kPending` store groups of this thread have read their shared memory.
template <int kPending> __device__ __forceinline__ void bulk_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;" ::"n"(kPending) : "memory");
}
__device__ __forceinline__ void bulk_wait_done() {
  asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}
__device__ __forceinline__ void fence_async_global() {
  asm volatile("fence.proxy.async.global;" ::: "memory");
}
__device__ __forceinline__ void fence_async_shared() {
  asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}
// Barrier 1 among the consumer warps only (barrier 0 is __syncthreads()).
__device__ __forceinline__ void consumers_sync() {
  asm volatile("bar.sync 1, %0;" ::"n"(kTmaConsumerThreads) : "memory");
}

// The pipeline's state as one thread sees it: `tiles` counts the tiles this thread's role has
// passed so far in this launch; stage = tiles % kTmaStages, and the parity of the stage's
// barriers flips every kTmaStages tiles. Producer and consumers pass the same tile sequence.
struct TmaPipe {
  unsigned char *stages;
  uint64_t *full, *empty;
  uint32_t tiles;
  uint32_t freed;  // the storing thread's: tiles whose stage it has freed (<= tiles)
};

// The storing thread frees every stage whose store has read it, except the newest `kPending`.
template <int kPending> __device__ __forceinline__ void tma_free_stages(TmaPipe &pipe, uint32_t stored) {
  if (stored - pipe.freed <= kPending) return;
  bulk_wait_read<kPending>();
  for (; pipe.freed + kPending < stored; pipe.freed++) mbarrier_arrive(&pipe.empty[pipe.freed % kTmaStages]);
}

// Waits on a pipeline barrier (wait_until: it completes unless a peer's memory stops
// answering, and gives up like every other wait of the kernel).
__device__ __forceinline__ bool tma_wait(const nvlar_allreduce_args &a, uint64_t *bar,
                                         uint32_t parity, int block, CtaWait *cta) {
  return wait_until(a, cta, [&] { return mbarrier_try_wait(bar, parity); }, -1, block, 0);
}

// One phase: `nsrc` sources of `bytes` bytes each (16-byte aligned, a multiple of 16) are
// loaded tile by tile; with several sources the consumers reduce them in rank order into the
// first source's place in the stage (and, if `plain_out` is set, also store the values there
// with ordinary stores: an output that is not 16-byte aligned); the result (or, with one
// source, the data itself) is bulk-stored to every `dst[d]` that is not null.
template <typename T> struct TmaJob {
  const unsigned char *src[NVLAR_MAX_RANKS];
  int nsrc;
  unsigned char *dst[NVLAR_MAX_RANKS];
  T *plain_out;
  size_t bytes;
};

template <typename T, int Op>
__device__ void tma_run(const nvlar_allreduce_args &a, const TmaJob<T> &job, TmaPipe &pipe,
                        int block, CtaWait *cta) {
  constexpr int V = Pack<T>::kElems;
  // Each source gets an equal share of the stage, in whole 16-byte packs.
  const uint32_t tile = kTmaStageBytes / job.nsrc / 16 * 16;
  const uint32_t ntiles = (uint32_t)((job.bytes + tile - 1) / tile);
  const int consumer = (int)threadIdx.x - 32;
  if (threadIdx.x == 0) {
    fence_async_global();  // loads after the acquire of the barrier that published the data
    for (uint32_t t = 0; t < ntiles; t++) {
      uint32_t n = pipe.tiles + t, stage = n % kTmaStages, round = n / kTmaStages;
      // Round 0 finds the stage free: waiting for parity 1 of a fresh barrier returns at once.
      if (!tma_wait(a, &pipe.empty[stage], (round & 1) ^ 1, block, cta)) break;
      uint32_t size = (uint32_t)min_size(tile, job.bytes - (size_t)t * tile);
      mbarrier_arrive_expect(&pipe.full[stage], size * job.nsrc);
      unsigned char *slots = pipe.stages + (size_t)stage * kTmaStageBytes;
      for (int s = 0; s < job.nsrc; s++) {
        bulk_load(slots + (size_t)s * tile, job.src[s] + (size_t)t * tile, size, &pipe.full[stage]);
      }
    }
  } else if (consumer >= 0 && (job.nsrc > 1 || consumer == 0)) {
    for (uint32_t t = 0; t < ntiles; t++) {
      uint32_t n = pipe.tiles + t, stage = n % kTmaStages, round = n / kTmaStages;
      uint32_t size = (uint32_t)min_size(tile, job.bytes - (size_t)t * tile);
      unsigned char *slots = pipe.stages + (size_t)stage * kTmaStageBytes;
      if (job.nsrc > 1) {
        // One consumer waits with a bound and tells the others; then every consumer also
        // observes the completed phase itself (it has completed: no spin), which makes the
        // bulk-loaded bytes visible to its own reads.
        if (consumer == 0 && !tma_wait(a, &pipe.full[stage], round & 1, block, cta)) cta->gave_up = 1;
        consumers_sync();
        if (cta->gave_up) break;
        while (!mbarrier_try_wait(&pipe.full[stage], round & 1)) {
        }
        T *plain = job.plain_out == nullptr ? nullptr : job.plain_out + (size_t)t * (tile / sizeof(T));
        for (uint32_t i = consumer; i < size / 16; i += kTmaConsumerThreads) {
          Pack<T> in[NVLAR_MAX_RANKS];
#pragma unroll
          for (int p = 0; p < NVLAR_MAX_RANKS; p++) {
            if (p < job.nsrc) in[p].raw = reinterpret_cast<const uint4 *>(slots + (size_t)p * tile)[i];
          }
          Pack<T> out;
          reduce_packs<T, Op>(in, job.nsrc, out);
          reinterpret_cast<uint4 *>(slots)[i] = out.raw;
          if (plain != nullptr) {
#pragma unroll
            for (int k = 0; k < V; k++) plain[i * V + k] = out.elems[k];
          }
        }
        fence_async_shared();  // these shared-memory writes, before the bulk store reads them
        consumers_sync();
      } else if (!tma_wait(a, &pipe.full[stage], round & 1, block, cta)) {
        break;
      }
      if (consumer == 0) {
        for (int d = 0; d < NVLAR_MAX_RANKS; d++) {
          if (job.dst[d] != nullptr) bulk_store(job.dst[d] + (size_t)t * tile, slots, size);
        }
        bulk_commit();
        tma_free_stages<kTmaStoresInFlight>(pipe, n + 1);
      }
    }
  }
  pipe.tiles += ntiles;
}

// The bulk stores this CTA issued are complete, their stages are free, and the stores are
// ordered before what follows (a barrier).
__device__ __forceinline__ void tma_stores_done(TmaPipe &pipe) {
  if (threadIdx.x == 32) {
    tma_free_stages<0>(pipe, pipe.tiles);
    bulk_wait_done();
    fence_async_global();
  }
}

// Copies `bytes` (16-byte aligned, a multiple of 16) from `src` to `dst` through the
// pipeline: either may be this GPU's memory or a peer's.
template <typename T, int Op>
__device__ void tma_copy(const nvlar_allreduce_args &a, void *dst, const void *src, size_t bytes,
                         TmaPipe &pipe, int block, CtaWait *cta) {
  TmaJob<T> job = {};
  job.src[0] = static_cast<const unsigned char *>(src);
  job.nsrc = 1;
  job.dst[0] = static_cast<unsigned char *>(dst);
  job.bytes = bytes;
  tma_run<T, Op>(a, job, pipe, block, cta);
}

// Copies the part of `n` elements that the pipeline can move, the largest multiple of 16
// bytes, from `src` to `dst` when `aligned` says both start 16-byte aligned, and nothing
// otherwise; returns how many elements it copied. The caller's threads copy the rest (the
// tail, or everything of a buffer that is not aligned), each mover with its own thread copy.
template <typename T, int Op>
__device__ size_t tma_copy_bulk_part(const nvlar_allreduce_args &a, T *dst, const T *src,
                                     size_t n, bool aligned, TmaPipe &pipe, int block,
                                     CtaWait *cta) {
  const size_t bulk = aligned ? n / Pack<T>::kElems * Pack<T>::kElems : 0;
  if (bulk > 0) tma_copy<T, Op>(a, dst, src, bulk * sizeof(T), pipe, block, cta);
  return bulk;
}

// The pipeline in the kernel's dynamic shared memory (kTmaSharedBytes): its barriers, made
// visible to the bulk copies, before any thread of the CTA uses them.
__device__ __forceinline__ void tma_pipe_init(TmaPipe &pipe, unsigned char *shared) {
  pipe.full = reinterpret_cast<uint64_t *>(shared);
  pipe.empty = pipe.full + kTmaStages;
  pipe.stages = shared + kTmaBarrierBytes;
  pipe.tiles = 0;
  pipe.freed = 0;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kTmaStages; s++) {
      mbarrier_init(&pipe.full[s], 1);   // the producer's arrive (plus the loaded bytes)
      mbarrier_init(&pipe.empty[s], 1);  // the storing consumer's arrive
    }
    // The barriers' initialisation is visible to the async proxy (the bulk copies).
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
}

#endif  // sm_90+

}  // namespace nvlar
