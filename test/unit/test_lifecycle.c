/* The communicator's life in nvlar, without a GPU: a fake NCCL table and routes whose device
 * steps are fakes (plugin/route.h), driven through the same functions the exports call.
 *   - an error stays: after a failed launch or a kernel that gave up, every later all-reduce
 *     returns the error and launches nothing, and ncclCommGetAsyncError reports it;
 *   - revoke and shrink with NCCL_SHRINK_ABORT stop nvlar's kernels before NCCL is called,
 *     and NCCL answers every later call;
 *   - abort returns at once while the kernels are not over; destroy waits for them, bounded;
 *   - two ranks destroying two communicators in opposite orders both return at once, and the
 *     release thread frees all four routes once each peer left;
 *   - a graph's reference keeps a destroyed communicator's route;
 *   - the tuner plugin's rows wait for setup's verdict, and a disagreement drops them;
 *   - abort beside calls and ncclCommGetAsyncError on other threads (this test also runs under
 *     AddressSanitizer and ThreadSanitizer: test/unit/meson.build). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "allreduce.h"
#include "comm_registry.h"
#include "eligibility.h"
#include "host_wait.h"
#include "lifecycle.h"
#include "params.h"
#include "route.h"

static const struct nvlar_cta_limits nccl_defaults = {1, NVLAR_NCCL_MAX_CHANNELS};
#include "tuner_abi.h"
#include "tuner_agreement.h"
#include "tuning_table.h"

/* ---- A fake NCCL: counts calls, answers as NCCL would */

static struct {
  atomic_int allreduce, destroy, abort_, revoke, shrink, finalize;
  ncclResult_t allreduce_answer;
  uint32_t abort_word_at_shrink; /* the parent's abort word when NCCL's shrink was called */
  struct nvlar_route *shrink_parent_route;
} nccl_calls;

static ncclResult_t fake_allreduce(const void *s, void *r, size_t n, ncclDataType_t t, ncclRedOp_t o,
                                   ncclComm_t c, cudaStream_t st) {
  (void)s, (void)r, (void)n, (void)t, (void)o, (void)c, (void)st;
  atomic_fetch_add(&nccl_calls.allreduce, 1);
  return nccl_calls.allreduce_answer;
}
static ncclResult_t fake_destroy(ncclComm_t c) {
  (void)c;
  atomic_fetch_add(&nccl_calls.destroy, 1);
  return ncclSuccess;
}
static ncclResult_t fake_abort(ncclComm_t c) {
  (void)c;
  atomic_fetch_add(&nccl_calls.abort_, 1);
  return ncclSuccess;
}
static ncclResult_t fake_revoke(ncclComm_t c, int flags) {
  (void)c;
  atomic_fetch_add(&nccl_calls.revoke, 1);
  return flags == NCCL_REVOKE_DEFAULT ? ncclSuccess : ncclInvalidArgument;
}
static ncclResult_t fake_shrink(ncclComm_t c, int *ex, int nex, ncclComm_t *newcomm,
                                ncclConfig_t *config, int flags) {
  (void)c, (void)ex, (void)nex, (void)config, (void)flags;
  atomic_fetch_add(&nccl_calls.shrink, 1);
  struct nvlar_route *parent = nccl_calls.shrink_parent_route;
  nccl_calls.abort_word_at_shrink = parent != NULL ? *parent->abort_host : 0;
  *newcomm = NULL;
  return ncclSuccess;
}
static ncclResult_t fake_finalize(ncclComm_t c) {
  (void)c;
  atomic_fetch_add(&nccl_calls.finalize, 1);
  return ncclSuccess;
}
static const char *fake_error_string(ncclResult_t r) {
  (void)r;
  return "fake";
}

static struct nvlar_real_nccl fake_nccl;

/* ---- Routes without a GPU */

struct fake_device {
  atomic_int launches;
  cudaError_t launch_answer;
  atomic_bool kernels_over;      /* what kernels_over answers */
  atomic_int freed;
  atomic_int freed_by_test_thread; /* of those, freed on the test's own thread */
  pthread_t test_thread;
  bool capturing;
};
static struct fake_device device;

/* Departure words of fake peers: departed[comm][rank]. */
static atomic_bool departed[4][2];

static cudaError_t fake_launch(const struct nvlar_allreduce_args *args, cudaStream_t stream) {
  (void)args, (void)stream;
  atomic_fetch_add(&device.launches, 1);
  return device.launch_answer;
}
static bool fake_capturing(cudaStream_t stream, cudaGraph_t *graph, unsigned long long *id) {
  (void)stream;
  *graph = NULL;
  *id = 7;
  return device.capturing;
}
static struct nvlar_route *graph_holds; /* the route a fake graph holds a reference on */
static bool fake_hold_in_graph(cudaGraph_t graph, struct nvlar_route *route) {
  (void)graph;
  nvlar_route_get(route);
  graph_holds = route;
  return true;
}
static enum nvlar_poll fake_kernels_over(struct nvlar_route *route) {
  (void)route;
  return atomic_load(&device.kernels_over) ? NVLAR_POLL_DONE : NVLAR_POLL_AGAIN;
}
/* The route's comm slot: its index into `departed` (stored in args.staging_bytes). */
static int comm_index(const struct nvlar_route *route) { return (int)route->args.staging_bytes; }
static enum nvlar_poll fake_announce(struct nvlar_route *route) {
  atomic_store(&departed[comm_index(route)][route->args.rank], true);
  return NVLAR_POLL_DONE;
}
static enum nvlar_poll fake_read_departures(struct nvlar_route *route, bool *left) {
  for (int p = 0; p < route->args.nranks; p++) left[p] = atomic_load(&departed[comm_index(route)][p]);
  return NVLAR_POLL_DONE;
}
static void fake_free(struct nvlar_route *route) {
  atomic_fetch_add(&device.freed, 1);
  if (pthread_equal(pthread_self(), device.test_thread)) atomic_fetch_add(&device.freed_by_test_thread, 1);
  free(route->own.error_host);
  free(route->abort_host);
  free(route);
}
static const struct nvlar_route_ops fake_ops = {
    fake_launch, fake_capturing, fake_hold_in_graph, fake_kernels_over,
    fake_announce, fake_read_departures, fake_free,
};

static ncclComm_t fake_comm(uintptr_t n) { return (ncclComm_t)(0x20000 + n * 0x1000); }

/* A 2-rank route of comm slot `index`, rank `rank`, the peer in another process. */
static struct nvlar_route *fake_route(ncclComm_t comm, int index, int rank) {
  struct nvlar_route *route = nvlar_route_new(&fake_ops);
  route->comm = comm;
  route->device = -1; /* no GPU: nothing to switch to */
  route->policy.nranks = 2;
  route->policy.arch = 90;
  route->policy.table = nvlar_tuning_table();
  route->policy.max_blocks = 128;
  route->args.rank = rank;
  route->args.nranks = 2;
  route->args.staging_bytes = (size_t)index;
  route->own.error_host = calloc(1, sizeof(*route->own.error_host));
  route->abort_host = calloc(1, sizeof(uint32_t));
  return route;
}

/* A communicator adopted and set up on `route` (as setup would leave it). */
static void running_comm(ncclComm_t comm, struct nvlar_route *route) {
  assert_true(nvlar_lifecycle_adopt(comm, NVLAR_ORIGIN_INIT_RANK, false, nccl_defaults));
  struct nvlar_setup_outcome outcome = {route, false, NULL, NULL, -1};
  nvlar_lifecycle_setup_done(comm, &outcome);
}

static int state_of(ncclComm_t comm) {
  struct nvlar_comm *entry = nvlar_registry_get(comm);
  int state = entry != NULL ? atomic_load(&entry->state) : -1;
  nvlar_comm_put(entry);
  return state;
}

static char buffer[1024];
static ncclResult_t call(ncclComm_t comm) {
  return nvlar_allreduce(&fake_nccl, buffer, buffer + 512, 16, ncclFloat32, ncclSum, comm, NULL);
}

static ncclResult_t async_error(ncclComm_t comm) {
  ncclResult_t error = ncclSuccess;
  assert_int_equal(nvlar_lifecycle_async_error(comm, ncclSuccess, &error), ncclSuccess);
  return error;
}

static int reset(void **state) {
  (void)state;
  /* What earlier tests left registered goes: every peer has left, every kernel is over. */
  atomic_store(&device.kernels_over, true);
  for (int c = 0; c < 4; c++) {
    for (int r = 0; r < 2; r++) atomic_store(&departed[c][r], true);
  }
  nvlar_registry_clear();
  assert_true(nvlar_routes_wait_released(5000));
  memset(&nccl_calls, 0, sizeof(nccl_calls));
  nccl_calls.allreduce_answer = ncclSuccess;
  atomic_store(&device.launches, 0);
  atomic_store(&device.freed, 0);
  device.launch_answer = cudaSuccess;
  device.capturing = false;
  graph_holds = NULL;
  for (int c = 0; c < 4; c++) {
    for (int r = 0; r < 2; r++) atomic_store(&departed[c][r], false);
  }
  return 0;
}

/* ---- Errors stay */

static void test_failed_launch_fails_the_communicator(void **state) {
  (void)state;
  ncclComm_t comm = fake_comm(1);
  running_comm(comm, fake_route(comm, 0, 0));
  assert_int_equal(call(comm), ncclSuccess);
  assert_int_equal(atomic_load(&device.launches), 1);
  device.launch_answer = cudaErrorLaunchFailure;
  assert_int_equal(call(comm), ncclUnhandledCudaError);
  assert_int_equal(atomic_load(&device.launches), 2);
  assert_int_equal(state_of(comm), NVLAR_COMM_FAILED);
  /* Later calls: the error, no launch, and not NCCL either (its output would be NCCL's, the
   * peers' nvlar's). */
  device.launch_answer = cudaSuccess;
  for (int i = 0; i < 3; i++) assert_int_equal(call(comm), ncclUnhandledCudaError);
  assert_int_equal(atomic_load(&device.launches), 2);
  assert_int_equal(atomic_load(&nccl_calls.allreduce), 0);
  assert_int_equal(async_error(comm), ncclUnhandledCudaError);
}

static void test_kernel_that_gave_up_fails_the_next_call(void **state) {
  (void)state;
  ncclComm_t comm = fake_comm(2);
  struct nvlar_route *route = fake_route(comm, 0, 1);
  running_comm(comm, route);
  assert_int_equal(call(comm), ncclSuccess);
  /* The kernel records a timeout in its host-visible record. */
  route->own.error_host->rank = 1;
  route->own.error_host->peer = 0;
  route->own.error_host->code = NVLAR_KERNEL_TIMEOUT;
  assert_int_equal(call(comm), ncclSystemError);
  assert_int_equal(call(comm), ncclSystemError);
  assert_int_equal(atomic_load(&device.launches), 1);
  assert_int_equal(atomic_load(&nccl_calls.allreduce), 0);
  assert_int_equal(async_error(comm), ncclSystemError);
  assert_int_equal(state_of(comm), NVLAR_COMM_FAILED);
}

static void test_async_error_finds_a_failure_first(void **state) {
  (void)state;
  ncclComm_t comm = fake_comm(3);
  struct nvlar_route *route = fake_route(comm, 0, 0);
  running_comm(comm, route);
  assert_int_equal(async_error(comm), ncclSuccess);
  route->own.error_host->code = NVLAR_KERNEL_ABORTED;
  assert_int_equal(async_error(comm), ncclSystemError);
  assert_int_equal(call(comm), ncclSystemError);
  assert_int_equal(atomic_load(&device.launches), 0);
}

/* ---- Revoke and shrink */

static void test_revoke_stops_nvlar_and_nccl_answers(void **state) {
  (void)state;
  ncclComm_t comm = fake_comm(4);
  struct nvlar_route *route = fake_route(comm, 0, 0);
  running_comm(comm, route);
  /* Invalid flags: NCCL refuses, nothing changes. */
  assert_int_equal(nvlar_lifecycle_revoke(&fake_nccl, comm, 7), ncclInvalidArgument);
  assert_int_equal(*route->abort_host, 0u);
  assert_int_equal(state_of(comm), NVLAR_COMM_RUNNING);
  assert_int_equal(nvlar_lifecycle_revoke(&fake_nccl, comm, NCCL_REVOKE_DEFAULT), ncclSuccess);
  assert_int_equal(*route->abort_host, 1u);
  assert_int_equal(state_of(comm), NVLAR_COMM_REVOKED);
  /* The stopped kernels record an abort: revoke asked for it, so it is no error of nvlar's. */
  route->own.error_host->code = NVLAR_KERNEL_ABORTED;
  assert_int_equal(async_error(comm), ncclSuccess);
  nccl_calls.allreduce_answer = ncclInvalidUsage; /* NCCL's answer on a revoked communicator */
  assert_int_equal(call(comm), ncclInvalidUsage);
  assert_int_equal(atomic_load(&nccl_calls.allreduce), 1);
  assert_int_equal(atomic_load(&device.launches), 0);
}

static void test_shrink_abort_stops_the_parent_first(void **state) {
  (void)state;
  ncclComm_t parent = fake_comm(5);
  struct nvlar_route *route = fake_route(parent, 0, 0);
  running_comm(parent, route);
  nccl_calls.shrink_parent_route = route;
  int exclude[1] = {1};
  ncclComm_t child = NULL;
  /* Without NCCL_SHRINK_ABORT the parent keeps running. */
  assert_int_equal(nvlar_lifecycle_shrink(&fake_nccl, parent, exclude, 1, &child, NULL,
                                          NCCL_SHRINK_DEFAULT), ncclSuccess);
  assert_int_equal(nccl_calls.abort_word_at_shrink, 0u);
  assert_int_equal(state_of(parent), NVLAR_COMM_RUNNING);
  assert_int_equal(nvlar_lifecycle_shrink(&fake_nccl, parent, exclude, 1, &child, NULL,
                                          NCCL_SHRINK_ABORT), ncclSuccess);
  assert_int_equal(nccl_calls.abort_word_at_shrink, 1u); /* raised before NCCL's shrink ran */
  assert_int_equal(state_of(parent), NVLAR_COMM_REVOKED);
  assert_int_equal(call(parent), ncclSuccess);
  assert_int_equal(atomic_load(&nccl_calls.allreduce), 1);
  assert_int_equal(atomic_load(&device.launches), 0);
}

static void test_finalize_hands_calls_to_nccl(void **state) {
  (void)state;
  ncclComm_t comm = fake_comm(6);
  running_comm(comm, fake_route(comm, 0, 0));
  assert_int_equal(nvlar_lifecycle_finalize(&fake_nccl, comm), ncclSuccess);
  assert_int_equal(state_of(comm), NVLAR_COMM_FINALIZED);
  assert_int_equal(call(comm), ncclSuccess);
  assert_int_equal(atomic_load(&nccl_calls.allreduce), 1);
  assert_int_equal(atomic_load(&device.launches), 0);
}

/* ---- Abort, destroy, release */

static void test_abort_never_waits(void **state) {
  (void)state;
  ncclComm_t comm = fake_comm(7);
  struct nvlar_route *route = fake_route(comm, 0, 0);
  running_comm(comm, route);
  assert_int_equal(call(comm), ncclSuccess);
  atomic_store(&device.kernels_over, false); /* the kernel waits for a dead peer, for good */
  atomic_store(&departed[0][1], true);        /* the peer's process is gone: it "left" */
  /* Returns although the kernel is not over (waiting for it would never end). */
  assert_int_equal(nvlar_lifecycle_abort(&fake_nccl, comm), ncclSuccess);
  assert_int_equal(atomic_load(&nccl_calls.abort_), 1);
  assert_int_equal(*route->abort_host, 1u);
  assert_int_equal(state_of(comm), -1);
  /* The release thread holds the route until the kernel is over, then frees it. */
  assert_int_equal(nvlar_routes_being_released(), 1);
  assert_int_equal(atomic_load(&device.freed), 0);
  atomic_store(&device.kernels_over, true);
  assert_true(nvlar_routes_wait_released(5000));
  assert_int_equal(atomic_load(&device.freed), 1);
}

static void *kernels_end_later(void *unused) {
  (void)unused;
  struct timespec pause = {0, 300000000};
  nanosleep(&pause, NULL);
  atomic_store(&device.kernels_over, true);
  return NULL;
}

static void test_destroy_waits_for_its_kernels(void **state) {
  (void)state;
  ncclComm_t comm = fake_comm(8);
  running_comm(comm, fake_route(comm, 1, 0));
  atomic_store(&device.kernels_over, false);
  atomic_store(&departed[1][1], true);
  pthread_t ender;
  assert_int_equal(pthread_create(&ender, NULL, kernels_end_later, NULL), 0);
  assert_int_equal(nvlar_lifecycle_destroy(&fake_nccl, comm), ncclSuccess);
  /* It returned only once its kernels were over, as NCCL's destroy flushes NCCL's work. */
  assert_true(atomic_load(&device.kernels_over));
  pthread_join(ender, NULL);
  assert_int_equal(atomic_load(&nccl_calls.destroy), 1);
  assert_true(nvlar_routes_wait_released(5000));
  assert_int_equal(atomic_load(&device.freed), 1);
}

static void test_destroy_with_kernels_that_never_end(void **state) {
  (void)state;
  ncclComm_t comm = fake_comm(12);
  running_comm(comm, fake_route(comm, 1, 0));
  atomic_store(&device.kernels_over, false);
  atomic_store(&departed[1][1], true);
  /* Returns (after NVLAR_TIMEOUT_MS, with a WARN); the buffers wait for the kernels. */
  assert_int_equal(nvlar_lifecycle_destroy(&fake_nccl, comm), ncclSuccess);
  assert_int_equal(atomic_load(&nccl_calls.destroy), 1);
  assert_int_equal(atomic_load(&device.freed), 0);
  atomic_store(&device.kernels_over, true);
  assert_true(nvlar_routes_wait_released(5000));
  assert_int_equal(atomic_load(&device.freed), 1);
}

/* Rank 0 destroys communicators A then B, rank 1 B then A (two "processes": a route per rank
 * and communicator, sharing their departure words). One thread plays both ranks, one after
 * the other: if a destroy waited for its peer, rank 0's first one could never return. */
static void test_destroy_in_opposite_orders(void **state) {
  (void)state;
  /* comm slots: A of rank 0 / 1 share slot 2, B of rank 0 / 1 share slot 3. */
  ncclComm_t a0 = fake_comm(20), a1 = fake_comm(21), b0 = fake_comm(30), b1 = fake_comm(31);
  running_comm(a0, fake_route(a0, 2, 0));
  running_comm(a1, fake_route(a1, 2, 1));
  running_comm(b0, fake_route(b0, 3, 0));
  running_comm(b1, fake_route(b1, 3, 1));
  assert_int_equal(nvlar_lifecycle_destroy(&fake_nccl, a0), ncclSuccess);
  assert_int_equal(nvlar_lifecycle_destroy(&fake_nccl, b0), ncclSuccess);
  /* Rank 0 has left both; nothing of it is freed while rank 1 may still write into it. */
  assert_int_equal(atomic_load(&device.freed), 0);
  assert_int_equal(nvlar_lifecycle_destroy(&fake_nccl, b1), ncclSuccess);
  assert_int_equal(nvlar_lifecycle_destroy(&fake_nccl, a1), ncclSuccess);
  /* All four freed: none gave up on its peer (NVLAR_DESTROY_TIMEOUT_MS, 3 s here, would have
   * left its buffers allocated). */
  assert_true(nvlar_routes_wait_released(5000));
  assert_int_equal(atomic_load(&device.freed), 4);
}

/* One process drives both ranks: their routes are freed on a thread that calls destroy (or
 * init), never on the release thread, whose free would block this process's launches while a
 * kernel of one rank waits for the other's launch. */
static void test_routes_of_a_process_driving_both_ranks_free_on_a_callers_thread(void **state) {
  (void)state;
  device.test_thread = pthread_self();
  atomic_store(&device.freed_by_test_thread, 0);
  ncclComm_t a0 = fake_comm(40), a1 = fake_comm(41);
  struct nvlar_route *r0 = fake_route(a0, 2, 0), *r1 = fake_route(a1, 2, 1);
  r0->peer_device[1] = 0; /* rank 1 is on this process's device 0, and rank 0 too */
  r1->peer_device[0] = 0;
  running_comm(a0, r0);
  running_comm(a1, r1);
  assert_int_equal(nvlar_lifecycle_destroy(&fake_nccl, a0), ncclSuccess);
  assert_int_equal(nvlar_lifecycle_destroy(&fake_nccl, a1), ncclSuccess);
  /* The release thread takes both through kernels and departures, then leaves the frees to
   * the next destroy: one of a communicator nvlar never saw will do. */
  for (double until = nvlar_now_seconds() + 5; atomic_load(&device.freed) < 2 && nvlar_now_seconds() < until;) {
    assert_int_equal(nvlar_lifecycle_destroy(&fake_nccl, fake_comm(49)), ncclSuccess);
    struct timespec pause = {0, 1000000};
    nanosleep(&pause, NULL);
  }
  assert_int_equal(atomic_load(&device.freed), 2);
  assert_int_equal(atomic_load(&device.freed_by_test_thread), 2);
  assert_int_equal(nvlar_routes_being_released(), 0);
}

static void test_peer_that_never_leaves_leaks_with_a_warn(void **state) {
  (void)state;
  ncclComm_t comm = fake_comm(9);
  running_comm(comm, fake_route(comm, 0, 0));
  assert_int_equal(nvlar_lifecycle_destroy(&fake_nccl, comm), ncclSuccess);
  /* Rank 1 never leaves: the buffers stay (its kernels might still write into them). */
  assert_true(nvlar_routes_wait_released(6000));
  assert_int_equal(atomic_load(&device.freed), 0);
}

static void test_graph_keeps_the_route(void **state) {
  (void)state;
  ncclComm_t comm = fake_comm(10);
  running_comm(comm, fake_route(comm, 0, 0));
  device.capturing = true;
  assert_int_equal(call(comm), ncclSuccess);
  assert_int_equal(call(comm), ncclSuccess); /* the same capture: one reference */
  device.capturing = false;
  assert_non_null(graph_holds);
  assert_int_equal(atomic_load(&graph_holds->refs), 2); /* the communicator's and the graph's */
  atomic_store(&departed[0][1], true);
  assert_int_equal(nvlar_lifecycle_destroy(&fake_nccl, comm), ncclSuccess);
  assert_true(nvlar_routes_wait_released(200));
  assert_int_equal(atomic_load(&device.freed), 0); /* the graph still holds it */
  assert_int_equal(atomic_load(&graph_holds->refs), 1);
  nvlar_route_put(graph_holds); /* what CUDA does once the graph is gone */
  assert_true(nvlar_routes_wait_released(5000));
  assert_int_equal(atomic_load(&device.freed), 1);
}

/* ---- Abort beside calls on other threads */

static atomic_bool stop_callers;

static void *call_repeatedly(void *arg) {
  ncclComm_t comm = arg;
  while (!atomic_load(&stop_callers)) {
    ncclResult_t error = ncclSuccess;
    nvlar_lifecycle_async_error(comm, ncclSuccess, &error);
    nvlar_allreduce(&fake_nccl, buffer, buffer + 512, 16, ncclFloat32, ncclSum, comm, NULL);
  }
  return NULL;
}

static void test_abort_beside_calls(void **state) {
  (void)state;
  ncclComm_t comm = fake_comm(11);
  atomic_store(&stop_callers, false);
  atomic_store(&departed[0][1], true);
  pthread_t callers[3];
  running_comm(comm, fake_route(comm, 0, 0));
  for (int t = 0; t < 3; t++) assert_int_equal(pthread_create(&callers[t], NULL, call_repeatedly, comm), 0);
  for (int round = 0; round < 300; round++) {
    assert_int_equal(nvlar_lifecycle_abort(&fake_nccl, comm), ncclSuccess);
    atomic_store(&departed[0][0], false);
    running_comm(comm, fake_route(comm, 0, 0));
  }
  atomic_store(&stop_callers, true);
  for (int t = 0; t < 3; t++) pthread_join(callers[t], NULL);
  assert_int_equal(nvlar_lifecycle_abort(&fake_nccl, comm), ncclSuccess);
  assert_true(nvlar_routes_wait_released(10000));
  assert_int_equal(atomic_load(&device.freed), 301);
}

/* ---- The tuner plugin's rows wait for agreement */

static int logged_warns;
static void count_log(nvlar_nccl_log_level level, unsigned long flags, const char *file, int line, const char *fmt, ...) {
  (void)flags, (void)file, (void)line, (void)fmt;
  if (level == NVLAR_NCCL_LOG_WARN) logged_warns++;
}

/* Asks the plugin for NCCL's all-reduce of 2 MiB on 2 ranks: whether it changed the table. */
static bool row_applied(void *context) {
  float costs[NVLAR_NUM_ALGORITHMS][NVLAR_NUM_PROTOCOLS];
  for (int a = 0; a < NVLAR_NUM_ALGORITHMS; a++) {
    for (int p = 0; p < NVLAR_NUM_PROTOCOLS; p++) costs[a][p] = 1.0f;
  }
  int channels = 0;
  extern const nvlar_tuner_v5 ncclTunerPlugin_v5;
  ncclTunerPlugin_v5.getCollInfo(context, NVLAR_FUNC_ALLREDUCE, 2u << 20, 1, (float **)costs,
                                 NVLAR_NUM_ALGORITHMS, NVLAR_NUM_PROTOCOLS, 0, &channels);
  for (int a = 0; a < NVLAR_NUM_ALGORITHMS; a++) {
    for (int p = 0; p < NVLAR_NUM_PROTOCOLS; p++) {
      if (costs[a][p] == 0.0f) return true;
    }
  }
  return false;
}

static void test_tuner_rows_wait_for_agreement(void **state) {
  (void)state;
  extern const nvlar_tuner_v5 ncclTunerPlugin_v5;
  nvlar_tuner_expect_agreement();
  void *agreeing = NULL, *differing = NULL;
  /* Device -1: CUDA cannot say on this machine, as in setup's settle below. */
  assert_int_equal(ncclTunerPlugin_v5.init(&agreeing, 1, 2, 1, count_log, NULL, NULL), ncclSuccess);
  assert_int_equal(ncclTunerPlugin_v5.init(&differing, 2, 2, 1, count_log, NULL, NULL), ncclSuccess);
  assert_int_equal(nvlar_tuner_contexts_waiting(), 2);
  assert_false(row_applied(agreeing)); /* nothing before setup's verdict */
  struct nvlar_rank_info infos[2];
  memset(infos, 0, sizeof(infos));
  for (int r = 0; r < 2; r++) {
    infos[r].host_hash = 5;
    infos[r].cc_major = 9;
    infos[r].table_hash = nvlar_tuning_table()->hash;
  }
  int nodes = 0;
  assert_true(nvlar_ranks_agree_on_tuning(2, infos, &nodes));
  assert_int_equal(nodes, 1);
  /* The oldest waiting context goes first. */
  assert_ptr_equal(nvlar_tuner_settle(-1, 2, nodes, true), agreeing);
  infos[1].table_hash ^= 1; /* rank 1 read another file */
  assert_false(nvlar_ranks_agree_on_tuning(2, infos, &nodes));
  int warns = logged_warns;
  assert_ptr_equal(nvlar_tuner_settle(-1, 2, nodes, false), differing);
  assert_int_equal(logged_warns, warns + 1);
  assert_int_equal(nvlar_tuner_contexts_waiting(), 0);
  /* The table of this test has an all-reduce row for any architecture (main). */
  assert_true(row_applied(agreeing));
  assert_false(row_applied(differing));
  infos[1].table_hash ^= 1;
  infos[1].cc_minor = 1; /* mixed GPUs */
  assert_false(nvlar_ranks_agree_on_tuning(2, infos, &nodes));
  ncclTunerPlugin_v5.finalize(agreeing);
  ncclTunerPlugin_v5.finalize(differing);
}

int main(void) {
  /* Short bounds, read once at the first parameter access. */
  setenv("NVLAR_TIMEOUT_MS", "2000", 1);
  setenv("NVLAR_DESTROY_TIMEOUT_MS", "3000", 1);
  /* The built-in table and an NCCL all-reduce row for any architecture (this machine's is
   * unknown to CUDA), so that the tuner test sees a row apply or not. */
  char table_path[] = "/tmp/nvlar-test-lifecycle-XXXXXX";
  int fd = mkstemp(table_path);
  FILE *table = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (table == NULL) return 1;
  fprintf(table, "%snccl allreduce 0-inf 2 1 ring ll\n", nvlar_tuning_builtin);
  fclose(table);
  setenv("NVLAR_TUNING_FILE", table_path, 1);
  if (nvlar_tuning_table()->nrows == 0) return 1;
  unlink(table_path);
  fake_nccl.ncclAllReduce = fake_allreduce;
  fake_nccl.ncclCommDestroy = fake_destroy;
  fake_nccl.ncclCommAbort = fake_abort;
  fake_nccl.ncclCommRevoke = fake_revoke;
  fake_nccl.ncclCommShrink = fake_shrink;
  fake_nccl.ncclCommFinalize = fake_finalize;
  fake_nccl.ncclGetErrorString = fake_error_string;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_failed_launch_fails_the_communicator, reset),
      cmocka_unit_test_setup(test_kernel_that_gave_up_fails_the_next_call, reset),
      cmocka_unit_test_setup(test_async_error_finds_a_failure_first, reset),
      cmocka_unit_test_setup(test_revoke_stops_nvlar_and_nccl_answers, reset),
      cmocka_unit_test_setup(test_shrink_abort_stops_the_parent_first, reset),
      cmocka_unit_test_setup(test_finalize_hands_calls_to_nccl, reset),
      cmocka_unit_test_setup(test_abort_never_waits, reset),
      cmocka_unit_test_setup(test_destroy_waits_for_its_kernels, reset),
      cmocka_unit_test_setup(test_destroy_with_kernels_that_never_end, reset),
      cmocka_unit_test_setup(test_destroy_in_opposite_orders, reset),
      cmocka_unit_test_setup(test_routes_of_a_process_driving_both_ranks_free_on_a_callers_thread, reset),
      cmocka_unit_test_setup(test_peer_that_never_leaves_leaks_with_a_warn, reset),
      cmocka_unit_test_setup(test_graph_keeps_the_route, reset),
      cmocka_unit_test_setup(test_abort_beside_calls, reset),
      cmocka_unit_test_setup(test_tuner_rows_wait_for_agreement, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
