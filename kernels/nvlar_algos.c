/* The algorithm table of nvlar_algos.h as data, and lookups by value and by name. */
#include "nvlar_algos.h"

#include <strings.h>

#include "nvlar_kernels.h" /* the constants that the table's size caps name */

/* Two rows with one value fail to compile (-Woverride-init), and so does a value past the
 * count; with as many slots as rows, every value 0 .. NVLAR_ALGO_COUNT - 1 has its row. */
const struct nvlar_algo_desc nvlar_algo_descs[NVLAR_ALGO_COUNT] = {
#define NVLAR_ALGO_DESC(id, value, name, title, min_arch, below_arch, max_bytes, above_max,    \
                        bytes_per_cta, most_ctas)                                               \
  [NVLAR_ALGO_##id] = {name,      title, min_arch, NVLAR_ALGO_##below_arch, max_bytes,          \
                       NVLAR_ALGO_##above_max, bytes_per_cta, most_ctas},
    NVLAR_ALGOS(NVLAR_ALGO_DESC)
#undef NVLAR_ALGO_DESC
};

const char *nvlar_algo_name(int algo) {
  return algo >= 0 && algo < NVLAR_ALGO_COUNT ? nvlar_algo_descs[algo].name : "?";
}

int nvlar_algo_from_name(const char *name) {
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) {
    if (strcasecmp(nvlar_algo_descs[algo].name, name) == 0) return algo;
  }
  return -1;
}
