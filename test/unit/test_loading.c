/* The three ways users load libnvlar, and the case where there is no NCCL to forward to. */
#include <dlfcn.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_table.h"
#include "spawn.h"

static char output[1 << 16];

#define MISSING_LIBRARY "/nonexistent/nvlar-test/libnccl.so.2"

/* LD_PRELOAD=libnvlar.so in front of an application linked with -lnccl. */
static void test_preload_into_linked_application(void **state) {
  (void)state;
  char *argv[] = {NVLAR_TEST_APP_LINKED, NULL};
  const char *env[] = {"LD_PRELOAD=" NVLAR_TEST_LIBNVLAR, "NVLAR_DEBUG=INFO", "NVLAR_DEBUG_FILE",
                       NULL};
  assert_int_equal(nvlar_test_run(argv, env, output, sizeof(output)), 0);
  /* The INFO line proves that the call went through libnvlar, and to which NCCL. */
  assert_int_equal(nvlar_test_count_lines(output, "NVLAR INFO nvlar " NVLAR_TEST_VERSION
                                                  " forwarding to NCCL "), 1);
  assert_int_equal(nvlar_test_count_lines(output, "app: ncclGetVersion -> 0, version "), 1);
  assert_int_equal(nvlar_test_count_lines(output, "NVLAR WARN"), 0);
}

/* The same application without the preload: no libnvlar in the path, no NVLAR line. */
static void test_linked_application_alone(void **state) {
  (void)state;
  char *argv[] = {NVLAR_TEST_APP_LINKED, NULL};
  const char *env[] = {"LD_PRELOAD", "NVLAR_DEBUG=INFO", NULL};
  assert_int_equal(nvlar_test_run(argv, env, output, sizeof(output)), 0);
  assert_int_equal(nvlar_test_count_lines(output, "NVLAR"), 0);
}

/* An NCCL already in the process wins over NVLAR_NCCL_LIBRARY: two NCCLs in one process
 * would not share communicators. */
static void test_loaded_nccl_wins_over_setting(void **state) {
  (void)state;
  char *argv[] = {NVLAR_TEST_APP_LINKED, NULL};
  const char *env[] = {"LD_PRELOAD=" NVLAR_TEST_LIBNVLAR, "NVLAR_DEBUG=INFO",
                       "NVLAR_NCCL_LIBRARY=" MISSING_LIBRARY, NULL};
  assert_int_equal(nvlar_test_run(argv, env, output, sizeof(output)), 0);
  assert_int_equal(nvlar_test_count_lines(output, "forwarding to NCCL"), 1);
}

/* vLLM's way: dlopen the library by path, dlsym every function. Every symbol resolves, and
 * resolves to libnvlar itself, not to some NCCL behind it. */
static void test_dlopen_and_dlsym_every_function(void **state) {
  (void)state;
  void *handle = nvlar_test_open(NVLAR_TEST_LIBNVLAR);
  assert_non_null(handle);
  char expected[PATH_MAX];
  assert_non_null(realpath(NVLAR_TEST_LIBNVLAR, expected));
  for (size_t i = 0; i < NVLAR_API_COUNT; i++) {
    void *symbol = dlsym(handle, nvlar_test_api_names[i]);
    if (symbol == NULL) print_error("dlsym(%s) failed\n", nvlar_test_api_names[i]);
    assert_non_null(symbol);
    Dl_info info;
    assert_int_not_equal(dladdr(symbol, &info), 0);
    char actual[PATH_MAX];
    assert_non_null(realpath(info.dli_fname, actual));
    assert_string_equal(actual, expected);
  }
  ncclResult_t (*get_version)(int *) = NULL;
  *(void **)(&get_version) = dlsym(handle, "ncclGetVersion");
  int version = 0;
  assert_int_equal(get_version(&version), ncclSuccess);
  assert_true(version >= 22800);
}

/* No NCCL at all: NVLAR_NCCL_LIBRARY names a missing file. Every function fails cleanly
 * (app_no_nccl checks each one) and exactly one WARN says why, naming the variable. */
static void test_no_nccl(void **state) {
  (void)state;
  char *argv[] = {NVLAR_TEST_APP_NO_NCCL, NULL};
  const char *env[] = {"NVLAR_NCCL_LIBRARY=" MISSING_LIBRARY, "NVLAR_DEBUG", "LD_PRELOAD", NULL};
  int status = nvlar_test_run(argv, env, output, sizeof(output));
  if (status != 0) print_error("%s", output);
  assert_int_equal(status, 0);
  assert_int_equal(nvlar_test_count_lines(output, "NVLAR WARN"), 1);
  assert_int_equal(nvlar_test_count_lines(output, "NVLAR WARN no NCCL: NVLAR_NCCL_LIBRARY="
                                                  MISSING_LIBRARY " cannot be loaded"), 1);
}

/* A wrong NVLAR_NCCL_LIBRARY is an error even where libnccl.so.2 could be found: never a
 * silent fall-back to some other NCCL. */
static void test_wrong_setting_is_not_replaced(void **state) {
  (void)state;
  char *argv[] = {NVLAR_TEST_APP_NO_NCCL, NULL};
  const char *env[] = {"NVLAR_NCCL_LIBRARY=" MISSING_LIBRARY,
                       "LD_LIBRARY_PATH=" NVLAR_TEST_LIBNCCL_DIR, "LD_PRELOAD", NULL};
  assert_int_equal(nvlar_test_run(argv, env, output, sizeof(output)), 0);
  assert_int_equal(nvlar_test_count_lines(output, "NVLAR WARN no NCCL"), 1);
}

/* A program not linked with NCCL reaches it through NVLAR_NCCL_LIBRARY. */
static void test_setting_names_the_library(void **state) {
  (void)state;
  char *argv[] = {NVLAR_TEST_NVLAR_INFO, NULL};
  const char *env[] = {"NVLAR_NCCL_LIBRARY=" NVLAR_TEST_LIBNCCL, "LD_LIBRARY_PATH", "LD_PRELOAD",
                       NULL};
  assert_int_equal(nvlar_test_run(argv, env, output, sizeof(output)), 0);
  assert_int_equal(nvlar_test_count_lines(output, "through libnvlar: " NVLAR_TEST_LIBNCCL), 1);
}

/* The main job says plainly when NCCL is missing, and fails. */
static void test_main_job_without_nccl(void **state) {
  (void)state;
  char *argv[] = {NVLAR_TEST_NVLAR_INFO, NULL};
  const char *env[] = {"NVLAR_NCCL_LIBRARY=" MISSING_LIBRARY, NULL};
  assert_int_equal(nvlar_test_run(argv, env, output, sizeof(output)), 1);
  assert_int_equal(nvlar_test_count_lines(output, "NCCL: not reachable through libnvlar"), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_preload_into_linked_application),
      cmocka_unit_test(test_linked_application_alone),
      cmocka_unit_test(test_loaded_nccl_wins_over_setting),
      cmocka_unit_test(test_dlopen_and_dlsym_every_function),
      cmocka_unit_test(test_no_nccl),
      cmocka_unit_test(test_wrong_setting_is_not_replaced),
      cmocka_unit_test(test_setting_names_the_library),
      cmocka_unit_test(test_main_job_without_nccl),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
