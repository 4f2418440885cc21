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
// Memory: CTA b owns the b-th of NVLAR_MAX_BLOCKS equal regions of every rank's staging
// buffer, whatever the launch's CTA count; a region holds D = A + 2 slots (step j uses slot
// j mod D), each with nranks receive areas and nranks gather areas (the own rank's are unused,
// for simple indexing). Where the staging buffer is too small for D slots of 16 bytes, D = 2
// and A = 0. The layout depends only on the staging size and nranks, never on the call, so that
// only CTA b of any call ever touches region b.
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
// - After a push two-shot (the rank state records the last kernel; every rank has made the
//   same calls), no "arrived": a peer's previous push two-shot may still run, but only its
//   CTA b touches region b. It has read every receive area of region b that this rank wrote
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
// Reads of the receive and gather areas bypass L1 (__ldcg): peers rewrite them.
#pragma once

#include "chunking.cuh"
#include "reduce_ops.cuh"
#include "staged.cuh"
#include "wait.cuh"

namespace nvlar {

// Largest slice per rank and step: bigger slices mean fewer flag round trips per byte; the
// slots must also fit the CTA's region of the staging buffer.
constexpr size_t kPushTwoshotSliceCapBytes = 64u << 10;

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

// The fixed layout: bytes of a CTA's region, its slots (NVLAR_PUSH_TWOSHOT_SLOTS where each
// area then holds 16 bytes, else 2), and the bytes of one receive or gather area in it (slots
// x 2 kinds x nranks areas per region), at most the cap. At least 16: staging_bytes >= 64 KiB.
__device__ __forceinline__ size_t push_twoshot_region_bytes(const nvlar_allreduce_args &a) {
  return a.staging_bytes / NVLAR_MAX_BLOCKS / 256 * 256;
}
__device__ __forceinline__ int push_twoshot_slots(const nvlar_allreduce_args &a) {
  constexpr size_t kSlots = NVLAR_PUSH_TWOSHOT_SLOTS;
  if constexpr (kSlots == 2) return 2;
  return push_twoshot_region_bytes(a) / (kSlots * 2 * (size_t)a.nranks) >= 16 ? (int)kSlots : 2;
}
__device__ __forceinline__ size_t push_twoshot_area_bytes(const nvlar_allreduce_args &a) {
  size_t fit = push_twoshot_region_bytes(a) / ((size_t)push_twoshot_slots(a) * 2 * a.nranks) / 16 * 16;
  return fit < kPushTwoshotSliceCapBytes ? fit : kPushTwoshotSliceCapBytes;
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

// Elements per slice (Q) of a call: the message spread over all CTAs' first steps, in whole
// 16-byte packs, at most an area. The same on every rank.
template <typename T>
__device__ __forceinline__ size_t push_twoshot_slice_elems(const nvlar_allreduce_args &a) {
  constexpr size_t V = Pack<T>::kElems;
  const size_t fit_elems = push_twoshot_area_bytes(a) / sizeof(T);
  const size_t per_rank = (a.count + (size_t)a.nranks * a.nblocks - 1) / ((size_t)a.nranks * a.nblocks);
  const size_t wanted = (per_rank + V - 1) / V * V;
  return wanted < fit_elems ? wanted : fit_elems;
}

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

// Returns the number of sequence numbers every CTA of the launch consumed. `meet_first`: raise
// and wait for "arrived" before the first store into peer memory (the previous kernel was not
// a push two-shot).
template <typename T, int Op>
__device__ uint64_t push_twoshot(const nvlar_allreduce_args &a, int block, int nblocks,
                                 uint64_t seq0, bool meet_first, CtaWait *cta) {
  constexpr size_t V = Pack<T>::kElems;
  const int rank = a.rank, nranks = a.nranks;
  const T *input = static_cast<const T *>(a.input);
  T *output = static_cast<T *>(a.output);
  const size_t q = push_twoshot_slice_elems<T>(a);
  const size_t step_elems = q * nranks;
  const uint64_t steps = (a.count + step_elems - 1) / step_elems;
  const uint64_t most_steps = (steps + nblocks - 1) / nblocks;
  const uint64_t mine = steps > (uint64_t)block ? (steps - block + nblocks - 1) / nblocks : 0;
  const uint64_t consumed = 1 + 2 * most_steps;
  if (mine == 0) return consumed;  // no store into peer memory, so no need to meet the peers

  const size_t region = push_twoshot_region_bytes(a), area_bytes = push_twoshot_area_bytes(a);
  const int slots = push_twoshot_slots(a);
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
      copy_to_staging<T, kPushTwoshotDepth>(area(p, j % slots, 0, rank), input + s.offset + part.begin,
                                            part.size());
    }
  };
  auto gather = [&](uint64_t j) {
    const PushStep s = step_at(j);
    for (int k = 1; k < nranks; k++) {
      const int p = (rank + k) % nranks;
      const Range part = s.part(p);
      copy_from_staging<T, kPushTwoshotDepth>(output + s.offset + part.begin,
                                              area(rank, j % slots, 1, p), part.size());
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
    T *dst = output + s.offset + part.begin;
    const T *own = input + s.offset + part.begin;
    if (nranks == 2) {
      reduce_and_push<T, Op, 2>(dst, to_peer, own, received, part.size(), rank, nranks);
    } else {
      reduce_and_push<T, Op, NVLAR_MAX_RANKS>(dst, to_peer, own, received, part.size(), rank, nranks);
    }
  };

  if (meet_first) {
    raise_to_peers(a, block, seq0 + 1);
    if (!wait_for_peers(a, block, seq0 + 1, cta)) return consumed;
  }
  for (uint64_t j = 0; j < events.ahead; j++) {
    scatter(j);
    raise_to_peers(a, block, seq0 + 1 + events.scattered(j));
  }
  for (uint64_t j = 0; j < mine; j++) {
    if (j + events.ahead < mine) {
      scatter(j + events.ahead);
      raise_to_peers(a, block, seq0 + 1 + events.scattered(j + events.ahead));
    }
    if (j > 0) {
      if (!wait_for_peers(a, block, seq0 + 1 + events.reduced(j - 1), cta)) return consumed;
      gather(j - 1);
    }
    if (!wait_for_peers(a, block, seq0 + 1 + events.scattered(j), cta)) return consumed;
    reduce(j);
    raise_to_peers(a, block, seq0 + 1 + events.reduced(j));
  }
  if (wait_for_peers(a, block, seq0 + 1 + events.reduced(mine - 1), cta)) gather(mine - 1);
  return consumed;
}

}  // namespace nvlar
