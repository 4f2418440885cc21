#include "setup.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm_registry.h"
#include "log.h"
#include "params.h"
#include "topology.h"

#define WHY_SIZE 192

/* One communicator's way through setup. */
struct setup_state {
  ncclComm_t comm;
  bool nonblocking;  /* NCCL calls on it return before they are launched */
  atomic_int *cancel; /* non-zero: stop waiting and give up (abort during setup); may be NULL */
  int rank, nranks, device;
  bool active;       /* still taking part in the collective steps */
  bool mapping;      /* every rank went on to map its peers (decided from gathered records) */
  bool warn;         /* the reason is a failure (WARN), not a property of the job (INFO) */
  char why[WHY_SIZE];
  cudaStream_t stream;
  void *gather;      /* device buffer for the gathered records */
  struct nvlar_rank_info *infos;   /* pinned host memory: copies from and to it never block */
  struct nvlar_rank_links *links;  /* pinned */
  uint64_t *seen;                  /* pinned: the probe words read back */
  struct nvlar_route *route;
};

static double now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Waits until the work on `stream` is done: for a non-blocking communicator first
 * until NCCL has launched it (its state leaves ncclInProgress), then until the stream is idle.
 * Never blocks inside CUDA or NCCL, gives up after NVLAR_TIMEOUT_MS (a peer that never joins
 * the setup) or when cancelled (an abort), so setup can neither hang nor outlive an abort. */
static bool wait_for(const struct nvlar_real_nccl *nccl, ncclComm_t comm, bool nonblocking,
                     atomic_int *cancel, cudaStream_t stream) {
  double deadline = now_seconds() + nvlar_param_number(NVLAR_P_TIMEOUT_MS) * 1e-3;
  bool launched = !nonblocking;
  for (;;) {
    if (cancel != NULL && atomic_load(cancel)) return false;
    if (!launched) {
      ncclResult_t state = ncclInProgress;
      if (nccl->ncclCommGetAsyncError(comm, &state) != ncclSuccess ||
          (state != ncclSuccess && state != ncclInProgress)) {
        return false;
      }
      launched = state == ncclSuccess;
    } else {
      cudaError_t error = cudaStreamQuery(stream);
      if (error == cudaSuccess) return true;
      if (error != cudaErrorNotReady) return false;
    }
    if (now_seconds() > deadline) return false;
    usleep(50);
  }
}

/* A group of collective calls was issued: a non-blocking communicator's ncclGroupEnd says
 * ncclInProgress (NCCL launches on a thread of its own; wait_for waits for it). */
static bool group_issued(ncclResult_t group_end, bool nonblocking) {
  return group_end == ncclSuccess || (nonblocking && group_end == ncclInProgress);
}

static bool wait_for_stream(const struct nvlar_real_nccl *nccl, struct setup_state *s) {
  return wait_for(nccl, s->comm, s->nonblocking, s->cancel, s->stream);
}

bool nvlar_config_nonblocking(const ncclConfig_t *config) {
  if (config != NULL && config->blocking != NCCL_CONFIG_UNDEF_INT) return config->blocking == 0;
  const char *env = getenv("NCCL_COMM_BLOCKING");
  return env != NULL && env[0] == '0' && env[1] == '\0';
}

static void stay_on_nccl(struct setup_state *s, bool warn, const char *fmt, const char *detail) {
  if (s->why[0] == '\0') {
    snprintf(s->why, sizeof(s->why), fmt, detail);
    s->warn = warn;
  }
  s->active = false;
}

/* Frees a route and what it owns; any part may be missing (a setup that stopped midway). */
static void free_route(struct nvlar_route *route) {
  if (route->own.shared_base != NULL) nvlar_buffers_destroy(&route->own);
  if (route->abort_host != NULL) cudaFreeHost(route->abort_host);
  free(route);
}

static void free_local(struct setup_state *s) {
  if (s->route != NULL) {
    free_route(s->route);
    s->route = NULL;
  }
}

/* Local facts, this rank's buffers, and its record in the gather buffer. */
static void prepare(const struct nvlar_real_nccl *nccl, struct setup_state *s) {
  if (nccl->ncclCommCount(s->comm, &s->nranks) != ncclSuccess ||
      nccl->ncclCommUserRank(s->comm, &s->rank) != ncclSuccess ||
      nccl->ncclCommCuDevice(s->comm, &s->device) != ncclSuccess) {
    /* Every rank asks NCCL the same questions of a communicator NCCL just made. */
    stay_on_nccl(s, true, "%s", "NCCL could not describe the communicator");
    return;
  }
  if (s->nranks < 2 || s->nranks > NVLAR_MAX_RANKS) {
    /* Every rank knows the rank count: no collective step is needed to agree. */
    char count[32];
    snprintf(count, sizeof(count), "%d", s->nranks);
    stay_on_nccl(s, false, "%s ranks (nvlar runs 2 to 8)", count);
    return;
  }
  s->active = true;
  cudaSetDevice(s->device);
  s->route = calloc(1, sizeof(*s->route));
  if (s->route != NULL) {
    s->route->device = s->device;
    for (int p = 0; p < NVLAR_MAX_RANKS; p++) s->route->peer_device[p] = -1;
  }
  size_t gather_bytes = (size_t)s->nranks * sizeof(struct nvlar_rank_info);
  if (s->route == NULL ||
      cudaHostAlloc((void **)&s->infos, gather_bytes, cudaHostAllocDefault) != cudaSuccess ||
      cudaHostAlloc((void **)&s->links, (size_t)s->nranks * sizeof(*s->links), cudaHostAllocDefault) != cudaSuccess ||
      cudaHostAlloc((void **)&s->seen, NVLAR_MAX_RANKS * sizeof(uint64_t), cudaHostAllocDefault) != cudaSuccess ||
      cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking) != cudaSuccess ||
      cudaMalloc(&s->gather, gather_bytes) != cudaSuccess) {
    /* Without a stream and a buffer this rank cannot join the gather; its peers will wait in
     * NCCL's all-gather, as they would for any rank that fails inside a collective. */
    stay_on_nccl(s, true, "%s", "out of memory for setup");
    NVLAR_WARN("comm %p: out of memory for setup; peers may wait for this rank", (void *)s->comm);
    return;
  }
  struct nvlar_rank_info *me = &s->infos[s->rank];
  memset(me, 0, sizeof(*me));
  int algo = (int)nvlar_param_number(NVLAR_P_ALGO);
  me->wants_nvlar = algo != NVLAR_FORCE_NCCL; /* NVLAR_DISABLE=1 skips setup altogether */
  me->forced_algo = algo;
  me->forced_ctas = (int32_t)nvlar_param_number(NVLAR_P_CTAS);
  me->allow_pcie = (uint32_t)nvlar_param_number(NVLAR_P_ALLOW_PCIE);
  me->max_bytes = (uint64_t)nvlar_param_number(NVLAR_P_MAX_BYTES);
  me->buffers.staging_bytes = (uint64_t)nvlar_param_number(NVLAR_P_BUFFER_BYTES);
  me->table_hash = nvlar_tuning_table()->hash;
  if (nvlar_describe_rank(s->device, me) && me->wants_nvlar) {
    struct nvlar_local_buffers *own = &s->route->own;
    /* Kernels load now, not at their first launch (nvlar_kernels.h says why). */
    cudaError_t error = nvlar_kernels_load();
    if (error == cudaSuccess) error = nvlar_buffers_create(own, (size_t)me->buffers.staging_bytes);
    if (error == cudaSuccess) error = nvlar_buffers_export(own, &me->buffers);
    if (error == cudaSuccess) {
      error = cudaHostAlloc((void **)&s->route->abort_host, sizeof(uint32_t), cudaHostAllocMapped);
    }
    if (error == cudaSuccess) {
      me->ready = 1;
      me->local_pointer = (uint64_t)(uintptr_t)own->shared_base;
    } else {
      snprintf(me->why, sizeof(me->why), "buffers: %s", cudaGetErrorString(error));
      cudaGetLastError();
    }
  }
  cudaMemcpyAsync((char *)s->gather + (size_t)s->rank * sizeof(*me), me, sizeof(*me),
                  cudaMemcpyHostToDevice, s->stream);
}

/* Every active communicator's records, all-gathered in one NCCL group, into `into`. */
static void gather(const struct nvlar_real_nccl *nccl, struct setup_state *states, int count,
                   size_t record_size, bool links) {
  nccl->ncclGroupStart();
  for (int i = 0; i < count; i++) {
    struct setup_state *s = &states[i];
    if (!s->active) continue;
    cudaSetDevice(s->device);
    char *slot = (char *)s->gather + (size_t)s->rank * record_size;
    if (nccl->ncclAllGather(slot, s->gather, record_size, ncclUint8, s->comm, s->stream) != ncclSuccess) {
      stay_on_nccl(s, true, "%s", "the setup all-gather failed in NCCL");
    }
  }
  /* The communicators of one batch are all blocking or all non-blocking (one, then). */
  if (!group_issued(nccl->ncclGroupEnd(), states[0].nonblocking)) {
    for (int i = 0; i < count; i++) {
      if (states[i].active) stay_on_nccl(&states[i], true, "%s", "the setup all-gather failed in NCCL");
    }
    return;
  }
  for (int i = 0; i < count; i++) {
    struct setup_state *s = &states[i];
    if (!s->active) continue;
    cudaSetDevice(s->device);
    void *into = links ? (void *)s->links : (void *)s->infos;
    if (!wait_for_stream(nccl, s) ||
        cudaMemcpyAsync(into, s->gather, (size_t)s->nranks * record_size, cudaMemcpyDeviceToHost,
                        s->stream) != cudaSuccess ||
        !wait_for_stream(nccl, s)) {
      stay_on_nccl(s, true, "%s", "the setup all-gather did not complete (a rank missing, "
                                  "an abort, or NVLAR_TIMEOUT_MS)");
    }
  }
}

/* Maps every peer's buffers and proves each mapping with a write and a read. */
static void map_and_probe(const struct nvlar_real_nccl *nccl, struct setup_state *s) {
  struct nvlar_route *route = s->route;
  struct nvlar_rank_info *me = &s->infos[s->rank];
  struct nvlar_rank_links *mine = &s->links[s->rank];
  cudaSetDevice(s->device);
  mine->mapped = 1;
  for (int p = 0; p < NVLAR_MAX_RANKS; p++) route->peer_device[p] = -1;
  for (int p = 0; p < s->nranks && mine->mapped; p++) {
    if (p == s->rank) {
      nvlar_buffers_view(&route->own, &route->peers[p]);
      mine->link[p] = NVLAR_LINK_SELF;
      continue;
    }
    const struct nvlar_rank_info *peer = &s->infos[p];
    int peer_device = -1;
    cudaError_t error;
    if (nvlar_same_process(me, peer)) {
      peer_device = peer->cuda_device;
      route->peer_device[p] = peer_device;
      error = cudaDeviceEnablePeerAccess(peer_device, 0);
      if (error == cudaErrorPeerAccessAlreadyEnabled) error = cudaSuccess;
      if (error == cudaSuccess) nvlar_buffers_view_pointer((void *)(uintptr_t)peer->local_pointer, &route->peers[p]);
    } else {
      if (cudaDeviceGetByPCIBusId(&peer_device, peer->bus_id) != cudaSuccess) peer_device = -1;
      error = nvlar_buffers_open(&peer->buffers, &route->peers[p]);
    }
    cudaGetLastError(); /* a failure here is reported below, not left to the next CUDA call */
    if (error != cudaSuccess) {
      snprintf(mine->why, sizeof(mine->why), "mapping rank %d: %s", p, cudaGetErrorString(error));
      mine->mapped = 0;
      break;
    }
    mine->link[p] = (uint8_t)nvlar_link_to(s->device, me->bus_id, peer_device, peer->bus_id);
  }
  if (!mine->mapped) return;
  /* Each rank writes a pattern of its own into its word of every peer's probe page and reads
   * it back through the same mapping. */
  uint64_t expected[NVLAR_MAX_RANKS];
  uint64_t *seen = s->seen;
  cudaError_t error = cudaSuccess;
  for (int p = 0; p < s->nranks && error == cudaSuccess; p++) {
    expected[p] = 0x9e3779b97f4a7c15ull ^ ((uint64_t)(s->rank + 1) << 40) ^ ((uint64_t)(p + 1) << 8) ^
                  me->host_hash;
    if (p == s->rank) continue;
    error = nvlar_probe_launch(&route->peers[p].probe[NVLAR_PROBE_FROM_PEER + s->rank], expected[p],
                               &route->own.probe[NVLAR_PROBE_READBACK + p], s->stream);
  }
  if (error == cudaSuccess) {
    error = cudaMemcpyAsync(seen, &route->own.probe[NVLAR_PROBE_READBACK],
                            NVLAR_MAX_RANKS * sizeof(uint64_t), cudaMemcpyDeviceToHost, s->stream);
  }
  if (error == cudaSuccess && !wait_for_stream(nccl, s)) error = cudaErrorLaunchTimeout;
  if (error != cudaSuccess) {
    snprintf(mine->why, sizeof(mine->why), "probe: %s", cudaGetErrorString(error));
    mine->mapped = 0;
    cudaGetLastError();
    return;
  }
  for (int p = 0; p < s->nranks; p++) mine->probe_ok[p] = p == s->rank || seen[p] == expected[p];
}

static void close_peers(struct nvlar_route *route, int nranks) {
  for (int p = 0; p < nranks; p++) {
    if (route->peers[p].shared_base != NULL) nvlar_buffers_close(&route->peers[p]);
  }
}

static void build_route(struct setup_state *s) {
  struct nvlar_route *route = s->route;
  const struct nvlar_rank_info *first = &s->infos[0];
  route->comm = s->comm;
  route->device = s->device;
  route->policy.nranks = s->nranks;
  route->policy.arch = first->cc_major * 10 + first->cc_minor;
  route->policy.table = nvlar_tuning_table();
  route->policy.forced = first->forced_algo;
  route->policy.ctas = first->forced_ctas;
  route->policy.max_bytes = first->max_bytes;
  route->policy.max_blocks = NVLAR_MAX_BLOCKS;
  for (int r = 0; r < s->nranks; r++) {
    if (s->infos[r].multiprocessors < route->policy.max_blocks) {
      route->policy.max_blocks = s->infos[r].multiprocessors;
    }
  }
  const struct nvlar_rank_info *me = &s->infos[s->rank];
  for (int r = 0; r < s->nranks; r++) {
    route->peer_pid[r] = s->infos[r].pid;
    route->peer_pid_visible[r] = s->infos[r].host_hash == me->host_hash &&
                                 s->infos[r].pid_namespace == me->pid_namespace &&
                                 me->pid_namespace != 0;
  }
  *route->abort_host = 0;
  uint32_t *abort_device = NULL;
  cudaHostGetDevicePointer((void **)&abort_device, route->abort_host, 0);
  nvlar_buffers_fill_args(&route->own, route->peers, s->rank, s->nranks, &route->args);
  route->args.timeout_ns = (uint64_t)nvlar_param_number(NVLAR_P_TIMEOUT_MS) * 1000000ull;
  route->args.abort = abort_device;
  /* A rank's own choice (results do not depend on it): sm_90 and up have programmatic
   * dependent launch. */
  route->args.pdl = nvlar_param_number(NVLAR_P_PDL) != 0 && route->policy.arch >= 90;
}

/* A barrier on every communicator that went on to map its peers and then stayed on NCCL, as
 * one NCCL group: after it no rank still maps a peer that is about to free its buffers. Which
 * communicators take part follows from gathered records only, so all ranks agree. */
static void barrier(const struct nvlar_real_nccl *nccl, struct setup_state *states, int count) {
  nccl->ncclGroupStart();
  for (int i = 0; i < count; i++) {
    struct setup_state *s = &states[i];
    if (!s->mapping) continue;
    cudaSetDevice(s->device);
    nccl->ncclAllReduce(s->gather, s->gather, 1, ncclInt32, ncclSum, s->comm, s->stream);
  }
  nccl->ncclGroupEnd();
  for (int i = 0; i < count; i++) {
    if (!states[i].mapping) continue;
    cudaSetDevice(states[i].device);
    wait_for_stream(nccl, &states[i]);
  }
}

static void setup_batch(const struct nvlar_real_nccl *nccl, const ncclComm_t *comms, int count,
                        bool nonblocking, atomic_int *cancel) {
  if (count <= 0) return;
  struct setup_state *states = calloc((size_t)count, sizeof(*states));
  if (states == NULL) {
    NVLAR_WARN("out of memory for setup: %d communicators stay on NCCL", count);
    return;
  }
  int saved_device = 0;
  cudaGetDevice(&saved_device);
  for (int i = 0; i < count; i++) {
    states[i].comm = comms[i];
    states[i].nonblocking = nonblocking;
    states[i].cancel = cancel;
    prepare(nccl, &states[i]);
  }
  gather(nccl, states, count, sizeof(struct nvlar_rank_info), false);
  for (int i = 0; i < count; i++) {
    struct setup_state *s = &states[i];
    if (!s->active) continue;
    char why[WHY_SIZE];
    if (!nvlar_eligible_to_map(s->nranks, s->infos, why, sizeof(why))) {
      stay_on_nccl(s, false, "%s", why);
      continue;
    }
    s->mapping = true;
    map_and_probe(nccl, s);
    cudaSetDevice(s->device);
    cudaMemcpyAsync((char *)s->gather + (size_t)s->rank * sizeof(struct nvlar_rank_links),
                    &s->links[s->rank], sizeof(struct nvlar_rank_links), cudaMemcpyHostToDevice,
                    s->stream);
  }
  gather(nccl, states, count, sizeof(struct nvlar_rank_links), true);
  for (int i = 0; i < count; i++) {
    struct setup_state *s = &states[i];
    char why[WHY_SIZE];
    if (s->active && !nvlar_eligible(s->nranks, s->infos, s->links, why, sizeof(why))) {
      stay_on_nccl(s, true, "%s", why);
    }
    if (s->active) {
      cudaSetDevice(s->device);
      build_route(s);
      if (nvlar_registry_attach_route(s->comm, s->route)) {
        NVLAR_INFO("comm %p rank %d/%d on GPU %d: all-reduces run on nvlar (table %s, "
                   "NVLAR_ALGO=%s, staging %zu MiB)",
                   (void *)s->comm, s->rank, s->nranks, s->device,
                   s->route->policy.table->source, nvlar_param_text(NVLAR_P_ALGO),
                   s->route->own.staging_bytes >> 20);
        s->route = NULL; /* owned by the registry now */
        s->mapping = false; /* keeps its mappings: no barrier */
      } else {
        stay_on_nccl(s, true, "%s", "it left the registry during setup");
      }
    }
    if (s->why[0] != '\0') {
      if (s->warn) NVLAR_WARN("comm %p: all-reduces stay on NCCL: %s", (void *)s->comm, s->why);
      else NVLAR_INFO("comm %p: all-reduces stay on NCCL: %s", (void *)s->comm, s->why);
    }
    if (s->route != NULL) {
      cudaSetDevice(s->device);
      close_peers(s->route, s->nranks);
    }
  }
  barrier(nccl, states, count);
  for (int i = 0; i < count; i++) {
    struct setup_state *s = &states[i];
    if (s->device >= 0) cudaSetDevice(s->device);
    if (cancel != NULL && atomic_load(cancel) && s->route != NULL) {
      /* Aborted mid-setup: freeing now would wait for the device, where NCCL's all-gather may
       * wait for a peer forever. The abort releases the buffers after NCCL stopped its
       * kernels; the small setup scratch (stream, gather buffer, pinned records) is left to
       * the process's end for the same reason. */
      close_peers(s->route, s->nranks);
      nvlar_registry_set_leftover(s->comm, s->route);
      s->route = NULL;
      continue;
    }
    free_local(s);
    if (s->stream != NULL) cudaStreamDestroy(s->stream);
    if (s->gather != NULL) cudaFree(s->gather);
    cudaFreeHost(s->infos);
    cudaFreeHost(s->links);
    cudaFreeHost(s->seen);
  }
  cudaSetDevice(saved_device);
  free(states);
}

void nvlar_setup(const struct nvlar_real_nccl *nccl, const ncclComm_t *comms, int count) {
  setup_batch(nccl, comms, count, false, NULL);
}

void nvlar_setup_nonblocking(const struct nvlar_real_nccl *nccl, ncclComm_t comm,
                             atomic_int *cancel) {
  setup_batch(nccl, &comm, 1, true, cancel);
}

/* The ranks of the route that live in other processes: the ones a departure concerns (peers
 * in this process are this process's own devices, synchronised directly). */
static bool in_other_process(const struct nvlar_route *route, int p) {
  return p != route->args.rank && route->peer_device[p] < 0;
}

/* Waits (bounded, polling) until the work on `stream` is done. */
static bool stream_done(cudaStream_t stream, double deadline) {
  for (;;) {
    cudaError_t error = cudaStreamQuery(stream);
    if (error == cudaSuccess) return true;
    if (error != cudaErrorNotReady || now_seconds() > deadline) return false;
    usleep(20);
  }
}

/* Tells every peer in another process that this rank has left: its departure word in each
 * peer's probe page, written through this rank's mapping (with a system-wide fence, then read
 * back). Called once this rank's kernels are over. */
static bool announce_departure(struct nvlar_route *route, cudaStream_t stream, double deadline) {
  cudaError_t error = cudaSuccess;
  for (int p = 0; p < route->args.nranks && error == cudaSuccess; p++) {
    if (!in_other_process(route, p) || route->peers[p].probe == NULL) continue;
    error = nvlar_probe_launch(&route->peers[p].probe[NVLAR_PROBE_DEPARTED + route->args.rank],
                               NVLAR_DEPARTED_MARK,
                               &route->own.probe[NVLAR_PROBE_DEPARTED_READBACK + p], stream);
  }
  return error == cudaSuccess && stream_done(stream, deadline);
}

/* Whether rank p's process has ended (only answerable for a process on this host, in this
 * pid namespace). */
static bool process_gone(const struct nvlar_route *route, int p) {
  return route->peer_pid_visible[p] && kill(route->peer_pid[p], 0) != 0 && errno == ESRCH;
}

/* Waits until every peer in another process has left (its departure word in this rank's probe
 * page) or its process has ended, until `deadline`. Returns the number of peers that did not
 * come, and writes their ranks into `missing`. */
static int wait_for_departures(struct nvlar_route *route, cudaStream_t stream, uint64_t *words,
                               double deadline, char *missing, size_t missing_size) {
  const int nranks = route->args.nranks;
  bool left[NVLAR_MAX_RANKS] = {false};
  for (;;) {
    int waiting = 0;
    bool read = cudaMemcpyAsync(words, &route->own.probe[NVLAR_PROBE_DEPARTED],
                                NVLAR_MAX_RANKS * sizeof(uint64_t), cudaMemcpyDeviceToHost,
                                stream) == cudaSuccess &&
                stream_done(stream, deadline);
    for (int p = 0; p < nranks; p++) {
      if (!in_other_process(route, p) || left[p]) continue;
      left[p] = (read && words[p] == NVLAR_DEPARTED_MARK) || process_gone(route, p);
      waiting += !left[p];
    }
    if (waiting == 0) return 0;
    if (now_seconds() > deadline) {
      size_t used = 0;
      missing[0] = '\0';
      for (int p = 0; p < nranks && used < missing_size; p++) {
        if (!in_other_process(route, p) || left[p]) continue;
        int n = snprintf(missing + used, missing_size - used, "%s%d", used ? ", " : "", p);
        if (n > 0) used += (size_t)n;
      }
      return waiting;
    }
    usleep(200);
  }
}

void nvlar_route_release(struct nvlar_route *route, bool aborting) {
  int saved_device = 0;
  cudaGetDevice(&saved_device);
  cudaSetDevice(route->device);
  int nranks = route->args.nranks;
  unsigned long long on[NVLAR_PATH_NCCL], on_nvlar = 0;
  for (int algo = 0; algo < NVLAR_PATH_NCCL; algo++) {
    on[algo] = atomic_load(&route->calls[algo]);
    on_nvlar += on[algo];
  }
  unsigned long long on_nccl = atomic_load(&route->calls[NVLAR_PATH_NCCL]);
  if (route->comm != NULL) { /* NULL: the leftover of a setup cancelled before its route */
    char per_algo[NVLAR_ALGO_COUNT * 48]; /* "name count, ": a name and 20 digits fit */
    size_t used = 0;
    per_algo[0] = '\0';
    for (int algo = 0; algo < NVLAR_ALGO_COUNT && used < sizeof(per_algo); algo++) {
      int n = snprintf(per_algo + used, sizeof(per_algo) - used, "%s%s %llu", used ? ", " : "",
                       nvlar_algo_name(algo), on[algo]);
      if (n > 0) used += (size_t)n;
    }
    NVLAR_INFO("comm %p rank %d/%d %s: %llu all-reduces on nvlar (%s), %llu on NCCL",
               (void *)route->comm, route->args.rank, nranks, aborting ? "aborted" : "destroyed",
               on_nvlar, per_algo, on_nccl);
  }
  /* 1. No nvlar kernel of this rank still runs, nor (peers whose devices this process drives)
   * of theirs. After an abort, waiting kernels give up within about a millisecond of the abort
   * word. No NCCL call here: after ncclCommFinalize NCCL still accepts collectives but runs
   * them on a communicator whose proxy has stopped, and one issued here once faulted on the
   * GPU (an illegal address that broke the process's next CUDA call). */
  cudaDeviceSynchronize();
  for (int p = 0; p < nranks; p++) {
    if (route->peer_device[p] >= 0 && route->peer_device[p] != route->device) {
      cudaSetDevice(route->peer_device[p]);
      cudaDeviceSynchronize();
      cudaSetDevice(route->device);
    }
  }
  /* 2. Tell the peers in other processes, then (destroy) wait until each has left too: only
   * then does no kernel anywhere read or write this rank's buffers (a peer's last reads of
   * this rank's staging end after this rank's own kernel did). An abort does not wait: it is
   * the way out when peers are gone or stuck. */
  bool can_free = true;
  cudaStream_t stream = NULL;
  uint64_t *words = NULL;
  double deadline = now_seconds() + nvlar_param_number(NVLAR_P_DESTROY_TIMEOUT_MS) * 1e-3;
  if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess ||
      cudaHostAlloc((void **)&words, NVLAR_MAX_RANKS * sizeof(uint64_t), cudaHostAllocDefault) != cudaSuccess ||
      !announce_departure(route, stream, deadline)) {
    NVLAR_WARN("comm %p rank %d: could not tell the other ranks that it left (%s)",
               (void *)route->comm, route->args.rank, cudaGetErrorString(cudaGetLastError()));
    can_free = aborting;
  } else if (!aborting) {
    char missing[64];
    int absent = wait_for_departures(route, stream, words, deadline, missing, sizeof(missing));
    if (absent > 0) {
      NVLAR_WARN("comm %p rank %d: rank%s %s did not reach ncclCommDestroy (or abort, or exit) "
                 "within NVLAR_DESTROY_TIMEOUT_MS=%lld; nvlar's buffers of this communicator "
                 "stay allocated until the process ends",
                 (void *)route->comm, route->args.rank, absent > 1 ? "s" : "", missing,
                 (long long)nvlar_param_number(NVLAR_P_DESTROY_TIMEOUT_MS));
      can_free = false;
    }
  }
  if (stream != NULL && stream_done(stream, deadline)) cudaStreamDestroy(stream);
  if (words != NULL) cudaFreeHost(words);
  /* 3. Unmap the peers, then free this rank's buffers. */
  close_peers(route, NVLAR_MAX_RANKS);
  if (can_free) free_route(route);
  cudaGetLastError();
  cudaSetDevice(saved_device);
}

uint32_t nvlar_route_failure(struct nvlar_route *route) {
  const struct nvlar_error_record *error = route->own.error_host;
  uint32_t code = error->code;
  if (code != NVLAR_KERNEL_OK && atomic_exchange(&route->error_reported, 1) == 0) {
    NVLAR_WARN("comm %p rank %d: an nvlar kernel %s rank %d (its CTA %d, barrier %llu); the "
               "communicator reports ncclSystemError",
               (void *)route->comm, error->rank,
               code == NVLAR_KERNEL_ABORTED ? "was aborted while waiting for" : "timed out waiting for",
               error->peer, error->block, (unsigned long long)error->seq);
  }
  return code;
}
