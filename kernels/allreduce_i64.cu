// All-reduce kernels for one element type; see allreduce.cuh.
#include "allreduce.cuh"
#include "allreduce_launch.h"

NVLAR_DEFINE_TYPED_LAUNCH(i64, int64_t)
