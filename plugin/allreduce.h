/* nvlar's ncclAllReduce, behind the export, so that the tests can call it with an NCCL table of
 * their own. */
#ifndef NVLAR_ALLREDUCE_H
#define NVLAR_ALLREDUCE_H

#include <stdbool.h>

#include "real_nccl.h"
#include "route.h"

/* ncclAllReduce through `nccl`: on the communicator's route when it is running and the call is
 * eligible, the communicator's error when it failed, else NCCL's. */
ncclResult_t nvlar_allreduce(const struct nvlar_real_nccl *nccl, const void *sendbuff,
                             void *recvbuff, size_t count, ncclDataType_t datatype,
                             ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);

/* Launches an eligible call on `route` and sets *result; false when the call belongs to NCCL.
 * Every input to the decision is the same on every rank: the route's policy (agreed at
 * setup), the count, datatype and op. The buffer checks only keep NCCL's error codes (NULL
 * buffers; with NCCL_CHECK_POINTERS=1, NCCL's pointer checks). */
bool nvlar_allreduce_on_route(struct nvlar_route *route, const void *sendbuff, void *recvbuff,
                              size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                              cudaStream_t stream, ncclResult_t *result);

#endif
