/* Communicator setup: after NCCL has made a communicator, decide with the other ranks whether
 * its all-reduces may run on nvlar, and if so build the route they take (design.md,
 * "Communicator setup").
 *
 * Setup is collective: every rank of the communicator runs it at the same point (the end of
 * the init call, or of the ncclGroupEnd that completed a grouped init), through the real NCCL.
 * It gathers a record from every rank, maps and probes every peer's buffers, gathers the
 * outcome, and evaluates nvlar_eligible() over the gathered bytes, so all ranks decide alike.
 * A failure anywhere leaves the communicator on NCCL with one log line saying why. */
#ifndef NVLAR_SETUP_H
#define NVLAR_SETUP_H

#include <stdatomic.h>
#include <stdbool.h>

#include "eligibility.h"
#include "peer_buffers.h"
#include "real_nccl.h"
#include "selection.h"

/* Call counters: calls[algo] for each enum nvlar_algo, calls[NVLAR_PATH_NCCL] for NCCL. */
enum nvlar_path { NVLAR_PATH_NCCL = NVLAR_ALGO_COUNT, NVLAR_PATHS };

/* What an eligible communicator's all-reduces need, built once at setup. */
struct nvlar_route {
  ncclComm_t comm;
  int device;                /* the communicator's CUDA device */
  struct nvlar_policy policy;
  struct nvlar_allreduce_args args; /* the per-call fields are filled at each call */
  struct nvlar_local_buffers own;
  struct nvlar_peer_buffers peers[NVLAR_MAX_RANKS];
  int peer_device[NVLAR_MAX_RANKS]; /* device of each peer this process drives, else -1 */
  int32_t peer_pid[NVLAR_MAX_RANKS];        /* each rank's process id */
  bool peer_pid_visible[NVLAR_MAX_RANKS];   /* same host and pid namespace: kill(pid, 0) says
                                               whether that process still exists */
  uint32_t *abort_host;      /* mapped pinned word the kernels watch; args.abort views it */
  atomic_uint_fast64_t calls[NVLAR_PATHS];
  atomic_int error_reported;
};

/* One call's kernel arguments: the route's, with the call's own fields. ncclAllReduce launches
 * with them; nvlar-bench launches the same kernel bare with them, to time nvlar's host path. */
static inline void nvlar_route_call_args(const struct nvlar_route *route, struct nvlar_choice choice,
                                         const void *input, void *output, size_t count,
                                         int datatype, int op, struct nvlar_allreduce_args *args) {
  *args = route->args;
  args->algo = choice.algo;
  args->datatype = datatype;
  args->op = op;
  args->nblocks = choice.nblocks;
  args->input = input;
  args->output = output;
  args->count = count;
}

/* Runs setup for communicators created by this thread (one, or all those of a group or of
 * ncclCommInitAll: their collective steps are issued as one NCCL group, so that one thread can
 * drive several GPUs). Each is looked up in the registry; routes are attached there. */
void nvlar_setup(const struct nvlar_real_nccl *nccl, const ncclComm_t *comms, int count);

/* The same for one non-blocking communicator, run on a helper thread once NCCL reports it
 * ready: every wait is a poll, bounded by NVLAR_TIMEOUT_MS, and stops when *cancel is raised
 * (by an abort or destroy of the communicator during setup); a cancelled setup leaves its
 * resources with the registry entry ("leftover") for the abort to free. */
void nvlar_setup_nonblocking(const struct nvlar_real_nccl *nccl, ncclComm_t comm,
                             atomic_int *cancel);

/* Frees a route's resources, without any NCCL call (the communicator may be finalized or
 * aborted). It waits for the device (and for the devices of peers this process drives), then
 * writes its departure word into every peer in another process. Destroy (aborting = false)
 * then waits until every such peer has left too, or its process has ended, for at most
 * NVLAR_DESTROY_TIMEOUT_MS (past it the buffers stay allocated, with a WARN naming the
 * ranks), unmaps the peers and frees. Abort (the caller raised the abort word and let NCCL
 * abort first) does not wait for the peers. */
void nvlar_route_release(struct nvlar_route *route, bool aborting);

/* The first kernel failure of the route (0 if none), reported once as a WARN naming the peer. */
uint32_t nvlar_route_failure(struct nvlar_route *route);

/* Whether `config` (and NCCL_COMM_BLOCKING) makes a communicator non-blocking. */
bool nvlar_config_nonblocking(const ncclConfig_t *config);

#endif
