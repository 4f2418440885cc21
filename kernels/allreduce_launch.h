// Per-element-type launchers, one per kernels/allreduce_<type>.cu, used by allreduce.cu.
#pragma once

#include "nvlar_kernels.h"

#define NVLAR_ELEMENT_TYPES(X) \
  X(i8) X(u8) X(i32) X(u32) X(i64) X(u64) X(f16) X(f32) X(f64) X(bf16) X(e4m3) X(e5m2)

#define NVLAR_DECLARE_TYPED_LAUNCH(suffix)                                                    \
  cudaError_t nvlar_allreduce_launch_##suffix(const nvlar_allreduce_args *ranks, int nranks,  \
                                              bool emulated, cudaStream_t stream);        \
  cudaError_t nvlar_allreduce_load_##suffix(int op);                                          \
  cudaError_t nvlar_allreduce_occupancy_##suffix(int op, bool emulated, int algo, int *blocks_per_sm);
NVLAR_ELEMENT_TYPES(NVLAR_DECLARE_TYPED_LAUNCH)
#undef NVLAR_DECLARE_TYPED_LAUNCH
