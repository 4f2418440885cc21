/* ncclAllReduce: the hot path. One registry lookup and the communicator's state
 * (lifecycle.c), one table lookup (selection.c), the launch (route.c); no host synchronisation
 * and no NCCL call on nvlar's path, so it is safe under CUDA graph capture. It allocates only
 * once per captured graph: the graph's reference on the route (route.h). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "allreduce.h"
#include "export.h"
#include "lifecycle.h"
#include "log.h"
#include "nccl_api.h"
#include "real_nccl.h"

/* Bytes per element of each ncclDataType_t. */
static size_t element_size(ncclDataType_t datatype) {
  static const unsigned char sizes[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1};
  return (unsigned)datatype < sizeof(sizes) ? sizes[datatype] : 0;
}

/* The call's bytes, count x element size; false, with a WARN, when that overflows size_t.
 * Wrapped, it would be a small size that routing could send to a kernel; NCCL answers bad
 * arguments with ncclInvalidArgument, and so does nvlar. Same answer on every rank: it depends
 * on the count and datatype alone. */
static bool message_bytes(size_t count, size_t element, ncclComm_t comm, size_t *bytes) {
  if (!__builtin_mul_overflow(count, element, bytes)) return true;
  NVLAR_WARN("comm %p: AllReduce : count %zu of %zu-byte elements overflows the byte count; "
             "ncclInvalidArgument", (void *)comm, count, element);
  return false;
}

/* NCCL_CHECK_POINTERS=1, read once as NCCL reads it: NCCL then checks every buffer of every
 * call, and so does nvlar on its own path. */
static bool check_pointers(void) {
  static atomic_int cached = -1;
  int value = atomic_load_explicit(&cached, memory_order_relaxed);
  if (value < 0) {
    const char *env = getenv("NCCL_CHECK_POINTERS");
    value = env != NULL && strtol(env, NULL, 0) == 1;
    atomic_store_explicit(&cached, value, memory_order_relaxed);
  }
  return value != 0;
}

/* NCCL's CudaPtrCheck: a pointer CUDA knows, and if it is device memory, on the
 * communicator's device. */
static bool valid_buffer(const void *pointer, int device, const char *name, ncclComm_t comm) {
  struct cudaPointerAttributes attributes;
  cudaError_t error = cudaPointerGetAttributes(&attributes, pointer);
  if (error != cudaSuccess || attributes.devicePointer == NULL) {
    cudaGetLastError();
    NVLAR_WARN("comm %p: AllReduce : %s %p is not a valid pointer", (void *)comm, name, pointer);
    return false;
  }
  if (attributes.type == cudaMemoryTypeDevice && attributes.device != device) {
    NVLAR_WARN("comm %p: AllReduce : %s allocated on device %d mismatchs with NCCL device %d",
               (void *)comm, name, attributes.device, device);
    return false;
  }
  return true;
}

bool nvlar_allreduce_on_route(struct nvlar_route *route, const void *sendbuff, void *recvbuff,
                              size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                              cudaStream_t stream, ncclResult_t *result) {
  if (!nvlar_allreduce_supported((int)datatype, (int)op) || sendbuff == NULL || recvbuff == NULL) {
    return false;
  }
  size_t bytes = 0;
  if (!message_bytes(count, element_size(datatype), route->comm, &bytes)) {
    *result = ncclInvalidArgument;
    return true;
  }
  struct nvlar_choice choice = nvlar_select(&route->policy, bytes);
  if (!choice.nvlar) return false;
  if (check_pointers() && (!valid_buffer(sendbuff, route->device, "sendbuff", route->comm) ||
                           !valid_buffer(recvbuff, route->device, "recvbuff", route->comm))) {
    *result = ncclInvalidArgument; /* NCCL's answer for this call; the communicator is fine */
    return true;
  }
  struct nvlar_allreduce_args args;
  nvlar_route_call_args(route, choice, sendbuff, recvbuff, count, (int)datatype, (int)op, &args);
  cudaError_t error = nvlar_route_launch(route, &args, stream);
  if (error != cudaSuccess) {
    /* The peers launched theirs: NCCL is no way out now. As NCCL for a failed launch: this
     * call and every later one report the error. */
    cudaGetLastError();
    NVLAR_WARN("comm %p: launching the all-reduce kernel failed: %s; the communicator reports "
               "ncclUnhandledCudaError", (void *)route->comm, cudaGetErrorString(error));
    *result = ncclUnhandledCudaError;
    return true;
  }
  atomic_fetch_add_explicit(&route->calls[choice.algo], 1, memory_order_relaxed);
  NVLAR_TRACE("comm %p: all-reduce of %zu elements on nvlar (%s, %d CTAs)", (void *)route->comm,
              count, nvlar_algo_name(choice.algo), choice.nblocks);
  *result = ncclSuccess;
  return true;
}

/* One rank: every reduction of one value is that value, so the all-reduce is a copy (none in
 * place), for every type and built-in op. nvlar makes it itself: NCCL 2.28.9 leaves the last
 * elements of some out-of-place ncclAvg calls of one rank unwritten (docs/results.md). A
 * stream-ordered copy is captured into graphs like any work. */
static bool copy_on_single_rank(int device, const void *sendbuff, void *recvbuff, size_t count,
                                ncclDataType_t datatype, ncclRedOp_t op, cudaStream_t stream,
                                ncclComm_t comm, ncclResult_t *result) {
  size_t element = element_size(datatype);
  if (!nvlar_allreduce_supported((int)datatype, (int)op) || element == 0 || sendbuff == NULL ||
      recvbuff == NULL) {
    return false; /* NCCL's to answer (created ops, bad arguments) */
  }
  size_t bytes = 0;
  if (!message_bytes(count, element, comm, &bytes)) {
    *result = ncclInvalidArgument;
    return true;
  }
  if (check_pointers() && (!valid_buffer(sendbuff, device, "sendbuff", comm) ||
                           !valid_buffer(recvbuff, device, "recvbuff", comm))) {
    *result = ncclInvalidArgument;
    return true;
  }
  *result = ncclSuccess;
  if (sendbuff == recvbuff || count == 0) return true;
  int current = device;
  cudaGetDevice(&current);
  if (current != device) cudaSetDevice(device);
  cudaError_t error = cudaMemcpyAsync(recvbuff, sendbuff, bytes, cudaMemcpyDeviceToDevice,
                                      stream);
  if (current != device) cudaSetDevice(current);
  if (error != cudaSuccess) {
    cudaGetLastError();
    NVLAR_WARN("comm %p: the copy of a one-rank all-reduce failed: %s", (void *)comm,
               cudaGetErrorString(error));
    *result = ncclUnhandledCudaError;
  }
  return true;
}

ncclResult_t nvlar_allreduce(const struct nvlar_real_nccl *nccl, const void *sendbuff,
                             void *recvbuff, size_t count, ncclDataType_t datatype,
                             ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  struct nvlar_call call;
  enum nvlar_call_path path = nvlar_lifecycle_begin_call(comm, &call);
  ncclResult_t result = call.error;
  if (path == NVLAR_CALL_ROUTE) {
    if (nvlar_allreduce_on_route(call.route, sendbuff, recvbuff, count, datatype, op, stream,
                                 &result)) {
      if (result == ncclUnhandledCudaError) nvlar_lifecycle_fail(call.entry, result);
      nvlar_lifecycle_end_call(&call);
      return result;
    }
    atomic_fetch_add_explicit(&call.route->calls[NVLAR_ALGO_NCCL], 1, memory_order_relaxed);
  }
  if (path == NVLAR_CALL_SINGLE_RANK &&
      copy_on_single_rank(call.entry->single_rank_device, sendbuff, recvbuff, count, datatype,
                          op, stream, comm, &result)) {
    nvlar_lifecycle_end_call(&call);
    return result;
  }
  nvlar_lifecycle_end_call(&call);
  if (path == NVLAR_CALL_ERROR) return result;
  return nccl->ncclAllReduce(sendbuff, recvbuff, count, datatype, op, comm, stream);
}

NVLAR_EXPORT ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                                        ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                        cudaStream_t stream) {
  NVLAR_REAL_OR_RETURN(nccl, ncclAllReduce, ncclSystemError)
  return nvlar_allreduce(nccl, sendbuff, recvbuff, count, datatype, op, comm, stream);
}
