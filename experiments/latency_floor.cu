// Experiment (not part of the build): where does a small all-reduce's time go on two GPUs?
//
// One process drives two GPUs (peer access on). Every figure is device time per call of many
// calls captured in one graph per GPU: the graph holds one warm-up call, a start event, `calls`
// calls and a stop event, so the skew between the two graphs' launches falls on the warm-up
// call and not on the timed ones. Median of the trials, slowest GPU.
//
// What it times, side by side in one run:
//   empty        an empty kernel (with and without programmatic dependent launch): the floor
//                of one kernel per call
//   flag         one thread per GPU reads its sequence number, stores a flag into the peer,
//                waits for the peer's flag, writes the number back: the floor of one exchange
//   nvlar        nvlar's push one-shot itself (kernels/allreduce.cuh, float32 sum, 2 ranks),
//                at the CTA count of its rule (RULE_BYTES, RULE_MOST below), and without PDL
//   ll K/C       a push one-shot of one chunk in LL packets like nvlar's, each thread with K
//                packets in flight at once (nvlar's has one), on C CTAs; flags: early (the
//                input is loaded before the sequence number and beside it), nosync (no
//                __syncthreads between reading the sequence number and the work)
// and, with timestamps (%globaltimer, one GPU's clock at a time) of CTA 0 thread 0 of the ll
// kernel, the stages of one call: PDL wait, stores sent, packets in, end, and the gap from one
// call's end to the next call's start.
//
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -I kernels \
//        -o latency_floor experiments/latency_floor.cu
//   ./latency_floor [calls] [trials] [nvlar-only]
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <algorithm>
#include <functional>
#include <vector>

#include "allreduce.cuh"

#define CHECK(call)                                                                       \
  do {                                                                                    \
    cudaError_t e = (call);                                                               \
    if (e != cudaSuccess) {                                                               \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e)); \
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 128;
constexpr size_t kMaxBytes = (size_t)1 << 20;       // data bytes per call, at most
constexpr size_t kSlotBytes = 2 * kMaxBytes;        // its packets
constexpr int kTraceCalls = 64;
constexpr int kTraceStamps = 5;

enum { kEarlyInput = 1, kNoStartSync = 2, kTrace = 4 };

struct Lat {
  int rank, nblocks, flags;
  const float *input;
  float *output;
  size_t count;
  char *recv_local;  // [buffer 2][source rank 2] slots of kSlotBytes
  char *recv_peer;   // the peer's, mapped
  uint64_t *seq;     // [kMaxBlocks], this GPU's
  uint32_t *failed;
  uint64_t *trace;   // [kTraceCalls][kTraceStamps]
  uint32_t *trace_call;
};

__device__ __forceinline__ uint64_t now_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__device__ __forceinline__ void pdl_wait() {
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}

__global__ void empty_kernel(int pdl) {
  if (pdl) pdl_wait();
}

// Advance every slot a launch of `nblocks` CTAs owns (nvlar's scheme: all slots stay equal).
__device__ __forceinline__ void advance(uint64_t *seq, int block, int nblocks, uint64_t next) {
  for (int s = block + nblocks * threadIdx.x; s < kMaxBlocks; s += nblocks * blockDim.x) seq[s] = next;
}

__global__ void flag_kernel(const __grid_constant__ Lat a, int pdl) {
  if (pdl) pdl_wait();
  if (threadIdx.x != 0) return;
  uint64_t seq = *(volatile uint64_t *)a.seq + 1;
  uint32_t flag = (uint32_t)seq;
  nvlar::store_packet(a.recv_peer + a.rank * kSlotBytes, seq, flag);
  const char *mine = a.recv_local + (1 - a.rank) * kSlotBytes;
  uint64_t start = now_ns();
  for (;;) {
    uint4 v = nvlar::load_packet(mine);
    if (v.y == flag && v.w == flag) break;
    if (now_ns() - start > 2000000000ull) { atomicExch(a.failed, 1u); break; }
  }
  for (int s = 0; s < kMaxBlocks; s++) a.seq[s] = seq;
}

// Push one-shot of one chunk, float sum, 2 ranks, K packets per thread in flight.
template <int K>
__global__ void __launch_bounds__(kThreads) ll_kernel(const __grid_constant__ Lat a) {
  const bool trace = (a.flags & kTrace) && blockIdx.x == 0 && threadIdx.x == 0;
  uint64_t t[kTraceStamps];
  if (trace) t[0] = now_ns();
  pdl_wait();
  if (trace) t[1] = now_ns();
  const int block = blockIdx.x;
  const size_t packets = (a.count + 1) / 2;
  const nvlar::Range r = nvlar::split(packets, block, a.nblocks, 1);
  const uint64_t *in64 = reinterpret_cast<const uint64_t *>(a.input);
  uint64_t early[K];
  if (a.flags & kEarlyInput) {
#pragma unroll
    for (int j = 0; j < K; j++) {
      size_t pk = r.begin + threadIdx.x + (size_t)j * kThreads;
      early[j] = pk < r.end ? in64[pk] : 0;
    }
  }
  const uint64_t seq = a.seq[block];
  if (!(a.flags & kNoStartSync)) __syncthreads();
  const uint32_t flag = 1u + (uint32_t)(seq % 0xffffffffull);
  const size_t buffer = seq % 2;
  char *to_peer = a.recv_peer + (buffer * 2 + a.rank) * kSlotBytes;
  const char *from_peer = a.recv_local + (buffer * 2 + (1 - a.rank)) * kSlotBytes;
  const size_t step = (size_t)K * kThreads;
  for (size_t base = r.begin + threadIdx.x; base < r.end; base += step) {
    uint64_t payload[K];
#pragma unroll
    for (int j = 0; j < K; j++) {
      size_t pk = base + (size_t)j * kThreads;
      payload[j] = (a.flags & kEarlyInput) && base == r.begin + threadIdx.x ? early[j]
                   : pk < r.end                                          ? in64[pk]
                                                                         : 0;
    }
#pragma unroll
    for (int j = 0; j < K; j++) {
      size_t pk = base + (size_t)j * kThreads;
      if (pk < r.end) nvlar::store_packet(to_peer + pk * 16, payload[j], flag);
    }
  }
  if (trace) t[2] = now_ns();
  bool ok = true;
  for (size_t base = r.begin + threadIdx.x; base < r.end && ok; base += step) {
    uint4 v[K];
#pragma unroll
    for (int j = 0; j < K; j++) {
      size_t pk = base + (size_t)j * kThreads;
      if (pk < r.end) v[j] = nvlar::load_packet(from_peer + pk * 16);
    }
#pragma unroll
    for (int j = 0; j < K; j++) {
      size_t pk = base + (size_t)j * kThreads;
      if (pk >= r.end) break;
      if (v[j].y != flag || v[j].w != flag) {
        uint64_t start = now_ns();
        do {
          v[j] = nvlar::load_packet(from_peer + pk * 16);
          if (now_ns() - start > 2000000000ull) { atomicExch(a.failed, 1u); ok = false; break; }
        } while (v[j].y != flag || v[j].w != flag);
        if (!ok) break;
      }
      uint64_t mine = in64[pk];
      float2 x = *reinterpret_cast<float2 *>(&mine);
      float2 y = make_float2(__uint_as_float(v[j].x), __uint_as_float(v[j].z));
      // Rank order 0, 1 (as nvlar): rank 0's value first.
      float2 s = a.rank == 0 ? make_float2(x.x + y.x, x.y + y.y) : make_float2(y.x + x.x, y.y + x.y);
      reinterpret_cast<float2 *>(a.output)[pk] = s;
    }
  }
  if (trace) t[3] = now_ns();
  __syncthreads();
  advance(a.seq, block, a.nblocks, seq + 1);
  if (trace) {
    t[4] = now_ns();
    uint32_t call = *a.trace_call;
    if (call < kTraceCalls) {
      for (int i = 0; i < kTraceStamps; i++) a.trace[call * kTraceStamps + i] = t[i];
    }
    *a.trace_call = call + 1;
  }
}

// ---------------------------------------------------------------------------------------------

struct Gpu {
  cudaStream_t stream;
  cudaEvent_t start, stop;
  float *input, *output;
  char *recv;
  uint64_t *seq;
  uint32_t *failed;
  uint64_t *trace;
  uint32_t *trace_call;
  void *nvlar_push;
  nvlar_rank_state *nvlar_state;
};
static Gpu gpus[2];

static cudaError_t launch_ex(const void *kernel, void **params, int blocks, bool pdl, cudaStream_t s) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(blocks);
  config.blockDim = dim3(kThreads);
  config.stream = s;
  cudaLaunchAttribute attribute;
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = pdl ? 1 : 0;
  return cudaLaunchKernelExC(&config, kernel, params);
}

static Lat lat_args(int g, size_t bytes, int blocks, int flags) {
  Lat a = {};
  a.rank = g;
  a.nblocks = blocks;
  a.flags = flags;
  a.input = gpus[g].input;
  a.output = gpus[g].output;
  a.count = bytes / 4;
  a.recv_local = gpus[g].recv;
  a.recv_peer = gpus[1 - g].recv;
  a.seq = gpus[g].seq;
  a.failed = gpus[g].failed;
  a.trace = gpus[g].trace;
  a.trace_call = gpus[g].trace_call;
  return a;
}

static nvlar_allreduce_args nvlar_args(int g, size_t bytes, int blocks) {
  nvlar_allreduce_args a = {};
  a.rank = g;
  a.nranks = 2;
  a.algo = NVLAR_ALGO_PUSH;
  a.datatype = 7; /* ncclFloat32 */
  a.op = nvlar::OP_SUM;
  a.nblocks = blocks;
  a.input = gpus[g].input;
  a.output = gpus[g].output;
  a.count = bytes / 4;
  for (int r = 0; r < 2; r++) a.push[r] = gpus[r].nvlar_push;
  a.staging_bytes = 1 << 20;
  a.state = gpus[g].nvlar_state;
  a.timeout_ns = 2000000000ull;
  a.pdl = 1;
  return a;
}

using Launch = std::function<void(int g, cudaStream_t s)>;

// Device µs per call: `calls` calls in one graph per GPU after a warm-up call; median of the
// trials, slowest GPU.
static double time_graph(const Launch &launch, int calls, int trials) {
  cudaGraphExec_t exec[2];
  for (int g = 0; g < 2; g++) {
    CHECK(cudaSetDevice(g));
    CHECK(cudaStreamBeginCapture(gpus[g].stream, cudaStreamCaptureModeRelaxed));
    launch(g, gpus[g].stream);
    CHECK(cudaEventRecordWithFlags(gpus[g].start, gpus[g].stream, cudaEventRecordExternal));
    for (int i = 0; i < calls; i++) launch(g, gpus[g].stream);
    CHECK(cudaEventRecordWithFlags(gpus[g].stop, gpus[g].stream, cudaEventRecordExternal));
    cudaGraph_t graph;
    CHECK(cudaStreamEndCapture(gpus[g].stream, &graph));
    CHECK(cudaGraphInstantiate(&exec[g], graph, 0));
    CHECK(cudaGraphDestroy(graph));
  }
  std::vector<double> samples;
  for (int t = 0; t <= trials; t++) {
    for (int g = 0; g < 2; g++) {
      CHECK(cudaSetDevice(g));
      CHECK(cudaGraphLaunch(exec[g], gpus[g].stream));
    }
    double slowest = 0;
    for (int g = 0; g < 2; g++) {
      CHECK(cudaSetDevice(g));
      CHECK(cudaStreamSynchronize(gpus[g].stream));
      float ms;
      CHECK(cudaEventElapsedTime(&ms, gpus[g].start, gpus[g].stop));
      slowest = std::max(slowest, (double)ms);
    }
    if (t > 0) samples.push_back(slowest * 1000.0 / calls);  // trial 0 uploads the graph
  }
  for (int g = 0; g < 2; g++) {
    CHECK(cudaSetDevice(g));
    CHECK(cudaGraphExecDestroy(exec[g]));
    uint32_t failed = 0;
    CHECK(cudaMemcpy(&failed, gpus[g].failed, 4, cudaMemcpyDeviceToHost));
    if (failed) { fprintf(stderr, "GPU %d: a wait timed out\n", g); exit(1); }
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

// Host µs per call of `calls` eager calls (each GPU in turn), after a synchronize.
static double time_eager(const Launch &launch, int calls, int trials) {
  std::vector<double> samples;
  for (int t = 0; t <= trials; t++) {
    for (int g = 0; g < 2; g++) { CHECK(cudaSetDevice(g)); CHECK(cudaDeviceSynchronize()); }
    timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < calls; i++) {
      for (int g = 0; g < 2; g++) { CHECK(cudaSetDevice(g)); launch(g, gpus[g].stream); }
    }
    for (int g = 0; g < 2; g++) { CHECK(cudaSetDevice(g)); CHECK(cudaStreamSynchronize(gpus[g].stream)); }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double us = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
    if (t > 0) samples.push_back(us / calls);
  }
  std::sort(samples.begin(), samples.end());
  return samples[samples.size() / 2];
}

static bool check_sum(size_t bytes) {
  size_t n = bytes / 4;
  std::vector<float> out(n);
  for (int g = 0; g < 2; g++) {
    CHECK(cudaSetDevice(g));
    CHECK(cudaMemcpy(out.data(), gpus[g].output, bytes, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) {
      float want = (float)(i % 97) + (float)((i % 89) * 2);
      if (out[i] != want) {
        fprintf(stderr, "GPU %d element %zu: %g, want %g\n", g, i, out[i], want);
        return false;
      }
    }
    CHECK(cudaMemset(gpus[g].output, 0, bytes));
  }
  return true;
}

template <int K> static Launch ll_launch(size_t bytes, int blocks, int flags, bool pdl) {
  return [=](int g, cudaStream_t s) {
    Lat a = lat_args(g, bytes, blocks, flags);
    void *params[] = {&a};
    CHECK(launch_ex((const void *)ll_kernel<K>, params, blocks, pdl, s));
  };
}

static Launch ll_any(int k, size_t bytes, int blocks, int flags, bool pdl) {
  switch (k) {
    case 1: return ll_launch<1>(bytes, blocks, flags, pdl);
    case 2: return ll_launch<2>(bytes, blocks, flags, pdl);
    case 4: return ll_launch<4>(bytes, blocks, flags, pdl);
    default: return ll_launch<8>(bytes, blocks, flags, pdl);
  }
}

// nvlar's CTA rule for the push one-shot: one per RULE_BYTES, at most RULE_MOST (the kernels'
// own table row; pass -DRULE_BYTES=2048 -DRULE_MOST=32 for the kernels before 2026-11-30's
// latency work, `073f448`).
#ifndef RULE_MOST
#define RULE_MOST 128
#endif
#ifndef RULE_BYTES
#define RULE_BYTES 1024
#endif
static int nvlar_rule_ctas(size_t bytes) {
  size_t c = (bytes + RULE_BYTES - 1) / RULE_BYTES;
  return (int)std::max<size_t>(1, std::min<size_t>(c, RULE_MOST));
}

static Launch nvlar_launch(size_t bytes, int blocks, bool pdl) {
  return [=](int g, cudaStream_t s) {
    nvlar_allreduce_args a = nvlar_args(g, bytes, blocks);
    a.pdl = pdl;
    CHECK(nvlar::with_op(a.op, nvlar::LaunchVisitor<float, false>{&a, 1, s}));
  };
}

static void print_trace(int calls) {
  // Stage medians over calls 8..min(calls, kTraceCalls) of CTA 0 thread 0, per GPU.
  for (int g = 0; g < 2; g++) {
    std::vector<uint64_t> t(kTraceCalls * kTraceStamps);
    CHECK(cudaSetDevice(g));
    CHECK(cudaMemcpy(t.data(), gpus[g].trace, t.size() * 8, cudaMemcpyDeviceToHost));
    const char *names[] = {"launch->pdl-wait done", "stores sent", "packets in (wait)",
                           "sync+state written", "end -> next pdl-wait done"};
    std::vector<double> d[5];
    int last = std::min(calls, kTraceCalls);
    for (int c = 8; c < last; c++) {
      uint64_t *s = &t[c * kTraceStamps];
      for (int i = 0; i < 4; i++) d[i].push_back((s[i + 1] - s[i]) / 1000.0);
      if (c + 1 < last) d[4].push_back(((int64_t)s[kTraceStamps + 1] - (int64_t)s[4]) / 1000.0);
    }
    printf("  GPU %d:", g);
    for (int i = 0; i < 5; i++) {
      std::sort(d[i].begin(), d[i].end());
      printf(" %s %.2f;", names[i], d[i].empty() ? 0.0 : d[i][d[i].size() / 2]);
    }
    printf("\n");
    CHECK(cudaMemset(gpus[g].trace_call, 0, 4));
  }
}

int main(int argc, char **argv) {
  const int calls = argc > 1 ? atoi(argv[1]) : 200;
  const int trials = argc > 2 ? atoi(argv[2]) : 7;
  const bool nvlar_only = argc > 3 && strcmp(argv[3], "nvlar-only") == 0;  // floors and nvlar
  int n = 0;
  CHECK(cudaGetDeviceCount(&n));
  if (n < 2) { fprintf(stderr, "needs 2 GPUs\n"); return 77; }
  for (int g = 0; g < 2; g++) {
    Gpu &G = gpus[g];
    CHECK(cudaSetDevice(g));
    CHECK(cudaDeviceEnablePeerAccess(1 - g, 0));
    CHECK(cudaStreamCreateWithFlags(&G.stream, cudaStreamNonBlocking));
    CHECK(cudaEventCreate(&G.start));
    CHECK(cudaEventCreate(&G.stop));
    CHECK(cudaMalloc(&G.input, kMaxBytes));
    CHECK(cudaMalloc(&G.output, kMaxBytes));
    std::vector<float> in(kMaxBytes / 4);
    for (size_t i = 0; i < in.size(); i++) in[i] = g == 0 ? (float)(i % 97) : (float)((i % 89) * 2);
    CHECK(cudaMemcpy(G.input, in.data(), kMaxBytes, cudaMemcpyHostToDevice));
    CHECK(cudaMalloc(&G.recv, 4 * kSlotBytes));
    CHECK(cudaMemset(G.recv, 0, 4 * kSlotBytes));
    CHECK(cudaMalloc(&G.seq, kMaxBlocks * 8));
    CHECK(cudaMemset(G.seq, 0, kMaxBlocks * 8));
    CHECK(cudaMalloc(&G.failed, 4));
    CHECK(cudaMemset(G.failed, 0, 4));
    CHECK(cudaMalloc(&G.trace, kTraceCalls * kTraceStamps * 8));
    CHECK(cudaMalloc(&G.trace_call, 4));
    CHECK(cudaMemset(G.trace_call, 0, 4));
    CHECK(cudaMalloc(&G.nvlar_push, NVLAR_PUSH_AREA_BYTES));
    CHECK(cudaMemset(G.nvlar_push, 0, NVLAR_PUSH_AREA_BYTES));
    CHECK(cudaMalloc(&G.nvlar_state, sizeof(nvlar_rank_state)));
    CHECK(cudaMemset(G.nvlar_state, 0, sizeof(nvlar_rank_state)));
    CHECK(nvlar::with_op(nvlar::OP_SUM, nvlar::LoadVisitor<float, false>{}));
  }
  for (int g = 0; g < 2; g++) { CHECK(cudaSetDevice(g)); CHECK(cudaDeviceSynchronize()); }
  printf("# device us per call, %d calls in one graph per GPU, median of %d trials\n", calls, trials);

  auto empty = [](bool pdl) -> Launch {
    return [=](int, cudaStream_t s) {
      int p = pdl;
      void *params[] = {&p};
      CHECK(launch_ex((const void *)empty_kernel, params, 1, pdl, s));
    };
  };
  auto flag = [](bool pdl) -> Launch {
    return [=](int g, cudaStream_t s) {
      Lat a = lat_args(g, 8, 1, 0);
      int p = pdl;
      void *params[] = {&a, &p};
      CHECK(launch_ex((const void *)flag_kernel, params, 1, pdl, s));
    };
  };
  printf("floor empty-kernel graph %.2f | pdl %.2f | eager-host %.2f\n", time_graph(empty(false), calls, trials),
         time_graph(empty(true), calls, trials), time_eager(empty(false), calls, trials));
  printf("floor flag-exchange graph %.2f | pdl %.2f | eager-host %.2f\n", time_graph(flag(false), calls, trials),
         time_graph(flag(true), calls, trials), time_eager(flag(true), calls, trials));

  const size_t sizes[] = {8, 8 << 10, 64 << 10, 256 << 10, 1 << 20};
  for (size_t bytes : sizes) {
    printf("== %zu bytes\n", bytes);
    {
      int c = bytes > NVLAR_PUSH_CHUNK_BYTES && RULE_MOST == 32 ? 16 : nvlar_rule_ctas(bytes);
      double pdl = time_graph(nvlar_launch(bytes, c, true), calls, trials);
      bool ok = check_sum(bytes);
      double nopdl = time_graph(nvlar_launch(bytes, c, false), calls, trials);
      double eager = time_eager(nvlar_launch(bytes, c, true), calls, trials);
      printf("nvlar push rule %d CTAs: graph %.2f | no-pdl %.2f | eager-host %.2f %s\n", c, pdl, nopdl,
             eager, ok ? "ok" : "WRONG");
      for (int cc : {1, 4, 16, 32, 64, 128}) {
        if (nvlar_only && cc < 16) continue;
        if (cc == c || (cc > 1 && (size_t)cc * kThreads > bytes / 8)) continue;
        if (bytes > NVLAR_PUSH_CHUNK_BYTES && cc < 16) continue;
        printf("nvlar push %d CTAs: graph %.2f\n", cc, time_graph(nvlar_launch(bytes, cc, true), calls, trials));
      }
    }
    const size_t packets = bytes / 8;
    if (nvlar_only) continue;
    for (int k : {1, 2, 4, 8}) {
      for (int c = 1; c <= kMaxBlocks; c *= 2) {
        if (c > 1 && (size_t)c * kThreads > packets) break;
        if ((size_t)c * kThreads * k > packets * 2 && k > 1) continue;  // K beyond a thread's packets
        for (int flags : {0, (int)kEarlyInput, (int)(kEarlyInput | kNoStartSync)}) {
          if (flags != 0 && !(k == 1 || c >= 16)) continue;
          double us = time_graph(ll_any(k, bytes, c, flags, true), calls, trials);
          bool ok = check_sum(bytes);
          printf("ll K=%d C=%d%s%s: graph %.2f %s\n", k, c, flags & kEarlyInput ? " early" : "",
                 flags & kNoStartSync ? " nosync" : "", us, ok ? "ok" : "WRONG");
        }
      }
    }
  }
  if (nvlar_only) return 0;
  // Stages of the ll kernel (K=1, early input, 1 CTA at 8 B; K=4, 32 CTAs at 256 KiB).
  for (auto cfg : {std::make_pair((size_t)8, 1), std::make_pair((size_t)(256 << 10), 32)}) {
    int k = cfg.first > 8 ? 4 : 1;
    printf("stages (us, medians) ll K=%d C=%d at %zu bytes, graph of %d:\n", k, cfg.second, cfg.first, calls);
    time_graph(ll_any(k, cfg.first, cfg.second, kEarlyInput | kTrace, true), std::min(calls, kTraceCalls - 1), 1);
    print_trace(std::min(calls, kTraceCalls - 1));
  }
  printf("no-pdl ll K=1 C=1 at 8 B: graph %.2f\n", time_graph(ll_any(1, 8, 1, kEarlyInput, false), calls, trials));
  return 0;
}
