/* Route lifetime: references, launches, and the release thread (route.h says why). */
#include "route.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host_wait.h"
#include "log.h"
#include "params.h"

/* ---- References */

struct nvlar_route *nvlar_route_new(const struct nvlar_route_ops *ops) {
  struct nvlar_route *route = calloc(1, sizeof(*route));
  if (route == NULL) return NULL;
  route->ops = ops;
  route->device = -1;
  for (int p = 0; p < NVLAR_MAX_RANKS; p++) route->peer_device[p] = -1;
  atomic_init(&route->refs, 1);
  return route;
}

void nvlar_route_get(struct nvlar_route *route) {
  atomic_fetch_add_explicit(&route->refs, 1, memory_order_relaxed);
}

static void hand_to_release_thread(struct nvlar_route *route);

void nvlar_route_put(struct nvlar_route *route) {
  if (route == NULL) return;
  /* acq_rel: every use of the route by the holders that let go happens before its release. */
  if (atomic_fetch_sub_explicit(&route->refs, 1, memory_order_acq_rel) == 1) {
    hand_to_release_thread(route);
  }
}

void nvlar_route_abort(struct nvlar_route *route) {
  atomic_store(&route->aborting, true);
  /* Read by the kernels with plain loads of mapped host memory: a store from the host is seen
   * by the GPU without any further step. */
  if (route->abort_host != NULL) *(volatile uint32_t *)route->abort_host = 1;
}

static enum nvlar_poll poll_kernels_over(void *route) {
  struct nvlar_route *r = route;
  return r->ops->kernels_over(r);
}

bool nvlar_route_wait_kernels(struct nvlar_route *route, int64_t timeout_ms) {
  return nvlar_host_wait(poll_kernels_over, route, nvlar_deadline_after_ms(timeout_ms), NULL) ==
         NVLAR_WAIT_DONE;
}

/* ---- Launches */

cudaError_t nvlar_route_launch(struct nvlar_route *route, const struct nvlar_allreduce_args *args,
                               cudaStream_t stream) {
  /* The communicator's device for the launch (one thread may drive several GPUs). A route
   * without one (device -1: the unit tests') has nothing to switch. */
  int current = route->device;
  if (route->device >= 0) cudaGetDevice(&current);
  if (current != route->device) cudaSetDevice(route->device);
  cudaGraph_t graph = NULL;
  unsigned long long graph_id = 0;
  const bool captured = route->ops->capturing(stream, &graph, &graph_id);
  cudaError_t error = cudaSuccess;
  /* A graph that captures a kernel of this route holds the route until the graph is gone
   * (once per capture: the last capture to take a reference is remembered). */
  if (captured && atomic_load_explicit(&route->graph_id, memory_order_relaxed) != graph_id) {
    if (route->ops->hold_in_graph(graph, route)) {
      atomic_store_explicit(&route->graph_id, graph_id, memory_order_relaxed);
    } else {
      error = cudaErrorMemoryAllocation;
    }
  }
  if (error == cudaSuccess) {
    struct nvlar_allreduce_args call = *args;
    call.counted = !captured;
    error = route->ops->launch(&call, stream);
    if (error == cudaSuccess && !captured) {
      atomic_fetch_add_explicit(&route->eager_ctas, (uint_fast64_t)call.nblocks, memory_order_relaxed);
    }
  }
  if (current != route->device) cudaSetDevice(current);
  return error;
}

uint32_t nvlar_route_failure(struct nvlar_route *route) {
  const struct nvlar_error_record *error = route->own.error_host;
  if (error == NULL) return NVLAR_KERNEL_OK;
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

/* ---- The release thread */

/* Stages of a route's release; each is a poll (nvlar_route_ops). */
enum release_stage {
  STAGE_KERNELS,    /* this rank's eager kernels of the route are over */
  STAGE_ANNOUNCE,   /* the peers in other processes are told this rank left */
  STAGE_DEPARTURES, /* every such peer has left too, or its process ended */
  STAGE_FREE,
};

struct release_job {
  void (*free_fn)(void *arg);
  void *arg;
  struct release_job *next;
};

static struct {
  pthread_mutex_t lock;
  pthread_cond_t wake;     /* new work, or the process is exiting */
  pthread_cond_t idle;     /* `held` dropped to 0 */
  struct nvlar_route *incoming;
  struct release_job *jobs;
  int held;                /* routes and jobs handed over and not finished */
  bool started, exiting;
  bool in_cuda;            /* the thread is inside a release step (CUDA calls) */
  pthread_cond_t out_of_cuda;
  pthread_t thread;
  /* Routes ready to free whose process drives other ranks of their communicator: freed on the
   * thread of a later destroy or init (free_parked_routes says why); still counted in held. */
  struct nvlar_route *parked;
} releaser = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
              NULL, NULL, 0, false, false, false, PTHREAD_COND_INITIALIZER, 0, NULL};

/* One bounded wait on `cond` (the caller holds `lock`): at most `ms` milliseconds, so that each
 * caller's loop looks again at its own condition and deadline (a missed signal costs one period,
 * never a hang). pthread_cond_timedwait takes an absolute CLOCK_REALTIME time. */
static void wait_on_for_ms(pthread_cond_t *cond, pthread_mutex_t *lock, long ms) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_nsec += ms * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
  }
  pthread_cond_timedwait(cond, lock, &until);
}

static void log_route_end(const struct nvlar_route *route) {
  if (nvlar_log_level() < NVLAR_LOG_INFO) return;
  unsigned long long on_nvlar = 0;
  char per_algo[NVLAR_ALGO_COUNT * 48]; /* "name count, ": a name and 20 digits fit */
  size_t used = 0;
  per_algo[0] = '\0';
  for (int algo = 0; algo < NVLAR_ALGO_COUNT && used < sizeof(per_algo); algo++) {
    unsigned long long calls = atomic_load(&route->calls[algo]);
    on_nvlar += calls;
    int n = snprintf(per_algo + used, sizeof(per_algo) - used, "%s%s %llu", used ? ", " : "",
                     nvlar_algo_name(algo), calls);
    if (n > 0) used += (size_t)n;
  }
  NVLAR_INFO("comm %p rank %d/%d %s: %llu all-reduces on nvlar (%s), %llu on NCCL",
             (void *)route->comm, route->args.rank, route->args.nranks,
             atomic_load(&route->aborting) ? "aborted" : "destroyed", on_nvlar, per_algo,
             (unsigned long long)atomic_load(&route->calls[NVLAR_ALGO_NCCL]));
}

/* Every other rank takes part in the departures, those this process drives as well: their
 * kernels read and write this rank's buffers as any peer's do, and since no destroy waits for
 * a peer, one thread destroying its ranks in turn never waits for itself. */
static bool is_peer(const struct nvlar_route *route, int p) { return p != route->args.rank; }

/* Whether this process drives another rank of the route's communicator (its device is known). */
static bool drives_other_ranks(const struct nvlar_route *route) {
  for (int p = 0; p < route->args.nranks; p++) {
    if (is_peer(route, p) && route->peer_device[p] >= 0) return true;
  }
  return false;
}

static bool process_gone(const struct nvlar_route *route, int p) {
  return route->peer_pid_visible[p] && kill(route->peer_pid[p], 0) != 0 && errno == ESRCH;
}

static void list_missing(const struct nvlar_route *route, char *missing, size_t size) {
  size_t used = 0;
  missing[0] = '\0';
  for (int p = 0; p < route->args.nranks && used < size; p++) {
    if (!is_peer(route, p) || route->left[p]) continue;
    int n = snprintf(missing + used, size - used, "%s%d", used ? ", " : "", p);
    if (n > 0) used += (size_t)n;
  }
}

/* What one step of a route's release left: more to do, the route finished with (freed, or
 * given up with a WARN: its buffers then stay allocated until the process ends, since some
 * kernel may still use them), or parked for a destroy or init to free. */
enum release_step_result { STEP_AGAIN, STEP_DONE, STEP_PARKED };
static enum release_step_result release_step(struct nvlar_route *route) {
  const bool aborting = atomic_load(&route->aborting);
  enum nvlar_poll state;
  switch (route->release_stage) {
    case STAGE_KERNELS:
      state = route->ops->kernels_over(route);
      if (state == NVLAR_POLL_AGAIN && nvlar_now_seconds() <= route->release_deadline) return STEP_AGAIN;
      if (state != NVLAR_POLL_DONE) {
        NVLAR_WARN("comm %p rank %d: nvlar's kernels of this communicator are %s; its buffers "
                   "stay allocated until the process ends",
                   (void *)route->comm, route->args.rank,
                   state == NVLAR_POLL_FAILED ? "in an unknown state (a CUDA error)"
                                              : "still queued or running after NVLAR_DESTROY_TIMEOUT_MS");
        return STEP_DONE;
      }
      route->release_stage = STAGE_ANNOUNCE;
      /* fall through */
    case STAGE_ANNOUNCE:
      state = route->ops->announce_departure(route);
      if (state == NVLAR_POLL_AGAIN) return STEP_AGAIN;
      if (state == NVLAR_POLL_FAILED) {
        NVLAR_WARN("comm %p rank %d: could not tell the other ranks that it left; they find out "
                   "when this process ends", (void *)route->comm, route->args.rank);
      }
      route->release_stage = STAGE_DEPARTURES;
      route->release_deadline =
          nvlar_deadline_after_ms(nvlar_param_number(NVLAR_P_DESTROY_TIMEOUT_MS));
      /* fall through */
    case STAGE_DEPARTURES: {
      bool words[NVLAR_MAX_RANKS] = {false};
      state = route->ops->read_departures(route, words);
      int waiting = 0;
      for (int p = 0; p < route->args.nranks; p++) {
        if (!is_peer(route, p) || route->left[p]) continue;
        route->left[p] = (state == NVLAR_POLL_DONE && words[p]) || process_gone(route, p);
        waiting += !route->left[p];
      }
      if (waiting > 0) {
        if (nvlar_now_seconds() <= route->release_deadline) return STEP_AGAIN;
        char missing[64];
        list_missing(route, missing, sizeof(missing));
        NVLAR_WARN("comm %p rank %d: rank%s %s did not leave the communicator (destroy, abort or "
                   "exit) within NVLAR_DESTROY_TIMEOUT_MS=%lld of this rank; nvlar's buffers of "
                   "this communicator stay allocated until the process ends",
                   (void *)route->comm, route->args.rank, waiting > 1 ? "s" : "", missing,
                   (long long)nvlar_param_number(NVLAR_P_DESTROY_TIMEOUT_MS));
        return STEP_DONE;
      }
      route->release_stage = STAGE_FREE;
    }
      /* fall through */
    case STAGE_FREE:
    default:
      (void)aborting;
      if (drives_other_ranks(route)) {
        /* Freeing device memory waits for the whole device and holds CUDA's memory lock
         * meanwhile: a kernel of this process that waits for a peer rank's launch, which
         * another thread of this process has yet to make, would wait for a launch that waits
         * for the free. The free goes to a thread that calls NCCL's destroy or init, where
         * NCCL frees and allocates too (free_parked_routes). */
        pthread_mutex_lock(&releaser.lock);
        route->next_released = releaser.parked;
        releaser.parked = route;
        pthread_mutex_unlock(&releaser.lock);
        return STEP_PARKED;
      }
      route->ops->free(route);
      return STEP_DONE;
  }
}

static void *release_thread_main(void *unused) {
  (void)unused;
  /* Another thread may be capturing a graph in global mode (PyTorch's default): this thread's
   * CUDA calls must not invalidate it, as NCCL's own frees do not. */
  enum cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  cudaThreadExchangeStreamCaptureMode(&mode);
  struct nvlar_route *active = NULL;
  pthread_mutex_lock(&releaser.lock);
  for (;;) {
    while (releaser.incoming != NULL) {
      struct nvlar_route *route = releaser.incoming;
      releaser.incoming = route->next_released;
      route->next_released = active;
      active = route;
    }
    struct release_job *jobs = releaser.jobs;
    releaser.jobs = NULL;
    if (releaser.exiting) break;
    if (active == NULL && jobs == NULL) {
      pthread_cond_wait(&releaser.wake, &releaser.lock);
      continue;
    }
    releaser.in_cuda = true;
    pthread_mutex_unlock(&releaser.lock);
    int finished = 0;
    while (jobs != NULL) {
      struct release_job *job = jobs;
      jobs = job->next;
      job->free_fn(job->arg);
      free(job);
      finished++;
    }
    for (struct nvlar_route **link = &active; *link != NULL;) {
      struct nvlar_route *route = *link;
      struct nvlar_route *next = route->next_released; /* the step may free the route */
      if (route->device >= 0) cudaSetDevice(route->device);
      const enum release_step_result result = release_step(route);
      if (result != STEP_AGAIN) {
        *link = next;
        if (result == STEP_DONE) finished++; /* a parked route stays held until freed */
      } else {
        link = &route->next_released;
      }
    }
    cudaGetLastError(); /* leave no error for this thread's next step to trip on */
    pthread_mutex_lock(&releaser.lock);
    releaser.in_cuda = false;
    pthread_cond_broadcast(&releaser.out_of_cuda);
    releaser.held -= finished;
    if (releaser.held == 0) pthread_cond_broadcast(&releaser.idle);
    if (active != NULL && releaser.incoming == NULL && releaser.jobs == NULL && !releaser.exiting) {
      /* Routes still waiting for kernels or peers: look again in a millisecond. */
      wait_on_for_ms(&releaser.wake, &releaser.lock, 1);
    }
  }
  pthread_mutex_unlock(&releaser.lock);
  return NULL;
}

/* At exit, the CUDA runtime tears itself down; the release thread must not be inside a CUDA
 * call then. This handler (registered after CUDA's own, so it runs before it) stops the thread
 * between steps. Whatever it still held is the process's to give back. */
static void stop_release_thread_at_exit(void) {
  pthread_mutex_lock(&releaser.lock);
  releaser.exiting = true;
  pthread_cond_broadcast(&releaser.wake);
  /* Bounded: a step may be stuck in a CUDA call that waits for the device (exit must not). */
  double deadline = nvlar_deadline_after_ms(1000);
  while (releaser.in_cuda && !pthread_equal(pthread_self(), releaser.thread) &&
         nvlar_now_seconds() < deadline) {
    wait_on_for_ms(&releaser.out_of_cuda, &releaser.lock, 10);
  }
  pthread_mutex_unlock(&releaser.lock);
}

/* Caller holds the lock. */
static void start_release_thread_locked(void) {
  if (releaser.started) return;
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&thread, &attr, release_thread_main, NULL) == 0) {
    releaser.thread = thread;
    releaser.started = true;
    atexit(stop_release_thread_at_exit);
  }
  pthread_attr_destroy(&attr);
}

static void hand_to_release_thread(struct nvlar_route *route) {
  route->release_stage = STAGE_KERNELS;
  /* Kernels that are queued behind other work may take long to run; once the communicator
   * is gone nothing else waits for them. */
  route->release_deadline =
      nvlar_deadline_after_ms(nvlar_param_number(NVLAR_P_TIMEOUT_MS) +
                              nvlar_param_number(NVLAR_P_DESTROY_TIMEOUT_MS));
  log_route_end(route);
  pthread_mutex_lock(&releaser.lock);
  start_release_thread_locked();
  if (!releaser.started) {
    pthread_mutex_unlock(&releaser.lock);
    NVLAR_WARN("comm %p rank %d: no thread to release nvlar's buffers; they stay allocated until "
               "the process ends", (void *)route->comm, route->args.rank);
    return;
  }
  route->next_released = releaser.incoming;
  releaser.incoming = route;
  releaser.held++;
  pthread_cond_signal(&releaser.wake);
  pthread_mutex_unlock(&releaser.lock);
}

void nvlar_release_later(void (*free_fn)(void *arg), void *arg) {
  struct release_job *job = malloc(sizeof(*job));
  pthread_mutex_lock(&releaser.lock);
  start_release_thread_locked();
  if (job == NULL || !releaser.started) {
    pthread_mutex_unlock(&releaser.lock);
    free(job);
    NVLAR_WARN("no thread to release nvlar's setup scratch; it stays until the process ends");
    return;
  }
  job->free_fn = free_fn;
  job->arg = arg;
  job->next = releaser.jobs;
  releaser.jobs = job;
  releaser.held++;
  pthread_cond_signal(&releaser.wake);
  pthread_mutex_unlock(&releaser.lock);
}

int nvlar_routes_being_released(void) {
  pthread_mutex_lock(&releaser.lock);
  int held = releaser.held;
  pthread_mutex_unlock(&releaser.lock);
  return held;
}

void nvlar_routes_free_parked(void) {
  pthread_mutex_lock(&releaser.lock);
  struct nvlar_route *parked = releaser.parked;
  releaser.parked = NULL;
  pthread_mutex_unlock(&releaser.lock);
  if (parked == NULL) return;
  enum cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  cudaThreadExchangeStreamCaptureMode(&mode);
  int freed = 0;
  while (parked != NULL) {
    struct nvlar_route *route = parked;
    parked = route->next_released;
    int current = route->device;
    if (route->device >= 0) cudaGetDevice(&current);
    if (current != route->device) cudaSetDevice(route->device);
    const int device = route->device;
    route->ops->free(route);
    if (current != device) cudaSetDevice(current);
    freed++;
  }
  cudaThreadExchangeStreamCaptureMode(&mode);
  pthread_mutex_lock(&releaser.lock);
  releaser.held -= freed;
  if (releaser.held == 0) pthread_cond_broadcast(&releaser.idle);
  pthread_mutex_unlock(&releaser.lock);
}

bool nvlar_routes_wait_released(int64_t timeout_ms) {
  double deadline = nvlar_deadline_after_ms(timeout_ms);
  pthread_mutex_lock(&releaser.lock);
  while (releaser.held > 0 && nvlar_now_seconds() < deadline) {
    if (releaser.parked != NULL) {
      pthread_mutex_unlock(&releaser.lock);
      nvlar_routes_free_parked(); /* the caller asked to wait for the frees: its thread does them */
      pthread_mutex_lock(&releaser.lock);
      continue;
    }
    wait_on_for_ms(&releaser.idle, &releaser.lock, 10);
  }
  bool released = releaser.held == 0;
  pthread_mutex_unlock(&releaser.lock);
  return released;
}

/* ---- The CUDA implementation of a route's device steps */

static cudaError_t cuda_launch(const struct nvlar_allreduce_args *args, cudaStream_t stream) {
  return nvlar_allreduce_launch(args, stream);
}

static bool cuda_capturing(cudaStream_t stream, cudaGraph_t *graph, unsigned long long *id) {
  enum cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
#if CUDART_VERSION >= 13000
  cudaError_t error = cudaStreamGetCaptureInfo(stream, &status, id, graph, NULL, NULL, NULL);
#else
  cudaError_t error = cudaStreamGetCaptureInfo(stream, &status, id, graph, NULL, NULL);
#endif
  if (error != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return status == cudaStreamCaptureStatusActive;
}

/* CUDA calls it on an internal thread once the graph lets go: no CUDA call may be made here,
 * and none is (the last reference hands the route to the release thread). */
static void graph_let_go(void *route) { nvlar_route_put(route); }

static bool cuda_hold_in_graph(cudaGraph_t graph, struct nvlar_route *route) {
  cudaUserObject_t object;
  nvlar_route_get(route);
  if (cudaUserObjectCreate(&object, route, graph_let_go, 1, cudaUserObjectNoDestructorSync) !=
      cudaSuccess) {
    cudaGetLastError();
    nvlar_route_put(route);
    return false;
  }
  if (cudaGraphRetainUserObject(graph, object, 1, cudaGraphUserObjectMove) != cudaSuccess) {
    cudaGetLastError();
    cudaUserObjectRelease(object, 1); /* runs graph_let_go: the reference goes back */
    return false;
  }
  return true;
}

/* The readback area: [0] the CTAs done, [1 + p] rank p's departure word. A read is issued on
 * the route's private stream, and a later poll finds it done; `read_pending` says which.
 * Readbacks never wait for any other stream. */
enum { READ_NONE = 0, READ_CTAS = 1, READ_DEPARTURES = 2, WRITE_DEPARTURE = 3 };

static enum nvlar_poll stream_state(cudaStream_t stream) {
  cudaError_t error = cudaStreamQuery(stream);
  if (error == cudaErrorNotReady) return NVLAR_POLL_AGAIN;
  if (error != cudaSuccess) {
    cudaGetLastError();
    return NVLAR_POLL_FAILED;
  }
  return NVLAR_POLL_DONE;
}

/* Issues `what` if nothing is in flight; DONE once `what` has completed. */
static enum nvlar_poll issue_and_poll(struct nvlar_route *route, int what,
                                      cudaError_t (*issue)(struct nvlar_route *)) {
  if (route->poll_in_flight != what) {
    if (issue(route) != cudaSuccess) {
      cudaGetLastError();
      return NVLAR_POLL_FAILED;
    }
    route->poll_in_flight = what;
    return NVLAR_POLL_AGAIN;
  }
  enum nvlar_poll state = stream_state(route->release_stream);
  if (state != NVLAR_POLL_AGAIN) route->poll_in_flight = READ_NONE;
  return state;
}

static cudaError_t read_ctas_done(struct nvlar_route *route) {
  return cudaMemcpyAsync(&route->readback[0], &route->own.state->ctas_done, sizeof(uint64_t),
                         cudaMemcpyDeviceToHost, route->release_stream);
}

static enum nvlar_poll cuda_kernels_over(struct nvlar_route *route) {
  if (route->own.state == NULL) return NVLAR_POLL_DONE; /* never launched anything */
  enum nvlar_poll state = issue_and_poll(route, READ_CTAS, read_ctas_done);
  if (state != NVLAR_POLL_DONE) return state;
  return route->readback[0] >= atomic_load(&route->eager_ctas) ? NVLAR_POLL_DONE : NVLAR_POLL_AGAIN;
}

static cudaError_t write_departures(struct nvlar_route *route) {
  cudaError_t error = cudaSuccess;
  for (int p = 0; p < route->args.nranks && error == cudaSuccess; p++) {
    if (!is_peer(route, p) || route->peers[p].probe == NULL) continue;
    error = nvlar_probe_launch(&route->peers[p].probe[NVLAR_PROBE_DEPARTED + route->args.rank],
                               NVLAR_DEPARTED_MARK,
                               &route->own.probe[NVLAR_PROBE_DEPARTED_READBACK + p],
                               route->release_stream);
  }
  return error;
}

static enum nvlar_poll cuda_announce_departure(struct nvlar_route *route) {
  if (route->release_stream == NULL) return NVLAR_POLL_DONE;
  return issue_and_poll(route, WRITE_DEPARTURE, write_departures);
}

static cudaError_t read_departure_words(struct nvlar_route *route) {
  return cudaMemcpyAsync(&route->readback[1], &route->own.probe[NVLAR_PROBE_DEPARTED],
                         NVLAR_MAX_RANKS * sizeof(uint64_t), cudaMemcpyDeviceToHost,
                         route->release_stream);
}

static enum nvlar_poll cuda_read_departures(struct nvlar_route *route, bool *left) {
  if (route->release_stream == NULL || route->own.probe == NULL) return NVLAR_POLL_FAILED;
  enum nvlar_poll state = issue_and_poll(route, READ_DEPARTURES, read_departure_words);
  if (state != NVLAR_POLL_DONE) return state;
  for (int p = 0; p < NVLAR_MAX_RANKS; p++) left[p] = route->readback[1 + p] == NVLAR_DEPARTED_MARK;
  return NVLAR_POLL_DONE;
}

static void cuda_free(struct nvlar_route *route) {
  if (route->device >= 0) cudaSetDevice(route->device);
  for (int p = 0; p < NVLAR_MAX_RANKS; p++) {
    if (route->peers[p].shared_base != NULL) nvlar_buffers_close(&route->peers[p]);
  }
  if (route->release_stream != NULL) cudaStreamDestroy(route->release_stream);
  if (route->own.shared_base != NULL) nvlar_buffers_destroy(&route->own);
  if (route->abort_host != NULL) cudaFreeHost(route->abort_host);
  if (route->readback != NULL) cudaFreeHost(route->readback);
  cudaGetLastError();
  free(route);
}

const struct nvlar_route_ops nvlar_cuda_route_ops = {
    .launch = cuda_launch,
    .capturing = cuda_capturing,
    .hold_in_graph = cuda_hold_in_graph,
    .kernels_over = cuda_kernels_over,
    .announce_departure = cuda_announce_departure,
    .read_departures = cuda_read_departures,
    .free = cuda_free,
};
