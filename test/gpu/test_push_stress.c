/* The push one-shot under skew: 100 000 back-to-back calls on 4 emulated ranks, each rank on
 * its own stream with nothing coupling the streams but the kernels, rank 0 delayed by a spin
 * kernel before every call (so its peers run ahead and write into its receive buffers while
 * it still reads), the CTA count and the size (one chunk, two chunks) changing from call to
 * call. Inputs change every call; every output is checked.
 *
 * Ranks on separate streams of one GPU need their kernels to run concurrently, which CUDA
 * allows but does not promise: every kernel is loaded before the first launch (a lazy load at
 * a first launch waits for the GPU to go idle: emulation_create), and the 4 streams fit in
 * CUDA's default 8 hardware queues (CUDA_DEVICE_MAX_CONNECTIONS=1 would put every rank behind
 * the others' waiting kernels). compute-sanitizer runs kernels one at a time, so quick mode
 * (the sanitizer's) skips the test.
 *
 * Knobs for investigating a failure: NVLAR_TEST_STRESS_CALLS, _BLOCKS (fixed CTA count),
 * _DELAY_NS, _ALGO (0 one-shot, 1 two-shot, 2 push). */
#include <stdlib.h>

#include "allreduce_check.h"
#include "emulation.h"
#include "gpu_test.h"

#define NRANKS 4
/* float32 counts: one chunk with an odd tail (every fourth call); two chunks, the second short
 * (its packets all in CTA 0's range; with 2 or 3 CTAs the others send tokens), so that calls of
 * two chunks follow each other and write every packet of buffers that a slow rank's CTAs
 * without packets in the short chunk read last. */
#define SMALL_COUNT 3001
#define LARGE_COUNT (65536 + 1001)
#define DELAY_NS 3000

int main(void) {
  require_gpus(1);
  if (quick_mode()) {
    printf("ranks on separate streams: skipped in quick mode\n");
    return GPU_TEST_SKIP;
  }
  int calls = 100000;
  const char *fixed_blocks = getenv("NVLAR_TEST_STRESS_BLOCKS");
  const char *delay_text = getenv("NVLAR_TEST_STRESS_DELAY_NS");
  uint64_t delay_ns = delay_text ? strtoull(delay_text, NULL, 10) : DELAY_NS;
  if (getenv("NVLAR_TEST_STRESS_CALLS")) calls = atoi(getenv("NVLAR_TEST_STRESS_CALLS"));
  const char *algo_text = getenv("NVLAR_TEST_STRESS_ALGO");
  int algo = algo_text ? atoi(algo_text) : NVLAR_ALGO_PUSH;
  struct emulation e;
  CHECK_CUDA(emulation_create(&e, NRANKS, 1u << 20, LARGE_COUNT * 4));
  struct check_result *results;
  CHECK_CUDA(cudaMalloc((void **)&results, NRANKS * sizeof(*results)));
  CHECK_CUDA(cudaMemset(results, 0, NRANKS * sizeof(*results)));
  for (int i = 0; i < calls; i++) {
    /* Alternate the CTA count too: the buffer-reuse argument must hold across grids. */
    int nblocks = fixed_blocks ? atoi(fixed_blocks) : 1 + i % 3;
    size_t count = i % 4 == 0 ? SMALL_COUNT : LARGE_COUNT;
    for (int r = 0; r < NRANKS; r++) {
      void *input = emulation_input(&e, r, 4, 0), *output = emulation_output(&e, r, 4, 0, 0);
      struct nvlar_allreduce_args args;
      emulation_args(&e, r, algo, 7, 0, nblocks, input, output, count, &args);
      CHECK_CUDA(check_fill(input, count, 7, 0, r, NRANKS, 900000 + i, e.streams[r]));
      if (r == 0 && delay_ns > 0) CHECK_CUDA(check_spin(delay_ns, e.streams[r]));
      CHECK_CUDA(nvlar_allreduce_launch(&args, e.streams[r]));
      CHECK_CUDA(check_verify(&output, 1, count, 7, 0, NRANKS, 900000 + i, &results[r], e.streams[r]));
    }
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  struct check_result host[NRANKS];
  CHECK_CUDA(cudaMemcpy(host, results, sizeof(host), cudaMemcpyDeviceToHost));
  int failures = 0;
  for (int r = 0; r < NRANKS; r++) {
    const struct nvlar_error_record *error = e.buffers[r].error_host;
    struct nvlar_rank_progress progress;
    CHECK_CUDA(cudaMemcpy(&progress, &e.buffers[r].state->slot[0], sizeof(progress),
                          cudaMemcpyDeviceToHost));
    if (host[r].mismatches != 0 || error->code != NVLAR_KERNEL_OK) {
      fprintf(stderr, "rank %d: %llu wrong elements, kernel error %u (waited for rank %d CTA %d "
              "at chunk %llu; push progress %llu)\n", r, host[r].mismatches, error->code,
              error->peer, error->block, (unsigned long long)error->seq,
              (unsigned long long)progress.push_seq);
      failures++;
    }
  }
  printf("%s, %d skewed back-to-back calls on %d ranks: %s\n", nvlar_algo_name(algo), calls,
         NRANKS, failures ? "FAILED" : "all exact");
  CHECK_CUDA(cudaFree(results));
  emulation_destroy(&e);
  return failures ? 1 : 0;
}
