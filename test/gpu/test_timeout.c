/* A rank that never launches must not hang the others: with NVLAR_TIMEOUT_MS short (set by the
 * test's environment), the ranks that did launch give up, record which peer never came, and
 * return; later launches on a failed rank return at once; the process then exits cleanly.
 * Every kernel is tried, on fresh ranks each time. Then the host's abort word (what
 * ncclCommAbort raises) stops waiting ranks long before their timeout. The only time bounds
 * asserted are hang guards far above what is expected. */
#include <time.h>
#include <unistd.h>

#include "emulation.h"
#include "gpu_test.h"

#define NRANKS 4
#define ABSENT 2

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void run(int algo) {
  struct emulation e;
  CHECK_CUDA(emulation_create(&e, NRANKS, 1u << 20, 2u << 20));
  /* Two push chunks of NVLAR_PUSH_CHUNK_BYTES (the push one-shot's kernel of several chunks),
   * several chunks of the pull kernels' staging halves. */
  const size_t count = NVLAR_PUSH_CHUNK_BYTES / 4 + 50000;
  struct nvlar_allreduce_args args[NRANKS];
  for (int r = 0; r < NRANKS; r++) {
    emulation_args(&e, r, algo, 7, 0, 2, emulation_input(&e, r, 4, 0),
                   emulation_output(&e, r, 4, 0, 0), count, &args[r]);
  }
  double start = now_seconds();
  for (int r = 0; r < NRANKS; r++) {
    if (r != ABSENT) CHECK_CUDA(nvlar_allreduce_launch(&args[r], e.streams[r]));
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  double waited = now_seconds() - start;
  CHECK(waited < 100 * e.timeout_ns * 1e-9 + 5);  /* hang guard, not a timing assertion */
  for (int r = 0; r < NRANKS; r++) {
    const struct nvlar_error_record *error = e.buffers[r].error_host;
    if (r == ABSENT) {
      CHECK(error->code == NVLAR_KERNEL_OK);
      continue;
    }
    CHECK(error->code == NVLAR_KERNEL_TIMEOUT);
    CHECK(error->rank == r);
    CHECK(error->peer == ABSENT);
    CHECK(error->block >= 0 && error->block < 2);
    CHECK(error->seq == (algo == NVLAR_ALGO_PUSH ? 0 : 1)); /* push counts chunks from 0 */
  }
  /* A failed rank's next call returns without waiting; nothing is left running. */
  CHECK_CUDA(nvlar_allreduce_launch(&args[0], e.streams[0]));
  CHECK_CUDA(cudaDeviceSynchronize());
  printf("%s: ranks gave up on absent rank %d after %.2f s (timeout %.2f s)\n",
         nvlar_algo_name(algo), ABSENT, waited, e.timeout_ns * 1e-9);
  emulation_destroy(&e);
}

/* The host's abort word stops waiting kernels long before their timeout (here a minute). */
static void run_abort(void) {
  struct emulation e;
  CHECK_CUDA(emulation_create(&e, NRANKS, 1u << 20, 1u << 20));
  uint32_t *abort_host = NULL, *abort_device = NULL;
  CHECK_CUDA(cudaHostAlloc((void **)&abort_host, sizeof(*abort_host), cudaHostAllocMapped));
  *abort_host = 0;
  CHECK_CUDA(cudaHostGetDevicePointer((void **)&abort_device, abort_host, 0));
  for (int r = 0; r < NRANKS; r++) {
    if (r == ABSENT) continue;
    struct nvlar_allreduce_args args;
    emulation_args(&e, r, NVLAR_ALGO_ONESHOT, 7, 0, 2, emulation_input(&e, r, 4, 0),
                   emulation_output(&e, r, 4, 0, 0), 1000, &args);
    args.timeout_ns = 60ull * 1000000000ull;
    args.abort = abort_device;
    CHECK_CUDA(nvlar_allreduce_launch(&args, e.streams[r]));
  }
  usleep(100000);
  CHECK(cudaStreamQuery(e.streams[0]) == cudaErrorNotReady); /* still waiting for the absent rank */
  double start = now_seconds();
  *(volatile uint32_t *)abort_host = 1;
  CHECK_CUDA(cudaDeviceSynchronize());
  double waited = now_seconds() - start;
  CHECK(waited < 30); /* hang guard: far below the one-minute timeout */
  for (int r = 0; r < NRANKS; r++) {
    if (r == ABSENT) continue;
    CHECK(e.buffers[r].error_host->code == NVLAR_KERNEL_ABORTED);
    CHECK(e.buffers[r].error_host->peer == ABSENT);
  }
  printf("abort: waiting ranks stopped %.3f s after the abort word was set\n", waited);
  CHECK_CUDA(cudaFreeHost(abort_host));
  emulation_destroy(&e);
}

int main(void) {
  require_gpus(1);
  /* Every row of kernels/nvlar_algos.h. The copy-engine two-shot gives up in its first kernel,
   * "arrived" (CTA 0, barrier 1); the push two-shots on fresh ranks meet first, as well. */
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) run(algo);
  run_abort();
  return 0;
}
