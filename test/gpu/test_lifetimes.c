/* Lifetimes and failures on one GPU, through the same functions the exports call
 * (plugin/lifecycle.c, allreduce.c) with a fake NCCL table and communicators of two ranks
 * emulated on the GPU: routes built as setup builds them, kernels and buffers real.
 *   graph-after-destroy  a graph captured on both ranks is replayed after both communicators
 *                        are destroyed (and after the GPU memory that a free would give back is
 *                        taken and overwritten): results stay right; once the graphs are gone
 *                        the memory comes back
 *   abort-beside-stuck   with a kernel of one communicator waiting for a peer that never comes,
 *                        aborting another communicator returns while that kernel still waits
 *                        (abort never waits for the device); then it is aborted too, its kernel
 *                        ends, and the memory comes back
 *   capture-beside-setup setup (allocations, frees) and destroy on this thread while another
 *                        thread captures a graph in global mode: its capture stays valid
 *   churn                50 rounds of two communicators used, then destroyed by "rank 0" in one
 *                        order and by "rank 1" in the other: the GPU's free memory comes back
 *                        to its level before the first (quick mode, for compute-sanitizer,
 *                        which may run one rank's kernel to its timeout before the other's
 *                        starts: 10 rounds, no all-reduce)
 * Run under compute-sanitizer memcheck by the device runs: the replay after destroy must touch
 * no freed memory. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "allreduce.h"
#include "gpu_test.h"
#include "host_wait.h"
#include "lifecycle.h"
#include "params.h"
#include "route.h"

static const struct nvlar_cta_limits nccl_defaults = {1, NVLAR_NCCL_MAX_CHANNELS};

#define COUNT 1024 /* 4 KiB of floats: the push one-shot, a few CTAs per rank */

/* ---- A fake NCCL: enough for lifecycle calls, and for one thread's setup of two ranks */

static struct {
  const void *send[2];
  void *recv[2];
  size_t bytes[2];
  cudaStream_t stream[2];
  int issued;
} gathers;

static int rank_of(ncclComm_t comm) { return (int)(((uintptr_t)comm >> 12) & 1); }

static ncclResult_t fake_count(const ncclComm_t comm, int *count) {
  (void)comm;
  *count = 2;
  return ncclSuccess;
}
static ncclResult_t fake_user_rank(const ncclComm_t comm, int *rank) {
  *rank = rank_of(comm);
  return ncclSuccess;
}
static ncclResult_t fake_cu_device(const ncclComm_t comm, int *device) {
  (void)comm;
  *device = 0;
  return ncclSuccess;
}
static ncclResult_t fake_group_start(void) { return ncclSuccess; }
/* Both ranks' all-gathers were issued in the group: each receives the other's record. */
static ncclResult_t fake_group_end(void) {
  if (gathers.issued == 2) {
    for (int r = 0; r < 2; r++) CHECK_CUDA(cudaStreamSynchronize(gathers.stream[r]));
    for (int me = 0; me < 2; me++) {
      int peer = 1 - me;
      CHECK_CUDA(cudaMemcpyAsync((char *)gathers.recv[me] + (size_t)peer * gathers.bytes[me],
                                 gathers.send[peer], gathers.bytes[me], cudaMemcpyDeviceToDevice,
                                 gathers.stream[me]));
    }
  }
  gathers.issued = 0;
  return ncclSuccess;
}
static ncclResult_t fake_all_gather(const void *send, void *recv, size_t count, ncclDataType_t type,
                                    ncclComm_t comm, cudaStream_t stream) {
  (void)type;
  int r = rank_of(comm);
  gathers.send[r] = send;
  gathers.recv[r] = recv;
  gathers.bytes[r] = count;
  gathers.stream[r] = stream;
  gathers.issued++;
  return ncclSuccess;
}
static ncclResult_t fake_all_reduce(const void *s, void *r, size_t n, ncclDataType_t t,
                                    ncclRedOp_t o, ncclComm_t c, cudaStream_t st) {
  (void)s, (void)r, (void)n, (void)t, (void)o, (void)c, (void)st;
  return ncclSuccess;
}
static ncclResult_t fake_done(ncclComm_t comm) {
  (void)comm;
  return ncclSuccess;
}
static ncclResult_t fake_async_error(ncclComm_t comm, ncclResult_t *error) {
  (void)comm;
  *error = ncclSuccess;
  return ncclSuccess;
}

static struct nvlar_real_nccl fake_nccl;

/* ---- Two ranks emulated on the GPU, as setup leaves them */

struct pair {
  ncclComm_t comm[2];
  struct nvlar_route *route[2];
  float *input[2], *output[2];
  cudaStream_t stream[2];
};

static int arch(void) {
  int major = 0, minor = 0;
  CHECK_CUDA(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  CHECK_CUDA(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0));
  return major * 10 + minor;
}

/* `id` picks the fake communicator handles (rank r's ends in bit 12 = r). */
static void make_pair(struct pair *p, uintptr_t id) {
  for (int r = 0; r < 2; r++) {
    p->comm[r] = (ncclComm_t)(0x1000000 * (id + 1) + 0x1000 * (uintptr_t)r);
    struct nvlar_route *route = nvlar_route_new(&nvlar_cuda_route_ops);
    CHECK(route != NULL);
    route->comm = p->comm[r];
    route->device = 0;
    CHECK_CUDA(nvlar_buffers_create(&route->own, 4u << 20));
    CHECK_CUDA(cudaHostAlloc((void **)&route->abort_host, sizeof(uint32_t), cudaHostAllocMapped));
    *route->abort_host = 0;
    CHECK_CUDA(cudaHostAlloc((void **)&route->readback, (1 + NVLAR_MAX_RANKS) * sizeof(uint64_t),
                             cudaHostAllocDefault));
    CHECK_CUDA(cudaStreamCreateWithFlags(&route->release_stream, cudaStreamNonBlocking));
    p->route[r] = route;
    CHECK_CUDA(cudaMalloc((void **)&p->input[r], COUNT * sizeof(float)));
    CHECK_CUDA(cudaMalloc((void **)&p->output[r], COUNT * sizeof(float)));
    CHECK_CUDA(cudaStreamCreateWithFlags(&p->stream[r], cudaStreamNonBlocking));
    float host[COUNT];
    for (int i = 0; i < COUNT; i++) host[i] = (float)(r + 1);
    CHECK_CUDA(cudaMemcpy(p->input[r], host, sizeof(host), cudaMemcpyHostToDevice));
  }
  for (int r = 0; r < 2; r++) {
    struct nvlar_route *route = p->route[r];
    for (int q = 0; q < 2; q++) {
      nvlar_buffers_view(&p->route[q]->own, &route->peers[q]);
      route->peer_device[q] = q == r ? -1 : 0;
      route->peer_pid[q] = getpid();
      route->peer_pid_visible[q] = true;
    }
    route->policy.nranks = 2;
    route->policy.arch = arch();
    route->policy.table = nvlar_tuning_table();
    route->policy.max_blocks = 16; /* both ranks' CTAs resident on one GPU */
    nvlar_buffers_fill_args(&route->own, route->peers, r, 2, &route->args);
    route->args.timeout_ns = (uint64_t)nvlar_param_number(NVLAR_P_TIMEOUT_MS) * 1000000ull;
    uint32_t *abort_device = NULL;
    CHECK_CUDA(cudaHostGetDevicePointer((void **)&abort_device, route->abort_host, 0));
    route->args.abort = abort_device;
    route->args.pdl = 0; /* ranks on separate streams of one GPU (design.md, PDL) */
    CHECK(nvlar_lifecycle_adopt(p->comm[r], NVLAR_ORIGIN_INIT_RANK, false, nccl_defaults));
    struct nvlar_setup_outcome outcome = {route, false, NULL, NULL, -1};
    nvlar_lifecycle_setup_done(p->comm[r], &outcome);
  }
}

static ncclResult_t all_reduce(struct pair *p, int r) {
  return nvlar_allreduce(&fake_nccl, p->input[r], p->output[r], COUNT, ncclFloat32, ncclSum,
                         p->comm[r], p->stream[r]);
}

/* Both ranks' outputs hold 1 + 2 everywhere. */
static void check_outputs(struct pair *p) {
  for (int r = 0; r < 2; r++) {
    float host[COUNT];
    CHECK_CUDA(cudaMemcpy(host, p->output[r], sizeof(host), cudaMemcpyDeviceToHost));
    for (int i = 0; i < COUNT; i++) CHECK(host[i] == 3.0f);
    CHECK_CUDA(cudaMemset(p->output[r], 0, COUNT * sizeof(float)));
  }
}

static void free_pair_buffers(struct pair *p) {
  for (int r = 0; r < 2; r++) {
    CHECK_CUDA(cudaFree(p->input[r]));
    CHECK_CUDA(cudaFree(p->output[r]));
    CHECK_CUDA(cudaStreamDestroy(p->stream[r]));
  }
}

static size_t free_memory(void) {
  size_t free_bytes = 0, total = 0;
  CHECK_CUDA(cudaMemGetInfo(&free_bytes, &total));
  return free_bytes;
}

/* The release thread gives memory back once the routes are free to go: waits until the GPU's
 * free memory is back within 16 MiB of `level` (a pair holds about 72 MiB), at most 20 s. */
static bool memory_back_to(size_t level) {
  for (double until = nvlar_now_seconds() + 20; nvlar_now_seconds() < until;) {
    nvlar_routes_wait_released(100);
    if (free_memory() + (16u << 20) >= level) return true;
  }
  return false;
}

static enum nvlar_poll stream_idle(void *stream) {
  cudaError_t error = cudaStreamQuery(stream);
  return error == cudaSuccess ? NVLAR_POLL_DONE
         : error == cudaErrorNotReady ? NVLAR_POLL_AGAIN : NVLAR_POLL_FAILED;
}

/* ---- The cases */

static void graph_after_destroy(void) {
  size_t level = free_memory();
  struct pair p;
  make_pair(&p, 1);
  cudaGraph_t graphs[2];
  cudaGraphExec_t execs[2];
  for (int r = 0; r < 2; r++) {
    CHECK_CUDA(cudaStreamBeginCapture(p.stream[r], cudaStreamCaptureModeThreadLocal));
    CHECK(all_reduce(&p, r) == ncclSuccess);
    CHECK(all_reduce(&p, r) == ncclSuccess);
    CHECK_CUDA(cudaStreamEndCapture(p.stream[r], &graphs[r]));
    CHECK_CUDA(cudaGraphInstantiate(&execs[r], graphs[r], 0));
  }
  for (int r = 0; r < 2; r++) CHECK_CUDA(cudaGraphLaunch(execs[r], p.stream[r]));
  CHECK_CUDA(cudaDeviceSynchronize());
  check_outputs(&p);
  for (int r = 0; r < 2; r++) CHECK(nvlar_lifecycle_destroy(&fake_nccl, p.comm[r]) == ncclSuccess);
  /* The graphs hold the routes: nothing is released, and memory a free would give back is
   * not there to take. Take and overwrite what there is, as a job's allocator would. */
  CHECK(nvlar_routes_being_released() == 0);
  size_t grab_bytes = free_memory() > (1u << 30) ? (512u << 20) : (64u << 20);
  void *grab = NULL;
  CHECK_CUDA(cudaMalloc(&grab, grab_bytes));
  CHECK_CUDA(cudaMemset(grab, 0xff, grab_bytes));
  for (int replay = 0; replay < 3; replay++) {
    for (int r = 0; r < 2; r++) CHECK_CUDA(cudaGraphLaunch(execs[r], p.stream[r]));
    CHECK_CUDA(cudaDeviceSynchronize());
    check_outputs(&p);
  }
  CHECK_CUDA(cudaFree(grab));
  for (int r = 0; r < 2; r++) {
    CHECK_CUDA(cudaGraphExecDestroy(execs[r]));
    CHECK_CUDA(cudaGraphDestroy(graphs[r]));
  }
  free_pair_buffers(&p);
  CHECK(memory_back_to(level));
  printf("graph-after-destroy: 3 replays after destroy right; memory back once the graphs went\n");
}

static void abort_beside_stuck(void) {
  size_t level = free_memory();
  struct pair stuck, aborted;
  make_pair(&stuck, 2);
  make_pair(&aborted, 3);
  /* Rank 0 of each launches; rank 1 never does: both kernels wait (NVLAR_TIMEOUT_MS, 20 s). */
  CHECK(all_reduce(&stuck, 0) == ncclSuccess);
  CHECK(all_reduce(&aborted, 0) == ncclSuccess);
  usleep(100000);
  CHECK(cudaStreamQuery(stuck.stream[0]) == cudaErrorNotReady);
  double start = nvlar_now_seconds();
  for (int r = 0; r < 2; r++) CHECK(nvlar_lifecycle_abort(&fake_nccl, aborted.comm[r]) == ncclSuccess);
  double abort_s = nvlar_now_seconds() - start;
  /* The other communicator's kernel still waits: the abort waited for no device work. */
  CHECK(cudaStreamQuery(stuck.stream[0]) == cudaErrorNotReady);
  /* The aborted communicator's kernel gives up within about a millisecond of the abort. */
  CHECK(nvlar_host_wait(stream_idle, aborted.stream[0], nvlar_deadline_after_ms(5000), NULL) ==
        NVLAR_WAIT_DONE);
  start = nvlar_now_seconds();
  for (int r = 0; r < 2; r++) CHECK(nvlar_lifecycle_abort(&fake_nccl, stuck.comm[r]) == ncclSuccess);
  double second_s = nvlar_now_seconds() - start;
  CHECK(nvlar_host_wait(stream_idle, stuck.stream[0], nvlar_deadline_after_ms(5000), NULL) ==
        NVLAR_WAIT_DONE);
  CHECK_CUDA(cudaDeviceSynchronize());
  free_pair_buffers(&stuck);
  free_pair_buffers(&aborted);
  CHECK(memory_back_to(level));
  printf("abort-beside-stuck: aborting a communicator beside a stuck one took %.6f s, the stuck "
         "one %.6f s; both kernels ended, memory back\n", abort_s, second_s);
}

static struct {
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int stage; /* 1: capturing; 2: setup and destroy done */
  cudaError_t end_capture;
} capture = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, cudaSuccess};

static void set_stage(int stage) {
  pthread_mutex_lock(&capture.lock);
  capture.stage = stage;
  pthread_cond_broadcast(&capture.changed);
  pthread_mutex_unlock(&capture.lock);
}

static void wait_stage(int stage) {
  pthread_mutex_lock(&capture.lock);
  while (capture.stage < stage) pthread_cond_wait(&capture.changed, &capture.lock);
  pthread_mutex_unlock(&capture.lock);
}

static void *capture_globally(void *unused) {
  (void)unused;
  CHECK_CUDA(cudaSetDevice(0));
  cudaStream_t stream;
  void *word = NULL;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  CHECK_CUDA(cudaMalloc(&word, 64));
  CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  CHECK_CUDA(cudaMemsetAsync(word, 0, 64, stream));
  set_stage(1);
  wait_stage(2);
  cudaGraph_t graph = NULL;
  capture.end_capture = cudaStreamEndCapture(stream, &graph);
  if (graph != NULL) CHECK_CUDA(cudaGraphDestroy(graph));
  CHECK_CUDA(cudaFree(word));
  CHECK_CUDA(cudaStreamDestroy(stream));
  return NULL;
}

static void capture_beside_setup(void) {
  pthread_t capturer;
  CHECK(pthread_create(&capturer, NULL, capture_globally, NULL) == 0);
  wait_stage(1);
  /* Two ranks of one GPU: setup allocates, gathers, finds they share the GPU, frees. */
  ncclComm_t comms[2] = {(ncclComm_t)(uintptr_t)0x7000000, (ncclComm_t)(uintptr_t)0x7001000};
  for (int r = 0; r < 2; r++) CHECK(nvlar_lifecycle_adopt(comms[r], NVLAR_ORIGIN_INIT_ALL, false, nccl_defaults));
  nvlar_lifecycle_set_up(&fake_nccl, comms, 2);
  for (int r = 0; r < 2; r++) {
    struct nvlar_comm *entry = nvlar_registry_get(comms[r]);
    CHECK(entry != NULL);
    CHECK(atomic_load(&entry->state) == NVLAR_COMM_RUNNING); /* on NCCL, not failed */
    CHECK(atomic_load(&entry->route) == NULL);
    nvlar_comm_put(entry);
  }
  for (int r = 0; r < 2; r++) CHECK(nvlar_lifecycle_destroy(&fake_nccl, comms[r]) == ncclSuccess);
  set_stage(2);
  pthread_join(capturer, NULL);
  if (capture.end_capture != cudaSuccess) {
    fprintf(stderr, "the other thread's capture: %s\n", cudaGetErrorString(capture.end_capture));
  }
  CHECK(capture.end_capture == cudaSuccess);
  printf("capture-beside-setup: setup and destroy beside a global-mode capture left it valid\n");
}

static void churn(void) {
  size_t level = free_memory();
  const int rounds = quick_mode() ? 10 : 50;
  const bool calls = !quick_mode();
  for (int round = 0; round < rounds; round++) {
    struct pair a, b;
    make_pair(&a, 10 + 2 * (uintptr_t)round);
    make_pair(&b, 11 + 2 * (uintptr_t)round);
    for (int r = 0; r < 2 && calls; r++) {
      CHECK(all_reduce(&a, r) == ncclSuccess);
      CHECK(all_reduce(&b, r) == ncclSuccess);
    }
    /* Rank 0 destroys A then B, rank 1 B then A; each rank's kernels are over before its
     * destroy returns, and none waits for the other. */
    CHECK(nvlar_lifecycle_destroy(&fake_nccl, a.comm[0]) == ncclSuccess);
    CHECK(nvlar_lifecycle_destroy(&fake_nccl, b.comm[0]) == ncclSuccess);
    CHECK(nvlar_lifecycle_destroy(&fake_nccl, b.comm[1]) == ncclSuccess);
    CHECK(nvlar_lifecycle_destroy(&fake_nccl, a.comm[1]) == ncclSuccess);
    if (calls) {
      check_outputs(&a);
      check_outputs(&b);
    }
    free_pair_buffers(&a);
    free_pair_buffers(&b);
  }
  CHECK(memory_back_to(level));
  printf("churn: %d rounds of two communicators (%s) destroyed in opposite orders; free memory "
         "%+.1f MiB from before\n", rounds, calls ? "each used" : "unused",
         ((double)free_memory() - (double)level) / (1 << 20));
}

int main(void) {
  require_gpus(1);
  fake_nccl.ncclCommCount = fake_count;
  fake_nccl.ncclCommUserRank = fake_user_rank;
  fake_nccl.ncclCommCuDevice = fake_cu_device;
  fake_nccl.ncclGroupStart = fake_group_start;
  fake_nccl.ncclGroupEnd = fake_group_end;
  fake_nccl.ncclAllGather = fake_all_gather;
  fake_nccl.ncclAllReduce = fake_all_reduce;
  fake_nccl.ncclCommDestroy = fake_done;
  fake_nccl.ncclCommAbort = fake_done;
  fake_nccl.ncclCommGetAsyncError = fake_async_error;
  CHECK_CUDA(cudaSetDevice(0));
  /* Ranks on separate streams wait for each other: no kernel may load at its first launch. */
  CHECK_CUDA(nvlar_kernels_load());
  graph_after_destroy();
  abort_beside_stuck();
  capture_beside_setup();
  churn();
  return 0;
}
