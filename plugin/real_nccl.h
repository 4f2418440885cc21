/* The real NCCL behind libnvlar: found once, then called through a table of its entry points.
 *
 * Search order (design.md, "Reaching the real NCCL"): an NCCL already loaded in the process
 * (dlsym RTLD_NEXT, then RTLD_DEFAULT, then dlopen("libnccl.so.2", RTLD_NOLOAD) for copies that
 * a framework loaded privately); otherwise $NVLAR_NCCL_LIBRARY as the only path, or else the
 * libnccl.so.2 the build found, then libnccl.so.2 through the loader's search path. Any candidate that lies inside libnvlar itself
 * is rejected. Each entry point is the library's `pncclX` (its profiling-interface name, which
 * an interposer such as libnvlar cannot shadow), or `ncclX` where NCCL has no `p` variant.
 */
#ifndef NVLAR_REAL_NCCL_H
#define NVLAR_REAL_NCCL_H

#include <stdatomic.h>

#include "nccl_api.h"
#include "nccl_version.h"

struct nvlar_real_nccl {
#define NVLAR_REAL_FN(ret, name, params, args, missing) ret(*name) params;
  NVLAR_API_ALL(NVLAR_REAL_FN)
#undef NVLAR_REAL_FN
  int version_code; /* as ncclGetVersion reports it */
  char path[4096];  /* the file the library was loaded from */
};

/* The real NCCL, or NULL when none could be loaded (one WARN said why). Thread-safe; the first
 * call does the search and logs one INFO line with the versions and the library's path. */
const struct nvlar_real_nccl *nvlar_real_nccl(void);

/* WARNs once per function that the loaded NCCL lacks (an older NCCL than the API we export). */
void nvlar_real_nccl_warn_missing(const char *name, atomic_int *warned);

/* Opens a wrapper: binds `nccl` to the real library, or returns `missing` from the enclosing
 * function when there is no NCCL or it lacks `name`. */
#define NVLAR_REAL_OR_RETURN(nccl, name, missing)                                           \
  const struct nvlar_real_nccl *nccl = nvlar_real_nccl();                                    \
  if (nccl == NULL) return missing;                                                          \
  if (nccl->name == NULL) {                                                                  \
    static atomic_int nvlar_warned_##name;                                                   \
    nvlar_real_nccl_warn_missing(#name, &nvlar_warned_##name);                               \
    return missing;                                                                          \
  }

/* The message ncclGetLastError returns when there is no NCCL. */
const char *nvlar_missing_nccl_message(void);

#endif
