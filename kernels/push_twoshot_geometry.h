/* The push two-shots' geometry (kernels/push_twoshot.cuh): where a CTA's areas lie in a
 * staging buffer, and how a message is cut into steps and a step into slices. One definition
 * for the kernels (the push two-shot and the TMA push two-shot, which differ only in the slots
 * they want and their largest slice) and for the tests that count their steps: plain C, every
 * function static inline, and callable from device code under nvcc.
 *
 * Layout of each rank's staging buffer (staging_bytes, a multiple of 256 and at least 64 KiB)
 * for a launch of nblocks CTAs: CTA b owns region b, nvlar_push_region_bytes() at
 * b * region; a region holds `slots` slots, each of 2 kinds (receive, gather) x nranks areas
 * (the own rank's are unused, for simple indexing) of nvlar_push_area_bytes() each, a multiple
 * of 16. The layout depends on the staging size, nranks, nblocks and the variant, never on the
 * count: two calls of the same variant on as many CTAs share it, and a call that follows
 * anything else first meets its peers (the reuse proof in push_twoshot.cuh relies on both).
 * Fewer CTAs own larger regions, so their slices grow up to the variant's cap and each CTA
 * moves more bytes per flag round trip.
 *
 * A message of `count` elements is cut into steps of nranks * slice elements (the last one
 * shorter); step g goes to CTA g % nblocks. The slice spreads the message over every CTA's
 * first step, in whole 16-byte packs, at most an area. */
#ifndef NVLAR_PUSH_TWOSHOT_GEOMETRY_H
#define NVLAR_PUSH_TWOSHOT_GEOMETRY_H

#include <stddef.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define NVLAR_PUSH_FN static inline __host__ __device__
#else
#define NVLAR_PUSH_FN static inline
#endif

/* Bytes of CTA b's region, for a launch of nblocks CTAs (1 .. NVLAR_MAX_BLOCKS). */
NVLAR_PUSH_FN size_t nvlar_push_region_bytes(size_t staging_bytes, int nblocks) {
  return staging_bytes / (size_t)nblocks / 256 * 256;
}

/* Slots of a region: the `wanted` (steps ahead + 2) where each area then holds 16 bytes,
 * else 2 (and so no step ahead). */
NVLAR_PUSH_FN int nvlar_push_slots(size_t staging_bytes, int nranks, int nblocks, int wanted) {
  if (wanted == 2) return 2;
  return nvlar_push_region_bytes(staging_bytes, nblocks) / ((size_t)wanted * 2 * (size_t)nranks) >= 16
             ? wanted
             : 2;
}

/* Bytes of one receive or gather area: a multiple of 16, at least 16, at most `cap_bytes`. */
NVLAR_PUSH_FN size_t nvlar_push_area_bytes(size_t staging_bytes, int nranks, int nblocks, int wanted,
                                           size_t cap_bytes) {
  const int slots = nvlar_push_slots(staging_bytes, nranks, nblocks, wanted);
  const size_t fit =
      nvlar_push_region_bytes(staging_bytes, nblocks) / ((size_t)slots * 2 * (size_t)nranks) / 16 * 16;
  return fit < cap_bytes ? fit : cap_bytes;
}

/* Elements per slice of a call: the same on every rank (they agree on every input). */
NVLAR_PUSH_FN size_t nvlar_push_slice_elems(size_t count, size_t element_size, size_t staging_bytes,
                                            int nranks, int nblocks, int wanted, size_t cap_bytes) {
  const size_t pack = 16 / element_size;
  const size_t fit = nvlar_push_area_bytes(staging_bytes, nranks, nblocks, wanted, cap_bytes) / element_size;
  const size_t ranks_ctas = (size_t)nranks * (size_t)nblocks;
  const size_t per_rank = (count + ranks_ctas - 1) / ranks_ctas;
  const size_t slice = (per_rank + pack - 1) / pack * pack;
  return slice < fit ? slice : fit;
}

/* Steps of a message (0 for an empty one), and the most that one CTA takes. */
NVLAR_PUSH_FN uint64_t nvlar_push_steps(size_t count, size_t slice_elems, int nranks) {
  if (count == 0) return 0;
  const size_t step = slice_elems * (size_t)nranks;
  return (count + step - 1) / step;
}
NVLAR_PUSH_FN uint64_t nvlar_push_most_steps(uint64_t steps, int nblocks) {
  return (steps + (uint64_t)nblocks - 1) / (uint64_t)nblocks;
}

#endif
