/* The algorithm table (kernels/nvlar_algos.h) walked row by row: every algorithm's name reaches
 * it through the tuning-table parser and through NVLAR_ALGO, selection demotes it exactly as
 * its row says, and `nvlar-table --algorithms` prints it for the scripts. A new row is covered
 * without touching this file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "nvlar_kernels.h"
#include "params.h"
#include "selection.h"
#include "spawn.h"
#include "tuning_table.h"

/* Above every algorithm's min_arch (compute capability x 10). */
#define NEWEST_ARCH 1000

static const struct nvlar_algo_desc *desc(int algo) { return &nvlar_algo_descs[algo]; }

/* A policy with room for any CTA count, that forces `forced` (or follows `table`). */
static struct nvlar_policy policy_for(int forced, const struct nvlar_tuning_table *table,
                                      int arch) {
  return (struct nvlar_policy){.nranks = 8, .arch = arch, .forced = forced, .max_bytes = 0,
                               .max_blocks = NVLAR_MAX_BLOCKS, .table = table};
}

/* The NVLAR_ALGO value of a word, through the parameter parser. */
static int forced_value(const char *word) {
  int64_t number = -1;
  char why[128] = "";
  assert_true(nvlar_param_parse(&nvlar_param_descs[NVLAR_P_ALGO], word, &number, why,
                                sizeof(why)));
  return (int)number;
}

/* A table of one row that sends every size to `word`. */
static void table_of(const char *word, struct nvlar_tuning_table *table) {
  char text[64];
  snprintf(text, sizeof(text), "nvlar 0-inf * * %s\n", word);
  assert_int_equal(nvlar_tuning_parse(text, "test", table, NULL, NULL), 1);
}

static void test_values_and_names(void **state) {
  (void)state;
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) {
    const char *name = desc(algo)->name;
    assert_non_null(name);
    assert_string_equal(nvlar_algo_name(algo), name);
    assert_int_equal(nvlar_algo_from_name(name), algo);
    /* Each name once, and none that the tuning table or NVLAR_ALGO already use. */
    for (int other = 0; other < algo; other++) assert_string_not_equal(desc(other)->name, name);
    /* A title for tables and plots, each its own, without the tab that separates the columns
     * of nvlar-table --algorithms. */
    const char *title = desc(algo)->title;
    assert_non_null(title);
    assert_true(title[0] != '\0' && strchr(title, '\t') == NULL && strchr(title, '\n') == NULL);
    for (int other = 0; other < algo; other++) assert_string_not_equal(desc(other)->title, title);
    assert_string_not_equal(name, "nccl");
    assert_string_not_equal(name, "auto");
    assert_true(desc(algo)->bytes_per_cta > 0);
    assert_true(desc(algo)->most_ctas >= 1 && desc(algo)->most_ctas <= NVLAR_MAX_BLOCKS);
  }
  assert_string_equal(nvlar_algo_name(-1), "?");
  assert_string_equal(nvlar_algo_name(NVLAR_ALGO_COUNT), "?");
  assert_int_equal(nvlar_algo_from_name("threeshot"), -1);
}

/* Every demotion chain ends: a replacement needs an older GPU, or takes larger messages. */
static void test_demotions_end(void **state) {
  (void)state;
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) {
    const struct nvlar_algo_desc *d = desc(algo);
    if (d->min_arch == 0) {
      assert_int_equal(d->below_arch, algo);
    } else {
      assert_int_not_equal(d->below_arch, algo);
      assert_true(desc(d->below_arch)->min_arch < d->min_arch);
    }
    if (d->max_bytes == 0) {
      assert_int_equal(d->above_max, algo);
    } else {
      assert_int_not_equal(d->above_max, algo);
      size_t next_cap = desc(d->above_max)->max_bytes;
      assert_true(next_cap == 0 || next_cap > d->max_bytes);
    }
  }
}

/* The tuning table's KERNEL word: parsed to the algorithm, printed back as the name, in any
 * case; "nccl" stays distinct from every algorithm. */
static void test_tuning_table_words(void **state) {
  (void)state;
  struct nvlar_tuning_table table;
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) {
    const char *name = desc(algo)->name;
    table_of(name, &table);
    assert_int_equal(table.rows[0].kernel, algo);
    assert_string_equal(nvlar_tuning_kernel_name(table.rows[0].kernel), name);
    char upper[32];
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < sizeof(upper); i++) {
      upper[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 'a' + 'A' : name[i]);
    }
    upper[i] = '\0';
    table_of(upper, &table);
    assert_int_equal(table.rows[0].kernel, algo);
  }
  table_of("nccl", &table);
  assert_int_equal(table.rows[0].kernel, NVLAR_ALGO_NCCL);
  assert_string_equal(nvlar_tuning_kernel_name(NVLAR_ALGO_NCCL), "nccl");
  assert_string_equal(nvlar_tuning_kernel_name(-1), "?");
  assert_int_equal(nvlar_tuning_parse("nvlar 0-inf * * threeshot\n", "test", &table, NULL, NULL),
                   0);
}

/* NVLAR_ALGO=<name> forces that algorithm, whatever the table says; auto and nccl keep their
 * meaning. */
static void test_forcing_by_name(void **state) {
  (void)state;
  struct nvlar_tuning_table to_nccl;
  table_of("nccl", &to_nccl);
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) {
    int forced = forced_value(desc(algo)->name);
    assert_true(forced > NVLAR_FORCE_AUTO && forced < NVLAR_FORCE_NCCL);
    struct nvlar_policy policy = policy_for(forced, &to_nccl, NEWEST_ARCH);
    struct nvlar_choice choice = nvlar_select(&policy, 1);
    assert_true(choice.nvlar);
    assert_int_equal(choice.algo, algo);
  }
  assert_int_equal(forced_value("auto"), NVLAR_FORCE_AUTO);
  assert_int_equal(forced_value("nccl"), NVLAR_FORCE_NCCL);
  struct nvlar_policy policy = policy_for(NVLAR_FORCE_AUTO, &to_nccl, NEWEST_ARCH);
  assert_false(nvlar_select(&policy, 1).nvlar);
}

/* What selection runs for `algo` chosen by NVLAR_ALGO, and chosen by a tuning-table row; both
 * must agree. */
static int selected(int algo, int arch, size_t bytes) {
  struct nvlar_tuning_table table;
  table_of(desc(algo)->name, &table);
  struct nvlar_policy by_table = policy_for(NVLAR_FORCE_AUTO, &table, arch);
  struct nvlar_policy forced = policy_for(forced_value(desc(algo)->name), NULL, arch);
  struct nvlar_choice from_table = nvlar_select(&by_table, bytes);
  struct nvlar_choice from_force = nvlar_select(&forced, bytes);
  assert_true(from_table.nvlar && from_force.nvlar);
  assert_int_equal(from_table.algo, from_force.algo);
  assert_int_equal(from_table.nblocks, from_force.nblocks);
  return from_table.algo;
}

static void test_selection_demotes_as_described(void **state) {
  (void)state;
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) {
    const struct nvlar_algo_desc *d = desc(algo);
    int arch = d->min_arch > 0 ? d->min_arch : 80;
    size_t largest = d->max_bytes > 0 ? d->max_bytes : (size_t)1 << 30;
    /* Where it can run: itself, up to its cap. */
    assert_int_equal(selected(algo, arch, 1), algo);
    assert_int_equal(selected(algo, arch, largest), algo);
    /* One architecture below its minimum: the row's replacement. */
    if (d->min_arch > 0) assert_int_equal(selected(algo, d->min_arch - 1, 1), d->below_arch);
    /* One byte above its cap: the row's replacement. */
    if (d->max_bytes > 0) {
      assert_int_equal(selected(algo, NEWEST_ARCH, d->max_bytes + 1), d->above_max);
    }
  }
}

/* Default CTAs follow the row: one per bytes_per_cta, at most most_ctas. */
static void test_default_ctas(void **state) {
  (void)state;
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) {
    const struct nvlar_algo_desc *d = desc(algo);
    struct nvlar_policy policy = policy_for(forced_value(d->name), NULL, NEWEST_ARCH);
    assert_int_equal(nvlar_select(&policy, 1).nblocks, 1);
    size_t two_ctas = d->bytes_per_cta + 1;
    if (d->most_ctas >= 2 && (d->max_bytes == 0 || two_ctas <= d->max_bytes)) {
      assert_int_equal(nvlar_select(&policy, two_ctas).nblocks, 2);
    }
    size_t beyond_most = d->bytes_per_cta * (size_t)(d->most_ctas + 1);
    if (d->max_bytes == 0 || beyond_most <= d->max_bytes) {
      assert_int_equal(nvlar_select(&policy, beyond_most).nblocks, d->most_ctas);
    }
  }
}

/* nvlar_forced_value is the inverse of forcing: the value that selects each algorithm, and
 * NCCL. */
static void test_forced_value_round_trip(void **state) {
  (void)state;
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) {
    int forced = nvlar_forced_value(algo);
    assert_int_equal(forced, forced_value(desc(algo)->name));
    struct nvlar_policy policy = policy_for(forced, NULL, NEWEST_ARCH);
    assert_int_equal(nvlar_select(&policy, 1).algo, algo);
  }
  assert_int_equal(nvlar_forced_value(NVLAR_ALGO_NCCL), NVLAR_FORCE_NCCL);
  assert_int_equal(nvlar_forced_value(NVLAR_ALGO_NCCL + 1), NVLAR_FORCE_AUTO);
  assert_int_equal(nvlar_forced_value(-1), NVLAR_FORCE_AUTO);
}

/* NVLAR_CTAS replaces every rule and tuning row's count, within the SM cap. */
static void test_forced_ctas(void **state) {
  (void)state;
  for (int algo = 0; algo < NVLAR_ALGO_COUNT; algo++) {
    struct nvlar_policy policy = policy_for(forced_value(desc(algo)->name), NULL, NEWEST_ARCH);
    policy.ctas = 3;
    assert_int_equal(nvlar_select(&policy, 1).nblocks, 3);
    assert_int_equal(nvlar_select(&policy, 1u << 30).nblocks, 3);
    policy.ctas = NVLAR_MAX_BLOCKS;
    policy.max_blocks = 66;
    assert_int_equal(nvlar_select(&policy, 1).nblocks, 66);
  }
}

/* Whether a row of the built-in tuning table names `algo`. */
static bool builtin_names(int algo) {
  struct nvlar_tuning_table table;
  assert_true(nvlar_tuning_parse(nvlar_tuning_builtin, "built-in", &table, NULL, NULL) > 0);
  for (int i = 0; i < table.nrows; i++) {
    if (table.rows[i].kind == NVLAR_ROW_KERNEL && table.rows[i].kernel == algo) return true;
  }
  return false;
}

/* nvlar-table --algorithms, what the scripts read instead of lists of their own: a header, then
 * every row of the table, once, in the order of NVLAR_ALGO's words, with every column. */
static void test_nvlar_table_algorithms(void **state) {
  (void)state;
  char output[8192];
  char *argv[] = {NVLAR_TEST_NVLAR_TABLE, "--algorithms", NULL};
  const char *env[] = {NULL};
  assert_int_equal(nvlar_test_run(argv, env, output, sizeof(output)), 0);
  char want[8192];
  int used = snprintf(want, sizeof(want), "name\tvalue\ttitle\tmin_arch\tbelow_arch\tmax_bytes\t"
                                          "above_max\tbytes_per_cta\tmost_ctas\tbuiltin\n");
  for (int row = 0; row < NVLAR_ALGO_COUNT; row++) {
    int algo = 0;
    while (algo < NVLAR_ALGO_COUNT && nvlar_forced_value(algo) != NVLAR_FORCE_AUTO + 1 + row) {
      algo++;
    }
    assert_true(algo < NVLAR_ALGO_COUNT);
    const struct nvlar_algo_desc *d = desc(algo);
    used += snprintf(want + used, sizeof(want) - (size_t)used,
                     "%s\t%d\t%s\t%d\t%s\t%zu\t%s\t%zu\t%d\t%s\n", d->name, algo, d->title,
                     d->min_arch, desc(d->below_arch)->name, d->max_bytes,
                     desc(d->above_max)->name, d->bytes_per_cta, d->most_ctas,
                     builtin_names(algo) ? "yes" : "no");
    assert_true(used > 0 && (size_t)used < sizeof(want));
  }
  assert_string_equal(output, want);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values_and_names),
      cmocka_unit_test(test_demotions_end),
      cmocka_unit_test(test_tuning_table_words),
      cmocka_unit_test(test_forcing_by_name),
      cmocka_unit_test(test_selection_demotes_as_described),
      cmocka_unit_test(test_default_ctas),
      cmocka_unit_test(test_forced_ctas),
      cmocka_unit_test(test_forced_value_round_trip),
      cmocka_unit_test(test_nvlar_table_algorithms),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
