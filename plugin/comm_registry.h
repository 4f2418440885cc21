/* The communicators libnvlar knows about, keyed by ncclComm_t.
 *
 * Entries are added by the wrapped init, split and shrink calls once NCCL has returned a
 * communicator, and removed by destroy and abort. Lookups take a shared lock, so the hot path
 * (one lookup per ncclAllReduce) never waits behind another lookup. An entry stays valid until
 * its communicator is destroyed or aborted, which NCCL already forbids doing while another
 * thread uses the communicator.
 */
#ifndef NVLAR_COMM_REGISTRY_H
#define NVLAR_COMM_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <nccl.h>

/* How the communicator came to be; reported in logs. */
enum nvlar_comm_origin {
  NVLAR_ORIGIN_INIT_RANK,
  NVLAR_ORIGIN_INIT_RANK_CONFIG,
  NVLAR_ORIGIN_INIT_ALL,
  NVLAR_ORIGIN_INIT_RANK_SCALABLE,
  NVLAR_ORIGIN_SPLIT,
  NVLAR_ORIGIN_SHRINK,
};

enum nvlar_comm_state {
  NVLAR_COMM_ACTIVE,    /* created; collectives may run */
  NVLAR_COMM_FINALIZED, /* ncclCommFinalize was called; only destroy may follow */
};

struct nvlar_route;

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
  enum nvlar_comm_state state;
  bool nonblocking;           /* created with config.blocking = 0 (or NCCL_COMM_BLOCKING=0) */
  struct nvlar_route *route;  /* set once setup made it eligible; NULL: everything to NCCL */
  atomic_int async_setup;     /* enum nvlar_async_setup */
  atomic_int async_cancel;    /* raised by destroy/abort to stop a running setup */
  atomic_bool async_thread_started; /* async_thread must be joined */
  pthread_t async_thread;
  struct nvlar_route *leftover; /* resources of a setup cancelled midway, freed after abort */
  struct nvlar_comm *next;    /* bucket chain */
};

const char *nvlar_comm_origin_name(enum nvlar_comm_origin origin);

/* Adds `comm`; an entry that already exists for it is replaced (NCCL may reuse the address of
 * a destroyed communicator). Returns false only when memory runs out; the communicator then
 * simply stays on NCCL. */
bool nvlar_registry_add(ncclComm_t comm, enum nvlar_comm_origin origin);

/* Removes `comm`; true if it was there. Its route, if any, is handed to *route, and the
 * leftover of a cancelled setup to *leftover (either may be NULL when the caller knows there
 * is none), for the caller to release. */
bool nvlar_registry_remove(ncclComm_t comm, struct nvlar_route **route,
                           struct nvlar_route **leftover);

/* Records whether `comm` is non-blocking; false if it is not registered. */
bool nvlar_registry_set_nonblocking(ncclComm_t comm, bool nonblocking);

/* Marks a registered non-blocking communicator's setup as waiting for NCCL's init. */
bool nvlar_registry_set_async_pending(ncclComm_t comm);

/* Hands a cancelled setup's resources to the entry, for destroy/abort to free. */
bool nvlar_registry_set_leftover(ncclComm_t comm, struct nvlar_route *route);

/* Attaches a route to a registered communicator; false if it is not registered. */
bool nvlar_registry_attach_route(ncclComm_t comm, struct nvlar_route *route);

/* The entry for `comm`, or NULL. */
struct nvlar_comm *nvlar_registry_find(ncclComm_t comm);

bool nvlar_registry_set_state(ncclComm_t comm, enum nvlar_comm_state state);

size_t nvlar_registry_count(void);

/* Drops every entry (tests only). */
void nvlar_registry_clear(void);

#endif
