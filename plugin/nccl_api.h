/* The public NCCL 2.28 API that libnvlar.so exports, as X-macro lists.
 *
 * One list is the single source of truth for: the exported wrappers, the table of the real
 * NCCL's entry points (plugin/real_nccl.c), and the tests that check the exported set.
 *
 * Each entry is X(return type, name, (parameters), (arguments), value when NCCL is missing).
 *
 *   NVLAR_API_FORWARDED  plain forwards, generated in plugin/api_forward.c
 *   NVLAR_API_WRAPPED    hand-written wrappers (plugin/api_comm.c, plugin/api_forward.c):
 *                        communicator life cycle (revoke included), groups (grouped inits
 *                        finish there),
 *                        ncclCommGetAsyncError (kernel failures), ncclAllReduce, and the calls
 *                        whose return type cannot carry ncclSystemError (strings, void)
 *
 * The prototypes of the core API come from NCCL's own nccl.h, so the compiler checks every
 * definition against it. The device-API host functions are declared in C++ headers only
 * (the nccl_device/ folder); plugin/nccl_device_abi.h declares them for C.
 */
#ifndef NVLAR_NCCL_API_H
#define NVLAR_NCCL_API_H

#include <nccl.h>

#include "nccl_device_abi.h"

#define NVLAR_API_FORWARDED(X)                                                                 \
  X(ncclResult_t, ncclMemAlloc, (void **ptr, size_t size), (ptr, size), ncclSystemError)       \
  X(ncclResult_t, ncclMemFree, (void *ptr), (ptr), ncclSystemError)                            \
  X(ncclResult_t, ncclGetVersion, (int *version), (version), ncclSystemError)                  \
  X(ncclResult_t, ncclGetUniqueId, (ncclUniqueId * uniqueId), (uniqueId), ncclSystemError)     \
  X(ncclResult_t, ncclCommCount, (const ncclComm_t comm, int *count), (comm, count),           \
    ncclSystemError)                                                                           \
  X(ncclResult_t, ncclCommCuDevice, (const ncclComm_t comm, int *device), (comm, device),      \
    ncclSystemError)                                                                           \
  X(ncclResult_t, ncclCommUserRank, (const ncclComm_t comm, int *rank), (comm, rank),          \
    ncclSystemError)                                                                           \
  X(ncclResult_t, ncclCommRegister,                                                            \
    (const ncclComm_t comm, void *buff, size_t size, void **handle),                           \
    (comm, buff, size, handle), ncclSystemError)                                               \
  X(ncclResult_t, ncclCommDeregister, (const ncclComm_t comm, void *handle), (comm, handle),   \
    ncclSystemError)                                                                           \
  X(ncclResult_t, ncclCommWindowRegister,                                                      \
    (ncclComm_t comm, void *buff, size_t size, ncclWindow_t *win, int winFlags),               \
    (comm, buff, size, win, winFlags), ncclSystemError)                                        \
  X(ncclResult_t, ncclCommWindowDeregister, (ncclComm_t comm, ncclWindow_t win), (comm, win),  \
    ncclSystemError)                                                                           \
  X(ncclResult_t, ncclRedOpCreatePreMulSum,                                                    \
    (ncclRedOp_t * op, void *scalar, ncclDataType_t datatype,                                  \
     ncclScalarResidence_t residence, ncclComm_t comm),                                        \
    (op, scalar, datatype, residence, comm), ncclSystemError)                                  \
  X(ncclResult_t, ncclRedOpDestroy, (ncclRedOp_t op, ncclComm_t comm), (op, comm),             \
    ncclSystemError)                                                                           \
  X(ncclResult_t, ncclReduce,                                                                  \
    (const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,              \
     ncclRedOp_t op, int root, ncclComm_t comm, cudaStream_t stream),                          \
    (sendbuff, recvbuff, count, datatype, op, root, comm, stream), ncclSystemError)            \
  X(ncclResult_t, ncclBcast,                                                                   \
    (void *buff, size_t count, ncclDataType_t datatype, int root, ncclComm_t comm,             \
     cudaStream_t stream),                                                                     \
    (buff, count, datatype, root, comm, stream), ncclSystemError)                              \
  X(ncclResult_t, ncclBroadcast,                                                               \
    (const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root,    \
     ncclComm_t comm, cudaStream_t stream),                                                    \
    (sendbuff, recvbuff, count, datatype, root, comm, stream), ncclSystemError)                \
  X(ncclResult_t, ncclReduceScatter,                                                           \
    (const void *sendbuff, void *recvbuff, size_t recvcount, ncclDataType_t datatype,          \
     ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream),                                    \
    (sendbuff, recvbuff, recvcount, datatype, op, comm, stream), ncclSystemError)              \
  X(ncclResult_t, ncclAllGather,                                                               \
    (const void *sendbuff, void *recvbuff, size_t sendcount, ncclDataType_t datatype,          \
     ncclComm_t comm, cudaStream_t stream),                                                    \
    (sendbuff, recvbuff, sendcount, datatype, comm, stream), ncclSystemError)                  \
  X(ncclResult_t, ncclAlltoAll,                                                                \
    (const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,              \
     ncclComm_t comm, cudaStream_t stream),                                                    \
    (sendbuff, recvbuff, count, datatype, comm, stream), ncclSystemError)                      \
  X(ncclResult_t, ncclGather,                                                                  \
    (const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root,    \
     ncclComm_t comm, cudaStream_t stream),                                                    \
    (sendbuff, recvbuff, count, datatype, root, comm, stream), ncclSystemError)                \
  X(ncclResult_t, ncclScatter,                                                                 \
    (const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype, int root,    \
     ncclComm_t comm, cudaStream_t stream),                                                    \
    (sendbuff, recvbuff, count, datatype, root, comm, stream), ncclSystemError)                \
  X(ncclResult_t, ncclSend,                                                                    \
    (const void *sendbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,   \
     cudaStream_t stream),                                                                     \
    (sendbuff, count, datatype, peer, comm, stream), ncclSystemError)                          \
  X(ncclResult_t, ncclRecv,                                                                    \
    (void *recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,         \
     cudaStream_t stream),                                                                     \
    (recvbuff, count, datatype, peer, comm, stream), ncclSystemError)                          \
  X(ncclResult_t, ncclDevCommCreate,                                                           \
    (ncclComm_t comm, ncclDevCommRequirements_t const *reqs, ncclDevComm_t *outDevComm),       \
    (comm, reqs, outDevComm), ncclSystemError)                                                 \
  X(ncclResult_t, ncclDevCommDestroy, (ncclComm_t comm, ncclDevComm_t const *devComm),         \
    (comm, devComm), ncclSystemError)                                                          \
  X(ncclTeam_t, ncclTeamWorld, (ncclComm_t comm), (comm), nvlar_no_team)                       \
  X(ncclTeam_t, ncclTeamLsa, (ncclComm_t comm), (comm), nvlar_no_team)                         \
  X(ncclTeam_t, ncclTeamRail, (ncclComm_t comm), (comm), nvlar_no_team)                        \
  X(int, ncclTeamRankToWorld, (ncclComm_t comm, ncclTeam_t team, int rank),                    \
    (comm, team, rank), -1)                                                                    \
  X(int, ncclTeamRankToLsa, (ncclComm_t comm, ncclTeam_t team, int rank), (comm, team, rank), \
    -1)                                                                                        \
  X(ncclResult_t, ncclGinBarrierCreateRequirement,                                             \
    (ncclComm_t comm, ncclTeam_t team, int nBarriers, ncclGinBarrierHandle_t *outHandle,       \
     ncclDevResourceRequirements_t *outReq),                                                   \
    (comm, team, nBarriers, outHandle, outReq), ncclSystemError)                               \
  X(ncclResult_t, ncclLsaBarrierCreateRequirement,                                             \
    (ncclTeam_t team, int nBarriers, ncclLsaBarrierHandle_t *outHandle,                        \
     ncclDevResourceRequirements_t *outReq),                                                   \
    (team, nBarriers, outHandle, outReq), ncclSystemError)                                     \
  X(int, ncclLLA2ACalcSlots, (int maxElts, int maxEltSize), (maxElts, maxEltSize), 0)          \
  X(ncclResult_t, ncclLLA2ACreateRequirement,                                                  \
    (int nBlocks, int nSlots, ncclLLA2AHandle_t *outHandle,                                    \
     ncclDevResourceRequirements_t *outReq),                                                   \
    (nBlocks, nSlots, outHandle, outReq), ncclSystemError)

#define NVLAR_API_WRAPPED(X)                                                                   \
  X(ncclResult_t, ncclGroupStart, (void), (), ncclSystemError)                                 \
  X(ncclResult_t, ncclGroupEnd, (void), (), ncclSystemError)                                   \
  X(ncclResult_t, ncclGroupSimulateEnd, (ncclSimInfo_t * simInfo), (simInfo),                  \
    ncclSystemError)                                                                           \
  X(ncclResult_t, ncclCommGetAsyncError, (ncclComm_t comm, ncclResult_t * asyncError),         \
    (comm, asyncError), ncclSystemError)                                                       \
  X(const char *, ncclGetErrorString, (ncclResult_t result), (result),                         \
    nvlar_error_string(result))                                                                \
  X(const char *, ncclGetLastError, (ncclComm_t comm), (comm), nvlar_missing_nccl_message())   \
  X(void, ncclResetDebugInit, (void), (), (void)0)                                             \
  X(void, ncclResetDebugInitInternal, (void), (), (void)0)                                     \
  X(ncclResult_t, ncclCommInitRankConfig,                                                      \
    (ncclComm_t * comm, int nranks, ncclUniqueId commId, int rank, ncclConfig_t *config),      \
    (comm, nranks, commId, rank, config), ncclSystemError)                                     \
  X(ncclResult_t, ncclCommInitRank,                                                            \
    (ncclComm_t * comm, int nranks, ncclUniqueId commId, int rank),                            \
    (comm, nranks, commId, rank), ncclSystemError)                                             \
  X(ncclResult_t, ncclCommInitAll, (ncclComm_t * comm, int ndev, const int *devlist),          \
    (comm, ndev, devlist), ncclSystemError)                                                    \
  X(ncclResult_t, ncclCommInitRankScalable,                                                    \
    (ncclComm_t * newcomm, int nranks, int myrank, int nId, ncclUniqueId *commIds,             \
     ncclConfig_t *config),                                                                    \
    (newcomm, nranks, myrank, nId, commIds, config), ncclSystemError)                          \
  X(ncclResult_t, ncclCommSplit,                                                               \
    (ncclComm_t comm, int color, int key, ncclComm_t *newcomm, ncclConfig_t *config),          \
    (comm, color, key, newcomm, config), ncclSystemError)                                      \
  X(ncclResult_t, ncclCommShrink,                                                              \
    (ncclComm_t comm, int *excludeRanksList, int excludeRanksCount, ncclComm_t *newcomm,       \
     ncclConfig_t *config, int shrinkFlags),                                                   \
    (comm, excludeRanksList, excludeRanksCount, newcomm, config, shrinkFlags),                 \
    ncclSystemError)                                                                           \
  X(ncclResult_t, ncclCommFinalize, (ncclComm_t comm), (comm), ncclSystemError)                \
  X(ncclResult_t, ncclCommDestroy, (ncclComm_t comm), (comm), ncclSystemError)                 \
  X(ncclResult_t, ncclCommAbort, (ncclComm_t comm), (comm), ncclSystemError)                   \
  X(ncclResult_t, ncclCommRevoke, (ncclComm_t comm, int revokeFlags), (comm, revokeFlags),     \
    ncclSystemError)                                                                           \
  X(ncclResult_t, ncclAllReduce,                                                               \
    (const void *sendbuff, void *recvbuff, size_t count, ncclDataType_t datatype,              \
     ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream),                                    \
    (sendbuff, recvbuff, count, datatype, op, comm, stream), ncclSystemError)

#define NVLAR_API_ALL(X) NVLAR_API_FORWARDED(X) NVLAR_API_WRAPPED(X)

/* Counts every exported API function; tests use it to prove that nothing is left out. */
#define NVLAR_API_COUNT_ONE(ret, name, params, args, missing) +1
enum { NVLAR_API_COUNT = 0 NVLAR_API_ALL(NVLAR_API_COUNT_ONE) };

/* Values returned where the return type cannot say ncclSystemError. */
extern const ncclTeam_t nvlar_no_team;
const char *nvlar_error_string(ncclResult_t result);
const char *nvlar_missing_nccl_message(void);

#endif
