/* The push two-shots' geometry (kernels/push_twoshot_geometry.h), which both push two-shot
 * kernels follow and the epochs test counts by: for every CTA count, rank count, element size
 * and staging size nvlar allows, and both variants (the thread copies' slots and slices, the
 * TMA push's), the nblocks regions fit the staging buffer, each region holds its slots x 2
 * kinds x nranks areas, areas are whole 16-byte packs and never above the variant's cap, the
 * slots are the wanted ones wherever an area can hold a pack, and the steps of a message
 * cover it with slices that fit an area. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nvlar_kernels.h"
#include "push_twoshot_geometry.h"

static const size_t element_sizes[] = {1, 2, 4, 8};
/* The smallest staging nvlar_allreduce_check accepts, sizes that do not divide evenly, the
 * tests' 256 KiB and 2 MiB and the 64 MiB default. */
static const size_t staging_sizes[] = {64u << 10, (64u << 10) + 256, (1u << 20) + 3 * 256,
                                       256u << 10, 2u << 20, 64u << 20};
static const struct {
  int wanted;
  size_t cap;
} variants[] = {
    {NVLAR_PUSH_TWOSHOT_SLOTS, NVLAR_PUSH_TWOSHOT_SLICE_CAP_BYTES},
    {NVLAR_TMA_PUSH_SLOTS, NVLAR_TMA_PUSH_SLICE_CAP_BYTES},
    {3, (size_t)64 << 10}, /* a step ahead for the thread copies (NVLAR_PUSH_TWOSHOT_AHEAD=1) */
};
static const int cta_counts[] = {1, 2, 3, 7, 8, 16, 24, 33, 64, 99, 128};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static void test_regions_hold_their_areas(void **state) {
  (void)state;
  for (size_t s = 0; s < COUNT_OF(staging_sizes); s++) {
    const size_t staging = staging_sizes[s];
    for (size_t b = 0; b < COUNT_OF(cta_counts); b++) {
      const int nblocks = cta_counts[b];
      const size_t region = nvlar_push_region_bytes(staging, nblocks);
      assert_int_equal(region % 256, 0);
      assert_true(region * (size_t)nblocks <= staging);
      for (int nranks = 2; nranks <= NVLAR_MAX_RANKS; nranks++) {
        for (size_t v = 0; v < COUNT_OF(variants); v++) {
          const int slots = nvlar_push_slots(staging, nranks, nblocks, variants[v].wanted);
          const size_t area = nvlar_push_area_bytes(staging, nranks, nblocks, variants[v].wanted, variants[v].cap);
          assert_true(slots == variants[v].wanted || slots == 2);
          /* The wanted slots wherever each area still holds a pack with them. */
          if (region / ((size_t)variants[v].wanted * 2 * (size_t)nranks) >= 16) {
            assert_int_equal(slots, variants[v].wanted);
          }
          assert_true(area >= 16);
          assert_int_equal(area % 16, 0);
          assert_true(area <= variants[v].cap);
          assert_true((size_t)slots * 2 * (size_t)nranks * area <= region);
        }
      }
    }
  }
}

/* Fewer CTAs own larger regions, so a CTA's slices never shrink when the CTA count does. */
static void test_fewer_ctas_larger_areas(void **state) {
  (void)state;
  for (size_t s = 0; s < COUNT_OF(staging_sizes); s++) {
    for (int nranks = 2; nranks <= NVLAR_MAX_RANKS; nranks++) {
      for (size_t v = 0; v < COUNT_OF(variants); v++) {
        size_t before = 0;
        for (int nblocks = NVLAR_MAX_BLOCKS; nblocks >= 1; nblocks--) {
          const size_t area = nvlar_push_area_bytes(staging_sizes[s], nranks, nblocks, variants[v].wanted,
                                                    variants[v].cap);
          /* The slot count may rise from 2 to the wanted one as regions grow; the area then
           * shrinks once, by at most the ratio of the slot counts. */
          assert_true(area * (size_t)variants[v].wanted >= before * 2);
          before = area;
        }
      }
    }
  }
}

static void test_steps_cover_the_message(void **state) {
  (void)state;
  const size_t counts[] = {1, 7, 31, 4099, (1u << 20) + 5, 3u << 20, (64u << 20) / 4 + 1};
  for (size_t s = 0; s < COUNT_OF(staging_sizes); s++) {
    const size_t staging = staging_sizes[s];
    for (size_t b = 0; b < COUNT_OF(cta_counts); b++) {
      const int nblocks = cta_counts[b];
      for (int nranks = 2; nranks <= NVLAR_MAX_RANKS; nranks += 3) {
        for (size_t e = 0; e < COUNT_OF(element_sizes); e++) {
          const size_t element = element_sizes[e];
          for (size_t v = 0; v < COUNT_OF(variants); v++) {
            const size_t area = nvlar_push_area_bytes(staging, nranks, nblocks, variants[v].wanted, variants[v].cap);
            for (size_t c = 0; c < COUNT_OF(counts); c++) {
              const size_t count = counts[c];
              const size_t slice = nvlar_push_slice_elems(count, element, staging, nranks, nblocks,
                                                          variants[v].wanted, variants[v].cap);
              assert_true(slice > 0);
              assert_int_equal(slice * element % 16, 0);
              assert_true(slice * element <= area);
              const uint64_t steps = nvlar_push_steps(count, slice, nranks);
              assert_true(steps * slice * (size_t)nranks >= count);
              assert_true((steps - 1) * slice * (size_t)nranks < count);
              const uint64_t most = nvlar_push_most_steps(steps, nblocks);
              assert_true(most * (uint64_t)nblocks >= steps);
              assert_true((most - 1) * (uint64_t)nblocks < steps);
            }
            assert_int_equal(nvlar_push_steps(0, 16 / element, nranks), 0);
          }
        }
      }
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_regions_hold_their_areas),
      cmocka_unit_test(test_fewer_ctas_larger_areas),
      cmocka_unit_test(test_steps_cover_the_message),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
