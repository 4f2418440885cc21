#include "nvlar_kernels.h"

// One thread is enough: the probe proves that a mapping carries a word both ways, it does
// not measure anything.
__global__ void nvlar_probe_kernel(uint64_t *target, uint64_t pattern, uint64_t *readback) {
  volatile uint64_t *word = target;
  *word = pattern;
  // The store must leave this GPU before the read-back, or the read could be served from
  // this SM's own view of the line and prove nothing about the peer.
  __threadfence_system();
  *readback = *word;
}

extern "C" cudaError_t nvlar_probe_launch(uint64_t *target, uint64_t pattern, uint64_t *readback,
                                          cudaStream_t stream) {
  nvlar_probe_kernel<<<1, 1, 0, stream>>>(target, pattern, readback);
  return cudaGetLastError();
}
