// The one-shot and two-shot all-reduce kernels, as templates over element type and operator.
//
// Each rank's kernel is written as a __device__ function of (args, block, nblocks), so that
// the same body runs as one rank's grid (production) or as one slice of a single launch that
// runs every emulated rank on one GPU (tests, benchmark).
//
// Data path (both kernels): a message is cut into chunks that fit half of the staging buffer;
// the halves alternate from chunk to chunk (and from call to call), so that a rank can stage
// chunk j+1 while slower peers still read chunk j. Each chunk is copied from the user's input
// into this rank's staging, then read by the peers straight from there (loads over NVLink).
//
// Synchronisation: a barrier is a flag per (source rank, CTA) in every rank's signal area.
// CTA b of rank r, having finished its part of a phase, writes the barrier's sequence number
// into flag [r][b] of every rank; it then waits until every flag [p][c] of its own area, for
// all ranks p and all CTAs c of the launch, has reached that number. Sequence numbers only
// grow (per-rank state, advanced by the kernel itself), so nothing is ever reset.
//
// Why a half may be overwritten: a rank writes half h for chunk s only after passing the
// first barrier of chunk s-1. Every rank signals that barrier only after it finished every
// read of chunk s-2, the previous user of half h (program order within each CTA, and the
// barrier waits for all CTAs). So no rank still reads half h. This holds across calls and
// across the two kernels, which share the sequence numbers.
#pragma once

#include "nvlar_kernels.h"
#include "reduce_ops.cuh"
#include "wait.cuh"

namespace nvlar {

// Waits for barrier `seq` of this launch. Returns false when a peer did not come in time (or
// the host aborted).
__device__ __forceinline__ bool barrier(const nvlar_allreduce_args &a, int block, int nblocks,
                                        uint64_t seq, CtaWait *cta) {
  __syncthreads();  // this CTA's part of the phase is done (its writes and its reads)
  if (threadIdx.x < a.nranks) {
    store_release_sys(a.signals[threadIdx.x] + a.rank * NVLAR_MAX_BLOCKS + block, seq);
  }
  const uint64_t *own_area = a.signals[a.rank];
  int flags = a.nranks * nblocks;
  for (int i = threadIdx.x; i < flags; i += blockDim.x) {
    int peer = i / nblocks, peer_cta = i - peer * nblocks;
    const uint64_t *flag = own_area + peer * NVLAR_MAX_BLOCKS + peer_cta;
    if (!wait_until(a, cta, [&] { return load_acquire_sys(flag) >= seq; }, peer, peer_cta, seq)) break;
  }
  __syncthreads();  // every flag this CTA depends on has been seen
  return cta->gave_up == 0;
}

// ---------------------------------------------------------------------------------------------
// Data movement. Staging addresses are 16-byte aligned at every chunk, slice and CTA boundary
// (all boundaries are multiples of kPack elements); user buffers may have any element
// alignment, and are moved 16 bytes at a time only when this rank's pointer allows it.

template <typename T> struct Pack {
  static constexpr int kElems = 16 / sizeof(T);  // elements per 16-byte access
  union {
    uint4 raw;
    T elems[kElems];
  };
};

__device__ __forceinline__ bool aligned16(const void *p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// Reads of staging bypass L1 (ld.global.cg): the same staging addresses are read again for
// later chunks of the same launch, after peers rewrote them, and L1 is not coherent with
// writes from other SMs or GPUs.
template <typename T> __device__ __forceinline__ Pack<T> load_staged(const T *p) {
  Pack<T> pack;
  pack.raw = __ldcg(reinterpret_cast<const uint4 *>(p));
  return pack;
}
template <typename T> __device__ __forceinline__ T load_staged_one(const T *p) {
  T value;
  if constexpr (sizeof(T) == 1) {
    *reinterpret_cast<unsigned char *>(&value) = __ldcg(reinterpret_cast<const unsigned char *>(p));
  } else if constexpr (sizeof(T) == 2) {
    *reinterpret_cast<unsigned short *>(&value) = __ldcg(reinterpret_cast<const unsigned short *>(p));
  } else if constexpr (sizeof(T) == 4) {
    *reinterpret_cast<unsigned int *>(&value) = __ldcg(reinterpret_cast<const unsigned int *>(p));
  } else {
    *reinterpret_cast<unsigned long long *>(&value) =
        __ldcg(reinterpret_cast<const unsigned long long *>(p));
  }
  return value;
}

// Each thread keeps kUnroll 16-byte loads in flight before storing: one pack per thread is
// too little to cover memory latency with the few CTAs a rank uses. (A kernel whose CTAs each
// move much more, the push two-shot, asks for a deeper kDepth.)
constexpr int kUnroll = 4;

// Copies `packs` 16-byte packs; `src` is read through `load`, kDepth packs per thread at once.
template <int kDepth = kUnroll, typename Load>
__device__ __forceinline__ void copy_packs(uint4 *dst, const uint4 *src, size_t packs, Load load) {
  const size_t stride = blockDim.x;
  size_t i = threadIdx.x;
  for (; i + (kDepth - 1) * stride < packs; i += kDepth * stride) {
    uint4 v[kDepth];
#pragma unroll
    for (int u = 0; u < kDepth; u++) v[u] = load(src + i + u * stride);
#pragma unroll
    for (int u = 0; u < kDepth; u++) dst[i + u * stride] = v[u];
  }
  for (; i < packs; i += stride) dst[i] = load(src + i);
}

struct PlainLoad {
  __device__ uint4 operator()(const uint4 *p) const { return *p; }
};
struct StagedLoad {
  __device__ uint4 operator()(const uint4 *p) const { return __ldcg(p); }
};

// Copies n elements with this CTA's threads; dst is staging (aligned), src the user's input.
template <typename T, int kDepth = kUnroll>
__device__ void copy_to_staging(T *dst, const T *src, size_t n) {
  constexpr int V = Pack<T>::kElems;
  size_t done = 0;
  if (aligned16(src)) {
    size_t packs = n / V;
    copy_packs<kDepth>(reinterpret_cast<uint4 *>(dst), reinterpret_cast<const uint4 *>(src), packs,
                       PlainLoad());
    done = packs * V;
  }
  for (size_t i = done + threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
}

// Copies n elements from staging (aligned, possibly a peer's) to the user's output.
template <typename T, int kDepth = kUnroll>
__device__ void copy_from_staging(T *dst, const T *src, size_t n) {
  constexpr int V = Pack<T>::kElems;
  size_t packs = n / V;
  if (aligned16(dst)) {
    copy_packs<kDepth>(reinterpret_cast<uint4 *>(dst), reinterpret_cast<const uint4 *>(src), packs,
                       StagedLoad());
  } else {
    for (size_t i = threadIdx.x; i < packs; i += blockDim.x) {
      Pack<T> pack = load_staged(src + i * V);
#pragma unroll
      for (int k = 0; k < V; k++) dst[i * V + k] = pack.elems[k];
    }
  }
  for (size_t i = packs * V + threadIdx.x; i < n; i += blockDim.x) dst[i] = load_staged_one(src + i);
}

// Reduces n elements at element offset `at` of every rank's staging area `src[p]`, in rank
// order 0..nranks-1, writing the result to `dst` (user output) and, if not null, to `also`
// (this rank's staging, for peers to gather).
template <typename T, int Op>
__device__ void reduce_staged(T *dst, T *also, T *const *src, size_t at, size_t n, int nranks) {
  using E = Elem<T>;
  using R = Reduce<T, Op>;
  using Acc = typename E::Acc;
  constexpr int V = Pack<T>::kElems;
  size_t packs = n / V;
  bool dst_aligned = aligned16(dst);
  for (size_t i = threadIdx.x; i < packs; i += blockDim.x) {
    // All loads first, so that the peers' 16-byte reads are in flight together.
    Pack<T> in[NVLAR_MAX_RANKS];
#pragma unroll
    for (int p = 0; p < NVLAR_MAX_RANKS; p++) {
      if (p < nranks) in[p] = load_staged(src[p] + at + i * V);
    }
    Pack<T> out;
#pragma unroll
    for (int k = 0; k < V; k++) {
      Acc acc = E::to_acc(in[0].elems[k]);
#pragma unroll
      for (int p = 1; p < NVLAR_MAX_RANKS; p++) {
        if (p < nranks) acc = R::combine(acc, E::to_acc(in[p].elems[k]));
      }
      out.elems[k] = E::from_acc(R::finish(acc, nranks));
    }
    if (dst_aligned) {
      reinterpret_cast<uint4 *>(dst)[i] = out.raw;
    } else {
#pragma unroll
      for (int k = 0; k < V; k++) dst[i * V + k] = out.elems[k];
    }
    if (also != nullptr) reinterpret_cast<uint4 *>(also)[i] = out.raw;
  }
  for (size_t i = packs * V + threadIdx.x; i < n; i += blockDim.x) {
    Acc acc = E::to_acc(load_staged_one(src[0] + at + i));
    for (int p = 1; p < nranks; p++) acc = R::combine(acc, E::to_acc(load_staged_one(src[p] + at + i)));
    T value = E::from_acc(R::finish(acc, nranks));
    dst[i] = value;
    if (also != nullptr) also[i] = value;
  }
}

// ---------------------------------------------------------------------------------------------
// Work split: [begin, end) of n elements for CTA `block` of `nblocks`, with boundaries at
// multiples of `grain` elements so that every CTA's staging range stays 16-byte aligned.
struct Range {
  size_t begin, end;
  __device__ size_t size() const { return end - begin; }
};

__device__ __forceinline__ size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

__device__ __forceinline__ Range split(size_t n, int block, int nblocks, size_t grain) {
  size_t per = (n + nblocks - 1) / nblocks;
  per = (per + grain - 1) / grain * grain;
  size_t begin = per * block, end = begin + per;
  if (begin > n) begin = n;
  if (end > n) end = n;
  return Range{begin, end};
}

// The two-shots' cut of a chunk of `length` elements: slice s is [s * slice, (s + 1) * slice),
// clipped, with slice a multiple of `grain`; rank s reduces slice s and every rank gathers it.
// Returns the part of slice `owner` that CTA `block` handles, in chunk coordinates.
__device__ __forceinline__ Range owned_piece(size_t length, int nranks, int owner, int block,
                                             int nblocks, size_t grain) {
  size_t slice = (length + nranks - 1) / nranks;
  slice = (slice + grain - 1) / grain * grain;
  size_t begin = min_size(slice * owner, length), end = min_size(begin + slice, length);
  Range piece = split(end - begin, block, nblocks, grain);
  return Range{begin + piece.begin, begin + piece.end};
}

// The staging half that chunk `chunk` uses, as an element pointer into rank p's staging.
template <typename T>
__device__ __forceinline__ T *staging_half(const nvlar_allreduce_args &a, int p, uint64_t chunk) {
  char *base = static_cast<char *>(a.staging[p]);
  return reinterpret_cast<T *>(base + (chunk & 1) * (a.staging_bytes / 2));
}

// Chunk j of a staged call (the kernel's chunks of chunk_elems elements, its first chunk
// number chunk0): where it starts in the message, its length, and every rank's staging half.
template <typename T> struct StagedChunk {
  size_t offset, length;
  T *stage[NVLAR_MAX_RANKS];
};

template <typename T>
__device__ __forceinline__ StagedChunk<T> staged_chunk(const nvlar_allreduce_args &a,
                                                       size_t chunk_elems, uint64_t chunk0,
                                                       uint64_t j) {
  StagedChunk<T> c;
  c.offset = j * chunk_elems;
  c.length = min_size(chunk_elems, a.count - c.offset);
  for (int p = 0; p < a.nranks; p++) c.stage[p] = staging_half<T>(a, p, chunk0 + j);
  return c;
}

// The two-shots' chunk: half of a staging half holds a chunk of input and, after it, the
// reduced results.
template <typename T> __device__ __forceinline__ size_t twoshot_chunk_elems(const nvlar_allreduce_args &a) {
  constexpr size_t V = Pack<T>::kElems;
  return (a.staging_bytes / 2) / (2 * sizeof(T)) / V * V;
}

// ---------------------------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------------------------
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

__device__ __forceinline__ void store_packet(void *slot, uint64_t payload, uint32_t flag) {
  asm volatile("st.volatile.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(slot),
               "r"((uint32_t)payload), "r"(flag), "r"((uint32_t)(payload >> 32)), "r"(flag)
               : "memory");
}

__device__ __forceinline__ uint4 load_packet(const void *slot) {
  uint4 v;
  asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(slot)
               : "memory");
  return v;
}

// Waits until the packet at `slot` carries `flag`; false on failure (wait_until).
__device__ __forceinline__ bool wait_packet(const nvlar_allreduce_args &a, const void *slot,
                                            uint32_t flag, int peer, int block, uint64_t seq,
                                            CtaWait *cta, uint64_t *payload) {
  uint4 v;
  auto arrived = [&] {
    v = load_packet(slot);
    return v.y == flag && v.w == flag;
  };
  if (!wait_until(a, cta, arrived, peer, block, seq)) return false;
  *payload = (uint64_t)v.x | ((uint64_t)v.z << 32);
  return true;
}

// The 8 input bytes of packet `pk` (elements beyond `length` read as zero).
template <typename T>
__device__ __forceinline__ uint64_t read_payload(const T *input, size_t pk, size_t length) {
  constexpr size_t E = 8 / sizeof(T);
  size_t first = pk * E;
  if (first + E <= length && (reinterpret_cast<uintptr_t>(input + first) & 7) == 0) {
    return *reinterpret_cast<const uint64_t *>(input + first);
  }
  union {
    uint64_t bits;
    T elems[E];
  } packed;
  packed.bits = 0;
  for (size_t k = 0; k < E && first + k < length; k++) packed.elems[k] = input[first + k];
  return packed.bits;
}

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

// Which kernel a launch runs. The push one-shot's calls of several chunks have a kernel of
// their own: with their loop in the plain kernel (one call site of push_chunk), one-chunk calls
// took 0.3-0.8 us longer on the H100 (measured; also with a second inlined copy of the chunk
// body, or the loop in a function not inlined).
enum KernelKind {
  kPlainKernel = 0,       // one-shot, two-shot, push one-shot of one chunk
  kTmaKernel = 1,         // TMA two-shot (dynamic shared memory)
  kPushChunksKernel = 2,  // push one-shot of several chunks
  kPushTwoshotKernel = 3, // push two-shot
};

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

#include "tma_twoshot.cuh"
#include "push_twoshot.cuh"

namespace nvlar {

// Programmatic dependent launch (sm_90+; a no-op for a kernel launched without it): the CTAs
// of this kernel may start while the previous kernel on the stream still runs. Wait for that
// kernel's completion (and its memory) here, before anything it may have written is read: this
// rank's progress record (written by the previous nvlar kernel), the user's input, the staging
// and push buffers. Then let the next kernel on the stream start its own prologue: it waits in
// its griddepcontrol.wait for this whole grid to finish, so starting it early only overlaps
// its launch with this kernel. Every CTA of this grid is resident once they all passed
// launch_dependents, so the early starter cannot take the SMs a CTA of this rank still needs.
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

template <typename T, int Op, int kKind>
__device__ void allreduce_rank(const nvlar_allreduce_args &a, int block, int nblocks) {
  __shared__ CtaWait cta;
  cta_wait_init(&cta);
  wait_for_previous_kernel();
  // The rank state was written by the previous launch (ordered before this one by the
  // stream); a failed rank stays failed: its peers' flags can no longer be trusted.
  volatile nvlar_rank_state *state = a.state;
  uint64_t seq0 = state->slot[block].barrier_seq, chunk0 = state->slot[block].chunk_seq;
  uint64_t push0 = state->slot[block].push_seq;
  const bool after_push_twoshot = state->slot[block].last_algo == 1 + NVLAR_ALGO_PUSH_TWOSHOT;
  bool failed = state->failed != 0;
  __syncthreads();
  if (failed || a.count == 0) return;

  uint64_t chunks = 0, seq1 = seq0, chunk1 = chunk0, push1 = push0;
  if (kKind == kTmaKernel) {
    // The TMA two-shot shares the two-shot's staging halves and barrier numbers.
    tma_twoshot<T, Op>(a, block, nblocks, seq0, chunk0, &cta, &chunks);
    seq1 = seq0 + 2 * chunks;
    chunk1 = chunk0 + chunks;
  } else if (kKind == kPushTwoshotKernel) {
    seq1 = seq0 + push_twoshot<T, Op>(a, block, nblocks, seq0, !after_push_twoshot, &cta);
  } else if (kKind == kPushChunksKernel) {
    push1 = push0 + push_oneshot<T, Op, true>(a, block, nblocks, push0, &cta);
  } else if (a.algo == NVLAR_ALGO_PUSH) {
    push1 = push0 + push_oneshot<T, Op, false>(a, block, nblocks, push0, &cta);
  } else if (a.algo == NVLAR_ALGO_TWOSHOT) {
    twoshot<T, Op>(a, block, nblocks, seq0, chunk0, &cta, &chunks);
    seq1 = seq0 + 2 * chunks;
    chunk1 = chunk0 + chunks;
  } else {
    oneshot<T, Op>(a, block, nblocks, seq0, chunk0, &cta, &chunks);
    seq1 = seq0 + chunks;
    chunk1 = chunk0 + chunks;
  }
  __syncthreads();  // every thread's part is done (or gave up) before the progress moves
  if (cta.gave_up) return;

  // Advance this CTA's slot and the slots no CTA of this launch reads (see nvlar_kernels.h).
  for (int slot = block + nblocks * threadIdx.x; slot < NVLAR_MAX_BLOCKS;
       slot += nblocks * blockDim.x) {
    state->slot[slot].barrier_seq = seq1;
    state->slot[slot].chunk_seq = chunk1;
    state->slot[slot].push_seq = push1;
    state->slot[slot].last_algo = 1 + a.algo;
  }
}

// ---------------------------------------------------------------------------------------------
// Kernels and per-type dispatch. Arguments are __grid_constant__ so that the device
// functions read them in place (by reference) instead of copying them to local memory.

template <typename T, int Op, int kKind>
__global__ void __launch_bounds__(NVLAR_THREADS) allreduce_kernel(const __grid_constant__ nvlar_allreduce_args args) {
  allreduce_rank<T, Op, kKind>(args, blockIdx.x, gridDim.x);
}

struct EmulatedRanks {
  nvlar_allreduce_args ranks[NVLAR_MAX_RANKS];
};

template <typename T, int Op, int kKind>
__global__ void __launch_bounds__(NVLAR_THREADS) allreduce_emulated_kernel(const __grid_constant__ EmulatedRanks e) {
  allreduce_rank<T, Op, kKind>(e.ranks[blockIdx.y], blockIdx.x, gridDim.x);
}

// Launches `kernel` with the TMA kernel's shared memory if it is one, and as a programmatic
// dependent launch if asked.
template <typename Kernel, typename Arg>
cudaError_t launch(Kernel kernel, const Arg &arg, dim3 grid, bool tma, bool pdl, cudaStream_t stream) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = dim3(NVLAR_THREADS);
  config.dynamicSmemBytes = tma ? kTmaSharedBytes : 0;
  config.stream = stream;
  cudaLaunchAttribute attribute;
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = pdl ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, arg);
}

// Calls visitor.run<Op>() for the operator chosen at run time.
template <typename Visitor> cudaError_t with_op(int op, const Visitor &visitor) {
  switch (op) {
    case OP_SUM: return visitor.template run<OP_SUM>();
    case OP_PROD: return visitor.template run<OP_PROD>();
    case OP_MAX: return visitor.template run<OP_MAX>();
    case OP_MIN: return visitor.template run<OP_MIN>();
    case OP_AVG: return visitor.template run<OP_AVG>();
    default: return cudaErrorInvalidValue;
  }
}

// The kernel a call runs (KernelKind); the same on every rank, since they agree on algo and count.
template <typename T> int kernel_kind(const nvlar_allreduce_args &a) {
  if (a.algo == NVLAR_ALGO_TMA) return kTmaKernel;
  if (a.algo == NVLAR_ALGO_PUSH_TWOSHOT) return kPushTwoshotKernel;
  if (a.algo == NVLAR_ALGO_PUSH && a.count > NVLAR_PUSH_CHUNK_BYTES / sizeof(T)) return kPushChunksKernel;
  return kPlainKernel;
}

template <typename T> struct LaunchVisitor {
  const nvlar_allreduce_args *ranks;
  int nranks;
  bool emulated;
  cudaStream_t stream;
  template <int Op, int kKind> cudaError_t launch_kind() const {
    dim3 grid(ranks[0].nblocks, emulated ? nranks : 1);
    const bool tma = kKind == kTmaKernel, pdl = ranks[0].pdl != 0;
    cudaError_t error;
    if (emulated) {
      EmulatedRanks all;
      for (int r = 0; r < nranks; r++) all.ranks[r] = ranks[r];
      error = launch(allreduce_emulated_kernel<T, Op, kKind>, all, grid, tma, pdl, stream);
    } else {
      error = launch(allreduce_kernel<T, Op, kKind>, ranks[0], grid, tma, pdl, stream);
    }
    return error != cudaSuccess ? error : cudaGetLastError();
  }
  template <int Op> cudaError_t run() const {
    switch (kernel_kind<T>(ranks[0])) {
      case kTmaKernel: return launch_kind<Op, kTmaKernel>();
      case kPushChunksKernel: return launch_kind<Op, kPushChunksKernel>();
      case kPushTwoshotKernel: return launch_kind<Op, kPushTwoshotKernel>();
      default: return launch_kind<Op, kPlainKernel>();
    }
  }
};

// Loads (does not launch) the kernels of one type and operator, and gives the TMA kernels
// their shared memory: with CUDA's lazy loading, the first launch of a kernel would otherwise
// load it then, and loading may wait for the device to go idle, which it never does while an
// all-reduce kernel waits for a peer whose launch comes after this one (several ranks driven
// from one thread, or emulated ranks on one GPU).
template <typename T> struct LoadVisitor {
  template <typename Kernel> static cudaError_t load(Kernel kernel, bool tma) {
    if (tma) {
      return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)kTmaSharedBytes);
    }
    cudaFuncAttributes attributes;
    return cudaFuncGetAttributes(&attributes, kernel);
  }
  template <int Op, int kKind> static cudaError_t load_kind() {
    cudaError_t error = load(allreduce_kernel<T, Op, kKind>, kKind == kTmaKernel);
    return error != cudaSuccess ? error : load(allreduce_emulated_kernel<T, Op, kKind>, kKind == kTmaKernel);
  }
  template <int Op> cudaError_t run() const {
    cudaError_t error = load_kind<Op, kPlainKernel>();
    if (error == cudaSuccess) error = load_kind<Op, kTmaKernel>();
    if (error == cudaSuccess) error = load_kind<Op, kPushChunksKernel>();
    if (error == cudaSuccess) error = load_kind<Op, kPushTwoshotKernel>();
    return error;
  }
};

// CTAs per SM of the kernel(s) an algorithm runs; for the push one-shot, the fewer of its two.
template <typename T> struct OccupancyVisitor {
  bool emulated;
  int algo;
  int *blocks_per_sm;
  template <int Op, int kKind> cudaError_t query(int *blocks) const {
    size_t shared = kKind == kTmaKernel ? kTmaSharedBytes : 0;
    if (emulated) {
      return cudaOccupancyMaxActiveBlocksPerMultiprocessor(
          blocks, allreduce_emulated_kernel<T, Op, kKind>, NVLAR_THREADS, shared);
    }
    return cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks, allreduce_kernel<T, Op, kKind>,
                                                         NVLAR_THREADS, shared);
  }
  template <int Op> cudaError_t run() const {
    if (algo == NVLAR_ALGO_TMA) return query<Op, kTmaKernel>(blocks_per_sm);
    if (algo == NVLAR_ALGO_PUSH_TWOSHOT) return query<Op, kPushTwoshotKernel>(blocks_per_sm);
    cudaError_t error = query<Op, kPlainKernel>(blocks_per_sm);
    if (error != cudaSuccess || algo != NVLAR_ALGO_PUSH) return error;
    int chunks_blocks = 0;
    error = query<Op, kPushChunksKernel>(&chunks_blocks);
    if (error == cudaSuccess && chunks_blocks < *blocks_per_sm) *blocks_per_sm = chunks_blocks;
    return error;
  }
};

}  // namespace nvlar

// One instantiation unit per element type keeps each nvcc run small and lets the build run
// them in parallel (kernels/allreduce_<type>.cu).
#define NVLAR_DEFINE_TYPED_LAUNCH(suffix, T)                                                 \
  cudaError_t nvlar_allreduce_launch_##suffix(const nvlar_allreduce_args *ranks, int nranks, \
                                              bool emulated, cudaStream_t stream) {          \
    return nvlar::with_op(ranks[0].op, nvlar::LaunchVisitor<T>{ranks, nranks, emulated, stream}); \
  }                                                                                          \
  cudaError_t nvlar_allreduce_load_##suffix(int op) {                                       \
    return nvlar::with_op(op, nvlar::LoadVisitor<T>{});                                      \
  }                                                                                          \
  cudaError_t nvlar_allreduce_occupancy_##suffix(int op, bool emulated, int algo,            \
                                                 int *blocks_per_sm) {                        \
    return nvlar::with_op(op, nvlar::OccupancyVisitor<T>{emulated, algo, blocks_per_sm});   \
  }
