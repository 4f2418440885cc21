// Element types and reduction operators of the all-reduce kernels, with NCCL's semantics.
//
// Each storage type T has an accumulator type: 16-bit and 8-bit floats accumulate in float
// and are rounded once at the end (so every rank, reducing in the same fixed rank order, gets
// the same bits); float and double accumulate in themselves; integers in themselves, with sum
// and product computed in the unsigned type of the same width so that overflow wraps as in
// NCCL instead of being undefined.
#pragma once

#include <stdint.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

namespace nvlar {

// fp8 values travel as raw bytes; these tags pick the format.
struct fp8_e4m3 { uint8_t bits; };
struct fp8_e5m2 { uint8_t bits; };

template <typename T> struct Elem;

template <typename T> struct IntElem {
  using Acc = T;
  static __device__ __forceinline__ Acc to_acc(T x) { return x; }
  static __device__ __forceinline__ T from_acc(Acc x) { return x; }
};
template <> struct Elem<int8_t> : IntElem<int8_t> { using Unsigned = uint8_t; };
template <> struct Elem<uint8_t> : IntElem<uint8_t> { using Unsigned = uint8_t; };
template <> struct Elem<int32_t> : IntElem<int32_t> { using Unsigned = uint32_t; };
template <> struct Elem<uint32_t> : IntElem<uint32_t> { using Unsigned = uint32_t; };
template <> struct Elem<int64_t> : IntElem<int64_t> { using Unsigned = uint64_t; };
template <> struct Elem<uint64_t> : IntElem<uint64_t> { using Unsigned = uint64_t; };

template <> struct Elem<float> {
  using Acc = float;
  static __device__ __forceinline__ Acc to_acc(float x) { return x; }
  static __device__ __forceinline__ float from_acc(Acc x) { return x; }
};
template <> struct Elem<double> {
  using Acc = double;
  static __device__ __forceinline__ Acc to_acc(double x) { return x; }
  static __device__ __forceinline__ double from_acc(Acc x) { return x; }
};
template <> struct Elem<__half> {
  using Acc = float;
  static __device__ __forceinline__ Acc to_acc(__half x) { return __half2float(x); }
  static __device__ __forceinline__ __half from_acc(Acc x) { return __float2half_rn(x); }
};
template <> struct Elem<__nv_bfloat16> {
  using Acc = float;
  static __device__ __forceinline__ Acc to_acc(__nv_bfloat16 x) { return __bfloat162float(x); }
  static __device__ __forceinline__ __nv_bfloat16 from_acc(Acc x) { return __float2bfloat16_rn(x); }
};
// fp8 rounds to nearest and saturates to the largest finite value rather than producing
// NaN (e4m3 has no infinity), as NCCL's fp8 reductions do.
template <> struct Elem<fp8_e4m3> {
  using Acc = float;
  static __device__ __forceinline__ Acc to_acc(fp8_e4m3 x) {
    return __half2float(__half(__nv_cvt_fp8_to_halfraw(x.bits, __NV_E4M3)));
  }
  static __device__ __forceinline__ fp8_e4m3 from_acc(Acc x) {
    return fp8_e4m3{__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)};
  }
};
template <> struct Elem<fp8_e5m2> {
  using Acc = float;
  static __device__ __forceinline__ Acc to_acc(fp8_e5m2 x) {
    return __half2float(__half(__nv_cvt_fp8_to_halfraw(x.bits, __NV_E5M2)));
  }
  static __device__ __forceinline__ fp8_e5m2 from_acc(Acc x) {
    return fp8_e5m2{__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E5M2)};
  }
};

template <typename T> struct IsInteger { static constexpr bool value = false; };
template <> struct IsInteger<int8_t> { static constexpr bool value = true; };
template <> struct IsInteger<uint8_t> { static constexpr bool value = true; };
template <> struct IsInteger<int32_t> { static constexpr bool value = true; };
template <> struct IsInteger<uint32_t> { static constexpr bool value = true; };
template <> struct IsInteger<int64_t> { static constexpr bool value = true; };
template <> struct IsInteger<uint64_t> { static constexpr bool value = true; };

// ncclRedOp_t values.
enum { OP_SUM = 0, OP_PROD = 1, OP_MAX = 2, OP_MIN = 3, OP_AVG = 4 };

// combine() folds one more rank's value into the accumulator; finish() applies what comes
// after the last rank (avg's division). Ranks are always folded in order 0..n-1.
template <typename T, int Op, bool Integer = IsInteger<T>::value> struct Reduce;

template <typename T, int Op> struct Reduce<T, Op, true> {
  using U = typename Elem<T>::Unsigned;
  static __device__ __forceinline__ T combine(T a, T b) {
    if (Op == OP_SUM || Op == OP_AVG) return T(U(a) + U(b));
    if (Op == OP_PROD) return T(U(a) * U(b));
    if (Op == OP_MAX) return a < b ? b : a;
    return a < b ? a : b;
  }
  // NCCL's avg of integers: the wrapped sum, divided by the rank count (C division: towards
  // zero for signed types).
  static __device__ __forceinline__ T finish(T a, int nranks) {
    return Op == OP_AVG ? T(a / T(nranks)) : a;
  }
};

template <typename T, int Op> struct Reduce<T, Op, false> {
  using Acc = typename Elem<T>::Acc;
  static __device__ __forceinline__ Acc combine(Acc a, Acc b) {
    if (Op == OP_SUM || Op == OP_AVG) return a + b;
    if (Op == OP_PROD) return a * b;
    if (Op == OP_MAX) return a < b ? b : a;
    return b < a ? b : a;
  }
  static __device__ __forceinline__ Acc finish(Acc a, int nranks) {
    return Op == OP_AVG ? a / Acc(nranks) : a;
  }
};

}  // namespace nvlar
