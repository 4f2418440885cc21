/* Whether a communicator runs on nvlar (plugin/eligibility.c), and whether one of its calls does
 * (plugin/allreduce.c, selection.c), from one eligible baseline with one input changed at a
 * time, each with the exact verdict and reason the code gives.
 *
 * A communicator's verdict is a function of the records every rank gathered (the same bytes on
 * every rank), so every case is decided on each rank's own copy of them, each starting from a
 * different reason buffer, and all copies must agree, reason included. A setting that must be
 * the same on every rank (NVLAR_ALGO, NVLAR_CTAS, ...) is accepted when all ranks share any
 * value of it, and sends every rank to NCCL, with the same reason, when one rank differs; a
 * fact that may differ between ranks (pid, device, SM count, NCCL's CTA limits, buffer handles)
 * changes nothing. A call's verdict depends on what every rank passes alike (count, datatype,
 * op) and on the agreed policy, never on a rank's own pointers: two ranks with differently
 * aligned, in-place or out-of-place buffers launch the same kernel with the same CTAs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "allreduce.h"
#include "eligibility.h"
#include "route.h"
#include "selection.h"

#define MAXR 9

static struct nvlar_rank_info infos[MAXR];
static struct nvlar_rank_links links[MAXR];
static char why[256];
static char reason[256];

/* The baseline: n ranks, one process each, on one host, sm_90, every pair over NVLink, every
 * probe good, every shared setting at its default. Facts that may differ between ranks do. */
static void healthy(int n) {
  memset(infos, 0, sizeof(infos));
  memset(links, 0, sizeof(links));
  for (int r = 0; r < n && r < MAXR; r++) {
    infos[r].version = NVLAR_RANK_INFO_VERSION;
    infos[r].ready = 1;
    infos[r].host_hash = 0x1234;
    infos[r].pid = 100 + r;
    infos[r].pid_namespace = 4026531836u;
    infos[r].cuda_device = r % 2;
    snprintf(infos[r].bus_id, sizeof(infos[r].bus_id), "0000:%02x:00.0", 0x10 + r);
    infos[r].cc_major = 9;
    infos[r].multiprocessors = 132;
    infos[r].wants_nvlar = 1;
    infos[r].min_ctas = 1;
    infos[r].max_ctas = 64;
    infos[r].buffers.staging_bytes = 64 << 20;
    infos[r].buffers.shared_bytes = 96 << 20;
    memset(&infos[r].buffers.ipc, 0x40 + r, sizeof(infos[r].buffers.ipc));
    infos[r].local_pointer = 0x7f0000000000ull + ((uint64_t)r << 32);
    links[r].mapped = 1;
    for (int p = 0; p < 8; p++) {
      links[r].link[p] = p == r ? NVLAR_LINK_SELF : NVLAR_LINK_NVLINK;
      links[r].probe_ok[p] = 1;
    }
  }
  why[0] = '\0';
}

/* What every rank concludes from its own copy of the gathered records (nvlar_eligible when
 * `final`, else nvlar_eligible_to_map): the verdicts and, for "no", the reasons must be the
 * same on all ranks. Returns the verdict; the reason is in `why`. */
static bool decided_alike(int n, bool final) {
  bool verdict = false;
  char first[256] = "";
  int deciders = n >= 1 && n <= MAXR ? n : 2;
  for (int r = 0; r < deciders; r++) {
    struct nvlar_rank_info own_infos[MAXR];
    struct nvlar_rank_links own_links[MAXR];
    memcpy(own_infos, infos, sizeof(own_infos));
    memcpy(own_links, links, sizeof(own_links));
    char own_why[256];
    memset(own_why, 'a' + r, sizeof(own_why) - 1); /* what the buffer held before: irrelevant */
    own_why[sizeof(own_why) - 1] = '\0';
    bool mine = final ? nvlar_eligible(n, own_infos, own_links, own_why, sizeof(own_why))
                      : nvlar_eligible_to_map(n, own_infos, own_why, sizeof(own_why));
    /* The records are read, never written. */
    assert_memory_equal(own_infos, infos, sizeof(own_infos));
    assert_memory_equal(own_links, links, sizeof(own_links));
    if (r == 0) {
      verdict = mine;
      if (!mine) snprintf(first, sizeof(first), "%s", own_why);
    } else {
      assert_int_equal(mine, verdict);
      if (!mine) assert_string_equal(own_why, first);
    }
  }
  snprintf(why, sizeof(why), "%s", verdict ? "" : first);
  return verdict;
}

/* The records' verdict at both steps, with `expected` as the reason for "no"; `settings`:
 * whether the reason is a setting that differs between ranks (which setup reports as the
 * user's mistake, the rest as facts of the job). */
static void expect_verdict(int n, bool verdict, const char *expected, bool settings) {
  assert_int_equal(decided_alike(n, false), verdict);
  if (!verdict) assert_string_equal(why, expected);
  /* The final decision begins with the same checks: the same verdict and reason. */
  assert_int_equal(decided_alike(n, true), verdict);
  if (!verdict) assert_string_equal(why, expected);
  assert_int_equal(nvlar_ineligible_for_differing_settings(n, infos), settings);
}

/* A verdict on facts of the job (or "yes"). */
static void expect_records(int n, bool verdict, const char *expected) {
  expect_verdict(n, verdict, expected, false);
}

/* "No", because rank `other` has `setting` other than rank 0: the reason names both values. */
static void expect_setting_differs(int n, int other, const char *setting, const char *first_value,
                                   const char *other_value) {
  char expected[256];
  snprintf(expected, sizeof(expected), "ranks 0 and %d differ in %s (%s and %s)", other, setting,
           first_value, other_value);
  expect_verdict(n, false, expected, true);
}

/* The links' verdict: the first step says yes, the final one `verdict` (reason `expected`). */
static void expect_links(int n, bool verdict, const char *expected) {
  assert_true(decided_alike(n, false));
  assert_int_equal(decided_alike(n, true), verdict);
  if (!verdict) assert_string_equal(why, expected);
}

static void test_baseline_every_rank_count(void **state) {
  (void)state;
  for (int n = 2; n <= 8; n++) {
    healthy(n);
    expect_records(n, true, NULL);
    /* Records past the communicator's ranks are not read. */
    healthy(n);
    if (n < MAXR) {
      memset(&infos[n], 0xEE, sizeof(infos[n]));
      memset(&links[n], 0, sizeof(links[n]));
    }
    expect_records(n, true, NULL);
  }
}

static void test_rank_counts(void **state) {
  (void)state;
  const int counts[] = {-1, 0, 1, 9};
  for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
    healthy(MAXR);
    snprintf(reason, sizeof(reason), "%d ranks (nvlar runs 2 to 8)", counts[i]);
    expect_records(counts[i], false, reason);
  }
}

/* The rank other than 0 that a check comparing rank k with rank 0 names. */
static int named(int k) { return k == 0 ? 1 : k; }

/* Rank 0's value and the named rank's, when rank k alone has `changed` and the rest `usual`. */
static const char *value_at_0(int k, const char *usual, const char *changed) {
  return k == 0 ? changed : usual;
}
static const char *value_at_named(int k, const char *usual, const char *changed) {
  return k == 0 ? usual : changed;
}
#define EXPECT_SETTING(k, setting, usual, changed)                                         \
  expect_setting_differs(n, named(k), setting, value_at_0(k, usual, changed),             \
                         value_at_named(k, usual, changed))

/* Every field of one rank's record, changed alone, on each rank in turn. */
static void test_one_field_of_one_rank(void **state) {
  (void)state;
  const int n = 4;
  for (int k = 0; k < n; k++) {
    healthy(n);
    infos[k].version = NVLAR_RANK_INFO_VERSION + 1;
    snprintf(reason, sizeof(reason), "rank %d runs a different nvlar build", k);
    expect_records(n, false, reason);

    healthy(n);
    infos[k].ready = 0;
    snprintf(infos[k].why, sizeof(infos[k].why), "buffers: out of memory");
    snprintf(reason, sizeof(reason), "rank %d: buffers: out of memory", k);
    expect_records(n, false, reason);

    healthy(n);
    infos[k].wants_nvlar = 0;
    snprintf(infos[k].why, sizeof(infos[k].why), "NVLAR_ALGO=nccl");
    snprintf(reason, sizeof(reason), "rank %d has NVLAR_ALGO=nccl", k);
    expect_records(n, false, reason);
    /* A rank with NVLAR_DISABLE=1 joins the first exchange and says so (setup.c). */
    snprintf(infos[k].why, sizeof(infos[k].why), "NVLAR_DISABLE=1");
    snprintf(reason, sizeof(reason), "rank %d has NVLAR_DISABLE=1", k);
    expect_records(n, false, reason);

    healthy(n);
    infos[k].host_hash = 0x9999;
    snprintf(reason, sizeof(reason), "ranks 0 and %d are on different hosts", named(k));
    expect_records(n, false, reason);

    healthy(n);
    infos[k].cc_major = 7;
    infos[k].cc_minor = 5;
    snprintf(reason, sizeof(reason), "rank %d's GPU is sm_75 (nvlar needs sm_80 or newer)", k);
    expect_records(n, false, reason);

    healthy(n);
    infos[k].cc_major = 8;
    snprintf(reason, sizeof(reason), "mixed GPU architectures (rank 0 sm_%d0, rank %d sm_%d0)",
             k == 0 ? 8 : 9, named(k), k == 0 ? 9 : 8);
    expect_records(n, false, reason);

    healthy(n);
    infos[k].cc_minor = 1;
    snprintf(reason, sizeof(reason), "mixed GPU architectures (rank 0 sm_%d, rank %d sm_%d)",
             k == 0 ? 91 : 90, named(k), k == 0 ? 90 : 91);
    expect_records(n, false, reason);

    /* Settings every rank must share: one rank's differs. */
    healthy(n);
    infos[k].forced_algo = NVLAR_FORCE_TWOSHOT;
    EXPECT_SETTING(k, "NVLAR_ALGO", "auto", "twoshot");
    infos[k].forced_algo = NVLAR_FORCE_NCCL; /* a rank with NVLAR_ALGO=nccl wants no nvlar */
    infos[k].wants_nvlar = 0;
    snprintf(infos[k].why, sizeof(infos[k].why), "NVLAR_ALGO=nccl");
    snprintf(reason, sizeof(reason), "rank %d has NVLAR_ALGO=nccl", k);
    expect_records(n, false, reason);
    healthy(n);
    infos[k].forced_ctas = 4;
    EXPECT_SETTING(k, "NVLAR_CTAS", "0", "4");
    healthy(n);
    infos[k].allow_pcie = 1;
    EXPECT_SETTING(k, "NVLAR_ALLOW_PCIE", "0", "1");
    healthy(n);
    infos[k].max_bytes = 1 << 20;
    EXPECT_SETTING(k, "NVLAR_MAX_BYTES", "0", "1048576");
    healthy(n);
    infos[k].buffers.staging_bytes = 32 << 20;
    EXPECT_SETTING(k, "NVLAR_BUFFER_BYTES", "67108864", "33554432");

    healthy(n);
    infos[k].table_hash = 42;
    snprintf(reason, sizeof(reason),
             "ranks 0 and %d use different tuning tables (NVLAR_TUNING_FILE)", named(k));
    expect_verdict(n, false, reason, true);

    healthy(n);
    int twin = (k + 1) % n;
    snprintf(infos[k].bus_id, sizeof(infos[k].bus_id), "%s", infos[twin].bus_id);
    snprintf(reason, sizeof(reason), "ranks %d and %d share one GPU", k < twin ? k : twin,
             k < twin ? twin : k);
    expect_records(n, false, reason);

    /* Facts that may differ between ranks change nothing. */
    healthy(n);
    infos[k].pid = infos[(k + 1) % n].pid; /* two ranks of one process */
    expect_records(n, true, NULL);
    healthy(n);
    infos[k].pid_namespace = 7;
    expect_records(n, true, NULL);
    healthy(n);
    infos[k].cuda_device = 5;
    expect_records(n, true, NULL);
    healthy(n);
    infos[k].multiprocessors = 78;
    expect_records(n, true, NULL);
    healthy(n);
    infos[k].min_ctas = 8; /* the route keeps within the tightest limits (test_budget) */
    infos[k].max_ctas = 16;
    expect_records(n, true, NULL);
    healthy(n);
    infos[k].buffers.shared_bytes = 1 << 30;
    memset(&infos[k].buffers.ipc, 0xFF, sizeof(infos[k].buffers.ipc));
    infos[k].local_pointer = 0;
    expect_records(n, true, NULL);
    healthy(n);
    snprintf(infos[k].why, sizeof(infos[k].why), "a reason of a ready rank is not read");
    expect_records(n, true, NULL);
  }
}

/* A shared setting at a value other than the default is fine when every rank has it. */
static void test_shared_settings_alike(void **state) {
  (void)state;
  const int n = 3;
  healthy(n);
  for (int r = 0; r < n; r++) infos[r].forced_algo = NVLAR_FORCE_TWOSHOT;
  expect_records(n, true, NULL);
  healthy(n);
  for (int r = 0; r < n; r++) infos[r].forced_ctas = 7;
  expect_records(n, true, NULL);
  healthy(n);
  for (int r = 0; r < n; r++) infos[r].allow_pcie = 1;
  expect_records(n, true, NULL);
  healthy(n);
  for (int r = 0; r < n; r++) infos[r].max_bytes = 1 << 20;
  expect_records(n, true, NULL);
  healthy(n);
  for (int r = 0; r < n; r++) infos[r].buffers.staging_bytes = 32 << 20;
  expect_records(n, true, NULL);
  healthy(n);
  for (int r = 0; r < n; r++) infos[r].table_hash = 42;
  expect_records(n, true, NULL);
  healthy(n);
  for (int r = 0; r < n; r++) infos[r].host_hash = 0x77;
  expect_records(n, true, NULL);
  healthy(n);
  for (int r = 0; r < n; r++) infos[r].cc_major = 8; /* sm_80: the oldest nvlar runs on */
  expect_records(n, true, NULL);
  healthy(n);
  for (int r = 0; r < n; r++) infos[r].cc_major = 10;
  expect_records(n, true, NULL);
}

/* The first failing check decides, in the code's order, on every rank alike. */
static void test_first_failing_check_wins(void **state) {
  (void)state;
  healthy(4);
  infos[3].ready = 0;
  snprintf(infos[3].why, sizeof(infos[3].why), "buffers: out of memory");
  expect_records(4, false, "rank 3: buffers: out of memory");
  infos[2].table_hash = 42;
  expect_verdict(4, false, "ranks 0 and 2 use different tuning tables (NVLAR_TUNING_FILE)", true);
  /* Within a rank's settings, the first differing one is named. */
  infos[2].max_bytes = 7;
  expect_setting_differs(4, 2, "NVLAR_MAX_BYTES", "0", "7");
  infos[2].forced_ctas = 3;
  expect_setting_differs(4, 2, "NVLAR_CTAS", "0", "3");
  infos[1].host_hash = 5;
  expect_records(4, false, "ranks 0 and 1 are on different hosts");
  links[1].probe_ok[2] = 0; /* a links problem comes only after every record check */
  expect_records(4, false, "ranks 0 and 1 are on different hosts");
}

/* Every field of one rank's links, changed alone, on each rank in turn. */
static void test_one_link_of_one_rank(void **state) {
  (void)state;
  const int n = 4;
  for (int k = 0; k < n; k++) {
    int p = (k + 1) % n;
    healthy(n);
    links[k].mapped = 0;
    snprintf(links[k].why, sizeof(links[k].why), "mapping rank %d: invalid handle", p);
    snprintf(reason, sizeof(reason), "rank %d: mapping rank %d: invalid handle", k, p);
    expect_links(n, false, reason);

    healthy(n);
    links[k].link[p] = NVLAR_LINK_NONE;
    snprintf(reason, sizeof(reason), "ranks %d and %d are not connected by peer access", k, p);
    expect_links(n, false, reason);
    /* NVLAR_ALLOW_PCIE does not make up for no peer access. */
    for (int r = 0; r < n; r++) infos[r].allow_pcie = 1;
    expect_links(n, false, reason);

    healthy(n);
    links[k].link[p] = NVLAR_LINK_PCIE;
    snprintf(reason, sizeof(reason),
             "ranks %d and %d are not connected by NVLink (NVLAR_ALLOW_PCIE=1 allows PCIe)", k, p);
    expect_links(n, false, reason);
    for (int r = 0; r < n; r++) infos[r].allow_pcie = 1; /* allowed when every rank allows it */
    expect_links(n, true, NULL);
    infos[p].allow_pcie = 0; /* not when one rank does not: the settings differ */
    expect_setting_differs(n, named(p), "NVLAR_ALLOW_PCIE", p == 0 ? "0" : "1", p == 0 ? "1" : "0");

    healthy(n);
    links[k].probe_ok[p] = 0;
    snprintf(reason, sizeof(reason),
             "rank %d's probe of rank %d's buffers read back a wrong value", k, p);
    expect_links(n, false, reason);

    /* A rank's entries for itself, and for ranks past the communicator, are not read. */
    healthy(n);
    links[k].link[k] = NVLAR_LINK_NONE;
    links[k].probe_ok[k] = 0;
    for (int q = n; q < 8; q++) {
      links[k].link[q] = NVLAR_LINK_NONE;
      links[k].probe_ok[q] = 0;
    }
    snprintf(links[k].why, sizeof(links[k].why), "a reason of a mapped rank is not read");
    expect_links(n, true, NULL);
  }
}

/* The tuner plugin's `nccl` rows need the same table and architecture on every rank. */
static void test_agreement_on_tuning(void **state) {
  (void)state;
  const int n = 4;
  int nodes = -1;
  healthy(n);
  assert_true(nvlar_ranks_agree_on_tuning(n, infos, &nodes));
  assert_int_equal(nodes, 1);
  for (int k = 0; k < n; k++) {
    healthy(n);
    infos[k].table_hash = 42;
    assert_false(nvlar_ranks_agree_on_tuning(n, infos, &nodes));
    assert_int_equal(nodes, 1);
    healthy(n);
    infos[k].cc_major = 8;
    assert_false(nvlar_ranks_agree_on_tuning(n, infos, &nodes));
    healthy(n);
    infos[k].cc_minor = 1;
    assert_false(nvlar_ranks_agree_on_tuning(n, infos, &nodes));
    /* Another host is another node, not a disagreement (the tuner spans nodes). */
    healthy(n);
    infos[k].host_hash = 0x9999;
    assert_true(nvlar_ranks_agree_on_tuning(n, infos, &nodes));
    assert_int_equal(nodes, 2);
    /* What only nvlar's own kernels care about does not matter to the tuner. */
    healthy(n);
    infos[k].forced_algo = NVLAR_FORCE_NCCL;
    infos[k].ready = 0;
    infos[k].buffers.staging_bytes = 1;
    assert_true(nvlar_ranks_agree_on_tuning(n, infos, &nodes));
    assert_int_equal(nodes, 1);
  }
  healthy(n);
  infos[1].host_hash = infos[3].host_hash = 0x9999;
  infos[2].host_hash = 0x5555;
  assert_true(nvlar_ranks_agree_on_tuning(n, infos, &nodes));
  assert_int_equal(nodes, 3);
}

static void test_same_process(void **state) {
  (void)state;
  healthy(2);
  assert_false(nvlar_same_process(&infos[0], &infos[1]));
  infos[1].pid = infos[0].pid;
  assert_true(nvlar_same_process(&infos[0], &infos[1]));
  /* Two containers on one host: the same pid in two pid namespaces is two processes. */
  infos[1].pid_namespace = 1;
  assert_false(nvlar_same_process(&infos[0], &infos[1]));
  infos[0].pid_namespace = infos[1].pid_namespace;
  assert_true(nvlar_same_process(&infos[0], &infos[1]));
  infos[1].host_hash = 7;
  assert_false(nvlar_same_process(&infos[0], &infos[1]));
}

/* ---- One call: nvlar_allreduce_on_route on routes whose launch only records its arguments. */

static struct nvlar_allreduce_args launched;
static int launches;

static cudaError_t record_launch(const struct nvlar_allreduce_args *args, cudaStream_t stream) {
  (void)stream;
  launched = *args;
  launches++;
  return cudaSuccess;
}
static bool never_capturing(cudaStream_t stream, cudaGraph_t *graph, unsigned long long *id) {
  (void)stream;
  *graph = NULL;
  *id = 0;
  return false;
}
/* The routes here are freed by the test itself and never reach the release thread. */
static const struct nvlar_route_ops record_ops = {.launch = record_launch,
                                                  .capturing = never_capturing};

static struct nvlar_tuning_table builtin;

/* What setup gives two sm_90 ranks with NCCL's default CTA limits (1 to 64). */
static struct nvlar_policy two_rank_policy(void) {
  assert_int_equal(nvlar_tuning_parse(nvlar_tuning_builtin, "built-in", &builtin, NULL, NULL), 20);
  return (struct nvlar_policy){.nranks = 2, .arch = 90, .forced = NVLAR_FORCE_AUTO,
                               .max_blocks = 132, .max_ctas = 64, .min_ctas = 1,
                               .table = &builtin};
}

static struct nvlar_route *rank_route(int rank, const struct nvlar_policy *policy) {
  struct nvlar_route *route = nvlar_route_new(&record_ops);
  assert_non_null(route);
  route->device = -1; /* no GPU: nothing to switch to */
  route->policy = *policy;
  route->args.rank = rank;
  route->args.nranks = policy->nranks;
  return route;
}

struct verdict {
  bool nvlar;
  int algo, nblocks;
};

/* One call on `route`: whether it went to nvlar, with which kernel and CTAs. A call nvlar takes
 * launches exactly once, with the call's own arguments; a call it leaves launches nothing. */
static struct verdict call_on(struct nvlar_route *route, const void *send, void *recv,
                              size_t count, int datatype, int op) {
  int before = launches;
  ncclResult_t result = ncclInternalError;
  struct verdict v = {false, -1, 0};
  v.nvlar = nvlar_allreduce_on_route(route, send, recv, count, (ncclDataType_t)datatype,
                                     (ncclRedOp_t)op, NULL, &result);
  if (!v.nvlar) {
    assert_int_equal(launches, before);
    assert_int_equal(result, ncclInternalError); /* untouched: NCCL answers */
    return v;
  }
  assert_int_equal(result, ncclSuccess);
  assert_int_equal(launches, before + 1);
  assert_int_equal(launched.rank, route->args.rank);
  assert_ptr_equal(launched.input, send);
  assert_ptr_equal(launched.output, recv);
  assert_int_equal(launched.count, count);
  assert_int_equal(launched.datatype, datatype);
  assert_int_equal(launched.op, op);
  assert_int_equal(launched.counted, 1); /* eager */
  v.algo = launched.algo;
  v.nblocks = launched.nblocks;
  return v;
}

static unsigned char memory[2][2][64]; /* [rank][send, recv]: never dereferenced */

/* The call on both ranks, rank 1 with its own buffers as given; both must decide alike. */
static struct verdict call_on_both(struct nvlar_route *const routes[2], size_t count,
                                   int datatype, int op, const void *send1, void *recv1) {
  struct verdict v0 = call_on(routes[0], memory[0][0], memory[0][1], count, datatype, op);
  struct verdict v1 = call_on(routes[1], send1, recv1, count, datatype, op);
  assert_int_equal(v0.nvlar, v1.nvlar);
  assert_int_equal(v0.algo, v1.algo);
  assert_int_equal(v0.nblocks, v1.nblocks);
  return v0;
}

static void expect_call(struct verdict v, bool nvlar, int algo, int nblocks) {
  assert_int_equal(v.nvlar, nvlar);
  if (!nvlar) return;
  assert_int_equal(v.algo, algo);
  assert_int_equal(v.nblocks, nblocks);
}

static void test_one_input_of_one_call(void **state) {
  (void)state;
  struct nvlar_policy policy = two_rank_policy();
  struct nvlar_route *routes[2] = {rank_route(0, &policy), rank_route(1, &policy)};
  unsigned char *send1 = memory[1][0], *recv1 = memory[1][1];
  /* The baseline: 1024 float32 (4 KiB), sum, out of place: the push one-shot, a CTA per KiB. */
  const size_t count = 1024;
  const int f32 = ncclFloat32, sum = ncclSum;
  expect_call(call_on_both(routes, count, f32, sum, send1, recv1), true, NVLAR_ALGO_PUSH, 4);

  /* Rank-local facts: rank 1 in place, misaligned, or both; rank 0 as in the baseline. */
  expect_call(call_on_both(routes, count, f32, sum, send1, send1), true, NVLAR_ALGO_PUSH, 4);
  expect_call(call_on_both(routes, count, f32, sum, send1 + 1, recv1 + 3), true,
              NVLAR_ALGO_PUSH, 4);
  expect_call(call_on_both(routes, count, f32, sum, send1 + 2, send1 + 2), true,
              NVLAR_ALGO_PUSH, 4);

  /* Every datatype: the bytes (1024 elements of it) set the CTAs. */
  static const int bytes_of[] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1};
  for (int t = 0; t < ncclNumTypes; t++) {
    expect_call(call_on_both(routes, count, t, sum, send1, recv1), true, NVLAR_ALGO_PUSH,
                bytes_of[t]);
  }
  /* A datatype nvlar does not know stays on NCCL (which rejects it). */
  expect_call(call_on_both(routes, count, ncclNumTypes, sum, send1, recv1), false, 0, 0);
  expect_call(call_on_both(routes, count, 255, sum, send1, recv1), false, 0, 0);

  /* Every built-in op; NCCL's own and user-created ops stay on NCCL. */
  for (int op = 0; op < ncclNumOps; op++) {
    expect_call(call_on_both(routes, count, f32, op, send1, recv1), true, NVLAR_ALGO_PUSH, 4);
  }
  expect_call(call_on_both(routes, count, f32, ncclNumOps, send1, recv1), false, 0, 0);
  expect_call(call_on_both(routes, count, f32, ncclNumOps + 1, send1, recv1), false, 0, 0);

  /* Counts: none stays on NCCL; then routing's sizes, CTAs capped by NCCL's 64. */
  expect_call(call_on_both(routes, 0, f32, sum, send1, recv1), false, 0, 0);
  expect_call(call_on_both(routes, 1, f32, sum, send1, recv1), true, NVLAR_ALGO_PUSH, 1);
  expect_call(call_on_both(routes, 16 << 10, f32, sum, send1, recv1), true, NVLAR_ALGO_PUSH, 64);
  /* One push chunk, then the push two-shot a CTA per 32 KiB. */
  expect_call(call_on_both(routes, NVLAR_PUSH_CHUNK_BYTES / 4, f32, sum, send1, recv1), true,
              NVLAR_ALGO_PUSH, 64);
  expect_call(call_on_both(routes, NVLAR_PUSH_CHUNK_BYTES / 4 + 1, f32, sum, send1, recv1), true,
              NVLAR_ALGO_PUSH_TWOSHOT, 33);
  expect_call(call_on_both(routes, (size_t)1 << 28, f32, sum, send1, recv1), true,
              NVLAR_ALGO_PUSH_TWOSHOT, 64);
  /* The same count in a wider type is a larger message. */
  expect_call(call_on_both(routes, NVLAR_PUSH_CHUNK_BYTES / 4, ncclFloat64, sum, send1, recv1),
              true, NVLAR_ALGO_PUSH_TWOSHOT, 64);

  /* A count whose bytes overflow size_t: nvlar answers as NCCL would (ncclInvalidArgument), on
   * both ranks, and launches nothing. */
  for (int r = 0; r < 2; r++) {
    int before = launches;
    ncclResult_t result = ncclSuccess;
    assert_true(nvlar_allreduce_on_route(routes[r], memory[r][0], memory[r][1], SIZE_MAX / 2,
                                         ncclFloat32, ncclSum, NULL, &result));
    assert_int_equal(result, ncclInvalidArgument);
    assert_int_equal(launches, before);
  }

  /* A missing buffer on either side stays on NCCL (which answers ncclInvalidArgument). */
  expect_call(call_on(routes[0], NULL, memory[0][1], count, f32, sum), false, 0, 0);
  expect_call(call_on(routes[0], memory[0][0], NULL, count, f32, sum), false, 0, 0);

  for (int r = 0; r < 2; r++) free(routes[r]);
}

/* The agreed policy's fields, one at a time: each changes the verdict as selection says. */
static void test_one_policy_field(void **state) {
  (void)state;
  const struct nvlar_policy base = two_rank_policy();
  unsigned char *send1 = memory[1][0], *recv1 = memory[1][1];
  const int f32 = ncclFloat32, sum = ncclSum;
  struct nvlar_policy policy = base;
  struct nvlar_route *routes[2];
#define WITH_POLICY(change)                                   \
  do {                                                        \
    policy = base;                                            \
    change;                                                   \
    for (int r = 0; r < 2; r++) routes[r] = rank_route(r, &policy); \
  } while (0)
#define DONE()                                      \
  do {                                              \
    for (int r = 0; r < 2; r++) free(routes[r]);    \
  } while (0)

  WITH_POLICY(policy.forced = NVLAR_FORCE_NCCL); /* NVLAR_ALGO=nccl */
  expect_call(call_on_both(routes, 1024, f32, sum, send1, recv1), false, 0, 0);
  DONE();
  WITH_POLICY(policy.forced = NVLAR_FORCE_TWOSHOT); /* NVLAR_ALGO=twoshot: any size */
  expect_call(call_on_both(routes, 1024, f32, sum, send1, recv1), true, NVLAR_ALGO_TWOSHOT, 1);
  expect_call(call_on_both(routes, (size_t)1 << 28, f32, sum, send1, recv1), true,
              NVLAR_ALGO_TWOSHOT, 32);
  DONE();
  WITH_POLICY(policy.ctas = 5); /* NVLAR_CTAS */
  expect_call(call_on_both(routes, 1024, f32, sum, send1, recv1), true, NVLAR_ALGO_PUSH, 5);
  DONE();
  WITH_POLICY(policy.ctas = 100); /* NVLAR_CTAS above NCCL's cap */
  expect_call(call_on_both(routes, 1024, f32, sum, send1, recv1), true, NVLAR_ALGO_PUSH, 64);
  DONE();
  WITH_POLICY(policy.max_bytes = 4096); /* NVLAR_MAX_BYTES: up to and including */
  expect_call(call_on_both(routes, 1024, f32, sum, send1, recv1), true, NVLAR_ALGO_PUSH, 4);
  expect_call(call_on_both(routes, 1025, f32, sum, send1, recv1), false, 0, 0);
  DONE();
  WITH_POLICY(policy.max_ctas = 8); /* NCCL's maxCTAs */
  expect_call(call_on_both(routes, 16 << 10, f32, sum, send1, recv1), true, NVLAR_ALGO_PUSH, 8);
  DONE();
  WITH_POLICY(policy.min_ctas = 16); /* NCCL's minCTAs */
  expect_call(call_on_both(routes, 1024, f32, sum, send1, recv1), true, NVLAR_ALGO_PUSH, 16);
  DONE();
  WITH_POLICY(policy.max_blocks = 6); /* the smallest SM count of the ranks */
  expect_call(call_on_both(routes, 16 << 10, f32, sum, send1, recv1), true, NVLAR_ALGO_PUSH, 6);
  DONE();
  WITH_POLICY(policy.arch = 80); /* sm_80: the table's emulated rows */
  expect_call(call_on_both(routes, 1024, f32, sum, send1, recv1), true, NVLAR_ALGO_PUSH, 4);
  expect_call(call_on_both(routes, (size_t)1 << 28, f32, sum, send1, recv1), false, 0, 0);
  DONE();

  /* Why these fields must be agreed: ranks whose policies differed would launch different
   * kernels, or one rank nvlar's and the other NCCL's, for the same call: a hang. Eligibility
   * refuses ranks whose settings differ (test_one_field_of_one_rank), and the CTA limits are
   * the tightest of all ranks' on every rank (nvlar_policy_limit_ctas). */
  struct nvlar_policy other = base;
  other.max_bytes = 4096;
  struct nvlar_route *mixed[2] = {rank_route(0, &base), rank_route(1, &other)};
  struct verdict v0 = call_on(mixed[0], memory[0][0], memory[0][1], 2048, f32, sum);
  struct verdict v1 = call_on(mixed[1], send1, recv1, 2048, f32, sum);
  assert_true(v0.nvlar);
  assert_false(v1.nvlar);
  for (int r = 0; r < 2; r++) free(mixed[r]);

  healthy(2);
  infos[0].max_ctas = 32;
  infos[1].min_ctas = 4;
  struct nvlar_policy limited[2] = {base, base};
  for (int r = 0; r < 2; r++) {
    struct nvlar_rank_info own[MAXR];
    memcpy(own, infos, sizeof(own));
    nvlar_policy_limit_ctas(&limited[r], 2, own);
    assert_int_equal(limited[r].max_ctas, 32);
    assert_int_equal(limited[r].min_ctas, 4);
  }
#undef WITH_POLICY
#undef DONE
}

/* ---- Selection from the built-in table and from a table's rows */

static void test_selection(void **state) {
  (void)state;
  assert_int_equal(nvlar_tuning_parse(nvlar_tuning_builtin, "built-in", &builtin, NULL, NULL), 20); /* 14 nvlar rows (5 for budgets), 6 nccl rows */
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

int main(void) {
  /* nvlar checks buffers itself only under NCCL_CHECK_POINTERS=1, with CUDA: not here. */
  unsetenv("NCCL_CHECK_POINTERS");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_baseline_every_rank_count),
      cmocka_unit_test(test_rank_counts),
      cmocka_unit_test(test_one_field_of_one_rank),
      cmocka_unit_test(test_shared_settings_alike),
      cmocka_unit_test(test_first_failing_check_wins),
      cmocka_unit_test(test_one_link_of_one_rank),
      cmocka_unit_test(test_agreement_on_tuning),
      cmocka_unit_test(test_same_process),
      cmocka_unit_test(test_one_input_of_one_call),
      cmocka_unit_test(test_one_policy_field),
      cmocka_unit_test(test_selection),
      cmocka_unit_test(test_selection_from_table),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
