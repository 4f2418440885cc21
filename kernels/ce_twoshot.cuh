// The copy-engine two-shot (NVLAR_ALGO_CETWOSHOT): a bandwidth path whose bytes cross the link
// by copy engine (cudaMemcpyAsync into peers' mapped staging: 0 SMs), with a few CTAs that only
// reduce in local memory. On two H200s the copy engine moves 390 GB/s per direction, where SM
// stores need 132 CTAs for 360 (docs/design.md, "Real NVLink"); a GEMM beside 16 resident CTAs
// keeps 85% of its speed, beside 128 13% (docs/design.md, "SM budget"). Not yet measured on a
// GPU.
//
// A call is not one kernel but a sequence of copies and kernels on the caller's stream, issued
// by ce_twoshot_issue() below (the host side of nvlar_allreduce_launch for this algorithm).
// Geometry (areas, chunks, slices): ce_twoshot_geometry.h. Rank r of n ranks, per call:
//   M0    meet kernel (1 CTA): raises "arrived" in every peer and waits for every peer's;
//   then for each chunk j:
//   S(j)  scatter copies: input slice p of chunk j into rank p's receive area [r], every peer p;
//   R(j)  reduce kernel (the call's nblocks CTAs): raises "scattered j", waits for every peer's,
//         reduces slice r in rank order (own input at position r, receive areas [p] elsewhere;
//         the push two-shot's reduce_and_push, so the bits are the other kernels') into output
//         slice r;
//   G(j)  gather copies: output slice r into rank p's gather area [r], every peer p;
//   M(j)  meet kernel (1 CTA): raises "gathered j", waits for every peer's;
//   L(j)  local copies: gather area [p] into output slice p, every peer p;
//   D     done kernel (the call's nblocks CTAs): touches nothing; in an eager call
//         (args.counted) each CTA counts itself. So a call starts and ends with a kernel, as
//         every other algorithm's call does, and a programmatic dependent launch of the next
//         call follows a kernel, never a copy.
// Every kernel but D consumes one sequence number: it raises (and waits for) seq + 1, seq being
// what it read from this rank's progress slots, and leaves seq + 1 in every slot
// (nvlar_kernels.h). A call consumes 1 + 2 * chunks on every rank; no flag is raised past the
// number the slots hold after the call, so no later kernel's wait is met early. CTA b of R(j)
// raises flag [r][b] and waits for flags [p][b]; the meet kernels use flag [r][0]. Every rank's
// flag certifies all of that rank's earlier stream work: stream order runs a kernel behind a
// copy only once the copy has completed, its bytes in the destination's memory; the raising
// kernel's release at system scope (after __syncthreads) then publishes its own CTA's reads
// and writes as in every other kernel. Flag values come from the device's progress slots,
// never from the host, so a captured call replays correctly.
//
// Why each access is safe (j >= 1; j = 0 and earlier calls below):
// - Receive area [r] of rank p, written by S(j) of rank r: p read it in R(j - 1). r issues S(j)
//   behind its M(j - 1), which waited for p's "gathered j - 1"; p raised it in M(j - 1), behind
//   its R(j - 1) on its stream.
// - Gather area [r] of rank p, written by G(j) of rank r: p read it in L(j - 1). r issues G(j)
//   behind its R(j), which waited for p's "scattered j"; p raised it in R(j), behind its
//   L(j - 1).
// - What rank r reads: R(j) its receive areas, written by each peer's S(j) before that peer
//   raised "scattered j" (which R(j) waited for); L(j) its gather areas, written by each peer's
//   G(j) before that peer raised "gathered j" (which M(j) waited for).
// - The first chunk of a call, after anything: S(0) follows M0, which waited for every rank's
//   "arrived"; each rank raised it behind all its earlier work on its stream (every kernel and
//   copy of its earlier calls, of any algorithm; with PDL, M0's CTA waits for the previous
//   kernel before raising). So at S(0) no rank has any access to any staging buffer in flight
//   from an earlier call; S(0) and G(0) then follow the rules above with "j - 1" read as
//   "earlier calls". (M0 always meets, also after a copy-engine two-shot: a round trip per
//   call, which keeps the proof free of the rank state's last_algo.)
// - The kernels after a copy-engine two-shot, of any algorithm: every store that peers made into
//   this rank's staging during the call completed before this rank passed the flag that
//   announced it (S: R(j); G: M(j)); this rank's own last staging access, L of the last chunk,
//   precedes its next kernel on the stream; and no rank reads a peer's staging in this
//   algorithm. So the next kernel finds no access of this call in flight, as after a push
//   two-shot; a push two-shot that follows sees last_algo != push two-shot and meets first.
// - The user's buffers, in place (input == output) included: S(j) reads input slices p != r of
//   chunk j, and L(j) overwrites the same elements only after S(j) completed (stream order);
//   R(j) reads input slice r and writes output slice r, each element read before it is written
//   by the same thread; G(j) reads output slice r, which L(j) does not write; chunks are
//   disjoint.
// - Lifetime: an eager call (args.counted) ends with D, which starts once every copy and
//   kernel before it on the stream has completed and counts the call's nblocks CTAs, as the
//   host counts (plugin/route.c): when destroy sees every CTA counted, no copy of the call into
//   peers' staging, and no read of its own, is in flight. A captured call's D counts nothing:
//   its graph holds the route until its launches are over (plugin/route.h). D raises no flag
//   and consumes no sequence number, so whether a rank's call is captured or eager never
//   changes what its peers wait for (docs/design.md, invariant 1).
// - Failure: a wait that gives up marks the rank failed and later kernels return at once, but
//   the copies already issued still run. Each moves a bounded range between this rank's
//   buffers and mapped staging and completes in bounded time, before D; staging and output
//   are then undefined, as after any failed call (the communicator reports ncclSystemError).
// Emulated ranks (one GPU, one stream): each step for every rank, then the next step (M0 of
// all ranks in one grid, the scatter copies of every rank, R(j) of all ranks in one grid, ...):
// stream order then gives every cross-rank order used above, and a grid's waits are met inside
// it. Ranks on their own streams (the tests' "streams" cases, real ranks) need nothing more.
#pragma once

#include "ce_twoshot_geometry.h"
#include "chunking.cuh"
#include "push_twoshot.cuh"  // raise_to_peers, wait_for_peers, reduce_and_push
#include "staged.cuh"
#include "wait.cuh"

namespace nvlar {

// The kernels of a call, in the order the host issues them (allreduce.cuh maps each to its
// kernel kind).
enum CeKernel { kCeMeet = 0, kCeReduce = 1, kCeDone = 2 };

// Receive area [src] of rank p's staging, as elements.
template <typename T>
__device__ __forceinline__ T *ce_receive_area(const nvlar_allreduce_args &a, int p, int src) {
  return reinterpret_cast<T *>(static_cast<char *>(a.staging[p]) +
                               nvlar_ce_receive_offset(a.staging_bytes, a.nranks, src));
}

// M0 / M(j): raise seq0 + 1 in every peer and wait for every peer's. Returns the sequence
// numbers consumed.
__device__ __forceinline__ uint64_t ce_meet(const nvlar_allreduce_args &a, int block,
                                            uint64_t seq0, CtaWait *cta) {
  raise_to_peers(a, block, seq0 + 1);
  wait_for_peers(a, block, seq0 + 1, cta);
  return 1;
}

// R(j), for the chunk that `a` describes (the host passes the chunk as a call: input and
// output at the chunk's start, count its length): "scattered", then this CTA's part of slice
// a.rank. Returns the sequence numbers consumed.
template <typename T, int Op>
__device__ uint64_t ce_reduce(const nvlar_allreduce_args &a, int block, int nblocks,
                              uint64_t seq0, CtaWait *cta) {
  constexpr size_t V = Pack<T>::kElems;
  raise_to_peers(a, block, seq0 + 1);
  if (!wait_for_peers(a, block, seq0 + 1, cta)) return 1;
  const nvlar_ce_range slice = nvlar_ce_slice(a.count, a.nranks, a.rank, sizeof(T));
  const Range mine = split(slice.end - slice.begin, block, nblocks, V);
  if (mine.size() == 0) return 1;
  T *received[NVLAR_MAX_RANKS];
  for (int p = 0; p < a.nranks; p++) received[p] = ce_receive_area<T>(a, a.rank, p) + mine.begin;
  const T *own = static_cast<const T *>(a.input) + slice.begin + mine.begin;
  T *dst = static_cast<T *>(a.output) + slice.begin + mine.begin;
  if (a.nranks == 2) {
    reduce_and_push<T, Op, 2, false>(dst, nullptr, own, received, mine.size(), a.rank, a.nranks);
  } else {
    reduce_and_push<T, Op, NVLAR_MAX_RANKS, false>(dst, nullptr, own, received, mine.size(),
                                                   a.rank, a.nranks);
  }
  return 1;
}

// ---------------------------------------------------------------------------------------------
// Host side: the whole call, in stream order (see the top). `ranks`: the ranks this launch
// issues for, `nissued` of them (one rank in production, every emulated rank in emulation);
// each must pass nvlar_allreduce_check and all agree on the call. `kernel(which, args)` launches
// kernel `which` (CeKernel) for every issued rank with the given per-rank arguments, with
// args[0].nblocks CTAs per rank and programmatic dependent launch if args[0].pdl.
template <typename T, typename Kernel>
cudaError_t ce_twoshot_issue(const nvlar_allreduce_args *ranks, int nissued, cudaStream_t stream,
                             const Kernel &kernel) {
  const nvlar_allreduce_args &first = ranks[0];
  const int nranks = first.nranks;
  // The kernels that wait are never counted, and all but M0 follow a copy, behind which a
  // programmatic dependent launch has nothing to overlap.
  nvlar_allreduce_args meet[NVLAR_MAX_RANKS], chunk[NVLAR_MAX_RANKS], done[NVLAR_MAX_RANKS];
  for (int i = 0; i < nissued; i++) {
    meet[i] = ranks[i];
    meet[i].nblocks = 1;
    meet[i].counted = 0;
    done[i] = ranks[i];
    done[i].pdl = 0;
  }
  cudaError_t error = cudaSuccess;
  if (first.count > 0) error = kernel(kCeMeet, meet);  // M0: "arrived"
  for (int i = 0; i < nissued; i++) meet[i].pdl = 0;

  const size_t chunk_elems = nvlar_ce_chunk_elems(first.staging_bytes, nranks, sizeof(T));
  const size_t chunks = nvlar_ce_chunks(first.count, chunk_elems);
  // One copy of `bytes` (none when empty: a slice of a short chunk can be).
  auto copy = [&](void *dst, const void *src, size_t bytes) {
    if (error != cudaSuccess || bytes == 0) return;
    error = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream);
  };
  for (size_t j = 0; j < chunks && error == cudaSuccess; j++) {
    const nvlar_ce_range range = nvlar_ce_chunk(first.count, chunk_elems, j);
    const size_t length = range.end - range.begin;
    for (int i = 0; i < nissued; i++) {
      chunk[i] = ranks[i];
      chunk[i].input = static_cast<const T *>(ranks[i].input) + range.begin;
      chunk[i].output = static_cast<T *>(ranks[i].output) + range.begin;
      chunk[i].count = length;
      chunk[i].counted = 0;
      chunk[i].pdl = 0;
      meet[i].input = chunk[i].input;
      meet[i].output = chunk[i].output;
      meet[i].count = length;
    }
    // The slice rank p reduces, in elements of the chunk.
    auto slice = [&](int p) { return nvlar_ce_slice(length, nranks, p, sizeof(T)); };
    // S(j): each issued rank's input slice p into rank p's receive area [rank]. The peers in
    // turn from the next rank on, so that the ranks do not all write to rank 0 first.
    for (int i = 0; i < nissued; i++) {
      const nvlar_allreduce_args &a = chunk[i];
      for (int k = 1; k < nranks; k++) {
        const int p = (a.rank + k) % nranks;
        const nvlar_ce_range s = slice(p);
        copy(static_cast<char *>(a.staging[p]) +
                 nvlar_ce_receive_offset(a.staging_bytes, nranks, a.rank),
             static_cast<const T *>(a.input) + s.begin, (s.end - s.begin) * sizeof(T));
      }
    }
    if (error == cudaSuccess) error = kernel(kCeReduce, chunk);  // R(j)
    // G(j): each issued rank's reduced slice into every peer's gather area [rank].
    for (int i = 0; i < nissued; i++) {
      const nvlar_allreduce_args &a = chunk[i];
      const nvlar_ce_range s = slice(a.rank);
      for (int k = 1; k < nranks; k++) {
        const int p = (a.rank + k) % nranks;
        copy(static_cast<char *>(a.staging[p]) +
                 nvlar_ce_gather_offset(a.staging_bytes, nranks, a.rank),
             static_cast<const T *>(a.output) + s.begin, (s.end - s.begin) * sizeof(T));
      }
    }
    if (error == cudaSuccess) error = kernel(kCeMeet, meet);  // M(j): "gathered"
    // L(j): each issued rank's gather areas into its output slices.
    for (int i = 0; i < nissued; i++) {
      const nvlar_allreduce_args &a = chunk[i];
      for (int k = 1; k < nranks; k++) {
        const int p = (a.rank + k) % nranks;
        const nvlar_ce_range s = slice(p);
        copy(static_cast<T *>(a.output) + s.begin,
             static_cast<const char *>(a.staging[a.rank]) +
                 nvlar_ce_gather_offset(a.staging_bytes, nranks, p),
             (s.end - s.begin) * sizeof(T));
      }
    }
  }
  // D: what destroy waits for (see the top); an empty call counts its CTAs too.
  if (error == cudaSuccess) error = kernel(kCeDone, done);
  return error;
}

}  // namespace nvlar
