// Superseded by copy_beside.cu (docs/results.md, "What the copy-engine two-shot waits for"):
// the median over 40 GEMMs queued up front hid stalls of a whole GEMM in a few repetitions.
// Stand-alone probe (not project code): how long each step of a chain of short kernels and
// device-to-device copies takes on a stream beside a bf16 GEMM on another stream of the same
// GPU, at the side stream's default and greatest priority, issued eagerly and as a graph.
// Why: beside a GEMM the copy-engine two-shot (kernels/ce_twoshot.cuh: per call a meet kernel,
// then per chunk copies, a reduce kernel, copies, a meet kernel, copies, and a done kernel) ran
// 11-59x slower than alone at either priority, where the push two-shot (one kernel per call)
// ran only 1.2-3x slower once its stream had the greatest priority (docs/results.md). This
// says which step waits: the kernels (for SMs), the copies, or the chain's hand-overs.
// Build: nvcc -O3 -arch=sm_90 -std=c++17 -o chain_beside chain_beside.cu -lcublas
// Run:   ./chain_beside [GEMM side, default 8192] [copy bytes, default 2097152]
// Output: one line per neighbour, priority and issue mode: median µs per step alone and beside
// the GEMM, and their ratio.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#define CHECK(x)                                                                          \
  do {                                                                                    \
    cudaError_t e_ = (x);                                                                 \
    if (e_ != cudaSuccess) {                                                              \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)
#define CHECK_BLAS(x)                                                            \
  do {                                                                           \
    cublasStatus_t s_ = (x);                                                     \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                           \
      fprintf(stderr, "%s:%d %s: cuBLAS %d\n", __FILE__, __LINE__, #x, (int)s_); \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

// A kernel that does almost nothing: each CTA adds one to a word, so it cannot be elided.
__global__ void tiny(unsigned *word) {
  if (threadIdx.x == 0) atomicAdd(word, 1u);
}

// The same holding dynamic shared memory (launched with 100 KiB): it cannot share an SM with a
// GEMM CTA that holds most of the SM's shared memory, so it waits for an SM to come free.
__global__ void tiny_heavy(unsigned *word) {
  extern __shared__ unsigned scratch[];
  if (threadIdx.x == 0) {
    scratch[0] = 1;
    atomicAdd(word, scratch[0]);
  }
}

// Each of the grid's CTAs arrives and waits (at most 10 ms) until every CTA of its generation
// has: a meet, as the emulated ranks' meet kernel is, whose CTAs must all be resident at once.
__global__ void meet(unsigned *word) {
  if (threadIdx.x == 0) {
    const unsigned n = gridDim.x;
    const unsigned old = atomicAdd(word, 1u);
    const unsigned target = (old / n + 1) * n;
    uint64_t start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
      asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (atomicAdd(word, 0u) < target && now - start < 10000000ull);
  }
}

struct Gemm {
  int n;
  cublasHandle_t handle;
  cudaStream_t stream;
  __nv_bfloat16 *a, *b, *c;
  void launch() {
    const float alpha = 1.0f, beta = 0.0f;
    CHECK_BLAS(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b,
                            CUDA_R_16BF, n, &beta, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
  }
};

static float elapsed_ms(cudaEvent_t a, cudaEvent_t b) {
  float ms;
  CHECK(cudaEventElapsedTime(&ms, a, b));
  return ms;
}

static double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// What the side stream runs, `reps` times, each bracketed by events: eagerly (the steps enqueued
// one by one) or as one graph launch of the same steps.
struct Neighbour {
  std::string name;
  int steps;  // kernels and copies per repetition, to give µs per step
  std::function<void(cudaStream_t)> enqueue;
};

// Median µs per repetition of `n` on `side`: alone, or while GEMMs run back to back on g's
// stream (the side work gated behind the first GEMM). A repetition that never ran while the
// GEMMs did leaves `kept` at 0 and the median at 0.
static double time_side(Gemm &g, cudaStream_t side, const Neighbour &n, bool graph, bool beside,
                        int reps, int *kept) {
  cudaGraphExec_t exec = nullptr;
  if (graph) {
    cudaGraph_t captured;
    CHECK(cudaStreamBeginCapture(side, cudaStreamCaptureModeThreadLocal));
    n.enqueue(side);
    CHECK(cudaStreamEndCapture(side, &captured));
    CHECK(cudaGraphInstantiate(&exec, captured, 0));
    CHECK(cudaGraphDestroy(captured));
    CHECK(cudaGraphLaunch(exec, side));  // upload
    CHECK(cudaStreamSynchronize(side));
  }
  std::vector<cudaEvent_t> marks(reps + 1);
  for (auto &e : marks) CHECK(cudaEventCreate(&e));
  cudaEvent_t gate, last_gemm_start;
  CHECK(cudaEventCreateWithFlags(&gate, cudaEventDisableTiming));
  CHECK(cudaEventCreate(&last_gemm_start));
  // The GEMMs are enqueued first, the side work gated behind the first: while the host
  // enqueues the side work (thousands of calls for the chains), GEMMs are already queued, so
  // the side work never finds the GPU idle. Only repetitions that ended before the last GEMM
  // started count.
  const int gemms = beside ? 40 : 0;
  for (int i = 0; i < gemms; i++) {
    if (i == gemms - 1) CHECK(cudaEventRecord(last_gemm_start, g.stream));
    g.launch();
    if (i == 0) CHECK(cudaEventRecord(gate, g.stream));
  }
  if (beside) CHECK(cudaStreamWaitEvent(side, gate, 0));
  CHECK(cudaEventRecord(marks[0], side));
  for (int i = 0; i < reps; i++) {
    if (graph) {
      CHECK(cudaGraphLaunch(exec, side));
    } else {
      n.enqueue(side);
    }
    CHECK(cudaEventRecord(marks[i + 1], side));
  }
  CHECK(cudaDeviceSynchronize());
  std::vector<double> us;
  for (int i = 0; i < reps; i++) {
    if (beside && elapsed_ms(marks[0], marks[i + 1]) > elapsed_ms(marks[0], last_gemm_start)) break;
    us.push_back(1000.0 * elapsed_ms(marks[i], marks[i + 1]));
  }
  *kept = (int)us.size();
  for (auto &e : marks) CHECK(cudaEventDestroy(e));
  CHECK(cudaEventDestroy(gate));
  CHECK(cudaEventDestroy(last_gemm_start));
  if (exec) CHECK(cudaGraphExecDestroy(exec));
  return median(us);
}

int main(int argc, char **argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 8192;
  const size_t copy_bytes = argc > 2 ? strtoull(argv[2], nullptr, 0) : (2u << 20);
  if (n < 256 || copy_bytes < 256) {
    fprintf(stderr, "usage: chain_beside [N >= 256] [copy bytes >= 256]\n");
    return 2;
  }
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  int least = 0, greatest = 0;
  CHECK(cudaDeviceGetStreamPriorityRange(&least, &greatest));
  printf("# %s, %d SMs, bf16 GEMM %d x %d x %d (cuBLAS) on a default-priority stream; copies of "
         "%zu bytes; stream priorities %d (least) to %d (greatest)\n",
         prop.name, prop.multiProcessorCount, n, n, n, copy_bytes, least, greatest);
  Gemm g;
  g.n = n;
  CHECK(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking));
  CHECK_BLAS(cublasCreate(&g.handle));
  CHECK_BLAS(cublasSetStream(g.handle, g.stream));
  const size_t elems = (size_t)n * n;
  CHECK(cudaMalloc(&g.a, elems * 2));
  CHECK(cudaMalloc(&g.b, elems * 2));
  CHECK(cudaMalloc(&g.c, elems * 2));
  {
    // Values in [-1, 1), not zeros (zeros draw less power and run at higher clocks).
    std::vector<__nv_bfloat16> host(elems);
    uint32_t state = 12345u;
    for (auto &x : host) {
      state = state * 1664525u + 1013904223u;
      x = __float2bfloat16((float)(state >> 8) / (float)(1u << 23) - 1.0f);
    }
    CHECK(cudaMemcpy(g.a, host.data(), elems * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(g.b, host.data(), elems * 2, cudaMemcpyHostToDevice));
  }
  for (int i = 0; i < 5; i++) g.launch();
  CHECK(cudaDeviceSynchronize());

  unsigned *word;
  void *src, *dst;
  CHECK(cudaMalloc(&word, sizeof(unsigned)));
  CHECK(cudaMalloc(&src, copy_bytes));
  CHECK(cudaMalloc(&dst, copy_bytes));
  CHECK(cudaMemset(src, 1, copy_bytes));

  auto kernel = [word](int ctas) {
    return std::function<void(cudaStream_t)>([=](cudaStream_t s) {
      tiny<<<ctas, 128, 0, s>>>(word);
      CHECK(cudaGetLastError());
    });
  };
  std::function<void(cudaStream_t)> copy = [=](cudaStream_t s) {
    CHECK(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice, s));
  };
  std::function<void(cudaStream_t)> k1 = kernel(1);
  std::function<void(cudaStream_t)> k16 = kernel(16);
  const int heavy_smem = 100 << 10;
  CHECK(cudaFuncSetAttribute(tiny_heavy, cudaFuncAttributeMaxDynamicSharedMemorySize, heavy_smem));
  unsigned *meet_word;
  CHECK(cudaMalloc(&meet_word, sizeof(unsigned)));
  CHECK(cudaMemset(meet_word, 0, sizeof(unsigned)));
  auto heavy = [=](int ctas) {
    return std::function<void(cudaStream_t)>([=](cudaStream_t s) {
      tiny_heavy<<<ctas, 256, heavy_smem, s>>>(word);
      CHECK(cudaGetLastError());
    });
  };
  std::function<void(cudaStream_t)> h1 = heavy(1), h32 = heavy(32);
  std::function<void(cudaStream_t)> meet2 = [=](cudaStream_t s) {
    meet<<<2, 256, 0, s>>>(meet_word);
    CHECK(cudaGetLastError());
  };
  std::vector<Neighbour> neighbours = {
      {"kernel 1 CTA", 1, k1},
      {"kernel 16 CTAs", 1, k16},
      {"4 kernels (1 CTA) back to back", 4, [=](cudaStream_t s) { for (int i = 0; i < 4; i++) k1(s); }},
      {"copy", 1, copy},
      {"4 copies back to back", 4, [=](cudaStream_t s) { for (int i = 0; i < 4; i++) copy(s); }},
      // The copy-engine two-shot's shape for one chunk: kernel, copy, kernel, copy, kernel,
      // copy, kernel.
      {"chain k c k c k c k", 7, [=](cudaStream_t s) {
         k1(s);
         for (int i = 0; i < 3; i++) { copy(s); k16(s); }
       }},
      // Kernels that need an SM of their own (100 KiB of shared memory each).
      {"heavy kernel 1 CTA", 1, h1},
      {"heavy kernel 32 CTAs", 1, h32},
      {"heavy chain k c k c k c k", 7, [=](cudaStream_t s) {
         h1(s);
         for (int i = 0; i < 3; i++) { copy(s); h32(s); }
       }},
      // Two CTAs that wait for each other, as the emulated ranks' meet kernel.
      {"meet 2 CTAs", 1, meet2},
      {"meet chain m c m c m c m", 7, [=](cudaStream_t s) {
         meet2(s);
         for (int i = 0; i < 3; i++) { copy(s); meet2(s); }
       }},
  };
  printf("neighbour\tpriority\tissue\tsteps\talone_us\tbeside_us\tslowdown\tbeside_us_per_step\tkept\n");
  for (int priority : {least, greatest}) {
    cudaStream_t side;
    CHECK(cudaStreamCreateWithPriority(&side, cudaStreamNonBlocking, priority));
    for (const Neighbour &nb : neighbours) {
      for (bool graph : {false, true}) {
        int kept_alone = 0, kept = 0;
        const int reps = 200;
        double alone = time_side(g, side, nb, graph, false, reps, &kept_alone);
        double beside = time_side(g, side, nb, graph, true, reps, &kept);
        printf("%s\t%s\t%s\t%d\t%.2f\t%.2f\t%.1f\t%.2f\t%d\n", nb.name.c_str(),
               priority == greatest ? "greatest" : "default", graph ? "graph" : "eager", nb.steps,
               alone, beside, alone > 0 ? beside / alone : 0.0, beside / nb.steps, kept);
        fflush(stdout);
      }
    }
    CHECK(cudaStreamDestroy(side));
  }
  return 0;
}
