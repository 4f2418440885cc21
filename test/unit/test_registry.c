/* Communicator registry: add, get, replace, take, references, and concurrent use (this test
 * also runs under AddressSanitizer and ThreadSanitizer: test/unit/meson.build). */
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

static bool add(ncclComm_t comm, enum nvlar_comm_origin origin) {
  struct nvlar_cta_limits defaults = {1, NVLAR_NCCL_MAX_CHANNELS};
  return nvlar_registry_add(comm, origin, false, defaults);
}

/* Whether `comm` is listed (the lookup's reference given back at once). */
static bool listed(ncclComm_t comm) {
  struct nvlar_comm *entry = nvlar_registry_get(comm);
  nvlar_comm_put(entry);
  return entry != NULL;
}

static void test_add_get_take(void **state) {
  (void)state;
  assert_false(listed(fake_comm(1)));
  assert_true(add(fake_comm(1), NVLAR_ORIGIN_INIT_RANK));
  struct nvlar_cta_limits limits = {2, 16};
  assert_true(nvlar_registry_add(fake_comm(2), NVLAR_ORIGIN_SPLIT, true, limits));
  assert_int_equal(nvlar_registry_count(), 2);
  struct nvlar_comm *entry = nvlar_registry_get(fake_comm(2));
  assert_non_null(entry);
  assert_ptr_equal(entry->comm, fake_comm(2));
  assert_int_equal(entry->origin, NVLAR_ORIGIN_SPLIT);
  assert_true(entry->nonblocking);
  assert_int_equal(entry->ctas.min_ctas, 2);
  assert_int_equal(entry->ctas.max_ctas, 16);
  assert_int_equal(atomic_load(&entry->state), NVLAR_COMM_SETTING_UP);
  assert_int_equal(atomic_load(&entry->refs), 2); /* the registry's and this lookup's */
  nvlar_comm_put(entry);
  struct nvlar_comm *taken = nvlar_registry_take(fake_comm(1));
  assert_non_null(taken);
  assert_null(nvlar_registry_take(fake_comm(1)));
  nvlar_comm_put(taken);
  assert_false(listed(fake_comm(1)));
  assert_true(listed(fake_comm(2)));
  assert_int_equal(nvlar_registry_count(), 1);
}

static void test_null_is_never_found(void **state) {
  (void)state;
  assert_null(nvlar_registry_get(NULL));
  assert_null(nvlar_registry_take(NULL));
  nvlar_comm_put(NULL);
}

/* NCCL may hand out the address of a destroyed communicator again. */
static void test_readding_replaces(void **state) {
  (void)state;
  assert_true(add(fake_comm(7), NVLAR_ORIGIN_INIT_ALL));
  struct nvlar_comm *old = nvlar_registry_get(fake_comm(7));
  atomic_store(&old->state, NVLAR_COMM_FINALIZED);
  assert_true(add(fake_comm(7), NVLAR_ORIGIN_SHRINK));
  assert_int_equal(nvlar_registry_count(), 1);
  struct nvlar_comm *entry = nvlar_registry_get(fake_comm(7));
  assert_ptr_not_equal(entry, old);
  assert_int_equal(entry->origin, NVLAR_ORIGIN_SHRINK);
  assert_int_equal(atomic_load(&entry->state), NVLAR_COMM_SETTING_UP);
  /* The replaced entry lives on for the holder of a reference. */
  assert_int_equal(atomic_load(&old->refs), 1);
  assert_int_equal(old->origin, NVLAR_ORIGIN_INIT_ALL);
  nvlar_comm_put(old);
  nvlar_comm_put(entry);
}

/* A reference keeps a taken entry alive: a watchdog's abort unlists it while another thread
 * still reads it. */
static void test_reference_outlives_take(void **state) {
  (void)state;
  assert_true(add(fake_comm(3), NVLAR_ORIGIN_INIT_RANK_CONFIG));
  struct nvlar_comm *reader = nvlar_registry_get(fake_comm(3));
  struct nvlar_comm *taken = nvlar_registry_take(fake_comm(3));
  assert_ptr_equal(reader, taken);
  nvlar_comm_put(taken);
  assert_int_equal(atomic_load(&reader->refs), 1);
  assert_ptr_equal(reader->comm, fake_comm(3));
  nvlar_comm_put(reader);
}

static void test_many_entries_share_buckets(void **state) {
  (void)state;
  for (uintptr_t i = 0; i < 1000; i++) assert_true(add(fake_comm(i), NVLAR_ORIGIN_INIT_RANK));
  assert_int_equal(nvlar_registry_count(), 1000);
  for (uintptr_t i = 0; i < 1000; i++) {
    struct nvlar_comm *entry = nvlar_registry_get(fake_comm(i));
    assert_ptr_equal(entry->comm, fake_comm(i));
    nvlar_comm_put(entry);
  }
  for (uintptr_t i = 0; i < 1000; i += 2) nvlar_comm_put(nvlar_registry_take(fake_comm(i)));
  for (uintptr_t i = 0; i < 1000; i++) assert_int_equal(listed(fake_comm(i)), i % 2 == 1);
}

/* Each thread adds, gets and takes its own communicators while the others do the same;
 * nothing may be lost or found twice. */
static void *churn(void *arg) {
  uintptr_t base = (uintptr_t)arg * 100000;
  for (uintptr_t round = 0; round < 200; round++) {
    for (uintptr_t i = 0; i < 20; i++) {
      if (!add(fake_comm(base + i), NVLAR_ORIGIN_INIT_RANK)) return (void *)1;
    }
    for (uintptr_t i = 0; i < 20; i++) {
      struct nvlar_comm *entry = nvlar_registry_get(fake_comm(base + i));
      bool right = entry != NULL && entry->comm == fake_comm(base + i);
      nvlar_comm_put(entry);
      if (!right) return (void *)1;
    }
    for (uintptr_t i = 0; i < 20; i++) {
      struct nvlar_comm *entry = nvlar_registry_take(fake_comm(base + i));
      if (entry == NULL) return (void *)1;
      nvlar_comm_put(entry);
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

/* Readers of one communicator (a call and the watchdog's ncclCommGetAsyncError) while another
 * thread takes it away and adds it again, over and over: every reader sees a whole entry
 * (AddressSanitizer and ThreadSanitizer check the memory). */
static atomic_bool stop_readers;

static void *read_shared(void *unused) {
  (void)unused;
  while (!atomic_load(&stop_readers)) {
    struct nvlar_comm *entry = nvlar_registry_get(fake_comm(42));
    if (entry != NULL && (entry->comm != fake_comm(42) || atomic_load(&entry->refs) < 1)) {
      nvlar_comm_put(entry);
      return (void *)1;
    }
    nvlar_comm_put(entry);
  }
  return NULL;
}

static void test_take_beside_readers(void **state) {
  (void)state;
  atomic_store(&stop_readers, false);
  pthread_t readers[4];
  assert_true(add(fake_comm(42), NVLAR_ORIGIN_INIT_RANK));
  for (int t = 0; t < 4; t++) assert_int_equal(pthread_create(&readers[t], NULL, read_shared, NULL), 0);
  for (int round = 0; round < 20000; round++) {
    nvlar_comm_put(nvlar_registry_take(fake_comm(42)));
    assert_true(add(fake_comm(42), NVLAR_ORIGIN_INIT_RANK));
  }
  atomic_store(&stop_readers, true);
  for (int t = 0; t < 4; t++) {
    void *failed = NULL;
    pthread_join(readers[t], &failed);
    assert_null(failed);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(test_add_get_take, reset),
      cmocka_unit_test_setup(test_null_is_never_found, reset),
      cmocka_unit_test_setup(test_readding_replaces, reset),
      cmocka_unit_test_setup(test_reference_outlives_take, reset),
      cmocka_unit_test_setup(test_many_entries_share_buckets, reset),
      cmocka_unit_test_setup(test_concurrent_use, reset),
      cmocka_unit_test_setup(test_take_beside_readers, reset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
