/* nvlar's device code behind a C API: every entry point is extern "C", takes plain C types and
 * returns the launch's cudaError_t. Host code in plugin/, the tests and the benchmark include
 * only this header. */
#ifndef NVLAR_KERNELS_H
#define NVLAR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "nvlar_algos.h" /* enum nvlar_algo, nvlar_algo_name() */

#ifdef __cplusplus
extern "C" {
#endif

#define NVLAR_MAX_RANKS 8
#define NVLAR_MAX_BLOCKS 128 /* CTAs per rank and launch */
#define NVLAR_THREADS 256    /* threads per CTA */

/* Pipeline stages of 32 KiB of a TMA two-shot CTA (a build-time constant, for experiments),
 * and the CTA's dynamic shared memory (one CTA per multiprocessor). */
#ifndef NVLAR_TMA_STAGES
#define NVLAR_TMA_STAGES 7
#endif
#define NVLAR_TMA_SHARED_BYTES ((size_t)128 + NVLAR_TMA_STAGES * ((size_t)32 << 10))

/* Push one-shot: a message moves in chunks of this many bytes per rank. Each 8 bytes travel
 * in a 16-byte packet {4 data bytes, flag, 4 data bytes, flag}; NVLAR_PUSH_BUFFERS receive
 * buffers per rank rotate from chunk to chunk, each with one slot per source rank. 1 MiB: every
 * message routing gives the push one-shot is one exchange (on two H200s 1 MiB took 9.4 us a
 * call in one chunk, 29.5 in four of 256 KiB); the receive area is then 32 MiB per rank. */
#define NVLAR_PUSH_CHUNK_BYTES ((size_t)1 << 20)
#define NVLAR_PUSH_BUFFERS 2
#define NVLAR_PUSH_AREA_BYTES \
  ((size_t)NVLAR_PUSH_BUFFERS * NVLAR_MAX_RANKS * (NVLAR_PUSH_CHUNK_BYTES / 8) * 16)

/* Push two-shot: steps a CTA scatters ahead of the one it reduces (a build-time constant, for
 * experiments), and so the slots of its staging region (kernels/push_twoshot.cuh says why
 * ahead + 2). With 0 a CTA waits for its peers' "scattered" flag of a step right after
 * scattering it; ahead, that flag was raised a step earlier, at the price of smaller slices. */
#ifndef NVLAR_PUSH_TWOSHOT_AHEAD
#define NVLAR_PUSH_TWOSHOT_AHEAD 0
#endif
#define NVLAR_PUSH_TWOSHOT_SLOTS (NVLAR_PUSH_TWOSHOT_AHEAD + 2)
/* Its largest slice per rank and step (a build-time constant, for experiments). */
#ifndef NVLAR_PUSH_TWOSHOT_SLICE_CAP_KIB
#define NVLAR_PUSH_TWOSHOT_SLICE_CAP_KIB 64
#endif
#define NVLAR_PUSH_TWOSHOT_SLICE_CAP_BYTES ((size_t)NVLAR_PUSH_TWOSHOT_SLICE_CAP_KIB << 10)

/* TMA push two-shot (kernels/tma_push.cuh): the push two-shot's schedule and flags, its bytes
 * moved by bulk copies. Steps scattered ahead (a build-time constant, for experiments), its
 * slots, and its largest slice: a bulk copy keeps a whole pipeline of bytes in flight, so a
 * CTA's slices are larger than the thread copies' and its round trips fewer per byte. */
#ifndef NVLAR_TMA_PUSH_AHEAD
#define NVLAR_TMA_PUSH_AHEAD 1
#endif
#define NVLAR_TMA_PUSH_SLOTS (NVLAR_TMA_PUSH_AHEAD + 2)
#ifndef NVLAR_TMA_PUSH_SLICE_CAP_KIB
#define NVLAR_TMA_PUSH_SLICE_CAP_KIB 256
#endif
#define NVLAR_TMA_PUSH_SLICE_CAP_BYTES ((size_t)NVLAR_TMA_PUSH_SLICE_CAP_KIB << 10)

/* Signal area of one rank: one 64-bit flag per (source rank, CTA). Flag [src][b] is written
 * only by CTA b of rank src, with the barrier sequence number it has reached; sequence numbers
 * only grow, so flags are never reset. Zero it once when allocating. */
#define NVLAR_SIGNAL_BYTES ((size_t)NVLAR_MAX_RANKS * NVLAR_MAX_BLOCKS * sizeof(uint64_t))

/* Per-rank progress, in the rank's own device memory; zero it once when allocating. The
 * kernels read it at start and advance it at the end, so graph replays need no host step.
 *
 * Every CTA slot holds the same numbers between launches: CTA b of a launch reads slot b, and
 * at its end writes the new numbers into slot b and every slot b + k * nblocks >= nblocks,
 * which no CTA of that launch reads. So every slot is advanced exactly once per launch with
 * no atomics, and the next launch (with any CTA count) finds all slots equal. */
struct nvlar_rank_progress {
  uint64_t barrier_seq; /* barriers passed so far (the next barrier waits for seq + 1) */
  uint64_t chunk_seq;   /* chunks staged so far; its parity picks the staging half */
  uint64_t push_seq;    /* push chunks sent so far; picks the receive buffer and the flag */
  uint64_t last_algo;   /* 1 + the algo of the last kernel that completed; 0: none yet */
  uint64_t last_ctas;   /* that kernel's CTAs per rank (the push two-shots' layout follows it) */
};
struct nvlar_rank_state {
  uint32_t failed;      /* set once a wait timed out; later launches return at once */
  uint32_t reserved;
  /* CTAs of counted launches (args.counted) that have ended: each adds one as its very last
   * step, after all its accesses to any rank's buffers (release at system scope). The host
   * counts the CTAs it launched; when the two agree, no counted kernel of this rank runs or
   * waits to run, and its buffers may be given up (plugin/route.h). */
  unsigned long long ctas_done;
  struct nvlar_rank_progress slot[NVLAR_MAX_BLOCKS];
};

enum nvlar_error_code {
  NVLAR_KERNEL_OK = 0,
  NVLAR_KERNEL_TIMEOUT = 1, /* a peer did not arrive within timeout_ns */
  NVLAR_KERNEL_ABORTED = 2, /* the host raised *abort while the kernel waited */
};

/* Host-visible (mapped pinned) record of the first failure of a rank. `code` is written last,
 * after a system-wide fence, so a host that sees it non-zero sees the other fields too. */
struct nvlar_error_record {
  volatile uint32_t code;  /* enum nvlar_error_code */
  int32_t rank;            /* the rank that gave up */
  int32_t peer;            /* the rank it waited for */
  int32_t block;           /* the peer's CTA whose flag never came */
  uint64_t seq;            /* the barrier it waited at */
};

/* One rank's all-reduce. Every rank of a call must pass the same algo, datatype, op, count,
 * nblocks and staging_bytes (the routing layer guarantees it), and the ranks' calls must come
 * in the same order. */
struct nvlar_allreduce_args {
  int rank, nranks;      /* 2..NVLAR_MAX_RANKS ranks */
  int algo;              /* enum nvlar_algo */
  int datatype;          /* ncclDataType_t value */
  int op;                /* ncclRedOp_t value: sum, prod, max, min or avg */
  int nblocks;           /* 1..NVLAR_MAX_BLOCKS */
  const void *input;     /* this rank's buffers: any alignment, may be equal (in place) */
  void *output;
  size_t count;          /* elements; 0 is a no-op */
  void *staging[NVLAR_MAX_RANKS];    /* every rank's staging buffer, mapped here */
  void *push[NVLAR_MAX_RANKS];       /* every rank's push receive area (NVLAR_PUSH_AREA_BYTES,
                                        zeroed once), mapped here */
  uint64_t *signals[NVLAR_MAX_RANKS]; /* every rank's signal area, mapped here */
  size_t staging_bytes;  /* size of each staging buffer; a multiple of 256, at least 64 KiB */
  struct nvlar_rank_state *state;    /* this rank's, device memory */
  struct nvlar_error_record *error;  /* this rank's, host-visible; may be NULL */
  uint64_t timeout_ns;   /* how long any wait may last; must be > 0 */
  /* Host-visible word, may be NULL: once the host sets it non-zero, waiting kernels give up
   * (within about a millisecond) and record NVLAR_KERNEL_ABORTED; ncclCommAbort uses it. */
  const volatile uint32_t *abort;
  /* 1: launch as a programmatic dependent launch (sm_90+): the kernel's CTAs start while the
   * previous kernel on the stream finishes, and wait for it before reading anything it may
   * have written. 0: an ordinary launch. Results are the same. */
  int pdl;
  /* 0: the kernels run at the stream's priority. Otherwise the CUDA priority every kernel of
   * the call is launched at (cudaLaunchAttributePriority; as cudaDeviceGetStreamPriorityRange
   * numbers them, below 0 is greater): the GPU gives SMs that come free to waiting CTAs of a
   * greater priority first, so an all-reduce beside a GEMM need not wait for the GEMM's
   * queued CTAs. It never preempts a running CTA. Results are the same. */
  int priority;
  /* 1: every CTA adds one to state->ctas_done when it ends (eager launches of the routing
   * layer, whose end destroy waits for). 0: graph captures, whose lifetime the graph holds,
   * and the tests' and benchmark's launches. */
  int counted;
  /* Tests only (test_push_stress; 0 in every call libnvlar makes): this rank's CTAs other than
   * CTA 0 pause this many ns, at most 1 ms, between sending their packets of a push one-shot
   * chunk and reading their peers'. It widens the window in which a peer that no longer waits
   * for them could overwrite what they have yet to read, so that a broken hand-off shows. */
  uint32_t test_skew_ns;
};

/* 1 if the kernels implement this datatype/op pair (all 12 NCCL types; sum, prod, max, min,
 * avg), else 0. */
int nvlar_allreduce_supported(int datatype, int op);

/* Checks the arguments; cudaErrorInvalidValue if they are out of the contract above. */
cudaError_t nvlar_allreduce_check(const struct nvlar_allreduce_args *args);

/* Launches one rank's kernel on `stream` (grid: args->nblocks CTAs of NVLAR_THREADS). */
cudaError_t nvlar_allreduce_launch(const struct nvlar_allreduce_args *args, cudaStream_t stream);

/* (Ranks emulated on one GPU, for tests and the benchmark: nvlar_emulation.h, a separate
 * library that libnvlar does not contain.) */

/* Loads every all-reduce kernel onto the current device without
 * launching anything, and gives the TMA kernels their shared memory there: call it once per
 * device before launching NVLAR_ALGO_TMA on it, and before the first launch wherever ranks
 * that wait for each other are launched from one thread or share one GPU: under CUDA's lazy
 * module loading (the default), a kernel's first launch loads it, and loading can wait for
 * the device to go idle, which it never does while a launched rank waits for a peer whose
 * launch comes after the load. */
cudaError_t nvlar_kernels_load(void);

/* How many CTAs of a rank's all-reduce kernel for this algorithm, type and op fit on one
 * multiprocessor at once: a rank needs nblocks <= this times the multiprocessor count. */
cudaError_t nvlar_allreduce_occupancy(int algo, int datatype, int op, int *blocks_per_sm);

/* Peer-mapping probe: writes `pattern` to `target` (memory of this GPU or of a peer mapped
 * into this process), makes the store visible system-wide, reads the word back from `target`
 * and stores what it read in `readback` (this GPU's memory). A mapping that "works" but does
 * not carry data shows up as readback != pattern. Both pointers must be 8-byte aligned. */
cudaError_t nvlar_probe_launch(uint64_t *target, uint64_t pattern, uint64_t *readback,
                               cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
