/* The copy-engine two-shot's geometry (kernels/ce_twoshot.cuh): where its areas lie in a
 * staging buffer, how a message is cut into chunks and a chunk into slices. One definition
 * for the host code that issues the copies, the reduce kernel, and the unit tests
 * (test/unit/test_ce_geometry.c): plain C, every function static inline, and callable from
 * device code under nvcc.
 *
 * Layout of each rank's staging buffer (staging_bytes, a multiple of 256 and at least 64 KiB):
 * 2 * nranks areas of nvlar_ce_area_bytes() each, a multiple of 256 bytes:
 *   receive area [src], src = 0 .. nranks-1, at src * area: rank src's scatter copies land
 *   here (the own rank's, [rank], is unused);
 *   gather area [src] at (nranks + src) * area: rank src's reduced slices land here (the own
 *   rank's is unused).
 * The layout depends only on staging_bytes and nranks, never on the call, so a receive area
 * never overlaps a gather area whatever the calls' sizes (the reuse proof in ce_twoshot.cuh
 * relies on it).
 *
 * A message of `count` elements is cut into chunks of nvlar_ce_chunk_elems() elements (the last
 * one shorter): one area per rank. Slice s of a chunk of `length` elements is
 * [s * slice, (s + 1) * slice) clipped to the chunk, with slice = ceil(length / nranks) rounded
 * up to whole 16-byte packs: every slice but the last non-empty one is a whole number of packs,
 * so every non-empty slice starts 16-byte aligned relative to the chunk (an empty one, of a
 * chunk too short to reach it, starts at the chunk's end), and a slice never exceeds an area
 * (a chunk holds nranks areas, each a whole number of packs). */
#ifndef NVLAR_CE_TWOSHOT_GEOMETRY_H
#define NVLAR_CE_TWOSHOT_GEOMETRY_H

#include <stddef.h>

#if defined(__CUDACC__)
#define NVLAR_CE_FN static inline __host__ __device__
#else
#define NVLAR_CE_FN static inline
#endif

/* Half-open element range [begin, end). */
struct nvlar_ce_range {
  size_t begin, end;
};

/* Bytes of one area. */
NVLAR_CE_FN size_t nvlar_ce_area_bytes(size_t staging_bytes, int nranks) {
  return staging_bytes / (2 * (size_t)nranks) / 256 * 256;
}

/* Byte offsets, in a staging buffer, of receive area [src] and of gather area [src]. */
NVLAR_CE_FN size_t nvlar_ce_receive_offset(size_t staging_bytes, int nranks, int src) {
  return (size_t)src * nvlar_ce_area_bytes(staging_bytes, nranks);
}
NVLAR_CE_FN size_t nvlar_ce_gather_offset(size_t staging_bytes, int nranks, int src) {
  return ((size_t)nranks + (size_t)src) * nvlar_ce_area_bytes(staging_bytes, nranks);
}

/* Elements of one full chunk, for elements of `element_size` bytes (1, 2, 4 or 8). */
NVLAR_CE_FN size_t nvlar_ce_chunk_elems(size_t staging_bytes, int nranks, size_t element_size) {
  return (size_t)nranks * (nvlar_ce_area_bytes(staging_bytes, nranks) / element_size);
}

/* How many chunks a message of `count` elements takes (0 for an empty one). */
NVLAR_CE_FN size_t nvlar_ce_chunks(size_t count, size_t chunk_elems) {
  return (count + chunk_elems - 1) / chunk_elems;
}

/* Chunk j of a message of `count` elements, in message elements. */
NVLAR_CE_FN struct nvlar_ce_range nvlar_ce_chunk(size_t count, size_t chunk_elems, size_t j) {
  struct nvlar_ce_range chunk;
  chunk.begin = j * chunk_elems < count ? j * chunk_elems : count;
  chunk.end = chunk.begin + chunk_elems < count ? chunk.begin + chunk_elems : count;
  return chunk;
}

/* Slice s (the one rank s reduces) of a chunk of `length` elements, in chunk elements; empty
 * where the chunk is too short to reach it. */
NVLAR_CE_FN struct nvlar_ce_range nvlar_ce_slice(size_t length, int nranks, int s,
                                                 size_t element_size) {
  const size_t pack = 16 / element_size;
  size_t slice = (length + (size_t)nranks - 1) / (size_t)nranks;
  slice = (slice + pack - 1) / pack * pack;
  struct nvlar_ce_range range;
  range.begin = slice * (size_t)s < length ? slice * (size_t)s : length;
  range.end = range.begin + slice < length ? range.begin + slice : length;
  return range;
}

#undef NVLAR_CE_FN

#endif
