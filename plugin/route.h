/* A route: what an eligible communicator's all-reduces need on this rank (its buffers, the
 * peers' buffers mapped here, the kernel argument template, the routing policy), from setup
 * until nothing can use it any more.
 *
 * Lifetime (design.md, "Failure"). A route is reference-counted. The communicator's registry
 * entry holds one reference; every ncclAllReduce holds one while it launches; every CUDA graph
 * that captured one of its kernels holds one through a CUDA user object, which CUDA releases
 * once the graph and its executables are destroyed and their launches are over. So a graph may
 * be replayed after ncclCommDestroy, as NCCL allows (NCCL >= 2.26 keeps a communicator's
 * resources for its graphs), and its kernels find their buffers.
 *
 * When the last reference goes, the route is released, never on the caller's thread when that
 * could block: nvlar's release thread waits until this rank's kernels of the route are over
 * (eager launches are counted by the host and by the kernels themselves), tells every peer
 * that this rank has left (its departure word in the peer's probe page), waits until every
 * peer has left too or its process has ended (at most NVLAR_DESTROY_TIMEOUT_MS; past it the
 * buffers stay, with a WARN), then unmaps the peers and frees; where this process drives other
 * ranks of the communicator, the free waits for the next destroy or init on a caller's thread
 * (nvlar_routes_free_parked says why). Since no rank waits for another inside ncclCommDestroy or ncclCommAbort, ranks may
 * destroy their communicators in any order. */
#ifndef NVLAR_ROUTE_H
#define NVLAR_ROUTE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <nccl.h>

#include "peer_buffers.h"
#include "selection.h"

struct nvlar_route;

/* Where a route meets the device. Production routes use nvlar_cuda_route_ops (CUDA); the unit
 * tests give routes without a GPU their own. */
enum nvlar_poll { NVLAR_POLL_AGAIN, NVLAR_POLL_DONE, NVLAR_POLL_FAILED };
struct nvlar_route_ops {
  /* Launches one rank's kernel on `stream`. */
  cudaError_t (*launch)(const struct nvlar_allreduce_args *args, cudaStream_t stream);
  /* Whether `stream` is capturing a graph: *graph and *id set when it is; false when CUDA
   * cannot say (then the call is treated as eager). */
  bool (*capturing)(cudaStream_t stream, cudaGraph_t *graph, unsigned long long *id);
  /* Makes `graph` hold a reference on the route: `release(route)` runs once the graph and
   * every executable made from it are destroyed and their launches are over. */
  bool (*hold_in_graph)(cudaGraph_t graph, struct nvlar_route *route);
  /* Release steps, each a poll that never blocks (the release thread calls them):
   * whether this rank's eager kernels of the route are all over; */
  enum nvlar_poll (*kernels_over)(struct nvlar_route *route);
  /* writes this rank's departure word into every peer; */
  enum nvlar_poll (*announce_departure)(struct nvlar_route *route);
  /* reads which peers have left: left[p] set for those whose departure word arrived; */
  enum nvlar_poll (*read_departures)(struct nvlar_route *route, bool *left);
  /* unmaps the peers and frees everything the route owns, the route included. May block
   * until the device is idle (freeing device memory does): only the release thread calls it. */
  void (*free)(struct nvlar_route *route);
};
extern const struct nvlar_route_ops nvlar_cuda_route_ops;

struct nvlar_route {
  const struct nvlar_route_ops *ops;
  ncclComm_t comm;           /* for log lines only: the communicator may be gone */
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
  cudaStream_t release_stream; /* private: the release's reads and departure writes */
  uint64_t *readback;        /* pinned: [0] CTAs done, then the departure words */
  int poll_in_flight;        /* the read or write on release_stream that a poll awaits */

  atomic_int refs;
  atomic_bool aborting;      /* the communicator was aborted: do not wait long for anyone */
  atomic_uint_fast64_t eager_ctas;   /* CTAs of eager launches (the kernels count theirs) */
  atomic_ullong graph_id;    /* the capture that last took a reference (0: none) */
  /* Calls by where they ran: calls[algo] for each algorithm, calls[NVLAR_ALGO_NCCL] on NCCL. */
  atomic_uint_fast64_t calls[NVLAR_ALGO_NCCL + 1];
  atomic_int error_reported;

  /* The release thread's own, once the last reference is gone. */
  int release_stage;
  double release_deadline;
  bool left[NVLAR_MAX_RANKS];
  struct nvlar_route *next_released;
};

/* A new route with one reference (the caller's), or NULL when memory runs out. */
struct nvlar_route *nvlar_route_new(const struct nvlar_route_ops *ops);

void nvlar_route_get(struct nvlar_route *route);
/* Gives back a reference; the last one hands the route to the release thread. Safe from any
 * thread, CUDA's callback threads included (it makes no CUDA call). */
void nvlar_route_put(struct nvlar_route *route);

/* Raises the abort word: waiting kernels of the route give up within about a millisecond,
 * later ones at their first wait past a millisecond. Marks the route as aborting, so that its
 * release waits for no one past what is needed to free safely. */
void nvlar_route_abort(struct nvlar_route *route);

/* Polls until this rank's eager kernels of the route are over, for at most `timeout_ms`;
 * false if they are not by then. Makes no blocking CUDA call. */
bool nvlar_route_wait_kernels(struct nvlar_route *route, int64_t timeout_ms);

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

/* Launches one call on the route: the route's own device, the kernel counted if eager, and a
 * reference taken by the graph if `stream` is capturing. */
cudaError_t nvlar_route_launch(struct nvlar_route *route, const struct nvlar_allreduce_args *args,
                               cudaStream_t stream);

/* The first kernel failure of the route (0 if none), reported once as a WARN naming the peer. */
uint32_t nvlar_route_failure(struct nvlar_route *route);

/* How many routes the release thread still holds (waiting for kernels or peers). */
int nvlar_routes_being_released(void);

/* Frees, on the calling thread, the routes that are ready to go but were kept from the release
 * thread because this process drives other ranks of their communicators: freeing device memory
 * waits for the whole device and blocks CUDA's memory operations on other threads meanwhile,
 * so a kernel of this process waiting for a launch that another thread of it has yet to make
 * would wait forever (until NVLAR_TIMEOUT_MS). Called where NCCL itself frees or allocates on
 * the caller's thread: ncclCommDestroy and the init calls (and nvlar_routes_wait_released). */
void nvlar_routes_free_parked(void);

/* Waits until the release thread holds no route, or `timeout_ms` passes; false then. Frees
 * parked routes on the calling thread. For tests and tools that measure memory after destroy. */
bool nvlar_routes_wait_released(int64_t timeout_ms);

/* A job for the release thread: `free_fn(arg)` once it can run (after NCCL has stopped what
 * it waits for). The setup's leftovers go this way. */
void nvlar_release_later(void (*free_fn)(void *arg), void *arg);

#endif
