/* The communicators libnvlar knows about, keyed by ncclComm_t.
 *
 * Entries are added by the wrapped init, split and shrink calls once NCCL has returned a
 * communicator, and removed by destroy and abort. An entry is reference-counted: the registry
 * holds one reference while the entry is listed, and every lookup hands the caller one more,
 * which the caller gives back with nvlar_comm_put(). So a watchdog thread may abort a
 * communicator while another thread is inside ncclCommGetAsyncError or ncclAllReduce on it:
 * the entry (and the route it holds) lives until the last of them is done. Lookups take a
 * shared lock only for the walk of one bucket chain.
 *
 * The entry's state and the moves between states belong to plugin/lifecycle.c; this file only
 * stores them. */
#ifndef NVLAR_COMM_REGISTRY_H
#define NVLAR_COMM_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <nccl.h>

#include "config.h"

/* How the communicator came to be; reported in logs. */
enum nvlar_comm_origin {
  NVLAR_ORIGIN_INIT_RANK,
  NVLAR_ORIGIN_INIT_RANK_CONFIG,
  NVLAR_ORIGIN_INIT_ALL,
  NVLAR_ORIGIN_INIT_RANK_SCALABLE,
  NVLAR_ORIGIN_SPLIT,
  NVLAR_ORIGIN_SHRINK,
};

/* A communicator's state (plugin/lifecycle.c moves it; design.md, "Failure"). */
enum nvlar_comm_state {
  NVLAR_COMM_SETTING_UP, /* NCCL made it; nvlar's setup has not finished: calls go to NCCL */
  NVLAR_COMM_RUNNING,    /* set up: all-reduces run on the route if there is one, else NCCL */
  NVLAR_COMM_FAILED,     /* an nvlar kernel or setup failed: all-reduces return `error` and
                            launch nothing, as NCCL returns a communicator's async error */
  NVLAR_COMM_REVOKED,    /* ncclCommRevoke, or a shrink with NCCL_SHRINK_ABORT: nvlar's kernels
                            were stopped; every call goes to NCCL, which answers for it */
  NVLAR_COMM_FINALIZED,  /* ncclCommFinalize: every call goes to NCCL */
};

struct nvlar_route;
struct nvlar_setup_leftover;

/* Setup of a non-blocking communicator: it starts once NCCL reports the communicator ready,
 * on a helper thread, and ncclCommGetAsyncError says ncclInProgress until it is done. */
enum nvlar_async_setup {
  NVLAR_ASYNC_SETUP_NONE = 0, /* blocking communicator, or nothing to do */
  NVLAR_ASYNC_SETUP_PENDING,  /* waits for NCCL's init to finish */
  NVLAR_ASYNC_SETUP_RUNNING,  /* the helper thread runs it */
  NVLAR_ASYNC_SETUP_DONE,
};

struct nvlar_comm {
  ncclComm_t comm;
  enum nvlar_comm_origin origin;
  atomic_int state;           /* enum nvlar_comm_state */
  atomic_int error;           /* ncclResult_t of a FAILED communicator */
  bool nonblocking;           /* created with config.blocking = 0 (or NCCL_COMM_BLOCKING=0) */
  struct nvlar_cta_limits ctas; /* NCCL's CTA limits of this communicator (config.h) */
  /* Set once setup made the communicator eligible; the entry holds one reference on it
   * (plugin/route.h). NULL: every all-reduce goes to NCCL. Written before the state becomes
   * RUNNING (release), read after the state (acquire). */
  struct nvlar_route *_Atomic route;
  atomic_int async_setup;     /* enum nvlar_async_setup */
  /* A non-blocking setup's helper thread calls NCCL on this communicator only while holding
   * this lock and after checking `async_cancel`; destroy and abort raise `async_cancel` under
   * it, so NCCL's destroy never runs beside a call of the helper (which never blocks: every
   * NCCL call on a non-blocking communicator returns at once). */
  pthread_mutex_t nccl_lock;
  atomic_int async_cancel;    /* raised by destroy/abort/revoke: the setup gives up */
  /* What a setup that could not finish leaves behind (scratch that a collective NCCL never
   * completed may still write, and buffers not yet attached): released after NCCL's destroy
   * or abort of the communicator has stopped that collective. */
  struct nvlar_setup_leftover *_Atomic leftover;
  void *tuner_link;           /* the tuner context this communicator's setup verified, if any */
  int single_rank_device;     /* >= 0: a one-rank communicator on this device, whose
                                 all-reduces nvlar makes as copies; -1 otherwise */
  atomic_int refs;
  struct nvlar_comm *next;    /* bucket chain */
};

const char *nvlar_comm_origin_name(enum nvlar_comm_origin origin);
const char *nvlar_comm_state_name(enum nvlar_comm_state state);

/* Adds `comm` in state SETTING_UP; an entry that already exists for it is replaced (NCCL may
 * reuse the address of a destroyed communicator). Returns false only when memory runs out;
 * the communicator then simply stays on NCCL. */
bool nvlar_registry_add(ncclComm_t comm, enum nvlar_comm_origin origin, bool nonblocking,
                        struct nvlar_cta_limits ctas);

/* The entry for `comm` with a reference for the caller, or NULL. */
struct nvlar_comm *nvlar_registry_get(ncclComm_t comm);

/* Unlists `comm` and returns its entry with the registry's reference handed to the caller, or
 * NULL. Later lookups do not find it. */
struct nvlar_comm *nvlar_registry_take(ncclComm_t comm);

/* Gives back a reference; the last one frees the entry and drops its route reference. */
void nvlar_comm_put(struct nvlar_comm *entry);

/* Returns the route with a reference for the caller (NULL if none). */
struct nvlar_route *nvlar_comm_route(struct nvlar_comm *entry);

size_t nvlar_registry_count(void);

/* Drops every entry (tests only). */
void nvlar_registry_clear(void);

#endif
