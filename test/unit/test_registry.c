/* Communicator registry: add, find, replace, state, remove, and concurrent use. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "comm_registry.h"

static ncclComm_t fake_comm(uintptr_t n) { return (ncclComm_t)(0x10000 + n * 0x1000); }

static int reset(void **state) {
  (void)state;
  nvlar_registry_clear();
  return 0;
}

static void test_add_find_remove(void **state) {
  (void)state;
  assert_null(nvlar_registry_find(fake_comm(1)));
  assert_true(nvlar_registry_add(fake_comm(1), NVLAR_ORIGIN_INIT_RANK));
  assert_true(nvlar_registry_add(fake_comm(2), NVLAR_ORIGIN_SPLIT));
  assert_int_equal(nvlar_registry_count(), 2);
  struct nvlar_comm *entry = nvlar_registry_find(fake_comm(2));
  assert_non_null(entry);
  assert_ptr_equal(entry->comm, fake_comm(2));
  assert_int_equal(entry->origin, NVLAR_ORIGIN_SPLIT);
  assert_int_equal(entry->state, NVLAR_COMM_ACTIVE);
  assert_true(nvlar_registry_remove(fake_comm(1), NULL, NULL));
  assert_false(nvlar_registry_remove(fake_comm(1), NULL, NULL));
  assert_null(nvlar_registry_find(fake_comm(1)));
  assert_non_null(nvlar_registry_find(fake_comm(2)));
  assert_int_equal(nvlar_registry_count(), 1);
}

static void test_null_is_never_found(void **state) {
  (void)state;
  assert_null(nvlar_registry_find(NULL));
  assert_false(nvlar_registry_remove(NULL, NULL, NULL));
}

/* NCCL may hand out the address of a destroyed communicator again. */
static void test_readding_replaces(void **state) {
  (void)state;
  assert_true(nvlar_registry_add(fake_comm(7), NVLAR_ORIGIN_INIT_ALL));
  assert_true(nvlar_registry_set_state(fake_comm(7), NVLAR_COMM_FINALIZED));
  assert_true(nvlar_registry_add(fake_comm(7), NVLAR_ORIGIN_SHRINK));
  assert_int_equal(nvlar_registry_count(), 1);
  struct nvlar_comm *entry = nvlar_registry_find(fake_comm(7));
  assert_int_equal(entry->origin, NVLAR_ORIGIN_SHRINK);
  assert_int_equal(entry->state, NVLAR_COMM_ACTIVE);
}

static void test_state(void **state) {
  (void)state;
  assert_false(nvlar_registry_set_state(fake_comm(3), NVLAR_COMM_FINALIZED));
  nvlar_registry_add(fake_comm(3), NVLAR_ORIGIN_INIT_RANK_CONFIG);
  assert_true(nvlar_registry_set_state(fake_comm(3), NVLAR_COMM_FINALIZED));
  assert_int_equal(nvlar_registry_find(fake_comm(3))->state, NVLAR_COMM_FINALIZED);
}

static void test_many_entries_share_buckets(void **state) {
  (void)state;
  for (uintptr_t i = 0; i < 1000; i++) assert_true(nvlar_registry_add(fake_comm(i), NVLAR_ORIGIN_INIT_RANK));
  assert_int_equal(nvlar_registry_count(), 1000);
  for (uintptr_t i = 0; i < 1000; i++) assert_ptr_equal(nvlar_registry_find(fake_comm(i))->comm, fake_comm(i));
  for (uintptr_t i = 0; i < 1000; i += 2) assert_true(nvlar_registry_remove(fake_comm(i), NULL, NULL));
  for (uintptr_t i = 0; i < 1000; i++) {
    if (i % 2) assert_non_null(nvlar_registry_find(fake_comm(i)));
    else assert_null(nvlar_registry_find(fake_comm(i)));
  }
}

/* Each thread adds, finds and removes its own communicators while the others do the same;
 * nothing may be lost or found twice. */
static void *churn(void *arg) {
  uintptr_t base = (uintptr_t)arg * 100000;
  for (uintptr_t round = 0; round < 200; round++) {
    for (uintptr_t i = 0; i < 20; i++) {
      if (!nvlar_registry_add(fake_comm(base + i), NVLAR_ORIGIN_INIT_RANK)) return (void *)1;
    }
    for (uintptr_t i = 0; i < 20; i++) {
      struct nvlar_comm *entry = nvlar_registry_find(fake_comm(base + i));
      if (entry == NULL || entry->comm != fake_comm(base + i)) return (void *)1;
    }
    for (uintptr_t i = 0; i < 20; i++) {
      if (!nvlar_registry_remove(fake_comm(base + i), NULL, NULL)) return (void *)1;
    }
  }
  return NULL;
}

static void test_concurrent_use(void **state) {
  (void)state;
  pthread_t threads[8];
  for (uintptr_t t = 0; t < 8; t++) assert_int_equal(pthread_create(&threads[t], NULL, churn, (void *)(t + 1)), 0);
  for (int t = 0; t < 8; t++) {
    void *failed = NULL;
    pthread_join(threads[t], &failed);
    assert_null(failed);
  }
  assert_int_equal(nvlar_registry_count(), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_add_find_remove, reset),
      cmocka_unit_test_setup(test_null_is_never_found, reset),
      cmocka_unit_test_setup(test_readding_replaces, reset),
      cmocka_unit_test_setup(test_state, reset),
      cmocka_unit_test_setup(test_many_entries_share_buckets, reset),
      cmocka_unit_test_setup(test_concurrent_use, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
