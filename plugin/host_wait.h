/* The one host-side wait of nvlar: a poll, bounded by a deadline and cancellable, that never
 * blocks inside CUDA or NCCL. Setup waits on it for NCCL's collective steps, destroy for this
 * rank's kernels, the release thread for the peers' departures. */
#ifndef NVLAR_HOST_WAIT_H
#define NVLAR_HOST_WAIT_H

#include <stdatomic.h>
#include <stdint.h>

#include "route.h" /* enum nvlar_poll */

enum nvlar_wait_result {
  NVLAR_WAIT_DONE,      /* the poll said done */
  NVLAR_WAIT_FAILED,    /* the poll said it never will be (an error) */
  NVLAR_WAIT_TIMEOUT,   /* the deadline passed */
  NVLAR_WAIT_CANCELLED, /* *cancel was raised */
};

/* Seconds on a monotonic clock. */
double nvlar_now_seconds(void);

/* The deadline `ms` milliseconds from now. */
double nvlar_deadline_after_ms(int64_t ms);

/* Calls `poll(ctx)` until it returns NVLAR_POLL_DONE or NVLAR_POLL_FAILED, `cancel` (may be
 * NULL) is non-zero, or `deadline` (nvlar_now_seconds() scale) passes. Between polls it sleeps
 * 10 us at first, doubling up to 1 ms: quick answers stay quick, long waits cost no CPU. */
enum nvlar_wait_result nvlar_host_wait(enum nvlar_poll (*poll)(void *ctx), void *ctx,
                                       double deadline, const atomic_int *cancel);

#endif
