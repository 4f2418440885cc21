/* LD_PRELOAD=libnvlar.so in front of an NCCL program on one GPU (test/gpu/app_preload.c):
 * 1-rank communicators (init, grouped init, split, non-blocking init, graph capture, destroy,
 * abort) behave exactly as with NCCL alone, nvlar says why each stays on NCCL, and the host
 * cost nvlar adds to each fallback all-reduce is reported (not asserted). */
#include <stdio.h>
#include <string.h>

#include "gpu_test.h"
#include "spawn.h"

static char output[1 << 16];

int main(void) {
  require_gpus(1);
  char *argv[] = {NVLAR_TEST_APP_PRELOAD, NULL};
  const char *env[] = {"LD_PRELOAD=" NVLAR_TEST_LIBNVLAR, "NVLAR_DEBUG=INFO", "NVLAR_DEBUG_FILE",
                       NULL};
  int status = nvlar_test_run(argv, env, output, sizeof(output));
  fputs(output, stdout);
  CHECK(status == 0);
  CHECK(nvlar_test_count_lines(output, "app: all checks passed") == 1);
  CHECK(nvlar_test_count_lines(output, "NVLAR INFO nvlar ") == 1);
  /* Blocking 1-rank communicators: setup decides without a collective step. */
  CHECK(nvlar_test_count_lines(output, "all-reduces stay on NCCL: 1 ranks") >= 4);
  CHECK(nvlar_test_count_lines(output, "all-reduces stay on NCCL: setup of non-blocking") == 1);
  CHECK(nvlar_test_count_lines(output, "NVLAR WARN") == 0);
  CHECK(nvlar_test_count_lines(output, "fallback ncclAllReduce host time per call") == 1);
  return 0;
}
