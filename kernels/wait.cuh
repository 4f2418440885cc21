// Ordering primitives and the one bounded, abortable wait that every nvlar kernel uses: for
// barrier flags, for push packets, and for the TMA pipeline's mbarriers.
//
// A wait gives up, and records why in the rank's host-visible error record, when it has lasted
// NVLAR_TIMEOUT_MS, when the host raised the abort word, or when another thread of its CTA
// gave up. The abort word lives in mapped pinned host memory: a read of it crosses PCIe and
// costs about a microsecond, and reads from many threads queue behind each other. On two H200s
// (2026-11-29, experiments/push_stall.cu) every waiting thread of the push one-shot
// reading it every 50 us (32 CTAs x 256 threads) held each call for 250-550 us; the other GPU
// then waited past 50 us itself and read it too, so the stall fed itself from call to call
// (push at 32 KiB-256 KiB: 126-276 us per call in a graph, 5-7 us without the reads). So at
// most one thread of a CTA reads the word per kAbortCheckNs, elected through the CTA's shared
// timestamp, and only once a wait has lasted that long.
#pragma once

#include <stdint.h>

#include "nvlar_kernels.h"

namespace nvlar {

// Release at system scope: every write this thread made, and every write other threads of its
// CTA made before the preceding __syncthreads() (bar.sync orders them before this store, and
// release is cumulative), is visible to a thread on any GPU that acquires the flag.
__device__ __forceinline__ void store_release_sys(uint64_t *flag, uint64_t value) {
  asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(flag), "l"(value) : "memory");
}

// Acquire at system scope: reads after it (in this thread, and in the CTA after the following
// __syncthreads()) see everything the releasing CTA wrote before its flag.
__device__ __forceinline__ uint64_t load_acquire_sys(const uint64_t *flag) {
  uint64_t value;
  asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(value) : "l"(flag) : "memory");
  return value;
}

__device__ __forceinline__ uint64_t global_time_ns() {
  uint64_t now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  return now;
}

// Holds the calling thread for about `ns` (nvlar_allreduce_args.test_skew_ns: tests only).
__device__ __forceinline__ void test_skew_pause(uint64_t ns) {
  const uint64_t start = global_time_ns();
  while (global_time_ns() - start < ns) __nanosleep(256);
}

// A CTA's shared wait state, cleared by cta_wait_init at kernel start.
struct CtaWait {
  volatile int gave_up;                // a thread of this CTA gave up: every wait returns false
  unsigned long long abort_checked_at; // when a thread of this CTA last read the abort word
};

__device__ __forceinline__ void cta_wait_init(CtaWait *cta) {
  if (threadIdx.x == 0) {
    cta->gave_up = 0;
    cta->abort_checked_at = 0;
  }
}

// How often a CTA may read the host's abort word while its threads wait (see above): an abort
// reaches a waiting kernel within about this long.
constexpr uint64_t kAbortCheckNs = 1000000;

// The first CTA of a rank to fail records where; the rank stays failed for good (later
// launches return at once: its peers' flags can no longer be trusted).
static __device__ __noinline__ void record_failure(const nvlar_allreduce_args &a, uint32_t code,
                                                   int peer, int block, uint64_t seq) {
  if (atomicCAS(&a.state->failed, 0u, 1u) != 0u) return;  // someone recorded it first
  nvlar_error_record *error = a.error;
  if (error == nullptr) return;
  error->rank = a.rank;
  error->peer = peer;
  error->block = block;
  error->seq = seq;
  __threadfence_system();  // the fields must reach the host before the code that announces them
  error->code = code;
  __threadfence_system();
}

// True when the host raised the abort word; read by one thread of the CTA per kAbortCheckNs.
__device__ __forceinline__ bool abort_raised(const nvlar_allreduce_args &a, CtaWait *cta,
                                             uint64_t now) {
  if (a.abort == nullptr) return false;
  unsigned long long last = *reinterpret_cast<volatile unsigned long long *>(&cta->abort_checked_at);
  if (now - last < kAbortCheckNs) return false;
  if (atomicCAS(&cta->abort_checked_at, last, (unsigned long long)now) != last) return false;
  return *a.abort != 0;
}

// Waits until `ready()` is true; false once the wait failed (recorded, with the peer, CTA and
// sequence number it waited for) or another thread of the CTA gave up. `ready` is polled
// without pause: waits are short when the peers are there, and nothing is gained by backing
// off (measured: a 64 ns sleep per poll changed nothing).
template <typename Ready>
__device__ __forceinline__ bool wait_until(const nvlar_allreduce_args &a, CtaWait *cta,
                                           Ready ready, int peer, int block, uint64_t seq) {
  if (ready()) return true;
  const uint64_t start = global_time_ns();
  for (;;) {
    if (ready()) return true;
    if (cta->gave_up) return false;
    const uint64_t now = global_time_ns();
    uint32_t code = NVLAR_KERNEL_OK;
    if (now - start > a.timeout_ns) {
      code = NVLAR_KERNEL_TIMEOUT;
    } else if (now - start > kAbortCheckNs && abort_raised(a, cta, now)) {
      code = NVLAR_KERNEL_ABORTED;
    }
    if (code != NVLAR_KERNEL_OK) {
      record_failure(a, code, peer, block, seq);
      cta->gave_up = 1;
      return false;
    }
  }
}

}  // namespace nvlar
