/* The push one-shot under skew: 100 000 back-to-back calls on 4 emulated ranks, each rank on
 * its own stream with nothing coupling the streams but the kernels, rank 0 delayed by a spin
 * kernel before every call (so its peers run ahead and write into its receive buffers while
 * it still reads). Inputs change every call; every output is checked. NVLAR_TEST_QUICK=1: 2000
 * calls. */
#include <stdlib.h>

#include "allreduce_check.h"
#include "emulation.h"
#include "gpu_test.h"

#define NRANKS 4
#define COUNT 3001 /* float32: one chunk, an odd tail */
#define DELAY_NS 3000

int main(void) {
  require_gpus(1);
  int calls = quick_mode() ? 2000 : 100000;
  struct emulation e;
  CHECK_CUDA(emulation_create(&e, NRANKS, 1u << 20, COUNT * 4));
  struct check_result *results;
  CHECK_CUDA(cudaMalloc((void **)&results, NRANKS * sizeof(*results)));
  CHECK_CUDA(cudaMemset(results, 0, NRANKS * sizeof(*results)));
  for (int i = 0; i < calls; i++) {
    /* Alternate the CTA count too: the buffer-reuse argument must hold across grids. */
    int nblocks = 1 + i % 3;
    for (int r = 0; r < NRANKS; r++) {
      void *input = emulation_input(&e, r, 4, 0), *output = emulation_output(&e, r, 4, 0, 0);
      struct nvlar_allreduce_args args;
      emulation_args(&e, r, NVLAR_ALGO_PUSH, 7, 0, nblocks, input, output, COUNT, &args);
      CHECK_CUDA(check_fill(input, COUNT, 7, 0, r, NRANKS, 900000 + i, e.streams[r]));
      if (r == 0) CHECK_CUDA(check_spin(DELAY_NS, e.streams[r]));
      CHECK_CUDA(nvlar_allreduce_launch(&args, e.streams[r]));
      CHECK_CUDA(check_verify(&output, 1, COUNT, 7, 0, NRANKS, 900000 + i, &results[r], e.streams[r]));
    }
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  struct check_result host[NRANKS];
  CHECK_CUDA(cudaMemcpy(host, results, sizeof(host), cudaMemcpyDeviceToHost));
  int failures = 0;
  for (int r = 0; r < NRANKS; r++) {
    if (host[r].mismatches != 0 || e.buffers[r].error_host->code != NVLAR_KERNEL_OK) {
      fprintf(stderr, "rank %d: %llu wrong elements, kernel error %u\n", r, host[r].mismatches,
              e.buffers[r].error_host->code);
      failures++;
    }
  }
  printf("push one-shot, %d skewed back-to-back calls on %d ranks: %s\n", calls, NRANKS,
         failures ? "FAILED" : "all exact");
  CHECK_CUDA(cudaFree(results));
  emulation_destroy(&e);
  return failures ? 1 : 0;
}
