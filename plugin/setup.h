/* Communicator setup: after NCCL has made a communicator, decide with the other ranks whether
 * its all-reduces may run on nvlar, and if so build the route they take (design.md,
 * "Communicator setup").
 *
 * Setup is collective: every rank of the communicator runs it at the same point (the end of
 * the init call, or of the ncclGroupEnd that completed a grouped init), through the real NCCL.
 * It gathers a record from every rank, maps and probes every peer's buffers, gathers the
 * outcome, and evaluates nvlar_eligible() over the gathered bytes, so all ranks decide alike.
 *
 * Every rank with two or more ranks takes part in the first exchange, whatever it found
 * locally (NVLAR_DISABLE=1, out of memory for its buffers): it says so in its record, and every
 * rank then keeps the communicator on NCCL. Only a rank that cannot join at all (no memory for
 * the exchange itself) stays out; its peers' exchange then never completes, and both sides
 * report the communicator as failed, as NCCL reports a rank lost inside a collective.
 *
 * Setup decides; plugin/lifecycle.c applies the outcome to the communicator's state. */
#ifndef NVLAR_SETUP_H
#define NVLAR_SETUP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "eligibility.h"
#include "real_nccl.h"
#include "route.h"

/* Setup scratch that an NCCL collective still pending may write into: freed only once NCCL
 * has stopped the communicator's work (after its destroy or abort). */
struct nvlar_setup_leftover;

struct nvlar_setup_outcome {
  struct nvlar_route *route; /* eligible: the route (one reference, the caller's) */
  bool failed;               /* a collective step never completed: the communicator has an
                                NCCL operation that will not finish, and is failed */
  struct nvlar_setup_leftover *leftover; /* to free after NCCL's destroy or abort */
  void *tuner_context;       /* the tuner plugin's context this setup settled, if any */
  int single_rank_device;    /* a one-rank communicator: its device (all-reduces are copies,
                                allreduce.c); -1 otherwise */
};

/* How one setup talks to NCCL: with `cancel` (may be NULL) raised it gives up at its next step;
 * with `nccl_lock` (may be NULL) it makes each NCCL call holding that lock, after checking
 * `cancel` (a non-blocking communicator's setup runs on a helper thread beside a possible
 * abort: lifecycle.c). */
struct nvlar_setup_control {
  bool nonblocking;          /* NCCL calls on the communicators return before they are launched */
  const atomic_int *cancel;
  pthread_mutex_t *nccl_lock;
};

/* Runs setup for `count` communicators created by this thread (one, or all those of a group
 * or of ncclCommInitAll: their collective steps are issued as one NCCL group, so that one
 * thread can drive several GPUs). outcomes[i] says what became of comms[i]. Switches the
 * thread to relaxed capture mode meanwhile, as NCCL does. */
void nvlar_setup_run(const struct nvlar_real_nccl *nccl, const ncclComm_t *comms, int count,
                     const struct nvlar_setup_control *control,
                     struct nvlar_setup_outcome *outcomes);

/* Frees a leftover (may wait for the device: the release thread calls it). */
void nvlar_setup_leftover_free(void *leftover);

#endif
