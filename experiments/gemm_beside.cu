// Stand-alone probe (not project code): what a bf16 GEMM loses to a neighbour on another stream
// of the same GPU, for neighbours that do nothing but hold SMs, that poll a flag like a waiting
// all-reduce CTA, that stream memory, that are short kernels back to back, and the copy engine.
// nvlar-bench --overlap found a GEMM keeping 62-88% of its throughput beside nvlar's kernels on
// one GPU whatever the kernel and nearly whatever the CTA count, the copy-engine two-shot
// included; this says which part of that any neighbour costs.
// Build: nvcc -O3 -arch=sm_90 -o gemm_beside gemm_beside.cu -lcublas ; run: ./gemm_beside [n]
// Output: one line per neighbour and CTA count: the GEMM's median TFLOP/s beside it and the
// share of its median alone (measured before and after all neighbours).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
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
#define CHECK_BLAS(x)                                                        \
  do {                                                                       \
    cublasStatus_t s_ = (x);                                                 \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                       \
      fprintf(stderr, "%s:%d %s: cuBLAS %d\n", __FILE__, __LINE__, #x, (int)s_); \
      exit(1);                                                               \
    }                                                                        \
  } while (0)

__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Holds its SM until `ns` have passed, sleeping: no memory traffic, no issue slots to speak of.
// (Its dynamic shared memory, when launched with some, is only held.)
__global__ void hold_sleeping(uint64_t ns) {
  const uint64_t end = global_ns() + ns;
  while (global_ns() < end) __nanosleep(1000);
}

// Polls a word in global memory until `ns` have passed, as a CTA waiting for a peer's flag
// does (acquire loads at system scope, one thread per CTA, the others at a barrier).
__global__ void hold_polling(const uint64_t *flag, uint64_t ns, uint64_t *sink) {
  const uint64_t end = global_ns() + ns;
  uint64_t seen = 0;
  if (threadIdx.x == 0) {
    while (global_ns() < end) {
      uint64_t v;
      asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(flag) : "memory");
      seen += v;
    }
  }
  __syncthreads();
  if (seen == 1) *sink = seen;
}

// Copies between two device buffers, grid-stride, four 16-byte loads in flight per thread,
// until `ns` have passed: a CTA of a bandwidth-bound all-reduce.
__global__ void hold_streaming(uint4 *dst, const uint4 *src, size_t n, uint64_t ns) {
  const uint64_t end = global_ns() + ns;
  const size_t stride = (size_t)gridDim.x * blockDim.x;
  while (global_ns() < end) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    for (; i + 3 * stride < n; i += 4 * stride) {
      uint4 a = src[i], b = src[i + stride], c = src[i + 2 * stride], d = src[i + 3 * stride];
      dst[i] = a;
      dst[i + stride] = b;
      dst[i + 2 * stride] = c;
      dst[i + 3 * stride] = d;
    }
  }
}

struct Gemm {
  int n;
  cublasHandle_t handle;
  cudaStream_t stream;
  __nv_bfloat16 *a, *b, *c;
  std::vector<cudaEvent_t> marks;
  void launch() {
    const float alpha = 1.0f, beta = 0.0f;
    CHECK_BLAS(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b,
                            CUDA_R_16BF, n, &beta, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
  }
  double tflops(float ms) const { return 2.0 * n * (double)n * n / (ms * 1e-3) / 1e12; }
};

static float elapsed(cudaEvent_t a, cudaEvent_t b) {
  float ms;
  CHECK(cudaEventElapsedTime(&ms, a, b));
  return ms;
}

static double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Runs `gemms` GEMMs after two warm-ups; with a neighbour (`beside`: it enqueues its work on
// `side` and returns), keeps only GEMMs that ended before the neighbour did. Returns the
// median ms per GEMM and the number kept.
template <typename Neighbour>
static double gemm_ms(Gemm &g, cudaStream_t side, int gemms, Neighbour neighbour, int *kept,
                      bool beside = true) {
  cudaEvent_t side_start, side_end;
  CHECK(cudaEventCreate(&side_start));
  CHECK(cudaEventCreate(&side_end));
  CHECK(cudaEventRecord(side_start, side));
  neighbour();
  CHECK(cudaEventRecord(side_end, side));
  for (int i = 0; i < 2; i++) g.launch();
  for (int i = 0; i < gemms; i++) {
    CHECK(cudaEventRecord(g.marks[i], g.stream));
    g.launch();
  }
  CHECK(cudaEventRecord(g.marks[gemms], g.stream));
  CHECK(cudaDeviceSynchronize());
  std::vector<double> ms;
  const float side_ms = elapsed(side_start, side_end);
  for (int i = 0; i < gemms; i++) {
    if (!beside || elapsed(side_start, g.marks[i + 1]) <= side_ms) ms.push_back(elapsed(g.marks[i], g.marks[i + 1]));
  }
  *kept = (int)ms.size();
  CHECK(cudaEventDestroy(side_start));
  CHECK(cudaEventDestroy(side_end));
  return median(ms);
}

int main(int argc, char **argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 8192;
  // GEMMs per cell: more make each cell long enough for nvidia-smi's samples to fall in it.
  const int gemms = argc > 2 ? atoi(argv[2]) : 20;
  if (n < 256 || gemms < 5) {
    fprintf(stderr, "usage: gemm_beside [N >= 256] [GEMMS per cell >= 5]\n");
    return 2;
  }
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  printf("# %s, %d SMs, bf16 GEMM %d x %d x %d (cuBLAS, fp32 accumulation), %d GEMMs per cell\n",
         prop.name, prop.multiProcessorCount, n, n, n, gemms);
  Gemm g;
  g.n = n;
  g.marks.resize(gemms + 1);
  for (auto &e : g.marks) CHECK(cudaEventCreate(&e));
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
  cudaStream_t side;
  CHECK(cudaStreamCreateWithFlags(&side, cudaStreamNonBlocking));
  const size_t copy_bytes = 512ull << 20;
  uint4 *src, *dst;
  uint64_t *flag, *sink;
  CHECK(cudaMalloc(&src, copy_bytes));
  CHECK(cudaMalloc(&dst, copy_bytes));
  CHECK(cudaMemset(src, 1, copy_bytes));
  CHECK(cudaMalloc(&flag, 8));
  CHECK(cudaMalloc(&sink, 8));
  CHECK(cudaMemset(flag, 0, 8));

  int kept = 0;
  auto none = [] {};
  // Alone, twice, to see the clocks settle.
  gemm_ms(g, side, gemms, none, &kept, false);
  const double alone_before = gemm_ms(g, side, gemms, none, &kept, false);
  // The neighbour runs long enough to outlast the GEMMs: twice their time alone.
  const int hold_gemms = 2 * gemms;
  const uint64_t hold_ns = (uint64_t)(alone_before * 1e6 * hold_gemms);
  printf("neighbour\tctas\tthreads\tshared_kib\tgemm_tflops\tshare_of_alone\tgemms_kept\t"
         "alone_tflops\tshare_of_next_alone\n");
  printf("alone (before)\t0\t0\t0\t%.1f\t1.000\t%d\t%.1f\t1.000\n", g.tflops((float)alone_before),
         kept, g.tflops((float)alone_before));
  // Each cell also against the GEMM alone measured right after it (share_of_next_alone): the
  // clocks move by a few percent from cell to cell as the GPU keeps within its power limit,
  // which the first alone measurement cannot follow.
  auto row = [&](const char *what, int ctas, int threads, int shared_kib, double ms) {
    const int kept_beside = kept;
    const double alone_next = gemm_ms(g, side, gemms, [] {}, &kept, false);
    printf("%s\t%d\t%d\t%d\t%.1f\t%.3f\t%d\t%.1f\t%.3f\n", what, ctas, threads, shared_kib,
           g.tflops((float)ms), alone_before / ms, kept_beside, g.tflops((float)alone_next),
           alone_next / ms);
    fflush(stdout);
  };
  const int counts[] = {1, 2, 4, 8, 16, 32, 64};
  for (int ctas : counts) {
    double ms = gemm_ms(g, side, gemms, [&] { hold_sleeping<<<ctas, 256, 0, side>>>(hold_ns); }, &kept);
    row("sleeping", ctas, 256, 0, ms);
  }
  for (int ctas : counts) {
    double ms = gemm_ms(g, side, gemms, [&] { hold_sleeping<<<ctas, 32, 0, side>>>(hold_ns); }, &kept);
    row("sleeping", ctas, 32, 0, ms);
  }
  CHECK(cudaFuncSetAttribute(hold_sleeping, cudaFuncAttributeMaxDynamicSharedMemorySize, 200 << 10));
  for (int ctas : {8, 16}) {
    double ms = gemm_ms(g, side, gemms, [&] { hold_sleeping<<<ctas, 256, 200 << 10, side>>>(hold_ns); }, &kept);
    row("sleeping", ctas, 256, 200, ms);
  }
  for (int ctas : counts) {
    double ms = gemm_ms(g, side, gemms, [&] { hold_polling<<<ctas, 256, 0, side>>>(flag, hold_ns, sink); }, &kept);
    row("polling", ctas, 256, 0, ms);
  }
  for (int ctas : counts) {
    double ms = gemm_ms(g, side, gemms, [&] {
      hold_streaming<<<ctas, 256, 0, side>>>(dst, src, copy_bytes / 16, hold_ns);
    }, &kept);
    row("streaming", ctas, 256, 0, ms);
  }
  // Short kernels back to back: each holds its CTAs for 10 us (an all-reduce of a few MiB),
  // as many as outlast the GEMMs.
  for (int ctas : {8, 16, 64}) {
    const int launches = (int)(hold_ns / 10000);
    double ms = gemm_ms(g, side, gemms, [&] {
      for (int i = 0; i < launches; i++) hold_sleeping<<<ctas, 256, 0, side>>>(10000);
    }, &kept);
    row("10 us kernels", ctas, 256, 0, ms);
  }
  {
    // The copy engine, no SMs: device-to-device copies of 512 MiB back to back.
    float copy_ms;
    cudaEvent_t a, b;
    CHECK(cudaEventCreate(&a));
    CHECK(cudaEventCreate(&b));
    CHECK(cudaEventRecord(a, side));
    CHECK(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice, side));
    CHECK(cudaEventRecord(b, side));
    CHECK(cudaStreamSynchronize(side));
    copy_ms = elapsed(a, b);
    const int copies = (int)(alone_before * hold_gemms / copy_ms) + 1;
    double ms = gemm_ms(g, side, gemms, [&] {
      for (int i = 0; i < copies; i++) CHECK(cudaMemcpyAsync(dst, src, copy_bytes, cudaMemcpyDeviceToDevice, side));
    }, &kept);
    row("copy engine", 0, 0, 0, ms);
    printf("# copy engine alone: %.1f GB/s read + written\n", 2.0 * copy_bytes / (copy_ms * 1e-3) / 1e9);
  }
  const double alone_after = gemm_ms(g, side, gemms, none, &kept, false);
  printf("alone (after)\t0\t0\t0\t%.1f\t%.3f\t%d\n", g.tflops((float)alone_after), alone_before / alone_after, kept);
  return 0;
}
