/* Test helper: the table of every exported NCCL function, filled from one library handle. */
#ifndef NVLAR_TEST_API_TABLE_H
#define NVLAR_TEST_API_TABLE_H

#include <stddef.h>

#include "real_nccl.h"

/* The names of all exported API functions, in X-macro order; NVLAR_API_COUNT entries. */
extern const char *const nvlar_test_api_names[];

/* Opens `path` with RTLD_NOW | RTLD_LOCAL, as NCCL opens plugins and vLLM opens NCCL. */
void *nvlar_test_open(const char *path);

/* Fills `table` with dlsym(handle, "ncclX") for every API function (the public names, as an
 * application sees them). Returns how many were missing. */
size_t nvlar_test_load_api(void *handle, struct nvlar_real_nccl *table);

#endif
