/* Exported NCCL functions that libnvlar passes to the real NCCL unchanged, and the few whose
 * return type cannot carry ncclSystemError when no NCCL is there (strings, void). */
#include "export.h"
#include "nccl_api.h"
#include "real_nccl.h"

const ncclTeam_t nvlar_no_team = {0, -1, 0};

/* Each forward checks the library and the entry point, both resolved once; NCCL validates
 * the arguments itself, so nvlar returns exactly what NCCL returns. */
#define NVLAR_DEFINE_FORWARD(ret, name, params, args, missing)                               \
  NVLAR_EXPORT ret name params {                                                             \
    NVLAR_REAL_OR_RETURN(nccl, name, missing)                                                \
    return nccl->name args;                                                                  \
  }
NVLAR_API_FORWARDED(NVLAR_DEFINE_FORWARD)
#undef NVLAR_DEFINE_FORWARD

/* NCCL's own wording, used only when there is no NCCL to ask. */
const char *nvlar_error_string(ncclResult_t result) {
  switch (result) {
    case ncclSuccess: return "no error";
    case ncclUnhandledCudaError: return "unhandled cuda error (run with NCCL_DEBUG=INFO for details)";
    case ncclSystemError: return "unhandled system error (run with NCCL_DEBUG=INFO for details)";
    case ncclInternalError: return "internal error - please report this issue to the NCCL developers";
    case ncclInvalidArgument: return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage: return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclRemoteError: return "remote process exited or there was a network error";
    case ncclInProgress: return "NCCL operation in progress";
    default: return "unknown result code";
  }
}

NVLAR_EXPORT const char *ncclGetErrorString(ncclResult_t result) {
  const struct nvlar_real_nccl *nccl = nvlar_real_nccl();
  if (nccl == NULL || nccl->ncclGetErrorString == NULL) return nvlar_error_string(result);
  return nccl->ncclGetErrorString(result);
}

NVLAR_EXPORT const char *ncclGetLastError(ncclComm_t comm) {
  const struct nvlar_real_nccl *nccl = nvlar_real_nccl();
  if (nccl == NULL || nccl->ncclGetLastError == NULL) return nvlar_missing_nccl_message();
  return nccl->ncclGetLastError(comm);
}

NVLAR_EXPORT void ncclResetDebugInit(void) {
  const struct nvlar_real_nccl *nccl = nvlar_real_nccl();
  if (nccl != NULL && nccl->ncclResetDebugInit != NULL) nccl->ncclResetDebugInit();
}

NVLAR_EXPORT void ncclResetDebugInitInternal(void) {
  const struct nvlar_real_nccl *nccl = nvlar_real_nccl();
  if (nccl != NULL && nccl->ncclResetDebugInitInternal != NULL) nccl->ncclResetDebugInitInternal();
}
