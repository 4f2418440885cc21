/* Exported communicator life-cycle calls and groups: the shape of NCCL's API around
 * plugin/lifecycle.c, which owns every communicator's state.
 *
 * Each call goes to the real NCCL first; NCCL validates the arguments, and nvlar returns
 * whatever NCCL returned. Only a communicator that NCCL handed back (ncclSuccess, or
 * ncclInProgress for a non-blocking one) is adopted, so a failed or half-made call leaves no
 * trace. Setup then runs at once for a blocking communicator, or at the ncclGroupEnd that
 * completes a grouped init, or (non-blocking) at the first ncclCommGetAsyncError that finds
 * NCCL's init done.
 *
 * Groups: a thread's group depth and the communicators its open group created are
 * thread-local, as NCCL's group state is. All-reduces inside a group launch nvlar's kernels at
 * the call, not at ncclGroupEnd: the kernels never wait for NCCL's, every rank issues the same
 * calls in the same order, and launches are asynchronous, so one thread can issue them for
 * several GPUs in a row without deadlock (design.md, "One thread, several GPUs"). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "export.h"
#include "lifecycle.h"
#include "log.h"
#include "nccl_api.h"
#include "real_nccl.h"

static bool returned_a_communicator(ncclResult_t result) {
  return result == ncclSuccess || result == ncclInProgress;
}

/* What nvlar takes from a communicator's ncclConfig_t, NCCL's environment and, for a split or
 * shrink, its parent: as NCCL takes it (config.h). */
struct comm_config {
  bool nonblocking;
  struct nvlar_cta_limits ctas;
};

/* `parent`: a split's or shrink's parent, whose settings a child without a config inherits. */
static struct comm_config comm_config_of(const ncclConfig_t *config, ncclComm_t parent) {
  struct nvlar_comm *entry = parent != NULL ? nvlar_registry_get(parent) : NULL;
  struct comm_config c;
  c.nonblocking = nvlar_config_nonblocking(config, entry != NULL ? entry->nonblocking : -1,
                                           getenv("NCCL_COMM_BLOCKING"));
  c.ctas = nvlar_cta_limits_from_env(config, entry != NULL ? &entry->ctas : NULL);
  nvlar_comm_put(entry);
  return c;
}

/* A split or shrink inside a group, or of a non-blocking communicator, returns before NCCL has
 * made the child: NCCL writes it into the caller's `newcomm` when the group ends or, for a
 * non-blocking one, later still. Until then nvlar keeps where to look. */
struct child_slot {
  ncclComm_t *newcomm;
  enum nvlar_comm_origin origin;
  struct comm_config config;
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
      nvlar_lifecycle_set_up(nvlar_real_nccl(), &comm, 1);
      return;
    }
    group.comms = grown;
    group.capacity = capacity;
  }
  group.comms[group.count++] = comm;
}

/* Records new communicators and starts their setup, or defers it to the group's end. */
static void adopt_into(ncclComm_t *comms, int count, enum nvlar_comm_origin origin,
                       struct comm_config config, bool defer) {
  int setups = 0;
  for (int i = 0; i < count; i++) {
    if (comms[i] == NULL ||
        !nvlar_lifecycle_adopt(comms[i], origin, config.nonblocking, config.ctas)) {
      continue;
    }
    if (config.nonblocking) {
      nvlar_lifecycle_set_up_later(comms[i]);
    } else if (defer) {
      defer_to_group_end(comms[i]);
    } else {
      comms[setups++] = comms[i]; /* compacted in place: the caller's array is not read again */
    }
  }
  if (setups > 0) nvlar_lifecycle_set_up(nvlar_real_nccl(), comms, setups);
}

static void adopt(ncclComm_t *comms, int count, enum nvlar_comm_origin origin,
                  struct comm_config config) {
  adopt_into(comms, count, origin, config, group.depth > 0);
}

NVLAR_EXPORT ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId,
                                           int rank) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommInitRank, ncclSystemError)
  nvlar_lifecycle_before_init();
  ncclResult_t result = nccl->ncclCommInitRank(comm, nranks, commId, rank);
  if (returned_a_communicator(result) && comm != NULL) {
    ncclComm_t made = *comm;
    adopt(&made, 1, NVLAR_ORIGIN_INIT_RANK, comm_config_of(NULL, NULL));
  }
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks,
                                                 ncclUniqueId commId, int rank,
                                                 ncclConfig_t *config) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommInitRankConfig, ncclSystemError)
  nvlar_lifecycle_before_init();
  ncclResult_t result = nccl->ncclCommInitRankConfig(comm, nranks, commId, rank, config);
  if (returned_a_communicator(result) && comm != NULL) {
    ncclComm_t made = *comm;
    adopt(&made, 1, NVLAR_ORIGIN_INIT_RANK_CONFIG, comm_config_of(config, NULL));
  }
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommInitAll(ncclComm_t *comm, int ndev, const int *devlist) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommInitAll, ncclSystemError)
  nvlar_lifecycle_before_init();
  ncclResult_t result = nccl->ncclCommInitAll(comm, ndev, devlist);
  if (returned_a_communicator(result) && comm != NULL && ndev > 0) {
    ncclComm_t *made = malloc((size_t)ndev * sizeof(*made));
    if (made == NULL) {
      NVLAR_WARN("out of memory: the %d communicators of ncclCommInitAll stay on NCCL", ndev);
      return result;
    }
    for (int i = 0; i < ndev; i++) made[i] = comm[i];
    adopt(made, ndev, NVLAR_ORIGIN_INIT_ALL, comm_config_of(NULL, NULL));
    free(made);
  }
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommInitRankScalable(ncclComm_t *newcomm, int nranks, int myrank,
                                                   int nId, ncclUniqueId *commIds,
                                                   ncclConfig_t *config) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommInitRankScalable, ncclSystemError)
  nvlar_lifecycle_before_init();
  ncclResult_t result =
      nccl->ncclCommInitRankScalable(newcomm, nranks, myrank, nId, commIds, config);
  if (returned_a_communicator(result) && newcomm != NULL) {
    ncclComm_t made = *newcomm;
    adopt(&made, 1, NVLAR_ORIGIN_INIT_RANK_SCALABLE, comm_config_of(config, NULL));
  }
  return result;
}

/* A split or shrink returned: adopts the child now if NCCL made it already, else remembers
 * where NCCL will write it (at this thread's group end, or later for a non-blocking one). */
static void adopt_child(ncclResult_t result, ncclComm_t *newcomm, enum nvlar_comm_origin origin,
                        struct comm_config config) {
  if (!returned_a_communicator(result) || newcomm == NULL) return;
  if (*newcomm != NULL) {
    ncclComm_t made = *newcomm;
    adopt(&made, 1, origin, config);
    return;
  }
  struct child_slot child = {newcomm, origin, config};
  if (group.depth > 0 && group.nchildren < 64) {
    group.children[group.nchildren++] = child;
  } else if (config.nonblocking) {
    remember_pending_child(child);
  } else if (group.depth > 0) {
    NVLAR_WARN("more than 64 splits in one group: the 65th child and later stay on NCCL");
  }
}

NVLAR_EXPORT ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t *newcomm,
                                        ncclConfig_t *config) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommSplit, ncclSystemError)
  struct comm_config child_config = comm_config_of(config, comm);
  nvlar_lifecycle_before_init();
  ncclResult_t result = nccl->ncclCommSplit(comm, color, key, newcomm, config);
  /* A rank that passed NCCL_SPLIT_NOCOLOR gets no child: nothing to record, no setup to join. */
  if (color != NCCL_SPLIT_NOCOLOR) adopt_child(result, newcomm, NVLAR_ORIGIN_SPLIT, child_config);
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommShrink(ncclComm_t comm, int *excludeRanksList,
                                         int excludeRanksCount, ncclComm_t *newcomm,
                                         ncclConfig_t *config, int shrinkFlags) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommShrink, ncclSystemError)
  struct comm_config child_config = comm_config_of(config, comm);
  nvlar_lifecycle_before_init();
  ncclResult_t result = nvlar_lifecycle_shrink(nccl, comm, excludeRanksList, excludeRanksCount,
                                               newcomm, config, shrinkFlags);
  adopt_child(result, newcomm, NVLAR_ORIGIN_SHRINK, child_config);
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommRevoke(ncclComm_t comm, int revokeFlags) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommRevoke, ncclSystemError)
  return nvlar_lifecycle_revoke(nccl, comm, revokeFlags);
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
      if (child.config.nonblocking) remember_pending_child(child);
      continue;
    }
    adopt_into(&made, 1, child.origin, child.config, true); /* the setup below */
  }
  if (group.count == 0) return result;
  int count = group.count;
  group.count = 0;
  if (result == ncclSuccess && run_setups) {
    nvlar_lifecycle_set_up(nvlar_real_nccl(), group.comms, count);
  } else {
    NVLAR_INFO("%d communicators created in a group stay on NCCL (group end: %s)", count,
               result == ncclSuccess ? "simulated" : "failed or in progress");
    nvlar_lifecycle_skip_setup(group.comms, count);
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
  return nvlar_lifecycle_finalize(nccl, comm);
}

NVLAR_EXPORT ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommDestroy, ncclSystemError)
  return nvlar_lifecycle_destroy(nccl, comm);
}

NVLAR_EXPORT ncclResult_t ncclCommAbort(ncclComm_t comm) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommAbort, ncclSystemError)
  return nvlar_lifecycle_abort(nccl, comm);
}

/* NCCL's answer, with nvlar's kernel failures (ncclSystemError) and, for a non-blocking
 * communicator, ncclInProgress until nvlar's setup is done. Callers of a non-blocking
 * communicator poll this until ncclSuccess before they use it, so every rank finishes setup
 * before its first all-reduce. */
NVLAR_EXPORT ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommGetAsyncError, ncclSystemError)
  ncclResult_t result = nccl->ncclCommGetAsyncError(comm, asyncError);
  struct child_slot child;
  if (result == ncclSuccess && asyncError != NULL && *asyncError == ncclSuccess &&
      take_pending_child(comm, &child)) {
    adopt(&comm, 1, child.origin, child.config);
  }
  return nvlar_lifecycle_async_error(comm, result, asyncError);
}
