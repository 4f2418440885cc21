/* C declarations of NCCL 2.28's device-API host functions and the types they take.
 *
 * NCCL declares these in its C++-only nccl_device headers. libnvlar only forwards them, so
 * every type that crosses the boundary by pointer stays incomplete here. ncclTeam_t crosses by
 * value (argument and return), so its layout is repeated exactly: three ints, as in
 * nccl_device/core.h of NCCL 2.28. The static assert keeps that fact checked.
 */
#ifndef NVLAR_NCCL_DEVICE_ABI_H
#define NVLAR_NCCL_DEVICE_ABI_H

#include <assert.h>
#include <stddef.h>

#include <nccl.h>

struct ncclTeam {
  int nRanks, rank, stride;
};
typedef struct ncclTeam ncclTeam_t;
static_assert(sizeof(ncclTeam_t) == 12 && offsetof(ncclTeam_t, stride) == 8,
              "ncclTeam_t must match NCCL 2.28's layout");

typedef struct ncclDevComm ncclDevComm_t;
typedef struct ncclDevCommRequirements ncclDevCommRequirements_t;
typedef struct ncclDevResourceRequirements ncclDevResourceRequirements_t;
typedef struct ncclLsaBarrierHandle ncclLsaBarrierHandle_t;
typedef struct ncclGinBarrierHandle ncclGinBarrierHandle_t;
typedef struct ncclLLA2AHandle ncclLLA2AHandle_t;

ncclResult_t ncclDevCommCreate(ncclComm_t comm, ncclDevCommRequirements_t const *reqs,
                               ncclDevComm_t *outDevComm);
ncclResult_t ncclDevCommDestroy(ncclComm_t comm, ncclDevComm_t const *devComm);
ncclTeam_t ncclTeamWorld(ncclComm_t comm);
ncclTeam_t ncclTeamLsa(ncclComm_t comm);
ncclTeam_t ncclTeamRail(ncclComm_t comm);
int ncclTeamRankToWorld(ncclComm_t comm, ncclTeam_t team, int rank);
int ncclTeamRankToLsa(ncclComm_t comm, ncclTeam_t team, int rank);
ncclResult_t ncclGinBarrierCreateRequirement(ncclComm_t comm, ncclTeam_t team, int nBarriers,
                                             ncclGinBarrierHandle_t *outHandle,
                                             ncclDevResourceRequirements_t *outReq);
ncclResult_t ncclLsaBarrierCreateRequirement(ncclTeam_t team, int nBarriers,
                                             ncclLsaBarrierHandle_t *outHandle,
                                             ncclDevResourceRequirements_t *outReq);
int ncclLLA2ACalcSlots(int maxElts, int maxEltSize);
ncclResult_t ncclLLA2ACreateRequirement(int nBlocks, int nSlots, ncclLLA2AHandle_t *outHandle,
                                        ncclDevResourceRequirements_t *outReq);

/* Not in any NCCL header, but exported by libnccl.so.2 (void, no arguments). */
void ncclResetDebugInitInternal(void);

#endif
