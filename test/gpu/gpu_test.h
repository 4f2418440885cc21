/* Shared checks for the gpu and multigpu suites. These run on the GPU machine, which has no
 * cmocka: plain C, exit 0 for pass, 1 for fail, 77 for skip (meson's convention). */
#ifndef NVLAR_GPU_TEST_H
#define NVLAR_GPU_TEST_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#define GPU_TEST_SKIP 77

#define CHECK(condition)                                                                     \
  do {                                                                                       \
    if (!(condition)) {                                                                      \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #condition);          \
      exit(1);                                                                               \
    }                                                                                        \
  } while (0)

#define CHECK_CUDA(call)                                                                     \
  do {                                                                                       \
    cudaError_t check_cuda_error = (call);                                                   \
    if (check_cuda_error != cudaSuccess) {                                                   \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,                          \
              cudaGetErrorString(check_cuda_error));                                         \
      exit(1);                                                                               \
    }                                                                                        \
  } while (0)

/* NVLAR_TEST_QUICK=1 (set by scripts/gpu-check under compute-sanitizer, which slows kernels
 * down a hundredfold) asks tests for a smaller matrix; every code path is still taken. */
static inline int quick_mode(void) {
  const char *quick = getenv("NVLAR_TEST_QUICK");
  return quick != NULL && quick[0] == '1';
}

/* Whether an NVIDIA driver is installed (its libcuda.so.1 can be loaded). */
static inline int driver_installed(void) {
  void *driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (driver != NULL) dlclose(driver);
  return driver != NULL;
}

/* Exits with 77 unless at least `needed` GPUs are visible. Only "no GPU" skips (no driver
 * installed, or a driver that sees no device); any other error of CUDA's is a failure: a
 * broken driver must not read as a skip. */
static inline void require_gpus(int needed) {
  int count = 0;
  cudaError_t error = cudaGetDeviceCount(&count);
  int no_gpu = error == cudaErrorNoDevice ||
               (error == cudaErrorInsufficientDriver && !driver_installed());
  if (error != cudaSuccess && !no_gpu) {
    fprintf(stderr, "FAIL: CUDA cannot count the GPUs: %s\n", cudaGetErrorString(error));
    exit(1);
  }
  if (no_gpu || count < needed) {
    printf("SKIP: needs %d GPU(s), found %d (%s)\n", needed, no_gpu ? 0 : count,
           no_gpu ? cudaGetErrorString(error) : "ok");
    exit(GPU_TEST_SKIP);
  }
}

#endif
