#include "comm_registry.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "route.h"

/* A process rarely holds more than a few dozen communicators; 64 chains keep lookups short. */
#define REGISTRY_BUCKETS 64

static struct nvlar_comm *buckets[REGISTRY_BUCKETS];
static size_t entry_count;
static pthread_rwlock_t registry_lock = PTHREAD_RWLOCK_INITIALIZER;

static size_t bucket_of(ncclComm_t comm) {
  uintptr_t key = (uintptr_t)comm;
  /* Allocations are aligned, so the low bits carry nothing; fold the rest. */
  key ^= key >> 17;
  key *= 0x9E3779B97F4A7C15ull;
  return (size_t)(key >> 58) % REGISTRY_BUCKETS;
}

const char *nvlar_comm_origin_name(enum nvlar_comm_origin origin) {
  switch (origin) {
    case NVLAR_ORIGIN_INIT_RANK: return "ncclCommInitRank";
    case NVLAR_ORIGIN_INIT_RANK_CONFIG: return "ncclCommInitRankConfig";
    case NVLAR_ORIGIN_INIT_ALL: return "ncclCommInitAll";
    case NVLAR_ORIGIN_INIT_RANK_SCALABLE: return "ncclCommInitRankScalable";
    case NVLAR_ORIGIN_SPLIT: return "ncclCommSplit";
    case NVLAR_ORIGIN_SHRINK: return "ncclCommShrink";
  }
  return "unknown";
}

const char *nvlar_comm_state_name(enum nvlar_comm_state state) {
  switch (state) {
    case NVLAR_COMM_SETTING_UP: return "setting up";
    case NVLAR_COMM_RUNNING: return "running";
    case NVLAR_COMM_FAILED: return "failed";
    case NVLAR_COMM_REVOKED: return "revoked";
    case NVLAR_COMM_FINALIZED: return "finalized";
  }
  return "unknown";
}

/* Caller holds the lock (either kind). */
static struct nvlar_comm *find_locked(ncclComm_t comm) {
  struct nvlar_comm *entry = buckets[bucket_of(comm)];
  while (entry != NULL && entry->comm != comm) entry = entry->next;
  return entry;
}

/* Caller holds the write lock. */
static struct nvlar_comm *unlink_entry(ncclComm_t comm) {
  struct nvlar_comm **link = &buckets[bucket_of(comm)];
  for (; *link != NULL; link = &(*link)->next) {
    if ((*link)->comm == comm) {
      struct nvlar_comm *entry = *link;
      *link = entry->next;
      entry->next = NULL;
      entry_count--;
      return entry;
    }
  }
  return NULL;
}

bool nvlar_registry_add(ncclComm_t comm, enum nvlar_comm_origin origin, bool nonblocking,
                        struct nvlar_cta_limits ctas) {
  struct nvlar_comm *entry = calloc(1, sizeof(*entry));
  if (entry == NULL) return false;
  entry->comm = comm;
  entry->origin = origin;
  entry->nonblocking = nonblocking;
  entry->ctas = ctas;
  entry->single_rank_device = -1;
  atomic_init(&entry->state, NVLAR_COMM_SETTING_UP);
  atomic_init(&entry->error, ncclSuccess);
  atomic_init(&entry->route, NULL);
  atomic_init(&entry->leftover, NULL);
  atomic_init(&entry->refs, 1); /* the registry's */
  pthread_mutex_init(&entry->nccl_lock, NULL);
  size_t bucket = bucket_of(comm);
  pthread_rwlock_wrlock(&registry_lock);
  struct nvlar_comm *stale = unlink_entry(comm);
  entry->next = buckets[bucket];
  buckets[bucket] = entry;
  entry_count++;
  pthread_rwlock_unlock(&registry_lock);
  nvlar_comm_put(stale);
  return true;
}

struct nvlar_comm *nvlar_registry_get(ncclComm_t comm) {
  pthread_rwlock_rdlock(&registry_lock);
  struct nvlar_comm *entry = find_locked(comm);
  /* Taken under the lock: the registry's own reference keeps the entry alive until then. */
  if (entry != NULL) atomic_fetch_add_explicit(&entry->refs, 1, memory_order_relaxed);
  pthread_rwlock_unlock(&registry_lock);
  return entry;
}

struct nvlar_comm *nvlar_registry_take(ncclComm_t comm) {
  pthread_rwlock_wrlock(&registry_lock);
  struct nvlar_comm *entry = unlink_entry(comm);
  pthread_rwlock_unlock(&registry_lock);
  return entry;
}

void nvlar_comm_put(struct nvlar_comm *entry) {
  if (entry == NULL) return;
  /* acq_rel: every holder's use of the entry happens before it is freed. */
  if (atomic_fetch_sub_explicit(&entry->refs, 1, memory_order_acq_rel) != 1) return;
  nvlar_route_put(atomic_load(&entry->route));
  pthread_mutex_destroy(&entry->nccl_lock);
  free(entry);
}

struct nvlar_route *nvlar_comm_route(struct nvlar_comm *entry) {
  struct nvlar_route *route = atomic_load_explicit(&entry->route, memory_order_acquire);
  if (route != NULL) nvlar_route_get(route);
  return route;
}

size_t nvlar_registry_count(void) {
  pthread_rwlock_rdlock(&registry_lock);
  size_t count = entry_count;
  pthread_rwlock_unlock(&registry_lock);
  return count;
}

void nvlar_registry_clear(void) {
  pthread_rwlock_wrlock(&registry_lock);
  struct nvlar_comm *dropped = NULL;
  for (size_t i = 0; i < REGISTRY_BUCKETS; i++) {
    while (buckets[i] != NULL) {
      struct nvlar_comm *entry = buckets[i];
      buckets[i] = entry->next;
      entry->next = dropped;
      dropped = entry;
    }
  }
  entry_count = 0;
  pthread_rwlock_unlock(&registry_lock);
  while (dropped != NULL) {
    struct nvlar_comm *entry = dropped;
    dropped = entry->next;
    nvlar_comm_put(entry);
  }
}
