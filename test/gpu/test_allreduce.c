/* The correctness matrix of the all-reduce kernels on one GPU, ranks emulated:
 * every dtype x op x nranks {2,3,4,5,6,7,8} x size {1, 7, 31, 4099, 1 MiB + 5 elements, 64 MiB}
 * x in-place/out-of-place x every algorithm of kernels/nvlar_algos.h (one-shot, two-shot,
 * push, TMA two-shot, push two-shot, copy-engine two-shot, TMA push two-shot),
 * programmatic dependent launch on and off in turn, and out of step with it the kernels at the
 * stream's priority or the GPU's greatest (args.priority, NVLAR_PRIORITY), all ranks in one
 * launch; misaligned pointers (one element past 16-byte alignment) for nranks {3, 8}; and a
 * subset with every rank on its own stream (separate launches, as real ranks run). Each output
 * must match the reference (exactly; avg of floats within 2 ulp), be bitwise identical on all
 * ranks, and leave the guard bytes around it untouched.
 *
 * A small staging buffer (2 MiB) makes the larger sizes run through many chunks and both
 * staging halves. CTA counts rotate from case to case, so consecutive calls on the same
 * ranks use different grids, as routing will.
 *
 * Beside the matrix, for every kernel and rank count, the edges routing reaches ("wide" cases):
 * messages of exactly one push chunk (NVLAR_PUSH_CHUNK_BYTES), one chunk and one element, two
 * chunks and an odd tail (and, in full mode, five chunks and a tail), and CTA counts up to the
 * most routing gives (NVLAR_MAX_BLOCKS; NCCL's default cap of 64) or, where fewer fit on one
 * GPU for all emulated ranks, the most that fit.
 *
 * Quick mode (NVLAR_TEST_QUICK=1, CI and compute-sanitizer): the matrix at 3 and 8 ranks for
 * sizes 7 and 4099 (which crosses chunks of a 64 KiB staging buffer), one launch for all
 * ranks; the wide cases at 2, 3 and 8 ranks. Where kernels of separate streams do not run at
 * the same time (compute-sanitizer), the wide cases keep to one CTA per SM in all, as the rest
 * of quick mode does, and the TMA kernels to 16 CTAs per rank (racecheck keeps shadow state
 * for each CTA's 224 KiB of shared memory: 8 ranks x 16 CTAs of them outgrew a 128 GiB host). */
#include <stdlib.h>
#include <string.h>

#include "allreduce_check.h"
#include "config.h"
#include "emulation.h"
#include "gpu_test.h"

#define STAGING_BYTES (2u << 20)
#define MAX_CASES 2048

struct case_desc {
  int nranks, algo, datatype, op, in_place, misalign, streams, nblocks, pdl;
  int high_priority; /* launched at the GPU's greatest priority (args.priority) */
  size_t count;
};

/* The GPU's greatest stream priority (cudaDeviceGetStreamPriorityRange), set in main. */
static int greatest_priority;

static const char *algo_name(int algo) { return nvlar_algo_name(algo); }

static size_t case_count(int size_index, size_t element) {
  switch (size_index) {
    case 0: return 1;
    case 1: return 7;
    case 2: return 31;
    case 3: return 4099;
    case 4: return (1u << 20) / element + 5;
    default: return (64u << 20) / element;
  }
}

/* The wide cases of one kernel at one rank count (see the top). `most`: the most CTAs per rank
 * that may run. Returns the new number of cases. */
static int add_wide_cases(struct case_desc *cases, int n, int nranks, int algo, int most,
                          int quick) {
  int mid = most < NVLAR_NCCL_MAX_CHANNELS ? most : NVLAR_NCCL_MAX_CHANNELS;
  int odd = most < 37 ? (most + 1) / 2 : 37;
  const size_t chunk = NVLAR_PUSH_CHUNK_BYTES;
  /* Bytes (element counts follow the type), type, op, CTAs, in place, misaligned. */
  const struct {
    size_t bytes;
    int extra, datatype, op, nblocks, in_place, misalign, full_only;
  } wide[] = {
      {chunk, 0, 7, 0, most, 1, 0, 0},         /* float32 sum: the largest one-chunk push */
      {chunk, 1, 6, 3, mid, 0, 1, 0},          /* float16 min: two chunks, the second 1 element */
      {2 * chunk, 3, 7, 0, most, 0, 0, 0},     /* float32 sum: two chunks, odd tail */
      {2 * chunk, 5, 9, 4, mid, 1, 1, 1},      /* bfloat16 avg, in place, misaligned */
      {2 * chunk, 7, 1, 2, odd, 0, 1, 0},      /* uint8 max: odd CTA count, odd byte tail */
      {16 * 1024, 3, 7, 0, most, 0, 0, 0},     /* small: most CTAs get little or nothing */
      {5 * chunk, 17, 8, 1, most, 0, 0, 1},    /* float64 prod: five chunks */
      {5 * chunk, 11, 2, 0, odd, 1, 1, 1},     /* int32 sum, in place, misaligned */
  };
  for (size_t k = 0; k < sizeof(wide) / sizeof(wide[0]); k++) {
    if (quick && wide[k].full_only) continue;
    struct case_desc *c = &cases[n++];
    memset(c, 0, sizeof(*c));
    c->nranks = nranks;
    c->algo = algo;
    c->datatype = wide[k].datatype;
    c->op = wide[k].op;
    c->count = wide[k].bytes / check_type_size(wide[k].datatype) + (size_t)wide[k].extra;
    c->nblocks = wide[k].nblocks;
    c->in_place = wide[k].in_place;
    c->misalign = wide[k].misalign;
    c->pdl = (int)(k % 2);
    c->high_priority = (int)((k / 2) % 2);
  }
  return n;
}

/* The most CTAs per rank of `algo` that the wide cases use for `nranks` ranks in one launch. */
static int wide_most(const struct emulation *e, int nranks, int algo, int serialised) {
  int most = emulation_max_blocks(e, nranks, algo);
  if (serialised) {
    if (most > e->multiprocessors / nranks) most = e->multiprocessors / nranks;
    if ((algo == NVLAR_ALGO_TMA || algo == NVLAR_ALGO_TMA_PUSH) && most > 16) most = 16;
  }
  if (most > NVLAR_MAX_BLOCKS) most = NVLAR_MAX_BLOCKS;
  CHECK(most >= 1);
  return most;
}

/* Runs one case asynchronously; its verdict lands in results[index]. */
static void run_case(struct emulation *e, const struct case_desc *c, uint64_t seed,
                     struct check_result *result) {
  size_t element = check_type_size(c->datatype);
  cudaStream_t main_stream = e->streams[0];
  CHECK_CUDA(emulation_poison(e, c->count * element + 2 * element, main_stream));
  struct nvlar_allreduce_args args[NVLAR_MAX_RANKS];
  void *outputs[NVLAR_MAX_RANKS];
  for (int r = 0; r < c->nranks; r++) {
    void *input = emulation_input(e, r, element, c->misalign);
    outputs[r] = emulation_output(e, r, element, c->misalign, c->in_place);
    CHECK_CUDA(check_fill(input, c->count, c->datatype, c->op, r, c->nranks, seed, main_stream));
    emulation_args(e, r, c->algo, c->datatype, c->op, c->nblocks, input, outputs[r], c->count, &args[r]);
    args[r].pdl = c->pdl;
    args[r].priority = c->high_priority ? greatest_priority : 0;
  }
  if (!c->streams) {
    CHECK_CUDA(nvlar_allreduce_launch_emulated(args, c->nranks, main_stream));
  } else {
    /* Every rank on its own stream, after the inputs are ready; verify after all of them. */
    cudaEvent_t ready, done[NVLAR_MAX_RANKS];
    CHECK_CUDA(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    CHECK_CUDA(cudaEventRecord(ready, main_stream));
    for (int r = 0; r < c->nranks; r++) {
      CHECK_CUDA(cudaEventCreateWithFlags(&done[r], cudaEventDisableTiming));
      CHECK_CUDA(cudaStreamWaitEvent(e->streams[r], ready, 0));
      CHECK_CUDA(nvlar_allreduce_launch(&args[r], e->streams[r]));
      CHECK_CUDA(cudaEventRecord(done[r], e->streams[r]));
    }
    for (int r = 0; r < c->nranks; r++) {
      CHECK_CUDA(cudaStreamWaitEvent(main_stream, done[r], 0));
      CHECK_CUDA(cudaEventDestroy(done[r]));
    }
    CHECK_CUDA(cudaEventDestroy(ready));
  }
  CHECK_CUDA(check_verify(outputs, c->nranks, c->count, c->datatype, c->op, c->nranks, seed,
                          result, main_stream));
}

/* Runs a batch of cases on one set of emulated ranks and reports every failure. */
static int run_batch(struct emulation *e, const struct case_desc *cases, int ncases) {
  struct check_result *results = NULL;
  size_t bytes = (size_t)ncases * sizeof(*results);
  CHECK_CUDA(cudaMalloc((void **)&results, bytes));
  CHECK_CUDA(cudaMemset(results, 0, bytes));
  for (int i = 0; i < ncases; i++) run_case(e, &cases[i], 0x5eed0000u + (uint64_t)i, &results[i]);
  CHECK_CUDA(cudaStreamSynchronize(e->streams[0]));
  struct check_result *host = malloc(bytes);
  CHECK(host != NULL);
  CHECK_CUDA(cudaMemcpy(host, results, bytes, cudaMemcpyDeviceToHost));
  int failures = 0;
  for (int i = 0; i < ncases; i++) {
    const struct case_desc *c = &cases[i];
    const struct check_result *r = &host[i];
    if (r->mismatches == 0 && r->rank_diffs == 0 && r->guard_errors == 0) continue;
    failures++;
    if (failures <= 20) {
      fprintf(stderr,
              "FAIL %s nranks=%d %s %s count=%zu %s misalign=%d %s blocks=%d pdl=%d priority=%s: %llu wrong "
              "(e.g. [%llu] = %g, want %g), %llu differ between ranks, %llu guard bytes hit\n",
              algo_name(c->algo), c->nranks, check_type_name(c->datatype), check_op_name(c->op),
              c->count, c->in_place ? "in-place" : "out-of-place", c->misalign,
              c->streams ? "streams" : "one-launch", c->nblocks, c->pdl,
              c->high_priority ? "high" : "stream", r->mismatches, r->first_bad,
              r->got, r->want, r->rank_diffs, r->guard_errors);
    }
  }
  for (int r = 0; r < e->nranks; r++) {
    if (e->buffers[r].error_host->code != NVLAR_KERNEL_OK) {
      fprintf(stderr, "rank %d: kernel error %u waiting for rank %d\n", r,
              e->buffers[r].error_host->code, e->buffers[r].error_host->peer);
      failures++;
    }
  }
  free(host);
  CHECK_CUDA(cudaFree(results));
  return failures;
}

int main(void) {
  require_gpus(1);
  int least_priority = 0;
  CHECK_CUDA(cudaDeviceGetStreamPriorityRange(&least_priority, &greatest_priority));
  const int rank_counts[] = {2, 3, 4, 5, 6, 7, 8};
  const int block_choices[] = {1, 3, 8, 16, 2, 5};
  struct case_desc *cases = calloc(MAX_CASES, sizeof(*cases));
  CHECK(cases != NULL);
  int total = 0, failures = 0;
  const int quick = quick_mode();
  /* Narrowing knobs (racecheck is slow): NVLAR_TEST_NRANKS=N and NVLAR_TEST_ALGO=A (enum
   * nvlar_algo: 0 one-shot, 1 two-shot, 2 push, 3 TMA, 4 push two-shot, 5 copy-engine
   * two-shot, 6 TMA push two-shot) run only those cases. */
  const char *only_nranks = getenv("NVLAR_TEST_NRANKS"), *only_algo = getenv("NVLAR_TEST_ALGO");
  /* Whether kernels on separate streams run at the same time (not under compute-sanitizer);
   * only quick mode asks: full mode runs some cases on separate streams regardless. */
  int serialised = 0, probed = 0;
  for (size_t k = 0; k < sizeof(rank_counts) / sizeof(rank_counts[0]); k++) {
    int nranks = rank_counts[k];
    /* Quick: the matrix at 3 and 8 ranks, the wide cases at 2 as well (where the most CTAs
     * fit: up to NVLAR_MAX_BLOCKS for every kernel but the TMA ones). */
    const int matrix = !quick || nranks == 3 || nranks == 8;
    if (quick && !matrix && nranks != 2) continue;
    if (only_nranks != NULL && atoi(only_nranks) != nranks) continue;
    struct emulation e;
    CHECK_CUDA(emulation_create(&e, nranks, quick ? (64u << 10) : STAGING_BYTES, 64u << 20));
    if (quick && probed == 0) {
      int concurrent = 0;
      CHECK_CUDA(check_concurrent(e.streams, nranks, &concurrent));
      serialised = !concurrent;
      probed = 1;
      if (serialised) {
        printf("NOTE: kernels on separate streams do not run at the same time here (under "
               "compute-sanitizer): the wide cases keep to one CTA per SM in all, the TMA "
               "kernels to 16 per rank\n");
      }
    }
    for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) {
      if (only_algo != NULL && atoi(only_algo) != algo) continue;
      int max_blocks = emulation_max_blocks(&e, nranks, algo);
      int n = 0;
      for (int type = 0; type < 12 && matrix; type++) {
        for (int op = 0; op < 5; op++) {
          for (int size = 0; size < 6; size++) {
            for (int in_place = 0; in_place < 2; in_place++) {
              for (int misalign = 0; misalign < 2; misalign++) {
                if (misalign && ((nranks != 3 && nranks != 8) || size == 0 || size == 5)) continue;
                /* Quick (under compute-sanitizer, which also runs kernels one at a time, so
                 * ranks on separate streams could never meet): sizes 7 and 4099 (4099 crosses
                 * chunks of a 64 KiB staging buffer), one launch for all ranks. */
                if (quick && size != 1 && size != 3) continue;
                struct case_desc *c = &cases[n++];
                c->nranks = nranks;
                c->algo = algo;
                c->datatype = type;
                c->op = op;
                c->in_place = in_place;
                c->misalign = misalign;
                c->count = case_count(size, check_type_size(type));
                c->nblocks = block_choices[n % 6];
                if (c->nblocks > max_blocks) c->nblocks = max_blocks;
                /* Programmatic dependent launch on and off, out of step with the CTA counts. */
                c->pdl = (n / 7) % 2;
                /* The greatest priority on and off, out of step with both. */
                c->high_priority = (n / 5) % 2;
                /* Separate launches per rank for a spread of types, ops and sizes. */
                c->streams = !quick && (nranks == 2 || nranks == 8) && (type == 1 || type == 7 || type == 9) &&
                             (op == 0 || op == 4) && size >= 1 && size <= 4;
              }
            }
          }
        }
      }
      const int matrix_cases = n;
      const int most = wide_most(&e, nranks, algo, serialised);
      n = add_wide_cases(cases, n, nranks, algo, most, quick);
      CHECK(n <= MAX_CASES);
      int failed = run_batch(&e, cases, n);
      printf("nranks=%d %s: %d cases (%d wide: up to %d push chunks, up to %d CTAs), %d failed\n",
             nranks, algo_name(algo), n, n - matrix_cases, quick ? 3 : 6, most, failed);
      fflush(stdout);
      total += n;
      failures += failed;
    }
    emulation_destroy(&e);
  }
  free(cases);
  printf("%d cases, %d failed\n", total, failures);
  return failures == 0 ? 0 : 1;
}
