/* What both of nvlar-bench's modes share (bench.h): the names of NCCL's types and operators,
 * the median's comparison, the all-reduces' stream. */
#include "bench.h"

/* ncclDataType_t order: int8 0 ... fp8e5m2 11; ncclRedOp_t: sum 0 ... avg 4. */
const char *const bench_type_names[] = {"int8", "uint8", "int32", "uint32", "int64", "uint64",
                                        "float16", "float32", "float64", "bfloat16",
                                        "fp8e4m3", "fp8e5m2"};
const size_t bench_type_sizes[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1};
const char *const bench_op_names[] = {"sum", "prod", "max", "min", "avg"};

int bench_compare_floats(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return (x > y) - (x < y);
}

cudaError_t bench_stream_create(cudaStream_t *stream, int high_priority) {
  int least = 0, greatest = 0; /* numerically, the greatest priority is the smallest */
  cudaError_t error = cudaDeviceGetStreamPriorityRange(&least, &greatest);
  if (error != cudaSuccess) return error;
  return cudaStreamCreateWithPriority(stream, cudaStreamNonBlocking,
                                      high_priority ? greatest : least);
}
