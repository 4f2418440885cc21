/* The memory that nvlar's kernels share between ranks, and how ranks share it.
 *
 * Each rank owns one device allocation holding its signal area and, after it, its staging
 * buffer; peers map it, by CUDA IPC when they live in another process, or by plain pointer
 * (with peer access enabled) inside one process. Each rank also owns a progress record (device
 * memory, never shared) and an error record in mapped pinned host memory, which the kernels
 * write and the host polls.
 *
 * The routing layer, the multi-process tests and the benchmark all use these functions, so the
 * code that tests prove is the code that runs in production.
 */
#ifndef NVLAR_PEER_BUFFERS_H
#define NVLAR_PEER_BUFFERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "nvlar_kernels.h"

struct nvlar_local_buffers {
  int device;
  void *shared_base;    /* the allocation peers map: signals, then staging */
  size_t shared_bytes;
  uint64_t *signals;    /* NVLAR_SIGNAL_BYTES, zeroed */
  uint64_t *probe;      /* the probe page (enum nvlar_probe_word), zeroed */
  void *push;           /* NVLAR_PUSH_AREA_BYTES, zeroed: packets peers push to this rank */
  void *staging;        /* staging_bytes */
  size_t staging_bytes;
  struct nvlar_rank_state *state;          /* device memory, zeroed */
  struct nvlar_error_record *error_host;   /* mapped pinned memory, host view */
  struct nvlar_error_record *error_device; /* the same memory, device view */
};

/* The probe page: words that peers write through their mapping of this rank's buffers (each
 * peer its own word), and scratch for the reads back. */
enum nvlar_probe_word {
  NVLAR_PROBE_FROM_PEER = 0,                      /* [p]: rank p's probe pattern (setup) */
  NVLAR_PROBE_READBACK = NVLAR_MAX_RANKS,         /* [p]: this rank's probe of p, read back */
  NVLAR_PROBE_DEPARTED = 2 * NVLAR_MAX_RANKS,     /* [p]: rank p has left (destroy or abort) */
  NVLAR_PROBE_DEPARTED_READBACK = 3 * NVLAR_MAX_RANKS, /* [p]: this rank's departure word in p */
};

/* The value of a departure word: rank p's kernels on this communicator are over, so it reads
 * and writes no peer's buffers any more (the page is zeroed at allocation). */
#define NVLAR_DEPARTED_MARK 0x6e766c61722d6279ull

/* What a rank sends its peers so that they can map its buffers (fixed size, plain bytes). */
struct nvlar_buffer_handle {
  cudaIpcMemHandle_t ipc;
  uint64_t shared_bytes;
  uint64_t staging_bytes;
};

/* A peer's buffers as mapped into this process. */
struct nvlar_peer_buffers {
  void *shared_base;
  uint64_t *signals;
  uint64_t *probe;
  void *push;
  void *staging;
  bool opened_by_ipc; /* close with cudaIpcCloseMemHandle */
};

/* Allocates this rank's buffers on the current device. staging_bytes must be a multiple of 256.
 * On failure nothing stays allocated. */
cudaError_t nvlar_buffers_create(struct nvlar_local_buffers *buffers, size_t staging_bytes);
void nvlar_buffers_destroy(struct nvlar_local_buffers *buffers);

cudaError_t nvlar_buffers_export(const struct nvlar_local_buffers *buffers,
                                 struct nvlar_buffer_handle *handle);

/* Maps a peer's buffers exported by another process. */
cudaError_t nvlar_buffers_open(const struct nvlar_buffer_handle *handle,
                               struct nvlar_peer_buffers *peer);

/* A rank's buffers seen from the same process (itself, or a peer driven by the same process). */
void nvlar_buffers_view(const struct nvlar_local_buffers *buffers, struct nvlar_peer_buffers *peer);

/* A rank's buffers from their base pointer, for a rank driven by this same process. */
void nvlar_buffers_view_pointer(void *shared_base, struct nvlar_peer_buffers *peer);

/* Unmaps a peer; must happen before that peer frees its buffers. */
cudaError_t nvlar_buffers_close(struct nvlar_peer_buffers *peer);

/* Fills the parts of a kernel's argument block that come from the buffers: every rank's
 * staging and signals (peers[r] for each rank r, own rank included), this rank's state and
 * error record. */
void nvlar_buffers_fill_args(const struct nvlar_local_buffers *own,
                             const struct nvlar_peer_buffers *peers, int rank, int nranks,
                             struct nvlar_allreduce_args *args);

#endif
