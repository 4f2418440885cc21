/* The push one-shot under skew: back-to-back calls on 4 emulated ranks, each rank on its own
 * stream with nothing coupling the streams but the kernels, rank 0 delayed by a spin kernel
 * before every call (so its peers run ahead and write into its receive buffers while it still
 * reads), the message size and the CTA count changing from call to call. Inputs change every
 * call; every output is checked, and the guard bytes around it.
 *
 * Sizes follow the push chunk (NVLAR_PUSH_CHUNK_BYTES): one chunk (small, and exactly full),
 * two chunks (the second one element, a short tail, or full) and four chunks (the last half
 * full, with an odd tail), so calls of one, two and several chunks follow each other and the
 * receive buffers' rotation meets every parity. CTA counts run from 1 to the most that the 4
 * ranks' kernels reliably hold on the GPU at once (below), through odd counts; a short last
 * chunk leaves the CTAs whose range it does not reach to send tokens. Every (size, CTA count)
 * pair comes once per 42 calls. (The wide cases of test_allreduce take the push one-shot to
 * the routing's CTA counts, with all ranks in one launch.)
 *
 * Full mode: 30 000 calls. Quick mode (NVLAR_TEST_QUICK=1): 2 100 calls (every pair 50 times).
 * Ranks on separate streams need CUDA to run their kernels concurrently, which it allows but
 * does not promise: every kernel is loaded before the first launch (a lazy load at a first
 * launch waits for the GPU to go idle: emulation_create), and the 4 streams fit in CUDA's
 * default 8 hardware queues. Where quick mode finds kernels of separate streams run one at a
 * time (compute-sanitizer serialises them, and uses quick mode), it says so and runs every pair
 * once with all ranks in one launch instead: no skew then, but every size and CTA count, the
 * tokens and the buffers' rotation across calls are still checked.
 *
 * In every other period of 42 calls, rank 0's CTAs but its first also pause between sending
 * and reading each chunk (SKEW_NS, below): its peers finish and start their next call while
 * those CTAs still read, which a missing hand-off (the short last chunk's tokens) does not
 * survive. Once a period the test waits for the GPU and stops at the first kernel error.
 *
 * Knobs for investigating a failure: NVLAR_TEST_STRESS_CALLS, _BLOCKS (fixed CTA count),
 * _DELAY_NS, _SKEW_NS (0: none), _ALGO (0 one-shot, 1 two-shot, 2 push, 4 push two-shot). */
#include <stdlib.h>

#include "allreduce_check.h"
#include "emulation.h"
#include "gpu_test.h"

#define NRANKS 4
#define TYPE 7 /* float32 */
#define OP 0   /* sum */
#define CHUNK_ELEMS (NVLAR_PUSH_CHUNK_BYTES / 4) /* float32 elements of one push chunk */

/* float32 counts, from the chunk size. */
static const size_t sizes[] = {
    3001,                                  /* one chunk, a few packets, the last half full */
    CHUNK_ELEMS,                           /* exactly one chunk: the largest one-chunk call */
    CHUNK_ELEMS + 1,                       /* two chunks, the second one half-full packet */
    CHUNK_ELEMS + 1001,                    /* two chunks, the second short: all its packets in
                                              CTA 0's range, every other CTA sends a token */
    2 * CHUNK_ELEMS,                       /* two full chunks */
    3 * CHUNK_ELEMS + CHUNK_ELEMS / 2 + 3, /* four chunks, the last just over half full, with
                                              an odd tail: CTAs past its middle send tokens */
};
#define NSIZES (int)(sizeof(sizes) / sizeof(sizes[0]))
#define LARGEST_COUNT (3 * CHUNK_ELEMS + CHUNK_ELEMS / 2 + 3)

/* CTA counts (0: the most that fit), each capped at that most. 7 of them against 6 sizes: every
 * pair once per 42 calls. */
static const int cta_choices[] = {1, 2, 3, 8, 17, 31, 0};
#define NCTAS (int)(sizeof(cta_choices) / sizeof(cta_choices[0]))
#define PERIOD (NSIZES * NCTAS)

#define FULL_CALLS 30000
#define QUICK_CALLS (50 * PERIOD)
#define DELAY_NS 3000
/* Rank 0's CTAs other than CTA 0 pause this long between sending and reading each push chunk
 * (nvlar_allreduce_args.test_skew_ns), in every other period of calls: long enough for its
 * peers to finish their call, verify it and start the next, so that a hand-off that lets a
 * peer run ahead of a CTA still reading (the short last chunk's tokens) is caught, not left to
 * a rare scheduling accident. */
#define SKEW_NS 50000

/* The most CTAs per rank that all ranks' kernels of `algo` reliably hold on the GPU at once:
 * one CTA per SM in all. On separate streams that is the measured bound, not occupancy: with
 * 4 ranks of 64 or 99 CTAs (2 or 3 per SM in all, within the kernel's occupancy of 3), CUDA
 * left part of the late rank's grid undispatched beside its peers' waiting CTAs until the
 * timeout, for the pull one-shot as for the push one (H100 and H200, 2026-12-05,
 * docs/data/runs/2026-12-05-suite); at 8, 16 and 33 CTAs, 6000 calls each passed. In one
 * launch (quick mode under compute-sanitizer) it is the rest of the quick matrix's bound. */
static int most_blocks(const struct emulation *e, int algo) {
  int most = emulation_max_blocks(e, NRANKS, algo);
  if (most > e->multiprocessors / NRANKS) most = e->multiprocessors / NRANKS;
  if (most > NVLAR_MAX_BLOCKS) most = NVLAR_MAX_BLOCKS;
  CHECK(most >= 1);
  return most;
}

/* Call i on every rank, each on its own stream; rank r's verdict accumulates in results[r]. */
static void call_on_streams(struct emulation *e, int algo, int nblocks, size_t count,
                            uint64_t seed, uint64_t delay_ns, uint32_t skew_ns,
                            struct check_result *results) {
  for (int r = 0; r < NRANKS; r++) {
    void *input = emulation_input(e, r, 4, 0), *output = emulation_output(e, r, 4, 0, 0);
    struct nvlar_allreduce_args args;
    emulation_args(e, r, algo, TYPE, OP, nblocks, input, output, count, &args);
    if (r == 0) args.test_skew_ns = skew_ns;
    CHECK_CUDA(emulation_poison_rank(e, r, count * 4, e->streams[r]));
    CHECK_CUDA(check_fill(input, count, TYPE, OP, r, NRANKS, seed, e->streams[r]));
    if (r == 0 && delay_ns > 0) CHECK_CUDA(check_spin(delay_ns, e->streams[r]));
    CHECK_CUDA(nvlar_allreduce_launch(&args, e->streams[r]));
    CHECK_CUDA(check_verify(&output, 1, count, TYPE, OP, NRANKS, seed, &results[r], e->streams[r]));
  }
}

/* Call i with all ranks in one launch; the verdict (ranks compared too) goes to results[0]. */
static void call_in_one_launch(struct emulation *e, int algo, int nblocks, size_t count,
                               uint64_t seed, struct check_result *results) {
  struct nvlar_allreduce_args args[NRANKS];
  void *outputs[NRANKS];
  CHECK_CUDA(emulation_poison(e, count * 4, e->streams[0]));
  for (int r = 0; r < NRANKS; r++) {
    void *input = emulation_input(e, r, 4, 0);
    outputs[r] = emulation_output(e, r, 4, 0, 0);
    emulation_args(e, r, algo, TYPE, OP, nblocks, input, outputs[r], count, &args[r]);
    CHECK_CUDA(check_fill(input, count, TYPE, OP, r, NRANKS, seed, e->streams[0]));
  }
  CHECK_CUDA(nvlar_allreduce_launch_emulated(args, NRANKS, e->streams[0]));
  CHECK_CUDA(check_verify(outputs, NRANKS, count, TYPE, OP, NRANKS, seed, &results[0], e->streams[0]));
}

/* Waits for every call so far; 1 if any rank's kernel recorded an error. */
static int any_kernel_error(struct emulation *e) {
  CHECK_CUDA(cudaDeviceSynchronize());
  for (int r = 0; r < NRANKS; r++) {
    if (e->buffers[r].error_host->code != NVLAR_KERNEL_OK) return 1;
  }
  return 0;
}

int main(void) {
  require_gpus(1);
  const int quick = quick_mode();
  const char *fixed_blocks = getenv("NVLAR_TEST_STRESS_BLOCKS");
  const char *delay_text = getenv("NVLAR_TEST_STRESS_DELAY_NS");
  uint64_t delay_ns = delay_text ? strtoull(delay_text, NULL, 10) : DELAY_NS;
  const char *skew_text = getenv("NVLAR_TEST_STRESS_SKEW_NS");
  uint32_t skew_ns = skew_text ? (uint32_t)strtoul(skew_text, NULL, 10) : SKEW_NS;
  CHECK(skew_ns <= 1000000);
  const char *algo_text = getenv("NVLAR_TEST_STRESS_ALGO");
  int algo = algo_text ? atoi(algo_text) : NVLAR_ALGO_PUSH;
  CHECK(algo >= 0 && algo < NVLAR_ALGO_COUNT);
  struct emulation e;
  CHECK_CUDA(emulation_create(&e, NRANKS, 1u << 20, LARGEST_COUNT * 4));

  /* Full mode assumes concurrent streams (a rank waiting for a peer that never starts times
   * out, and the test fails); quick mode asks. */
  int streams = 1;
  if (quick) {
    CHECK_CUDA(check_concurrent(e.streams, NRANKS, &streams));
    if (!streams) {
      printf("NOTE: kernels on separate streams do not run at the same time here (under "
             "compute-sanitizer, which runs them one at a time): every rank in one launch, "
             "without skew\n");
    }
  }
  int calls = !quick ? FULL_CALLS : streams ? QUICK_CALLS : PERIOD;
  if (getenv("NVLAR_TEST_STRESS_CALLS")) calls = atoi(getenv("NVLAR_TEST_STRESS_CALLS"));
  const int most = most_blocks(&e, algo);
  int least_used = NVLAR_MAX_BLOCKS, most_used = 0;

  struct check_result *results;
  CHECK_CUDA(cudaMalloc((void **)&results, NRANKS * sizeof(*results)));
  CHECK_CUDA(cudaMemset(results, 0, NRANKS * sizeof(*results)));
  for (int i = 0; i < calls; i++) {
    /* The CTA count changes with the size: the buffer-reuse argument must hold across grids. */
    int nblocks = cta_choices[i % NCTAS];
    if (nblocks == 0 || nblocks > most) nblocks = most;
    if (fixed_blocks) nblocks = atoi(fixed_blocks);
    if (nblocks < least_used) least_used = nblocks;
    if (nblocks > most_used) most_used = nblocks;
    size_t count = sizes[i % NSIZES];
    uint64_t seed = 900000 + (uint64_t)i;
    if (streams) {
      uint32_t skew = (i / PERIOD) % 2 == 1 ? skew_ns : 0;
      call_on_streams(&e, algo, nblocks, count, seed, delay_ns, skew, results);
    } else {
      call_in_one_launch(&e, algo, nblocks, count, seed, results);
    }
    /* Once a period, stop at the first failed kernel: a rank that gave up fails every later
     * call after a timeout each, and the rest would only take time. */
    if (i % PERIOD == PERIOD - 1 && any_kernel_error(&e)) {
      fprintf(stderr, "a kernel failed within calls %d-%d: stopping\n", i + 1 - PERIOD, i);
      calls = i + 1;
      break;
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
    if (host[r].mismatches != 0 || host[r].rank_diffs != 0 || host[r].guard_errors != 0 ||
        error->code != NVLAR_KERNEL_OK) {
      fprintf(stderr, "rank %d: %llu wrong elements (e.g. [%llu] = %g, want %g), %llu differ "
              "between ranks, %llu guard bytes hit, kernel error %u (waited for rank %d CTA %d "
              "at chunk %llu; push progress %llu)\n", r, host[r].mismatches, host[r].first_bad,
              host[r].got, host[r].want, host[r].rank_diffs, host[r].guard_errors, error->code,
              error->peer, error->block, (unsigned long long)error->seq,
              (unsigned long long)progress.push_seq);
      failures++;
    }
  }
  printf("%s, %d back-to-back calls on %d ranks (%s), %zu to %zu floats (1 to %zu push chunks), "
         "%d to %d CTAs: %s\n",
         nvlar_algo_name(algo), calls, NRANKS,
         streams ? "a stream each, rank 0 late" : "one launch", sizes[0], (size_t)LARGEST_COUNT,
         (size_t)((LARGEST_COUNT + CHUNK_ELEMS - 1) / CHUNK_ELEMS), least_used, most_used,
         failures ? "FAILED" : "all exact");
  CHECK_CUDA(cudaFree(results));
  emulation_destroy(&e);
  return failures ? 1 : 0;
}
