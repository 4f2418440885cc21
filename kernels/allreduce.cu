// The C launch API of the all-reduce kernels: argument checks and dispatch by element type.
#include "allreduce_launch.h"
#include "nvlar_kernels.h"

namespace {

// Indexed by ncclDataType_t (ncclInt8 = 0 ... ncclFloat8e5m2 = 11).
using TypedLaunch = cudaError_t (*)(const nvlar_allreduce_args *, cudaStream_t);
#define NVLAR_LAUNCHER(suffix) nvlar_allreduce_launch_##suffix,
const TypedLaunch typed_launchers[] = {NVLAR_ELEMENT_TYPES(NVLAR_LAUNCHER)};
#undef NVLAR_LAUNCHER
using TypedOccupancy = cudaError_t (*)(int, int, int *);
#define NVLAR_OCCUPANCY(suffix) nvlar_allreduce_occupancy_##suffix,
const TypedOccupancy typed_occupancy[] = {NVLAR_ELEMENT_TYPES(NVLAR_OCCUPANCY)};
#undef NVLAR_OCCUPANCY
using TypedLoad = cudaError_t (*)(int);
#define NVLAR_LOAD(suffix) nvlar_allreduce_load_##suffix,
const TypedLoad typed_load[] = {NVLAR_ELEMENT_TYPES(NVLAR_LOAD)};
#undef NVLAR_LOAD
constexpr int kTypes = sizeof(typed_launchers) / sizeof(typed_launchers[0]);

}  // namespace

extern "C" int nvlar_allreduce_supported(int datatype, int op) {
  return datatype >= 0 && datatype < kTypes && op >= 0 && op < kNvlarOps;
}

extern "C" cudaError_t nvlar_allreduce_check(const nvlar_allreduce_args *a) {
  if (a == nullptr || !nvlar_allreduce_supported(a->datatype, a->op)) return cudaErrorInvalidValue;
  if (a->nranks < 2 || a->nranks > NVLAR_MAX_RANKS || a->rank < 0 || a->rank >= a->nranks) {
    return cudaErrorInvalidValue;
  }
  if (a->algo < 0 || a->algo >= NVLAR_ALGO_COUNT) return cudaErrorInvalidValue;
  if (a->nblocks < 1 || a->nblocks > NVLAR_MAX_BLOCKS || a->timeout_ns == 0 ||
      a->test_skew_ns > 1000000) {
    return cudaErrorInvalidValue;
  }
  // Each staging half must hold a whole number of 16-byte packs for the two-shot's two areas.
  if (a->staging_bytes < (64u << 10) || a->staging_bytes % 256 != 0) return cudaErrorInvalidValue;
  if (a->state == nullptr || (a->count > 0 && (a->input == nullptr || a->output == nullptr))) {
    return cudaErrorInvalidValue;
  }
  for (int p = 0; p < a->nranks; p++) {
    if (a->staging[p] == nullptr || a->signals[p] == nullptr) return cudaErrorInvalidValue;
    if (a->algo == NVLAR_ALGO_PUSH && a->push[p] == nullptr) return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

extern "C" cudaError_t nvlar_allreduce_launch(const nvlar_allreduce_args *args,
                                              cudaStream_t stream) {
  cudaError_t error = nvlar_allreduce_check(args);
  if (error != cudaSuccess) return error;
  return typed_launchers[args->datatype](args, stream);
}

extern "C" cudaError_t nvlar_allreduce_occupancy(int algo, int datatype, int op,
                                                 int *blocks_per_sm) {
  if (blocks_per_sm == nullptr || !nvlar_allreduce_supported(datatype, op)) return cudaErrorInvalidValue;
  return typed_occupancy[datatype](op, algo, blocks_per_sm);
}

extern "C" cudaError_t nvlar_kernels_load(void) {
  cudaError_t error = cudaSuccess;
  for (int type = 0; type < kTypes && error == cudaSuccess; type++) {
    for (int op = 0; op < kNvlarOps && error == cudaSuccess; op++) error = typed_load[type](op);
  }
  return error;
}
