// LL-style packets of the push one-shot: 8 data bytes and two copies of a flag in 16 bytes.
#pragma once

#include "nvlar_kernels.h"
#include "wait.cuh"

namespace nvlar {

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

// Waits until the packet at `slot` carries `flag`; false on failure (wait_until).
__device__ __forceinline__ bool wait_packet(const nvlar_allreduce_args &a, const void *slot,
                                            uint32_t flag, int peer, int block, uint64_t seq,
                                            CtaWait *cta, uint64_t *payload) {
  uint4 v;
  auto arrived = [&] {
    v = load_packet(slot);
    return v.y == flag && v.w == flag;
  };
  if (!wait_until(a, cta, arrived, peer, block, seq)) return false;
  *payload = (uint64_t)v.x | ((uint64_t)v.z << 32);
  return true;
}

// The 8 input bytes of packet `pk` (elements beyond `length` read as zero).
template <typename T>
__device__ __forceinline__ uint64_t read_payload(const T *input, size_t pk, size_t length) {
  constexpr size_t E = 8 / sizeof(T);
  size_t first = pk * E;
  if (first + E <= length && (reinterpret_cast<uintptr_t>(input + first) & 7) == 0) {
    return *reinterpret_cast<const uint64_t *>(input + first);
  }
  union {
    uint64_t bits;
    T elems[E];
  } packed;
  packed.bits = 0;
  for (size_t k = 0; k < E && first + k < length; k++) packed.elems[k] = input[first + k];
  return packed.bits;
}

}  // namespace nvlar
