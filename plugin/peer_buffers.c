#include "peer_buffers.h"

#include <string.h>

/* The signal area, one page of probe words, the push receive area, then staging (each on a
 * 4 KiB boundary: the kernels need 16 bytes, and pages keep the uses apart). Everything before
 * staging is zeroed: flags and packets start at 0, which no sequence number or flag equals. */
static size_t signal_area_bytes(void) {
  return ((NVLAR_SIGNAL_BYTES + 4095) & ~(size_t)4095) + 4096;
}
static size_t probe_offset(void) { return (NVLAR_SIGNAL_BYTES + 4095) & ~(size_t)4095; }
static size_t staging_offset(void) { return signal_area_bytes() + NVLAR_PUSH_AREA_BYTES; }

cudaError_t nvlar_buffers_create(struct nvlar_local_buffers *b, size_t staging_bytes) {
  memset(b, 0, sizeof(*b));
  if (staging_bytes == 0 || staging_bytes % 256 != 0) return cudaErrorInvalidValue;
  cudaError_t error = cudaGetDevice(&b->device);
  if (error != cudaSuccess) return error;
  b->shared_bytes = staging_offset() + staging_bytes;
  b->staging_bytes = staging_bytes;
  /* Zeroed on a private stream: waiting for it never waits for anyone else's work. */
  cudaStream_t stream = NULL;
  error = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
  if (error == cudaSuccess) error = cudaMalloc(&b->shared_base, b->shared_bytes);
  if (error == cudaSuccess) error = cudaMemsetAsync(b->shared_base, 0, staging_offset(), stream);
  if (error == cudaSuccess) error = cudaMalloc((void **)&b->state, sizeof(*b->state));
  if (error == cudaSuccess) error = cudaMemsetAsync(b->state, 0, sizeof(*b->state), stream);
  if (error == cudaSuccess) {
    error = cudaHostAlloc((void **)&b->error_host, sizeof(*b->error_host), cudaHostAllocMapped);
  }
  if (error == cudaSuccess) {
    memset((void *)b->error_host, 0, sizeof(*b->error_host));
    error = cudaHostGetDevicePointer((void **)&b->error_device, b->error_host, 0);
  }
  /* Nothing may use the buffers before the zeroing ends. */
  if (error == cudaSuccess) error = cudaStreamSynchronize(stream);
  if (stream != NULL) cudaStreamDestroy(stream);
  if (error != cudaSuccess) {
    nvlar_buffers_destroy(b);
    return error;
  }
  b->signals = (uint64_t *)b->shared_base;
  b->probe = (uint64_t *)((char *)b->shared_base + probe_offset());
  b->push = (char *)b->shared_base + signal_area_bytes();
  b->staging = (char *)b->shared_base + staging_offset();
  return cudaSuccess;
}

void nvlar_buffers_destroy(struct nvlar_local_buffers *b) {
  if (b->shared_base != NULL) cudaFree(b->shared_base);
  if (b->state != NULL) cudaFree(b->state);
  if (b->error_host != NULL) cudaFreeHost(b->error_host);
  memset(b, 0, sizeof(*b));
}

cudaError_t nvlar_buffers_export(const struct nvlar_local_buffers *b,
                                 struct nvlar_buffer_handle *handle) {
  memset(handle, 0, sizeof(*handle));
  handle->shared_bytes = b->shared_bytes;
  handle->staging_bytes = b->staging_bytes;
  return cudaIpcGetMemHandle(&handle->ipc, b->shared_base);
}

void nvlar_buffers_view_pointer(void *shared_base, struct nvlar_peer_buffers *peer) {
  peer->shared_base = shared_base;
  peer->signals = (uint64_t *)shared_base;
  peer->probe = (uint64_t *)((char *)shared_base + probe_offset());
  peer->push = (char *)shared_base + signal_area_bytes();
  peer->staging = (char *)shared_base + staging_offset();
  peer->opened_by_ipc = false;
}

cudaError_t nvlar_buffers_open(const struct nvlar_buffer_handle *handle,
                               struct nvlar_peer_buffers *peer) {
  memset(peer, 0, sizeof(*peer));
  if (handle->shared_bytes != staging_offset() + handle->staging_bytes) {
    return cudaErrorInvalidValue; /* built with another layout: refuse rather than corrupt */
  }
  cudaError_t error =
      cudaIpcOpenMemHandle(&peer->shared_base, handle->ipc, cudaIpcMemLazyEnablePeerAccess);
  if (error != cudaSuccess) return error;
  peer->opened_by_ipc = true;
  peer->signals = (uint64_t *)peer->shared_base;
  peer->probe = (uint64_t *)((char *)peer->shared_base + probe_offset());
  peer->push = (char *)peer->shared_base + signal_area_bytes();
  peer->staging = (char *)peer->shared_base + staging_offset();
  return cudaSuccess;
}

void nvlar_buffers_view(const struct nvlar_local_buffers *b, struct nvlar_peer_buffers *peer) {
  nvlar_buffers_view_pointer(b->shared_base, peer);
}

cudaError_t nvlar_buffers_close(struct nvlar_peer_buffers *peer) {
  cudaError_t error = cudaSuccess;
  if (peer->opened_by_ipc && peer->shared_base != NULL) error = cudaIpcCloseMemHandle(peer->shared_base);
  memset(peer, 0, sizeof(*peer));
  return error;
}

void nvlar_buffers_fill_args(const struct nvlar_local_buffers *own,
                             const struct nvlar_peer_buffers *peers, int rank, int nranks,
                             struct nvlar_allreduce_args *args) {
  args->rank = rank;
  args->nranks = nranks;
  for (int p = 0; p < NVLAR_MAX_RANKS; p++) {
    args->staging[p] = p < nranks ? peers[p].staging : NULL;
    args->push[p] = p < nranks ? peers[p].push : NULL;
    args->signals[p] = p < nranks ? peers[p].signals : NULL;
  }
  args->staging_bytes = own->staging_bytes;
  args->state = own->state;
  args->error = own->error_device;
}
