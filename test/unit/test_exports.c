/* The exported set: libnvlar.so exports every nccl* function that the real libnccl.so.2
 * exports, every function of nvlar's API list, and nothing outside the allowed names; and it
 * does not depend on libnccl at link time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api_table.h"

#define MAX_SYMBOLS 4096

struct symbol_list {
  size_t count;
  char *names[MAX_SYMBOLS];
};

/* Runs `tool` (a command and its options) on `library`; its standard output. */
static FILE *run_on(const char *tool, const char *library) {
  char command[4200];
  snprintf(command, sizeof(command), "%s '%s'", tool, library);
  FILE *pipe = popen(command, "r");
  assert_non_null(pipe);
  return pipe;
}

/* Defined dynamic symbols of `library`, as `nm -D --defined-only` lists them. */
static void read_exports(const char *library, struct symbol_list *list) {
  FILE *pipe = run_on("nm -D --defined-only", library);
  list->count = 0;
  char line[512];
  while (fgets(line, sizeof(line), pipe) != NULL && list->count < MAX_SYMBOLS) {
    char address[64], kind[8], name[400];
    if (sscanf(line, "%63s %7s %399s", address, kind, name) == 3) list->names[list->count++] = strdup(name);
  }
  assert_int_equal(pclose(pipe), 0);
  assert_true(list->count > 0);
}

static void free_list(struct symbol_list *list) {
  for (size_t i = 0; i < list->count; i++) free(list->names[i]);
}

static int contains(const struct symbol_list *list, const char *name) {
  for (size_t i = 0; i < list->count; i++) {
    if (strcmp(list->names[i], name) == 0) return 1;
  }
  return 0;
}

static int is_api_name(const char *name) {
  for (size_t i = 0; i < NVLAR_API_COUNT; i++) {
    if (strcmp(nvlar_test_api_names[i], name) == 0) return 1;
  }
  return 0;
}

/* The tuner plugin's ABI versions that NCCL 2.28 looks up. */
static int is_tuner_plugin_name(const char *name) {
  const char *const names[] = {"ncclTunerPlugin_v2", "ncclTunerPlugin_v3", "ncclTunerPlugin_v4",
                               "ncclTunerPlugin_v5"};
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if (strcmp(names[i], name) == 0) return 1;
  }
  return 0;
}

static void test_every_nccl_export_is_ours(void **state) {
  (void)state;
  struct symbol_list *nccl = calloc(1, sizeof(*nccl)), *ours = calloc(1, sizeof(*ours));
  read_exports(NVLAR_TEST_LIBNCCL, nccl);
  read_exports(NVLAR_TEST_LIBNVLAR, ours);
  int missing = 0;
  for (size_t i = 0; i < nccl->count; i++) {
    if (strncmp(nccl->names[i], "nccl", 4) != 0) continue;
    if (!contains(ours, nccl->names[i])) {
      print_error("libnccl exports %s, libnvlar does not\n", nccl->names[i]);
      missing++;
    }
  }
  assert_int_equal(missing, 0);
  free_list(nccl);
  free_list(ours);
  free(nccl);
  free(ours);
}

static void test_nothing_else_is_exported(void **state) {
  (void)state;
  struct symbol_list *ours = calloc(1, sizeof(*ours));
  read_exports(NVLAR_TEST_LIBNVLAR, ours);
  int unexpected = 0;
  for (size_t i = 0; i < ours->count; i++) {
    if (!is_api_name(ours->names[i]) && !is_tuner_plugin_name(ours->names[i])) {
      print_error("libnvlar exports %s, which is not in the allowed set\n", ours->names[i]);
      unexpected++;
    }
  }
  assert_int_equal(unexpected, 0);
  for (size_t i = 0; i < NVLAR_API_COUNT; i++) {
    if (!contains(ours, nvlar_test_api_names[i])) {
      print_error("%s is in the API list but not exported\n", nvlar_test_api_names[i]);
      unexpected++;
    }
  }
  assert_int_equal(unexpected, 0);
  free_list(ours);
  free(ours);
}

/* libnvlar finds NCCL at run time: a DT_NEEDED entry would load some libnccl before the
 * application's own. */
static void test_no_link_time_nccl(void **state) {
  (void)state;
  FILE *pipe = run_on("objdump -p", NVLAR_TEST_LIBNVLAR);
  char line[512];
  int needed = 0, needs_nccl = 0, needs_cuda = 0;
  while (fgets(line, sizeof(line), pipe) != NULL) {
    if (strstr(line, "NEEDED") == NULL) continue;
    needed++;
    if (strstr(line, "libnccl") != NULL) needs_nccl = 1;
    if (strstr(line, "libcuda") != NULL) needs_cuda = 1;
  }
  assert_int_equal(pclose(pipe), 0);
  assert_true(needed > 0);
  assert_false(needs_nccl);
  assert_false(needs_cuda);
}

/* The kernels of ranks emulated on one GPU (tests, benchmark) are not in the shared object:
 * its symbol table (all symbols, hidden ones included) names the real ranks' launcher and
 * kernels but no emulated launcher or kernel. */
static void test_no_emulation_inside(void **state) {
  (void)state;
  FILE *pipe = run_on("nm -C", NVLAR_TEST_LIBNVLAR);
  char line[4096];
  int real_launcher = 0, real_kernels = 0, emulated = 0;
  while (fgets(line, sizeof(line), pipe) != NULL) {
    if (strstr(line, " nvlar_allreduce_launch\n") != NULL) real_launcher++;
    if (strstr(line, "nvlar::allreduce_kernel<") != NULL) real_kernels++;
    if (strstr(line, "allreduce_emulated_kernel") != NULL || strstr(line, "_emulated") != NULL) {
      emulated++;
    }
  }
  assert_int_equal(pclose(pipe), 0);
  assert_int_equal(real_launcher, 1);
  assert_true(real_kernels > 0);
  assert_int_equal(emulated, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_nccl_export_is_ours),
      cmocka_unit_test(test_nothing_else_is_exported),
      cmocka_unit_test(test_no_link_time_nccl),
      cmocka_unit_test(test_no_emulation_inside),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
