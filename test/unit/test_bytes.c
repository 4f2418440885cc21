/* The one byte-count grammar (common/bytes.h), and the three readers that share it: NVLAR_*
 * sizes, tuning-table byte ranges and nvlar-bench's options each accept and refuse the same
 * texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "bytes.h"
#include "params.h"
#include "tuning_table.h"

#define KIB ((uint64_t)1 << 10)
#define MIB ((uint64_t)1 << 20)
#define GIB ((uint64_t)1 << 30)

static const struct {
  const char *text;
  uint64_t bytes;
} valid[] = {
    {"0", 0},
    {"1", 1},
    {"65536", 65536},
    {"007", 7}, /* leading zeros: still decimal, not octal */
    {"64K", 64 * KIB},
    {"64k", 64 * KIB},
    {"64KB", 64 * KIB},
    {"64kb", 64 * KIB},
    {"64Kb", 64 * KIB},
    {"64KiB", 64 * KIB},
    {"64kib", 64 * KIB},
    {"64KIB", 64 * KIB},
    {"64Ki", 64 * KIB},
    {"2M", 2 * MIB},
    {"2m", 2 * MIB},
    {"2MB", 2 * MIB},
    {"2MiB", 2 * MIB},
    {"3G", 3 * GIB},
    {"3gib", 3 * GIB},
    {"3GB", 3 * GIB},
    {"512B", 512},
    {"512b", 512},
    {" 64M", 64 * MIB},
    {"64M ", 64 * MIB},
    {"\t64MiB\n", 64 * MIB},
    {"18446744073709551615", UINT64_MAX},
    {"17179869183G", UINT64_MAX - (GIB - 1)}, /* the largest count of GiB */
    {"17592186044415M", UINT64_MAX - (MIB - 1)},
    {"18014398509481983K", UINT64_MAX - (KIB - 1)},
};

/* Each with (a word of) the reason it gives. */
static const struct {
  const char *text;
  const char *why;
} invalid[] = {
    {"", "no digits"},
    {"   ", "no digits"},
    {"K", "no digits"},
    {"MiB", "no digits"},
    {"inf", "no digits"}, /* a tuning table's MAX, not a count */
    {"-1", "no sign"},
    {"-4K", "no sign"},
    {"+64K", "no sign"},
    {"1.5M", "whole number"},
    {"1,024", "whole number"},
    {"0x10", "whole number"},
    {"1e6", "whole number"},
    {"12T", "whole number"},  /* K, M and G only */
    {"64KK", "whole number"},
    {"64KiBB", "whole number"},
    {"64iB", "whole number"}, /* i without a unit */
    {"64BB", "whole number"},
    {"64Bi", "whole number"},
    {"64MiB!", "whole number"},
    {"64 K", "blank inside"},
    {"64K 5", "blank inside"},
    {"18446744073709551616", "2^64"},
    {"99999999999999999999999", "2^64"},
    {"17179869184G", "2^64"},
    {"17592186044416M", "2^64"},
    {"18014398509481984K", "2^64"},
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static void test_valid(void **state) {
  (void)state;
  for (size_t i = 0; i < COUNT_OF(valid); i++) {
    uint64_t bytes = 12345;
    const char *why = nvlar_parse_bytes(valid[i].text, &bytes);
    if (why != NULL) fail_msg("\"%s\" refused: %s", valid[i].text, why);
    if (bytes != valid[i].bytes) {
      fail_msg("\"%s\" read as %llu, not %llu", valid[i].text, (unsigned long long)bytes,
               (unsigned long long)valid[i].bytes);
    }
  }
}

static void test_invalid(void **state) {
  (void)state;
  for (size_t i = 0; i < COUNT_OF(invalid); i++) {
    uint64_t bytes = 12345;
    const char *why = nvlar_parse_bytes(invalid[i].text, &bytes);
    if (why == NULL) fail_msg("\"%s\" accepted as %llu", invalid[i].text, (unsigned long long)bytes);
    if (strstr(why, invalid[i].why) == NULL) {
      fail_msg("\"%s\" refused with \"%s\", not \"...%s...\"", invalid[i].text, why,
               invalid[i].why);
    }
    assert_int_equal(bytes, 12345); /* left alone */
  }
}

/* NVLAR_MAX_BYTES takes what the grammar takes, up to its INT64_MAX, and nothing else. */
static void test_params_share_it(void **state) {
  (void)state;
  const struct nvlar_param_desc *desc = &nvlar_param_descs[NVLAR_P_MAX_BYTES];
  char why[128];
  int64_t number = 0;
  for (size_t i = 0; i < COUNT_OF(valid); i++) {
    bool fits = valid[i].bytes <= (uint64_t)INT64_MAX;
    assert_int_equal(nvlar_param_parse(desc, valid[i].text, &number, why, sizeof(why)), fits);
    if (fits) assert_int_equal(number, (int64_t)valid[i].bytes);
    if (!fits) assert_non_null(strstr(why, "out of range"));
  }
  for (size_t i = 0; i < COUNT_OF(invalid); i++) {
    assert_false(nvlar_param_parse(desc, invalid[i].text, &number, why, sizeof(why)));
    assert_non_null(strstr(why, "not a size in bytes"));
    assert_non_null(strstr(why, invalid[i].why));
  }
}

/* A tuning row's BYTES takes the same counts (without blanks: they separate fields) and "inf"
 * as MAX; the KiB and MiB spellings of NVLAR_BUFFER_BYTES work in a table too. */
static void test_tuning_table_shares_it(void **state) {
  (void)state;
  struct nvlar_tuning_table table;
  char row[128];
  for (size_t i = 0; i < COUNT_OF(valid); i++) {
    if (strpbrk(valid[i].text, " \t\n") != NULL) continue;
    snprintf(row, sizeof(row), "nvlar 0-%s * * oneshot\n", valid[i].text);
    assert_int_equal(nvlar_tuning_parse(row, "t", &table, NULL, NULL), 1);
    assert_int_equal(table.rows[0].max_bytes, valid[i].bytes);
  }
  for (size_t i = 0; i < COUNT_OF(invalid); i++) {
    if (strcmp(invalid[i].text, "inf") == 0 || invalid[i].text[0] == '\0') continue;
    if (strpbrk(invalid[i].text, " \t-") != NULL) continue; /* no single field */
    snprintf(row, sizeof(row), "nvlar %s-inf * * oneshot\n", invalid[i].text);
    if (nvlar_tuning_parse(row, "t", &table, NULL, NULL) != 0) fail_msg("row \"%s\" accepted", row);
  }
  assert_int_equal(nvlar_tuning_parse("nvlar 64KiB-1mib * * push\n", "t", &table, NULL, NULL), 1);
  assert_int_equal(table.rows[0].min_bytes, 64 * KIB);
  assert_int_equal(table.rows[0].max_bytes, MIB);
  assert_int_equal(nvlar_tuning_parse("nvlar 1GB-inf * * nccl\n", "t", &table, NULL, NULL), 1);
  assert_int_equal(table.rows[0].min_bytes, GIB);
  assert_int_equal(table.rows[0].max_bytes, UINT64_MAX);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid),
      cmocka_unit_test(test_invalid),
      cmocka_unit_test(test_params_share_it),
      cmocka_unit_test(test_tuning_table_shares_it),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
