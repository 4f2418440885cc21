/* An NCCL program on one GPU (test/gpu/app_preload.c) with libnvlar in front, three ways:
 * LD_PRELOAD=libnvlar.so; NCCL_TUNER_PLUGIN=nvlar (NCCL loads libnccl-tuner-nvlar.so from
 * LD_LIBRARY_PATH); and both. 1-rank communicators (init, grouped init, split, non-blocking
 * init, graph capture, destroy, abort) behave exactly as with NCCL alone, nvlar says that it
 * makes their all-reduces as copies, NCCL names the nvlar tuner it loaded, and the host cost
 * nvlar adds to each all-reduce is reported (not asserted). */
#include <stdio.h>
#include <string.h>

#include "gpu_test.h"
#include "spawn.h"

static char output[1 << 16];

static int run(const char *const *env) {
  char *argv[] = {NVLAR_TEST_APP_PRELOAD, NULL};
  int status = nvlar_test_run(argv, env, output, sizeof(output));
  fputs(output, stdout);
  CHECK(status == 0);
  CHECK(nvlar_test_count_lines(output, "app: all checks passed") == 1);
  CHECK(nvlar_test_count_lines(output, "NVLAR WARN") == 0);
  CHECK(nvlar_test_count_lines(output, "fallback ncclAllReduce host time per call") == 1);
  return status;
}

static void check_tuner_loaded(void) {
  /* NCCL's own line, then ours through NCCL's logger. */
  CHECK(nvlar_test_count_lines(output, "TUNER/Plugin: Using nvlar (v5)") >= 1);
  /* "TUNER/nvlar: 1 ranks, 1 nodes, sm_90, table built-in with 6 nccl rows": the GPU's
   * architecture sits between the node count and the table. */
  CHECK(nvlar_test_count_lines(output, "TUNER/nvlar: 1 ranks, 1 nodes, sm_") >= 1);
  CHECK(nvlar_test_count_lines(output, ", table built-in with ") >= 1);
}

int main(void) {
  require_gpus(1);
  const char *preload[] = {"LD_PRELOAD=" NVLAR_TEST_LIBNVLAR, "NVLAR_DEBUG=INFO",
                           "NVLAR_DEBUG_FILE", "NCCL_TUNER_PLUGIN", NULL};
  run(preload);
  CHECK(nvlar_test_count_lines(output, "NVLAR INFO nvlar ") == 1);
  /* 1-rank communicators, blocking and non-blocking (whose setup runs once NCCL reports it
   * ready): setup decides without a collective step, and nvlar makes their all-reduces. */
  CHECK(nvlar_test_count_lines(output, "1 rank: its all-reduces are copies, made by nvlar") >= 5);

  const char *tuner[] = {"LD_PRELOAD", "NCCL_TUNER_PLUGIN=nvlar",
                         "LD_LIBRARY_PATH=" NVLAR_TEST_BUILD_DIR, "NCCL_DEBUG=INFO",
                         "NCCL_DEBUG_SUBSYS=INIT,TUNING", "NVLAR_DEBUG=INFO", NULL};
  run(tuner);
  check_tuner_loaded();
  CHECK(nvlar_test_count_lines(output, "NVLAR INFO nvlar ") == 0); /* not interposed */

  const char *both[] = {"LD_PRELOAD=" NVLAR_TEST_LIBNVLAR, "NCCL_TUNER_PLUGIN=nvlar",
                        "LD_LIBRARY_PATH=" NVLAR_TEST_BUILD_DIR, "NCCL_DEBUG=INFO",
                        "NCCL_DEBUG_SUBSYS=INIT,TUNING", "NVLAR_DEBUG=INFO", NULL};
  run(both);
  check_tuner_loaded();
  CHECK(nvlar_test_count_lines(output, "NVLAR INFO nvlar ") == 1);
  return 0;
}
