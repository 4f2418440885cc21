// How the kernels cut work: ranges per CTA, the two-shots' slices, and the pull kernels'
// chunks through the two halves of the staging buffer.
//
// Data path (one-shot, two-shot, TMA two-shot): a message is cut into chunks that fit half of the staging buffer;
// the halves alternate from chunk to chunk (and from call to call), so that a rank can stage
// chunk j+1 while slower peers still read chunk j. Each chunk is copied from the user's input
// into this rank's staging, then read by the peers straight from there (loads over NVLink).
//
// Why a half may be overwritten: a rank writes half h for chunk s only after passing the
// first barrier of chunk s-1. Every rank signals that barrier only after it finished every
// read of chunk s-2, the previous user of half h (program order within each CTA, and the
// barrier waits for all CTAs). So no rank still reads half h. This holds across calls and
// across the two kernels, which share the sequence numbers.
#pragma once

#include "nvlar_kernels.h"
#include "staged.cuh"

namespace nvlar {

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

}  // namespace nvlar
