/* A 1-rank communicator through libnvlar behaves as through NCCL alone: init, all-reduce
 * (eager and inside a CUDA graph), split, non-blocking init, bad arguments on a live
 * communicator, destroy. Both libraries are opened in this process as vLLM opens NCCL.
 * nvlar makes one rank's all-reduces itself (a copy, none in place): every type, op and size,
 * in and out of place, eager and in a graph, must give back its input bit for bit, which
 * NCCL 2.28.9 alone does not for out-of-place ncclAvg at 262 145 and 1 048 579 elements (its
 * last elements stay unwritten; docs/results.md). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_table.h"
#include "gpu_test.h"

#define COUNT 4099 /* not a multiple of anything convenient */

static struct nvlar_real_nccl direct, nvlar;

static ncclComm_t init_one_rank(const struct nvlar_real_nccl *api) {
  ncclUniqueId id;
  ncclComm_t comm = NULL;
  CHECK(api->ncclGetUniqueId(&id) == ncclSuccess);
  CHECK(api->ncclCommInitRank(&comm, 1, id, 0) == ncclSuccess);
  CHECK(comm != NULL);
  return comm;
}

/* All-reduce of one rank is a copy: the output must equal the input, bit for bit. */
static void check_all_reduce(const struct nvlar_real_nccl *api, ncclComm_t comm,
                             cudaStream_t stream, int use_graph) {
  float host_in[COUNT], host_out[COUNT];
  for (int i = 0; i < COUNT; i++) host_in[i] = (float)(i % 97) - 48.5f;
  float *in = NULL, *out = NULL;
  CHECK_CUDA(cudaMalloc((void **)&in, sizeof(host_in)));
  CHECK_CUDA(cudaMalloc((void **)&out, sizeof(host_out)));
  CHECK_CUDA(cudaMemcpy(in, host_in, sizeof(host_in), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemset(out, 0xff, sizeof(host_out)));
  if (use_graph) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    CHECK(api->ncclAllReduce(in, out, COUNT, ncclFloat32, ncclSum, comm, stream) == ncclSuccess);
    CHECK_CUDA(cudaStreamEndCapture(stream, &graph));
    CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
    for (int replay = 0; replay < 3; replay++) CHECK_CUDA(cudaGraphLaunch(exec, stream));
    CHECK_CUDA(cudaStreamSynchronize(stream));
    CHECK_CUDA(cudaGraphExecDestroy(exec));
    CHECK_CUDA(cudaGraphDestroy(graph));
  } else {
    CHECK(api->ncclAllReduce(in, out, COUNT, ncclFloat32, ncclSum, comm, stream) == ncclSuccess);
    CHECK_CUDA(cudaStreamSynchronize(stream));
  }
  CHECK_CUDA(cudaMemcpy(host_out, out, sizeof(host_out), cudaMemcpyDeviceToHost));
  CHECK(memcmp(host_in, host_out, sizeof(host_in)) == 0);
  CHECK_CUDA(cudaFree(in));
  CHECK_CUDA(cudaFree(out));
}

/* Bytes per element of each ncclDataType_t. */
static const size_t type_sizes[12] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1};

/* Every type, op and size, in place and not, eager and in a graph: output == input. */
static void check_every_case(const struct nvlar_real_nccl *api, ncclComm_t comm,
                             cudaStream_t stream) {
  static const size_t counts[] = {1, 4099, 262145, 1048579};
  const size_t max_bytes = 1048579 * 8;
  unsigned char *host = malloc(max_bytes), *back = malloc(max_bytes);
  CHECK(host != NULL && back != NULL);
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < max_bytes; i++) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    host[i] = (unsigned char)(state >> 56);
  }
  unsigned char *in = NULL, *out = NULL;
  CHECK_CUDA(cudaMalloc((void **)&in, max_bytes));
  CHECK_CUDA(cudaMalloc((void **)&out, max_bytes + 64)); /* + the guard after the output */
  CHECK_CUDA(cudaMemcpy(in, host, max_bytes, cudaMemcpyHostToDevice));
  int checked = 0;
  for (int type = 0; type < 12; type++) {
    for (int op = 0; op < 5; op++) {
      for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
        if (quick_mode() && c >= 2 && type != 7) continue;
        size_t bytes = counts[c] * type_sizes[type];
        for (int graph = 0; graph < 2; graph++) {
          for (int in_place = 0; in_place < 2; in_place++) {
            unsigned char *dst = in_place ? in : out;
            CHECK_CUDA(cudaMemsetAsync(out, 0x63, bytes + 64, stream));
            cudaGraph_t g = NULL;
            cudaGraphExec_t exec = NULL;
            if (graph) CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
            CHECK(api->ncclAllReduce(in, dst, counts[c], (ncclDataType_t)type, (ncclRedOp_t)op,
                                     comm, stream) == ncclSuccess);
            if (graph) {
              CHECK_CUDA(cudaStreamEndCapture(stream, &g));
              CHECK_CUDA(cudaGraphInstantiate(&exec, g, 0));
              CHECK_CUDA(cudaGraphLaunch(exec, stream));
            }
            CHECK_CUDA(cudaStreamSynchronize(stream));
            if (graph) {
              CHECK_CUDA(cudaGraphExecDestroy(exec));
              CHECK_CUDA(cudaGraphDestroy(g));
            }
            CHECK_CUDA(cudaMemcpy(back, dst, bytes + (in_place ? 0 : 64), cudaMemcpyDeviceToHost));
            if (memcmp(back, host, bytes) != 0) {
              fprintf(stderr, "type %d op %d count %zu %s %s: output differs from input\n", type,
                      op, counts[c], in_place ? "in place" : "out of place", graph ? "graph" : "eager");
              CHECK(0);
            }
            /* Nothing written past the output. */
            for (size_t b = 0; !in_place && b < 64; b++) CHECK(back[bytes + b] == 0x63);
            checked++;
          }
        }
      }
    }
  }
  CHECK_CUDA(cudaFree(in));
  CHECK_CUDA(cudaFree(out));
  free(host);
  free(back);
  printf("one rank: %d all-reduces (every type and op, in and out of place, eager and graph) "
         "gave back their input bit for bit\n", checked);
}

/* The same bad call on each library's own live communicator returns the same code. */
static void check_bad_arguments(ncclComm_t direct_comm, ncclComm_t nvlar_comm,
                                cudaStream_t stream) {
  float *buffer = NULL;
  CHECK_CUDA(cudaMalloc((void **)&buffer, 64 * sizeof(float)));
  /* Memory CUDA does not know: NCCL_CHECK_POINTERS=1 (set in main) makes both refuse it. */
  float *unregistered = malloc(64 * sizeof(float));
  CHECK(unregistered != NULL);
  struct {
    const void *send;
    void *recv;
    size_t count;
    ncclDataType_t type;
    ncclRedOp_t op;
  } cases[] = {
      {buffer, buffer, 16, ncclNumTypes, ncclSum},      /* invalid datatype */
      {buffer, buffer, 16, ncclFloat32, ncclMaxRedOp},  /* invalid op */
      {buffer, buffer, 16, ncclFloat32, (ncclRedOp_t)ncclNumOps}, /* op never created */
      {NULL, buffer, 16, ncclFloat32, ncclSum},          /* NULL send buffer */
      {buffer, NULL, 16, ncclFloat32, ncclSum},          /* NULL receive buffer */
      {buffer, buffer, 0, ncclFloat32, ncclSum},         /* count 0 */
      {unregistered, buffer, 16, ncclFloat32, ncclSum},  /* send buffer CUDA does not know */
      {buffer, unregistered, 16, ncclFloat32, ncclSum},  /* receive buffer CUDA does not know */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    ncclResult_t want = direct.ncclAllReduce(cases[i].send, cases[i].recv, cases[i].count,
                                             cases[i].type, cases[i].op, direct_comm, stream);
    ncclResult_t got = nvlar.ncclAllReduce(cases[i].send, cases[i].recv, cases[i].count,
                                           cases[i].type, cases[i].op, nvlar_comm, stream);
    if (want != got) fprintf(stderr, "bad-argument case %zu: NCCL %d, nvlar %d\n", i, want, got);
    CHECK(want == got);
  }
  CHECK_CUDA(cudaStreamSynchronize(stream));
  CHECK_CUDA(cudaFree(buffer));
  free(unregistered);
}

static ncclComm_t init_non_blocking(const struct nvlar_real_nccl *api) {
  ncclUniqueId id;
  ncclComm_t comm = NULL;
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  CHECK(api->ncclGetUniqueId(&id) == ncclSuccess);
  ncclResult_t result = api->ncclCommInitRankConfig(&comm, 1, id, 0, &config);
  CHECK(result == ncclSuccess || result == ncclInProgress);
  /* Bounded wait: 20 s is ages for a 1-rank init; a hang would be a bug. */
  for (int tries = 0; result == ncclInProgress && tries < 20000; tries++) {
    CHECK(api->ncclCommGetAsyncError(comm, &result) == ncclSuccess);
    if (result == ncclInProgress) usleep(1000);
  }
  CHECK(result == ncclSuccess);
  return comm;
}

int main(void) {
  require_gpus(1);
  /* Both libraries read it once, before their first call: NCCL checks every buffer of every
   * call, and nvlar must give the same answers on its own path (the bad-argument cases). */
  setenv("NCCL_CHECK_POINTERS", "1", 1);
  void *nccl_handle = nvlar_test_open(NVLAR_TEST_LIBNCCL);
  void *nvlar_handle = nvlar_test_open(NVLAR_TEST_LIBNVLAR);
  CHECK(nccl_handle != NULL && nvlar_handle != NULL);
  nvlar_test_load_api(nccl_handle, &direct);
  CHECK(nvlar_test_load_api(nvlar_handle, &nvlar) == 0);
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));

  ncclComm_t direct_comm = init_one_rank(&direct);
  ncclComm_t comm = init_one_rank(&nvlar);
  int value = -1;
  CHECK(nvlar.ncclCommCount(comm, &value) == ncclSuccess && value == 1);
  CHECK(nvlar.ncclCommUserRank(comm, &value) == ncclSuccess && value == 0);
  check_all_reduce(&nvlar, comm, stream, 0);
  check_all_reduce(&nvlar, comm, stream, 1);
  check_every_case(&nvlar, comm, stream);
  check_bad_arguments(direct_comm, comm, stream);

  ncclComm_t split = NULL;
  CHECK(nvlar.ncclCommSplit(comm, 0, 0, &split, NULL) == ncclSuccess && split != NULL);
  check_all_reduce(&nvlar, split, stream, 0);
  ncclComm_t no_color = (ncclComm_t)&value; /* must be overwritten with NULL */
  CHECK(nvlar.ncclCommSplit(comm, NCCL_SPLIT_NOCOLOR, 0, &no_color, NULL) == ncclSuccess);
  CHECK(no_color == NULL);
  CHECK(nvlar.ncclCommDestroy(split) == ncclSuccess);

  ncclComm_t non_blocking = init_non_blocking(&nvlar);
  check_all_reduce(&nvlar, non_blocking, stream, 0);
  CHECK(nvlar.ncclCommFinalize(non_blocking) != ncclInvalidArgument);
  ncclResult_t state = ncclInProgress;
  for (int tries = 0; state == ncclInProgress && tries < 20000; tries++) {
    CHECK(nvlar.ncclCommGetAsyncError(non_blocking, &state) == ncclSuccess);
    if (state == ncclInProgress) usleep(1000);
  }
  CHECK(state == ncclSuccess);
  CHECK(nvlar.ncclCommDestroy(non_blocking) == ncclSuccess);

  CHECK(nvlar.ncclCommDestroy(comm) == ncclSuccess);
  CHECK(direct.ncclCommDestroy(direct_comm) == ncclSuccess);
  CHECK(nvlar.ncclCommAbort(init_one_rank(&nvlar)) == ncclSuccess);
  CHECK_CUDA(cudaStreamDestroy(stream));
  printf("one-rank communicator through libnvlar: all checks passed\n");
  return 0;
}
