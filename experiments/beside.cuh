// What the stand-alone probes beside a GEMM (copy_beside.cu, streamwait_beside.cu) share: error
// checks, the GPU's clock, a kernel that holds every SM, and the bf16 GEMM fed beside them.
// Not project code; included by the probes, which still build with one nvcc line each.
#pragma once

#include <algorithm>
#include <chrono>
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
#define CHECK_BLAS(x)                                                            \
  do {                                                                           \
    cublasStatus_t s_ = (x);                                                     \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                           \
      fprintf(stderr, "%s:%d %s: cuBLAS %d\n", __FILE__, __LINE__, #x, (int)s_); \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

static float elapsed_ms(cudaEvent_t a, cudaEvent_t b) {
  float ms;
  CHECK(cudaEventElapsedTime(&ms, a, b));
  return ms;
}

// True once `e` completes within `ms` milliseconds.
static bool completes_within(cudaEvent_t e, int ms) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(ms)) {
    cudaError_t q = cudaEventQuery(e);
    if (q == cudaSuccess) return true;
    if (q != cudaErrorNotReady) CHECK(q);
  }
  return false;
}

static double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Two CTAs of 1024 threads per SM fill its thread slots (and half its shared memory each), so
// no other CTA fits anywhere until the host releases them (or 2 s pass).
__global__ void hold_sms(volatile unsigned *release, unsigned *arrived) {
  extern __shared__ unsigned char scratch[];
  if (threadIdx.x == 0) {
    scratch[0] = 1;
    atomicAdd(arrived, 1u);
    const uint64_t start = global_ns();
    while (*release == 0 && global_ns() - start < 2000000000ull) __nanosleep(2000);
  }
  __syncthreads();
}

struct Holder {
  int grid = 0, smem = 0;
  unsigned *release = nullptr, *arrived = nullptr;  // mapped host memory
  cudaStream_t stream;
  void init(const cudaDeviceProp &prop) {
    CHECK(cudaHostAlloc((void **)&release, sizeof(unsigned), cudaHostAllocMapped));
    CHECK(cudaHostAlloc((void **)&arrived, sizeof(unsigned), cudaHostAllocMapped));
    smem = (int)(prop.sharedMemPerMultiprocessor / 2) - 2048;
    CHECK(cudaFuncSetAttribute(hold_sms, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    int per_sm = 0;
    CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, hold_sms, 1024, smem));
    grid = per_sm * prop.multiProcessorCount;
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    printf("# holder: %d CTAs of 1024 threads and %d bytes of shared memory (%d per SM)\n", grid,
           smem, per_sm);
  }
  // True once every CTA is resident.
  bool hold() {
    *(volatile unsigned *)release = 0;
    *(volatile unsigned *)arrived = 0;
    hold_sms<<<grid, 1024, smem, stream>>>(release, arrived);
    CHECK(cudaGetLastError());
    const auto start = std::chrono::steady_clock::now();
    while (*(volatile unsigned *)arrived < (unsigned)grid) {
      if (std::chrono::steady_clock::now() - start > std::chrono::milliseconds(500)) return false;
    }
    return true;
  }
  void let_go() {
    *(volatile unsigned *)release = 1;
    CHECK(cudaStreamSynchronize(stream));
  }
};

struct Gemm {
  int n;
  cublasHandle_t handle;
  cudaStream_t stream;
  __nv_bfloat16 *a, *b, *c;
  std::vector<cudaEvent_t> marks;  // marks[i]: before GEMM i
  int launched = 0;
  void launch() {
    const float alpha = 1.0f, beta = 0.0f;
    CHECK_BLAS(cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b,
                            CUDA_R_16BF, n, &beta, c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
    CHECK(cudaEventRecord(marks[launched + 1], stream));
    launched++;
  }
  double tflops(double ms) const { return 2.0 * n * n * (double)n / (ms * 1e-3) / 1e12; }
  // An n-cube GEMM on its own stream, room for `gemms` GEMMs' marks; inputs in [-1, 1) (not
  // zeros, which draw less power and run at higher clocks).
  void setup(int side, int gemms) {
    n = side;
    marks.resize(gemms + 1);
    for (auto &e : marks) CHECK(cudaEventCreate(&e));
    CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    CHECK_BLAS(cublasCreate(&handle));
    CHECK_BLAS(cublasSetStream(handle, stream));
    const size_t elems = (size_t)n * n;
    CHECK(cudaMalloc(&a, elems * 2));
    CHECK(cudaMalloc(&b, elems * 2));
    CHECK(cudaMalloc(&c, elems * 2));
    std::vector<__nv_bfloat16> host(elems);
    uint32_t state = 12345u;
    for (auto &x : host) {
      state = state * 1664525u + 1013904223u;
      x = __float2bfloat16((float)(state >> 8) / (float)(1u << 23) - 1.0f);
    }
    CHECK(cudaMemcpy(a, host.data(), elems * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(b, host.data(), elems * 2, cudaMemcpyHostToDevice));
  }
  // The median of GEMMs 10-39 of 40 back to back: the GEMM alone.
  double alone_ms() {
    launched = 0;
    CHECK(cudaEventRecord(marks[0], stream));
    for (int i = 0; i < 40; i++) launch();
    CHECK(cudaStreamSynchronize(stream));
    std::vector<double> ms;
    for (int i = 10; i < 40; i++) ms.push_back(elapsed_ms(marks[i], marks[i + 1]));
    return median(ms);
  }
};
