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

struct nvlar_comm {
  ncclComm_t comm;
  enum nvlar_comm_origin origin;
  enum nvlar_comm_state state;
  bool nonblocking;           /* created with config.blocking = 0 (or NCCL_COMM_BLOCKING=0) */
  struct nvlar_route *route;  /* set once setup made it eligible; NULL: everything to NCCL */
  struct nvlar_comm *next;    /* bucket chain */
};

const char *nvlar_comm_origin_name(enum nvlar_comm_origin origin);

/* Adds `comm`; an entry that already exists for it is replaced (NCCL may reuse the address of
 * a destroyed communicator). Returns false only when memory runs out; the communicator then
 * simply stays on NCCL. */
bool nvlar_registry_add(ncclComm_t comm, enum nvlar_comm_origin origin);

/* Removes `comm`; true if it was there. Its route, if any, is handed to *route (may be NULL
 * when the caller knows there is none) for the caller to release. */
bool nvlar_registry_remove(ncclComm_t comm, struct nvlar_route **route);

/* Records whether `comm` is non-blocking; false if it is not registered. */
bool nvlar_registry_set_nonblocking(ncclComm_t comm, bool nonblocking);

/* Attaches a route to a registered communicator; false if it is not registered. */
bool nvlar_registry_attach_route(ncclComm_t comm, struct nvlar_route *route);

/* The entry for `comm`, or NULL. */
struct nvlar_comm *nvlar_registry_find(ncclComm_t comm);

bool nvlar_registry_set_state(ncclComm_t comm, enum nvlar_comm_state state);

size_t nvlar_registry_count(void);

/* Drops every entry (tests only). */
void nvlar_registry_clear(void);

#endif
