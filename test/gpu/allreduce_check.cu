#include "allreduce_check.h"

#include <math.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

namespace {

enum { I8, U8, I32, U32, I64, U64, F16, F32, F64, BF16, E4M3, E5M2 };
enum { SUM, PROD, MAX, MIN, AVG };

__host__ __device__ size_t type_size(int type) {
  switch (type) {
    case I8: case U8: case E4M3: case E5M2: return 1;
    case F16: case BF16: return 2;
    case I32: case U32: case F32: return 4;
    default: return 8;
  }
}

__host__ __device__ bool is_float(int type) { return type >= F16; }
__host__ __device__ bool is_signed_int(int type) { return type == I8 || type == I32 || type == I64; }

__device__ uint64_t mix(uint64_t x) {  // splitmix64
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Largest magnitude of a float input such that the sum over 8 ranks stays exact in the type.
__device__ int float_range(int type) {
  switch (type) {
    case E5M2: return 1;   // |sum| <= 8: exact with 2 mantissa bits
    case E4M3: return 2;   // |sum| <= 16: exact with 3 mantissa bits
    case BF16: return 32;  // |sum| <= 256
    case F16: return 64;   // |sum| <= 512
    default: return 1000;
  }
}

// Rank r's input i: raw bits for integers, a small integer value for floats.
__device__ uint64_t input_bits(uint64_t seed, int rank, size_t i) {
  return mix(seed ^ mix(((uint64_t)rank << 48) ^ (uint64_t)i));
}

__device__ double input_float(uint64_t bits, int type, int op) {
  if (op == PROD) {
    const double choices[4] = {-2.0, -1.0, 1.0, 2.0};
    return choices[bits & 3];
  }
  int range = float_range(type);
  return (double)(int64_t)(bits % (uint64_t)(2 * range + 1)) - range;
}

// Stores a double (exactly representable, or to be rounded) as the type's bits.
__device__ uint64_t float_to_bits(double x, int type) {
  switch (type) {
    case F16: return __half_as_ushort(__double2half(x));
    case BF16: return __bfloat16_as_ushort(__double2bfloat16(x));
    case F32: return __float_as_uint((float)x);
    case F64: return (uint64_t)__double_as_longlong(x);
    case E4M3: return __nv_cvt_double_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
    default: return __nv_cvt_double_to_fp8(x, __NV_SATFINITE, __NV_E5M2);
  }
}

__device__ double bits_to_float(uint64_t bits, int type) {
  switch (type) {
    case F16: return __half2float(__ushort_as_half((unsigned short)bits));
    case BF16: return __bfloat162float(__ushort_as_bfloat16((unsigned short)bits));
    case F32: return __uint_as_float((unsigned)bits);
    case F64: return __longlong_as_double((long long)bits);
    case E4M3: return __half2float(__half(__nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)bits, __NV_E4M3)));
    default: return __half2float(__half(__nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)bits, __NV_E5M2)));
  }
}

__device__ int mantissa_bits(int type) {
  switch (type) {
    case F16: return 10;
    case BF16: return 7;
    case F32: return 23;
    case F64: return 52;
    case E4M3: return 3;
    default: return 2;
  }
}

__device__ uint64_t width_mask(int type) {
  size_t bytes = type_size(type);
  return bytes == 8 ? ~0ull : ((1ull << (8 * bytes)) - 1);
}

__device__ int64_t sign_extend(uint64_t bits, int type) {
  int shift = 64 - 8 * (int)type_size(type);
  return (int64_t)(bits << shift) >> shift;
}

__device__ uint64_t load_bits(const void *buffer, size_t i, int type) {
  const unsigned char *p = (const unsigned char *)buffer + i * type_size(type);
  uint64_t bits = 0;
  for (size_t b = 0; b < type_size(type); b++) bits |= (uint64_t)p[b] << (8 * b);
  return bits;
}

__device__ void store_bits(void *buffer, size_t i, int type, uint64_t bits) {
  unsigned char *p = (unsigned char *)buffer + i * type_size(type);
  for (size_t b = 0; b < type_size(type); b++) p[b] = (unsigned char)(bits >> (8 * b));
}

// Input bits of rank r at i, as stored in the buffer.
__device__ uint64_t input_value(uint64_t seed, int rank, size_t i, int type, int op) {
  uint64_t bits = input_bits(seed, rank, i);
  if (!is_float(type)) return bits & width_mask(type);
  return float_to_bits(input_float(bits, type, op), type);
}

// The reference result at i: exact bits, or (avg of floats) the exact value in *exact.
__device__ uint64_t reference(uint64_t seed, int nranks, size_t i, int type, int op,
                              double *exact) {
  if (is_float(type)) {
    double acc = 0;
    for (int r = 0; r < nranks; r++) {
      double x = bits_to_float(input_value(seed, r, i, type, op), type);
      if (r == 0) acc = x;
      else if (op == SUM || op == AVG) acc += x;
      else if (op == PROD) acc *= x;
      else if (op == MAX) acc = fmax(acc, x);
      else acc = fmin(acc, x);
    }
    if (op == AVG) acc /= nranks;
    *exact = acc;
    return float_to_bits(acc, type);
  }
  uint64_t mask = width_mask(type);
  uint64_t acc = 0;
  for (int r = 0; r < nranks; r++) {
    uint64_t x = input_value(seed, r, i, type, op);
    if (r == 0) { acc = x; continue; }
    if (op == SUM || op == AVG) acc = (acc + x) & mask;
    else if (op == PROD) acc = (acc * x) & mask;
    else {
      bool less = is_signed_int(type) ? sign_extend(acc, type) < sign_extend(x, type) : acc < x;
      if ((op == MAX) == less) acc = x;
    }
  }
  if (op == AVG) {
    acc = is_signed_int(type) ? (uint64_t)(sign_extend(acc, type) / nranks) & mask : acc / nranks;
  }
  *exact = is_signed_int(type) ? (double)sign_extend(acc, type) : (double)acc;
  return acc;
}

__global__ void fill_kernel(void *buffer, size_t count, int type, int op, int rank, uint64_t seed) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
    store_bits(buffer, i, type, input_value(seed, rank, i, type, op));
  }
}

struct Outputs {
  void *p[8];
};

__global__ void verify_kernel(Outputs outputs, int noutputs, size_t count, int type, int op,
                              int nranks, uint64_t seed, check_result *result) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count; i += (size_t)gridDim.x * blockDim.x) {
    double exact = 0;
    uint64_t want = reference(seed, nranks, i, type, op, &exact);
    uint64_t first = load_bits(outputs.p[0], i, type);
    bool ok;
    if (is_float(type) && op == AVG) {
      double got = bits_to_float(first, type);
      int exponent;
      frexp(exact == 0 ? 1.0 : exact, &exponent);
      double ulp = ldexp(1.0, exponent - 1 - mantissa_bits(type));
      ok = fabs(got - exact) <= 2 * ulp;
    } else {
      ok = first == want;
    }
    if (!ok) {
      if (atomicAdd(&result->mismatches, 1ull) == 0) {
        // Not necessarily the smallest index; the message only needs one example.
        result->first_bad = i;
        result->got = is_float(type) ? bits_to_float(first, type) : (double)first;
        result->want = exact;
      }
    }
    for (int o = 1; o < noutputs; o++) {
      if (load_bits(outputs.p[o], i, type) != first) atomicAdd(&result->rank_diffs, 1ull);
    }
  }
  // Guards around every output.
  size_t bytes = count * type_size(type);
  for (int o = 0; o < noutputs; o++) {
    const unsigned char *p = (const unsigned char *)outputs.p[o];
    for (size_t g = blockIdx.x * (size_t)blockDim.x + threadIdx.x; g < 2 * CHECK_GUARD_BYTES; g += (size_t)gridDim.x * blockDim.x) {
      const unsigned char *at = g < CHECK_GUARD_BYTES ? p - CHECK_GUARD_BYTES + g : p + bytes + (g - CHECK_GUARD_BYTES);
      if (*at != CHECK_POISON_BYTE) atomicAdd(&result->guard_errors, 1ull);
    }
  }
}

int grid_for(size_t count) {
  size_t blocks = (count + 255) / 256;
  return blocks > 1024 ? 1024 : (blocks == 0 ? 1 : (int)blocks);
}

}  // namespace

extern "C" size_t check_type_size(int datatype) { return type_size(datatype); }

extern "C" const char *check_type_name(int datatype) {
  static const char *const names[] = {"int8", "uint8", "int32", "uint32", "int64", "uint64",
                                      "float16", "float32", "float64", "bfloat16", "fp8e4m3", "fp8e5m2"};
  return datatype >= 0 && datatype < 12 ? names[datatype] : "?";
}

extern "C" const char *check_op_name(int op) {
  static const char *const names[] = {"sum", "prod", "max", "min", "avg"};
  return op >= 0 && op < 5 ? names[op] : "?";
}

extern "C" cudaError_t check_fill(void *buffer, size_t count, int datatype, int op, int rank,
                                  int nranks, uint64_t seed, cudaStream_t stream) {
  (void)nranks;
  if (count == 0) return cudaSuccess;
  fill_kernel<<<grid_for(count), 256, 0, stream>>>(buffer, count, datatype, op, rank, seed);
  return cudaGetLastError();
}

extern "C" cudaError_t check_verify(void *const *outputs, int noutputs, size_t count,
                                    int datatype, int op, int nranks, uint64_t seed,
                                    check_result *result, cudaStream_t stream) {
  if (noutputs < 1 || noutputs > 8) return cudaErrorInvalidValue;
  Outputs all = {};
  for (int o = 0; o < noutputs; o++) all.p[o] = outputs[o];
  verify_kernel<<<grid_for(count), 256, 0, stream>>>(all, noutputs, count, datatype, op, nranks,
                                                     seed, result);
  return cudaGetLastError();
}

namespace {
__global__ void spin_kernel(uint64_t ns) {
  uint64_t start;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  for (;;) {
    uint64_t now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    if (now - start >= ns) break;
  }
}
}  // namespace

extern "C" cudaError_t check_spin(uint64_t ns, cudaStream_t stream) {
  spin_kernel<<<1, 1, 0, stream>>>(ns);
  return cudaGetLastError();
}

namespace {
__device__ uint64_t now_ns() {
  uint64_t now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  return now;
}

// One kernel of the rendezvous: counts itself in, then waits until all `n` have come (met), a
// peer has given up, or `bound_ns` has passed (gives up). words: [0] arrived, [1] met, [2] a
// kernel gave up (so that the later ones of a serialised run do not wait the bound again).
__global__ void rendezvous_kernel(unsigned int *words, unsigned int n, uint64_t bound_ns) {
  atomicAdd(&words[0], 1u);
  const uint64_t start = now_ns();
  for (;;) {
    if (atomicAdd(&words[0], 0u) >= n) {
      atomicAdd(&words[1], 1u);
      return;
    }
    if (atomicAdd(&words[2], 0u) != 0) return;
    if (now_ns() - start >= bound_ns) {
      atomicExch(&words[2], 1u);
      return;
    }
  }
}
}  // namespace

extern "C" cudaError_t check_concurrent(const cudaStream_t *streams, int n, int *concurrent) {
  // Seconds: the kernels of ranks on separate streams start within microseconds of each other
  // where CUDA runs them concurrently; two seconds is only ever reached when it does not.
  const uint64_t bound_ns = 2000000000ull;
  *concurrent = 0;
  if (n < 1) return cudaErrorInvalidValue;
  unsigned int *words = NULL, met = 0;
  cudaError_t error = cudaMalloc((void **)&words, 3 * sizeof(unsigned int));
  if (error != cudaSuccess) return error;
  error = cudaMemset(words, 0, 3 * sizeof(unsigned int));
  if (error == cudaSuccess) error = cudaDeviceSynchronize();
  for (int i = 0; i < n && error == cudaSuccess; i++) {
    rendezvous_kernel<<<1, 1, 0, streams[i]>>>(words, (unsigned int)n, bound_ns);
    error = cudaGetLastError();
  }
  cudaError_t sync = cudaDeviceSynchronize();
  if (error == cudaSuccess) error = sync;
  if (error == cudaSuccess) {
    error = cudaMemcpy(&met, &words[1], sizeof(met), cudaMemcpyDeviceToHost);
  }
  cudaError_t freed = cudaFree(words);
  if (error == cudaSuccess) error = freed;
  if (error == cudaSuccess) *concurrent = met == (unsigned int)n;
  return error;
}

extern "C" cudaError_t check_load(void) {
  cudaFuncAttributes attributes;
  cudaError_t error = cudaFuncGetAttributes(&attributes, fill_kernel);
  if (error == cudaSuccess) error = cudaFuncGetAttributes(&attributes, verify_kernel);
  if (error == cudaSuccess) error = cudaFuncGetAttributes(&attributes, spin_kernel);
  if (error == cudaSuccess) error = cudaFuncGetAttributes(&attributes, rendezvous_kernel);
  return error;
}
