/* Epochs carry the kernels from call to call with no host step:
 * - 1000 back-to-back calls on 8 emulated ranks, one launch each, changing algorithm (every
 *   one, and runs of push two-shots and of TMA push two-shots), CTA count (every third
 *   call), size (some messages span several chunks) and programmatic dependent launch;
 * - 1000 calls with every rank on its own stream and nothing coupling the streams but the
 *   kernels themselves (ranks drift apart, as real ones do);
 * - a CUDA graph holding a call of every algorithm (the copy-engine two-shot's copies and
 *   kernels too), replayed 100 times: results stay exact and the rank state advances by
 *   exactly the replays' barriers.
 * Quick mode (NVLAR_TEST_QUICK=1) makes 50 calls of each of the first two kinds (both push
 * kernels, one chunk and several, among them). Where kernels on separate streams do not run at
 * the same time (compute-sanitizer runs them one at a time) it says that the per-stream phase
 * could not run there, and runs the others. */
#include <stdlib.h>

#include "allreduce_check.h"
#include "ce_twoshot_geometry.h"
#include "emulation.h"
#include "gpu_test.h"
#include "push_twoshot_geometry.h"

#define NRANKS 8
#define STAGING_BYTES (256u << 10) /* small: chunking happens often */
#define FULL_CALLS 1000
#define REPLAYS 100

static int CALLS = FULL_CALLS; /* fewer under NVLAR_TEST_QUICK */
#define TYPE 7 /* float32 */
#define OP 0   /* sum */

static int count_failures(struct check_result *device, int n, const char *what) {
  struct check_result *host = malloc(n * sizeof(*host));
  CHECK(host != NULL);
  CHECK_CUDA(cudaMemcpy(host, device, n * sizeof(*host), cudaMemcpyDeviceToHost));
  int failures = 0;
  for (int i = 0; i < n; i++) {
    if (host[i].mismatches || host[i].rank_diffs || host[i].guard_errors) {
      if (failures++ < 10) {
        fprintf(stderr, "FAIL %s #%d: %llu wrong, %llu differ between ranks, %llu guard bytes\n",
                what, i, host[i].mismatches, host[i].rank_diffs, host[i].guard_errors);
      }
    }
  }
  free(host);
  return failures;
}

#define MAX_COUNT 300000
#define CHUNK_ELEMS (NVLAR_PUSH_CHUNK_BYTES / 4) /* float32 elements of one push chunk */
_Static_assert(MAX_COUNT > CHUNK_ELEMS, "some calls must span two push chunks");
/* Up to 1.2 MB of floats; every third call spans two push chunks (NVLAR_PUSH_CHUNK_BYTES), so
 * the push one-shot's two kernels (one chunk, several) alternate, in quick mode's 50 calls too
 * (calls 12 and 42 are push calls of two chunks). */
static size_t call_count(int i) {
  if (i % 3 == 0) return CHUNK_ELEMS + 1 + (size_t)i * 7919 % (MAX_COUNT - CHUNK_ELEMS);
  return 1 + (size_t)i * 7919 % MAX_COUNT;
}

/* Every algorithm in turn, then a run of push two-shots or of TMA push two-shots (in turn),
 * which skip their start handshake after a call of their own variant on as many CTAs. */
static int algo_of_call(int i) {
  if (i % (2 * NVLAR_ALGO_COUNT) < NVLAR_ALGO_COUNT) return i % NVLAR_ALGO_COUNT;
  return (i / (2 * NVLAR_ALGO_COUNT)) % 2 == 0 ? NVLAR_ALGO_PUSH_TWOSHOT : NVLAR_ALGO_TMA_PUSH;
}

static int back_to_back_one_launch(struct emulation *e, struct check_result *results) {
  for (int i = 0; i < CALLS; i++) {
    int algo = algo_of_call(i);
    size_t count = call_count(i);
    int max_blocks = emulation_max_blocks(e, NRANKS, algo);
    /* CTA counts change from call to call, but three in a row share one: the push two-shots'
     * runs then both meet (a new layout) and skip the meeting (the same one). */
    int nblocks = 1 + (i / 3) % (max_blocks < 12 ? max_blocks : 12);
    struct nvlar_allreduce_args args[NRANKS];
    void *outputs[NRANKS];
    CHECK_CUDA(emulation_poison(e, count * 4, e->streams[0]));
    for (int r = 0; r < NRANKS; r++) {
      void *input = emulation_input(e, r, 4, 0);
      outputs[r] = emulation_output(e, r, 4, 0, 0);
      CHECK_CUDA(check_fill(input, count, TYPE, OP, r, NRANKS, 1000 + i, e->streams[0]));
      emulation_args(e, r, algo, TYPE, OP, nblocks, input, outputs[r], count, &args[r]);
      args[r].pdl = (i / NVLAR_ALGO_COUNT) % 2;
    }
    CHECK_CUDA(nvlar_allreduce_launch_emulated(args, NRANKS, e->streams[0]));
    CHECK_CUDA(check_verify(outputs, NRANKS, count, TYPE, OP, NRANKS, 1000 + i, &results[i], e->streams[0]));
  }
  CHECK_CUDA(cudaStreamSynchronize(e->streams[0]));
  return count_failures(results, CALLS, "one-launch call");
}

static int back_to_back_streams(struct emulation *e, struct check_result *results) {
  int tma_fit = emulation_max_blocks(e, NRANKS, NVLAR_ALGO_TMA); /* the fewest of all */
  int nblocks = tma_fit < 4 ? tma_fit : 4;
  for (int i = 0; i < CALLS; i++) {
    int algo = algo_of_call(i);
    size_t count = call_count(i);
    for (int r = 0; r < NRANKS; r++) {
      void *input = emulation_input(e, r, 4, 0);
      void *output = emulation_output(e, r, 4, 0, 0);
      struct nvlar_allreduce_args args;
      emulation_args(e, r, algo, TYPE, OP, nblocks, input, output, count, &args);
      args.pdl = (i / NVLAR_ALGO_COUNT) % 2;
      CHECK_CUDA(emulation_poison_rank(e, r, count * 4, e->streams[r]));
      CHECK_CUDA(check_fill(input, count, TYPE, OP, r, NRANKS, 5000 + i, e->streams[r]));
      CHECK_CUDA(nvlar_allreduce_launch(&args, e->streams[r]));
      CHECK_CUDA(check_verify(&output, 1, count, TYPE, OP, NRANKS, 5000 + i,
                              &results[i * NRANKS + r], e->streams[r]));
    }
  }
  CHECK_CUDA(cudaDeviceSynchronize());
  return count_failures(results, CALLS * NRANKS, "per-stream call");
}

static int graph_replays(struct emulation *e, struct check_result *result) {
  const size_t count = MAX_COUNT; /* several chunks of the small staging buffer */
  cudaStream_t stream = e->streams[0];
  struct nvlar_rank_state before, after;
  CHECK_CUDA(cudaMemcpy(&before, e->buffers[0].state, sizeof(before), cudaMemcpyDeviceToHost));

  cudaGraph_t graph;
  cudaGraphExec_t exec;
  CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) {
    struct nvlar_allreduce_args args[NRANKS];
    void *outputs[NRANKS];
    CHECK_CUDA(emulation_poison(e, count * 4, stream));
    for (int r = 0; r < NRANKS; r++) {
      void *input = emulation_input(e, r, 4, 0);
      outputs[r] = emulation_output(e, r, 4, 0, 0);
      CHECK_CUDA(check_fill(input, count, TYPE, OP, r, NRANKS, 77 + algo, stream));
      emulation_args(e, r, algo, TYPE, OP, 4, input, outputs[r], count, &args[r]);
      args[r].pdl = algo % 2; /* graph edges of both kinds */
    }
    CHECK_CUDA(nvlar_allreduce_launch_emulated(args, NRANKS, stream));
    CHECK_CUDA(check_verify(outputs, NRANKS, count, TYPE, OP, NRANKS, 77 + algo, result, stream));
  }
  CHECK_CUDA(cudaStreamEndCapture(stream, &graph));
  CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
  for (int i = 0; i < REPLAYS; i++) CHECK_CUDA(cudaGraphLaunch(exec, stream));
  CHECK_CUDA(cudaStreamSynchronize(stream));
  CHECK_CUDA(cudaGraphExecDestroy(exec));
  CHECK_CUDA(cudaGraphDestroy(graph));

  CHECK_CUDA(cudaMemcpy(&after, e->buffers[0].state, sizeof(after), cudaMemcpyDeviceToHost));
  /* Per replay: the one-shot passes one barrier per chunk, the two-shots two each; the push
   * advances its sequence by one per push chunk (NVLAR_PUSH_CHUNK_BYTES). */
  uint64_t oneshot_chunks = (count + (STAGING_BYTES / 2 / 4) - 1) / (STAGING_BYTES / 2 / 4);
  uint64_t twoshot_chunks = (count + (STAGING_BYTES / 4 / 4) - 1) / (STAGING_BYTES / 4 / 4);
  uint64_t push_chunks = (count * 4 + NVLAR_PUSH_CHUNK_BYTES - 1) / NVLAR_PUSH_CHUNK_BYTES;
  /* The push two-shots (4 CTAs): "arrived", then two flags per step of the busiest CTA, the
   * steps as kernels/push_twoshot_geometry.h cuts them for each variant's slots and slices. */
  uint64_t push_twoshot_seqs = 0;
  const struct {
    int slots;
    size_t slice_cap_bytes;
  } push_variants[] = {
      {NVLAR_PUSH_TWOSHOT_SLOTS, NVLAR_PUSH_TWOSHOT_SLICE_CAP_BYTES},
      {NVLAR_TMA_PUSH_SLOTS, NVLAR_TMA_PUSH_SLICE_CAP_BYTES},
  };
  for (size_t v = 0; v < sizeof(push_variants) / sizeof(push_variants[0]); v++) {
    size_t slice = nvlar_push_slice_elems(count, 4, STAGING_BYTES, NRANKS, 4, push_variants[v].slots,
                                          push_variants[v].slice_cap_bytes);
    push_twoshot_seqs += 1 + 2 * nvlar_push_most_steps(nvlar_push_steps(count, slice, NRANKS), 4);
  }
  /* The copy-engine two-shot: "arrived", then "scattered" and "gathered" per chunk (one area
   * of the staging per rank). */
  uint64_t ce_chunks = nvlar_ce_chunks(count, nvlar_ce_chunk_elems(STAGING_BYTES, NRANKS, 4));
  uint64_t ce_seqs = 1 + 2 * ce_chunks;
  uint64_t want = REPLAYS * (oneshot_chunks + 2 * 2 * twoshot_chunks + push_twoshot_seqs + ce_seqs);
  if (after.slot[0].barrier_seq - before.slot[0].barrier_seq != want ||
      after.slot[0].push_seq - before.slot[0].push_seq != REPLAYS * push_chunks) {
    fprintf(stderr, "FAIL graph: barrier sequence advanced by %llu, want %llu; push sequence by "
            "%llu, want %llu\n",
            (unsigned long long)(after.slot[0].barrier_seq - before.slot[0].barrier_seq),
            (unsigned long long)want,
            (unsigned long long)(after.slot[0].push_seq - before.slot[0].push_seq),
            (unsigned long long)(REPLAYS * push_chunks));
    return 1;
  }
  /* Every CTA slot must have advanced in step, whatever CTA counts ran. */
  for (int slot = 1; slot < NVLAR_MAX_BLOCKS; slot++) {
    if (after.slot[slot].barrier_seq != after.slot[0].barrier_seq ||
        after.slot[slot].chunk_seq != after.slot[0].chunk_seq ||
        after.slot[slot].push_seq != after.slot[0].push_seq) {
      fprintf(stderr, "FAIL graph: progress slot %d differs from slot 0\n", slot);
      return 1;
    }
  }
  return count_failures(result, 1, "graph replays");
}

int main(void) {
  require_gpus(1);
  if (quick_mode()) CALLS = 50;
  struct emulation e;
  CHECK_CUDA(emulation_create(&e, NRANKS, STAGING_BYTES, MAX_COUNT * 4));
  struct check_result *results = NULL;
  size_t bytes = (size_t)FULL_CALLS * NRANKS * sizeof(*results);
  CHECK_CUDA(cudaMalloc((void **)&results, bytes));
  CHECK_CUDA(cudaMemset(results, 0, bytes));

  int failures = back_to_back_one_launch(&e, results);
  printf("%d back-to-back calls, one launch each: %d failed\n", CALLS, failures);
  CHECK_CUDA(cudaMemset(results, 0, bytes));
  /* Ranks on separate streams meet only where CUDA runs their kernels at the same time. Full
   * mode counts on it (a rank whose peers never start times out, and the test fails); quick
   * mode asks first, since compute-sanitizer, which runs kernels one at a time, uses it. */
  int streams = 1;
  if (quick_mode()) CHECK_CUDA(check_concurrent(e.streams, NRANKS, &streams));
  int failed = 0;
  if (streams) {
    failed = back_to_back_streams(&e, results);
    printf("%d back-to-back calls, a stream per rank: %d rank-calls failed\n", CALLS, failed);
  } else {
    printf("NOTE: a stream per rank NOT RUN: kernels on separate streams do not run at the same "
           "time here (under compute-sanitizer, which runs them one at a time); the one-launch "
           "phase ran the same kernels\n");
  }
  failures += failed;
  CHECK_CUDA(cudaMemset(results, 0, sizeof(*results)));
  failed = graph_replays(&e, results);
  printf("graph of every algorithm's call replayed %d times: %s\n", REPLAYS, failed ? "FAILED" : "ok");
  failures += failed;
  for (int r = 0; r < NRANKS; r++) {
    if (e.buffers[r].error_host->code != NVLAR_KERNEL_OK) {
      fprintf(stderr, "rank %d: kernel error %u (waited for rank %d)\n", r,
              e.buffers[r].error_host->code, e.buffers[r].error_host->peer);
      failures++;
    }
  }
  CHECK_CUDA(cudaFree(results));
  emulation_destroy(&e);
  return failures == 0 ? 0 : 1;
}
