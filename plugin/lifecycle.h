/* A communicator's life in nvlar: its states and every move between them, in one place
 * (design.md, "Failure"). The exported calls (api_comm.c, allreduce.c) ask here; this module
 * calls only the real NCCL's table it is handed, never nvlar's own exports.
 *
 *   NCCL made it            -> SETTING_UP   (registered; calls go to NCCL)
 *   setup done              -> RUNNING      (all-reduces on the route, if eligible)
 *   setup could not finish  -> FAILED       (a collective of its exchange is pending in NCCL)
 *   a kernel timed out or was aborted, a launch failed
 *                           -> FAILED       (all-reduces return the error, launch nothing)
 *   ncclCommRevoke, ncclCommShrink(NCCL_SHRINK_ABORT) of it
 *                           -> REVOKED      (nvlar's kernels stopped; NCCL answers every call)
 *   ncclCommFinalize        -> FINALIZED    (NCCL answers every call)
 *   ncclCommDestroy         -> gone: unlisted; this rank's kernels waited for (bounded); the
 *                              route released once nothing holds it (route.h)
 *   ncclCommAbort           -> gone: unlisted; kernels told to stop; nothing waited for
 *
 * No move blocks on the device: destroy waits only for this rank's own kernels of the
 * communicator, abort for nothing, and freeing happens on nvlar's release thread. */
#ifndef NVLAR_LIFECYCLE_H
#define NVLAR_LIFECYCLE_H

#include <stdbool.h>

#include "comm_registry.h"
#include "real_nccl.h"
#include "route.h"
#include "setup.h"

/* Before the real init, split or shrink: the tuner plugin's contexts created by it wait for
 * the communicator's setup (tuner_agreement.h). */
void nvlar_lifecycle_before_init(void);

/* NCCL returned `comm`: records it (SETTING_UP). False when nvlar has no memory to record it;
 * it then stays on NCCL, and it cannot take part in setup. */
bool nvlar_lifecycle_adopt(ncclComm_t comm, enum nvlar_comm_origin origin, bool nonblocking,
                           struct nvlar_cta_limits ctas);

/* Runs the setup of blocking communicators, one batch (setup.h), and moves each to RUNNING or
 * FAILED. */
void nvlar_lifecycle_set_up(const struct nvlar_real_nccl *nccl, const ncclComm_t *comms, int count);

/* A setup's outcome for `comm`: RUNNING (on the route, if any) or FAILED; a leftover waits for
 * NCCL's destroy or abort. (nvlar_lifecycle_set_up applies its outcomes so; the tests give
 * communicators routes of their own the same way.) */
void nvlar_lifecycle_setup_done(ncclComm_t comm, const struct nvlar_setup_outcome *outcome);

/* A non-blocking communicator: its setup starts at the first ncclCommGetAsyncError that finds
 * NCCL's init done (see nvlar_lifecycle_async_error). */
void nvlar_lifecycle_set_up_later(ncclComm_t comm);

/* Communicators whose grouped init failed or was only simulated: they stay on NCCL. */
void nvlar_lifecycle_skip_setup(const ncclComm_t *comms, int count);

/* NCCL answered ncclCommGetAsyncError with `result` and *asyncError; nvlar adds its own: a
 * setup still running (ncclInProgress; a pending one is started), a failed communicator's
 * error. Returns the call's result. */
ncclResult_t nvlar_lifecycle_async_error(ncclComm_t comm, ncclResult_t result,
                                         ncclResult_t *asyncError);

ncclResult_t nvlar_lifecycle_finalize(const struct nvlar_real_nccl *nccl, ncclComm_t comm);
ncclResult_t nvlar_lifecycle_destroy(const struct nvlar_real_nccl *nccl, ncclComm_t comm);
ncclResult_t nvlar_lifecycle_abort(const struct nvlar_real_nccl *nccl, ncclComm_t comm);
ncclResult_t nvlar_lifecycle_revoke(const struct nvlar_real_nccl *nccl, ncclComm_t comm,
                                    int revokeFlags);
/* NCCL_SHRINK_ABORT stops the parent's nvlar kernels first and moves it to REVOKED, as NCCL
 * stops its own; the child is the caller's to adopt. */
ncclResult_t nvlar_lifecycle_shrink(const struct nvlar_real_nccl *nccl, ncclComm_t comm,
                                    int *excludeRanksList, int excludeRanksCount,
                                    ncclComm_t *newcomm, ncclConfig_t *config, int shrinkFlags);

/* ---- The hot path's gate (allreduce.c) */

enum nvlar_call_path {
  NVLAR_CALL_NCCL,  /* NCCL takes the call */
  NVLAR_CALL_ROUTE, /* the route may take it (call->route) */
  NVLAR_CALL_ERROR, /* the communicator failed: return call->error, launch nothing */
  NVLAR_CALL_SINGLE_RANK, /* one rank: the all-reduce is a copy (call->entry->single_rank_device) */
};

struct nvlar_call {
  struct nvlar_comm *entry; /* referenced until nvlar_lifecycle_end_call */
  struct nvlar_route *route;
  ncclResult_t error;
};

/* One registry lookup and the state: which way the call goes. */
enum nvlar_call_path nvlar_lifecycle_begin_call(ncclComm_t comm, struct nvlar_call *call);
void nvlar_lifecycle_end_call(struct nvlar_call *call);

/* A launch on the route failed: the communicator is FAILED with `error`. */
void nvlar_lifecycle_fail(struct nvlar_comm *entry, ncclResult_t error);

#endif
