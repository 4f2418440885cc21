/* Parameter table: parsing of every type, rejected values (WARN text with the value quoted and
 * cut, default kept), values the code behind them would refuse later, unset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "params.h"
#include "selection.h"

/* A fake environment: NULL-terminated NAME, value pairs. */
static const char *lookup_pairs(const char *name, void *ctx) {
  const char *const *pairs = ctx;
  for (size_t i = 0; pairs[i] != NULL; i += 2) {
    if (strcmp(pairs[i], name) == 0) return pairs[i + 1];
  }
  return NULL;
}

static void load(struct nvlar_params *params, const char *const *pairs) {
  nvlar_params_load(params, lookup_pairs, (void *)pairs);
}

static int64_t parse_ok(enum nvlar_param_id id, const char *text) {
  int64_t number = -12345;
  char why[128] = "";
  assert_true(nvlar_param_parse(&nvlar_param_descs[id], text, &number, why, sizeof(why)));
  assert_string_equal(why, "");
  return number;
}

static void parse_fails(enum nvlar_param_id id, const char *text) {
  int64_t number = 0;
  char why[128] = "";
  assert_false(nvlar_param_parse(&nvlar_param_descs[id], text, &number, why, sizeof(why)));
  assert_true(strlen(why) > 0);
}

static void test_every_default_parses(void **state) {
  (void)state;
  for (int id = 0; id < NVLAR_PARAM_COUNT; id++) {
    int64_t number;
    char why[128] = "";
    const struct nvlar_param_desc *desc = &nvlar_param_descs[id];
    assert_true(nvlar_param_parse(desc, desc->default_text, &number, why, sizeof(why)));
    assert_non_null(desc->doc);
    assert_true(strncmp(desc->env_name, "NVLAR_", 6) == 0);
  }
}

static void test_unset_gives_defaults(void **state) {
  (void)state;
  const char *const empty[] = {NULL};
  struct nvlar_params params;
  load(&params, empty);
  assert_int_equal(params.values[NVLAR_P_DEBUG].number, 1); /* WARN */
  assert_int_equal(params.values[NVLAR_P_TIMEOUT_MS].number, 600000);
  assert_int_equal(params.values[NVLAR_P_BUFFER_BYTES].number, 64 << 20);
  assert_int_equal(params.values[NVLAR_P_DISABLE].number, 0);
  assert_string_equal(params.values[NVLAR_P_NCCL_LIBRARY].text, "");
  for (int id = 0; id < NVLAR_PARAM_COUNT; id++) {
    assert_false(params.values[id].from_env);
    assert_string_equal(params.values[id].error, "");
  }
  nvlar_params_release(&params);
}

static void test_valid_values(void **state) {
  (void)state;
  const char *const env[] = {"NVLAR_DEBUG", "info",
                             "NVLAR_DISABLE", "yes",
                             "NVLAR_ALGO", "TwoShot",
                             "NVLAR_MAX_BYTES", "512K",
                             "NVLAR_BUFFER_BYTES", "2MiB",
                             "NVLAR_TIMEOUT_MS", " 2500 ",
                             "NVLAR_NCCL_LIBRARY", "/opt/nccl/lib/libnccl.so.2",
                             NULL};
  struct nvlar_params params;
  load(&params, env);
  assert_int_equal(params.values[NVLAR_P_DEBUG].number, 2);
  assert_int_equal(params.values[NVLAR_P_DISABLE].number, 1);
  assert_int_equal(params.values[NVLAR_P_ALGO].number, NVLAR_FORCE_TWOSHOT);
  assert_int_equal(params.values[NVLAR_P_MAX_BYTES].number, 512 << 10);
  assert_int_equal(params.values[NVLAR_P_BUFFER_BYTES].number, 2 << 20);
  assert_int_equal(params.values[NVLAR_P_TIMEOUT_MS].number, 2500);
  assert_string_equal(params.values[NVLAR_P_NCCL_LIBRARY].text, "/opt/nccl/lib/libnccl.so.2");
  for (int id = 0; id < NVLAR_PARAM_COUNT; id++) assert_string_equal(params.values[id].error, "");
  assert_true(params.values[NVLAR_P_ALGO].from_env);
  assert_false(params.values[NVLAR_P_ALLOW_PCIE].from_env);
  nvlar_params_release(&params);
}

static void test_invalid_values_keep_default(void **state) {
  (void)state;
  const char *const env[] = {"NVLAR_DEBUG", "LOUD",
                             "NVLAR_DISABLE", "2",
                             "NVLAR_BUFFER_BYTES", "12", /* below the 1 MiB minimum */
                             "NVLAR_TIMEOUT_MS", "10s",
                             "NVLAR_MAX_BYTES", "-1",
                             NULL};
  struct nvlar_params params;
  load(&params, env);
  assert_int_equal(params.values[NVLAR_P_DEBUG].number, 1);
  assert_int_equal(params.values[NVLAR_P_DISABLE].number, 0);
  assert_int_equal(params.values[NVLAR_P_BUFFER_BYTES].number, 64 << 20);
  assert_int_equal(params.values[NVLAR_P_TIMEOUT_MS].number, 600000);
  assert_int_equal(params.values[NVLAR_P_MAX_BYTES].number, 0);
  assert_false(params.values[NVLAR_P_DEBUG].from_env);
  assert_string_equal(params.values[NVLAR_P_DEBUG].text, "WARN");
  /* The message names the variable, the rejected text, the reason and the default used. */
  const char *message = params.values[NVLAR_P_DEBUG].error;
  assert_non_null(strstr(message, "NVLAR_DEBUG=\"LOUD\""));
  assert_non_null(strstr(message, "NONE|WARN|INFO|TRACE"));
  assert_non_null(strstr(message, "using WARN"));
  assert_non_null(strstr(params.values[NVLAR_P_BUFFER_BYTES].error, "out of range"));
  assert_non_null(strstr(params.values[NVLAR_P_TIMEOUT_MS].error, "not a decimal integer"));
  assert_string_equal(params.values[NVLAR_P_ALGO].error, "");
  nvlar_params_release(&params);
}

static void test_bool_spellings(void **state) {
  (void)state;
  const char *yes[] = {"1", "true", "TRUE", "yes", "on"};
  const char *no[] = {"0", "false", "No", "off"};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) assert_int_equal(parse_ok(NVLAR_P_DISABLE, yes[i]), 1);
  for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) assert_int_equal(parse_ok(NVLAR_P_DISABLE, no[i]), 0);
  parse_fails(NVLAR_P_DISABLE, "");
  parse_fails(NVLAR_P_DISABLE, "2");
  parse_fails(NVLAR_P_DISABLE, "enabled");
}

static void test_sizes(void **state) {
  (void)state;
  assert_int_equal(parse_ok(NVLAR_P_MAX_BYTES, "0"), 0);
  assert_int_equal(parse_ok(NVLAR_P_MAX_BYTES, "65536"), 65536);
  assert_int_equal(parse_ok(NVLAR_P_MAX_BYTES, "64k"), 65536);
  assert_int_equal(parse_ok(NVLAR_P_MAX_BYTES, "64KB"), 65536);
  assert_int_equal(parse_ok(NVLAR_P_MAX_BYTES, "3G"), (int64_t)3 << 30);
  assert_int_equal(parse_ok(NVLAR_P_MAX_BYTES, "8GiB"), (int64_t)8 << 30);
  assert_int_equal(parse_ok(NVLAR_P_MAX_BYTES, "9223372036854775807"), INT64_MAX);
  parse_fails(NVLAR_P_MAX_BYTES, "9223372036854775808"); /* overflows int64 */
  parse_fails(NVLAR_P_MAX_BYTES, "9000000000G");         /* overflows after the suffix */
  parse_fails(NVLAR_P_MAX_BYTES, "12T");
  parse_fails(NVLAR_P_MAX_BYTES, "1.5M");
  parse_fails(NVLAR_P_MAX_BYTES, "M");
  parse_fails(NVLAR_P_MAX_BYTES, "");
  parse_fails(NVLAR_P_MAX_BYTES, "-4K");
  parse_fails(NVLAR_P_BUFFER_BYTES, "17G"); /* above the 16 GiB maximum */
}

static void test_integers(void **state) {
  (void)state;
  assert_int_equal(parse_ok(NVLAR_P_TIMEOUT_MS, "1"), 1);
  assert_int_equal(parse_ok(NVLAR_P_TIMEOUT_MS, "86400000"), 86400000);
  parse_fails(NVLAR_P_TIMEOUT_MS, "0");
  parse_fails(NVLAR_P_TIMEOUT_MS, "86400001");
  parse_fails(NVLAR_P_TIMEOUT_MS, "5K"); /* suffixes are for sizes only */
  parse_fails(NVLAR_P_TIMEOUT_MS, "0x10");
}

static void test_choices(void **state) {
  (void)state;
  assert_int_equal(parse_ok(NVLAR_P_DEBUG, "none"), 0);
  assert_int_equal(parse_ok(NVLAR_P_DEBUG, "TRACE"), 3);
  assert_int_equal(parse_ok(NVLAR_P_ALGO, "auto"), NVLAR_FORCE_AUTO);
  assert_int_equal(parse_ok(NVLAR_P_ALGO, "tma"), NVLAR_FORCE_TMA);
  assert_int_equal(parse_ok(NVLAR_P_ALGO, "push"), NVLAR_FORCE_PUSH);
  assert_int_equal(parse_ok(NVLAR_P_ALGO, "nccl"), NVLAR_FORCE_NCCL);
  parse_fails(NVLAR_P_ALGO, "one");     /* a prefix is not a match */
  parse_fails(NVLAR_P_ALGO, "oneshot|twoshot");
  parse_fails(NVLAR_P_ALGO, "");
}

/* The kernels need a staging buffer of whole 256-byte blocks: any other size would pass here
 * and fail the buffers' allocation on every rank, so it is refused here. */
static void test_buffer_bytes_multiple_of_256(void **state) {
  (void)state;
  assert_int_equal(nvlar_param_descs[NVLAR_P_BUFFER_BYTES].multiple_of, 256);
  assert_int_equal(parse_ok(NVLAR_P_BUFFER_BYTES, "1048832"), (1 << 20) + 256);
  parse_fails(NVLAR_P_BUFFER_BYTES, "1048577");
  parse_fails(NVLAR_P_BUFFER_BYTES, "1048704"); /* + 128 */
  const char *const env[] = {"NVLAR_BUFFER_BYTES", "1048577", NULL};
  struct nvlar_params params;
  load(&params, env);
  assert_int_equal(params.values[NVLAR_P_BUFFER_BYTES].number, 64 << 20);
  assert_string_equal(params.values[NVLAR_P_BUFFER_BYTES].error,
                      "NVLAR_BUFFER_BYTES=\"1048577\" ignored: not a multiple of 256; using 64M");
  nvlar_params_release(&params);
  /* Every default obeys its own table row. */
  for (int id = 0; id < NVLAR_PARAM_COUNT; id++) {
    const struct nvlar_param_desc *desc = &nvlar_param_descs[id];
    int64_t number;
    char why[128];
    assert_true(nvlar_param_parse(desc, desc->default_text, &number, why, sizeof(why)));
    if (desc->multiple_of > 0) assert_int_equal(number % desc->multiple_of, 0);
  }
}

/* A rejected value is the user's bytes: quoted with its control bytes escaped, and cut. */
static void test_rejected_value_is_quoted(void **state) {
  (void)state;
  char long_value[200];
  memset(long_value, 'x', sizeof(long_value) - 1);
  long_value[sizeof(long_value) - 1] = '\0';
  const char *const env[] = {"NVLAR_DEBUG", "INFO\nhost:1:1 NVLAR WARN forged\x1b[0m",
                             "NVLAR_ALGO", long_value, NULL};
  struct nvlar_params params;
  load(&params, env);
  assert_string_equal(params.values[NVLAR_P_DEBUG].error,
                      "NVLAR_DEBUG=\"INFO\\x0ahost:1:1 NVLAR WARN forged\\x1b[0m\" ignored: not "
                      "one of NONE|WARN|INFO|TRACE; using WARN");
  const char *algo = params.values[NVLAR_P_ALGO].error;
  assert_non_null(strstr(algo, "NVLAR_ALGO=\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\" ignored"));
  assert_non_null(strstr(algo, "using auto"));
  nvlar_params_release(&params);
}

static void test_choice_words(void **state) {
  (void)state;
  char word[32];
  assert_string_equal(nvlar_param_choice_word(NVLAR_P_ALGO, NVLAR_FORCE_AUTO, word, sizeof(word)), "auto");
  assert_string_equal(nvlar_param_choice_word(NVLAR_P_ALGO, NVLAR_FORCE_TWOSHOT, word, sizeof(word)), "twoshot");
  assert_string_equal(nvlar_param_choice_word(NVLAR_P_ALGO, NVLAR_FORCE_NCCL, word, sizeof(word)), "nccl");
  assert_string_equal(nvlar_param_choice_word(NVLAR_P_ALGO, NVLAR_FORCE_NCCL + 1, word, sizeof(word)), "?");
  assert_string_equal(nvlar_param_choice_word(NVLAR_P_ALGO, -1, word, sizeof(word)), "?");
  assert_string_equal(nvlar_param_choice_word(NVLAR_P_TIMEOUT_MS, 0, word, sizeof(word)), "?");
}

static void test_strings_are_copied(void **state) {
  (void)state;
  char path[] = "/tmp/a";
  const char *env[] = {"NVLAR_TUNING_FILE", path, NULL};
  struct nvlar_params params;
  load(&params, env);
  path[1] = 'X';
  assert_string_equal(params.values[NVLAR_P_TUNING_FILE].text, "/tmp/a");
  nvlar_params_release(&params);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_default_parses),
      cmocka_unit_test(test_unset_gives_defaults),
      cmocka_unit_test(test_valid_values),
      cmocka_unit_test(test_invalid_values_keep_default),
      cmocka_unit_test(test_bool_spellings),
      cmocka_unit_test(test_sizes),
      cmocka_unit_test(test_integers),
      cmocka_unit_test(test_choices),
      cmocka_unit_test(test_strings_are_copied),
      cmocka_unit_test(test_buffer_bytes_multiple_of_256),
      cmocka_unit_test(test_rejected_value_is_quoted),
      cmocka_unit_test(test_choice_words),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
