// The push two-shot: the bandwidth path for real NVLink. Data reach peers by stores, never by
// loads of peer memory: on two H200s (experiments/movers.cu, docs/design.md) stores to
// the peer reach 308 GB/s per direction from 16 CTAs of 256 threads and 333 from 32, where
// loads of peer memory (the pull two-shot's way) reach 116 and 218.
//
// Work: the message is cut into steps of nranks * Q elements (Q chosen per call, the same on
// every rank); step g goes to CTA g % nblocks, so every CTA is a channel that runs its own
// steps in order and meets only the same CTA of the other ranks. Slice s of a step is reduced
// by rank s. For one step, rank r:
//   scatter: stores slice q of its input into rank q's receive area [r], for every peer q,
//            then raises its flag "scattered step j" in every peer;
//   reduce:  waits for every peer's "scattered" flag, reduces slice r in rank order (its own
//            input at position r, the peers' slices from its receive areas), writes it to its
//            output and stores it into every peer's gather area [r], then raises "reduced";
//   gather:  waits for every peer's "reduced" flag and copies their slices from its gather
//            areas into its output.
// Iteration j of a CTA: it scatters step j + A (A steps ahead, NVLAR_PUSH_TWOSHOT_AHEAD, 0 by
// default; steps 0..A-1 are scattered before the first iteration), gathers step j - 1, then
// reduces step j. Its stores of the step ahead cross the link while it waits for its peers'
// results of step j - 1, and with A > 0 the peers' "scattered" flags of step j were raised an
// iteration earlier, so the reduce does not wait a round trip for them.
//
// Moves: the schedule below is one for two movers (as the pull two-shots share theirs,
// twoshot.cuh): the CTA's threads (PushThreadMoves, NVLAR_ALGO_PUSH_TWOSHOT) or bulk copies
// through shared memory (kernels/tma_push.cuh, NVLAR_ALGO_TMA_PUSH). A mover states the slots
// it wants (A + 2) and its largest slice, and moves:
//   scatter(peer_area, src, n)                   n input elements into a peer's receive area
//   reduce(dst, to_peer, own, received, n)       reduce_and_push below
//   gather(dst, area, n)                         n reduced elements from a gather area
//   settle(cta)                                  this CTA's moves so far are complete and
//                                                ordered before its next flag; false: a wait
//                                                of the mover gave up
//
// Memory (kernels/push_twoshot_geometry.h): in a launch of nblocks CTAs, CTA b owns the b-th
// of nblocks equal regions of every rank's staging buffer; a region holds D = A + 2 slots
// (step j uses slot j mod D), each with nranks receive areas and nranks gather areas (the own
// rank's are unused, for simple indexing). Where the region is too small for D slots of 16
// bytes, D = 2 and A = 0. The layout depends on the staging size, nranks, nblocks and the
// mover, never on the count: in calls of one variant on as many CTAs only CTA b ever touches
// region b.
//
// Flags: the barrier flags of the other kernels, one 64-bit word per (source rank, CTA) in
// every rank's signal area, carrying the CTA's sequence number, which only grows. CTA b of rank
// q raises "arrived" (seq0 + 1), then one flag per event of its steps, in a fixed order that is
// the same for CTA b of every rank (it has the same steps): "scattered" for steps 0..A'-1
// (A' = min(A, its steps)), then per iteration j "scattered j + A'" (if that step exists) and
// "reduced j". The k-th event raises seq0 + 1 + k, so a waiter for an event compares with >=
// (push_twoshot_events below; with A = 0, "scattered j" is seq0 + 2 + 2j and "reduced j"
// seq0 + 3 + 2j). Every CTA of a launch ends at seq0 + 1 + 2 * (most steps of any CTA), so all
// progress slots stay equal (nvlar_kernels.h) and no flag is ever ahead of what a later kernel
// waits for.
//
// Why a slot may be overwritten (steps j and j - D share one; D = A + 2):
// - Receive area [r] of rank q, step j (rank r stores it in iteration j - A, or before the
//   first): q read it for step j - D in its reduce of j - D, before raising "reduced j - D";
//   rank r waited for that flag in iteration j - D + 1 = j - A - 1 (before its gather of
//   j - D), so before iteration j - A.
// - Gather area [r] of rank q, step j (rank r stores it in its reduce of j): q read it for step
//   j - D in its gather of j - D, in iteration j - A - 1, before iteration j - A in which it
//   raises "scattered j"; r waits for that flag before its reduce of j.
// - After another kernel (the others read peers' staging and do not all end in a barrier):
//   "arrived" is raised by every CTA after the rank's previous kernel completed (stream order;
//   with PDL after griddepcontrol.wait), and every CTA waits for it from every peer before its
//   first store into peer memory. So no rank still reads or writes any staging for an earlier
//   call.
// - After a call of the same variant on as many CTAs (the rank state records the last
//   kernel and its CTA count; every rank has made the same calls), so of the same layout, no
//   "arrived": a peer's previous call may still run, but only its CTA b touches region b. It has read every receive area of region b that this rank wrote
//   (this rank's CTA b waited for its "reduced" flag of every step before its kernel ended),
//   and this rank writes the peer's gather areas only after the peer's "scattered" flag of the
//   new call, which its new kernel raises. Kernels older than the previous call are over: in
//   every push two-shot call some CTA waits for a flag that each peer raises in that call, so
//   each peer's kernel before it had completed; by induction back to the call that began with
//   "arrived". (The other kernels after a push two-shot: each rank's push two-shot waited for
//   every store that peers made into its staging, and no rank reads a peer's staging in it.)
// A __syncthreads() precedes every flag, so a flag covers the reads and stores of all threads
// of the CTA (bar.sync, then a release store at system scope, which is cumulative); a waiter
// acquires the flag, and the CTA's other threads read after the following __syncthreads().
// Reads of the receive and gather areas bypass L1 (__ldcg): peers rewrite them. A mover's
// settle() precedes every flag, so a flag also covers moves that complete asynchronously.
#pragma once

#include "chunking.cuh"
#include "push_twoshot_geometry.h"
#include "reduce_ops.cuh"
#include "staged.cuh"
#include "wait.cuh"

namespace nvlar {

// 16-byte packs each thread keeps in flight in the copies (scatter, gather), and per source in
// the reduce with 2 ranks. A build-time knob for experiments: on two H200s 8 raised one CTA
// from 11.1 to 12.6 GB/s and 1 GiB from 359 to 362 GB/s busBW, but made 512 KiB-4 MiB 1-10%
// slower (254 registers per thread against fewer), so 4 it is: a CTA is bound by its flag
// round trips more than by memory latency (docs/results.md).
#ifndef NVLAR_PUSH_TWOSHOT_DEPTH
#define NVLAR_PUSH_TWOSHOT_DEPTH 4
#endif
constexpr int kPushTwoshotDepth = NVLAR_PUSH_TWOSHOT_DEPTH;

// Raises this CTA's flag `seq` in every peer's signal area (after all its threads' work).
__device__ __forceinline__ void raise_to_peers(const nvlar_allreduce_args &a, int block, uint64_t seq) {
  __syncthreads();
  if (threadIdx.x < a.nranks && (int)threadIdx.x != a.rank) {
    store_release_sys(a.signals[threadIdx.x] + a.rank * NVLAR_MAX_BLOCKS + block, seq);
  }
}

// Waits until every peer's CTA `block` has raised `seq`; false if one did not come.
__device__ __forceinline__ bool wait_for_peers(const nvlar_allreduce_args &a, int block, uint64_t seq,
                                               CtaWait *cta) {
  if (threadIdx.x < a.nranks && (int)threadIdx.x != a.rank) {
    const uint64_t *flag = a.signals[a.rank] + threadIdx.x * NVLAR_MAX_BLOCKS + block;
    wait_until(a, cta, [&] { return load_acquire_sys(flag) >= seq; }, threadIdx.x, block, seq);
  }
  __syncthreads();
  return cta->gave_up == 0;
}

// The order of a CTA's flags (the top of the file): with `mine` steps of which `ahead` are
// scattered before the first iteration, the number of events up to and including each.
struct PushTwoshotEvents {
  uint64_t mine, ahead;
  __device__ uint64_t scattered(uint64_t j) const { return j < ahead ? j + 1 : 2 * j - ahead + 1; }
  __device__ uint64_t reduced(uint64_t j) const {
    return j + ahead < mine ? ahead + 2 * j + 2 : j + mine + 1;
  }
};

// Reduces n elements: `own` (this rank's input, any alignment) at position `rank`, and the
// peers' slices `received[q]` (staging, aligned) elsewhere, in rank order; writes the result
// to `dst` (user output, any alignment) and, with kToPeers, to every peer's gather area
// `to_peer[q]` (the copy-engine two-shot, kernels/ce_twoshot.cuh, reduces without it: its
// copy engine moves the result).
// kMaxRanks bounds nranks at compile time: each thread keeps kUnroll packs of every source in
// flight before it reduces (one pack per thread and loop left each CTA waiting on one memory
// latency per 4 KiB: 5.8 GB/s per CTA on two H200s), and registers for 8 sources x 4 packs
// would be wasted on the common case of 2 ranks.
template <typename T, int Op, int kMaxRanks, bool kToPeers = true>
__device__ void reduce_and_push(T *dst, T *const *to_peer, const T *own, T *const *received,
                                size_t n, int rank, int nranks) {
  using E = Elem<T>;
  using R = Reduce<T, Op>;
  using Acc = typename E::Acc;
  constexpr int V = Pack<T>::kElems;
  constexpr int kUnroll = kMaxRanks <= 2 ? kPushTwoshotDepth : 2;
  const size_t packs = aligned16(own) ? n / V : 0;
  const bool dst_aligned = aligned16(dst);
  const size_t stride = blockDim.x;
  for (size_t base = threadIdx.x; base < packs; base += kUnroll * stride) {
    Pack<T> in[kUnroll][kMaxRanks];
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const size_t i = base + u * stride;
      if (i >= packs) break;
#pragma unroll
      for (int p = 0; p < kMaxRanks; p++) {
        if (p >= nranks) break;
        if (p == rank) {
          in[u][p].raw = reinterpret_cast<const uint4 *>(own)[i];
        } else {
          in[u][p] = load_staged(received[p] + i * V);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; u++) {
      const size_t i = base + u * stride;
      if (i >= packs) break;
      Pack<T> out;
      reduce_packs<T, Op>(in[u], nranks, out);
      if (dst_aligned) {
        reinterpret_cast<uint4 *>(dst)[i] = out.raw;
      } else {
#pragma unroll
        for (int k = 0; k < V; k++) dst[i * V + k] = out.elems[k];
      }
      if constexpr (kToPeers) {
#pragma unroll
        for (int p = 0; p < kMaxRanks; p++) {
          if (p < nranks && p != rank) reinterpret_cast<uint4 *>(to_peer[p])[i] = out.raw;
        }
      }
    }
  }
  for (size_t i = packs * V + threadIdx.x; i < n; i += blockDim.x) {
    auto source = [&](int p) { return p == rank ? own[i] : load_staged_one(received[p] + i); };
    Acc acc = E::to_acc(source(0));
    for (int p = 1; p < nranks; p++) acc = R::combine(acc, E::to_acc(source(p)));
    T value = E::from_acc(R::finish(acc, nranks));
    dst[i] = value;
    if constexpr (kToPeers) {
      for (int p = 0; p < nranks; p++) {
        if (p != rank) to_peer[p][i] = value;
      }
    }
  }
}

// One step's geometry: where it starts, and slice s = [s * slice, min((s + 1) * slice, length)).
struct PushStep {
  size_t offset, length, slice;
  __device__ Range part(int s) const {
    size_t begin = min_size(slice * s, length);
    return Range{begin, min_size(begin + slice, length)};
  }
};

// The push two-shot's moves by the CTA's own threads (NVLAR_ALGO_PUSH_TWOSHOT).
template <typename T, int Op> struct PushThreadMoves {
  static constexpr int kSlots = NVLAR_PUSH_TWOSHOT_SLOTS;
  static constexpr size_t kSliceCapBytes = NVLAR_PUSH_TWOSHOT_SLICE_CAP_BYTES;
  int rank, nranks;
  __device__ void scatter(T *peer_area, const T *src, size_t n) {
    copy_to_staging<T, kPushTwoshotDepth>(peer_area, src, n);
  }
  __device__ void reduce(T *dst, T *const *to_peer, const T *own, T *const *received, size_t n) {
    if (nranks == 2) {
      reduce_and_push<T, Op, 2>(dst, to_peer, own, received, n, rank, nranks);
    } else {
      reduce_and_push<T, Op, NVLAR_MAX_RANKS>(dst, to_peer, own, received, n, rank, nranks);
    }
  }
  __device__ void gather(T *dst, const T *area, size_t n) {
    copy_from_staging<T, kPushTwoshotDepth>(dst, area, n);
  }
  // Thread stores are ordered by the flag's own __syncthreads() and release.
  __device__ bool settle(CtaWait *) { return true; }
};

// The schedule (the top of the file). Returns the number of sequence numbers every CTA of the
// launch consumed. `meet_first`: raise and wait for "arrived" before the first store into peer
// memory (the previous kernel was not this variant on as many CTAs).
template <typename T, typename Moves>
__device__ uint64_t push_twoshot_schedule(const nvlar_allreduce_args &a, int block, int nblocks,
                                          uint64_t seq0, bool meet_first, CtaWait *cta, Moves &moves) {
  constexpr size_t V = Pack<T>::kElems;
  constexpr int kWanted = Moves::kSlots;
  constexpr size_t kCap = Moves::kSliceCapBytes;
  const int rank = a.rank, nranks = a.nranks;
  const T *input = static_cast<const T *>(a.input);
  T *output = static_cast<T *>(a.output);
  const size_t q = nvlar_push_slice_elems(a.count, sizeof(T), a.staging_bytes, nranks, nblocks, kWanted, kCap);
  const size_t step_elems = q * nranks;
  const uint64_t steps = nvlar_push_steps(a.count, q, nranks);
  const uint64_t most_steps = nvlar_push_most_steps(steps, nblocks);
  const uint64_t mine = steps > (uint64_t)block ? (steps - block + nblocks - 1) / nblocks : 0;
  const uint64_t consumed = 1 + 2 * most_steps;
  if (mine == 0) return consumed;  // no store into peer memory, so no need to meet the peers

  const size_t region = nvlar_push_region_bytes(a.staging_bytes, nblocks);
  const size_t area_bytes = nvlar_push_area_bytes(a.staging_bytes, nranks, nblocks, kWanted, kCap);
  const int slots = nvlar_push_slots(a.staging_bytes, nranks, nblocks, kWanted);
  const uint64_t ahead_most = slots - 2;
  const PushTwoshotEvents events{mine, ahead_most < mine ? ahead_most : mine};
  // Receive (kind 0) or gather (kind 1) area of source `src` in rank p's slot `slot`.
  auto area = [&](int p, uint64_t slot, int kind, int src) {
    char *base = static_cast<char *>(a.staging[p]) + block * region;
    return reinterpret_cast<T *>(base + ((slot * 2 + kind) * nranks + src) * area_bytes);
  };
  auto step_at = [&](uint64_t j) {
    PushStep s;
    s.offset = (j * nblocks + block) * step_elems;
    s.length = min_size(step_elems, a.count - s.offset);
    size_t slice = (s.length + nranks - 1) / nranks;
    s.slice = (slice + V - 1) / V * V;
    return s;
  };
  auto scatter = [&](uint64_t j) {
    const PushStep s = step_at(j);
    for (int k = 1; k < nranks; k++) {
      const int p = (rank + k) % nranks;  // start with the next rank: spreads the links' load
      const Range part = s.part(p);
      moves.scatter(area(p, j % slots, 0, rank), input + s.offset + part.begin, part.size());
    }
  };
  auto gather = [&](uint64_t j) {
    const PushStep s = step_at(j);
    for (int k = 1; k < nranks; k++) {
      const int p = (rank + k) % nranks;
      const Range part = s.part(p);
      moves.gather(output + s.offset + part.begin, area(rank, j % slots, 1, p), part.size());
    }
  };
  auto reduce = [&](uint64_t j) {
    const PushStep s = step_at(j);
    const Range part = s.part(rank);
    T *to_peer[NVLAR_MAX_RANKS];
    T *received[NVLAR_MAX_RANKS];
    for (int p = 0; p < nranks; p++) {
      to_peer[p] = area(p, j % slots, 1, rank);
      received[p] = area(rank, j % slots, 0, p);
    }
    moves.reduce(output + s.offset + part.begin, to_peer, input + s.offset + part.begin, received,
                 part.size());
  };

  if (meet_first) {
    raise_to_peers(a, block, seq0 + 1);
    if (!wait_for_peers(a, block, seq0 + 1, cta)) return consumed;
  }
  for (uint64_t j = 0; j < events.ahead; j++) {
    scatter(j);
    if (!moves.settle(cta)) return consumed;
    raise_to_peers(a, block, seq0 + 1 + events.scattered(j));
  }
  for (uint64_t j = 0; j < mine; j++) {
    if (j + events.ahead < mine) {
      scatter(j + events.ahead);
      if (!moves.settle(cta)) return consumed;
      raise_to_peers(a, block, seq0 + 1 + events.scattered(j + events.ahead));
    }
    if (j > 0) {
      if (!wait_for_peers(a, block, seq0 + 1 + events.reduced(j - 1), cta)) return consumed;
      gather(j - 1);
    }
    if (!wait_for_peers(a, block, seq0 + 1 + events.scattered(j), cta)) return consumed;
    reduce(j);
    if (!moves.settle(cta)) return consumed;
    raise_to_peers(a, block, seq0 + 1 + events.reduced(j));
  }
  if (wait_for_peers(a, block, seq0 + 1 + events.reduced(mine - 1), cta)) gather(mine - 1);
  return consumed;
}

// The push two-shot (NVLAR_ALGO_PUSH_TWOSHOT): its threads move every byte.
template <typename T, int Op>
__device__ uint64_t push_twoshot(const nvlar_allreduce_args &a, int block, int nblocks,
                                 uint64_t seq0, bool meet_first, CtaWait *cta) {
  PushThreadMoves<T, Op> moves{a.rank, a.nranks};
  return push_twoshot_schedule<T>(a, block, nblocks, seq0, meet_first, cta, moves);
}

}  // namespace nvlar
