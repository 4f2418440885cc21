// The C API of ranks emulated on one GPU (nvlar_emulation.h), for tests and the benchmark:
// argument checks and dispatch by element type to the emulated kernels, which the typed
// sources instantiate when built with NVLAR_EMULATED_BUILD=1. Not part of libnvlar.
#include "allreduce_launch.h"
#include "nvlar_emulation.h"

namespace {

// Indexed by ncclDataType_t (ncclInt8 = 0 ... ncclFloat8e5m2 = 11).
using TypedLaunch = cudaError_t (*)(const nvlar_allreduce_args *, int, cudaStream_t);
#define NVLAR_LAUNCHER(suffix) nvlar_emulated_launch_##suffix,
const TypedLaunch typed_launchers[] = {NVLAR_ELEMENT_TYPES(NVLAR_LAUNCHER)};
#undef NVLAR_LAUNCHER
using TypedOccupancy = cudaError_t (*)(int, int, int *);
#define NVLAR_OCCUPANCY(suffix) nvlar_emulated_occupancy_##suffix,
const TypedOccupancy typed_occupancy[] = {NVLAR_ELEMENT_TYPES(NVLAR_OCCUPANCY)};
#undef NVLAR_OCCUPANCY
using TypedLoad = cudaError_t (*)(int);
#define NVLAR_LOAD(suffix) nvlar_emulated_load_##suffix,
const TypedLoad typed_load[] = {NVLAR_ELEMENT_TYPES(NVLAR_LOAD)};
#undef NVLAR_LOAD
constexpr int kTypes = sizeof(typed_launchers) / sizeof(typed_launchers[0]);

// The fields every rank of one call must agree on.
bool same_call(const nvlar_allreduce_args &a, const nvlar_allreduce_args &b) {
  return a.nranks == b.nranks && a.algo == b.algo && a.datatype == b.datatype && a.op == b.op &&
         a.nblocks == b.nblocks && a.count == b.count && a.staging_bytes == b.staging_bytes;
}

__global__ void empty_kernel() {}

}  // namespace

extern "C" cudaError_t nvlar_allreduce_launch_emulated(const nvlar_allreduce_args *ranks,
                                                       int nranks, cudaStream_t stream) {
  if (ranks == nullptr || nranks < 2 || nranks > NVLAR_MAX_RANKS) return cudaErrorInvalidValue;
  for (int r = 0; r < nranks; r++) {
    cudaError_t error = nvlar_allreduce_check(&ranks[r]);
    if (error != cudaSuccess) return error;
    if (ranks[r].rank != r || ranks[r].nranks != nranks || !same_call(ranks[0], ranks[r])) {
      return cudaErrorInvalidValue;
    }
  }
  return typed_launchers[ranks[0].datatype](ranks, nranks, stream);
}

extern "C" cudaError_t nvlar_emulated_occupancy(int algo, int datatype, int op,
                                                int *blocks_per_sm) {
  if (blocks_per_sm == nullptr || !nvlar_allreduce_supported(datatype, op)) return cudaErrorInvalidValue;
  return typed_occupancy[datatype](op, algo, blocks_per_sm);
}

extern "C" cudaError_t nvlar_emulated_kernels_load(void) {
  cudaError_t error = cudaSuccess;
  for (int type = 0; type < kTypes && error == cudaSuccess; type++) {
    for (int op = 0; op < kNvlarOps && error == cudaSuccess; op++) error = typed_load[type](op);
  }
  cudaFuncAttributes attributes;
  if (error == cudaSuccess) error = cudaFuncGetAttributes(&attributes, empty_kernel);
  return error;
}

extern "C" cudaError_t nvlar_empty_launch(int nblocks, int nranks, cudaStream_t stream) {
  if (nblocks < 1 || nranks < 1) return cudaErrorInvalidValue;
  empty_kernel<<<dim3(nblocks, nranks), NVLAR_THREADS, 0, stream>>>();
  return cudaGetLastError();
}
