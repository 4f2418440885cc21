#include "comm_registry.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

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
      entry_count--;
      return entry;
    }
  }
  return NULL;
}

bool nvlar_registry_add(ncclComm_t comm, enum nvlar_comm_origin origin) {
  struct nvlar_comm *entry = calloc(1, sizeof(*entry));
  if (entry == NULL) return false;
  entry->comm = comm;
  entry->origin = origin;
  entry->state = NVLAR_COMM_ACTIVE;
  size_t bucket = bucket_of(comm);
  pthread_rwlock_wrlock(&registry_lock);
  struct nvlar_comm *stale = unlink_entry(comm);
  entry->next = buckets[bucket];
  buckets[bucket] = entry;
  entry_count++;
  pthread_rwlock_unlock(&registry_lock);
  free(stale);
  return true;
}

bool nvlar_registry_remove(ncclComm_t comm, struct nvlar_route **route,
                           struct nvlar_route **leftover) {
  pthread_rwlock_wrlock(&registry_lock);
  struct nvlar_comm *entry = unlink_entry(comm);
  pthread_rwlock_unlock(&registry_lock);
  if (route != NULL) *route = entry != NULL ? entry->route : NULL;
  if (leftover != NULL) *leftover = entry != NULL ? entry->leftover : NULL;
  free(entry);
  return entry != NULL;
}

struct nvlar_comm *nvlar_registry_find(ncclComm_t comm) {
  pthread_rwlock_rdlock(&registry_lock);
  struct nvlar_comm *entry = find_locked(comm);
  pthread_rwlock_unlock(&registry_lock);
  return entry;
}

/* Every setter: the entry of `comm` under the write lock, changed, then the lock released. */
static struct nvlar_comm *lock_entry_for_update(ncclComm_t comm) {
  pthread_rwlock_wrlock(&registry_lock);
  return find_locked(comm);
}

static bool unlock_after_update(const struct nvlar_comm *entry) {
  pthread_rwlock_unlock(&registry_lock);
  return entry != NULL;
}

bool nvlar_registry_set_state(ncclComm_t comm, enum nvlar_comm_state state) {
  struct nvlar_comm *entry = lock_entry_for_update(comm);
  if (entry != NULL) entry->state = state;
  return unlock_after_update(entry);
}

bool nvlar_registry_set_nonblocking(ncclComm_t comm, bool nonblocking) {
  struct nvlar_comm *entry = lock_entry_for_update(comm);
  if (entry != NULL) entry->nonblocking = nonblocking;
  return unlock_after_update(entry);
}

bool nvlar_registry_set_async_pending(ncclComm_t comm) {
  struct nvlar_comm *entry = lock_entry_for_update(comm);
  if (entry != NULL) atomic_store(&entry->async_setup, NVLAR_ASYNC_SETUP_PENDING);
  return unlock_after_update(entry);
}

bool nvlar_registry_set_leftover(ncclComm_t comm, struct nvlar_route *route) {
  struct nvlar_comm *entry = lock_entry_for_update(comm);
  if (entry != NULL) entry->leftover = route;
  return unlock_after_update(entry);
}

bool nvlar_registry_attach_route(ncclComm_t comm, struct nvlar_route *route) {
  struct nvlar_comm *entry = lock_entry_for_update(comm);
  if (entry != NULL) entry->route = route;
  return unlock_after_update(entry);
}

size_t nvlar_registry_count(void) {
  pthread_rwlock_rdlock(&registry_lock);
  size_t count = entry_count;
  pthread_rwlock_unlock(&registry_lock);
  return count;
}

void nvlar_registry_clear(void) {
  pthread_rwlock_wrlock(&registry_lock);
  for (size_t i = 0; i < REGISTRY_BUCKETS; i++) {
    while (buckets[i] != NULL) {
      struct nvlar_comm *entry = buckets[i];
      buckets[i] = entry->next;
      free(entry);
    }
  }
  entry_count = 0;
  pthread_rwlock_unlock(&registry_lock);
}
