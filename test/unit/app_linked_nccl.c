/* Helper for test_loading: an ordinary NCCL application, linked with -lnccl. Run under
 * LD_PRELOAD=libnvlar.so, its calls reach libnvlar first. */
#include <stdio.h>

#include <nccl.h>

int main(void) {
  int version = 0;
  ncclResult_t result = ncclGetVersion(&version);
  printf("app: ncclGetVersion -> %d, version %d\n", (int)result, version);
  printf("app: ncclGetErrorString(ncclInvalidArgument) -> %s\n",
         ncclGetErrorString(ncclInvalidArgument));
  return result == ncclSuccess ? 0 : 1;
}
