/* Helper for test_preload: an ordinary NCCL program (linked with -lnccl) that the test runs
 * with LD_PRELOAD=libnvlar.so. On one GPU its communicators have one rank, so nvlar must leave
 * everything to NCCL and change nothing. It also times the added host cost of nvlar's wrapper
 * on the fallback path: ncclAllReduce (through nvlar) against pncclAllReduce (NCCL's own entry
 * point, which the preload does not intercept). */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nccl.h>

#include "gpu_test.h"

#define COUNT 1000
#define CALLS 20000

#define CHECK_NCCL(call) CHECK((call) == ncclSuccess)

static void check_copy(ncclComm_t comm, cudaStream_t stream, int graph) {
  float host_in[COUNT], host_out[COUNT];
  for (int i = 0; i < COUNT; i++) host_in[i] = (float)(i % 31) - 15.0f;
  float *in, *out;
  CHECK_CUDA(cudaMalloc((void **)&in, sizeof(host_in)));
  CHECK_CUDA(cudaMalloc((void **)&out, sizeof(host_out)));
  CHECK_CUDA(cudaMemcpy(in, host_in, sizeof(host_in), cudaMemcpyHostToDevice));
  CHECK_CUDA(cudaMemset(out, 0xff, sizeof(host_out)));
  if (graph) {
    cudaGraph_t g;
    cudaGraphExec_t exec;
    CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    CHECK_NCCL(ncclAllReduce(in, out, COUNT, ncclFloat32, ncclSum, comm, stream));
    CHECK_CUDA(cudaStreamEndCapture(stream, &g));
    CHECK_CUDA(cudaGraphInstantiate(&exec, g, 0));
    CHECK_CUDA(cudaGraphLaunch(exec, stream));
    CHECK_CUDA(cudaStreamSynchronize(stream));
    CHECK_CUDA(cudaGraphExecDestroy(exec));
    CHECK_CUDA(cudaGraphDestroy(g));
  } else {
    CHECK_NCCL(ncclAllReduce(in, out, COUNT, ncclFloat32, ncclSum, comm, stream));
    CHECK_CUDA(cudaStreamSynchronize(stream));
  }
  CHECK_CUDA(cudaMemcpy(host_out, out, sizeof(host_out), cudaMemcpyDeviceToHost));
  CHECK(memcmp(host_in, host_out, sizeof(host_in)) == 0);
  CHECK_CUDA(cudaFree(in));
  CHECK_CUDA(cudaFree(out));
}

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Host time per call, median of 5 rounds of CALLS calls. */
static double time_calls(ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t,
                                                    ncclRedOp_t, ncclComm_t, cudaStream_t),
                         ncclComm_t comm, cudaStream_t stream, float *buffer) {
  double rounds[5];
  for (int r = 0; r < 5; r++) {
    CHECK_CUDA(cudaStreamSynchronize(stream));
    double start = seconds();
    for (int i = 0; i < CALLS; i++) {
      CHECK_NCCL(all_reduce(buffer, buffer, 16, ncclFloat32, ncclSum, comm, stream));
    }
    rounds[r] = (seconds() - start) / CALLS;
    CHECK_CUDA(cudaStreamSynchronize(stream));
  }
  for (int i = 0; i < 5; i++) {
    for (int j = i + 1; j < 5; j++) {
      if (rounds[j] < rounds[i]) {
        double t = rounds[i];
        rounds[i] = rounds[j];
        rounds[j] = t;
      }
    }
  }
  return rounds[2];
}

int main(void) {
  require_gpus(1);
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  ncclUniqueId id;
  ncclComm_t comm = NULL;
  CHECK_NCCL(ncclGetUniqueId(&id));
  CHECK_NCCL(ncclCommInitRank(&comm, 1, id, 0));
  check_copy(comm, stream, 0);
  check_copy(comm, stream, 1);

  ncclComm_t split = NULL;
  CHECK_NCCL(ncclCommSplit(comm, 0, 0, &split, NULL));
  check_copy(split, stream, 0);
  CHECK_NCCL(ncclCommDestroy(split));

  /* Grouped init, as nccl-tests -g does. */
  ncclComm_t grouped = NULL;
  CHECK_NCCL(ncclGetUniqueId(&id));
  CHECK_NCCL(ncclGroupStart());
  CHECK_NCCL(ncclCommInitRank(&grouped, 1, id, 0));
  CHECK_NCCL(ncclGroupEnd());
  check_copy(grouped, stream, 0);
  CHECK_NCCL(ncclCommDestroy(grouped));

  /* Non-blocking init: poll until ready, bounded. */
  ncclComm_t nonblocking = NULL;
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.blocking = 0;
  CHECK_NCCL(ncclGetUniqueId(&id));
  ncclResult_t result = ncclCommInitRankConfig(&nonblocking, 1, id, 0, &config);
  CHECK(result == ncclSuccess || result == ncclInProgress);
  for (int tries = 0; result == ncclInProgress && tries < 20000; tries++) {
    CHECK_NCCL(ncclCommGetAsyncError(nonblocking, &result));
    if (result == ncclInProgress) usleep(1000);
  }
  CHECK(result == ncclSuccess);
  check_copy(nonblocking, stream, 0);
  CHECK_NCCL(ncclCommDestroy(nonblocking));

  float *buffer;
  CHECK_CUDA(cudaMalloc((void **)&buffer, 64));
  double through_nvlar = time_calls(ncclAllReduce, comm, stream, buffer);
  double direct = time_calls(pncclAllReduce, comm, stream, buffer);
  printf("app: fallback ncclAllReduce host time per call: %.3f us through nvlar, %.3f us NCCL "
         "alone, %.3f us added\n", through_nvlar * 1e6, direct * 1e6, (through_nvlar - direct) * 1e6);
  CHECK_CUDA(cudaFree(buffer));
  ncclResult_t async_error;
  CHECK_NCCL(ncclCommGetAsyncError(comm, &async_error));
  CHECK(async_error == ncclSuccess);
  CHECK_NCCL(ncclCommDestroy(comm));
  CHECK_NCCL(ncclGetUniqueId(&id));
  CHECK_NCCL(ncclCommInitRank(&comm, 1, id, 0));
  CHECK_NCCL(ncclCommAbort(comm));
  CHECK_CUDA(cudaStreamDestroy(stream));
  printf("app: all checks passed\n");
  return 0;
}
