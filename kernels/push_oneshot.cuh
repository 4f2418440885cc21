// Push one-shot (LL protocol): no barrier. Every 8 bytes of a rank's input travel in one
// 16-byte packet {data low, flag, data high, flag} that the rank stores into its slot of every
// peer's receive buffer; a reader knows a packet is complete when both flags equal the chunk's
// flag, because each 8-byte half {data, flag} is written by one store, which no reader can see
// half-done. Then every rank reduces the packets of all ranks in rank order 0..n-1.
//
// Receive buffers: rank p's push area holds NVLAR_PUSH_BUFFERS buffers, each with one slot per
// source rank of NVLAR_PUSH_CHUNK_BYTES / 8 packets. A message moves in chunks of
// NVLAR_PUSH_CHUNK_BYTES; push chunk s (a per-rank counter that runs on across calls) uses
// buffer s % NVLAR_PUSH_BUFFERS and flag 1 + s % (2^32 - 1), never 0, the value of untouched
// memory. A stale packet in a slot carries the flag of chunk s - 2 or older, never chunk s's.
//
// Work split: a call of one chunk splits its packets among its CTAs. A call of several chunks
// gives CTA c the same packet range R_c, cut from a full chunk, in every chunk; in the last,
// short chunk a CTA whose range holds no packet sends instead a "token" packet (the chunk's
// flag, no data) at the start of its range to every peer and waits for theirs.
//
// Why two buffers suffice: when rank A writes chunk s into rank B's buffer s % 2, every CTA
// of B has finished reading chunk s - 2 from it.
// - Chunk s is not the first of its call. Before thread t of A's CTA c writes its packets of
//   chunk s (those at t, t + blockDim, ... of R_c), it has received the same packets of chunk
//   s - 1 from B's CTA c. B's CTA c sent chunk s - 1 only after all its threads had finished
//   their reads of chunk s - 2 in R_c (the __syncthreads between chunks; the same ranges in
//   one call), or, if chunk s - 2 belongs to B's previous call, after that call's kernel had
//   completed. (If thread t has no packet in chunk s, it writes nothing.)
// - Chunk s is the first of its call. A's kernel for the previous call has completed, so A
//   received all of chunk s - 1 from B. If that call had one chunk, B sent it from a kernel
//   that started after B's kernel for chunk s - 2 had completed (a call has at least one
//   packet: count 0 is not a call). If it had several, every CTA of B sent data or a token in
//   chunk s - 1, each after all its threads had finished their reads of chunk s - 2 (the
//   __syncthreads again: without it, a thread with no packet in a short last chunk could still
//   be reading chunk s - 2 when its CTA's first packets of chunk s - 1 arrive).
// "Started after ... completed": kernels of a rank run in stream order; with programmatic
// dependent launch, nothing is read or written before griddepcontrol.wait, which returns only
// once the previous kernel has completed. (The first version had no tokens: a short last chunk
// let CTAs without packets finish silently, and the next call overwrote packets they had yet to
// read.)
#pragma once

#include "chunking.cuh"
#include "packets.cuh"
#include "reduce_ops.cuh"
#include "wait.cuh"

namespace nvlar {

// One chunk of the push one-shot: this CTA's packets [begin, end) of `length` elements at
// `input`/`output`, or, if `token` is set, a token at packet `begin` (the comment above). A
// thread whose peer did not come gives up the CTA's wait (wait_packet) and returns early.
template <typename T, int Op>
__device__ void push_chunk(const nvlar_allreduce_args &a, int block, uint64_t seq, const T *input,
                           T *output, size_t length, size_t begin, size_t end, bool token,
                           CtaWait *cta) {
  using E = Elem<T>;
  using R = Reduce<T, Op>;
  using Acc = typename E::Acc;
  constexpr size_t per_packet = 8 / sizeof(T);
  constexpr size_t slot_bytes = NVLAR_PUSH_CHUNK_BYTES / 8 * 16;
  const uint32_t flag = 1u + (uint32_t)(seq % 0xffffffffull);
  const size_t buffer = seq % NVLAR_PUSH_BUFFERS;
  // Slot of source rank `src` in rank `dst`'s buffer for this chunk.
  auto slot = [&](int dst, int src) {
    return static_cast<char *>(a.push[dst]) + (buffer * NVLAR_MAX_RANKS + src) * slot_bytes;
  };
  if (token) {
    if (threadIdx.x < a.nranks && (int)threadIdx.x != a.rank) {
      store_packet(slot(threadIdx.x, a.rank) + begin * 16, 0, flag);
      uint64_t ignored;
      wait_packet(a, slot(a.rank, threadIdx.x) + begin * 16, flag, threadIdx.x, block, seq,
                  cta, &ignored);
    }
    return;
  }
  for (size_t pk = begin + threadIdx.x; pk < end; pk += blockDim.x) {
    uint64_t payload = read_payload(input, pk, length);
    for (int q = 0; q < a.nranks; q++) {
      if (q != a.rank) store_packet(slot(q, a.rank) + pk * 16, payload, flag);
    }
  }
  if (a.test_skew_ns != 0 && block != 0) test_skew_pause(a.test_skew_ns);
  for (size_t pk = begin + threadIdx.x; pk < end; pk += blockDim.x) {
    // Every peer's packet is loaded at once, so that the first looks cost one round trip in
    // all, not one per peer; only packets that were not there yet are polled again.
    uint4 first_look[NVLAR_MAX_RANKS];
#pragma unroll
    for (int q = 0; q < NVLAR_MAX_RANKS; q++) {
      if (q < a.nranks && q != a.rank) first_look[q] = load_packet(slot(a.rank, q) + pk * 16);
    }
    Acc acc[per_packet];
#pragma unroll
    for (int q = 0; q < NVLAR_MAX_RANKS; q++) {
      if (q >= a.nranks) break;
      uint64_t payload;
      if (q == a.rank) {
        payload = read_payload(input, pk, length);
      } else if (first_look[q].y == flag && first_look[q].w == flag) {
        payload = (uint64_t)first_look[q].x | ((uint64_t)first_look[q].z << 32);
      } else if (!wait_packet(a, slot(a.rank, q) + pk * 16, flag, q, block, seq, cta,
                              &payload)) {
        return;
      }
      union {
        uint64_t bits;
        T elems[per_packet];
      } packed;
      packed.bits = payload;
#pragma unroll
      for (size_t k = 0; k < per_packet; k++) {
        Acc value = E::to_acc(packed.elems[k]);
        acc[k] = q == 0 ? value : R::combine(acc[k], value);
      }
    }
    size_t first = pk * per_packet;
#pragma unroll
    for (size_t k = 0; k < per_packet; k++) {
      if (first + k < length) output[first + k] = E::from_acc(R::finish(acc[k], a.nranks));
    }
  }
}


// The push one-shot. kSeveral = false: a call of one chunk, its packets split among the CTAs.
// kSeveral = true: a call of several chunks, the same range in every chunk, cut from a full
// chunk, and a token where the last chunk leaves it empty. Returns the number of chunks sent.
template <typename T, int Op, bool kSeveral>
__device__ uint64_t push_oneshot(const nvlar_allreduce_args &a, int block, int nblocks,
                                 uint64_t push0, CtaWait *cta) {
  constexpr size_t per_packet = 8 / sizeof(T);
  constexpr size_t chunk_elems = NVLAR_PUSH_CHUNK_BYTES / sizeof(T);
  const T *input = static_cast<const T *>(a.input);
  T *output = static_cast<T *>(a.output);
  if (!kSeveral) {
    const Range mine = split((a.count + per_packet - 1) / per_packet, block, nblocks, 1);
    push_chunk<T, Op>(a, block, push0, input, output, a.count, mine.begin, mine.end, false,
                      cta);
    return 1;
  }
  const uint64_t chunks = (a.count + chunk_elems - 1) / chunk_elems;
  const Range mine = split(NVLAR_PUSH_CHUNK_BYTES / 8, block, nblocks, 1);
  for (uint64_t j = 0; j < chunks; j++) {
    if (j > 0) {
      // Every thread of this CTA has finished its reads of chunk j - 1 before any thread sends
      // chunk j (data or token): a peer that sees one packet of chunk j from this CTA may then
      // overwrite any packet of this CTA's range in the other buffer (the argument above). A
      // thread that gave up waits here too, so that all leave together.
      __syncthreads();
      if (cta->gave_up) break;
    }
    size_t offset = j * chunk_elems;
    size_t length = min_size(chunk_elems, a.count - offset);
    size_t packets = (length + per_packet - 1) / per_packet;
    push_chunk<T, Op>(a, block, push0 + j, input + offset, output + offset, length, mine.begin,
                      min_size(mine.end, packets), mine.begin >= packets, cta);
  }
  return chunks;
}

}  // namespace nvlar
