// The C launch API of the all-reduce kernels: argument checks and dispatch by element type.
#include "allreduce_launch.h"
#include "nvlar_kernels.h"

namespace {

// Indexed by ncclDataType_t (ncclInt8 = 0 ... ncclFloat8e5m2 = 11).
using TypedLaunch = cudaError_t (*)(const nvlar_allreduce_args *, int, bool, cudaStream_t);
#define NVLAR_LAUNCHER(suffix) nvlar_allreduce_launch_##suffix,
const TypedLaunch typed_launchers[] = {NVLAR_ELEMENT_TYPES(NVLAR_LAUNCHER)};
#undef NVLAR_LAUNCHER
using TypedOccupancy = cudaError_t (*)(int, bool, int, int *);
#define NVLAR_OCCUPANCY(suffix) nvlar_allreduce_occupancy_##suffix,
const TypedOccupancy typed_occupancy[] = {NVLAR_ELEMENT_TYPES(NVLAR_OCCUPANCY)};
#undef NVLAR_OCCUPANCY
using TypedLoad = cudaError_t (*)(int);
#define NVLAR_LOAD(suffix) nvlar_allreduce_load_##suffix,
const TypedLoad typed_load[] = {NVLAR_ELEMENT_TYPES(NVLAR_LOAD)};
#undef NVLAR_LOAD
constexpr int kTypes = sizeof(typed_launchers) / sizeof(typed_launchers[0]);
constexpr int kOps = 5;  // ncclSum, ncclProd, ncclMax, ncclMin, ncclAvg

// The fields every rank of one call must agree on.
bool same_call(const nvlar_allreduce_args &a, const nvlar_allreduce_args &b) {
  return a.nranks == b.nranks && a.algo == b.algo && a.datatype == b.datatype && a.op == b.op &&
         a.nblocks == b.nblocks && a.count == b.count && a.staging_bytes == b.staging_bytes;
}

}  // namespace

extern "C" int nvlar_allreduce_supported(int datatype, int op) {
  return datatype >= 0 && datatype < kTypes && op >= 0 && op < kOps;
}

extern "C" cudaError_t nvlar_allreduce_check(const nvlar_allreduce_args *a) {
  if (a == nullptr || !nvlar_allreduce_supported(a->datatype, a->op)) return cudaErrorInvalidValue;
  if (a->nranks < 2 || a->nranks > NVLAR_MAX_RANKS || a->rank < 0 || a->rank >= a->nranks) {
    return cudaErrorInvalidValue;
  }
  if (a->algo < 0 || a->algo >= NVLAR_ALGO_COUNT) return cudaErrorInvalidValue;
  if (a->nblocks < 1 || a->nblocks > NVLAR_MAX_BLOCKS || a->timeout_ns == 0) {
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
  return typed_launchers[args->datatype](args, 1, false, stream);
}

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
  return typed_launchers[ranks[0].datatype](ranks, nranks, true, stream);
}

extern "C" cudaError_t nvlar_allreduce_occupancy(int algo, int datatype, int op, int emulated,
                                                 int *blocks_per_sm) {
  if (blocks_per_sm == nullptr || !nvlar_allreduce_supported(datatype, op)) return cudaErrorInvalidValue;
  return typed_occupancy[datatype](op, emulated != 0, algo, blocks_per_sm);
}

namespace {
__global__ void empty_kernel() {}
}  // namespace

extern "C" cudaError_t nvlar_kernels_load(void) {
  cudaError_t error = cudaSuccess;
  for (int type = 0; type < kTypes && error == cudaSuccess; type++) {
    for (int op = 0; op < kOps && error == cudaSuccess; op++) error = typed_load[type](op);
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
