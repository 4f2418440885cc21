// Every all-reduce kernel, as templates over element type and operator, and their launch.
//
// Each rank's kernel is written as a __device__ function of (args, block, nblocks), so that
// the same body runs as one rank's grid (production) or as one slice of a single launch that
// runs every emulated rank on one GPU (tests, benchmark). One algorithm per header, over
// shared pieces, each in one header:
//   wait.cuh       ordering (release/acquire at system scope) and the one bounded, abortable wait
//   barrier.cuh    the pull kernels' barrier
//   packets.cuh    the push one-shot's flag-carrying packets
//   staged.cuh     16-byte vector access, copies, the reduction over staged data
//   chunking.cuh   CTA ranges, slices, chunks through the staging halves
//   reduce_ops.cuh types and operators
//   tma_pipe.cuh   the bulk-copy pipeline of the TMA kernels (sm_90+)
// oneshot.cuh, twoshot.cuh, push_oneshot.cuh, tma_twoshot.cuh, push_twoshot.cuh, tma_push.cuh
// and ce_twoshot.cuh each hold one algorithm; this file dispatches between them and launches. The
// copy-engine two-shot is the one algorithm whose call is several launches (copies and
// kernels): ce_twoshot.cuh issues them, through this file's launch of each kernel.
#pragma once

#include "nvlar_kernels.h"
#include "reduce_ops.cuh"
#include "wait.cuh"
#include "barrier.cuh"
#include "staged.cuh"
#include "chunking.cuh"
#include "oneshot.cuh"
#include "twoshot.cuh"
#include "packets.cuh"
#include "push_oneshot.cuh"
#include "tma_twoshot.cuh"
#include "push_twoshot.cuh"
#include "tma_push.cuh"
#include "ce_twoshot.cuh"

namespace nvlar {

// Which kernel a launch runs. The push one-shot has two kernels of its own, one for calls of
// one chunk and one for calls of several, each holding one algorithm's code only (why, with
// the measurements: docs/tuning.md, "Kernels and their CTAs").
enum KernelKind {
  kPlainKernel = 0,       // one-shot, two-shot
  kTmaKernel = 1,         // TMA two-shot (dynamic shared memory)
  kPushChunksKernel = 2,  // push one-shot of several chunks
  kPushTwoshotKernel = 3, // push two-shot
  kPushKernel = 4,        // push one-shot of one chunk
  kCeReduceKernel = 5,    // copy-engine two-shot: a chunk's reduce (R(j) in ce_twoshot.cuh)
  kCeMeetKernel = 6,      // copy-engine two-shot: one CTA that meets the peers (M0, M(j))
  kCeDoneKernel = 7,      // copy-engine two-shot: a call's last kernel, counts its CTAs if eager
  kTmaPushKernel = 8,     // TMA push two-shot (dynamic shared memory)
  kKernelKinds = 9
};

// The kernels that run the bulk-copy pipeline, and so get its dynamic shared memory.
__host__ __device__ constexpr bool uses_tma_pipe(int kind) {
  return kind == kTmaKernel || kind == kTmaPushKernel;
}

// The one place where an algorithm becomes a kernel: the kernel of a call of `algo`, whose
// message is one push chunk or less (several_chunks false) or more. Launch, load and
// occupancy all ask it. The copy-engine two-shot's call is several launches (ce_twoshot.cuh
// issues its meet and done kernels); its kernel here is the one of nblocks CTAs, its reduce.
__host__ __device__ constexpr int kernel_kind_of(int algo, bool several_chunks) {
  return algo == NVLAR_ALGO_TMA            ? kTmaKernel
         : algo == NVLAR_ALGO_PUSH_TWOSHOT ? kPushTwoshotKernel
         : algo == NVLAR_ALGO_PUSH         ? (several_chunks ? kPushChunksKernel : kPushKernel)
         : algo == NVLAR_ALGO_CETWOSHOT    ? kCeReduceKernel
         : algo == NVLAR_ALGO_TMA_PUSH     ? kTmaPushKernel
                                           : kPlainKernel;
}

// Calls visitor.template kind<K>() for the kernel kind K chosen at run time.
template <typename Visitor> cudaError_t with_kind(int kind, const Visitor &visitor) {
  switch (kind) {
    case kPlainKernel: return visitor.template kind<kPlainKernel>();
    case kTmaKernel: return visitor.template kind<kTmaKernel>();
    case kPushChunksKernel: return visitor.template kind<kPushChunksKernel>();
    case kPushTwoshotKernel: return visitor.template kind<kPushTwoshotKernel>();
    case kPushKernel: return visitor.template kind<kPushKernel>();
    case kCeReduceKernel: return visitor.template kind<kCeReduceKernel>();
    case kCeMeetKernel: return visitor.template kind<kCeMeetKernel>();
    case kCeDoneKernel: return visitor.template kind<kCeDoneKernel>();
    case kTmaPushKernel: return visitor.template kind<kTmaPushKernel>();
    default: return cudaErrorInvalidValue;
  }
}

// Programmatic dependent launch (sm_90+; a no-op for a kernel launched without it): the CTAs
// of this kernel may start while the previous kernel on the stream still runs. Wait for that
// kernel's completion (and its memory) here, before anything it may have written is read: this
// rank's progress record (written by the previous nvlar kernel), the user's input, the staging
// and push buffers. Then let the next kernel on the stream start its own prologue: it waits in
// its griddepcontrol.wait for this whole grid to finish, so starting it early only overlaps
// its launch with this kernel. Every CTA of this grid is resident once they all passed
// launch_dependents, so the early starter cannot take the SMs a CTA of this rank still needs.
__device__ __forceinline__ void wait_for_previous_kernel() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

template <typename T, int Op, int kKind>
__device__ void allreduce_rank_body(const nvlar_allreduce_args &a, int block, int nblocks) {
  __shared__ CtaWait cta;
  cta_wait_init(&cta);
  wait_for_previous_kernel();
  // The rank state was written by the previous launch (ordered before this one by the
  // stream); a failed rank stays failed: its peers' flags can no longer be trusted.
  volatile nvlar_rank_state *state = a.state;
  uint64_t seq0 = state->slot[block].barrier_seq, chunk0 = state->slot[block].chunk_seq;
  uint64_t push0 = state->slot[block].push_seq;
  // The push two-shots skip their "arrived" after a call of the same algorithm on as many
  // CTAs, whose staging layout is theirs (push_twoshot.cuh).
  const bool same_push_layout = state->slot[block].last_algo == 1 + (uint64_t)a.algo &&
                                state->slot[block].last_ctas == (uint64_t)nblocks;
  bool failed = state->failed != 0;
  __syncthreads();
  if (failed || a.count == 0) return;

  uint64_t chunks = 0, seq1 = seq0, chunk1 = chunk0, push1 = push0;
  if (kKind == kTmaKernel) {
    // The TMA two-shot shares the two-shot's staging halves and barrier numbers.
    tma_twoshot<T, Op>(a, block, nblocks, seq0, chunk0, &cta, &chunks);
    seq1 = seq0 + 2 * chunks;
    chunk1 = chunk0 + chunks;
  } else if (kKind == kPushTwoshotKernel) {
    seq1 = seq0 + push_twoshot<T, Op>(a, block, nblocks, seq0, !same_push_layout, &cta);
  } else if (kKind == kTmaPushKernel) {
    seq1 = seq0 + tma_push_twoshot<T, Op>(a, block, nblocks, seq0, !same_push_layout, &cta);
  } else if (kKind == kPushChunksKernel) {
    push1 = push0 + push_oneshot<T, Op, true>(a, block, nblocks, push0, &cta);
  } else if (kKind == kPushKernel) {
    push1 = push0 + push_oneshot<T, Op, false>(a, block, nblocks, push0, &cta);
  } else if (kKind == kCeReduceKernel) {
    seq1 = seq0 + ce_reduce<T, Op>(a, block, nblocks, seq0, &cta);
  } else if (kKind == kCeMeetKernel) {
    seq1 = seq0 + ce_meet(a, block, seq0, &cta);
  } else if (a.algo == NVLAR_ALGO_TWOSHOT) {
    twoshot<T, Op>(a, block, nblocks, seq0, chunk0, &cta, &chunks);
    seq1 = seq0 + 2 * chunks;
    chunk1 = chunk0 + chunks;
  } else {
    oneshot<T, Op>(a, block, nblocks, seq0, chunk0, &cta, &chunks);
    seq1 = seq0 + chunks;
    chunk1 = chunk0 + chunks;
  }
  __syncthreads();  // every thread's part is done (or gave up) before the progress moves
  if (cta.gave_up) return;

  // Advance this CTA's slot and the slots no CTA of this launch reads (see nvlar_kernels.h).
  for (int slot = block + nblocks * threadIdx.x; slot < NVLAR_MAX_BLOCKS;
       slot += nblocks * blockDim.x) {
    state->slot[slot].barrier_seq = seq1;
    state->slot[slot].chunk_seq = chunk1;
    state->slot[slot].push_seq = push1;
    state->slot[slot].last_algo = 1 + a.algo;
    state->slot[slot].last_ctas = nblocks;
  }
}

// A CTA's last step in a counted launch: it announces that it is over. The release at system
// scope orders every access this CTA made to any rank's buffers (its threads' accesses too:
// bar.sync makes them precede thread 0's release, which is cumulative) before the count, so
// the host, once it sees every CTA counted, may tell the peers that this rank has left and
// they may free what this kernel wrote into. Graph replays and the tests' launches are not
// counted (args.counted = 0) and skip it.
__device__ __forceinline__ void count_cta_over(const nvlar_allreduce_args &a) {
  if (!a.counted) return;
  __syncthreads();
  if (threadIdx.x == 0) {
    asm volatile("red.release.sys.global.add.u64 [%0], 1;" ::"l"(&a.state->ctas_done) : "memory");
  }
}

template <typename T, int Op, int kKind>
__device__ void allreduce_rank(const nvlar_allreduce_args &a, int block, int nblocks) {
  if constexpr (kKind == kCeDoneKernel) {
    // Only the count: the copy-engine two-shot's last step (ce_twoshot.cuh) reads and moves
    // nothing. Launched behind a copy without PDL, it starts once everything before it on
    // the stream is over (the wait is then a no-op).
    wait_for_previous_kernel();
  } else {
    allreduce_rank_body<T, Op, kKind>(a, block, nblocks);
  }
  count_cta_over(a);
}

// ---------------------------------------------------------------------------------------------
// Kernels and per-type dispatch. Arguments are __grid_constant__ so that the device
// functions read them in place (by reference) instead of copying them to local memory.

template <typename T, int Op, int kKind>
__global__ void __launch_bounds__(NVLAR_THREADS) allreduce_kernel(const __grid_constant__ nvlar_allreduce_args args) {
  allreduce_rank<T, Op, kKind>(args, blockIdx.x, gridDim.x);
}

struct EmulatedRanks {
  nvlar_allreduce_args ranks[NVLAR_MAX_RANKS];
};

template <typename T, int Op, int kKind>
__global__ void __launch_bounds__(NVLAR_THREADS) allreduce_emulated_kernel(const __grid_constant__ EmulatedRanks e) {
  allreduce_rank<T, Op, kKind>(e.ranks[blockIdx.y], blockIdx.x, gridDim.x);
}

// Launches `kernel` with the TMA pipeline's shared memory if it runs one, as a programmatic
// dependent launch if asked, and at `priority` unless it is 0 (the stream's).
template <typename Kernel, typename Arg>
cudaError_t launch(Kernel kernel, const Arg &arg, dim3 grid, bool tma, bool pdl, int priority,
                   cudaStream_t stream) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = dim3(NVLAR_THREADS);
  config.dynamicSmemBytes = tma ? kTmaSharedBytes : 0;
  config.stream = stream;
  cudaLaunchAttribute attributes[2];
  unsigned count = 0;
  if (pdl) {
    attributes[count].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attributes[count++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (priority != 0) {
    attributes[count].id = cudaLaunchAttributePriority;
    attributes[count++].val.priority = priority;
  }
  config.attrs = attributes;
  config.numAttrs = count;
  return cudaLaunchKernelEx(&config, kernel, arg);
}

// Calls visitor.run<Op>() for the operator chosen at run time.
template <typename Visitor> cudaError_t with_op(int op, const Visitor &visitor) {
  switch (op) {
    case OP_SUM: return visitor.template run<OP_SUM>();
    case OP_PROD: return visitor.template run<OP_PROD>();
    case OP_MAX: return visitor.template run<OP_MAX>();
    case OP_MIN: return visitor.template run<OP_MIN>();
    case OP_AVG: return visitor.template run<OP_AVG>();
    default: return cudaErrorInvalidValue;
  }
}

// The kernel a call runs; the same on every rank, since they agree on algo and count.
template <typename T> int kernel_kind(const nvlar_allreduce_args &a) {
  return kernel_kind_of(a.algo, a.count > NVLAR_PUSH_CHUNK_BYTES / sizeof(T));
}

// The visitors below are templates over kEmulated: a translation unit instantiates either the
// real ranks' kernels (libnvlar) or the emulated ones (the test-only library nvlar_emulation,
// built from the same sources with NVLAR_EMULATED_BUILD=1), never both.
template <typename T, bool kEmulated> struct LaunchVisitor {
  const nvlar_allreduce_args *ranks;
  int nranks;
  cudaStream_t stream;
  // Launches kernel kKind for every rank with arguments `args` (this launch's ranks: one, or
  // every emulated rank), args[0].nblocks CTAs per rank.
  template <int Op, int kKind> cudaError_t launch_kind(const nvlar_allreduce_args *args) const {
    dim3 grid(args[0].nblocks, kEmulated ? nranks : 1);
    const bool tma = uses_tma_pipe(kKind), pdl = args[0].pdl != 0;
    const int priority = args[0].priority;
    cudaError_t error;
    if constexpr (kEmulated) {
      EmulatedRanks all;
      for (int r = 0; r < nranks; r++) all.ranks[r] = args[r];
      error = launch(allreduce_emulated_kernel<T, Op, kKind>, all, grid, tma, pdl, priority, stream);
    } else {
      error = launch(allreduce_kernel<T, Op, kKind>, args[0], grid, tma, pdl, priority, stream);
    }
    return error != cudaSuccess ? error : cudaGetLastError();
  }
  template <int Op, int kKind> cudaError_t launch_kind() const { return launch_kind<Op, kKind>(ranks); }
  // The copy-engine two-shot's call: copies and kernels (ce_twoshot.cuh).
  template <int Op> cudaError_t run_ce_twoshot() const {
    auto kernel = [this](int which, const nvlar_allreduce_args *args) {
      if (which == kCeReduce) return launch_kind<Op, kCeReduceKernel>(args);
      if (which == kCeMeet) return launch_kind<Op, kCeMeetKernel>(args);
      return launch_kind<Op, kCeDoneKernel>(args);
    };
    return ce_twoshot_issue<T>(ranks, nranks, stream, kernel);
  }
  template <int Op> struct LaunchKind {
    const LaunchVisitor *self;
    template <int kKind> cudaError_t kind() const { return self->template launch_kind<Op, kKind>(); }
  };
  template <int Op> cudaError_t run() const {
    if (ranks[0].algo == NVLAR_ALGO_CETWOSHOT) return run_ce_twoshot<Op>();
    return with_kind(kernel_kind<T>(ranks[0]), LaunchKind<Op>{this});
  }
};

// Loads (does not launch) the kernels of one type and operator, and gives the TMA kernels
// their shared memory: with CUDA's lazy loading, the first launch of a kernel would otherwise
// load it then, and loading may wait for the device to go idle, which it never does while an
// all-reduce kernel waits for a peer whose launch comes after this one (several ranks driven
// from one thread, or emulated ranks on one GPU).
template <typename T, bool kEmulated> struct LoadVisitor {
  template <typename Kernel> static cudaError_t load(Kernel kernel, bool tma) {
    if (tma) {
      return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  (int)kTmaSharedBytes);
    }
    cudaFuncAttributes attributes;
    return cudaFuncGetAttributes(&attributes, kernel);
  }
  template <int Op, int kKind> static cudaError_t load_kind() {
    if constexpr (kEmulated) {
      return load(allreduce_emulated_kernel<T, Op, kKind>, uses_tma_pipe(kKind));
    } else {
      return load(allreduce_kernel<T, Op, kKind>, uses_tma_pipe(kKind));
    }
  }
  template <int Op> struct LoadKind {
    template <int kKind> cudaError_t kind() const { return load_kind<Op, kKind>(); }
  };
  template <int Op> cudaError_t run() const {
    cudaError_t error = cudaSuccess;
    for (int kind = 0; kind < kKernelKinds && error == cudaSuccess; kind++) {
      error = with_kind(kind, LoadKind<Op>{});
    }
    return error;
  }
};

// CTAs per SM of the kernel(s) an algorithm runs (kernel_kind_of): for the push one-shot, the
// fewer of its two; for the copy-engine two-shot, its reduce kernel (the only one of nblocks
// CTAs that waits).
template <typename T, bool kEmulated> struct OccupancyVisitor {
  int algo;
  int *blocks_per_sm;
  template <int Op, int kKind> cudaError_t query(int *blocks) const {
    size_t shared = uses_tma_pipe(kKind) ? kTmaSharedBytes : 0;
    if constexpr (kEmulated) {
      return cudaOccupancyMaxActiveBlocksPerMultiprocessor(
          blocks, allreduce_emulated_kernel<T, Op, kKind>, NVLAR_THREADS, shared);
    } else {
      return cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks, allreduce_kernel<T, Op, kKind>,
                                                           NVLAR_THREADS, shared);
    }
  }
  template <int Op> struct QueryKind {
    const OccupancyVisitor *self;
    int *blocks;
    template <int kKind> cudaError_t kind() const { return self->template query<Op, kKind>(blocks); }
  };
  // The fewer of the algorithm's kernels for calls of one push chunk and of several (the
  // same kernel for all but the push one-shot).
  template <int Op> cudaError_t run() const {
    int one = 0, several = 0;
    cudaError_t error = with_kind(kernel_kind_of(algo, false), QueryKind<Op>{this, &one});
    if (error == cudaSuccess) error = with_kind(kernel_kind_of(algo, true), QueryKind<Op>{this, &several});
    if (error == cudaSuccess) *blocks_per_sm = one < several ? one : several;
    return error;
  }
};

}  // namespace nvlar

// One instantiation unit per element type keeps each nvcc run small and lets the build run
// them in parallel (kernels/allreduce_<type>.cu, each built twice: for libnvlar, and with
// NVLAR_EMULATED_BUILD=1 for the emulation library). The entry points are declared in
// allreduce_launch.h.
#if NVLAR_EMULATED_BUILD
#define NVLAR_DEFINE_TYPED_LAUNCH(suffix, T)                                                   \
  cudaError_t nvlar_emulated_launch_##suffix(const nvlar_allreduce_args *ranks, int nranks,    \
                                             cudaStream_t stream) {                            \
    return nvlar::with_op(ranks[0].op, nvlar::LaunchVisitor<T, true>{ranks, nranks, stream});  \
  }                                                                                            \
  cudaError_t nvlar_emulated_load_##suffix(int op) {                                           \
    return nvlar::with_op(op, nvlar::LoadVisitor<T, true>{});                                  \
  }                                                                                            \
  cudaError_t nvlar_emulated_occupancy_##suffix(int op, int algo, int *blocks_per_sm) {        \
    return nvlar::with_op(op, nvlar::OccupancyVisitor<T, true>{algo, blocks_per_sm});          \
  }
#else
#define NVLAR_DEFINE_TYPED_LAUNCH(suffix, T)                                                   \
  cudaError_t nvlar_allreduce_launch_##suffix(const nvlar_allreduce_args *args,                \
                                              cudaStream_t stream) {                           \
    return nvlar::with_op(args->op, nvlar::LaunchVisitor<T, false>{args, 1, stream});          \
  }                                                                                            \
  cudaError_t nvlar_allreduce_load_##suffix(int op) {                                          \
    return nvlar::with_op(op, nvlar::LoadVisitor<T, false>{});                                 \
  }                                                                                            \
  cudaError_t nvlar_allreduce_occupancy_##suffix(int op, int algo, int *blocks_per_sm) {       \
    return nvlar::with_op(op, nvlar::OccupancyVisitor<T, false>{algo, blocks_per_sm});         \
  }
#endif
