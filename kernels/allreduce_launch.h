// Per-element-type entry points, one set per kernels/allreduce_<type>.cu: the real ranks'
// (libnvlar, used by allreduce.cu) and the emulated ranks' (the same file built with
// NVLAR_EMULATED_BUILD=1 into the test-only library, used by emulated.cu).
#pragma once

#include "nvlar_kernels.h"

#ifndef NVLAR_EMULATED_BUILD
#define NVLAR_EMULATED_BUILD 0
#endif

#define NVLAR_ELEMENT_TYPES(X) \
  X(i8) X(u8) X(i32) X(u32) X(i64) X(u64) X(f16) X(f32) X(f64) X(bf16) X(e4m3) X(e5m2)

#define NVLAR_DECLARE_TYPED_LAUNCH(suffix)                                                      \
  cudaError_t nvlar_allreduce_launch_##suffix(const nvlar_allreduce_args *args,                 \
                                              cudaStream_t stream);                             \
  cudaError_t nvlar_allreduce_load_##suffix(int op);                                            \
  cudaError_t nvlar_allreduce_occupancy_##suffix(int op, int algo, int *blocks_per_sm);         \
  cudaError_t nvlar_emulated_launch_##suffix(const nvlar_allreduce_args *ranks, int nranks,     \
                                             cudaStream_t stream);                              \
  cudaError_t nvlar_emulated_load_##suffix(int op);                                             \
  cudaError_t nvlar_emulated_occupancy_##suffix(int op, int algo, int *blocks_per_sm);
NVLAR_ELEMENT_TYPES(NVLAR_DECLARE_TYPED_LAUNCH)
#undef NVLAR_DECLARE_TYPED_LAUNCH

// The kinds of operation the C API has (kernels/allreduce.cu, kernels/emulated.cu).
constexpr int kNvlarOps = 5;  // ncclSum, ncclProd, ncclMax, ncclMin, ncclAvg
