#include "host_wait.h"

#include <time.h>

double nvlar_now_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

double nvlar_deadline_after_ms(int64_t ms) { return nvlar_now_seconds() + (double)ms * 1e-3; }

static void sleep_us(long us) {
  struct timespec t = {us / 1000000, (us % 1000000) * 1000};
  nanosleep(&t, NULL);
}

enum nvlar_wait_result nvlar_host_wait(enum nvlar_poll (*poll)(void *ctx), void *ctx,
                                       double deadline, const atomic_int *cancel) {
  long pause_us = 10;
  for (;;) {
    if (cancel != NULL && atomic_load(cancel)) return NVLAR_WAIT_CANCELLED;
    enum nvlar_poll state = poll(ctx);
    if (state == NVLAR_POLL_DONE) return NVLAR_WAIT_DONE;
    if (state == NVLAR_POLL_FAILED) return NVLAR_WAIT_FAILED;
    if (nvlar_now_seconds() > deadline) return NVLAR_WAIT_TIMEOUT;
    sleep_us(pause_us);
    if (pause_us < 1000) pause_us *= 2;
  }
}
