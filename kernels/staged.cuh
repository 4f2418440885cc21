// Vector access to staging and user buffers: 16-byte packs, loads that bypass L1, copies with
// several loads in flight per thread, and the pull kernels' reduction over every rank's staging.
#pragma once

#include "nvlar_kernels.h"
#include "reduce_ops.cuh"

namespace nvlar {

// Data movement. Staging addresses are 16-byte aligned at every chunk, slice and CTA boundary
// (all boundaries are multiples of kPack elements); user buffers may have any element
// alignment, and are moved 16 bytes at a time only when this rank's pointer allows it.

template <typename T> struct Pack {
  static constexpr int kElems = 16 / sizeof(T);  // elements per 16-byte access
  union {
    uint4 raw;
    T elems[kElems];
  };
};

// The kernels' one reduction, in the rank order 0..n-1 that every kernel folds in, so that
// all of them (and every rank) give the same bits: element k of the result is the fold of
// element k of in[0], in[1], ... in[nsrc - 1], the caller's packs, loaded before the call so
// that their loads are in flight together. kMaxSources bounds nsrc at compile time. (Written
// with a lambda for the source instead, the PTX of the push two-shot changed and its 2-rank
// calls took up to 1.24x as long, emulated; returning the pack by value changed the 16-bit
// types' PTX too; this form gives the PTX of the folds it replaced:
// docs/data/runs/2026-12-05-kernel-fold.)
template <typename T, int Op, int kMaxSources>
__device__ __forceinline__ void reduce_packs(const Pack<T> (&in)[kMaxSources], int nsrc,
                                             Pack<T> &out) {
  using E = Elem<T>;
  using R = Reduce<T, Op>;
#pragma unroll
  for (int k = 0; k < Pack<T>::kElems; k++) {
    typename E::Acc acc = E::to_acc(in[0].elems[k]);
#pragma unroll
    for (int p = 1; p < kMaxSources; p++) {
      if (p < nsrc) acc = R::combine(acc, E::to_acc(in[p].elems[k]));
    }
    out.elems[k] = E::from_acc(R::finish(acc, nsrc));
  }
}

// The same fold for one element: source(p) gives rank p's value (a tail of fewer than a
// pack). Callers capture by value: a lambda capturing by reference took the addresses of the
// push two-shot's arguments and put 480 bytes of its state on the stack (ptxas -v); that
// kernel keeps its own loop for its tail, which leaves its PTX as it was.
template <typename T, int Op, typename Source>
__device__ __forceinline__ T reduce_one(Source source, int nsrc) {
  using E = Elem<T>;
  using R = Reduce<T, Op>;
  typename E::Acc acc = E::to_acc(source(0));
  for (int p = 1; p < nsrc; p++) acc = R::combine(acc, E::to_acc(source(p)));
  return E::from_acc(R::finish(acc, nsrc));
}

__device__ __forceinline__ bool aligned16(const void *p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

// Reads of staging bypass L1 (ld.global.cg): the same staging addresses are read again for
// later chunks of the same launch, after peers rewrote them, and L1 is not coherent with
// writes from other SMs or GPUs.
template <typename T> __device__ __forceinline__ Pack<T> load_staged(const T *p) {
  Pack<T> pack;
  pack.raw = __ldcg(reinterpret_cast<const uint4 *>(p));
  return pack;
}
template <typename T> __device__ __forceinline__ T load_staged_one(const T *p) {
  T value;
  if constexpr (sizeof(T) == 1) {
    *reinterpret_cast<unsigned char *>(&value) = __ldcg(reinterpret_cast<const unsigned char *>(p));
  } else if constexpr (sizeof(T) == 2) {
    *reinterpret_cast<unsigned short *>(&value) = __ldcg(reinterpret_cast<const unsigned short *>(p));
  } else if constexpr (sizeof(T) == 4) {
    *reinterpret_cast<unsigned int *>(&value) = __ldcg(reinterpret_cast<const unsigned int *>(p));
  } else {
    *reinterpret_cast<unsigned long long *>(&value) =
        __ldcg(reinterpret_cast<const unsigned long long *>(p));
  }
  return value;
}

// Each thread keeps kUnroll 16-byte loads in flight before storing: one pack per thread is
// too little to cover memory latency with the few CTAs a rank uses. (A kernel whose CTAs each
// move much more, the push two-shot, asks for a deeper kDepth.)
constexpr int kUnroll = 4;

// Copies `packs` 16-byte packs; `src` is read through `load`, kDepth packs per thread at once.
template <int kDepth = kUnroll, typename Load>
__device__ __forceinline__ void copy_packs(uint4 *dst, const uint4 *src, size_t packs, Load load) {
  const size_t stride = blockDim.x;
  size_t i = threadIdx.x;
  for (; i + (kDepth - 1) * stride < packs; i += kDepth * stride) {
    uint4 v[kDepth];
#pragma unroll
    for (int u = 0; u < kDepth; u++) v[u] = load(src + i + u * stride);
#pragma unroll
    for (int u = 0; u < kDepth; u++) dst[i + u * stride] = v[u];
  }
  for (; i < packs; i += stride) dst[i] = load(src + i);
}

struct PlainLoad {
  __device__ uint4 operator()(const uint4 *p) const { return *p; }
};
struct StagedLoad {
  __device__ uint4 operator()(const uint4 *p) const { return __ldcg(p); }
};

// Copies n elements with this CTA's threads; dst is staging (aligned), src the user's input.
template <typename T, int kDepth = kUnroll>
__device__ void copy_to_staging(T *dst, const T *src, size_t n) {
  constexpr int V = Pack<T>::kElems;
  size_t done = 0;
  if (aligned16(src)) {
    size_t packs = n / V;
    copy_packs<kDepth>(reinterpret_cast<uint4 *>(dst), reinterpret_cast<const uint4 *>(src), packs,
                       PlainLoad());
    done = packs * V;
  }
  for (size_t i = done + threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
}

// Copies n elements from staging (aligned, possibly a peer's) to the user's output.
template <typename T, int kDepth = kUnroll>
__device__ void copy_from_staging(T *dst, const T *src, size_t n) {
  constexpr int V = Pack<T>::kElems;
  size_t packs = n / V;
  if (aligned16(dst)) {
    copy_packs<kDepth>(reinterpret_cast<uint4 *>(dst), reinterpret_cast<const uint4 *>(src), packs,
                       StagedLoad());
  } else {
    for (size_t i = threadIdx.x; i < packs; i += blockDim.x) {
      Pack<T> pack = load_staged(src + i * V);
#pragma unroll
      for (int k = 0; k < V; k++) dst[i * V + k] = pack.elems[k];
    }
  }
  for (size_t i = packs * V + threadIdx.x; i < n; i += blockDim.x) dst[i] = load_staged_one(src + i);
}

// Reduces n elements at element offset `at` of every rank's staging area `src[p]`, in rank
// order 0..nranks-1, writing the result to `dst` (user output) and, if not null, to `also`
// (this rank's staging, for peers to gather).
template <typename T, int Op>
__device__ void reduce_staged(T *dst, T *also, T *const *src, size_t at, size_t n, int nranks) {
  constexpr int V = Pack<T>::kElems;
  size_t packs = n / V;
  bool dst_aligned = aligned16(dst);
  for (size_t i = threadIdx.x; i < packs; i += blockDim.x) {
    // All loads first, so that the peers' 16-byte reads are in flight together.
    Pack<T> in[NVLAR_MAX_RANKS];
#pragma unroll
    for (int p = 0; p < NVLAR_MAX_RANKS; p++) {
      if (p < nranks) in[p] = load_staged(src[p] + at + i * V);
    }
    Pack<T> out;
    reduce_packs<T, Op>(in, nranks, out);
    if (dst_aligned) {
      reinterpret_cast<uint4 *>(dst)[i] = out.raw;
    } else {
#pragma unroll
      for (int k = 0; k < V; k++) dst[i * V + k] = out.elems[k];
    }
    if (also != nullptr) reinterpret_cast<uint4 *>(also)[i] = out.raw;
  }
  for (size_t i = packs * V + threadIdx.x; i < n; i += blockDim.x) {
    const T value = reduce_one<T, Op>([=](int p) { return load_staged_one(src[p] + at + i); }, nranks);
    dst[i] = value;
    if (also != nullptr) also[i] = value;
  }
}

}  // namespace nvlar
