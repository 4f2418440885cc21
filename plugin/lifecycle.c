#include "lifecycle.h"

#include <pthread.h>
#include <stdlib.h>

#include "log.h"
#include "params.h"
#include "setup.h"
#include "tuner_agreement.h"

/* entry->leftover once NCCL has stopped the communicator's work: a setup that parks its
 * leftover later frees it at once. */
#define NCCL_STOPPED ((struct nvlar_setup_leftover *)(uintptr_t)1)

void nvlar_lifecycle_before_init(void) {
  nvlar_tuner_expect_agreement();
  /* NCCL's init allocates on this thread: routes parked for a caller's thread go here. */
  nvlar_routes_free_parked();
}

bool nvlar_lifecycle_adopt(ncclComm_t comm, enum nvlar_comm_origin origin, bool nonblocking,
                           struct nvlar_cta_limits ctas) {
  if (!nvlar_registry_add(comm, origin, nonblocking, ctas)) {
    NVLAR_WARN("comm %p (%s): out of memory for nvlar's record; it stays on NCCL and cannot join "
               "its peers' setup", (void *)comm, nvlar_comm_origin_name(origin));
    return false;
  }
  NVLAR_INFO("comm %p created by %s%s", (void *)comm, nvlar_comm_origin_name(origin),
             nonblocking ? " (non-blocking)" : "");
  return true;
}

/* Moves SETTING_UP -> `to`; false if the communicator left SETTING_UP meanwhile (revoked). */
static bool leave_setting_up(struct nvlar_comm *entry, enum nvlar_comm_state to) {
  int expected = NVLAR_COMM_SETTING_UP;
  return atomic_compare_exchange_strong(&entry->state, &expected, to);
}

void nvlar_lifecycle_fail(struct nvlar_comm *entry, ncclResult_t error) {
  int expected = ncclSuccess;
  atomic_compare_exchange_strong(&entry->error, &expected, error); /* the first error stays */
  int state = atomic_load(&entry->state);
  /* Revoked and finalized communicators are NCCL's to answer for. */
  while ((state == NVLAR_COMM_RUNNING || state == NVLAR_COMM_SETTING_UP) &&
         !atomic_compare_exchange_weak(&entry->state, &state, NVLAR_COMM_FAILED)) {
  }
}

/* A setup's leftover waits for NCCL to stop the communicator's work (setup.h). */
static void park_leftover(struct nvlar_comm *entry, struct nvlar_setup_leftover *leftover) {
  if (leftover == NULL) return;
  struct nvlar_setup_leftover *expected = NULL;
  if (!atomic_compare_exchange_strong(&entry->leftover, &expected, leftover)) {
    nvlar_release_later(nvlar_setup_leftover_free, leftover); /* NCCL_STOPPED: free now */
  }
}

/* NCCL's destroy or abort returned: nothing of NCCL's writes into setup scratch any more. */
static void nccl_stopped(struct nvlar_comm *entry) {
  struct nvlar_setup_leftover *leftover = atomic_exchange(&entry->leftover, NCCL_STOPPED);
  if (leftover != NULL && leftover != NCCL_STOPPED) {
    nvlar_release_later(nvlar_setup_leftover_free, leftover);
  }
}

/* The outcome of a setup, applied to its communicator. */
static void apply_outcome(struct nvlar_comm *entry, const struct nvlar_setup_outcome *outcome) {
  park_leftover(entry, outcome->leftover);
  entry->tuner_link = outcome->tuner_context;
  entry->single_rank_device = outcome->single_rank_device;
  if (atomic_load(&entry->async_cancel)) {
    nvlar_route_put(outcome->route); /* destroyed, aborted or revoked during setup */
    return;
  }
  if (outcome->failed) {
    nvlar_route_put(outcome->route);
    nvlar_lifecycle_fail(entry, ncclSystemError);
    return;
  }
  atomic_store_explicit(&entry->route, outcome->route, memory_order_release);
  if (!leave_setting_up(entry, NVLAR_COMM_RUNNING) && outcome->route != NULL) {
    nvlar_route_abort(outcome->route); /* revoked meanwhile: it must never wait for anyone */
  }
}

void nvlar_lifecycle_set_up(const struct nvlar_real_nccl *nccl, const ncclComm_t *comms, int count) {
  if (count <= 0) return;
  struct nvlar_setup_outcome *outcomes = calloc((size_t)count, sizeof(*outcomes));
  if (outcomes == NULL) {
    NVLAR_WARN("out of memory for setup: %d communicators fail (they cannot join their peers' "
               "setup)", count);
    for (int i = 0; i < count; i++) {
      struct nvlar_comm *entry = nvlar_registry_get(comms[i]);
      if (entry != NULL) nvlar_lifecycle_fail(entry, ncclSystemError);
      nvlar_comm_put(entry);
    }
    return;
  }
  const struct nvlar_setup_control control = {false, NULL, NULL};
  nvlar_setup_run(nccl, comms, count, &control, outcomes);
  for (int i = 0; i < count; i++) nvlar_lifecycle_setup_done(comms[i], &outcomes[i]);
  free(outcomes);
}

void nvlar_lifecycle_setup_done(ncclComm_t comm, const struct nvlar_setup_outcome *outcome) {
  struct nvlar_comm *entry = nvlar_registry_get(comm);
  if (entry != NULL) {
    apply_outcome(entry, outcome);
  } else {
    nvlar_route_put(outcome->route);
    if (outcome->leftover != NULL) nvlar_release_later(nvlar_setup_leftover_free, outcome->leftover);
  }
  nvlar_comm_put(entry);
}

void nvlar_lifecycle_skip_setup(const ncclComm_t *comms, int count) {
  for (int i = 0; i < count; i++) {
    struct nvlar_comm *entry = nvlar_registry_get(comms[i]);
    if (entry != NULL) leave_setting_up(entry, NVLAR_COMM_RUNNING);
    nvlar_comm_put(entry);
  }
}

/* ---- Non-blocking setup: on a helper thread once NCCL reports the communicator ready. */

/* Set on the thread that runs a non-blocking setup. NCCL checks a communicator's readiness by
 * calling the public ncclCommGetAsyncError, which the preload routes here: on this thread it
 * must hear NCCL's own answer, not the "in progress" that the setup shows everyone else. */
static _Thread_local bool running_async_setup;

static void *async_setup_main(void *arg) {
  struct nvlar_comm *entry = arg; /* a reference of its own */
  running_async_setup = true;
  const struct nvlar_setup_control control = {true, &entry->async_cancel, &entry->nccl_lock};
  struct nvlar_setup_outcome outcome;
  nvlar_setup_run(nvlar_real_nccl(), &entry->comm, 1, &control, &outcome);
  apply_outcome(entry, &outcome);
  running_async_setup = false;
  atomic_store(&entry->async_setup, NVLAR_ASYNC_SETUP_DONE);
  nvlar_comm_put(entry);
  return NULL;
}

void nvlar_lifecycle_set_up_later(ncclComm_t comm) {
  struct nvlar_comm *entry = nvlar_registry_get(comm);
  if (entry != NULL) atomic_store(&entry->async_setup, NVLAR_ASYNC_SETUP_PENDING);
  nvlar_comm_put(entry);
}

static void start_async_setup(struct nvlar_comm *entry) {
  atomic_fetch_add(&entry->refs, 1); /* the helper's */
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  /* Never joined: destroy and abort only make it stop calling NCCL (setup.h), so that neither
   * waits for a thread that may be inside a slow CUDA call. */
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int created = pthread_create(&thread, &attr, async_setup_main, entry);
  pthread_attr_destroy(&attr);
  if (created == 0) return;
  /* Setup is collective: skipping it would leave the peers waiting in theirs. */
  NVLAR_WARN("comm %p: no thread for nvlar's setup; it runs in this call", (void *)entry->comm);
  async_setup_main(entry);
}

/* Destroy, abort and revoke: a setup still running makes no NCCL call after this returns
 * (it calls NCCL only under nccl_lock, after checking async_cancel). */
static void cancel_setup(struct nvlar_comm *entry) {
  pthread_mutex_lock(&entry->nccl_lock);
  atomic_store(&entry->async_cancel, 1);
  pthread_mutex_unlock(&entry->nccl_lock);
}

ncclResult_t nvlar_lifecycle_async_error(ncclComm_t comm, ncclResult_t result,
                                         ncclResult_t *asyncError) {
  if (result != ncclSuccess || asyncError == NULL || *asyncError != ncclSuccess ||
      running_async_setup) {
    return result;
  }
  struct nvlar_comm *entry = nvlar_registry_get(comm);
  if (entry == NULL) return result;
  int stage = atomic_load(&entry->async_setup);
  if (stage == NVLAR_ASYNC_SETUP_PENDING || stage == NVLAR_ASYNC_SETUP_RUNNING) {
    int expected = NVLAR_ASYNC_SETUP_PENDING;
    if (atomic_compare_exchange_strong(&entry->async_setup, &expected, NVLAR_ASYNC_SETUP_RUNNING)) {
      start_async_setup(entry);
    }
    if (atomic_load(&entry->async_setup) != NVLAR_ASYNC_SETUP_DONE) *asyncError = ncclInProgress;
  }
  int state = atomic_load(&entry->state);
  if (state == NVLAR_COMM_RUNNING) {
    struct nvlar_route *route = atomic_load_explicit(&entry->route, memory_order_acquire);
    if (route != NULL && nvlar_route_failure(route) != NVLAR_KERNEL_OK) {
      nvlar_lifecycle_fail(entry, ncclSystemError);
      state = atomic_load(&entry->state);
    }
  }
  if (state == NVLAR_COMM_FAILED) *asyncError = (ncclResult_t)atomic_load(&entry->error);
  nvlar_comm_put(entry);
  return result;
}

/* ---- Finalize, destroy, abort, revoke, shrink */

ncclResult_t nvlar_lifecycle_finalize(const struct nvlar_real_nccl *nccl, ncclComm_t comm) {
  ncclResult_t result = nccl->ncclCommFinalize(comm);
  NVLAR_INFO("comm %p finalized (NCCL: %s)", (void *)comm, nccl->ncclGetErrorString(result));
  struct nvlar_comm *entry = nvlar_registry_get(comm);
  if (entry != NULL && (result == ncclSuccess || result == ncclInProgress)) {
    atomic_store(&entry->state, NVLAR_COMM_FINALIZED);
  }
  nvlar_comm_put(entry);
  return result;
}

/* The CUDA calls of destroy and abort must not invalidate another thread's graph capture in
 * global mode (PyTorch's default), as NCCL's own do not. */
static enum cudaStreamCaptureMode relaxed_capture(void) {
  enum cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  cudaThreadExchangeStreamCaptureMode(&mode);
  return mode;
}

static void restore_capture(enum cudaStreamCaptureMode mode) {
  cudaThreadExchangeStreamCaptureMode(&mode);
}

ncclResult_t nvlar_lifecycle_destroy(const struct nvlar_real_nccl *nccl, ncclComm_t comm) {
  struct nvlar_comm *entry = nvlar_registry_take(comm);
  enum cudaStreamCaptureMode mode = relaxed_capture();
  /* NCCL's destroy frees on this thread: routes parked for a caller's thread go here. */
  nvlar_routes_free_parked();
  if (entry != NULL) {
    NVLAR_INFO("comm %p destroyed", (void *)comm);
    cancel_setup(entry);
    struct nvlar_route *route = nvlar_comm_route(entry);
    /* As NCCL's destroy flushes NCCL's operations: this rank's nvlar kernels of the
     * communicator end before it returns (kernels whose peer is gone give up at
     * NVLAR_TIMEOUT_MS). Graphs that captured them keep the route (route.h). */
    if (route != NULL && !nvlar_route_wait_kernels(route, nvlar_param_number(NVLAR_P_TIMEOUT_MS))) {
      NVLAR_WARN("comm %p: nvlar's kernels of this communicator did not end within "
                 "NVLAR_TIMEOUT_MS; its buffers are released once they do", (void *)comm);
    }
    nvlar_route_put(route);
  }
  ncclResult_t result = nccl->ncclCommDestroy(comm);
  if (entry != NULL) {
    nccl_stopped(entry);
    nvlar_comm_put(entry); /* the route goes to the release thread when nothing else holds it */
  }
  restore_capture(mode);
  return result;
}

ncclResult_t nvlar_lifecycle_abort(const struct nvlar_real_nccl *nccl, ncclComm_t comm) {
  struct nvlar_comm *entry = nvlar_registry_take(comm);
  enum cudaStreamCaptureMode mode = relaxed_capture();
  if (entry != NULL) {
    NVLAR_INFO("comm %p aborted", (void *)comm);
    cancel_setup(entry);
    struct nvlar_route *route = nvlar_comm_route(entry);
    /* Waiting kernels stop within a millisecond; nothing here waits for them (nor for
     * anything else on the device): the release thread does, then frees. */
    if (route != NULL) nvlar_route_abort(route);
    nvlar_route_put(route);
  }
  ncclResult_t result = nccl->ncclCommAbort(comm);
  if (entry != NULL) {
    nccl_stopped(entry);
    nvlar_comm_put(entry);
  }
  restore_capture(mode);
  return result;
}

/* nvlar's kernels of the communicator stop and it launches no more; NCCL answers every later
 * call on it. */
static void stop_nvlar(struct nvlar_comm *entry) {
  cancel_setup(entry);
  int state = atomic_exchange(&entry->state, NVLAR_COMM_REVOKED);
  if (state == NVLAR_COMM_FINALIZED) atomic_store(&entry->state, NVLAR_COMM_FINALIZED);
  struct nvlar_route *route = nvlar_comm_route(entry);
  if (route != NULL) nvlar_route_abort(route);
  nvlar_route_put(route);
}

ncclResult_t nvlar_lifecycle_revoke(const struct nvlar_real_nccl *nccl, ncclComm_t comm,
                                    int revokeFlags) {
  struct nvlar_comm *entry = nvlar_registry_get(comm);
  /* Only what NCCL accepts as a revoke (its default flags, once): an invalid one changes
   * nothing, and NCCL reports it. */
  if (entry != NULL && revokeFlags == NCCL_REVOKE_DEFAULT &&
      atomic_load(&entry->state) != NVLAR_COMM_REVOKED) {
    NVLAR_INFO("comm %p revoked: nvlar's kernels stop, NCCL answers every later call", (void *)comm);
    stop_nvlar(entry);
  }
  nvlar_comm_put(entry);
  return nccl->ncclCommRevoke(comm, revokeFlags);
}

ncclResult_t nvlar_lifecycle_shrink(const struct nvlar_real_nccl *nccl, ncclComm_t comm,
                                    int *excludeRanksList, int excludeRanksCount,
                                    ncclComm_t *newcomm, ncclConfig_t *config, int shrinkFlags) {
  if (shrinkFlags & NCCL_SHRINK_ABORT) {
    struct nvlar_comm *entry = nvlar_registry_get(comm);
    if (entry != NULL) {
      NVLAR_INFO("comm %p shrunk with NCCL_SHRINK_ABORT: nvlar's kernels on it stop, NCCL "
                 "answers every later call on it", (void *)comm);
      stop_nvlar(entry);
    }
    nvlar_comm_put(entry);
  }
  return nccl->ncclCommShrink(comm, excludeRanksList, excludeRanksCount, newcomm, config,
                              shrinkFlags);
}

/* ---- The hot path's gate */

enum nvlar_call_path nvlar_lifecycle_begin_call(ncclComm_t comm, struct nvlar_call *call) {
  call->entry = nvlar_registry_get(comm);
  call->route = NULL;
  call->error = ncclSuccess;
  if (call->entry == NULL) return NVLAR_CALL_NCCL;
  int state = atomic_load_explicit(&call->entry->state, memory_order_acquire);
  if (state == NVLAR_COMM_RUNNING) {
    if (call->entry->single_rank_device >= 0) return NVLAR_CALL_SINGLE_RANK;
    call->route = atomic_load_explicit(&call->entry->route, memory_order_acquire);
    if (call->route == NULL) return NVLAR_CALL_NCCL;
    /* A kernel of an earlier call gave up: NCCL would return the communicator's async error
     * from this call; the output would otherwise keep stale data. */
    if (nvlar_route_failure(call->route) == NVLAR_KERNEL_OK) return NVLAR_CALL_ROUTE;
    nvlar_lifecycle_fail(call->entry, ncclSystemError);
    state = atomic_load(&call->entry->state);
  }
  if (state == NVLAR_COMM_FAILED) {
    call->error = (ncclResult_t)atomic_load(&call->entry->error);
    return NVLAR_CALL_ERROR;
  }
  return NVLAR_CALL_NCCL;
}

void nvlar_lifecycle_end_call(struct nvlar_call *call) {
  nvlar_comm_put(call->entry);
  call->entry = NULL;
}
