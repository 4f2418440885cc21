/* nvlar's device code behind a C API: every entry point is extern "C", takes plain C types and
 * returns a cudaError_t from the launch. Host code in plugin/ and the tests include only this. */
#ifndef NVLAR_KERNELS_H
#define NVLAR_KERNELS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Peer-mapping probe: writes `pattern` to `target` (memory of this GPU or of a peer mapped
 * into this process), makes the store visible system-wide, reads the word back from `target`
 * and stores what it read in `readback` (this GPU's memory). A mapping that "works" but does
 * not carry data shows up as readback != pattern. Both pointers must be 8-byte aligned. */
cudaError_t nvlar_probe_launch(uint64_t *target, uint64_t pattern, uint64_t *readback,
                               cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
