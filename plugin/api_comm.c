/* Exported communicator life-cycle calls, groups, ncclCommGetAsyncError and ncclAllReduce.
 *
 * Each call goes to the real NCCL first; NCCL validates the arguments, and nvlar returns
 * whatever NCCL returned. Only a communicator that NCCL handed back (ncclSuccess, or
 * ncclInProgress for a non-blocking one) enters the registry, so a failed or half-made call
 * leaves no trace. Setup (plugin/setup.c) then runs at once for a blocking communicator, or at
 * the ncclGroupEnd that completes a grouped init.
 *
 * Groups: a thread's group depth and the communicators its open group created are
 * thread-local, as NCCL's group state is. All-reduces inside a group launch nvlar's kernels at
 * the call, not at ncclGroupEnd: the kernels never wait for NCCL's, every rank issues the same
 * calls in the same order, and launches are asynchronous, so one thread can issue them for
 * several GPUs in a row without deadlock (design.md, "One thread, several GPUs"). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "comm_registry.h"
#include "export.h"
#include "log.h"
#include "nccl_api.h"
#include "params.h"
#include "real_nccl.h"
#include "setup.h"

static bool returned_a_communicator(ncclResult_t result) {
  return result == ncclSuccess || result == ncclInProgress;
}

/* A split or shrink inside a group, or of a non-blocking communicator, returns before NCCL has
 * made the child: NCCL writes it into the caller's `newcomm` when the group ends or, for a
 * non-blocking one, later still. Until then nvlar keeps where to look. */
struct child_slot {
  ncclComm_t *newcomm;
  enum nvlar_comm_origin origin;
  bool nonblocking;
};

/* The communicators this thread created inside its open group, set up at its ncclGroupEnd,
 * and the children its splits will write there. */
static _Thread_local struct {
  int depth;
  int count, capacity;
  ncclComm_t *comms;
  int nchildren;
  struct child_slot children[64];
} group;

/* Children of non-blocking splits not made yet: adopted when the caller first asks
 * ncclCommGetAsyncError about them (it must, before using them). The oldest is forgotten when
 * the list is full: that child stays on NCCL. */
static struct {
  pthread_mutex_t lock;
  int count;
  struct child_slot slots[64];
} pending_children = {PTHREAD_MUTEX_INITIALIZER, 0, {{0}}};

static void remember_pending_child(struct child_slot child) {
  pthread_mutex_lock(&pending_children.lock);
  if (pending_children.count == 64) {
    memmove(&pending_children.slots[0], &pending_children.slots[1], 63 * sizeof(child));
    pending_children.count--;
  }
  pending_children.slots[pending_children.count++] = child;
  pthread_mutex_unlock(&pending_children.lock);
}

/* If `comm` is the child a remembered slot now holds, forgets the slot and returns it. The
 * caller's variable is only compared with a communicator the caller passed, never used as one. */
static bool take_pending_child(ncclComm_t comm, struct child_slot *child) {
  bool found = false;
  pthread_mutex_lock(&pending_children.lock);
  for (int i = 0; i < pending_children.count && !found; i++) {
    if (*(ncclComm_t volatile *)pending_children.slots[i].newcomm != comm) continue;
    *child = pending_children.slots[i];
    memmove(&pending_children.slots[i], &pending_children.slots[i + 1],
            (size_t)(pending_children.count - i - 1) * sizeof(*child));
    pending_children.count--;
    found = true;
  }
  pthread_mutex_unlock(&pending_children.lock);
  return found;
}

static void defer_to_group_end(ncclComm_t comm) {
  if (group.count == group.capacity) {
    int capacity = group.capacity ? 2 * group.capacity : 16;
    ncclComm_t *grown = realloc(group.comms, (size_t)capacity * sizeof(*grown));
    if (grown == NULL) {
      /* Setup is collective; skipping it here would leave the peers waiting in theirs. */
      NVLAR_WARN("comm %p: out of memory to defer its setup; running it now", (void *)comm);
      nvlar_setup(nvlar_real_nccl(), &comm, 1);
      return;
    }
    group.comms = grown;
    group.capacity = capacity;
  }
  group.comms[group.count++] = comm;
}

/* Records new communicators and starts their setup, or defers it to the group's end. */
static void adopt_into(ncclComm_t *comms, int count, enum nvlar_comm_origin origin,
                       bool nonblocking, bool defer) {
  int setups = 0;
  for (int i = 0; i < count; i++) {
    if (comms[i] == NULL) continue;
    if (!nvlar_registry_add(comms[i], origin)) {
      NVLAR_WARN("comm %p (%s): out of memory for nvlar's record; it stays on NCCL",
                 (void *)comms[i], nvlar_comm_origin_name(origin));
      continue;
    }
    nvlar_registry_set_nonblocking(comms[i], nonblocking);
    NVLAR_INFO("comm %p created by %s%s", (void *)comms[i], nvlar_comm_origin_name(origin),
               nonblocking ? " (non-blocking)" : "");
    if (nvlar_param_number(NVLAR_P_DISABLE)) {
      NVLAR_INFO("comm %p: all-reduces stay on NCCL: NVLAR_DISABLE=1", (void *)comms[i]);
    } else if (nonblocking) {
      /* Set up once NCCL reports it ready, on a helper thread (see ncclCommGetAsyncError). */
      nvlar_registry_set_async_pending(comms[i]);
    } else if (defer) {
      defer_to_group_end(comms[i]);
    } else {
      comms[setups++] = comms[i]; /* compacted in place: the caller's array is not read again */
    }
  }
  if (setups > 0) nvlar_setup(nvlar_real_nccl(), comms, setups);
}

static void adopt(ncclComm_t *comms, int count, enum nvlar_comm_origin origin, bool nonblocking) {
  adopt_into(comms, count, origin, nonblocking, group.depth > 0);
}

NVLAR_EXPORT ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId,
                                           int rank) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommInitRank, ncclSystemError)
  ncclResult_t result = nccl->ncclCommInitRank(comm, nranks, commId, rank);
  if (returned_a_communicator(result) && comm != NULL) {
    ncclComm_t made = *comm;
    adopt(&made, 1, NVLAR_ORIGIN_INIT_RANK, nvlar_config_nonblocking(NULL));
  }
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks,
                                                 ncclUniqueId commId, int rank,
                                                 ncclConfig_t *config) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommInitRankConfig, ncclSystemError)
  ncclResult_t result = nccl->ncclCommInitRankConfig(comm, nranks, commId, rank, config);
  if (returned_a_communicator(result) && comm != NULL) {
    ncclComm_t made = *comm;
    adopt(&made, 1, NVLAR_ORIGIN_INIT_RANK_CONFIG, nvlar_config_nonblocking(config));
  }
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommInitAll(ncclComm_t *comm, int ndev, const int *devlist) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommInitAll, ncclSystemError)
  ncclResult_t result = nccl->ncclCommInitAll(comm, ndev, devlist);
  if (returned_a_communicator(result) && comm != NULL && ndev > 0) {
    ncclComm_t *made = malloc((size_t)ndev * sizeof(*made));
    if (made == NULL) {
      NVLAR_WARN("out of memory: the %d communicators of ncclCommInitAll stay on NCCL", ndev);
      return result;
    }
    for (int i = 0; i < ndev; i++) made[i] = comm[i];
    adopt(made, ndev, NVLAR_ORIGIN_INIT_ALL, nvlar_config_nonblocking(NULL));
    free(made);
  }
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommInitRankScalable(ncclComm_t *newcomm, int nranks, int myrank,
                                                   int nId, ncclUniqueId *commIds,
                                                   ncclConfig_t *config) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommInitRankScalable, ncclSystemError)
  ncclResult_t result =
      nccl->ncclCommInitRankScalable(newcomm, nranks, myrank, nId, commIds, config);
  if (returned_a_communicator(result) && newcomm != NULL) {
    ncclComm_t made = *newcomm;
    adopt(&made, 1, NVLAR_ORIGIN_INIT_RANK_SCALABLE, nvlar_config_nonblocking(config));
  }
  return result;
}

/* A split or shrink without its own blocking setting inherits the parent's. */
static bool child_nonblocking(ncclComm_t parent, const ncclConfig_t *config) {
  if (config != NULL && config->blocking != NCCL_CONFIG_UNDEF_INT) return config->blocking == 0;
  struct nvlar_comm *entry = nvlar_registry_find(parent);
  return entry != NULL ? entry->nonblocking : nvlar_config_nonblocking(NULL);
}

/* A split or shrink returned: adopts the child now if NCCL made it already, else remembers
 * where NCCL will write it (at this thread's group end, or later for a non-blocking one). */
static void adopt_child(ncclResult_t result, ncclComm_t *newcomm, enum nvlar_comm_origin origin,
                        bool nonblocking) {
  if (!returned_a_communicator(result) || newcomm == NULL) return;
  if (*newcomm != NULL) {
    ncclComm_t made = *newcomm;
    adopt(&made, 1, origin, nonblocking);
    return;
  }
  struct child_slot child = {newcomm, origin, nonblocking};
  if (group.depth > 0 && group.nchildren < 64) {
    group.children[group.nchildren++] = child;
  } else if (nonblocking) {
    remember_pending_child(child);
  } else if (group.depth > 0) {
    NVLAR_WARN("more than 64 splits in one group: the 65th child and later stay on NCCL");
  }
}

NVLAR_EXPORT ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t *newcomm,
                                        ncclConfig_t *config) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommSplit, ncclSystemError)
  bool nonblocking = child_nonblocking(comm, config);
  ncclResult_t result = nccl->ncclCommSplit(comm, color, key, newcomm, config);
  /* A rank that passed NCCL_SPLIT_NOCOLOR gets no child: nothing to record, no setup to join. */
  if (color != NCCL_SPLIT_NOCOLOR) adopt_child(result, newcomm, NVLAR_ORIGIN_SPLIT, nonblocking);
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommShrink(ncclComm_t comm, int *excludeRanksList,
                                         int excludeRanksCount, ncclComm_t *newcomm,
                                         ncclConfig_t *config, int shrinkFlags) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommShrink, ncclSystemError)
  bool nonblocking = child_nonblocking(comm, config);
  ncclResult_t result = nccl->ncclCommShrink(comm, excludeRanksList, excludeRanksCount, newcomm,
                                             config, shrinkFlags);
  adopt_child(result, newcomm, NVLAR_ORIGIN_SHRINK, nonblocking);
  return result;
}

NVLAR_EXPORT ncclResult_t ncclGroupStart(void) {
  NVLAR_REAL_OR_RETURN(nccl, ncclGroupStart, ncclSystemError)
  ncclResult_t result = nccl->ncclGroupStart();
  if (result == ncclSuccess) group.depth++;
  return result;
}

/* Ends one level of this thread's group; at the outermost level, sets up the communicators the
 * group created (if the group succeeded: otherwise they stay on NCCL). */
static ncclResult_t finish_group_level(ncclResult_t result, bool run_setups) {
  if (group.depth > 0) group.depth--;
  if (group.depth > 0) return result;
  /* The children of the group's splits: NCCL has written them now (blocking communicators);
   * they join the group's setup. A non-blocking child may come later. */
  int nchildren = group.nchildren;
  group.nchildren = 0;
  for (int i = 0; i < nchildren && run_setups && returned_a_communicator(result); i++) {
    struct child_slot child = group.children[i];
    ncclComm_t made = *child.newcomm;
    if (made == NULL) {
      if (child.nonblocking) remember_pending_child(child);
      continue;
    }
    adopt_into(&made, 1, child.origin, child.nonblocking, true); /* the setup below */
  }
  if (group.count == 0) return result;
  int count = group.count;
  group.count = 0;
  if (result == ncclSuccess && run_setups) {
    nvlar_setup(nvlar_real_nccl(), group.comms, count);
  } else {
    NVLAR_INFO("%d communicators created in a group stay on NCCL (group end: %s)", count,
               result == ncclSuccess ? "simulated" : "failed or in progress");
  }
  return result;
}

NVLAR_EXPORT ncclResult_t ncclGroupEnd(void) {
  NVLAR_REAL_OR_RETURN(nccl, ncclGroupEnd, ncclSystemError)
  bool open = group.depth > 0;
  ncclResult_t result = nccl->ncclGroupEnd();
  /* An unmatched ncclGroupEnd is NCCL's to report; it closes no level of ours. */
  return open ? finish_group_level(result, true) : result;
}

NVLAR_EXPORT ncclResult_t ncclGroupSimulateEnd(ncclSimInfo_t *simInfo) {
  NVLAR_REAL_OR_RETURN(nccl, ncclGroupSimulateEnd, ncclSystemError)
  bool open = group.depth > 0;
  ncclResult_t result = nccl->ncclGroupSimulateEnd(simInfo);
  return open ? finish_group_level(result, false) : result;
}

NVLAR_EXPORT ncclResult_t ncclCommFinalize(ncclComm_t comm) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommFinalize, ncclSystemError)
  ncclResult_t result = nccl->ncclCommFinalize(comm);
  NVLAR_INFO("comm %p finalized (NCCL: %s)", (void *)comm, nccl->ncclGetErrorString(result));
  if (returned_a_communicator(result)) nvlar_registry_set_state(comm, NVLAR_COMM_FINALIZED);
  return result;
}

/* ---- Non-blocking communicators: setup on a helper thread once NCCL's init is done. */

/* Set on the thread that runs a non-blocking setup. NCCL checks a communicator's readiness by
 * calling the public ncclCommGetAsyncError, which the preload routes here: on this thread it
 * must hear NCCL's own answer, not the "in progress" that the setup shows everyone else. */
static _Thread_local bool running_async_setup;

static void *async_setup_main(void *arg) {
  struct nvlar_comm *entry = arg;
  running_async_setup = true;
  nvlar_setup_nonblocking(nvlar_real_nccl(), entry->comm, &entry->async_cancel);
  running_async_setup = false;
  atomic_store(&entry->async_setup, NVLAR_ASYNC_SETUP_DONE);
  return NULL;
}

static void start_async_setup(struct nvlar_comm *entry) {
  if (pthread_create(&entry->async_thread, NULL, async_setup_main, entry) == 0) {
    atomic_store(&entry->async_thread_started, true);
    return;
  }
  /* Setup is collective: skipping it would leave the peers waiting in theirs. */
  NVLAR_WARN("comm %p: no thread for nvlar's setup; it runs in this call", (void *)entry->comm);
  async_setup_main(entry);
}

/* Before a destroy or abort: a setup still running gives up at its next wait (within ~50 us:
 * its waits are polls) and its thread is joined. */
static void stop_async_setup(ncclComm_t comm) {
  struct nvlar_comm *entry = nvlar_registry_find(comm);
  if (entry == NULL || !atomic_load(&entry->async_thread_started)) return;
  atomic_store(&entry->async_cancel, 1);
  pthread_join(entry->async_thread, NULL);
  atomic_store(&entry->async_thread_started, false);
}

NVLAR_EXPORT ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommDestroy, ncclSystemError)
  stop_async_setup(comm);
  struct nvlar_route *route = NULL, *leftover = NULL;
  if (nvlar_registry_remove(comm, &route, &leftover)) NVLAR_INFO("comm %p destroyed", (void *)comm);
  /* nvlar's buffers go first, while the peers that map them are still known to be alive; the
   * release waits for the other processes' departures through nvlar's own buffers, not
   * through NCCL (the communicator may be finalized). */
  if (route != NULL) nvlar_route_release(route, false);
  ncclResult_t result = nccl->ncclCommDestroy(comm);
  if (leftover != NULL) nvlar_route_release(leftover, true);
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommAbort(ncclComm_t comm) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommAbort, ncclSystemError)
  stop_async_setup(comm);
  struct nvlar_route *route = NULL, *leftover = NULL;
  if (nvlar_registry_remove(comm, &route, &leftover)) NVLAR_INFO("comm %p aborted", (void *)comm);
  /* Stop nvlar's waiting kernels, let NCCL stop its own, then free without any barrier (freeing
   * waits for the device, which is only sure to drain once NCCL's kernels are gone). */
  if (route != NULL) *(volatile uint32_t *)route->abort_host = 1;
  ncclResult_t result = nccl->ncclCommAbort(comm);
  if (route != NULL) nvlar_route_release(route, true);
  if (leftover != NULL) nvlar_route_release(leftover, true);
  return result;
}

/* Reports nvlar's kernel failures as ncclSystemError; for a non-blocking communicator, also
 * starts nvlar's setup once NCCL says the communicator is ready, and says ncclInProgress until
 * that setup is done. Callers of a non-blocking communicator poll this until ncclSuccess before
 * they use it, so every rank finishes setup before its first all-reduce. */
NVLAR_EXPORT ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommGetAsyncError, ncclSystemError)
  ncclResult_t result = nccl->ncclCommGetAsyncError(comm, asyncError);
  if (result != ncclSuccess || asyncError == NULL || *asyncError != ncclSuccess ||
      running_async_setup) {
    return result;
  }
  struct nvlar_comm *entry = nvlar_registry_find(comm);
  struct child_slot child;
  if (entry == NULL && take_pending_child(comm, &child)) {
    adopt(&comm, 1, child.origin, child.nonblocking);
    entry = nvlar_registry_find(comm);
  }
  if (entry == NULL) return result;
  int stage = atomic_load(&entry->async_setup);
  if (stage == NVLAR_ASYNC_SETUP_PENDING || stage == NVLAR_ASYNC_SETUP_RUNNING) {
    int expected = NVLAR_ASYNC_SETUP_PENDING;
    if (atomic_compare_exchange_strong(&entry->async_setup, &expected, NVLAR_ASYNC_SETUP_RUNNING)) {
      start_async_setup(entry);
    }
    if (atomic_load(&entry->async_setup) != NVLAR_ASYNC_SETUP_DONE) *asyncError = ncclInProgress;
    return result;
  }
  if (entry->route != NULL && nvlar_route_failure(entry->route) != NVLAR_KERNEL_OK) {
    *asyncError = ncclSystemError;
  }
  return result;
}

/* Bytes per element of each ncclDataType_t. */
static size_t element_size(ncclDataType_t datatype) {
  static const unsigned char sizes[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1};
  return (unsigned)datatype < sizeof(sizes) ? sizes[datatype] : 0;
}

/* Launches an nvlar kernel for an eligible call; false when the call belongs to NCCL. Every
 * input to the decision is the same on every rank: the route's policy (agreed at setup), the
 * count, datatype and op. The buffer checks only keep NCCL's error codes for NULL buffers. */
static bool try_nvlar(struct nvlar_route *route, const void *sendbuff, void *recvbuff,
                      size_t count, ncclDataType_t datatype, ncclRedOp_t op, cudaStream_t stream,
                      ncclResult_t *result) {
  if (!nvlar_allreduce_supported((int)datatype, (int)op) || sendbuff == NULL || recvbuff == NULL) {
    return false;
  }
  struct nvlar_choice choice = nvlar_select(&route->policy, count * element_size(datatype));
  if (!choice.nvlar) return false;
  struct nvlar_allreduce_args args;
  nvlar_route_call_args(route, choice, sendbuff, recvbuff, count, (int)datatype, (int)op, &args);
  int current = route->device;
  cudaGetDevice(&current);
  if (current != route->device) cudaSetDevice(route->device);
  cudaError_t error = nvlar_allreduce_launch(&args, stream);
  if (current != route->device) cudaSetDevice(current);
  if (error != cudaSuccess) {
    /* The peers launched theirs: NCCL is no way out now. Report, as NCCL would for a failed
     * launch. */
    cudaGetLastError();
    NVLAR_WARN("comm %p: launching the all-reduce kernel failed: %s", (void *)route->comm,
               cudaGetErrorString(error));
    *result = ncclUnhandledCudaError;
    return true;
  }
  atomic_fetch_add_explicit(&route->calls[choice.algo], 1, memory_order_relaxed);
  NVLAR_TRACE("comm %p: all-reduce of %zu elements on nvlar (%s, %d CTAs)", (void *)route->comm,
              count, nvlar_algo_name(choice.algo), choice.nblocks);
  *result = ncclSuccess;
  return true;
}

NVLAR_EXPORT ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                                        ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                        cudaStream_t stream) {
  NVLAR_REAL_OR_RETURN(nccl, ncclAllReduce, ncclSystemError)
  struct nvlar_comm *entry = nvlar_registry_find(comm);
  /* After ncclCommFinalize, NCCL answers (with its error) as it would without nvlar. */
  struct nvlar_route *route =
      entry != NULL && entry->state == NVLAR_COMM_ACTIVE ? entry->route : NULL;
  if (route != NULL) {
    ncclResult_t result;
    if (try_nvlar(route, sendbuff, recvbuff, count, datatype, op, stream, &result)) return result;
    atomic_fetch_add_explicit(&route->calls[NVLAR_PATH_NCCL], 1, memory_order_relaxed);
  }
  return nccl->ncclAllReduce(sendbuff, recvbuff, count, datatype, op, comm, stream);
}
