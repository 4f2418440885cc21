#include "setup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm_registry.h"
#include "host_wait.h"
#include "log.h"
#include "params.h"
#include "topology.h"
#include "tuner_agreement.h"

#define WHY_SIZE 192

/* What a setup allocates for its own steps. The gather buffer is what NCCL's all-gathers write
 * into: while one of them may still be pending, none of this may be freed. */
struct nvlar_setup_leftover {
  int device;
  cudaStream_t stream;
  void *gather;       /* device memory, or mapped pinned host memory (gather_is_host) */
  bool gather_is_host;
  void *infos;        /* pinned host memory: copies from and to it never block */
  void *links;
  struct nvlar_route *route; /* buffers allocated, not attached */
};

/* One communicator's way through setup. */
struct setup_state {
  ncclComm_t comm;
  const struct nvlar_setup_control *control;
  int rank, nranks, device;
  bool joined;       /* takes part in the collective steps (NCCL has its calls) */
  bool mapping;      /* every rank went on to map its peers (decided from gathered records) */
  bool stuck;        /* a collective step did not complete: NCCL still holds it */
  bool warn;         /* the reason is a failure (WARN), not a property of the job (INFO) */
  char why[WHY_SIZE];
  struct nvlar_setup_leftover scratch;
  struct nvlar_cta_limits ctas;    /* NCCL's CTA limits of the communicator on this rank */
  struct nvlar_rank_info *infos;   /* = scratch.infos */
  struct nvlar_rank_links *links;  /* = scratch.links */
  struct nvlar_route *route;
};

/* ---- NCCL calls of a setup, under its control (setup.h) */

static bool nccl_begin(const struct setup_state *s) {
  const struct nvlar_setup_control *c = s->control;
  if (c->nccl_lock != NULL) pthread_mutex_lock(c->nccl_lock);
  if (c->cancel != NULL && atomic_load(c->cancel)) {
    if (c->nccl_lock != NULL) pthread_mutex_unlock(c->nccl_lock);
    return false;
  }
  return true;
}

static void nccl_end(const struct setup_state *s) {
  if (s->control->nccl_lock != NULL) pthread_mutex_unlock(s->control->nccl_lock);
}

static void stay_on_nccl(struct setup_state *s, bool warn, const char *fmt, const char *detail) {
  if (s->why[0] == '\0') {
    snprintf(s->why, sizeof(s->why), fmt, detail);
    s->warn = warn;
  }
  s->joined = false;
}

/* A collective step was issued and did not complete: NCCL still holds it, and may write into
 * the gather buffer whenever it completes. The communicator is failed; its scratch stays. */
static void stuck(struct setup_state *s, const char *what) {
  stay_on_nccl(s, true, "the setup %s did not complete (a rank missing, an abort, or "
                        "NVLAR_TIMEOUT_MS); the communicator reports ncclSystemError", what);
  s->stuck = true;
}

static bool cancelled(const struct setup_state *s) {
  return s->control->cancel != NULL && atomic_load(s->control->cancel);
}

/* The poll of the one host wait: a non-blocking communicator's work is first waited for until
 * NCCL has launched it (its state leaves ncclInProgress), then until the stream is idle. */
struct stream_poll {
  const struct nvlar_real_nccl *nccl;
  const struct setup_state *s;
  bool launched;
};

static enum nvlar_poll poll_stream(void *arg) {
  struct stream_poll *p = arg;
  if (!p->launched) {
    ncclResult_t state = ncclInProgress;
    if (!nccl_begin(p->s)) return NVLAR_POLL_FAILED;
    ncclResult_t result = p->nccl->ncclCommGetAsyncError(p->s->comm, &state);
    nccl_end(p->s);
    if (result != ncclSuccess || (state != ncclSuccess && state != ncclInProgress)) {
      return NVLAR_POLL_FAILED;
    }
    p->launched = state == ncclSuccess;
    return NVLAR_POLL_AGAIN;
  }
  cudaError_t error = cudaStreamQuery(p->s->scratch.stream);
  if (error == cudaSuccess) return NVLAR_POLL_DONE;
  if (error != cudaErrorNotReady) return NVLAR_POLL_FAILED;
  return NVLAR_POLL_AGAIN;
}

/* Waits until the work on this setup's stream is done; never blocks inside CUDA or NCCL,
 * gives up after NVLAR_TIMEOUT_MS (a peer that never joins) or when cancelled (an abort). */
static bool wait_for_stream(const struct nvlar_real_nccl *nccl, const struct setup_state *s) {
  struct stream_poll poll = {nccl, s, !s->control->nonblocking};
  double deadline = nvlar_deadline_after_ms(nvlar_param_number(NVLAR_P_TIMEOUT_MS));
  return nvlar_host_wait(poll_stream, &poll, deadline, s->control->cancel) == NVLAR_WAIT_DONE;
}

/* A group of collective calls was issued: a non-blocking communicator's ncclGroupEnd says
 * ncclInProgress (NCCL launches on a thread of its own; wait_for_stream waits for it). */
static bool group_issued(ncclResult_t group_end, bool nonblocking) {
  return group_end == ncclSuccess || (nonblocking && group_end == ncclInProgress);
}

/* ---- Scratch and buffers */

static void free_scratch(struct nvlar_setup_leftover *l) {
  if (l->device >= 0) cudaSetDevice(l->device);
  if (l->stream != NULL) cudaStreamDestroy(l->stream);
  if (l->gather != NULL) {
    if (l->gather_is_host) cudaFreeHost(l->gather);
    else cudaFree(l->gather);
  }
  if (l->infos != NULL) cudaFreeHost(l->infos);
  if (l->links != NULL) cudaFreeHost(l->links);
  if (l->route != NULL) {
    l->route->ops->free(l->route);
    l->route = NULL;
  }
  cudaGetLastError();
}

void nvlar_setup_leftover_free(void *leftover) {
  free_scratch(leftover);
  free(leftover);
}

/* The test switch NVLAR_TEST_SETUP_OOM: this rank's allocations fail as if memory ran out. */
static bool forced_out_of_memory(int what) {
  return nvlar_param_number(NVLAR_P_TEST_SETUP_OOM) == what;
}
enum { OOM_NONE = 0, OOM_BUFFERS = 1, OOM_SCRATCH = 2 };

/* The exchange buffer: device memory, else mapped pinned host memory, which NCCL's kernels
 * reach as well (a few hundred bytes per rank: slow does not matter, joining does). */
static bool allocate_gather(struct setup_state *s, size_t bytes) {
  if (forced_out_of_memory(OOM_SCRATCH)) return false;
  if (cudaMalloc(&s->scratch.gather, bytes) == cudaSuccess) return true;
  cudaGetLastError();
  s->scratch.gather = NULL;
  if (cudaHostAlloc(&s->scratch.gather, bytes, cudaHostAllocMapped) == cudaSuccess) {
    s->scratch.gather_is_host = true;
    return true;
  }
  cudaGetLastError();
  s->scratch.gather = NULL;
  return false;
}

/* This rank's buffers, abort word and release resources (all before any decision, so that a
 * failure here is a record the peers see, not a split decision later). */
static cudaError_t allocate_route(struct setup_state *s, struct nvlar_rank_info *me) {
  if (forced_out_of_memory(OOM_BUFFERS)) return cudaErrorMemoryAllocation;
  struct nvlar_route *route = s->route;
  /* Kernels load now, not at their first launch (nvlar_kernels.h says why). */
  cudaError_t error = nvlar_kernels_load();
  if (error == cudaSuccess) error = nvlar_buffers_create(&route->own, (size_t)me->buffers.staging_bytes);
  if (error == cudaSuccess) error = nvlar_buffers_export(&route->own, &me->buffers);
  if (error == cudaSuccess) {
    error = cudaHostAlloc((void **)&route->abort_host, sizeof(uint32_t), cudaHostAllocMapped);
  }
  if (error == cudaSuccess) {
    error = cudaHostAlloc((void **)&route->readback, (1 + NVLAR_MAX_RANKS) * sizeof(uint64_t),
                          cudaHostAllocDefault);
  }
  if (error == cudaSuccess) {
    error = cudaStreamCreateWithFlags(&route->release_stream, cudaStreamNonBlocking);
  }
  return error;
}

/* Local facts, this rank's buffers, and its record in the gather buffer. */
static void prepare(const struct nvlar_real_nccl *nccl, struct setup_state *s) {
  s->scratch.device = -1;
  s->device = -1;
  bool described = false;
  if (nccl_begin(s)) {
    described = nccl->ncclCommCount(s->comm, &s->nranks) == ncclSuccess &&
                nccl->ncclCommUserRank(s->comm, &s->rank) == ncclSuccess &&
                nccl->ncclCommCuDevice(s->comm, &s->device) == ncclSuccess;
    nccl_end(s);
  }
  if (!described) {
    /* Every rank asks NCCL the same questions of a communicator NCCL just made. */
    if (cancelled(s)) stay_on_nccl(s, false, "%s", "aborted during setup");
    else stay_on_nccl(s, true, "%s", "NCCL could not describe the communicator");
    return;
  }
  /* NCCL's CTA limits, as the communicator's creation recorded them (NCCL's defaults if it
   * was not recorded). */
  struct nvlar_comm *entry = nvlar_registry_get(s->comm);
  s->ctas = entry != NULL ? entry->ctas : nvlar_cta_limits(NULL, NULL, NULL, NULL);
  nvlar_comm_put(entry);
  if (s->nranks < 2) {
    /* Alone: no collective step, no buffers. An all-reduce of one rank is a copy, which
     * nvlar makes itself (allreduce.c). */
    NVLAR_INFO("comm %p: 1 rank: its all-reduces are copies, made by nvlar", (void *)s->comm);
    return;
  }
  s->scratch.device = s->device;
  cudaSetDevice(s->device);
  size_t info_bytes = (size_t)s->nranks * sizeof(struct nvlar_rank_info);
  size_t links_bytes = (size_t)s->nranks * sizeof(struct nvlar_rank_links);
  size_t gather_bytes = info_bytes > links_bytes ? info_bytes : links_bytes;
  if (forced_out_of_memory(OOM_SCRATCH) ||
      cudaHostAlloc(&s->scratch.infos, info_bytes, cudaHostAllocDefault) != cudaSuccess ||
      cudaHostAlloc(&s->scratch.links, links_bytes, cudaHostAllocDefault) != cudaSuccess ||
      cudaStreamCreateWithFlags(&s->scratch.stream, cudaStreamNonBlocking) != cudaSuccess ||
      !allocate_gather(s, gather_bytes)) {
    /* Without a stream and an exchange buffer this rank cannot join; its peers' exchange will
     * not complete, and theirs and this rank's communicator report a failure. */
    cudaGetLastError();
    stay_on_nccl(s, true, "%s", "out of memory for the setup exchange: this rank cannot join "
                                "it, so its peers' exchange will not complete; the communicator "
                                "reports ncclSystemError");
    s->stuck = true;
    return;
  }
  s->infos = s->scratch.infos;
  s->links = s->scratch.links;
  s->joined = true;
  struct nvlar_rank_info *me = &s->infos[s->rank];
  memset(me, 0, sizeof(*me));
  int algo = (int)nvlar_param_number(NVLAR_P_ALGO);
  const bool disabled = nvlar_param_number(NVLAR_P_DISABLE) != 0;
  me->wants_nvlar = algo != NVLAR_FORCE_NCCL && !disabled;
  if (!me->wants_nvlar) snprintf(me->why, sizeof(me->why), "%s", disabled ? "NVLAR_DISABLE=1" : "NVLAR_ALGO=nccl");
  me->forced_algo = algo;
  me->forced_ctas = (int32_t)nvlar_param_number(NVLAR_P_CTAS);
  me->allow_pcie = (uint32_t)nvlar_param_number(NVLAR_P_ALLOW_PCIE);
  me->max_bytes = (uint64_t)nvlar_param_number(NVLAR_P_MAX_BYTES);
  me->buffers.staging_bytes = (uint64_t)nvlar_param_number(NVLAR_P_BUFFER_BYTES);
  me->table_hash = nvlar_tuning_table()->hash;
  me->min_ctas = s->ctas.min_ctas;
  me->max_ctas = s->ctas.max_ctas;
  bool can_run = s->nranks <= NVLAR_MAX_RANKS && me->wants_nvlar;
  if (nvlar_describe_rank(s->device, me) && can_run) {
    s->route = nvlar_route_new(&nvlar_cuda_route_ops);
    cudaError_t error = s->route != NULL ? allocate_route(s, me) : cudaErrorMemoryAllocation;
    if (error == cudaSuccess) {
      s->route->device = s->device;
      me->ready = 1;
      me->local_pointer = (uint64_t)(uintptr_t)s->route->own.shared_base;
    } else {
      snprintf(me->why, sizeof(me->why), "buffers: %s", cudaGetErrorString(error));
      cudaGetLastError();
      NVLAR_WARN("comm %p rank %d: out of memory for nvlar's buffers (%s); the communicator "
                 "stays on NCCL on every rank", (void *)s->comm, s->rank, cudaGetErrorString(error));
    }
  }
  cudaMemcpyAsync((char *)s->scratch.gather + (size_t)s->rank * sizeof(*me), me, sizeof(*me),
                  cudaMemcpyHostToDevice, s->scratch.stream);
}

/* Every joined communicator's records, all-gathered in one NCCL group, into `into`. */
static void gather(const struct nvlar_real_nccl *nccl, struct setup_state *states, int count,
                   size_t record_size, bool links) {
  bool any = false;
  for (int i = 0; i < count; i++) any |= states[i].joined;
  if (!any) return;
  /* One lock for the whole group: a batch of several communicators is blocking (no lock). */
  if (!nccl_begin(&states[0])) {
    for (int i = 0; i < count; i++) {
      if (states[i].joined) stay_on_nccl(&states[i], false, "%s", "aborted during setup");
    }
    return;
  }
  nccl->ncclGroupStart();
  for (int i = 0; i < count; i++) {
    struct setup_state *s = &states[i];
    if (!s->joined) continue;
    cudaSetDevice(s->device);
    char *slot = (char *)s->scratch.gather + (size_t)s->rank * record_size;
    if (nccl->ncclAllGather(slot, s->scratch.gather, record_size, ncclUint8, s->comm,
                            s->scratch.stream) != ncclSuccess) {
      stay_on_nccl(s, true, "%s", "the setup all-gather failed in NCCL");
    }
  }
  /* The communicators of one batch are all blocking or all non-blocking (one, then). */
  bool issued = group_issued(nccl->ncclGroupEnd(), states[0].control->nonblocking);
  nccl_end(&states[0]);
  if (!issued) {
    for (int i = 0; i < count; i++) {
      if (states[i].joined) stay_on_nccl(&states[i], true, "%s", "the setup all-gather failed in NCCL");
    }
    return;
  }
  for (int i = 0; i < count; i++) {
    struct setup_state *s = &states[i];
    if (!s->joined) continue;
    cudaSetDevice(s->device);
    void *into = links ? (void *)s->links : (void *)s->infos;
    if (!wait_for_stream(nccl, s)) {
      stuck(s, "all-gather");
      continue;
    }
    if (cudaMemcpyAsync(into, s->scratch.gather, (size_t)s->nranks * record_size,
                        cudaMemcpyDeviceToHost, s->scratch.stream) != cudaSuccess ||
        !wait_for_stream(nccl, s)) {
      cudaGetLastError();
      stay_on_nccl(s, true, "%s", "reading the gathered records failed");
    }
  }
}

/* Maps every peer's buffers and proves each mapping with a write and a read. */
static void map_and_probe(const struct nvlar_real_nccl *nccl, struct setup_state *s) {
  struct nvlar_route *route = s->route;
  struct nvlar_rank_info *me = &s->infos[s->rank];
  struct nvlar_rank_links *mine = &s->links[s->rank];
  cudaSetDevice(s->device);
  memset(mine, 0, sizeof(*mine));
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
  cudaError_t error = cudaSuccess;
  for (int p = 0; p < s->nranks && error == cudaSuccess; p++) {
    expected[p] = 0x9e3779b97f4a7c15ull ^ ((uint64_t)(s->rank + 1) << 40) ^ ((uint64_t)(p + 1) << 8) ^
                  me->host_hash;
    if (p == s->rank) continue;
    error = nvlar_probe_launch(&route->peers[p].probe[NVLAR_PROBE_FROM_PEER + s->rank], expected[p],
                               &route->own.probe[NVLAR_PROBE_READBACK + p], s->scratch.stream);
  }
  if (error == cudaSuccess) {
    error = cudaMemcpyAsync(route->readback, &route->own.probe[NVLAR_PROBE_READBACK],
                            NVLAR_MAX_RANKS * sizeof(uint64_t), cudaMemcpyDeviceToHost, s->scratch.stream);
  }
  if (error == cudaSuccess && !wait_for_stream(nccl, s)) error = cudaErrorLaunchTimeout;
  if (error != cudaSuccess) {
    snprintf(mine->why, sizeof(mine->why), "probe: %s", cudaGetErrorString(error));
    mine->mapped = 0;
    cudaGetLastError();
    return;
  }
  for (int p = 0; p < s->nranks; p++) mine->probe_ok[p] = p == s->rank || route->readback[p] == expected[p];
}

static void close_peers(struct nvlar_route *route) {
  for (int p = 0; p < NVLAR_MAX_RANKS; p++) {
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
  nvlar_policy_limit_ctas(&route->policy, s->nranks, s->infos);
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
  /* Also a rank's own: NVLAR_PRIORITY=high launches at the device's greatest priority (the
   * numerically smallest; 0, the stream's, if the query fails). The caller set the device. */
  route->args.priority = 0;
  if (nvlar_param_number(NVLAR_P_PRIORITY) == 1) {
    int least = 0, greatest = 0;
    if (cudaDeviceGetStreamPriorityRange(&least, &greatest) == cudaSuccess) {
      route->args.priority = greatest;
    } else {
      cudaGetLastError(); /* leave no error of ours for the caller's next call */
    }
  }
}

/* A barrier on every communicator that went on to map its peers and then stayed on NCCL, as
 * one NCCL group: after it no rank still maps a peer that is about to free its buffers. Which
 * communicators take part follows from gathered records only, so all ranks agree. */
static void barrier(const struct nvlar_real_nccl *nccl, struct setup_state *states, int count) {
  bool any = false;
  for (int i = 0; i < count; i++) any |= states[i].mapping;
  if (!any || !nccl_begin(&states[0])) return;
  nccl->ncclGroupStart();
  for (int i = 0; i < count; i++) {
    struct setup_state *s = &states[i];
    if (!s->mapping) continue;
    cudaSetDevice(s->device);
    nccl->ncclAllReduce(s->scratch.gather, s->scratch.gather, 1, ncclInt32, ncclSum, s->comm,
                        s->scratch.stream);
  }
  nccl->ncclGroupEnd();
  nccl_end(&states[0]);
  for (int i = 0; i < count; i++) {
    if (!states[i].mapping) continue;
    cudaSetDevice(states[i].device);
    if (!wait_for_stream(nccl, &states[i])) stuck(&states[i], "barrier");
  }
}

/* Whether the ranks agree on what NCCL's tuner rows say (the same table, one GPU
 * architecture): the tuner plugin applies its rows to this communicator only then, on every
 * rank alike (tuner_agreement.h). */
static void settle_tuner(struct setup_state *s, struct nvlar_setup_outcome *outcome) {
  int nodes = 0;
  bool agree = nvlar_ranks_agree_on_tuning(s->nranks, s->infos, &nodes);
  outcome->tuner_context = nvlar_tuner_settle(s->device, s->nranks, nodes, agree);
  if (!agree && outcome->tuner_context != NULL) {
    NVLAR_WARN("comm %p: its ranks differ in tuning table (NVLAR_TUNING_FILE) or GPU "
               "architecture; the tuner plugin's rows are dropped for it on every rank",
               (void *)s->comm);
  }
}

static void finish(struct setup_state *s, struct nvlar_setup_outcome *outcome) {
  outcome->failed = s->stuck;
  if (s->why[0] != '\0') {
    if (s->warn) NVLAR_WARN("comm %p: all-reduces stay on NCCL: %s", (void *)s->comm, s->why);
    else NVLAR_INFO("comm %p: all-reduces stay on NCCL: %s", (void *)s->comm, s->why);
  }
  if (s->stuck || cancelled(s)) {
    /* NCCL may still write into the gather buffer, and the peers may still map this rank's
     * buffers: both wait for NCCL's destroy or abort of the communicator. */
    struct nvlar_setup_leftover *leftover = malloc(sizeof(*leftover));
    if (leftover != NULL) {
      *leftover = s->scratch;
      leftover->route = s->route;
      outcome->leftover = leftover;
    }
    return;
  }
  if (s->route != NULL) s->scratch.route = s->route;
  free_scratch(&s->scratch);
}

void nvlar_setup_run(const struct nvlar_real_nccl *nccl, const ncclComm_t *comms, int count,
                     const struct nvlar_setup_control *control,
                     struct nvlar_setup_outcome *outcomes) {
  memset(outcomes, 0, (size_t)count * sizeof(*outcomes));
  for (int i = 0; i < count; i++) outcomes[i].single_rank_device = -1;
  if (count <= 0) return;
  struct setup_state *states = calloc((size_t)count, sizeof(*states));
  if (states == NULL) {
    NVLAR_WARN("out of memory for setup: %d communicators stay on NCCL, and cannot join their "
               "peers' setup", count);
    for (int i = 0; i < count; i++) outcomes[i].failed = true;
    return;
  }
  /* Setup allocates and frees; another thread may be capturing a graph in global mode
   * (PyTorch's default), which these calls must not invalidate (NCCL does the same). */
  enum cudaStreamCaptureMode capture_mode = cudaStreamCaptureModeRelaxed;
  cudaThreadExchangeStreamCaptureMode(&capture_mode);
  int saved_device = 0;
  cudaGetDevice(&saved_device);
  for (int i = 0; i < count; i++) {
    states[i].comm = comms[i];
    states[i].control = control;
    prepare(nccl, &states[i]);
  }
  for (int i = 0; i < count; i++) {
    if (states[i].nranks == 1) outcomes[i].single_rank_device = states[i].device;
  }
  gather(nccl, states, count, sizeof(struct nvlar_rank_info), false);
  for (int i = 0; i < count; i++) {
    struct setup_state *s = &states[i];
    if (!s->joined) continue;
    settle_tuner(s, &outcomes[i]);
    char why[WHY_SIZE];
    if (!nvlar_eligible_to_map(s->nranks, s->infos, why, sizeof(why))) {
      /* A setting that differs between ranks would leave nvlar off unnoticed: a WARN, once
       * per communicator, naming it. */
      stay_on_nccl(s, nvlar_ineligible_for_differing_settings(s->nranks, s->infos), "%s", why);
      continue;
    }
    s->mapping = true;
    cudaSetDevice(s->device);
    map_and_probe(nccl, s);
    cudaMemcpyAsync((char *)s->scratch.gather + (size_t)s->rank * sizeof(struct nvlar_rank_links),
                    &s->links[s->rank], sizeof(struct nvlar_rank_links), cudaMemcpyHostToDevice,
                    s->scratch.stream);
  }
  gather(nccl, states, count, sizeof(struct nvlar_rank_links), true);
  for (int i = 0; i < count; i++) {
    struct setup_state *s = &states[i];
    char why[WHY_SIZE];
    if (s->joined && !nvlar_eligible(s->nranks, s->infos, s->links, why, sizeof(why))) {
      stay_on_nccl(s, true, "%s", why);
    }
    /* Unmapped before the barrier, after which the peers free what this rank mapped. */
    if (!s->joined && s->route != NULL) close_peers(s->route);
    if (s->joined) {
      cudaSetDevice(s->device);
      build_route(s);
      NVLAR_INFO("comm %p rank %d/%d on GPU %d: all-reduces run on nvlar (table %s, "
                 "NVLAR_ALGO=%s, staging %zu MiB, %d-%d CTAs per call as NCCL's "
                 "minCTAs/maxCTAs allow)",
                 (void *)s->comm, s->rank, s->nranks, s->device, s->route->policy.table->source,
                 nvlar_param_text(NVLAR_P_ALGO), s->route->own.staging_bytes >> 20,
                 s->route->policy.min_ctas, s->route->policy.max_ctas);
      outcomes[i].route = s->route;
      s->route = NULL;
      s->mapping = false; /* keeps its mappings: no barrier */
    }
  }
  barrier(nccl, states, count);
  for (int i = 0; i < count; i++) finish(&states[i], &outcomes[i]);
  cudaSetDevice(saved_device);
  cudaThreadExchangeStreamCaptureMode(&capture_mode);
  free(states);
}
