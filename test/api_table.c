#include "api_table.h"

#include <dlfcn.h>
#include <stdio.h>

const char *const nvlar_test_api_names[] = {
#define NVLAR_TEST_NAME(ret, name, params, args, missing) #name,
    NVLAR_API_ALL(NVLAR_TEST_NAME)
#undef NVLAR_TEST_NAME
};

void *nvlar_test_open(const char *path) {
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
  return handle;
}

size_t nvlar_test_load_api(void *handle, struct nvlar_real_nccl *table) {
  size_t missing = 0;
#define NVLAR_TEST_LOAD(ret, name, params, args, missing_value)                              \
  *(void **)(&table->name) = dlsym(handle, #name);                                           \
  if (table->name == NULL) {                                                                 \
    fprintf(stderr, "dlsym %s: not found\n", #name);                                         \
    missing++;                                                                               \
  }
  NVLAR_API_ALL(NVLAR_TEST_LOAD)
#undef NVLAR_TEST_LOAD
  return missing;
}
