/* Forwarding and argument checking: the same calls made through libnvlar and through
 * libnccl.so.2 directly give the same results, bad arguments included, and nothing crashes.
 * Both libraries are opened with RTLD_NOW | RTLD_LOCAL in this process; libnvlar finds the
 * already loaded NCCL, so both tables reach the same NCCL instance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_table.h"

static struct nvlar_real_nccl direct, nvlar;

static int open_both(void **state) {
  (void)state;
  void *nccl_handle = nvlar_test_open(NVLAR_TEST_LIBNCCL);
  void *nvlar_handle = nvlar_test_open(NVLAR_TEST_LIBNVLAR);
  if (nccl_handle == NULL || nvlar_handle == NULL) return -1;
  /* libnccl has no device-API entry points before 2.28; only ours must be complete. */
  nvlar_test_load_api(nccl_handle, &direct);
  return nvlar_test_load_api(nvlar_handle, &nvlar) == 0 ? 0 : -1;
}

static void test_get_version(void **state) {
  (void)state;
  int direct_version = -1, nvlar_version = -2;
  assert_int_equal(direct.ncclGetVersion(&direct_version), ncclSuccess);
  assert_int_equal(nvlar.ncclGetVersion(&nvlar_version), ncclSuccess);
  assert_int_equal(direct_version, nvlar_version);
}

static void test_error_strings(void **state) {
  (void)state;
  for (int code = -1; code <= ncclNumResults + 1; code++) {
    assert_string_equal(direct.ncclGetErrorString((ncclResult_t)code),
                        nvlar.ncclGetErrorString((ncclResult_t)code));
  }
}

static void test_unique_id(void **state) {
  (void)state;
  ncclUniqueId a, b;
  assert_int_equal(direct.ncclGetUniqueId(&a), nvlar.ncclGetUniqueId(&b));
}

/* Without a GPU both fail the same way; with one, both make a 1-rank communicator. */
static void test_init_rank(void **state) {
  (void)state;
  ncclUniqueId id;
  ncclComm_t direct_comm = NULL, nvlar_comm = NULL;
  ncclResult_t direct_result = direct.ncclGetUniqueId(&id);
  if (direct_result == ncclSuccess) direct_result = direct.ncclCommInitRank(&direct_comm, 1, id, 0);
  ncclResult_t nvlar_result = nvlar.ncclGetUniqueId(&id);
  if (nvlar_result == ncclSuccess) nvlar_result = nvlar.ncclCommInitRank(&nvlar_comm, 1, id, 0);
  assert_int_equal(direct_result, nvlar_result);
  if (direct_comm != NULL) direct.ncclCommDestroy(direct_comm);
  if (nvlar_comm != NULL) nvlar.ncclCommDestroy(nvlar_comm);
}

/* Each case runs once through each table; the two results must agree. */
#define SAME_RESULT(call_through)                                                            \
  do {                                                                                       \
    struct nvlar_real_nccl *api = &direct;                                                   \
    ncclResult_t direct_result = (call_through);                                             \
    api = &nvlar;                                                                            \
    ncclResult_t nvlar_result = (call_through);                                              \
    if (direct_result != nvlar_result) {                                                     \
      print_error("%s: NCCL %d, nvlar %d\n", #call_through, direct_result, nvlar_result);    \
      fail();                                                                                \
    }                                                                                        \
    if (direct_result == ncclSuccess && !expect_success) {                                   \
      print_error("%s: accepted a bad argument\n", #call_through);                           \
      fail();                                                                                \
    }                                                                                        \
  } while (0)

/* Runs first: a failed init leaves NCCL's per-thread group state changed, which changes what
 * an unmatched ncclGroupEnd returns. */
static void test_unmatched_group_end(void **state) {
  (void)state;
  const int expect_success = 0;
  SAME_RESULT(api->ncclGroupEnd());
}

static void test_bad_arguments(void **state) {
  (void)state;
  const int expect_success = 0;
  ncclComm_t comm = NULL;
  ncclUniqueId id;
  memset(&id, 0, sizeof(id));
  int value = 0;
  float data[4] = {0};
  ncclResult_t async_error;
  ncclConfig_t bad_config = NCCL_CONFIG_INITIALIZER;
  bad_config.magic = 0; /* not initialized the way NCCL requires */

  SAME_RESULT(api->ncclGetVersion(NULL));
  SAME_RESULT(api->ncclGetUniqueId(NULL));
  SAME_RESULT(api->ncclCommInitRank(NULL, 1, id, 0));
  SAME_RESULT(api->ncclCommInitRank(&comm, 1, id, 5));
  SAME_RESULT(api->ncclCommInitRank(&comm, 0, id, 0));
  SAME_RESULT(api->ncclCommInitRank(&comm, -3, id, 0));
  SAME_RESULT(api->ncclCommInitRankConfig(&comm, 1, id, 0, &bad_config));
  SAME_RESULT(api->ncclCommInitAll(NULL, 1, NULL));
  SAME_RESULT(api->ncclCommInitAll(&comm, -1, NULL));
  SAME_RESULT(api->ncclCommSplit(NULL, 0, 0, &comm, NULL));
  SAME_RESULT(api->ncclCommCount(NULL, &value));
  SAME_RESULT(api->ncclCommUserRank(NULL, &value));
  SAME_RESULT(api->ncclCommCuDevice(NULL, &value));
  SAME_RESULT(api->ncclCommGetAsyncError(NULL, &async_error));
  SAME_RESULT(api->ncclRedOpDestroy(ncclSum, NULL));
  SAME_RESULT(api->ncclAllReduce(data, data, 1, ncclFloat32, ncclSum, NULL, 0));
  SAME_RESULT(api->ncclAllReduce(NULL, NULL, 1, ncclFloat32, ncclSum, NULL, 0));
  SAME_RESULT(api->ncclAllReduce(data, data, 0, ncclFloat32, ncclSum, NULL, 0));
  SAME_RESULT(api->ncclAllReduce(data, data, 1, ncclNumTypes, ncclSum, NULL, 0));
  SAME_RESULT(api->ncclAllReduce(data, data, 1, ncclFloat32, ncclMaxRedOp, NULL, 0));
  SAME_RESULT(api->ncclReduce(data, data, 1, ncclFloat32, ncclSum, 0, NULL, 0));
  SAME_RESULT(api->ncclBroadcast(data, data, 1, ncclFloat32, 0, NULL, 0));
  SAME_RESULT(api->ncclAllGather(data, data, 1, ncclFloat32, NULL, 0));
  SAME_RESULT(api->ncclReduceScatter(data, data, 1, ncclFloat32, ncclSum, NULL, 0));
  SAME_RESULT(api->ncclSend(data, 1, ncclFloat32, 0, NULL, 0));
  SAME_RESULT(api->ncclRecv(data, 1, ncclFloat32, 0, NULL, 0));
  SAME_RESULT(api->ncclMemFree(NULL));
}

/* Destroy, abort and finalize of NULL are accepted by NCCL; nvlar must agree, not crash. */
static void test_null_lifecycle_calls(void **state) {
  (void)state;
  const int expect_success = 1;
  SAME_RESULT(api->ncclCommFinalize(NULL));
  SAME_RESULT(api->ncclCommDestroy(NULL));
  SAME_RESULT(api->ncclCommAbort(NULL));
}

static void test_last_error_text(void **state) {
  (void)state;
  ncclResult_t ignored;
  direct.ncclCommGetAsyncError(NULL, &ignored);
  char *direct_text = strdup(direct.ncclGetLastError(NULL));
  nvlar.ncclCommGetAsyncError(NULL, &ignored);
  assert_string_equal(direct_text, nvlar.ncclGetLastError(NULL));
  free(direct_text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unmatched_group_end),
      cmocka_unit_test(test_get_version),
      cmocka_unit_test(test_error_strings),
      cmocka_unit_test(test_unique_id),
      cmocka_unit_test(test_init_rank),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_null_lifecycle_calls),
      cmocka_unit_test(test_last_error_text),
  };
  return cmocka_run_group_tests(tests, open_both, NULL);
}
