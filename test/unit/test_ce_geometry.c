/* The copy-engine two-shot's geometry (kernels/ce_twoshot_geometry.h), which the host's copies
 * and the reduce kernel both follow: the areas fit the staging buffer without overlapping,
 * chunks tile the message, slices tile each chunk, each slice fits an area and starts on a
 * 16-byte pack, for every rank count, element size and staging size nvlar allows, and for
 * counts around the chunk edges (odd tails, one element past a chunk, several chunks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ce_twoshot_geometry.h"
#include "nvlar_kernels.h"

static const size_t element_sizes[] = {1, 2, 4, 8};
/* The smallest staging nvlar_allreduce_check accepts, one 256-byte step above it, a size that
 * does not divide by 2 * nranks for every count, the tests' 2 MiB and the 64 MiB default. */
static const size_t staging_sizes[] = {64u << 10, (64u << 10) + 256, (1u << 20) + 3 * 256,
                                       2u << 20, 64u << 20};

static void test_areas_fit_and_stay_apart(void **state) {
  (void)state;
  for (size_t s = 0; s < sizeof(staging_sizes) / sizeof(staging_sizes[0]); s++) {
    const size_t staging = staging_sizes[s];
    for (int nranks = 2; nranks <= NVLAR_MAX_RANKS; nranks++) {
      const size_t area = nvlar_ce_area_bytes(staging, nranks);
      assert_true(area > 0);
      assert_int_equal(area % 256, 0);
      /* Every area inside the buffer, each at its own place: receive [0..n) then gather [0..n). */
      for (int src = 0; src < nranks; src++) {
        assert_int_equal(nvlar_ce_receive_offset(staging, nranks, src), (size_t)src * area);
        assert_int_equal(nvlar_ce_gather_offset(staging, nranks, src),
                         ((size_t)nranks + (size_t)src) * area);
      }
      assert_true(nvlar_ce_gather_offset(staging, nranks, nranks - 1) + area <= staging);
      assert_true(nvlar_ce_receive_offset(staging, nranks, nranks - 1) + area <=
                  nvlar_ce_gather_offset(staging, nranks, 0));
      for (size_t e = 0; e < sizeof(element_sizes) / sizeof(element_sizes[0]); e++) {
        const size_t element = element_sizes[e];
        const size_t chunk = nvlar_ce_chunk_elems(staging, nranks, element);
        assert_int_equal(chunk, (size_t)nranks * (area / element));
        assert_int_equal(chunk % (16 / element), 0);
      }
    }
  }
}

/* Slices of a chunk of `length` elements tile it in rank order, each within an area, each
 * non-empty one starting on a pack; empty ones only after the last non-empty one (they start
 * at the chunk's end). */
static void check_slices(size_t length, int nranks, size_t element, size_t area_elems) {
  size_t next = 0;
  int empty_seen = 0;
  for (int s = 0; s < nranks; s++) {
    struct nvlar_ce_range slice = nvlar_ce_slice(length, nranks, s, element);
    assert_int_equal(slice.begin, next);
    assert_true(slice.end >= slice.begin);
    assert_true(slice.end - slice.begin <= area_elems);
    if (slice.end > slice.begin) assert_int_equal(slice.begin % (16 / element), 0);
    if (slice.end == slice.begin) {
      empty_seen = 1;
    } else {
      assert_false(empty_seen);
    }
    next = slice.end;
  }
  assert_int_equal(next, length);
}

static void test_chunks_and_slices_tile_the_message(void **state) {
  (void)state;
  for (size_t s = 0; s < sizeof(staging_sizes) / sizeof(staging_sizes[0]); s++) {
    const size_t staging = staging_sizes[s];
    for (int nranks = 2; nranks <= NVLAR_MAX_RANKS; nranks++) {
      for (size_t e = 0; e < sizeof(element_sizes) / sizeof(element_sizes[0]); e++) {
        const size_t element = element_sizes[e];
        const size_t area_elems = nvlar_ce_area_bytes(staging, nranks) / element;
        const size_t chunk = nvlar_ce_chunk_elems(staging, nranks, element);
        const size_t counts[] = {1, 2, 7, 31, 4099, chunk - 1, chunk, chunk + 1,
                                 2 * chunk + 3, 3 * chunk + (size_t)nranks * 16 / element + 5};
        for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
          const size_t count = counts[c];
          const size_t chunks = nvlar_ce_chunks(count, chunk);
          assert_int_equal(chunks, (count + chunk - 1) / chunk);
          size_t next = 0;
          for (size_t j = 0; j < chunks; j++) {
            struct nvlar_ce_range range = nvlar_ce_chunk(count, chunk, j);
            assert_int_equal(range.begin, next);
            assert_true(range.end > range.begin);
            if (j + 1 < chunks) assert_int_equal(range.end - range.begin, chunk);
            check_slices(range.end - range.begin, nranks, element, area_elems);
            next = range.end;
          }
          assert_int_equal(next, count);
        }
      }
    }
  }
  assert_int_equal(nvlar_ce_chunks(0, 1024), 0);
}

/* What the docs say of the default: 64 MiB of staging, 2 ranks, bf16: two areas of 16 MiB
 * each for receiving and gathering, chunks of 32 MiB (16 Mi elements), slices of 16 MiB. */
static void test_default_staging_two_ranks(void **state) {
  (void)state;
  const size_t staging = 64u << 20;
  assert_int_equal(nvlar_ce_area_bytes(staging, 2), 16u << 20);
  assert_int_equal(nvlar_ce_chunk_elems(staging, 2, 2), 16u << 20);
  struct nvlar_ce_range slice = nvlar_ce_slice(16u << 20, 2, 1, 2);
  assert_int_equal(slice.begin, 8u << 20);
  assert_int_equal(slice.end, 16u << 20);
  /* 8 ranks: areas of 4 MiB, chunks of 32 MiB still. */
  assert_int_equal(nvlar_ce_area_bytes(staging, 8), 4u << 20);
  assert_int_equal(nvlar_ce_chunk_elems(staging, 8, 1), 32u << 20);
}

/* A chunk too short for every rank: the last ranks' slices are empty, nothing is lost. */
static void test_short_chunk(void **state) {
  (void)state;
  /* 5 floats over 8 ranks: slices of one pack (4), so ranks 0 and 1 hold 4 and 1. */
  struct nvlar_ce_range r0 = nvlar_ce_slice(5, 8, 0, 4), r1 = nvlar_ce_slice(5, 8, 1, 4);
  struct nvlar_ce_range r2 = nvlar_ce_slice(5, 8, 2, 4), r7 = nvlar_ce_slice(5, 8, 7, 4);
  assert_int_equal(r0.begin, 0);
  assert_int_equal(r0.end, 4);
  assert_int_equal(r1.begin, 4);
  assert_int_equal(r1.end, 5);
  assert_int_equal(r2.end - r2.begin, 0);
  assert_int_equal(r7.end - r7.begin, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_areas_fit_and_stay_apart),
      cmocka_unit_test(test_chunks_and_slices_tile_the_message),
      cmocka_unit_test(test_default_staging_two_ranks),
      cmocka_unit_test(test_short_chunk),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
