/* Bad input meets a clear WARN or error, seen in nvlar's own log:
 *   - rejected environment values are WARNs that quote the value escaped and cut, and the
 *     default is kept (NVLAR_BUFFER_BYTES that the kernels would refuse on every rank included);
 *   - no log line carries a control byte, and an over-long line is cut visibly;
 *   - NVLAR_TUNING_FILE naming a directory is a WARN, and the built-in table applies;
 *   - settings that differ between ranks name the parameter and both values, and setup knows
 *     to report them as a WARN;
 *   - an all-reduce whose byte count overflows size_t returns ncclInvalidArgument with a WARN,
 *     on a route and on a one-rank communicator, and launches nothing.
 * The environment is set in main, before nvlar reads it (once). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "allreduce.h"
#include "comm_registry.h"
#include "eligibility.h"
#include "escape.h"
#include "lifecycle.h"
#include "log.h"
#include "params.h"
#include "route.h"
#include "selection.h"
#include "tuning_table.h"

static char scratch_dir[] = "/tmp/nvlar-bad-input-XXXXXX";
static char log_path[256];

/* The log so far (nvlar flushes every line). */
static char *read_log(void) {
  FILE *file = fopen(log_path, "r");
  assert_non_null(file);
  static char text[1 << 16];
  size_t length = fread(text, 1, sizeof(text) - 1, file);
  fclose(file);
  text[length] = '\0';
  return text;
}

/* The log line that contains `needle`, copied into `line`; fails the test if there is none. */
static const char *log_line(const char *needle, char *line, size_t size) {
  const char *text = read_log();
  const char *found = strstr(text, needle);
  if (found == NULL) fail_msg("no log line with \"%s\" in:\n%s", needle, text);
  const char *start = found;
  while (start > text && start[-1] != '\n') start--;
  const char *end = strchr(found, '\n');
  size_t length = end != NULL ? (size_t)(end - start) : strlen(start);
  snprintf(line, size, "%.*s", (int)length, start);
  return line;
}

static void test_rejected_values_warn_quoted(void **state) {
  (void)state;
  char line[2048];
  (void)nvlar_log_level(); /* the first log use reports the rejected values */
  assert_int_equal(nvlar_param_number(NVLAR_P_BUFFER_BYTES), 64 << 20);
  log_line("NVLAR WARN NVLAR_BUFFER_BYTES=\"1048577\" ignored: not a multiple of 256; using 64M",
           line, sizeof(line));
  /* An escape sequence and a bell: written as text, the line stays one line. */
  log_line("NVLAR WARN NVLAR_CTAS=\"7\\x1b]0;owned\\x07\\\"\" ignored: not a decimal integer",
           line, sizeof(line));
  /* 300 characters: quoted up to 64, then "...". */
  log_line("NVLAR WARN NVLAR_TIMEOUT_MS=\"", line, sizeof(line));
  char expected[128];
  snprintf(expected, sizeof(expected), "NVLAR_TIMEOUT_MS=\"%.64s...\" ignored", "99999999999999999999"
           "99999999999999999999999999999999999999999999999999999999999999999999999999999999");
  assert_non_null(strstr(line, expected));
  assert_true(strlen(line) < 300);
}

static void test_log_lines_are_printable(void **state) {
  (void)state;
  char line[2048];
  nvlar_log(NVLAR_LOG_WARN, "value %s end", "a\nNVLAR WARN forged\tb\x7f\xff");
  log_line("value a\\x0aNVLAR WARN forged\\x09b\\x7f\\xff end", line, sizeof(line));
  /* A message longer than a line: cut, and the cut shows. */
  char *long_text = malloc(3000);
  assert_non_null(long_text);
  memset(long_text, 'z', 2999);
  long_text[2999] = '\0';
  nvlar_log(NVLAR_LOG_WARN, "long %s", long_text);
  free(long_text);
  log_line("long zzzz", line, sizeof(line));
  assert_true(strlen(line) < 1100);
  assert_non_null(strstr(line, "zzz..."));
  assert_int_equal(line[strlen(line) - 1], '.');
  /* Every byte of the log: printable ASCII or the end of a line. */
  for (const char *p = read_log(); *p != '\0'; p++) {
    if (*p != '\n' && (*p < 0x20 || *p > 0x7e)) fail_msg("byte 0x%02x in the log", (unsigned char)*p);
  }
}

static void test_quotable(void **state) {
  (void)state;
  char out[16];
  assert_string_equal(nvlar_quotable("plain", out, sizeof(out)), "plain");
  assert_string_equal(nvlar_quotable("a\"b\\c", out, sizeof(out)), "a\\\"b\\\\c");
  /* 15 characters fit exactly; 16 do not: 12 and "...". */
  assert_string_equal(nvlar_quotable("123456789012345", out, sizeof(out)), "123456789012345");
  assert_string_equal(nvlar_quotable("1234567890123456", out, sizeof(out)), "123456789012...");
  /* Never half an escape: "\x01" does not fit after 10 characters and 3 dots. */
  assert_string_equal(nvlar_quotable("1234567890\x01zzzzzz", out, sizeof(out)), "1234567890...");
  char tiny[3];
  assert_string_equal(nvlar_quotable("abcdef", tiny, sizeof(tiny)), "..");
}

static void test_tuning_file_directory_warns(void **state) {
  (void)state;
  char line[2048], needle[512];
  const struct nvlar_tuning_table *table = nvlar_tuning_table();
  assert_string_equal(table->source, "built-in");
  assert_true(table->nrows > 0);
  snprintf(needle, sizeof(needle),
           "NVLAR WARN NVLAR_TUNING_FILE=\"%s\" is a directory, not a regular file; using the "
           "built-in table", scratch_dir);
  log_line(needle, line, sizeof(line));
}

/* ---- settings that differ between ranks */

static struct nvlar_rank_info infos[2];

static void two_alike_ranks(void) {
  memset(infos, 0, sizeof(infos));
  for (int r = 0; r < 2; r++) {
    infos[r].version = NVLAR_RANK_INFO_VERSION;
    infos[r].ready = 1;
    infos[r].host_hash = 0x1234;
    infos[r].pid = 100 + r;
    snprintf(infos[r].bus_id, sizeof(infos[r].bus_id), "0000:%02x:00.0", 0x10 + r);
    infos[r].cc_major = 9;
    infos[r].wants_nvlar = 1;
    infos[r].buffers.staging_bytes = 64 << 20;
  }
}

/* Refused for a differing setting: `expected` is in the reason, and setup is told to WARN. */
static void differs(const char *expected) {
  char why[192] = "";
  assert_false(nvlar_eligible_to_map(2, infos, why, sizeof(why)));
  if (strstr(why, expected) == NULL) fail_msg("\"%s\", expected \"%s\"", why, expected);
  assert_true(nvlar_ineligible_for_differing_settings(2, infos));
}

static void test_differing_settings_are_named(void **state) {
  (void)state;
  two_alike_ranks();
  char why[192];
  assert_true(nvlar_eligible_to_map(2, infos, why, sizeof(why)));
  assert_false(nvlar_ineligible_for_differing_settings(2, infos));
  infos[1].buffers.staging_bytes = 1 << 20;
  differs("ranks 0 and 1 differ in NVLAR_BUFFER_BYTES (67108864 and 1048576)");
  two_alike_ranks();
  infos[1].forced_algo = NVLAR_FORCE_TWOSHOT;
  differs("ranks 0 and 1 differ in NVLAR_ALGO (auto and twoshot)");
  two_alike_ranks();
  infos[1].forced_ctas = 16;
  differs("ranks 0 and 1 differ in NVLAR_CTAS (0 and 16)");
  two_alike_ranks();
  infos[0].allow_pcie = 1;
  differs("ranks 0 and 1 differ in NVLAR_ALLOW_PCIE (1 and 0)");
  two_alike_ranks();
  infos[1].max_bytes = 4096;
  differs("ranks 0 and 1 differ in NVLAR_MAX_BYTES (0 and 4096)");
  two_alike_ranks();
  infos[1].table_hash = 7;
  differs("ranks 0 and 1 use different tuning tables (NVLAR_TUNING_FILE)");
}

/* Facts of the job stay INFO: a rank that opted out, ranks on several hosts (even with other
 * settings too). */
static void test_other_reasons_are_not_settings(void **state) {
  (void)state;
  char why[192];
  two_alike_ranks();
  infos[1].wants_nvlar = 0;
  snprintf(infos[1].why, sizeof(infos[1].why), "NVLAR_DISABLE=1");
  assert_false(nvlar_eligible_to_map(2, infos, why, sizeof(why)));
  assert_false(nvlar_ineligible_for_differing_settings(2, infos));
  two_alike_ranks();
  infos[1].host_hash = 0x5678;
  infos[1].max_bytes = 4096;
  assert_false(nvlar_eligible_to_map(2, infos, why, sizeof(why)));
  assert_non_null(strstr(why, "different hosts"));
  assert_false(nvlar_ineligible_for_differing_settings(2, infos));
}

/* ---- count x element size overflows */

static int launches;
static cudaError_t count_launch(const struct nvlar_allreduce_args *args, cudaStream_t stream) {
  (void)args, (void)stream;
  launches++;
  return cudaSuccess;
}
static bool never_capturing(cudaStream_t stream, cudaGraph_t *graph, unsigned long long *id) {
  (void)stream, (void)graph, (void)id;
  return false;
}
static const struct nvlar_route_ops launch_only_ops = {count_launch, never_capturing, NULL, NULL,
                                                       NULL, NULL, NULL};

static void test_overflowing_count_on_a_route(void **state) {
  (void)state;
  struct nvlar_route *route = nvlar_route_new(&launch_only_ops);
  assert_non_null(route);
  route->comm = (ncclComm_t)0x4000;
  route->policy.nranks = 2;
  route->policy.arch = 90;
  route->policy.table = nvlar_tuning_table();
  route->policy.max_blocks = 128;
  route->policy.min_ctas = 1;
  route->policy.max_ctas = 64;
  route->policy.max_bytes = 1 << 20; /* larger calls are NCCL's, whatever the table says */
  static char buffer[64];
  ncclResult_t result = ncclSuccess;
  /* 2^62 floats: 2^64 bytes, one past what size_t holds. */
  size_t count = (SIZE_MAX >> 2) + 1;
  assert_true(nvlar_allreduce_on_route(route, buffer, buffer + 32, count, ncclFloat32, ncclSum,
                                       NULL, &result));
  assert_int_equal(result, ncclInvalidArgument);
  assert_int_equal(launches, 0);
  char line[2048];
  log_line("NVLAR WARN comm 0x4000: AllReduce : count 4611686018427387904 of 4-byte elements "
           "overflows the byte count; ncclInvalidArgument", line, sizeof(line));
  /* One element less fits: the call is routed by its size (above max_bytes: NCCL's). */
  result = ncclSuccess;
  assert_false(nvlar_allreduce_on_route(route, buffer, buffer + 32, count - 1, ncclFloat32, ncclSum,
                                        NULL, &result));
  assert_int_equal(launches, 0);
  free(route); /* never shared: no reference but the test's */
}

static atomic_int nccl_allreduces;
static ncclResult_t counting_allreduce(const void *s, void *r, size_t n, ncclDataType_t t,
                                       ncclRedOp_t o, ncclComm_t c, cudaStream_t st) {
  (void)s, (void)r, (void)n, (void)t, (void)o, (void)c, (void)st;
  atomic_fetch_add(&nccl_allreduces, 1);
  return ncclSuccess;
}

static void test_overflowing_count_on_one_rank(void **state) {
  (void)state;
  ncclComm_t comm = (ncclComm_t)0x5000;
  struct nvlar_cta_limits limits = {1, 64};
  assert_true(nvlar_lifecycle_adopt(comm, NVLAR_ORIGIN_INIT_RANK, false, limits));
  struct nvlar_setup_outcome outcome = {.route = NULL, .single_rank_device = 0};
  nvlar_lifecycle_setup_done(comm, &outcome);
  struct nvlar_real_nccl nccl;
  memset(&nccl, 0, sizeof(nccl));
  nccl.ncclAllReduce = counting_allreduce;
  static char buffer[64];
  assert_int_equal(nvlar_allreduce(&nccl, buffer, buffer + 32, SIZE_MAX / 2, ncclFloat64,
                                   ncclMax, comm, NULL),
                   ncclInvalidArgument);
  assert_int_equal(atomic_load(&nccl_allreduces), 0);
  char line[2048];
  log_line("NVLAR WARN comm 0x5000: AllReduce : count 9223372036854775807 of 8-byte elements "
           "overflows the byte count", line, sizeof(line));
  nvlar_registry_clear();
}

int main(void) {
  if (mkdtemp(scratch_dir) == NULL) return 1;
  snprintf(log_path, sizeof(log_path), "%s/log", scratch_dir);
  setenv("NVLAR_DEBUG", "WARN", 1);
  setenv("NVLAR_DEBUG_FILE", log_path, 1);
  setenv("NVLAR_BUFFER_BYTES", "1048577", 1);
  setenv("NVLAR_CTAS", "7\x1b]0;owned\x07\"", 1);
  char long_value[301];
  memset(long_value, '9', 300);
  long_value[300] = '\0';
  setenv("NVLAR_TIMEOUT_MS", long_value, 1);
  setenv("NVLAR_TUNING_FILE", scratch_dir, 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rejected_values_warn_quoted),
      cmocka_unit_test(test_log_lines_are_printable),
      cmocka_unit_test(test_quotable),
      cmocka_unit_test(test_tuning_file_directory_warns),
      cmocka_unit_test(test_differing_settings_are_named),
      cmocka_unit_test(test_other_reasons_are_not_settings),
      cmocka_unit_test(test_overflowing_count_on_a_route),
      cmocka_unit_test(test_overflowing_count_on_one_rank),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  unlink(log_path);
  rmdir(scratch_dir);
  return failed;
}
