/* Eligibility over synthetic gathered records, and the selection table. Every case is decided
 * from gathered bytes only, so what one rank concludes, all do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "eligibility.h"
#include "selection.h"

#define MAXR 9

static struct nvlar_rank_info infos[MAXR];
static struct nvlar_rank_links links[MAXR];
static char why[256];

/* n ranks of one process each on one host, sm_90, all NVLink, all probes good. */
static void healthy(int n) {
  memset(infos, 0, sizeof(infos));
  memset(links, 0, sizeof(links));
  for (int r = 0; r < n && r < MAXR; r++) {
    infos[r].version = NVLAR_RANK_INFO_VERSION;
    infos[r].ready = 1;
    infos[r].host_hash = 0x1234;
    infos[r].pid = 100 + r;
    infos[r].cuda_device = 0;
    snprintf(infos[r].bus_id, sizeof(infos[r].bus_id), "0000:%02x:00.0", 0x10 + r);
    infos[r].cc_major = 9;
    infos[r].multiprocessors = 132;
    infos[r].wants_nvlar = 1;
    infos[r].buffers.staging_bytes = 64 << 20;
    links[r].mapped = 1;
    for (int p = 0; p < 8; p++) {
      links[r].link[p] = p == r ? NVLAR_LINK_SELF : NVLAR_LINK_NVLINK;
      links[r].probe_ok[p] = 1;
    }
  }
  why[0] = '\0';
}

static void test_eight_ranks_all_nvlink(void **state) {
  (void)state;
  healthy(8);
  assert_true(nvlar_eligible_to_map(8, infos, why, sizeof(why)));
  assert_true(nvlar_eligible(8, infos, links, why, sizeof(why)));
  for (int n = 2; n <= 8; n++) {
    healthy(n);
    assert_true(nvlar_eligible(n, infos, links, why, sizeof(why)));
  }
}

static void test_rank_counts(void **state) {
  (void)state;
  healthy(MAXR);
  assert_false(nvlar_eligible_to_map(9, infos, why, sizeof(why)));
  assert_non_null(strstr(why, "9 ranks"));
  assert_false(nvlar_eligible_to_map(1, infos, why, sizeof(why)));
}

static void test_pcie_pair(void **state) {
  (void)state;
  healthy(8);
  links[2].link[5] = NVLAR_LINK_PCIE;
  links[5].link[2] = NVLAR_LINK_PCIE;
  assert_true(nvlar_eligible_to_map(8, infos, why, sizeof(why)));
  assert_false(nvlar_eligible(8, infos, links, why, sizeof(why)));
  assert_non_null(strstr(why, "NVLAR_ALLOW_PCIE"));
  /* Allowed only when every rank allows it. */
  for (int r = 0; r < 8; r++) infos[r].allow_pcie = 1;
  assert_true(nvlar_eligible(8, infos, links, why, sizeof(why)));
  infos[3].allow_pcie = 0;
  assert_false(nvlar_eligible(8, infos, links, why, sizeof(why)));
}

static void test_no_peer_access(void **state) {
  (void)state;
  healthy(4);
  for (int r = 0; r < 4; r++) infos[r].allow_pcie = 1;
  links[1].link[3] = NVLAR_LINK_NONE;
  assert_false(nvlar_eligible(4, infos, links, why, sizeof(why)));
  assert_non_null(strstr(why, "peer access"));
}

static void test_two_hosts(void **state) {
  (void)state;
  healthy(8);
  for (int r = 4; r < 8; r++) infos[r].host_hash = 0x9999;
  assert_false(nvlar_eligible_to_map(8, infos, why, sizeof(why)));
  assert_non_null(strstr(why, "different hosts"));
}

static void test_mixed_architectures(void **state) {
  (void)state;
  healthy(4);
  infos[2].cc_major = 8;
  assert_false(nvlar_eligible_to_map(4, infos, why, sizeof(why)));
  assert_non_null(strstr(why, "mixed GPU architectures"));
  healthy(2);
  infos[0].cc_major = infos[1].cc_major = 7;
  assert_false(nvlar_eligible_to_map(2, infos, why, sizeof(why)));
  assert_non_null(strstr(why, "sm_80"));
}

/* One rank's probe read back a wrong value: every rank, evaluating the same gathered links,
 * decides "not". */
static void test_failed_probe(void **state) {
  (void)state;
  healthy(8);
  links[6].probe_ok[1] = 0;
  char first[256];
  assert_false(nvlar_eligible(8, infos, links, first, sizeof(first)));
  assert_non_null(strstr(first, "probe"));
  for (int r = 0; r < 8; r++) {
    /* What rank r computes from its own copy of the gathered bytes. */
    struct nvlar_rank_info copy_infos[8];
    struct nvlar_rank_links copy_links[8];
    memcpy(copy_infos, infos, sizeof(copy_infos));
    memcpy(copy_links, links, sizeof(copy_links));
    assert_false(nvlar_eligible(8, copy_infos, copy_links, why, sizeof(why)));
    assert_string_equal(why, first);
  }
}

static void test_local_failures_and_settings(void **state) {
  (void)state;
  healthy(4);
  infos[3].ready = 0;
  snprintf(infos[3].why, sizeof(infos[3].why), "buffers: out of memory");
  assert_false(nvlar_eligible_to_map(4, infos, why, sizeof(why)));
  assert_non_null(strstr(why, "out of memory"));
  healthy(4);
  infos[1].wants_nvlar = 0;
  snprintf(infos[1].why, sizeof(infos[1].why), "NVLAR_ALGO=nccl");
  assert_false(nvlar_eligible_to_map(4, infos, why, sizeof(why)));
  assert_non_null(strstr(why, "rank 1 has NVLAR_ALGO=nccl"));
  /* A rank with NVLAR_DISABLE=1 joins the first exchange and says so (setup.c). */
  healthy(4);
  infos[2].wants_nvlar = 0;
  snprintf(infos[2].why, sizeof(infos[2].why), "NVLAR_DISABLE=1");
  assert_false(nvlar_eligible_to_map(4, infos, why, sizeof(why)));
  assert_non_null(strstr(why, "rank 2 has NVLAR_DISABLE=1"));
  healthy(4);
  infos[2].forced_algo = NVLAR_FORCE_TWOSHOT;
  assert_false(nvlar_eligible_to_map(4, infos, why, sizeof(why)));
  healthy(4);
  infos[1].forced_ctas = 4;
  assert_false(nvlar_eligible_to_map(4, infos, why, sizeof(why)));
  assert_non_null(strstr(why, "NVLAR_CTAS"));
  healthy(4);
  infos[2].buffers.staging_bytes = 32 << 20;
  assert_false(nvlar_eligible_to_map(4, infos, why, sizeof(why)));
  healthy(4);
  infos[0].version = 99;
  assert_false(nvlar_eligible_to_map(4, infos, why, sizeof(why)));
  healthy(4);
  links[2].mapped = 0;
  snprintf(links[2].why, sizeof(links[2].why), "mapping rank 0: invalid handle");
  assert_false(nvlar_eligible(4, infos, links, why, sizeof(why)));
  assert_non_null(strstr(why, "invalid handle"));
}

static void test_shared_gpu(void **state) {
  (void)state;
  healthy(3);
  strcpy(infos[2].bus_id, infos[0].bus_id);
  assert_false(nvlar_eligible_to_map(3, infos, why, sizeof(why)));
  assert_non_null(strstr(why, "share one GPU"));
}

static void test_same_process(void **state) {
  (void)state;
  healthy(2);
  assert_false(nvlar_same_process(&infos[0], &infos[1]));
  infos[1].pid = infos[0].pid;
  assert_true(nvlar_same_process(&infos[0], &infos[1]));
  /* Two containers on one host: the same pid in two pid namespaces is two processes. */
  infos[1].pid_namespace = 4026531836u;
  assert_false(nvlar_same_process(&infos[0], &infos[1]));
  infos[0].pid_namespace = infos[1].pid_namespace;
  assert_true(nvlar_same_process(&infos[0], &infos[1]));
  infos[1].host_hash = 7;
  assert_false(nvlar_same_process(&infos[0], &infos[1]));
}

static struct nvlar_tuning_table builtin;

static void test_selection(void **state) {
  (void)state;
  assert_int_equal(nvlar_tuning_parse(nvlar_tuning_builtin, "built-in", &builtin, NULL, NULL), 15); /* 9 nvlar rows, 6 nccl rows */
  struct nvlar_policy policy = {.nranks = 8, .arch = 90, .forced = NVLAR_FORCE_AUTO,
                                .max_bytes = 0, .max_blocks = 132, .table = &builtin};
  struct nvlar_choice c = nvlar_select(&policy, 8);
  assert_true(c.nvlar);
  assert_int_equal(c.algo, NVLAR_ALGO_PUSH);
  assert_int_equal(c.nblocks, 1);
  c = nvlar_select(&policy, 32 << 10);
  assert_int_equal(c.algo, NVLAR_ALGO_PUSH);
  assert_int_equal(c.nblocks, 32);
  c = nvlar_select(&policy, 64 << 10);
  assert_int_equal(c.algo, NVLAR_ALGO_PUSH);
  assert_int_equal(c.nblocks, 64);
  c = nvlar_select(&policy, (64 << 10) + 1);
  assert_int_equal(c.algo, NVLAR_ALGO_ONESHOT);
  c = nvlar_select(&policy, 256 << 10);
  assert_int_equal(c.algo, 0);
  assert_int_equal(c.nblocks, 8);
  c = nvlar_select(&policy, (256 << 10) + 1);
  assert_int_equal(c.algo, 1);
  c = nvlar_select(&policy, 16 << 20);
  assert_true(c.nvlar);
  assert_int_equal(c.algo, 1);
  assert_int_equal(c.nblocks, 32);
  assert_false(nvlar_select(&policy, (16 << 20) + 1).nvlar);
  assert_false(nvlar_select(&policy, 0).nvlar);
  policy.nranks = 5;
  assert_int_equal(nvlar_select(&policy, 128 << 10).algo, NVLAR_ALGO_PUSH);
  assert_int_equal(nvlar_select(&policy, (128 << 10) + 1).algo, NVLAR_ALGO_ONESHOT);
  /* 2 ranks on sm_90 (measured rows): push one-shot, then the push two-shot at every size. */
  policy.nranks = 2;
  c = nvlar_select(&policy, 64 << 10);
  assert_int_equal(c.algo, NVLAR_ALGO_PUSH);
  assert_int_equal(c.nblocks, 64);
  c = nvlar_select(&policy, 256 << 10);
  assert_int_equal(c.algo, NVLAR_ALGO_PUSH);
  assert_int_equal(c.nblocks, 128);
  c = nvlar_select(&policy, 1 << 20); /* one push chunk */
  assert_int_equal(c.algo, NVLAR_ALGO_PUSH);
  assert_int_equal(c.nblocks, 128);
  c = nvlar_select(&policy, (1 << 20) + 1);
  assert_int_equal(c.algo, NVLAR_ALGO_PUSH_TWOSHOT);
  assert_int_equal(c.nblocks, 33);
  c = nvlar_select(&policy, (size_t)1 << 30);
  assert_true(c.nvlar);
  assert_int_equal(c.algo, NVLAR_ALGO_PUSH_TWOSHOT);
  assert_int_equal(c.nblocks, 128);
  policy.arch = 80; /* elsewhere the emulated rows */
  assert_int_equal(nvlar_select(&policy, 256 << 10).algo, NVLAR_ALGO_PUSH);
  assert_int_equal(nvlar_select(&policy, (256 << 10) + 1).algo, NVLAR_ALGO_ONESHOT);
  assert_false(nvlar_select(&policy, (size_t)1 << 30).nvlar);
  policy.arch = 90;
  policy.nranks = 4;
  assert_int_equal(nvlar_select(&policy, 256 << 10).algo, NVLAR_ALGO_PUSH);
  assert_int_equal(nvlar_select(&policy, (256 << 10) + 1).algo, NVLAR_ALGO_ONESHOT);
  assert_int_equal(nvlar_select(&policy, 512 << 10).algo, 0);
  /* Forced kernels ignore the table, not NVLAR_MAX_BYTES. */
  policy.forced = NVLAR_FORCE_TWOSHOT;
  assert_int_equal(nvlar_select(&policy, 8).algo, 1);
  assert_true(nvlar_select(&policy, (size_t)1 << 30).nvlar);
  policy.max_bytes = 1 << 20;
  assert_false(nvlar_select(&policy, (1 << 20) + 1).nvlar);
  assert_true(nvlar_select(&policy, 1 << 20).nvlar);
  policy.forced = NVLAR_FORCE_NCCL;
  assert_false(nvlar_select(&policy, 8).nvlar);
  /* The TMA two-shot where the GPUs have bulk copies (sm_90+), the plain two-shot elsewhere. */
  policy.forced = NVLAR_FORCE_TMA;
  assert_int_equal(nvlar_select(&policy, 1 << 20).algo, NVLAR_ALGO_TMA);
  policy.arch = 80;
  assert_int_equal(nvlar_select(&policy, 1 << 20).algo, NVLAR_ALGO_TWOSHOT);
  policy.arch = 90;
  policy.forced = NVLAR_FORCE_PUSH;
  assert_int_equal(nvlar_select(&policy, 256 << 10).algo, NVLAR_ALGO_PUSH);
  assert_int_equal(nvlar_select(&policy, 1024).nblocks, 1);
  assert_int_equal(nvlar_select(&policy, 2048).nblocks, 2);
  assert_int_equal(nvlar_select(&policy, 8192).nblocks, 8);
  assert_int_equal(nvlar_select(&policy, 1 << 20).algo, NVLAR_ALGO_PUSH);
  /* Above one push chunk (where the push one-shot is several times slower), the pull one. */
  assert_int_equal(nvlar_select(&policy, (1 << 20) + 1).algo, NVLAR_ALGO_ONESHOT);
  /* CTA counts never exceed what every rank's GPU holds. */
  policy = (struct nvlar_policy){.nranks = 8, .arch = 90, .forced = NVLAR_FORCE_TWOSHOT,
                                 .max_blocks = 6, .table = &builtin};
  assert_int_equal(nvlar_select(&policy, 64 << 20).nblocks, 6);
}

/* A table's rows drive the choice: kernel, CTA count, architecture. */
static void test_selection_from_table(void **state) {
  (void)state;
  struct nvlar_tuning_table table;
  assert_int_equal(nvlar_tuning_parse("nvlar 0-1M 2 sm90 twoshot ctas=7\n"
                                      "nvlar 0-64K * sm80 oneshot\n"
                                      "nvlar 0-inf * * nccl\n",
                                      "test", &table, NULL, NULL), 3);
  struct nvlar_policy policy = {.nranks = 2, .arch = 90, .max_blocks = 132, .table = &table};
  struct nvlar_choice c = nvlar_select(&policy, 4096);
  assert_true(c.nvlar);
  assert_int_equal(c.algo, 1);
  assert_int_equal(c.nblocks, 7);
  policy.nranks = 3;
  assert_false(nvlar_select(&policy, 4096).nvlar);
  policy.arch = 80;
  c = nvlar_select(&policy, 4096);
  assert_true(c.nvlar);
  assert_int_equal(c.algo, 0);
  policy.max_blocks = 4;
  policy.nranks = 2;
  policy.arch = 90;
  assert_int_equal(nvlar_select(&policy, 4096).nblocks, 4);
  /* tma and push rows; a tma row on a GPU without bulk copies runs the plain two-shot. */
  assert_int_equal(nvlar_tuning_parse("nvlar 0-8K * * push\n"
                                      "nvlar 8K-inf * * tma ctas=3\n",
                                      "test", &table, NULL, NULL), 2);
  policy = (struct nvlar_policy){.nranks = 8, .arch = 90, .max_blocks = 132, .table = &table};
  assert_int_equal(nvlar_select(&policy, 4096).algo, NVLAR_ALGO_PUSH);
  c = nvlar_select(&policy, 1 << 20);
  assert_int_equal(c.algo, NVLAR_ALGO_TMA);
  assert_int_equal(c.nblocks, 3);
  policy.arch = 80;
  assert_int_equal(nvlar_select(&policy, 1 << 20).algo, NVLAR_ALGO_TWOSHOT);
}

static void test_different_tables(void **state) {
  (void)state;
  healthy(2);
  infos[1].table_hash = 42;
  assert_false(nvlar_eligible_to_map(2, infos, why, sizeof(why)));
  assert_non_null(strstr(why, "tuning tables"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_eight_ranks_all_nvlink),
      cmocka_unit_test(test_rank_counts),
      cmocka_unit_test(test_pcie_pair),
      cmocka_unit_test(test_no_peer_access),
      cmocka_unit_test(test_two_hosts),
      cmocka_unit_test(test_mixed_architectures),
      cmocka_unit_test(test_failed_probe),
      cmocka_unit_test(test_local_failures_and_settings),
      cmocka_unit_test(test_shared_gpu),
      cmocka_unit_test(test_same_process),
      cmocka_unit_test(test_selection),
      cmocka_unit_test(test_selection_from_table),
      cmocka_unit_test(test_different_tables),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
