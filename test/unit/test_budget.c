/* NCCL's SM limits, honoured: the CTA limits of a communicator as NCCL 2.28 computes them from
 * its ncclConfig_t, NCCL_MIN_CTAS / NCCL_MAX_CTAS and its parent (plugin/config.c), the
 * tightest of every rank's (selection.c), and no choice of nvlar_select above the cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "selection.h"

static ncclConfig_t config_with(int min_ctas, int max_ctas) {
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  config.minCTAs = min_ctas;
  config.maxCTAs = max_ctas;
  return config;
}

static void expect(struct nvlar_cta_limits got, int min_ctas, int max_ctas) {
  assert_int_equal(got.min_ctas, min_ctas);
  assert_int_equal(got.max_ctas, max_ctas);
}

static void test_defaults_are_ncclS(void **state) {
  (void)state;
  expect(nvlar_cta_limits(NULL, NULL, NULL, NULL), 1, 64);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  expect(nvlar_cta_limits(&config, NULL, NULL, NULL), 1, 64);
}

static void test_config_then_environment(void **state) {
  (void)state;
  ncclConfig_t config = config_with(NCCL_CONFIG_UNDEF_INT, 8);
  expect(nvlar_cta_limits(&config, NULL, NULL, NULL), 1, 8);
  /* The environment replaces the config (NCCL's envConfigOverride). */
  expect(nvlar_cta_limits(&config, NULL, NULL, "4"), 1, 4);
  expect(nvlar_cta_limits(&config, NULL, NULL, "24"), 1, 24);
  expect(nvlar_cta_limits(&config, NULL, "2", "4"), 2, 4);
  /* Values NCCL ignores: zero, negative, no digits. strtoll with base 0, as NCCL parses. */
  expect(nvlar_cta_limits(&config, NULL, NULL, "0"), 1, 8);
  expect(nvlar_cta_limits(&config, NULL, NULL, "-3"), 1, 8);
  expect(nvlar_cta_limits(&config, NULL, NULL, "many"), 1, 8);
  expect(nvlar_cta_limits(&config, NULL, NULL, "0x10"), 1, 16);
  expect(nvlar_cta_limits(NULL, NULL, NULL, "12 CTAs"), 1, 12);
}

static void test_caps_and_order(void **state) {
  (void)state;
  ncclConfig_t config = config_with(NCCL_CONFIG_UNDEF_INT, 200);
  expect(nvlar_cta_limits(&config, NULL, NULL, NULL), 1, 64); /* MAXCHANNELS */
  expect(nvlar_cta_limits(NULL, NULL, "100", "100"), 64, 64);
  config = config_with(16, 8);
  expect(nvlar_cta_limits(&config, NULL, NULL, NULL), 8, 8); /* min above max: both max */
  expect(nvlar_cta_limits(NULL, NULL, "32", "16"), 16, 16);
}

static void test_old_config_has_no_limits(void **state) {
  (void)state;
  ncclConfig_t config = config_with(4, 8);
  config.version = NCCL_VERSION(2, 16, 5);
  expect(nvlar_cta_limits(&config, NULL, NULL, NULL), 1, 64);
  config.version = NCCL_VERSION(2, 17, 1);
  expect(nvlar_cta_limits(&config, NULL, NULL, NULL), 4, 8);
}

/* A split or shrink without a config copies its parent's; with one, NCCL parses it afresh
 * (unset fields take the defaults, not the parent's); the environment applies either way. */
static void test_children(void **state) {
  (void)state;
  struct nvlar_cta_limits parent = {2, 8};
  expect(nvlar_cta_limits(NULL, &parent, NULL, NULL), 2, 8);
  expect(nvlar_cta_limits(NULL, &parent, NULL, "4"), 2, 4);
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  expect(nvlar_cta_limits(&config, &parent, NULL, NULL), 1, 64);
  config = config_with(NCCL_CONFIG_UNDEF_INT, 16);
  expect(nvlar_cta_limits(&config, &parent, NULL, NULL), 1, 16);
}

static void test_blocking(void **state) {
  (void)state;
  ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
  assert_false(nvlar_config_nonblocking(NULL, -1, NULL));
  assert_false(nvlar_config_nonblocking(&config, -1, NULL));
  config.blocking = 0;
  assert_true(nvlar_config_nonblocking(&config, -1, NULL));
  /* NCCL_COMM_BLOCKING, when 0 or 1, wins over the config and the parent. */
  assert_false(nvlar_config_nonblocking(&config, -1, "1"));
  assert_true(nvlar_config_nonblocking(NULL, 0, "0"));
  assert_true(nvlar_config_nonblocking(&config, -1, "2")); /* not 0 or 1: ignored */
  assert_true(nvlar_config_nonblocking(NULL, 1, NULL));    /* the parent's */
  config.blocking = 1;
  assert_false(nvlar_config_nonblocking(&config, 1, NULL)); /* the child's own */
}

/* ---- Selection within the limits */

static struct nvlar_policy policy_for(int max_ctas, int min_ctas) {
  struct nvlar_policy policy = {.nranks = 2, .arch = 90, .max_blocks = 132,
                                .table = nvlar_tuning_table(), .max_ctas = max_ctas,
                                .min_ctas = min_ctas};
  return policy;
}

static const size_t sizes[] = {8, 4096, 65536, 1u << 20, 4u << 20, 64u << 20, 1u << 30};

static void test_no_choice_above_the_cap(void **state) {
  (void)state;
  const int caps[] = {1, 4, 8, 16, 24, 64};
  for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
    for (int forced = NVLAR_FORCE_AUTO; forced < NVLAR_FORCE_NCCL; forced++) {
      for (int ctas = 0; ctas <= 128; ctas += 64) {
        struct nvlar_policy policy = policy_for(caps[c], 0);
        policy.forced = forced;
        policy.ctas = ctas; /* NVLAR_CTAS: capped too */
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
          struct nvlar_choice choice = nvlar_select(&policy, sizes[s]);
          if (!choice.nvlar) continue;
          assert_true(choice.nblocks >= 1);
          assert_true(choice.nblocks <= caps[c]);
        }
      }
    }
  }
}

static void test_default_cap_is_ncclS_64(void **state) {
  (void)state;
  /* Without limits the push two-shot takes up to 128 CTAs at 1 GiB; NCCL's default keeps 64. */
  struct nvlar_policy unlimited = policy_for(0, 0);
  struct nvlar_policy defaults = policy_for(64, 1);
  struct nvlar_choice wide = nvlar_select(&unlimited, 1u << 30);
  struct nvlar_choice capped = nvlar_select(&defaults, 1u << 30);
  assert_true(wide.nvlar && capped.nvlar);
  assert_int_equal(wide.algo, capped.algo);
  assert_true(wide.nblocks > 64);
  assert_int_equal(capped.nblocks, 64);
  /* Small calls keep their own count (below the cap). */
  assert_int_equal(nvlar_select(&defaults, 4096).nblocks, nvlar_select(&unlimited, 4096).nblocks);
}

static void test_floor(void **state) {
  (void)state;
  struct nvlar_policy policy = policy_for(64, 8);
  struct nvlar_choice choice = nvlar_select(&policy, 8); /* the push one-shot: 1 CTA by rule */
  assert_true(choice.nvlar);
  assert_int_equal(choice.nblocks, 8);
  policy = policy_for(4, 4);
  assert_int_equal(nvlar_select(&policy, 8).nblocks, 4);
  policy = policy_for(64, 8);
  policy.max_blocks = 6; /* fewer SMs than the floor: what fits */
  assert_int_equal(nvlar_select(&policy, 8).nblocks, 6);
}

/* Field by field: the structs' padding holds whatever the stack held (and differs under
 * AddressSanitizer), so comparing their bytes would test the padding. */
static void assert_policies_equal(const struct nvlar_policy *a, const struct nvlar_policy *b) {
  assert_int_equal(a->nranks, b->nranks);
  assert_int_equal(a->arch, b->arch);
  assert_int_equal(a->forced, b->forced);
  assert_int_equal(a->ctas, b->ctas);
  assert_int_equal(a->max_bytes, b->max_bytes);
  assert_int_equal(a->max_blocks, b->max_blocks);
  assert_int_equal(a->max_ctas, b->max_ctas);
  assert_int_equal(a->min_ctas, b->min_ctas);
  assert_ptr_equal(a->table, b->table);
}

static void assert_choices_equal(struct nvlar_choice a, struct nvlar_choice b) {
  assert_int_equal(a.nvlar, b.nvlar);
  assert_int_equal(a.algo, b.algo);
  assert_int_equal(a.nblocks, b.nblocks);
}

/* Every rank computes the limits from the same gathered records: the tightest of all. */
static void test_ranks_agree(void **state) {
  (void)state;
  struct nvlar_rank_info infos[4];
  memset(infos, 0, sizeof(infos));
  const int mins[4] = {1, 2, 1, 1}, maxes[4] = {64, 64, 16, 32};
  for (int r = 0; r < 4; r++) {
    infos[r].min_ctas = mins[r];
    infos[r].max_ctas = maxes[r];
  }
  struct nvlar_policy first = policy_for(0, 0), again = policy_for(0, 0);
  nvlar_policy_limit_ctas(&first, 4, infos);
  nvlar_policy_limit_ctas(&again, 4, infos);
  assert_int_equal(first.max_ctas, 16);
  assert_int_equal(first.min_ctas, 2);
  assert_policies_equal(&first, &again);
  for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
    assert_choices_equal(nvlar_select(&first, sizes[s]), nvlar_select(&again, sizes[s]));
  }
  infos[3].min_ctas = 40; /* a floor above another rank's cap: the cap wins */
  nvlar_policy_limit_ctas(&first, 4, infos);
  assert_int_equal(first.min_ctas, 16);
}

/* Rows for a budget: the communicator's limit picks among them, every rank alike (each
 * matches the limit all ranks agreed, not its own), and where the table hands a budget to
 * NCCL, nvlar runs nothing there. Without a limit the budget is NCCL's default, 64. */
static void test_rows_by_budget(void **state) {
  (void)state;
  struct nvlar_tuning_table table;
  assert_int_equal(nvlar_tuning_parse("nvlar 16M-inf 2 sm90 nccl budget=1-8\n"
                                      "nvlar 16M-inf 2 sm90 cetwoshot budget=9-16\n"
                                      "nvlar 0-1M 2 sm90 push\n"
                                      "nvlar 1M-inf 2 sm90 pushtwoshot\n",
                                      "t", &table, NULL, NULL),
                   4);
  struct nvlar_policy policy = policy_for(8, 1);
  policy.table = &table;
  assert_false(nvlar_select(&policy, 64u << 20).nvlar);
  assert_false(nvlar_select(&policy, 16u << 20).nvlar);
  struct nvlar_choice choice = nvlar_select(&policy, 8u << 20); /* below the budget rows */
  assert_true(choice.nvlar);
  assert_int_equal(choice.algo, NVLAR_ALGO_PUSH_TWOSHOT);
  assert_int_equal(choice.nblocks, 8);
  policy = policy_for(16, 1);
  policy.table = &table;
  choice = nvlar_select(&policy, 64u << 20);
  assert_true(choice.nvlar);
  assert_int_equal(choice.algo, NVLAR_ALGO_CETWOSHOT);
  assert_int_equal(choice.nblocks, 16);
  for (int limit = 17; limit <= 64; limit++) {
    policy = policy_for(limit, 1);
    policy.table = &table;
    assert_int_equal(nvlar_select(&policy, 64u << 20).algo, NVLAR_ALGO_PUSH_TWOSHOT);
  }
  policy = policy_for(0, 0);
  policy.table = &table;
  assert_int_equal(nvlar_policy_budget(&policy), 64);
  assert_int_equal(nvlar_select(&policy, 64u << 20).algo, NVLAR_ALGO_PUSH_TWOSHOT);
  /* Ranks launched with limits 64, 8 and 32 agree on 8: all hand 64 MiB to NCCL. */
  struct nvlar_rank_info infos[3];
  memset(infos, 0, sizeof(infos));
  const int maxes[3] = {64, 8, 32};
  for (int r = 0; r < 3; r++) {
    infos[r].min_ctas = 1;
    infos[r].max_ctas = maxes[r];
  }
  /* Every rank computes its policy from these same records (test_ranks_agree), so one stands
   * for all. */
  struct nvlar_policy agreed = policy_for(0, 0);
  agreed.table = &table;
  nvlar_policy_limit_ctas(&agreed, 3, infos);
  assert_int_equal(nvlar_policy_budget(&agreed), 8);
  assert_false(nvlar_select(&agreed, 64u << 20).nvlar);
}

/* The built-in rows for two sm_90 ranks within a budget: nvlar's push one-shot up to the size
 * where, on the budget's fewest CTAs, it beat NCCL unlimited on two H200s, NCCL above; from a
 * budget of 64 the unlimited rows; other rank counts and architectures keep their rows within
 * any budget (clamped). */
static void test_builtin_rows_by_budget(void **state) {
  (void)state;
  struct nvlar_tuning_table builtin;
  assert_true(nvlar_tuning_parse(nvlar_tuning_builtin, "built-in", &builtin, NULL, NULL) > 0);
  const struct {
    int budget_low, budget_high;
    size_t largest_on_nvlar;
  } budgets[] = {{1, 7, 8u << 10}, {8, 15, 64u << 10}, {16, 31, 128u << 10}, {32, 63, 512u << 10}};
  for (size_t b = 0; b < sizeof(budgets) / sizeof(budgets[0]); b++) {
    for (int limit = budgets[b].budget_low; limit <= budgets[b].budget_high; limit++) {
      struct nvlar_policy policy = policy_for(limit, 1);
      policy.table = &builtin;
      struct nvlar_choice choice = nvlar_select(&policy, budgets[b].largest_on_nvlar);
      assert_true(choice.nvlar);
      assert_int_equal(choice.algo, NVLAR_ALGO_PUSH);
      assert_true(choice.nblocks >= 1 && choice.nblocks <= limit);
      assert_false(nvlar_select(&policy, budgets[b].largest_on_nvlar + 1).nvlar);
      assert_false(nvlar_select(&policy, (size_t)1 << 30).nvlar);
      policy.nranks = 4; /* emulated rows: unchanged within the budget */
      choice = nvlar_select(&policy, 256u << 10);
      assert_true(choice.nvlar);
      assert_int_equal(choice.algo, NVLAR_ALGO_PUSH);
      assert_true(choice.nblocks <= limit);
      policy.nranks = 2;
      policy.arch = 80;
      assert_int_equal(nvlar_select(&policy, 256u << 10).algo, NVLAR_ALGO_PUSH);
    }
  }
  for (int limit = 0; limit <= 64; limit += 64) { /* no limit, and NCCL's default: 64 */
    struct nvlar_policy policy = policy_for(limit, 0);
    policy.table = &builtin;
    assert_int_equal(nvlar_select(&policy, 1u << 20).algo, NVLAR_ALGO_PUSH);
    struct nvlar_choice choice = nvlar_select(&policy, (size_t)1 << 30);
    assert_true(choice.nvlar);
    assert_int_equal(choice.algo, NVLAR_ALGO_PUSH_TWOSHOT);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_are_ncclS),
      cmocka_unit_test(test_config_then_environment),
      cmocka_unit_test(test_caps_and_order),
      cmocka_unit_test(test_old_config_has_no_limits),
      cmocka_unit_test(test_children),
      cmocka_unit_test(test_blocking),
      cmocka_unit_test(test_no_choice_above_the_cap),
      cmocka_unit_test(test_default_cap_is_ncclS_64),
      cmocka_unit_test(test_floor),
      cmocka_unit_test(test_ranks_agree),
      cmocka_unit_test(test_rows_by_budget),
      cmocka_unit_test(test_builtin_rows_by_budget),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
