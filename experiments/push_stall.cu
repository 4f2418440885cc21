// Experiment (not part of the build): why does the push one-shot stall on two real GPUs?
//
// A stand-alone copy of the push one-shot's protocol (float32, sum, 2 ranks, one chunk per
// call, LL packets {data, flag, data, flag} stored into the peer's receive slot, two buffers
// rotating with a per-CTA sequence number) on two GPUs driven by one process, with knobs for
// what might make it slow: CTA count, a system fence after the stores, back-off while polling,
// how often the host abort word is read, programmatic dependent launch, graph or eager.
// Each CTA records, with %globaltimer, when it started (after the PDL wait), when its thread 0
// had stored its packets, and when the whole CTA had every packet: the wait is then split
// into "peer late" and "packets slow".
//
//   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -o push_stall push_stall.cu
//   ./push_stall            (prints one line per variant)
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
constexpr size_t kSlotBytes = (size_t)512 << 10;  // 256 KiB of data per slot
constexpr int kTraceCalls = 64;

struct Args {
  int rank, nblocks;
  const float *input;
  float *output;
  size_t count;
  char *push_local;  // this rank's receive area: [buffer][src] slots
  char *push_peer;   // the peer's, mapped
  uint64_t *seq;     // [kMaxBlocks], device
  uint32_t *calls;   // [kMaxBlocks]
  uint64_t *trace;   // [kTraceCalls][kMaxBlocks][3]
  uint32_t *failed;
  const volatile uint32_t *abort;  // mapped host word
  int fence, backoff_ns, pdl, one_poller;
  uint64_t abort_period_ns;
};

__device__ __forceinline__ uint64_t now_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
__device__ __forceinline__ void store_packet(void *slot, uint64_t payload, uint32_t flag) {
  asm volatile("st.volatile.global.v4.u32 [%0], {%1, %2, %3, %4};" ::"l"(slot),
               "r"((uint32_t)payload), "r"(flag), "r"((uint32_t)(payload >> 32)), "r"(flag)
               : "memory");
}
__device__ __forceinline__ uint4 load_packet(const void *slot) {
  uint4 v;
  asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(slot)
               : "memory");
  return v;
}

__global__ void __launch_bounds__(kThreads) push_kernel(const __grid_constant__ Args a) {
#if __CUDA_ARCH__ >= 900
  if (a.pdl) {
    asm volatile("griddepcontrol.wait;" ::: "memory");
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
  }
#endif
  __shared__ int gave_up;
  uint64_t t0 = now_ns();
  const int block = blockIdx.x;
  uint64_t seq = ((volatile uint64_t *)a.seq)[block];
  uint32_t call = ((volatile uint32_t *)a.calls)[block];
  if (threadIdx.x == 0) gave_up = 0;
  __syncthreads();
  const uint32_t flag = 1u + (uint32_t)(seq % 0xffffffffull);
  const size_t buffer = seq % 2;
  const int peer = 1 - a.rank;
  char *to_peer = a.push_peer + (buffer * 2 + a.rank) * kSlotBytes;
  const char *from_peer = a.push_local + (buffer * 2 + peer) * kSlotBytes;
  size_t packets = (a.count + 1) / 2;
  size_t per = (packets + a.nblocks - 1) / a.nblocks;
  size_t begin = per * block, end = begin + per;
  if (begin > packets) begin = packets;
  if (end > packets) end = packets;
  for (size_t pk = begin + threadIdx.x; pk < end; pk += blockDim.x) {
    uint64_t payload = *reinterpret_cast<const uint64_t *>(a.input + 2 * pk);
    store_packet(to_peer + pk * 16, payload, flag);
  }
  if (a.fence) __threadfence_system();
  uint64_t t1 = now_ns();
  if (a.one_poller) {
    // Warp 0 waits for the CTA's last packet first, the others then find theirs at once.
    if (threadIdx.x == 0 && end > begin) {
      uint64_t start = now_ns();
      for (;;) {
        uint4 v = load_packet(from_peer + (end - 1) * 16);
        if (v.y == flag && v.w == flag) break;
        if (a.backoff_ns) __nanosleep(a.backoff_ns);
        if (now_ns() - start > 2000000000ull) { gave_up = 1; atomicExch(a.failed, 1u); break; }
      }
    }
    __syncthreads();
  }
  for (size_t pk = begin + threadIdx.x; pk < end && !gave_up; pk += blockDim.x) {
    uint4 v = load_packet(from_peer + pk * 16);
    if (v.y != flag || v.w != flag) {
      uint64_t start = now_ns(), checked = start;
      for (;;) {
        v = load_packet(from_peer + pk * 16);
        if (v.y == flag && v.w == flag) break;
        if (a.backoff_ns) __nanosleep(a.backoff_ns);
        uint64_t t = now_ns();
        if (t - start > 2000000000ull) { gave_up = 1; atomicExch(a.failed, 1u); break; }
        if (a.abort_period_ns && t - checked > a.abort_period_ns) {
          checked = t;
          if (*a.abort) { gave_up = 1; break; }
        }
      }
    }
    float2 mine = *reinterpret_cast<const float2 *>(a.input + 2 * pk);
    float2 theirs = make_float2(__uint_as_float(v.x), __uint_as_float(v.z));
    float2 sum = a.rank == 0 ? make_float2(mine.x + theirs.x, mine.y + theirs.y)
                             : make_float2(theirs.x + mine.x, theirs.y + mine.y);
    *reinterpret_cast<float2 *>(a.output + 2 * pk) = sum;
  }
  __syncthreads();
  uint64_t t2 = now_ns();
  if (threadIdx.x == 0) {
    uint64_t *row = a.trace + ((size_t)(call % kTraceCalls) * kMaxBlocks + block) * 3;
    row[0] = t0;
    row[1] = t1;
    row[2] = t2;
  }
  for (int s = block + a.nblocks * threadIdx.x; s < kMaxBlocks; s += a.nblocks * blockDim.x) {
    a.seq[s] = seq + 1;
    a.calls[s] = call + 1;
  }
}

struct Gpu {
  cudaStream_t stream;
  float *input, *output;
  char *push;
  uint64_t *seq, *trace;
  uint32_t *calls, *failed;
  cudaEvent_t start, stop;
};

static Gpu gpus[2];
static uint32_t *abort_host;

struct Variant {
  const char *name;
  int nblocks, fence, backoff_ns, pdl, one_poller, graph;
  uint64_t abort_period_ns;
};

static void launch(int g, const Variant &v, size_t count) {
  Args a = {};
  a.rank = g;
  a.nblocks = v.nblocks;
  a.input = gpus[g].input;
  a.output = gpus[g].output;
  a.count = count;
  a.push_local = gpus[g].push;
  a.push_peer = gpus[1 - g].push;
  a.seq = gpus[g].seq;
  a.calls = gpus[g].calls;
  a.trace = gpus[g].trace;
  a.failed = gpus[g].failed;
  uint32_t *abort_device;
  CHECK(cudaHostGetDevicePointer((void **)&abort_device, abort_host, 0));
  a.abort = abort_device;
  a.fence = v.fence;
  a.backoff_ns = v.backoff_ns;
  a.pdl = v.pdl;
  a.one_poller = v.one_poller;
  a.abort_period_ns = v.abort_period_ns;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(v.nblocks);
  config.blockDim = dim3(kThreads);
  config.stream = gpus[g].stream;
  cudaLaunchAttribute attribute;
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  config.attrs = &attribute;
  config.numAttrs = v.pdl ? 1 : 0;
  CHECK(cudaLaunchKernelEx(&config, push_kernel, a));
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

// Runs `calls` calls on both GPUs (one graph per GPU, or eager launches alternating), returns
// the slower GPU's time per call in us; fills the trace summary of GPU 0 for the last run.
static double run(const Variant &v, size_t count, int calls) {
  cudaGraphExec_t execs[2];
  if (v.graph) {
    for (int g = 0; g < 2; g++) {
      CHECK(cudaSetDevice(g));
      cudaGraph_t graph;
      CHECK(cudaStreamBeginCapture(gpus[g].stream, cudaStreamCaptureModeRelaxed));
      for (int i = 0; i < calls; i++) launch(g, v, count);
      CHECK(cudaStreamEndCapture(gpus[g].stream, &graph));
      CHECK(cudaGraphInstantiate(&execs[g], graph, 0));
      CHECK(cudaGraphDestroy(graph));
    }
  }
  for (int g = 0; g < 2; g++) {
    CHECK(cudaSetDevice(g));
    CHECK(cudaEventRecord(gpus[g].start, gpus[g].stream));
  }
  if (v.graph) {
    for (int g = 0; g < 2; g++) {
      CHECK(cudaSetDevice(g));
      CHECK(cudaGraphLaunch(execs[g], gpus[g].stream));
    }
  } else {
    for (int i = 0; i < calls; i++) {
      for (int g = 0; g < 2; g++) {
        CHECK(cudaSetDevice(g));
        launch(g, v, count);
      }
    }
  }
  double slowest = 0;
  for (int g = 0; g < 2; g++) {
    CHECK(cudaSetDevice(g));
    CHECK(cudaEventRecord(gpus[g].stop, gpus[g].stream));
  }
  for (int g = 0; g < 2; g++) {
    CHECK(cudaSetDevice(g));
    CHECK(cudaEventSynchronize(gpus[g].stop));
    float ms;
    CHECK(cudaEventElapsedTime(&ms, gpus[g].start, gpus[g].stop));
    if (ms > slowest) slowest = ms;
    if (v.graph) CHECK(cudaGraphExecDestroy(execs[g]));
    uint32_t failed;
    CHECK(cudaMemcpy(&failed, gpus[g].failed, 4, cudaMemcpyDeviceToHost));
    if (failed) {
      printf("  GPU %d: a wait timed out (2 s)\n", g);
      CHECK(cudaMemset(gpus[g].failed, 0, 4));
    }
  }
  return slowest * 1000.0 / calls;
}

// Per call, on GPU g: its kernel's span (first CTA start to last CTA end), the worst CTA's
// wait after its stores, and the gap since the previous call's end. Medians and maxima.
static void summarize(int g, const Variant &v, int calls, char *line, size_t size) {
  static uint64_t trace[kTraceCalls * kMaxBlocks * 3];
  CHECK(cudaSetDevice(g));
  CHECK(cudaMemcpy(trace, gpus[g].trace, sizeof(trace), cudaMemcpyDeviceToHost));
  uint32_t call_counter;
  CHECK(cudaMemcpy(&call_counter, gpus[g].calls, 4, cudaMemcpyDeviceToHost));
  int n = calls < kTraceCalls ? calls : kTraceCalls;
  double span[kTraceCalls], wait[kTraceCalls], gap[kTraceCalls];
  uint64_t prev_end = 0;
  int ngap = 0;
  for (int i = 0; i < n; i++) {
    uint32_t c = call_counter - n + i;
    const uint64_t *rows = trace + (size_t)(c % kTraceCalls) * kMaxBlocks * 3;
    uint64_t first = ~0ull, last = 0, worst = 0;
    for (int b = 0; b < v.nblocks; b++) {
      const uint64_t *r = rows + b * 3;
      if (r[0] < first) first = r[0];
      if (r[2] > last) last = r[2];
      if (r[2] - r[1] > worst) worst = r[2] - r[1];
    }
    span[i] = (last - first) * 1e-3;
    wait[i] = worst * 1e-3;
    if (prev_end) gap[ngap++] = ((double)first - (double)prev_end) * 1e-3;
    prev_end = last;
  }
  qsort(span, n, sizeof(double), cmp_double);
  qsort(wait, n, sizeof(double), cmp_double);
  qsort(gap, ngap, sizeof(double), cmp_double);
  snprintf(line, size, "gpu%d span %.2f/%.2f wait %.2f/%.2f gap %.2f/%.2f", g, span[n / 2],
           span[n - 1], wait[n / 2], wait[n - 1], ngap ? gap[ngap / 2] : 0.0,
           ngap ? gap[ngap - 1] : 0.0);
}

int main(int argc, char **argv) {
  int n = 0;
  CHECK(cudaGetDeviceCount(&n));
  if (n < 2) {
    printf("needs 2 GPUs\n");
    return 77;
  }
  CHECK(cudaHostAlloc((void **)&abort_host, 4, cudaHostAllocMapped | cudaHostAllocPortable));
  *abort_host = 0;
  const size_t max_count = (256u << 10) / 4;
  for (int g = 0; g < 2; g++) {
    CHECK(cudaSetDevice(g));
    cudaError_t peer_error = cudaDeviceEnablePeerAccess(1 - g, 0);
    if (peer_error != cudaErrorPeerAccessAlreadyEnabled) CHECK(peer_error);
    cudaGetLastError();
    Gpu &G = gpus[g];
    CHECK(cudaStreamCreateWithFlags(&G.stream, cudaStreamNonBlocking));
    CHECK(cudaMalloc(&G.input, max_count * 4));
    CHECK(cudaMalloc(&G.output, max_count * 4));
    float *host = (float *)malloc(max_count * 4);
    for (size_t i = 0; i < max_count; i++) host[i] = (float)((i * 7 + g * 3) % 5) - 2.0f;
    CHECK(cudaMemcpy(G.input, host, max_count * 4, cudaMemcpyHostToDevice));
    free(host);
    CHECK(cudaMalloc(&G.push, 4 * kSlotBytes));
    CHECK(cudaMemset(G.push, 0, 4 * kSlotBytes));
    CHECK(cudaMalloc(&G.seq, kMaxBlocks * 8));
    CHECK(cudaMemset(G.seq, 0, kMaxBlocks * 8));
    CHECK(cudaMalloc(&G.calls, kMaxBlocks * 4));
    CHECK(cudaMemset(G.calls, 0, kMaxBlocks * 4));
    CHECK(cudaMalloc(&G.trace, (size_t)kTraceCalls * kMaxBlocks * 3 * 8));
    CHECK(cudaMalloc(&G.failed, 4));
    CHECK(cudaMemset(G.failed, 0, 4));
    CHECK(cudaEventCreate(&G.start));
    CHECK(cudaEventCreate(&G.stop));
  }
  for (int g = 0; g < 2; g++) {
    CHECK(cudaSetDevice(g));
    CHECK(cudaDeviceSynchronize());
  }
  const size_t sizes[] = {8u << 10, 32u << 10, 128u << 10, 256u << 10};
  // name, nblocks (0: one per 2 KiB up to 32, as nvlar), fence, backoff, pdl, one_poller, graph, abort
  const Variant variants[] = {
      {"nvlar-like", 0, 0, 0, 1, 0, 1, 50000},
      {"no-pdl", 0, 0, 0, 0, 0, 1, 50000},
      {"eager", 0, 0, 0, 1, 0, 0, 50000},
      {"no-abort-check", 0, 0, 0, 1, 0, 1, 0},
      {"fence", 0, 1, 0, 1, 0, 1, 50000},
      {"backoff-64ns", 0, 0, 64, 1, 0, 1, 50000},
      {"one-poller", 0, 0, 0, 1, 1, 1, 50000},
      {"ctas-1", 1, 0, 0, 1, 0, 1, 50000},
      {"ctas-4", 4, 0, 0, 1, 0, 1, 50000},
      {"ctas-8", 8, 0, 0, 1, 0, 1, 50000},
      {"ctas-32", 32, 0, 0, 1, 0, 1, 50000},
      {"fence+no-pdl", 0, 1, 0, 0, 0, 1, 50000},
  };
  const int calls = argc > 1 ? atoi(argv[1]) : 50, reps = 7;
  printf("%-16s %8s %5s %9s %9s   trace of the last run (us; median/max per call)\n", "variant",
         "bytes", "ctas", "med_us", "max_us");
  for (const Variant &base : variants) {
    for (size_t bytes : sizes) {
      Variant v = base;
      if (v.nblocks == 0) {
        size_t want = (bytes + 2047) / 2048;
        v.nblocks = want > 32 ? 32 : (int)want;
      }
      size_t count = bytes / 4;
      run(v, count, 4);  // warm-up
      double t[reps];
      for (int r = 0; r < reps; r++) t[r] = run(v, count, calls);
      qsort(t, reps, sizeof(double), cmp_double);
      char l0[256], l1[256];
      summarize(0, v, calls, l0, sizeof(l0));
      summarize(1, v, calls, l1, sizeof(l1));
      printf("%-16s %8zu %5d %9.2f %9.2f   %s | %s\n", v.name, bytes, v.nblocks, t[reps / 2],
             t[reps - 1], l0, l1);
      fflush(stdout);
    }
  }
  // Correctness of the last variant's output on GPU 0 (sum of both inputs).
  float *out = (float *)malloc(max_count * 4);
  CHECK(cudaSetDevice(0));
  CHECK(cudaMemcpy(out, gpus[0].output, (256u << 10), cudaMemcpyDeviceToHost));
  size_t wrong = 0;
  for (size_t i = 0; i < max_count; i++) {
    float want = ((float)((i * 7) % 5) - 2.0f) + ((float)((i * 7 + 3) % 5) - 2.0f);
    wrong += out[i] != want;
  }
  printf("last output: %zu of %zu wrong\n", wrong, max_count);
  return wrong ? 1 : 0;
}
