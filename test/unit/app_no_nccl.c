/* Helper for test_loading: a program linked against libnvlar only, run where no NCCL can be
 * loaded. Every exported function must fail cleanly: ncclSystemError, or for the few whose type
 * cannot say so, a defined stand-in value. Exits 0 when every function behaved, 1 otherwise. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "api_table.h"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* ncclResetDebugInit */

static bool called[NVLAR_API_COUNT];
static int failures;

static void mark_called(const char *name) {
  for (size_t i = 0; i < NVLAR_API_COUNT; i++) {
    if (strcmp(nvlar_test_api_names[i], name) == 0) called[i] = true;
  }
}

static void expect(const char *name, bool ok, const char *what) {
  mark_called(name);
  if (!ok) {
    printf("FAIL %s: %s\n", name, what);
    failures++;
  }
}

#define EXPECT_SYSTEM_ERROR(name, ...) \
  expect(#name, name(__VA_ARGS__) == ncclSystemError, "did not return ncclSystemError")

int main(void) {
  ncclComm_t comm = NULL, newcomm = NULL;
  ncclUniqueId id;
  memset(&id, 0, sizeof(id));
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  ncclSimInfo_t sim = NCCL_SIM_INFO_INITIALIZER;
  ncclResult_t async_error = ncclSuccess;
  ncclRedOp_t op = ncclSum;
  ncclWindow_t window = NULL;
  ncclTeam_t team = {1, 0, 1};
  int value = 0, devices[1] = {0};
  void *pointer = NULL;
  float scalar = 1.0f;

  EXPECT_SYSTEM_ERROR(ncclMemAlloc, &pointer, 64);
  EXPECT_SYSTEM_ERROR(ncclMemFree, pointer);
  EXPECT_SYSTEM_ERROR(ncclGetVersion, &value);
  EXPECT_SYSTEM_ERROR(ncclGetUniqueId, &id);
  EXPECT_SYSTEM_ERROR(ncclCommInitRankConfig, &comm, 1, id, 0, &config);
  EXPECT_SYSTEM_ERROR(ncclCommInitRank, &comm, 1, id, 0);
  EXPECT_SYSTEM_ERROR(ncclCommInitAll, &comm, 1, devices);
  EXPECT_SYSTEM_ERROR(ncclCommInitRankScalable, &comm, 1, 0, 1, &id, &config);
  EXPECT_SYSTEM_ERROR(ncclCommSplit, comm, 0, 0, &newcomm, &config);
  EXPECT_SYSTEM_ERROR(ncclCommShrink, comm, devices, 1, &newcomm, &config, 0);
  EXPECT_SYSTEM_ERROR(ncclCommRevoke, comm, 0);
  EXPECT_SYSTEM_ERROR(ncclCommFinalize, comm);
  EXPECT_SYSTEM_ERROR(ncclCommDestroy, comm);
  EXPECT_SYSTEM_ERROR(ncclCommAbort, comm);
  EXPECT_SYSTEM_ERROR(ncclCommGetAsyncError, comm, &async_error);
  EXPECT_SYSTEM_ERROR(ncclCommCount, comm, &value);
  EXPECT_SYSTEM_ERROR(ncclCommCuDevice, comm, &value);
  EXPECT_SYSTEM_ERROR(ncclCommUserRank, comm, &value);
  EXPECT_SYSTEM_ERROR(ncclCommRegister, comm, &scalar, sizeof(scalar), &pointer);
  EXPECT_SYSTEM_ERROR(ncclCommDeregister, comm, pointer);
  EXPECT_SYSTEM_ERROR(ncclCommWindowRegister, comm, &scalar, sizeof(scalar), &window, 0);
  EXPECT_SYSTEM_ERROR(ncclCommWindowDeregister, comm, window);
  EXPECT_SYSTEM_ERROR(ncclRedOpCreatePreMulSum, &op, &scalar, ncclFloat32,
                      ncclScalarHostImmediate, comm);
  EXPECT_SYSTEM_ERROR(ncclRedOpDestroy, op, comm);
  EXPECT_SYSTEM_ERROR(ncclReduce, &scalar, &scalar, 1, ncclFloat32, ncclSum, 0, comm, 0);
  EXPECT_SYSTEM_ERROR(ncclBcast, &scalar, 1, ncclFloat32, 0, comm, 0);
  EXPECT_SYSTEM_ERROR(ncclBroadcast, &scalar, &scalar, 1, ncclFloat32, 0, comm, 0);
  EXPECT_SYSTEM_ERROR(ncclAllReduce, &scalar, &scalar, 1, ncclFloat32, ncclSum, comm, 0);
  EXPECT_SYSTEM_ERROR(ncclReduceScatter, &scalar, &scalar, 1, ncclFloat32, ncclSum, comm, 0);
  EXPECT_SYSTEM_ERROR(ncclAllGather, &scalar, &scalar, 1, ncclFloat32, comm, 0);
  EXPECT_SYSTEM_ERROR(ncclAlltoAll, &scalar, &scalar, 1, ncclFloat32, comm, 0);
  EXPECT_SYSTEM_ERROR(ncclGather, &scalar, &scalar, 1, ncclFloat32, 0, comm, 0);
  EXPECT_SYSTEM_ERROR(ncclScatter, &scalar, &scalar, 1, ncclFloat32, 0, comm, 0);
  EXPECT_SYSTEM_ERROR(ncclSend, &scalar, 1, ncclFloat32, 0, comm, 0);
  EXPECT_SYSTEM_ERROR(ncclRecv, &scalar, 1, ncclFloat32, 0, comm, 0);
  EXPECT_SYSTEM_ERROR(ncclGroupStart);
  EXPECT_SYSTEM_ERROR(ncclGroupEnd);
  EXPECT_SYSTEM_ERROR(ncclGroupSimulateEnd, &sim);
  EXPECT_SYSTEM_ERROR(ncclDevCommCreate, comm, NULL, NULL);
  EXPECT_SYSTEM_ERROR(ncclDevCommDestroy, comm, NULL);
  EXPECT_SYSTEM_ERROR(ncclGinBarrierCreateRequirement, comm, team, 1, NULL, NULL);
  EXPECT_SYSTEM_ERROR(ncclLsaBarrierCreateRequirement, team, 1, NULL, NULL);
  EXPECT_SYSTEM_ERROR(ncclLLA2ACreateRequirement, 1, 1, NULL, NULL);

  /* Return types that cannot carry ncclSystemError. */
  expect("ncclGetErrorString",
         strcmp(ncclGetErrorString(ncclSystemError),
                "unhandled system error (run with NCCL_DEBUG=INFO for details)") == 0,
         "wrong text for ncclSystemError");
  expect("ncclGetLastError", strstr(ncclGetLastError(comm), "NVLAR_NCCL_LIBRARY") != NULL,
         "does not say that NVLAR_NCCL_LIBRARY could not be loaded");
  ncclResetDebugInit();
  expect("ncclResetDebugInit", true, "");
  ncclResetDebugInitInternal();
  expect("ncclResetDebugInitInternal", true, "");
  expect("ncclTeamWorld", ncclTeamWorld(comm).rank == -1, "not the empty team");
  expect("ncclTeamLsa", ncclTeamLsa(comm).rank == -1, "not the empty team");
  expect("ncclTeamRail", ncclTeamRail(comm).rank == -1, "not the empty team");
  expect("ncclTeamRankToWorld", ncclTeamRankToWorld(comm, team, 0) == -1, "not -1");
  expect("ncclTeamRankToLsa", ncclTeamRankToLsa(comm, team, 0) == -1, "not -1");
  expect("ncclLLA2ACalcSlots", ncclLLA2ACalcSlots(1, 4) == 0, "not 0");

  for (size_t i = 0; i < NVLAR_API_COUNT; i++) {
    if (!called[i]) {
      printf("FAIL %s: not called by this test; add it\n", nvlar_test_api_names[i]);
      failures++;
    }
  }
  printf("%d of %d API functions misbehaved without NCCL\n", failures, (int)NVLAR_API_COUNT);
  return failures == 0 ? 0 : 1;
}
