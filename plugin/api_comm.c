/* Exported communicator life-cycle calls and ncclAllReduce.
 *
 * Each call goes to the real NCCL first; NCCL validates the arguments, and nvlar returns
 * whatever NCCL returned. Only a communicator that NCCL handed back (ncclSuccess, or
 * ncclInProgress for a non-blocking one) enters the registry, so a failed or half-made call
 * leaves no trace. Destroy and abort drop the entry before NCCL frees the communicator, so no
 * other lookup can find a communicator that is going away.
 */
#include "comm_registry.h"
#include "export.h"
#include "log.h"
#include "nccl_api.h"
#include "real_nccl.h"

static bool returned_a_communicator(ncclResult_t result) {
  return result == ncclSuccess || result == ncclInProgress;
}

static void register_comm(ncclComm_t comm, enum nvlar_comm_origin origin) {
  if (comm == NULL) return;
  if (!nvlar_registry_add(comm, origin)) {
    NVLAR_WARN("comm %p (%s): out of memory for nvlar's record; it stays on NCCL", (void *)comm,
               nvlar_comm_origin_name(origin));
    return;
  }
  NVLAR_INFO("comm %p created by %s; all-reduces go to NCCL", (void *)comm,
             nvlar_comm_origin_name(origin));
}

NVLAR_EXPORT ncclResult_t ncclCommInitRank(ncclComm_t *comm, int nranks, ncclUniqueId commId,
                                           int rank) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommInitRank, ncclSystemError)
  ncclResult_t result = nccl->ncclCommInitRank(comm, nranks, commId, rank);
  if (returned_a_communicator(result) && comm != NULL) register_comm(*comm, NVLAR_ORIGIN_INIT_RANK);
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks,
                                                 ncclUniqueId commId, int rank,
                                                 ncclConfig_t *config) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommInitRankConfig, ncclSystemError)
  ncclResult_t result = nccl->ncclCommInitRankConfig(comm, nranks, commId, rank, config);
  if (returned_a_communicator(result) && comm != NULL) {
    register_comm(*comm, NVLAR_ORIGIN_INIT_RANK_CONFIG);
  }
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommInitAll(ncclComm_t *comm, int ndev, const int *devlist) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommInitAll, ncclSystemError)
  ncclResult_t result = nccl->ncclCommInitAll(comm, ndev, devlist);
  if (returned_a_communicator(result) && comm != NULL) {
    for (int i = 0; i < ndev; i++) register_comm(comm[i], NVLAR_ORIGIN_INIT_ALL);
  }
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommInitRankScalable(ncclComm_t *newcomm, int nranks, int myrank,
                                                   int nId, ncclUniqueId *commIds,
                                                   ncclConfig_t *config) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommInitRankScalable, ncclSystemError)
  ncclResult_t result =
      nccl->ncclCommInitRankScalable(newcomm, nranks, myrank, nId, commIds, config);
  if (returned_a_communicator(result) && newcomm != NULL) {
    register_comm(*newcomm, NVLAR_ORIGIN_INIT_RANK_SCALABLE);
  }
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t *newcomm,
                                        ncclConfig_t *config) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommSplit, ncclSystemError)
  ncclResult_t result = nccl->ncclCommSplit(comm, color, key, newcomm, config);
  /* A rank that passed NCCL_SPLIT_NOCOLOR gets NULL: nothing to record. */
  if (returned_a_communicator(result) && newcomm != NULL) register_comm(*newcomm, NVLAR_ORIGIN_SPLIT);
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommShrink(ncclComm_t comm, int *excludeRanksList,
                                         int excludeRanksCount, ncclComm_t *newcomm,
                                         ncclConfig_t *config, int shrinkFlags) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommShrink, ncclSystemError)
  ncclResult_t result = nccl->ncclCommShrink(comm, excludeRanksList, excludeRanksCount, newcomm,
                                             config, shrinkFlags);
  if (returned_a_communicator(result) && newcomm != NULL) register_comm(*newcomm, NVLAR_ORIGIN_SHRINK);
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommFinalize(ncclComm_t comm) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommFinalize, ncclSystemError)
  ncclResult_t result = nccl->ncclCommFinalize(comm);
  if (returned_a_communicator(result)) nvlar_registry_set_state(comm, NVLAR_COMM_FINALIZED);
  return result;
}

NVLAR_EXPORT ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommDestroy, ncclSystemError)
  if (nvlar_registry_remove(comm)) NVLAR_INFO("comm %p destroyed", (void *)comm);
  return nccl->ncclCommDestroy(comm);
}

NVLAR_EXPORT ncclResult_t ncclCommAbort(ncclComm_t comm) {
  NVLAR_REAL_OR_RETURN(nccl, ncclCommAbort, ncclSystemError)
  if (nvlar_registry_remove(comm)) NVLAR_INFO("comm %p aborted", (void *)comm);
  return nccl->ncclCommAbort(comm);
}

/* The routing point for nvlar's kernels; until they exist every call goes to NCCL. */
NVLAR_EXPORT ncclResult_t ncclAllReduce(const void *sendbuff, void *recvbuff, size_t count,
                                        ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm,
                                        cudaStream_t stream) {
  NVLAR_REAL_OR_RETURN(nccl, ncclAllReduce, ncclSystemError)
  return nccl->ncclAllReduce(sendbuff, recvbuff, count, datatype, op, comm, stream);
}
