/* What is particular to the copy-engine two-shot (kernels/ce_twoshot.cuh), on one GPU with
 * emulated ranks; test_allreduce runs it through the whole matrix like every algorithm.
 * - Chunk edges: messages of one chunk less one element, one chunk, one chunk and one element,
 *   three chunks and an odd tail, five chunks and a tail (full mode), for 2, 3 and 8 ranks,
 *   5 types, every op in turn, in place and out of place, aligned and one element off, with a
 *   staging buffer one 256-byte step above the smallest (areas of an odd size), one launch
 *   for all ranks and (where kernels of separate streams run at the same time) a stream per
 *   rank.
 * - Staging reuse across algorithms: back-to-back calls on 4 ranks, every other one a
 *   copy-engine two-shot and the others each other algorithm in turn, with sizes and CTA
 *   counts changing from call to call, every output checked (one launch; and a stream per
 *   rank, ranks drifting apart).
 * - Graphs: a capture of several calls (copy-engine two-shots of several chunks, in place and
 *   not, with other algorithms between them) replayed 20 times, every replay checked; every
 *   progress slot ends equal.
 * - Eager calls counted for destroy (args.counted = 1): each rank's ctas_done grows by the
 *   call's CTA count per call, empty calls included, as the host counts (plugin/route.c). */
#include <stdlib.h>
#include <string.h>

#include "allreduce_check.h"
#include "ce_twoshot_geometry.h"
#include "emulation.h"
#include "gpu_test.h"

/* Chunk edges: one 256-byte step above the smallest staging, so that areas have odd sizes
 * (nranks 3: 42 x 256 bytes). The other cases: the smallest, as test_allreduce's quick mode. */
#define STAGING_BYTES ((64u << 10) + 256)
#define SMALL_STAGING_BYTES (64u << 10)
#define MAX_CALLS 512

struct call {
  int algo, datatype, op, in_place, misalign, nblocks;
  size_t count;
};

static int count_failures(struct check_result *device, int n, const char *what) {
  struct check_result *host = malloc((size_t)n * sizeof(*host));
  CHECK(host != NULL);
  CHECK_CUDA(cudaMemcpy(host, device, (size_t)n * sizeof(*host), cudaMemcpyDeviceToHost));
  int failures = 0;
  for (int i = 0; i < n; i++) {
    if (host[i].mismatches || host[i].rank_diffs || host[i].guard_errors) {
      if (failures++ < 10) {
        fprintf(stderr, "FAIL %s #%d: %llu wrong (e.g. [%llu] = %g, want %g), %llu differ "
                "between ranks, %llu guard bytes\n", what, i, host[i].mismatches,
                host[i].first_bad, host[i].got, host[i].want, host[i].rank_diffs,
                host[i].guard_errors);
      }
    }
  }
  free(host);
  return failures;
}

static int kernel_errors(const struct emulation *e) {
  int failures = 0;
  for (int r = 0; r < e->nranks; r++) {
    if (e->buffers[r].error_host->code != NVLAR_KERNEL_OK) {
      fprintf(stderr, "rank %d: kernel error %u waiting for rank %d\n", r,
              e->buffers[r].error_host->code, e->buffers[r].error_host->peer);
      failures++;
    }
  }
  return failures;
}

/* Issues one call and its check on `stream` (one launch for all ranks), or on every rank's
 * own stream (`streams`), the check of each rank behind its own call. */
static void issue_call(struct emulation *e, const struct call *c, uint64_t seed, int streams,
                       cudaStream_t stream, struct check_result *results) {
  const size_t element = check_type_size(c->datatype);
  struct nvlar_allreduce_args args[NVLAR_MAX_RANKS];
  void *outputs[NVLAR_MAX_RANKS];
  for (int r = 0; r < e->nranks; r++) {
    cudaStream_t s = streams ? e->streams[r] : stream;
    void *input = emulation_input(e, r, element, c->misalign);
    outputs[r] = emulation_output(e, r, element, c->misalign, c->in_place);
    CHECK_CUDA(emulation_poison_rank(e, r, c->count * element + 2 * element, s));
    CHECK_CUDA(check_fill(input, c->count, c->datatype, c->op, r, e->nranks, seed, s));
    emulation_args(e, r, c->algo, c->datatype, c->op, c->nblocks, input, outputs[r], c->count,
                   &args[r]);
    args[r].pdl = (int)(seed % 2);
  }
  if (!streams) {
    CHECK_CUDA(nvlar_allreduce_launch_emulated(args, e->nranks, stream));
    CHECK_CUDA(check_verify(outputs, e->nranks, c->count, c->datatype, c->op, e->nranks, seed,
                            results, stream));
    return;
  }
  for (int r = 0; r < e->nranks; r++) {
    CHECK_CUDA(nvlar_allreduce_launch(&args[r], e->streams[r]));
    CHECK_CUDA(check_verify(&outputs[r], 1, c->count, c->datatype, c->op, e->nranks, seed,
                            &results[r], e->streams[r]));
  }
}

/* Runs `n` calls back to back and counts the wrong ones. */
static int run_calls(struct emulation *e, const struct call *calls, int n, int streams,
                     const char *what) {
  struct check_result *results = NULL;
  const size_t bytes = (size_t)n * NVLAR_MAX_RANKS * sizeof(*results);
  CHECK_CUDA(cudaMalloc((void **)&results, bytes));
  CHECK_CUDA(cudaMemset(results, 0, bytes));
  for (int i = 0; i < n; i++) {
    issue_call(e, &calls[i], 0xce000000u + (uint64_t)i, streams, e->streams[0],
               &results[(size_t)i * NVLAR_MAX_RANKS]);
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  int failures = count_failures(results, n * NVLAR_MAX_RANKS, what) + kernel_errors(e);
  CHECK_CUDA(cudaFree(results));
  printf("%s, %d ranks: %d calls, %d failed\n", what, e->nranks, n, failures);
  fflush(stdout);
  return failures;
}

static int fitting(const struct emulation *e, int algo, int wanted) {
  int most = emulation_max_blocks(e, e->nranks, algo);
  return wanted < most ? wanted : most;
}

/* Messages around the chunk edges. */
static int chunk_edges(int nranks, int quick, int streams) {
  static const int types[] = {0, 6, 7, 8, 9}; /* int8, float16, float32, float64, bfloat16 */
  static const int ctas[] = {1, 3, 16, 5};
  struct call *calls = calloc(MAX_CALLS, sizeof(*calls));
  CHECK(calls != NULL);
  int n = 0;
  for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
    const size_t element = check_type_size(types[t]);
    const size_t chunk = nvlar_ce_chunk_elems(STAGING_BYTES, nranks, element);
    const size_t counts[] = {chunk - 1, chunk, chunk + 1, 3 * chunk + 5, 5 * chunk + 17};
    for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++) {
      if (quick && k == 4) continue;
      for (int in_place = 0; in_place < 2; in_place++) {
        struct call *c = &calls[n++];
        c->algo = NVLAR_ALGO_CETWOSHOT;
        c->datatype = types[t];
        c->op = n % 5;
        c->count = counts[k];
        c->in_place = in_place;
        c->misalign = (int)(k % 2);
        c->nblocks = ctas[n % 4];
      }
    }
  }
  struct emulation e;
  /* Five chunks (half the staging each) and a tail. */
  CHECK_CUDA(emulation_create(&e, nranks, STAGING_BYTES, 3 * (size_t)STAGING_BYTES));
  for (int i = 0; i < n; i++) calls[i].nblocks = fitting(&e, NVLAR_ALGO_CETWOSHOT, calls[i].nblocks);
  int failures = run_calls(&e, calls, n, streams,
                           streams ? "chunk edges, a stream per rank" : "chunk edges, one launch");
  emulation_destroy(&e);
  free(calls);
  return failures;
}

/* Every other call a copy-engine two-shot, the others every algorithm in turn. */
static int alternating(int ncalls, int streams) {
  const int nranks = 4;
  struct call *calls = calloc(MAX_CALLS, sizeof(*calls));
  CHECK(calls != NULL && ncalls <= MAX_CALLS);
  struct emulation e;
  CHECK_CUDA(emulation_create(&e, nranks, SMALL_STAGING_BYTES, 4u << 20));
  const size_t chunk = nvlar_ce_chunk_elems(SMALL_STAGING_BYTES, nranks, 4);
  for (int i = 0; i < ncalls; i++) {
    struct call *c = &calls[i];
    c->algo = i % 2 == 0 ? NVLAR_ALGO_CETWOSHOT : (i / 2) % NVLAR_ALGO_COUNT;
    c->datatype = 7; /* float32 */
    c->op = i % 3 == 0 ? 4 : 0;
    /* 1 element to about 9 chunks; now and then a push one-shot of two push chunks. */
    c->count = 1 + (size_t)i * 7919 % (9 * chunk);
    if (i % 7 == 3) c->count = (NVLAR_PUSH_CHUNK_BYTES / 4) + 1 + (size_t)i;
    c->in_place = i % 4 == 1;
    c->nblocks = fitting(&e, c->algo, 1 + i % 12);
    if (streams && c->nblocks > 4) c->nblocks = 4; /* room for every rank's kernels at once */
  }
  int failures = run_calls(&e, calls, ncalls, streams,
                           streams ? "alternating with the other algorithms, a stream per rank"
                                   : "alternating with the other algorithms, one launch");
  emulation_destroy(&e);
  free(calls);
  return failures;
}

/* Several calls captured in one graph and replayed. */
static int graph_replays(int replays) {
  const int nranks = 8;
  struct emulation e;
  CHECK_CUDA(emulation_create(&e, nranks, SMALL_STAGING_BYTES, 1u << 20));
  const size_t chunk = nvlar_ce_chunk_elems(SMALL_STAGING_BYTES, nranks, 2);
  const struct call calls[] = {
      {NVLAR_ALGO_CETWOSHOT, 9, 0, 0, 0, 4, 3 * chunk + 7},  /* bfloat16 sum, 4 chunks */
      {NVLAR_ALGO_PUSH_TWOSHOT, 9, 0, 0, 0, 8, 5 * chunk},
      {NVLAR_ALGO_CETWOSHOT, 6, 4, 1, 1, 3, 2 * chunk + 1},  /* float16 avg, in place, off by one */
      {NVLAR_ALGO_TWOSHOT, 9, 2, 0, 0, 2, chunk},
      {NVLAR_ALGO_CETWOSHOT, 9, 3, 0, 0, 1, 5},              /* bfloat16 min, tiny */
  };
  const int ncalls = (int)(sizeof(calls) / sizeof(calls[0]));
  struct check_result *results = NULL;
  CHECK_CUDA(cudaMalloc((void **)&results, (size_t)ncalls * sizeof(*results)));
  CHECK_CUDA(cudaMemset(results, 0, (size_t)ncalls * sizeof(*results)));
  cudaStream_t stream = e.streams[0];
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < ncalls; i++) {
    struct call c = calls[i];
    c.nblocks = fitting(&e, c.algo, c.nblocks);
    issue_call(&e, &c, 0x9a000000u + (uint64_t)i, 0, stream, &results[i]);
  }
  CHECK_CUDA(cudaStreamEndCapture(stream, &graph));
  CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  for (int i = 0; i < replays; i++) CHECK_CUDA(cudaGraphLaunch(exec, stream));
  CHECK_CUDA(cudaStreamSynchronize(stream));
  CHECK_CUDA(cudaGraphExecDestroy(exec));
  CHECK_CUDA(cudaGraphDestroy(graph));
  int failures = count_failures(results, ncalls, "graph call") + kernel_errors(&e);
  for (int r = 0; r < nranks; r++) {
    struct nvlar_rank_state state;
    CHECK_CUDA(cudaMemcpy(&state, e.buffers[r].state, sizeof(state), cudaMemcpyDeviceToHost));
    for (int slot = 1; slot < NVLAR_MAX_BLOCKS; slot++) {
      if (state.slot[slot].barrier_seq != state.slot[0].barrier_seq ||
          state.slot[slot].last_algo != state.slot[0].last_algo) {
        fprintf(stderr, "FAIL graph: rank %d's progress slot %d differs from slot 0\n", r, slot);
        failures++;
        break;
      }
    }
  }
  printf("graph of %d calls (3 copy-engine two-shots) replayed %d times: %s\n", ncalls, replays,
         failures ? "FAILED" : "ok");
  CHECK_CUDA(cudaFree(results));
  emulation_destroy(&e);
  return failures;
}

/* Eager calls with args.counted = 1: the done kernel counts the call's CTAs. */
static int counted_calls(void) {
  const int nranks = 2, ncalls = 6;
  struct emulation e;
  CHECK_CUDA(emulation_create(&e, nranks, STAGING_BYTES, 1u << 20));
  const size_t chunk = nvlar_ce_chunk_elems(STAGING_BYTES, nranks, 4);
  unsigned long long want = 0;
  for (int i = 0; i < ncalls; i++) {
    const size_t count = i == 2 ? 0 : 1 + (size_t)i * chunk; /* one empty call */
    const int nblocks = fitting(&e, NVLAR_ALGO_CETWOSHOT, 1 + 3 * i);
    struct nvlar_allreduce_args args[NVLAR_MAX_RANKS];
    for (int r = 0; r < nranks; r++) {
      emulation_args(&e, r, NVLAR_ALGO_CETWOSHOT, 7, 0, nblocks, emulation_input(&e, r, 4, 0),
                     emulation_output(&e, r, 4, 0, 0), count, &args[r]);
      args[r].counted = 1;
    }
    CHECK_CUDA(nvlar_allreduce_launch_emulated(args, nranks, e.streams[0]));
    want += (unsigned long long)nblocks;
  }
  CHECK_CUDA(cudaStreamSynchronize(e.streams[0]));
  int failures = kernel_errors(&e);
  for (int r = 0; r < nranks; r++) {
    struct nvlar_rank_state state;
    CHECK_CUDA(cudaMemcpy(&state, e.buffers[r].state, sizeof(state), cudaMemcpyDeviceToHost));
    if (state.ctas_done != want) {
      fprintf(stderr, "FAIL counted: rank %d counted %llu CTAs, want %llu\n", r,
              state.ctas_done, want);
      failures++;
    }
  }
  printf("counted eager calls: %s\n", failures ? "FAILED" : "ok");
  emulation_destroy(&e);
  return failures;
}

int main(void) {
  require_gpus(1);
  const int quick = quick_mode();
  int failures = 0;
  /* Whether ranks on separate streams can meet here (not under compute-sanitizer). */
  int concurrent = 0;
  {
    struct emulation e;
    CHECK_CUDA(emulation_create(&e, 8, STAGING_BYTES, 1u << 16));
    CHECK_CUDA(check_concurrent(e.streams, 8, &concurrent));
    emulation_destroy(&e);
  }
  if (!concurrent) {
    printf("NOTE: kernels on separate streams do not run at the same time here (under "
           "compute-sanitizer): the stream-per-rank cases do not run\n");
  }
  const int rank_counts[] = {2, 3, 8};
  for (size_t k = 0; k < sizeof(rank_counts) / sizeof(rank_counts[0]); k++) {
    failures += chunk_edges(rank_counts[k], quick, 0);
    if (concurrent && !quick) failures += chunk_edges(rank_counts[k], quick, 1);
  }
  failures += alternating(quick ? 24 : 240, 0);
  if (concurrent) failures += alternating(quick ? 24 : 240, 1);
  failures += graph_replays(quick ? 3 : 20);
  failures += counted_calls();
  printf("%s\n", failures == 0 ? "all ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
